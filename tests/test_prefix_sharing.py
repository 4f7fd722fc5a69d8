"""Prefix sharing: a pair with equal prompts as one row [prompt, chosen, rejected] under a block mask gives the same
sequence log-probs as the two sequences run apart, for each attention implementation that takes the mask.

Checked to the resolution of the float format, not to an absolute number: a sum of up to 256 log-probs computed in
two layouts agrees to 256 units of the format's resolution at the sum's magnitude (float64: ~1e-11; float32: ~1e-2 at
-300), below which no two summation orders (nor two padding widths of the same forward) need agree. Eager attention
takes its softmax in float32 whatever the model's dtype, so it is checked at float32's resolution."""

from __future__ import annotations

import pytest
import torch
from conftest import ulps
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.train.data import PairCollator, encode_pairs
from jpo.train.logprobs import batch_logps
from jpo.train.tokenize import Encoder


@pytest.fixture(scope="module")
def pairs(tiny_model_path):
    from conftest import shared_path

    from jpo.data import load_preferences

    rows = load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))[:6]
    # two joint pairs with different prompts in the same batch: they stay two ordinary sequences
    rows += [{"prompt_chosen": a["prompt_chosen"], "chosen": a["chosen"], "prompt_rejected": b["prompt_rejected"],
              "rejected": b["rejected"]} for a, b in zip(rows[:2], rows[2:4], strict=True)]
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    data, _ = encode_pairs(rows, Encoder(tok, max_length=256))
    return list(data), tok.pad_token_id


@pytest.mark.parametrize(("attention", "dtype"), [("sdpa", torch.float64), ("sdpa", torch.float32),
                                                  ("eager", torch.float32)])
@pytest.mark.parametrize("count_prompt", [False, True])
def test_shared_prefix_logps_equal_separate_forwards(tiny_model_path, pairs, attention, count_prompt, dtype):
    items, pad_id = pairs
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, attn_implementation=attention, dtype=dtype)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    out = {}
    for share in (False, True):
        collator = PairCollator(pad_id, count_prompt=count_prompt, skip_equal_prompts=False, share_prefix=share)
        batch = collator(items)
        if share:
            assert batch["attention_mask"].dim() == 4 and len(batch["input_ids"]) == 6 + 2 * 2
        with torch.no_grad():
            out[share] = batch_logps(model, model, batch, 2 * len(items))
    for shared, apart in ((out[True].response, out[False].response), (out[True].prompt, out[False].prompt)):
        # A sum of n log-probs from two attention layouts: up to ~n roundings of the largest sum, n <= 256 here.
        # Eager attention takes its softmax in float32 whatever the model's dtype: float32's resolution then.
        resolution = torch.float32 if attention == "eager" else dtype
        assert torch.allclose(shared, apart, rtol=0, atol=ulps(256, apart.abs().max().item(), resolution))
    assert out[True].response_tokens.tolist() == out[False].response_tokens.tolist()
    assert out[True].prompt_tokens.tolist() == out[False].prompt_tokens.tolist()
    assert (out[True].prompt != 0).all() if count_prompt else (out[True].prompt == 0).all()


def test_shared_prefix_gradients_equal_separate_forwards(tiny_model_path, pairs):
    items, pad_id = pairs
    grads = {}
    for share in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float64)
        batch = PairCollator(pad_id, count_prompt=True, skip_equal_prompts=False, share_prefix=share)(items)
        logps = batch_logps(model, model, batch, 2 * len(items))
        (logps.prompt + logps.response).sum().backward()
        grads[share] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert (grads[True] - grads[False]).abs().max() <= 1e-6 * grads[False].abs().max()


def test_sharing_is_chosen_only_where_it_costs_less():
    """Long prompt, short answers: one row of 64 + 8 + 8 beats two rows of 72. Short prompt, long answers: one row of
    4 + 60 + 60 costs more attention than two rows of 64 where the linear layers are cheap (a small model)."""
    def item(prompt: int, answer: int) -> dict:
        ids = list(range(1, prompt + answer + 1))
        return {"same_prompt": True, "chosen_ids": ids, "chosen_prompt_len": prompt, "rejected_ids": ids,
                "rejected_prompt_len": prompt, "length": len(ids)}

    collator = PairCollator(0, count_prompt=False, share_prefix=True, token_cost=100.0)
    assert collator([item(64, 8)] * 2)["attention_mask"].dim() == 4
    assert collator([item(4, 60)] * 2)["attention_mask"].dim() == 2
    big_model = PairCollator(0, count_prompt=False, share_prefix=True, token_cost=10_000.0)
    assert big_model([item(4, 60)] * 2)["attention_mask"].dim() == 4  # token savings dominate
