"""Preference objectives as pure functions on tensors.

An objective is a pair (scope, shape):

* **scope**: which tokens count in a sequence's log-probability. ``"response"``: log p(R | I), the response and EOS
  tokens (DPO). ``"joint"``: log p(I, R) = log p(I) + log p(R | I), every token after BOS (JPO).
* **shape**: which function of the reward margin is minimised: ``"sigmoid"`` (DPO), ``"ipo"`` (IPO) or ``"kto"``.

Every log-probability arrives split into its prompt part and its response part (`SequenceLogps`), so the joint scope
is literally ``prompt + response``. For a pair whose two prompts are equal, policy and reference see the same prompt
tokens on both sides, so the prompt log-ratio of the chosen side equals that of the rejected side and they cancel in
the margin: JPO reduces to DPO there (Lemma D.1 of Bansal et al.). That is why rows with equal prompts may skip the
prompt terms altogether (`skip_prompt`): they are then zero on both sides and the margin is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Scope = Literal["response", "joint"]
Shape = Literal["sigmoid", "ipo", "kto"]


@dataclass(frozen=True)
class Objective:
    name: str
    scope: Scope
    shape: Shape


OBJECTIVES: dict[str, Objective] = {
    "jpo": Objective("jpo", "joint", "sigmoid"),
    "dpo": Objective("dpo", "response", "sigmoid"),
    "ipo": Objective("ipo", "response", "ipo"),
    "jipo": Objective("jipo", "joint", "ipo"),
    "kto": Objective("kto", "response", "kto"),
}


@dataclass
class SequenceLogps:
    """Summed log-probabilities of a batch of sequences, split at the prompt/response boundary.

    ``prompt``: the tokens after BOS up to the response (template and instruction); ``response``: the response and EOS.
    ``prompt_tokens`` / ``response_tokens`` count them (IPO averages per token).
    """

    prompt: torch.Tensor
    response: torch.Tensor
    prompt_tokens: torch.Tensor
    response_tokens: torch.Tensor


@dataclass
class PreferenceLoss:
    """Per-row losses and the pieces the metrics need (all per row; rewards are beta-scaled log-ratios)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    margin_prompt: torch.Tensor  # beta * (prompt log-ratio of chosen - of rejected); zero under the response scope
    margin_response: torch.Tensor  # beta * (response log-ratio of chosen - of rejected)


def _log_ratio(policy: torch.Tensor, reference: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
    ratio = policy - reference
    return ratio if tokens is None else ratio / tokens.clamp(min=1)


def preference_loss(
    policy_chosen: SequenceLogps,
    policy_rejected: SequenceLogps,
    ref_chosen: SequenceLogps,
    ref_rejected: SequenceLogps,
    objective: Objective,
    beta: float,
) -> PreferenceLoss:
    """Pairwise loss of `objective` (shape sigmoid or ipo) on per-row sequence log-probabilities.

    sigmoid: -log sigmoid(beta * margin), margin = chosen log-ratio - rejected log-ratio (DPO, eq. 7).
    ipo: (margin - 1 / (2 beta))^2 (IPO, eq. 17) with each log-ratio averaged over its tokens, as TRL does for the
    response. Under the joint scope the prompt and response log-ratios are averaged over their own token counts, so
    equal prompts still cancel exactly and Lemma D.1 holds for IPO as well.
    """
    if objective.shape not in ("sigmoid", "ipo"):
        raise ValueError(f"preference_loss takes a pairwise shape, not {objective.shape!r} (use kto_loss)")
    per_token = objective.shape == "ipo"

    def part_margin(part: str) -> torch.Tensor:
        tokens = f"{part}_tokens"
        chosen = _log_ratio(getattr(policy_chosen, part), getattr(ref_chosen, part),
                            getattr(policy_chosen, tokens) if per_token else None)
        rejected = _log_ratio(getattr(policy_rejected, part), getattr(ref_rejected, part),
                              getattr(policy_rejected, tokens) if per_token else None)
        return chosen, rejected

    chosen_response, rejected_response = part_margin("response")
    if objective.scope == "joint":
        chosen_prompt, rejected_prompt = part_margin("prompt")
    else:
        chosen_prompt = rejected_prompt = torch.zeros_like(chosen_response)
    chosen_ratio = chosen_prompt + chosen_response
    rejected_ratio = rejected_prompt + rejected_response
    # Prompt and response margins apart, then summed: where the prompt log-ratios are equal the first is exactly
    # zero and the margin is the response margin to the last bit (Lemma D.1 in float arithmetic too).
    margin = (chosen_prompt - rejected_prompt) + (chosen_response - rejected_response)

    if objective.shape == "sigmoid":
        losses = -F.logsigmoid(beta * margin)
    else:
        losses = (margin - 1 / (2 * beta)) ** 2
    return PreferenceLoss(
        losses=losses,
        chosen_rewards=beta * chosen_ratio.detach(),
        rejected_rewards=beta * rejected_ratio.detach(),
        margin_prompt=beta * (chosen_prompt - rejected_prompt).detach(),
        margin_response=beta * (chosen_response - rejected_response).detach(),
    )


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
