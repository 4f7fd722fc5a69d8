"""Pretraining: the loss covers every token after BOS, instructions included, unlike SFT's completion-only loss."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.errors import JpoError
from jpo.train import train_sft
from jpo.train.pretrain import pretrain

PROMPT = "Sort these words alphabetically: pear apple kiwi plum Answer:"
DOCUMENTS = [{"prompt": PROMPT, "response": " apple kiwi pear plum"}] * 16


def _prompt_nll(folder, tokenizer) -> float:
    """Mean next-token loss on the instruction's tokens (after BOS) under the saved model."""
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)


def _settings(model_path, out) -> dict:
    return dict(model_name_or_path=str(model_path), output_dir=str(out), per_device_train_batch_size=8,
                learning_rate=5e-3, max_steps=8, logging_steps=1, max_length=64, seed=0, report_to="none",
                save_strategy="no", disable_tqdm=True)


def test_pretraining_learns_the_instructions_sft_does_not(tiny_model_path, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    before = _prompt_nll(tiny_model_path, tokenizer)
    result = pretrain(_settings(tiny_model_path, tmp_path / "pre"), DOCUMENTS)
    train_sft(_settings(tiny_model_path, tmp_path / "sft"), DOCUMENTS)
    pretrained, fine_tuned = _prompt_nll(tmp_path / "pre", tokenizer), _prompt_nll(tmp_path / "sft", tokenizer)
    assert len([h for h in result.log_history if "loss" in h]) == 8
    assert pretrained < 0.5 * before
    assert pretrained < 0.5 * fine_tuned


def test_a_masked_prompt_is_not_pretraining(tiny_model_path, tmp_path):
    with pytest.raises(JpoError, match="completion_only_loss must be False"):
        pretrain({**_settings(tiny_model_path, tmp_path), "completion_only_loss": True}, DOCUMENTS)
