"""Preference objectives as pure functions on tensors.

An objective is a pair (scope, shape):

* **scope**: which tokens count in a sequence's log-probability. ``"response"``: log p(R | I), the response and EOS
  tokens (DPO, TRL). ``"joint"``: log p(I, R) = log p(I) + log p(R | I), every token after BOS (JPO).
* **shape**: which function of the log-ratios is minimised: each of TRL's DPOTrainer ``loss_type``s (`SHAPES`:
  sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down,
  discopop, sft, sigmoid_norm), or ``"kto"`` on unpaired rows. Every shape composes with either scope, so every
  TRL loss has a joint version (joint hinge, joint APO, ...).

Every log-probability arrives split into its prompt part and its response part (`SequenceLogps`). The prompt enters
every shape only through the pair's *prompt margin* ``dp = prompt score of chosen - prompt score of rejected``:
margin shapes (sigmoid, hinge, ipo, exo_pair, robust, discopop, sigmoid_norm, aot) see the joint margin
``dp + (response margin)``, exactly JPO's; shapes that score each side on its own (nca_pair, bco_pair, sppo_hard,
aot_unpaired, apo_zero, apo_down) see ``response score +/- dp / 2`` on the chosen/rejected side, whose difference is
the same joint margin; sft is the chosen response's NLL under both scopes (the prompt is what it is conditioned on,
as SFT's completion-only loss). For a pair whose two prompts are equal, policy and reference see the same prompt
tokens on both sides, so ``dp`` is exactly zero and every joint shape is its response shape (Lemma D.1 of Bansal et
al., for every shape). That is why rows with equal prompts may skip the prompt terms altogether (`skip_prompt`).

The per-token shapes (ipo, sigmoid_norm) average each part's log-ratio over that part's own tokens, as TRL does for
the response. The f-divergence option (f-DPO; TRL's ``f_divergence_type``) maps each part's log-ratio through f'
before anything else, for the shapes TRL allows it with (`F_DIVERGENCE_SHAPES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

Scope = Literal["response", "joint"]
# TRL's DPOTrainer loss types, in TRL's order.
SHAPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
          "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
PAIRWISE_SHAPES = SHAPES
# Shapes that average a log-ratio over its tokens (TRL: the completion's; here each part over its own).
PER_TOKEN_SHAPES = ("ipo", "sigmoid_norm")
# Shapes built on the chosen-rejected score difference, the only ones with an f-divergence generalisation (TRL).
F_DIVERGENCE_SHAPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft")
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")


@dataclass(frozen=True)
class Objective:
    name: str
    scope: Scope
    shape: str


OBJECTIVES: dict[str, Objective] = {
    "jpo": Objective("jpo", "joint", "sigmoid"),
    "dpo": Objective("dpo", "response", "sigmoid"),
    "ipo": Objective("ipo", "response", "ipo"),
    "jipo": Objective("jipo", "joint", "ipo"),
    "kto": Objective("kto", "response", "kto"),
}


@dataclass(frozen=True)
class LossOptions:
    """The knobs some shapes read, under TRL's `DPOConfig` names."""

    label_smoothing: float = 0.0  # robust, exo_pair, aot, aot_unpaired
    f_divergence_type: str = "reverse_kl"
    f_alpha_divergence_coef: float = 0.5
    discopop_tau: float = 0.05


@dataclass
class SequenceLogps:
    """Summed log-probabilities of a batch of sequences, split at the prompt/response boundary.

    ``prompt``: the tokens after BOS up to the response (template and instruction); ``response``: the response and EOS.
    ``prompt_tokens`` / ``response_tokens`` count them (IPO averages per token). Optional, where asked for:
    ``wpo`` the sum over response tokens of log p - log sum_v p_v^2 (WPO's aligned log-prob, detached) and
    ``aux_loss`` a MoE model's router load-balancing loss for the whole forward.
    """

    prompt: torch.Tensor
    response: torch.Tensor
    prompt_tokens: torch.Tensor
    response_tokens: torch.Tensor
    wpo: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class PreferenceLoss:
    """Per-row losses and the pieces the metrics need (all per row; rewards are beta-scaled log-ratios)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    margin_prompt: torch.Tensor  # beta * (prompt log-ratio of chosen - of rejected); zero under the response scope
    margin_response: torch.Tensor  # beta * (response log-ratio of chosen - of rejected)


def f_score(log_ratio: torch.Tensor, divergence: str, alpha: float = 0.5) -> torch.Tensor:
    """f'(t) at t = exp(log_ratio) for TRL's f-divergences (f-DPO, Wang et al. 2023); reverse_kl is the identity."""
    if divergence == "reverse_kl":
        return log_ratio
    if divergence == "forward_kl":  # f'(t) = 1 - 1/t
        return 1 - torch.exp(-log_ratio)
    if divergence == "js_divergence":  # f'(t) = log(2t / (t + 1))
        return math.log(2) + F.logsigmoid(log_ratio)
    if divergence == "alpha_divergence":  # f'(t) = (t^(a-1) - 1) / (a - 1); a -> 1 is reverse KL
        if abs(alpha - 1.0) < 1e-6:
            return log_ratio
        t = ((alpha - 1.0) * log_ratio).float()
        clamp = {torch.float16: 11.0}.get(log_ratio.dtype, 80.0)  # exp stays representable in the input dtype
        return (torch.exp(t.clamp(max=clamp)) - 1.0).to(log_ratio.dtype) / (alpha - 1.0)
    raise ValueError(f"unknown f_divergence_type {divergence!r}; expected one of {', '.join(F_DIVERGENCES)}")


def _part_scores(policy: SequenceLogps, reference: SequenceLogps, part: str, per_token: bool,
                 options: LossOptions) -> torch.Tensor:
    score = f_score(getattr(policy, part) - getattr(reference, part), options.f_divergence_type,
                    options.f_alpha_divergence_coef)
    return score / getattr(policy, f"{part}_tokens").clamp(min=1) if per_token else score


def _smoothed(logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    return -F.logsigmoid(logits) * (1 - smoothing) - F.logsigmoid(-logits) * smoothing


def preference_loss(
    policy_chosen: SequenceLogps,
    policy_rejected: SequenceLogps,
    ref_chosen: SequenceLogps,
    ref_rejected: SequenceLogps,
    objective: Objective,
    beta: float,
    options: LossOptions | None = None,
) -> PreferenceLoss:
    """Per-row loss of `objective` (any pairwise shape of `SHAPES`, either scope) on sequence log-probabilities.

    Each shape is TRL's DPOTrainer formula (trl/trainer/dpo_trainer.py, `_compute_loss`) with TRL's per-side log-ratio
    replaced by the scoped one of the module docstring. Tensors are per row ([B]); the result is per row too (sft:
    the batch's mean chosen-token NLL on every row, as TRL). Raises ValueError for an unknown shape.
    """
    options = options or LossOptions()
    shape = objective.shape
    if shape not in SHAPES:
        raise ValueError(f"preference_loss takes a pairwise shape ({', '.join(SHAPES)}), not {shape!r}")
    per_token = shape in PER_TOKEN_SHAPES
    reward_options = LossOptions()  # rewards (metrics, per-side shapes) are plain summed log-ratios

    def scores(part: str, opts: LossOptions, norm: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return (_part_scores(policy_chosen, ref_chosen, part, norm, opts),
                _part_scores(policy_rejected, ref_rejected, part, norm, opts))

    def prompt_margin(opts: LossOptions, norm: bool) -> torch.Tensor:
        if objective.scope != "joint":
            return torch.zeros_like(policy_chosen.response)
        chosen, rejected = scores("prompt", opts, norm)
        return chosen - rejected

    # Prompt and response margins apart, then summed: where the prompt log-ratios are equal the first is exactly
    # zero and the margin is the response margin to the last bit (Lemma D.1 in float arithmetic too).
    resp_c, resp_r = scores("response", options, per_token)
    margin = prompt_margin(options, per_token) + (resp_c - resp_r)
    # Per-side log-ratios: response ratio +/- half the prompt margin (exactly the response ratio where it is zero).
    ratio_c, ratio_r = scores("response", reward_options, False)
    half = prompt_margin(reward_options, False) / 2
    side_c, side_r = ratio_c + half, ratio_r - half
    b, eps = beta, options.label_smoothing

    if shape == "sigmoid" or shape == "sigmoid_norm":
        losses = -F.logsigmoid(b * margin)
    elif shape == "hinge":
        losses = torch.relu(1 - b * margin)
    elif shape == "ipo":
        losses = (margin - 1 / (2 * b)) ** 2
    elif shape == "exo_pair":  # EXO-pref (Ji et al. 2024, eq. 16); label_smoothing is its epsilon
        eps_t = torch.tensor(eps, dtype=margin.dtype, device=margin.device)
        losses = (torch.sigmoid(b * margin) * (F.logsigmoid(b * margin) - torch.log1p(-eps_t))
                  + torch.sigmoid(-b * margin) * (F.logsigmoid(-b * margin) - torch.log(eps_t)))
    elif shape == "nca_pair":
        losses = -F.logsigmoid(b * side_c) - 0.5 * F.logsigmoid(-b * side_c) - 0.5 * F.logsigmoid(-b * side_r)
    elif shape == "robust":  # rDPO (Chowdhury et al. 2024); label_smoothing is the flip probability
        losses = (-(1 - eps) * F.logsigmoid(b * margin) + eps * F.logsigmoid(-b * margin)) / (1 - 2 * eps)
    elif shape == "bco_pair":
        losses = -F.logsigmoid(b * side_c) - F.logsigmoid(-b * side_r)
    elif shape == "sppo_hard":
        losses = (side_c - 0.5 / b) ** 2 + (side_r + 0.5 / b) ** 2
    elif shape == "aot":  # AOT (Melnyk et al. 2024): sorted policy vs sorted reference chosen-rejected differences
        policy_diff = prompt_diff(policy_chosen, policy_rejected, objective) + (
            policy_chosen.response - policy_rejected.response)
        ref_diff = prompt_diff(ref_chosen, ref_rejected, objective) + (ref_chosen.response - ref_rejected.response)
        losses = _smoothed(b * (torch.sort(policy_diff, dim=0)[0] - torch.sort(ref_diff, dim=0)[0]), eps)
    elif shape == "aot_unpaired":
        losses = _smoothed(b * (torch.sort(side_c, dim=0)[0] - torch.sort(side_r, dim=0)[0]), eps)
    elif shape == "apo_zero":  # APO (D'Oosterlinck et al. 2024, eq. 7)
        losses = 1 - torch.sigmoid(b * side_c) + torch.sigmoid(b * side_r)
    elif shape == "apo_down":  # APO eq. 8
        losses = torch.sigmoid(b * side_c) + 1 - torch.sigmoid(b * (side_c - side_r))
    elif shape == "discopop":  # DiscoPOP (Chris Lu et al. 2024, eq. 5)
        logits = b * margin
        modulation = torch.sigmoid(logits / options.discopop_tau)
        # exp(-logits) * modulation in log space: TRL's product is inf * 0 = NaN for a very negative margin (as
        # forward_kl's f' gives), whose value is exp(-logits + logsigmoid(logits / tau)) (0 for tau < 1).
        exp_part = torch.exp(F.logsigmoid(logits / options.discopop_tau) - logits)
        losses = -F.logsigmoid(logits) * (1 - modulation) + exp_part
    else:  # sft: the chosen responses' mean token NLL over the batch, on every row
        nll = -policy_chosen.response.sum() / policy_chosen.response_tokens.sum().clamp(min=1)
        losses = nll.expand_as(policy_chosen.response)

    chosen_prompt = rejected_prompt = torch.zeros_like(ratio_c)
    if objective.scope == "joint":
        chosen_prompt, rejected_prompt = scores("prompt", reward_options, False)
    return PreferenceLoss(
        losses=losses,
        chosen_rewards=beta * (chosen_prompt + ratio_c).detach(),
        rejected_rewards=beta * (rejected_prompt + ratio_r).detach(),
        margin_prompt=beta * (chosen_prompt - rejected_prompt).detach(),
        margin_response=beta * (ratio_c - ratio_r).detach(),
    )


def prompt_diff(chosen: SequenceLogps, rejected: SequenceLogps, objective: Objective) -> torch.Tensor:
    """Chosen minus rejected prompt log-prob under the objective's scope (zero for the response scope)."""
    if objective.scope != "joint":
        return torch.zeros_like(chosen.response)
    return chosen.prompt - rejected.prompt


def wpo_weights(policy_chosen: SequenceLogps, policy_rejected: SequenceLogps) -> torch.Tensor:
    """WPO's per-pair weight (Zhou et al. 2024, eq. 2, as TRL): the product over the two sides of
    exp(mean over response tokens of log p - log sum_v p_v^2), from the policy, detached. [B]"""
    def side(s: SequenceLogps) -> torch.Tensor:
        if s.wpo is None:
            raise ValueError("WPO weights need the aligned log-probs (SequenceLogps.wpo)")
        return torch.exp(s.wpo / s.response_tokens.clamp(min=1))

    return (side(policy_chosen) * side(policy_rejected)).detach()


@dataclass
class KTOLoss:
    losses: torch.Tensor  # per row, already weighted
    rewards: torch.Tensor  # beta * log-ratio per row
    kl: torch.Tensor  # the reference point actually used (clamped, detached)


def kto_kl(policy_kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor) -> torch.Tensor:
    """KTO's reference point z0 from mismatched prompt-completion pairs: mean log-ratio, detached.

    The caller averages it over processes before `kto_loss` clamps it at 0 (KL is non-negative; the estimate is not).
    """
    return (policy_kl_logps - ref_kl_logps).mean().detach()


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> KTOLoss:
    """KTO (Ethayarajh et al. 2024, eq. 7) on unpaired rows.

    desirable:   w_d * (1 - sigmoid(beta * (log-ratio - z0)))
    undesirable: w_u * (1 - sigmoid(beta * (z0 - log-ratio)))
    with z0 = max(kl, 0), detached, so the reference point shifts the value function but is not trained through.
    """
    z0 = kl.detach().clamp(min=0)
    ratio = policy_logps - ref_logps
    desirable = desirable.bool()
    losses = torch.where(
        desirable,
        desirable_weight * (1 - torch.sigmoid(beta * (ratio - z0))),
        undesirable_weight * (1 - torch.sigmoid(beta * (z0 - ratio))),
    )
    return KTOLoss(losses=losses, rewards=beta * ratio.detach(), kl=z0)
