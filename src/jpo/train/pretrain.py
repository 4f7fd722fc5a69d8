"""Causal-LM pretraining of a base model on documents, before any instruction tuning.

A base LLM has been trained to predict every token of its corpus: instructions as well as answers. That prior over
instructions is what JPO's instruction term acts on (a model whose only training masked the prompt has none), so a
from-scratch model is pretrained before SFT. The loop is SFT's (`train_sft`) with the loss on every token after BOS
(`completion_only_loss=False`); a document is a `{prompt, response}` row, the text `prompt + response + EOS`.
"""

from __future__ import annotations

from typing import Any

from jpo.errors import JpoError
from jpo.train.api import TrainResult, train_sft
from jpo.train.config import SFTConfig


def pretrain(config: SFTConfig | dict[str, Any], documents: list[dict[str, Any]] | None = None, *, model=None,
             tokenizer=None) -> TrainResult:
    """Train `model` (or `config.model_name_or_path`) on every token of `documents` (or `config.dataset` files);
    saves model + tokenizer to `config.output_dir`. `config` takes `SFTConfig`'s fields; `completion_only_loss`
    must be False (the default here), since a masked prompt is SFT, not pretraining."""
    if isinstance(config, dict):
        config = {"completion_only_loss": False, **config}
    if (config["completion_only_loss"] if isinstance(config, dict) else config.completion_only_loss):
        raise JpoError("pretraining trains on every token: completion_only_loss must be False")
    return train_sft(config, documents, model=model, tokenizer=tokenizer)
