"""What only a CUDA GPU can check: bf16 training, the 4-bit QLoRA path, Lemma D.1 on the GPU's kernels, generation
in bf16. Skipped (with the reason) on machines without one, which includes CI; run on a GPU with
`python -m pytest tests/test_gpu.py`.

CUDA's kernels give the same result for the same input only in deterministic mode (cuBLAS with a fixed workspace,
PyTorch's deterministic algorithms, eager attention): there JPO's and DPO's losses on equal prompts must be equal to
the bit, and a repeated DPO forward is the control that separates nondeterminism from a broken Lemma D.1. The
backward's atomic additions sum in no fixed order, so gradients are compared to a tolerance (on the CPU,
tests/test_lemma_d1.py compares them to the bit).
"""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.evaluate.generate import GenerateOptions, generate_from
from jpo.train import train_preferences
from jpo.train.data import PairCollator, encode_pairs
from jpo.train.logprobs import batch_logps
from jpo.train.losses import OBJECTIVES, preference_loss
from jpo.train.tokenize import TRUNCATION_MODES, Encoder
from jpo.train.trainer import _split

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts: before any CUDA work

STEPS = dict(per_device_train_batch_size=4, learning_rate=1e-3, beta=0.1, logging_steps=1, seed=0, max_steps=3,
             max_length=128, report_to="none", save_strategy="no", disable_tqdm=True)


@pytest.fixture(scope="module")
def authors_rows():
    from conftest import shared_path

    from jpo.data import load_preferences

    return load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))


def step_losses(result) -> list[float]:
    return [h["loss"] for h in result.log_history if "loss" in h]


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mode", TRUNCATION_MODES)
def test_lemma_d1_on_cuda(tiny_model_path, authors_rows, deterministic, dtype, mode):
    """JPO = DPO on equal prompts (the authors' HH pairs, prompts cut at max_length 48) with CUDA's kernels."""
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    load = dict(dtype=dtype, attn_implementation="eager")
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_path, **load).cuda()
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_path, **load).cuda()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    data, _ = encode_pairs(authors_rows[:16], Encoder(tok, max_length=48, truncation_mode=mode))
    results = {}
    for name in ("dpo", "dpo again", "jpo"):
        objective = name.split()[0]
        batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in PairCollator(
            0, count_prompt=OBJECTIVES[objective].scope == "joint", skip_equal_prompts=True)(list(data)).items()}
        policy.zero_grad()
        with torch.no_grad():
            rc, rr = _split(batch_logps(ref, ref, batch, 2 * len(data)))
        pc, pr = _split(batch_logps(policy, policy, batch, 2 * len(data)))
        out = preference_loss(pc, pr, rc, rr, OBJECTIVES[objective], beta=0.1)
        out.losses.mean().backward()
        results[name] = (out.losses.detach(), [p.grad.float().clone() for p in policy.parameters()])
    assert torch.equal(results["dpo"][0], results["dpo again"][0]), "the control: CUDA's forward is not repeatable"
    (jpo, jpo_grads), (dpo, dpo_grads) = results["jpo"], results["dpo"]
    assert torch.equal(jpo, dpo) and torch.isfinite(jpo).all()
    for a, b in zip(jpo_grads, dpo_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-6)


@pytest.mark.parametrize("objective", ["jpo", "dpo", "kto"])
def test_bf16_training_on_cuda(tiny_model_path, authors_rows, tmp_path, objective):
    result = train_preferences(dict(STEPS, objective=objective, model_name_or_path=str(tiny_model_path), bf16=True,
                                    output_dir=str(tmp_path)), authors_rows[:32])
    losses = step_losses(result)
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)


def test_jpo_equals_dpo_training_on_cuda_bf16(tiny_model_path, authors_rows, tmp_path):
    """Lemma D.1 end to end on the GPU in bf16, in transformers' full-determinism mode: the first step's loss
    (before any update) is equal to the bit."""
    runs = {name: train_preferences(dict(STEPS, objective=name, model_name_or_path=str(tiny_model_path), bf16=True,
                                         max_length=48, truncation_mode="keep_end", full_determinism=True,
                                         model_init_kwargs={"attn_implementation": "eager"},
                                         output_dir=str(tmp_path / name)), authors_rows[:32])
            for name in ("jpo", "dpo")}
    first = {name: step_losses(run)[0] for name, run in runs.items()}
    assert first["jpo"] == first["dpo"]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
@pytest.mark.parametrize("objective", ["jpo", "dpo"])
def test_qlora_4bit_training_on_cuda(tiny_model_path, authors_rows, tmp_path, objective):
    """The recipes' Table 7 path: LoRA on a 4-bit NF4 base, bf16 compute, gradient checkpointing, reference
    log-probs precomputed."""
    result = train_preferences(dict(STEPS, objective=objective, model_name_or_path=str(tiny_model_path), bf16=True,
                                    load_in_4bit=True, use_peft=True, lora_r=8, lora_alpha=16,
                                    gradient_checkpointing=True, precompute_ref_log_probs=True,
                                    output_dir=str(tmp_path)), authors_rows[:32])
    losses = step_losses(result)
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert (tmp_path / "adapter_config.json").exists()


def test_generation_on_cuda_bf16(tiny_model_path):
    prompts = [{"id": str(i), "prompt": p} for i, p in enumerate(["Once upon a time", "The cat", "Lily saw"])]
    options = GenerateOptions(temperatures=[0.0, 0.7], max_new_tokens=16, backend="hf", device="cuda",
                              dtype="bfloat16")
    rows, backend = generate_from(str(tiny_model_path), prompts, [0], options, progress=False)
    assert backend == "transformers" and len(rows) == 6
    assert all(isinstance(r["response"], str) and r["response"].strip() for r in rows)
