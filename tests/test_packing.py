"""Padding-free packing: the sequences of a batch packed end to end (block-diagonal mask, or one row read through
its position ids) give every objective's per-sequence log-probs within 1e-5 of the padded forward in float64, the
same gradients, the same SFT loss, and the trainer turns it on by itself where the attention implementation takes it.

The varlen layout (flash-attention's, no mask) is checked on CPU through sdpa: transformers reads restarting position
ids without a mask as packed sequences for every attention implementation (`masking_utils.find_packed_sequence_indices`),
the same reading flash-attention's varlen path makes (`_is_packed_sequence`). Eager attention takes its softmax in
float32 whatever the model's dtype, so there the tolerance is float32's resolution (as in test_prefix_sharing.py)."""

from __future__ import annotations

import contextlib
import logging

import pytest
import torch
from conftest import ulps
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.train.data import PairCollator, UnpairedCollator, encode_pairs, encode_unpaired
from jpo.train.logprobs import batch_logps
from jpo.train.packing import choose_bins, computed_tokens, first_fit_decreasing, units_attention
from jpo.train.sft import SFTCollator
from jpo.train.tokenize import Encoder

# Layouts of one batch: (packing, share_prefix, token_cost). A cost of None packs at the narrowest width (several
# rows); a huge one makes the linear layers dominate, so the fewest padded tokens win (one or two wide rows).
LAYOUTS = {"block": ("block", False, None), "block-shared": ("block", True, 386.0),
           "block-wide": ("block", True, 1e9), "units": ("units", False, None), "units-shared": ("units", True, 0.0),
           "varlen": ("varlen", False, None)}


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.fixture(scope="module")
def items(tok):
    """Six equal-prompt HH pairs and two joint pairs (different prompts) in one batch."""
    from conftest import shared_path

    from jpo.data import load_preferences

    rows = load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))[:6]
    rows += [{"prompt_chosen": a["prompt_chosen"], "chosen": a["chosen"], "prompt_rejected": b["prompt_rejected"],
              "rejected": b["rejected"]} for a, b in zip(rows[:2], rows[2:4], strict=True)]
    data, _ = encode_pairs(rows, Encoder(tok, max_length=256))
    return list(data)


def _model(path, attention="sdpa", dtype=torch.float64):
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention, dtype=dtype)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


# Eager attention with the block layouts only: the unit-by-unit layout runs sdpa per unit whatever the model's own
# implementation, and the varlen layout is flash-attention's (sdpa stands in for it on CPU).
ATTENTION_LAYOUTS = [("sdpa", layout) for layout in LAYOUTS] + [("eager", layout) for layout in LAYOUTS
                                                                 if layout.startswith("block")]


@pytest.mark.parametrize(("attention", "layout"), ATTENTION_LAYOUTS)
@pytest.mark.parametrize(("count_prompt", "skip_equal"), [(False, True), (True, True), (True, False)])
def test_packed_pair_logps_equal_the_padded_forward(tiny_model_path, tok, items, attention, count_prompt,
                                                     skip_equal, layout):
    """Response scope (dpo, ipo, ...), joint scope with equal-prompt terms skipped (jpo's default) and counted: the
    prompt and response sums and token counts of every sequence, packed against padded rows as TRL lays them out."""
    packing, share, cost = LAYOUTS[layout]
    model = _model(tiny_model_path, attention)
    out = {}
    for name, kw in (("padded", {}), ("packed", dict(packing=packing, share_prefix=share, token_cost=cost))):
        batch = PairCollator(tok.pad_token_id, count_prompt=count_prompt, skip_equal_prompts=skip_equal, **kw)(items)
        with torch.no_grad():
            out[name] = batch_logps(model, model, batch, 2 * len(items))
        if name == "packed":
            rows = batch["input_ids"].shape[0]
            assert rows < 2 * len(items) and (packing == "block") == ("attention_mask" in batch)
            assert (packing == "units") == ("units" in batch)
            if layout == "units-shared":  # attention only: sharing always pays
                assert len(batch["units"]) < 2 * len(items)
    tolerance = 1e-5 if attention == "sdpa" else ulps(256, out["padded"].response.abs().max().item())
    for part in ("prompt", "response"):
        packed, padded = getattr(out["packed"], part), getattr(out["padded"], part)
        assert torch.allclose(packed, padded, rtol=0, atol=tolerance), (part, (packed - padded).abs().max())
    assert out["packed"].response_tokens.tolist() == out["padded"].response_tokens.tolist()
    assert out["packed"].prompt_tokens.tolist() == out["padded"].prompt_tokens.tolist()
    assert (out["packed"].prompt != 0).any() == count_prompt


@pytest.mark.parametrize("layout", ["block-shared", "units-shared", "varlen"])
def test_packed_gradients_equal_the_padded_forward(tiny_model_path, tok, items, layout):
    packing, share, cost = LAYOUTS[layout]
    grads = {}
    for name, kw in (("padded", {}), ("packed", dict(packing=packing, share_prefix=share, token_cost=cost))):
        model = _model(tiny_model_path)
        batch = PairCollator(tok.pad_token_id, count_prompt=True, skip_equal_prompts=False, **kw)(items)
        logps = batch_logps(model, model, batch, 2 * len(items))
        (logps.prompt + logps.response).sum().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    # As test_prefix_sharing.py's bound: a shared prompt gathers both branches' gradients in one sum, which rounds
    # differently from two rows' (seen up to ~3e-8 of the largest entry in float64; unshared packing ~1e-15).
    assert (grads["packed"] - grads["padded"]).abs().max() <= 1e-6 * grads["padded"].abs().max()


@pytest.mark.parametrize("packing", ["block", "units", "varlen"])
def test_packed_kto_rows_and_kl_rows_equal_the_padded_forward(tiny_model_path, tok, items, packing):
    rows = [{"prompt": "Once upon a time", "completion": " there was a cat.", "label": True},
            {"prompt": "Tom had a ball", "completion": " and he played with it in the park all day.", "label": False},
            {"prompt": "The sun", "completion": " was big.", "label": True}]
    data, _ = encode_unpaired(rows, Encoder(tok, max_length=256))
    model = _model(tiny_model_path)
    out = {}
    for name in (None, packing):
        batch = UnpairedCollator(tok.pad_token_id, Encoder(tok, max_length=256), packing=name)(list(data))
        with torch.no_grad():
            out[name] = [batch_logps(model, model, batch, len(data), prefix).response for prefix in ("", "kl_")]
    for packed, padded in zip(out[packing], out[None], strict=True):
        assert torch.allclose(packed, padded, rtol=0, atol=1e-5)


@pytest.mark.parametrize("packing", ["block", "units", "varlen"])
@pytest.mark.parametrize("completion_only", [True, False])
def test_packed_sft_loss_equals_the_padded_loss(tiny_model_path, tok, items, packing, completion_only):
    rows = [{"ids": it["chosen_ids"], "prompt_len": it["chosen_prompt_len"]} for it in items]
    model = _model(tiny_model_path)
    losses = {}
    for name in (None, packing):
        batch = SFTCollator(tok.pad_token_id, completion_only=completion_only, packing=name, token_cost=386.0)(rows)
        table = batch.pop("jpo_units", None)
        with torch.no_grad(), units_attention(model) if table is not None else contextlib.nullcontext():
            losses[name] = model(**batch, **({} if table is None else {"jpo_units": table.tolist()})).loss
        counted = (batch["labels"] != -100).sum()
        assert name is None or batch["labels"].shape == batch["input_ids"].shape[:2]
        assert counted == sum(len(r["ids"]) - (r["prompt_len"] if completion_only else 1) for r in rows)
    assert abs(losses[packing] - losses[None]) <= 1e-5 * abs(losses[None])


def test_bins_hold_every_unit_once_within_capacity():
    lengths = [300, 20, 250, 120, 90, 90, 400, 5]
    bins = first_fit_decreasing(lengths, 400)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 400 for b in bins)
    narrow, _ = choose_bins(lengths, None)
    assert max(sum(lengths[i] for i in b) for b in narrow) <= 400
    wide, _ = choose_bins(lengths, 1e9)  # linear layers dominate: fewest padded tokens
    assert len(wide) * max(sum(lengths[i] for i in b) for b in wide) <= 1.1 * sum(lengths)


def test_computed_tokens_count_real_and_padded_positions(tok, items):
    real = sum(len(it[f"{side}_ids"]) for it in items for side in ("chosen", "rejected"))
    padded = PairCollator(tok.pad_token_id, count_prompt=False)(items)
    assert computed_tokens(padded) == (padded["input_ids"].numel(), real)
    packed = PairCollator(tok.pad_token_id, count_prompt=False, packing="block", token_cost=1e9)(items)
    assert computed_tokens(packed) == (packed["input_ids"].numel(), real)
    shared = PairCollator(tok.pad_token_id, count_prompt=False, packing="block", share_prefix=True,
                          token_cost=1e9)(items)
    prompts = sum(it["chosen_prompt_len"] for it in items if it["same_prompt"])
    assert computed_tokens(shared)[1] == real - prompts  # each equal prompt computed once


QUICK = dict(per_device_train_batch_size=4, learning_rate=1e-3, beta=0.1, logging_steps=1, seed=0, max_steps=3,
             report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True)


@pytest.mark.parametrize("objective", ["dpo", "jpo", "ipo", "kto"])
def test_trainer_packs_by_default_and_trains_as_padded(tiny_model_path, items, tmp_path, objective):
    """Three steps with packing on (the default: unit by unit under sdpa) and off: the same losses to float32
    rounding."""
    from conftest import shared_path

    from jpo import JPOConfig, JPOTrainer
    from jpo.data import load_preferences

    rows = load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))[:24]
    losses = {}
    for padding_free in (None, False):
        args = JPOConfig(output_dir=str(tmp_path / str(padding_free)), objective=objective, max_length=256,
                         padding_free=padding_free, **QUICK)
        trainer = JPOTrainer(str(tiny_model_path), args=args, train_dataset=rows)
        assert trainer.data_collator.packing == ("units" if padding_free is None else None)
        trainer.train()
        losses[padding_free] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses[None]) == 3
    assert losses[None] == pytest.approx(losses[False], rel=1e-5)


def test_an_attention_without_masks_trains_padded_with_one_log_line(tiny_model_path, tmp_path, caplog):
    from jpo import JPOConfig, JPOTrainer
    from jpo.errors import JpoError
    from jpo.train.config import SFTConfig
    from jpo.train.packing import batch_layout, packing_mode
    from jpo.train.sft import SFTTrainer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, attn_implementation="flex_attention")
    with caplog.at_level(logging.WARNING, logger="jpo.train.packing"):
        line = batch_layout(*packing_mode(model, None, 64))
    lines = [r.getMessage() for r in caplog.records if "padding-free packing off" in r.getMessage()]
    assert len(lines) == 1 and "flex_attention" in lines[0]
    assert line.startswith("padded batches (attention implementation 'flex_attention'")
    # and on CPU, where torch's FlexAttention has no backward pass, both trainers refuse it before the first step
    rows = [{"prompt": "Once upon a time", "chosen": " a cat.", "rejected": " a dog ran."}] * 4
    with pytest.raises(JpoError, match="'flex_attention' cannot train on CPU .* attn_implementation='sdpa'"):
        JPOTrainer(model, args=JPOConfig(output_dir=str(tmp_path), objective="dpo", **QUICK), train_dataset=rows)
    sft_rows = [{"prompt": "Once upon a time", "response": " a cat."}] * 4
    with pytest.raises(JpoError, match="'flex_attention' cannot train on CPU"):
        SFTTrainer(model, args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
                   train_dataset=sft_rows)


def test_gradient_checkpointing_packs_under_a_block_mask(tiny_model_path, tmp_path):
    """The backward pass recomputes each layer's forward with the model's own attention: the mask must be an input."""
    from jpo import JPOConfig, JPOTrainer

    args = JPOConfig(output_dir=str(tmp_path), objective="dpo", gradient_checkpointing=True, **QUICK)
    rows = [{"prompt": "Once upon a time", "chosen": " a cat.", "rejected": " a dog ran."}] * 4
    trainer = JPOTrainer(str(tiny_model_path), args=args, train_dataset=rows)
    assert trainer.data_collator.packing == "block"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("attention", ["sdpa", "eager", "flash_attention_2"])
def test_packed_logps_on_cuda_in_bf16(tiny_model_path, tok, items, attention):
    """The layout each attention implementation packs with (packing_mode) on a GPU in bf16, against padded rows:
    the same sums to bf16's resolution (the two layouts round differently)."""
    from jpo.train.packing import packing_mode

    if attention == "flash_attention_2":
        pytest.importorskip("flash_attn")
    model = _model(tiny_model_path, attention, torch.bfloat16).cuda()
    packing, why = packing_mode(model, None, 256)
    assert why is None
    out = {}
    for name, kw in (("padded", {}), ("packed", dict(packing=packing, share_prefix=packing != "varlen",
                                                      token_cost=386.0))):
        batch = PairCollator(tok.pad_token_id, count_prompt=True, skip_equal_prompts=False, **kw)(items)
        batch = {k: v.cuda() for k, v in batch.items()}
        with torch.no_grad():
            out[name] = batch_logps(model, model, batch, 2 * len(items))
    for part in ("prompt", "response"):
        packed, padded = getattr(out["packed"], part), getattr(out["padded"], part)
        assert torch.allclose(packed, padded, rtol=0, atol=ulps(256, padded.abs().max().item(), torch.bfloat16))


def test_on_a_gpu_only_flash_attention_packs_by_default(tiny_model_path):
    """sdpa/eager packing ran slower than padded rows on an H200 (benchmarks/results/gpu-h200-2026-11-30): on a GPU
    the default pads (one line why) and only flash-attention's varlen path packs; padding_free=True still packs."""
    from jpo.train.packing import packing_mode

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, attn_implementation="sdpa")
    layout, why = packing_mode(model, None, 64, device="cuda:0")
    assert layout is None and "on a GPU sdpa packing runs slower than padded rows" in why and "\n" not in why
    assert packing_mode(model, True, 64, device="cuda:0") == ("units", None)
    assert packing_mode(model, None, 64, device="cpu") == ("units", None)
    model.config._attn_implementation = "flash_attention_2"  # only read here: flash-attn is not installed on CPU
    assert packing_mode(model, None, 64, device="cuda:0") == ("varlen", None)
