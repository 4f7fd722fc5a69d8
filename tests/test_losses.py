"""The objectives as pure functions: hand-computed values, Lemma D.1 on tensors, KTO's reference point."""

from __future__ import annotations

import math

import pytest
import torch

from jpo.train.losses import (
    F_DIVERGENCE_SHAPES,
    F_DIVERGENCES,
    OBJECTIVES,
    SHAPES,
    LossOptions,
    Objective,
    SequenceLogps,
    kto_kl,
    kto_loss,
    preference_loss,
    wpo_weights,
)


def logps(prompt, response, prompt_tokens=(3.0, 3.0), response_tokens=(4.0, 5.0)) -> SequenceLogps:
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return SequenceLogps(t(prompt), t(response), t(prompt_tokens), t(response_tokens))


def test_objectives_are_scope_times_shape():
    assert {n: (o.scope, o.shape) for n, o in OBJECTIVES.items()} == {
        "jpo": ("joint", "sigmoid"), "dpo": ("response", "sigmoid"), "ipo": ("response", "ipo"),
        "jipo": ("joint", "ipo"), "kto": ("response", "kto")}


def test_scoped_joint_is_prompt_plus_response():
    """With a zero reference and beta 1 a reward is log p under the scope: log p(I) + log p(R | I) when joint."""
    s, zero = logps([-2.0, -3.0], [-5.0, -7.0]), logps([0.0, 0.0], [0.0, 0.0])
    joint = preference_loss(s, s, zero, zero, OBJECTIVES["jpo"], beta=1.0)
    response = preference_loss(s, s, zero, zero, OBJECTIVES["dpo"], beta=1.0)
    assert joint.chosen_rewards.tolist() == [-7.0, -10.0]
    assert response.chosen_rewards.tolist() == [-5.0, -7.0]


def test_dpo_sigmoid_hand_computed():
    pc, pr = logps([-1.0, -1.0], [-10.0, -20.0]), logps([-1.0, -1.0], [-12.0, -18.0])
    rc, rr = logps([-1.0, -1.0], [-11.0, -19.0]), logps([-1.0, -1.0], [-11.0, -19.0])
    out = preference_loss(pc, pr, rc, rr, OBJECTIVES["dpo"], beta=0.5)
    # margins: (-10+11) - (-12+11) = 2 ; (-20+19) - (-18+19) = -2
    expected = [-math.log(1 / (1 + math.exp(-1.0))), -math.log(1 / (1 + math.exp(1.0)))]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-12)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5, -0.5])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.5, 0.5])
    assert out.margin_prompt.tolist() == [0.0, 0.0]


def test_lemma_d1_equal_prompts_cancel():
    """Same prompt on both sides: the prompt log-ratios are equal, so JPO's loss is DPO's, computed or skipped."""
    prompt_policy, prompt_ref = [-4.0, -6.5], [-3.0, -7.25]
    pc, pr = logps(prompt_policy, [-10.0, -20.0]), logps(prompt_policy, [-12.0, -18.0])
    rc, rr = logps(prompt_ref, [-11.0, -19.0]), logps(prompt_ref, [-11.5, -19.5])
    for joint, response in (("jpo", "dpo"), ("jipo", "ipo")):
        a = preference_loss(pc, pr, rc, rr, OBJECTIVES[joint], beta=0.1)
        b = preference_loss(pc, pr, rc, rr, OBJECTIVES[response], beta=0.1)
        assert torch.equal(a.losses, b.losses), joint
        assert a.margin_prompt.abs().max() == 0
        skipped = [logps([0.0, 0.0], s.response.tolist(), (0.0, 0.0)) for s in (pc, pr, rc, rr)]
        c = preference_loss(*skipped, OBJECTIVES[joint], beta=0.1)
        assert torch.equal(a.losses, c.losses), joint


def test_different_prompts_margin_gap_is_the_prompt_log_ratio():
    pc, pr = logps([-4.0, -6.0], [-10.0, -20.0]), logps([-9.0, -2.0], [-12.0, -18.0])
    rc, rr = logps([-5.0, -6.5], [-11.0, -19.0]), logps([-8.0, -3.0], [-11.5, -19.5])
    jpo = preference_loss(pc, pr, rc, rr, OBJECTIVES["jpo"], beta=0.1)
    dpo = preference_loss(pc, pr, rc, rr, OBJECTIVES["dpo"], beta=0.1)
    jpo_margin = jpo.chosen_rewards - jpo.rejected_rewards
    dpo_margin = dpo.chosen_rewards - dpo.rejected_rewards
    prompt_terms = 0.1 * ((pc.prompt - rc.prompt) - (pr.prompt - rr.prompt))
    assert torch.allclose(jpo_margin - dpo_margin, prompt_terms)
    assert torch.allclose(jpo.margin_prompt, prompt_terms)
    assert torch.allclose(jpo.margin_response, dpo_margin)


def test_ipo_hand_computed_is_per_token():
    pc, pr = logps([0.0, 0.0], [-8.0, -8.0]), logps([0.0, 0.0], [-10.0, -10.0])
    rc, rr = logps([0.0, 0.0], [-10.0, -10.0]), logps([0.0, 0.0], [-10.0, -10.0])
    out = preference_loss(pc, pr, rc, rr, OBJECTIVES["ipo"], beta=0.25)
    # chosen ratio 2 over 4 tokens = 0.5 ; rejected 0 -> (0.5 - 1/(2*0.25))^2 = 2.25
    assert out.losses[0].item() == pytest.approx(2.25)


def test_kto_hand_computed():
    policy = torch.tensor([-10.0, -12.0, -9.0, -15.0])
    ref = torch.tensor([-11.0, -11.0, -10.0, -14.0])
    desirable = torch.tensor([True, False, True, False])
    kl = torch.tensor(0.3)
    out = kto_loss(policy, ref, desirable, kl, beta=0.5, desirable_weight=2.0, undesirable_weight=0.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [2.0 * (1 - sig(0.5 * (1.0 - 0.3))), 0.5 * (1 - sig(0.5 * (0.3 + 1.0))),
                2.0 * (1 - sig(0.5 * (1.0 - 0.3))), 0.5 * (1 - sig(0.5 * (0.3 + 1.0)))]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-6)
    assert out.rewards.tolist() == pytest.approx([0.5, -0.5, 0.5, -0.5])


def test_kto_reference_point_is_clamped_and_detached():
    policy_kl = torch.tensor([-10.0, -12.0], requires_grad=True)
    kl = kto_kl(policy_kl, torch.tensor([-9.0, -11.0]))
    assert kl.item() == pytest.approx(-1.0) and not kl.requires_grad
    policy = torch.tensor([-1.0, -2.0], requires_grad=True)
    out = kto_loss(policy, torch.tensor([-1.0, -2.0]), torch.tensor([True, False]), kl, beta=1.0)
    assert out.kl.item() == 0.0  # negative estimate clamped at 0
    assert out.losses.tolist() == pytest.approx([0.5, 0.5])
    out.losses.sum().backward()
    assert policy.grad.abs().sum() > 0 and policy_kl.grad is None


# --- every TRL loss type as a shape under both scopes ---------------------------------------------------------------

def _options(shape: str, divergence: str = "reverse_kl") -> LossOptions:
    smoothing = {"exo_pair": 1e-3, "robust": 0.1, "aot": 0.05, "aot_unpaired": 0.05}.get(shape, 0.0)
    return LossOptions(label_smoothing=smoothing, f_divergence_type=divergence)


def _equal_prompt_batch():
    """Three pairs whose two prompts are equal (so policy and reference see the same prompt on both sides)."""
    prompt_policy, prompt_ref = [-4.0, -6.5, -2.25], [-3.0, -7.25, -2.5]
    pc = logps(prompt_policy, [-10.0, -20.0, -7.5], (3.0, 5.0, 2.0), (4.0, 5.0, 3.0))
    pr = logps(prompt_policy, [-12.0, -18.0, -9.0], (3.0, 5.0, 2.0), (6.0, 2.0, 3.0))
    rc = logps(prompt_ref, [-11.0, -19.0, -7.0], (3.0, 5.0, 2.0), (4.0, 5.0, 3.0))
    rr = logps(prompt_ref, [-11.5, -19.5, -8.0], (3.0, 5.0, 2.0), (6.0, 2.0, 3.0))
    return pc, pr, rc, rr


@pytest.mark.parametrize(("shape", "divergence"), [(s, d) for s in SHAPES for d in F_DIVERGENCES
                                                   if d == "reverse_kl" or s in F_DIVERGENCE_SHAPES])
def test_lemma_d1_every_shape(shape, divergence):
    """Lemma D.1 for each of TRL's loss types (and each f-divergence where TRL allows one): on equal prompts the
    joint shape is the response shape, exactly (float64, torch.equal), whether the prompt terms are computed or
    skipped (zeros, as the collator leaves them for such rows)."""
    pc, pr, rc, rr = _equal_prompt_batch()
    options = _options(shape, divergence)
    joint = preference_loss(pc, pr, rc, rr, Objective("j", "joint", shape), 0.1, options)
    response = preference_loss(pc, pr, rc, rr, Objective("r", "response", shape), 0.1, options)
    assert torch.equal(joint.losses, response.losses), shape
    assert torch.isfinite(joint.losses).all()
    skipped = [logps([0.0] * 3, s.response.tolist(), (0.0,) * 3, s.response_tokens.tolist()) for s in (pc, pr, rc, rr)]
    assert torch.equal(preference_loss(*skipped, Objective("j", "joint", shape), 0.1, options).losses,
                       response.losses), shape


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "sft"])
def test_joint_shapes_see_the_prompt_margin_where_prompts_differ(shape):
    """With different prompts the joint loss moves with the prompt log-ratios (sft is the response NLL alone)."""
    pc, pr, rc, rr = _equal_prompt_batch()
    shifted = logps((pc.prompt + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).tolist(), pc.response.tolist(),
                    pc.prompt_tokens.tolist(), pc.response_tokens.tolist())
    options = _options(shape)
    same = preference_loss(pc, pr, rc, rr, Objective("j", "joint", shape), 0.1, options)
    moved = preference_loss(shifted, pr, rc, rr, Objective("j", "joint", shape), 0.1, options)
    assert not torch.equal(same.losses, moved.losses), shape
    assert torch.equal(moved.margin_prompt, 0.1 * (shifted.prompt - pc.prompt)), shape


def test_per_side_shapes_split_the_prompt_margin_evenly():
    """bco_pair under the joint scope is bco_pair of (response ratio + dp/2, response ratio - dp/2)."""
    pc, pr, rc, rr = _equal_prompt_batch()
    pc = logps([-1.0, -9.0, -2.0], pc.response.tolist(), pc.prompt_tokens.tolist(), pc.response_tokens.tolist())
    dp = (pc.prompt - rc.prompt) - (pr.prompt - rr.prompt)
    c = (pc.response - rc.response) + dp / 2
    r = (pr.response - rr.response) - dp / 2
    out = preference_loss(pc, pr, rc, rr, Objective("j", "joint", "bco_pair"), 0.5)
    expected = -torch.nn.functional.logsigmoid(0.5 * c) - torch.nn.functional.logsigmoid(-0.5 * r)
    assert torch.allclose(out.losses, expected, rtol=0, atol=1e-15)


def test_trl_formulas_hand_computed():
    """One pair, response scope, beta 1: chosen log-ratio 1, rejected -1 (margin 2), chosen over 4 tokens and
    rejected over 2 (TRL's formulas, trl/trainer/dpo_trainer.py)."""
    pc, pr = logps([0.0], [-9.0], (1.0,), (4.0,)), logps([0.0], [-11.0], (1.0,), (2.0,))
    rc, rr = logps([0.0], [-10.0], (1.0,), (4.0,)), logps([0.0], [-10.0], (1.0,), (2.0,))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731

    def loss(shape, **kw):
        return preference_loss(pc, pr, rc, rr, Objective("r", "response", shape), 1.0, LossOptions(**kw)).losses.item()

    assert loss("hinge") == pytest.approx(0.0)  # relu(1 - 2)
    assert loss("sigmoid_norm") == pytest.approx(-math.log(sig(1 / 4 + 1 / 2)))
    assert loss("bco_pair") == pytest.approx(-2 * math.log(sig(1.0)))
    assert loss("nca_pair") == pytest.approx(-math.log(sig(1)) - 0.5 * math.log(sig(-1)) - 0.5 * math.log(sig(1)))
    assert loss("sppo_hard") == pytest.approx((1 - 0.5) ** 2 + (-1 + 0.5) ** 2)
    assert loss("apo_zero") == pytest.approx(1 - sig(1) + sig(-1))
    assert loss("apo_down") == pytest.approx(sig(1) + 1 - sig(2))
    assert loss("robust", label_smoothing=0.1) == pytest.approx(
        (-0.9 * math.log(sig(2)) + 0.1 * math.log(sig(-2))) / 0.8)
    assert loss("exo_pair", label_smoothing=1e-3) == pytest.approx(
        sig(2) * (math.log(sig(2)) - math.log(1 - 1e-3)) + sig(-2) * (math.log(sig(-2)) - math.log(1e-3)))
    assert loss("discopop") == pytest.approx(-math.log(sig(2)) * (1 - sig(2 / 0.05)) + math.exp(-2) * sig(2 / 0.05))
    assert loss("aot") == pytest.approx(-math.log(sig(2)))  # one row: sorting is the identity
    assert loss("sft") == pytest.approx(9.0 / 4)
    assert loss("sigmoid", f_divergence_type="forward_kl") == pytest.approx(
        -math.log(sig((1 - math.exp(-1)) - (1 - math.exp(1)))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discopop_stays_finite_for_a_very_negative_margin(dtype):
    """forward_kl's f'(t) = 1 - 1/t makes a rejected-favouring margin huge (here -e^60 ~ -1e26): TRL's
    exp(-logits) * sigmoid(logits / tau) is inf * 0 = NaN there; its value is the limit, 0, and the loss is the
    logistic part, -logsigmoid(logits), as for sigmoid."""
    t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
    pc = SequenceLogps(t([0.0]), t([-80.0]), t([1.0]), t([4.0]))
    pr = SequenceLogps(t([0.0]), t([-9.0]), t([1.0]), t([4.0]))
    rc, rr = (SequenceLogps(t([0.0]), t([-20.0]), t([1.0]), t([4.0])) for _ in range(2))
    options = LossOptions(f_divergence_type="forward_kl")
    out = preference_loss(pc, pr, rc, rr, Objective("r", "response", "discopop"), 0.1, options).losses
    sigmoid = preference_loss(pc, pr, rc, rr, Objective("r", "response", "sigmoid"), 0.1, options).losses
    assert torch.isfinite(out).all() and torch.equal(out, sigmoid)


def test_wpo_weights_are_length_normalised_probabilities():
    pc, pr = logps([0.0], [-2.0], (1.0,), (4.0,)), logps([0.0], [-3.0], (1.0,), (3.0,))
    pc.wpo, pr.wpo = torch.tensor([-2.0], dtype=torch.float64), torch.tensor([-6.0], dtype=torch.float64)
    assert wpo_weights(pc, pr).item() == pytest.approx(math.exp(-0.5) * math.exp(-2.0))
