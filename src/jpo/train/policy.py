"""Loading the policy to train: optionally 4-bit, optionally with a LoRA adapter, dropout off."""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import nn

from jpo.errors import JpoError
from jpo.modeling import load_model

# Projections of Llama / Mistral / Qwen / Gemma-style decoders: attention and MLP.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _quantization_config():
    if importlib.util.find_spec("bitsandbytes") is None:
        raise JpoError("--load_in_4bit needs the bitsandbytes package (pip install bitsandbytes)")
    if not torch.cuda.is_available():
        raise JpoError("--load_in_4bit needs a CUDA GPU; none is visible (drop the flag to train in full precision)")
    from transformers import BitsAndBytesConfig

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


def load_policy(config, name: str | None = None) -> nn.Module:
    """The causal LM `name` (default `config.model_name_or_path`) in float32 (bfloat16 under `config.bf16`; or
    `config.model_init_kwargs`'s dtype), with `config.model_init_kwargs` and, under `config.use_peft`, a fresh LoRA
    adapter."""
    kwargs = {"trust_remote_code": config.trust_remote_code, **(config.model_init_kwargs or {})}
    if config.load_in_4bit:
        kwargs["quantization_config"] = _quantization_config()
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    # Never the checkpoint's dtype silently: float32 as TRL, or bf16 weights under --bf16 (jpo's choice, unlike TRL's
    # float32 weights under autocast: a 7B model's full-weight SFT fits where the recipes plan it); model_init_kwargs'
    # dtype wins either way.
    dtype = kwargs.get("dtype", "bfloat16" if config.bf16 else "float32")
    kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    model = load_model(name or config.model_name_or_path, **kwargs)
    if config.disable_dropout:
        disable_dropout(model)
    return add_lora(model, config) if config.use_peft else model


def disable_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def default_lora_targets(model: nn.Module) -> list[str] | str:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [t for t in LORA_TARGETS if t in names]
    return found or "all-linear"


def add_lora(model: nn.Module, config) -> nn.Module:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules or default_lora_targets(model),
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")
