"""--bf16 trains (weights in bfloat16, accelerate's autocast) for every kind of run. On a GPU this is the recipes'
setting; on the CPU it is the same code path (accelerate returns the forward's outputs in float32 either way), so the
path is tested here and not only where a GPU exists (tests/test_gpu.py)."""

from __future__ import annotations

import math

import pytest
from conftest import shared_path

from jpo.data import load_preferences
from jpo.train import train_preferences, train_sft

STEPS = dict(per_device_train_batch_size=4, learning_rate=1e-3, logging_steps=1, seed=0, max_steps=2, max_length=64,
             report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True, bf16=True)


@pytest.fixture(scope="module")
def rows():
    return load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))[:16]


def step_losses(result) -> list[float]:
    return [h["loss"] for h in result.log_history if "loss" in h]


@pytest.mark.parametrize("objective", ["jpo", "dpo", "kto"])
def test_preference_training_in_bf16(tiny_model_path, rows, tmp_path, objective):
    result = train_preferences(dict(STEPS, objective=objective, beta=0.1, model_name_or_path=str(tiny_model_path),
                                    output_dir=str(tmp_path)), rows)
    losses = step_losses(result)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_sft_in_bf16(tiny_model_path, rows, tmp_path):
    sft_rows = [{"prompt": r["prompt_chosen"], "completion": r["chosen"]} for r in rows]
    result = train_sft(dict(STEPS, model_name_or_path=str(tiny_model_path), output_dir=str(tmp_path)), sft_rows)
    losses = step_losses(result)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
