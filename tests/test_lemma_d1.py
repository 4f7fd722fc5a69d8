"""Lemma D.1 as a property: on pairs with equal prompts JPO is DPO (and joint IPO is IPO) to the bit, under every
truncation mode, length limit, prompt-term option, prefix-sharing setting and padding-free layout.

Exact, not approximate, on every machine: a pair's shared prompt is truncated once for both sides
(`tokenize.truncate_group`), its prompt terms are either skipped or computed once and counted for both sides
(SHARED_PROMPT), and the response log-probs go through the LM head in a call of their own. The joint and the
response objectives therefore run the same floating-point operations on the response tokens, and the prompt
log-ratios of the two sides are one number, whose difference is exactly zero. The training runs use the CPU: CUDA's
atomic additions sum in no fixed order.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from transformers import AutoTokenizer

from jpo.train import train_preferences
from jpo.train.data import PairCollator, encode_pairs
from jpo.train.logprobs import batch_logps
from jpo.train.losses import (
    F_DIVERGENCE_SHAPES,
    F_DIVERGENCES,
    OBJECTIVES,
    SHAPES,
    LossOptions,
    Objective,
    preference_loss,
    wpo_weights,
)
from jpo.train.tokenize import TRUNCATION_MODES, Encoder
from jpo.train.trainer import _split

WORDS = ("Tom Lily cat dog ball park sun tree happy sad big red ran played jumped saw had was the a and to of "
         "mom dad little bird fish house car blue green").split()
# (max_length, max_prompt_length): the 48, limits shorter and longer than the rows, and a prompt limit.
LIMITS = [(48, None), (16, None), (100, None), (None, None), (64, 20), (None, 30)]
PAIRS = [("jpo", "dpo"), ("jipo", "ipo")]


def text_of_tokens(tok, n: int, rng: random.Random) -> str:
    """Words until the text is at least `n` tokens long (with BOS)."""
    words = [rng.choice(WORDS)]
    while len(tok(" ".join(words)).input_ids) < n:
        words.append(rng.choice(WORDS))
    return " ".join(words)


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.fixture(scope="module")
def rows(tok):
    """Equal-prompt pairs: the issue's (prompt 400 tokens, responses 5 and 30) both ways round, short prompts that
    keep_start can fit, and random lengths from 1 to 400 prompt tokens and 1 to 60 response tokens."""
    rng = random.Random(0)
    lengths = [(400, 5, 30), (400, 30, 5), (3, 20, 2), (12, 5, 30), (40, 30, 5)] + [(rng.randint(1, 400), rng.randint(1, 60), rng.randint(1, 60))
                                              for _ in range(10)]
    out = []
    for p, c, r in lengths:
        prompt = text_of_tokens(tok, p, rng)
        out.append({"prompt_chosen": prompt, "chosen": " " + text_of_tokens(tok, c, rng),
                    "prompt_rejected": prompt, "rejected": " " + text_of_tokens(tok, r, rng)})
    return out


@pytest.mark.parametrize("mode", TRUNCATION_MODES)
@pytest.mark.parametrize(("max_length", "max_prompt_length"), LIMITS)
def test_equal_prompts_stay_equal_under_truncation(tok, rows, mode, max_length, max_prompt_length):
    encoder = Encoder(tok, max_length=max_length, max_prompt_length=max_prompt_length, truncation_mode=mode)
    data, report = encode_pairs(rows, encoder)
    assert report.rows == len(rows) and len(data) == report.used
    for item in data:
        p = item["chosen_prompt_len"]
        assert item["same_prompt"] and item["rejected_prompt_len"] == p
        assert item["chosen_ids"][:p] == item["rejected_ids"][:p]
        for side in ("chosen", "rejected"):
            ids = item[f"{side}_ids"]
            assert ids[-1] == tok.eos_token_id and len(ids) > p
            assert max_length is None or len(ids) <= max_length
        assert max_prompt_length is None or p <= max_prompt_length
    if mode == "keep_end" and max_length == 48:
        assert len(data) == len(rows)  # keep_end cuts prompts first: every row fits
    assert len(data) >= 1


def pair_losses(policy, ref, data, objective: str, skip: bool, share: bool, packing: str | None = None):
    """Per-pair losses and the policy's gradients, as the trainer computes them."""
    collator = PairCollator(0, count_prompt=OBJECTIVES[objective].scope == "joint", skip_equal_prompts=skip,
                            share_prefix=share, packing=packing, token_cost=386.0 if packing else None)
    batch = collator(list(data))
    policy.zero_grad()
    count = 2 * len(data)
    with torch.no_grad():
        (rc, rr) = _split(batch_logps(ref, ref, batch, count))
    pc, pr = _split(batch_logps(policy, policy, batch, count))
    out = preference_loss(pc, pr, rc, rr, OBJECTIVES[objective], beta=0.1)
    out.losses.mean().backward()
    return out, [p.grad.clone() for p in policy.parameters()]


# The layouts (packing.py): padded rows (None), a block mask, unit by unit, and flash-attention's varlen row (read
# through sdpa here, as transformers reads restarting position ids without a mask). Every limit and truncation mode
# padded and in the default layout under sdpa (units); the block-mask and varlen layouts at the limits that cut
# (a max_length of 16-100 tokens, with or without a prompt limit). Uncut rows (up to 460 tokens) packed under one
# dense mask cost minutes on a CPU and test nothing a cut row does not.
EVERY_OPTION = [(*limits, mode, packing) for limits in LIMITS for mode in TRUNCATION_MODES
                for packing in (None, "units")] + \
               [(*limits, mode, packing) for limits in LIMITS if limits[0] is not None for mode in TRUNCATION_MODES
                for packing in ("block", "varlen")]


@pytest.mark.parametrize(("max_length", "max_prompt_length", "mode", "packing"), EVERY_OPTION)
def test_lemma_d1_to_the_bit_under_every_option(tok, rows, policy_and_ref, mode, max_length, max_prompt_length,
                                                packing):
    policy, ref = policy_and_ref
    data, _ = encode_pairs(rows, Encoder(tok, max_length=max_length, max_prompt_length=max_prompt_length,
                                         truncation_mode=mode))
    for (joint, response), skip, share in itertools.product(PAIRS, (True, False), (False, True)):
        a, grads_a = pair_losses(policy, ref, data, joint, skip, share, packing)
        b, grads_b = pair_losses(policy, ref, data, response, skip, share, packing)
        where = f"{joint} vs {response}, skip_equal_prompt_terms={skip}, share_prefix={share}, packing={packing}"
        assert torch.equal(a.losses, b.losses), where
        assert torch.equal(a.margin_prompt, torch.zeros_like(a.margin_prompt)), where
        assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b, strict=True)), where
        assert not torch.equal(a.losses, torch.full_like(a.losses, a.losses[0].item()))  # a real, varied loss


# Each of TRL's loss types with each f-divergence TRL allows it (label smoothing where the shape reads it).
SHAPE_OPTIONS = [(s, d) for s in SHAPES for d in F_DIVERGENCES if d == "reverse_kl" or s in F_DIVERGENCE_SHAPES]


@pytest.mark.parametrize("packing", [None, "units"])  # padded, and the default layout under sdpa (packing.py)
@pytest.mark.parametrize(("shape", "divergence"), SHAPE_OPTIONS)
def test_lemma_d1_to_the_bit_for_every_trl_shape_with_prompt_terms_counted(tok, rows, policy_and_ref, shape,
                                                                           divergence, packing):
    """The merge of the two exactness mechanisms: TRL's shapes give each side half of the prompt margin, the
    collator counts an equal prompt once for both sides (SHARED_PROMPT) and the LM head scores responses in a call of
    their own. With the prompt terms computed (not skipped), plain or prefix-shared rows, float32 on the model, LD-DPO
    and WPO on: every joint shape's losses and gradients equal its response shape's to the bit."""
    policy, ref = policy_and_ref
    data, _ = encode_pairs(rows, Encoder(tok, max_length=48, truncation_mode="keep_end"))
    options = LossOptions(label_smoothing={"exo_pair": 1e-3, "robust": 0.1, "aot": 0.05,
                                           "aot_unpaired": 0.05}.get(shape, 0.0), f_divergence_type=divergence)
    for share in (False, True):
        results = {}
        for scope in ("joint", "response"):
            batch = PairCollator(0, count_prompt=scope == "joint", skip_equal_prompts=False, share_prefix=share,
                                 packing=packing, token_cost=386.0 if packing else None)(list(data))
            count = 2 * len(data)
            policy.zero_grad()
            with torch.no_grad():
                rc, rr = _split(batch_logps(ref, ref, batch, count, ld_alpha=0.5))
            pc, pr = _split(batch_logps(policy, policy, batch, count, ld_alpha=0.5, wpo=True))
            out = preference_loss(pc, pr, rc, rr, Objective(scope, scope, shape), 0.1, options)
            losses = out.losses * wpo_weights(pc, pr)
            losses.mean().backward()
            results[scope] = (losses.detach(), out.margin_prompt, [p.grad.clone() for p in policy.parameters()])
        (joint, margin_prompt, grads_j), (response, _, grads_r) = results["joint"], results["response"]
        where = f"{shape}/{divergence}, share_prefix={share}, packing={packing}"
        assert torch.equal(joint, response) and torch.isfinite(joint).all(), where
        assert torch.equal(margin_prompt, torch.zeros_like(margin_prompt)), where
        assert all(torch.equal(a, b) for a, b in zip(grads_j, grads_r, strict=True)), where
        assert any(g.abs().sum() > 0 for g in grads_j), where


QUICK = dict(per_device_train_batch_size=4, learning_rate=1e-3, beta=0.1, logging_steps=1, seed=0, max_steps=3,
             report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True)


@pytest.mark.parametrize("mode", TRUNCATION_MODES)
@pytest.mark.parametrize("padding_free", [None, False])
def test_training_jpo_equals_dpo_with_truncation(tiny_model_path, rows, tmp_path, mode, padding_free):
    """The issue's case end to end: prompts of 400 tokens, --max_length 48, three steps; every logged loss and
    metric of JPO (prompt terms skipped or counted) equals DPO's, and the prompt margin is 0 at every step. (With
    the prompt terms counted, rewards/chosen and rewards/rejected are joint log-ratios and include the prompt's,
    the same on both sides; their difference, the margin, is DPO's.)"""
    base = dict(QUICK, model_name_or_path=str(tiny_model_path), max_length=48, truncation_mode=mode,
                padding_free=padding_free)
    runs = {name: train_preferences(dict(base, objective=name.split("_")[0], output_dir=str(tmp_path / name),
                                         skip_equal_prompt_terms=name != "jpo_counted"), rows)
            for name in ("dpo", "jpo", "jpo_counted")}
    keys = ["loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "grad_norm"]
    steps = {name: [h for h in run.log_history if "loss" in h] for name, run in runs.items()}
    assert len(steps["dpo"]) == 3
    for name, extra in (("jpo", ["rewards/chosen", "rewards/rejected"]), ("jpo_counted", [])):
        assert [[h[k] for k in keys + extra] for h in steps[name]] == [[h[k] for k in keys + extra]
                                                                        for h in steps["dpo"]], name
        assert all(h["rewards/margins_prompt"] == 0.0 for h in steps[name])


@pytest.mark.parametrize("mode", TRUNCATION_MODES)
def test_conversational_equal_prompts_stay_equal_under_truncation(tiny_model_path, rows, policy_and_ref, mode):
    """The same through a chat template (TRL's conversational layout): one prompt cut for both sides."""
    chat = AutoTokenizer.from_pretrained(tiny_model_path)
    chat.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant:{% endif %}")
    conversations = [{"prompt": [{"role": "user", "content": r["prompt_chosen"]}],
                      "chosen": [{"role": "assistant", "content": r["chosen"]}],
                      "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    data, report = encode_pairs(conversations, Encoder(chat, max_length=48, truncation_mode=mode))
    assert len(data) >= 1 and all(item["same_prompt"] for item in data)
    assert all(item["chosen_ids"][:item["chosen_prompt_len"]] == item["rejected_ids"][:item["rejected_prompt_len"]]
               for item in data)
    policy, ref = policy_and_ref
    a, _ = pair_losses(policy, ref, data, "jpo", skip=False, share=False)
    b, _ = pair_losses(policy, ref, data, "dpo", skip=False, share=False)
    assert torch.equal(a.losses, b.losses)
