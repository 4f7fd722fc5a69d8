"""Loading the policy to train: optionally 4-bit, optionally with a LoRA adapter, dropout off.

A model folder that holds a LoRA adapter (``adapter_config.json``, as `jpo sft --use_peft` saves) is the SFT model
base + adapter, and training continues from it: with `use_peft` the same adapter goes on training (saved as one
adapter on the original base, loadable alone), and the reference is the SFT model, loaded apart
(`adapter_reference`) since disabling the adapter would give the raw base; without `use_peft` the adapter is merged
into the base and every weight trains, the reference being a copy of that merged model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from jpo.errors import JpoError
from jpo.modeling import load_model

logger = logging.getLogger(__name__)

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


def adapter_base(name: str | None) -> str | None:
    """The base model of a LoRA adapter folder (its adapter_config.json); None for any other model name."""
    config = Path(name) / "adapter_config.json" if name else None
    if config is None or not config.is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise JpoError(f"{config}: no base_model_name_or_path, so the adapter's base model is unknown")
    return base


def _load_kwargs(config) -> dict:
    """`load_model`'s keyword arguments: float32 (bfloat16 under `config.bf16`; or `config.model_init_kwargs`'s
    dtype), 4-bit where asked."""
    kwargs = {"trust_remote_code": config.trust_remote_code, **(config.model_init_kwargs or {})}
    if config.load_in_4bit:
        kwargs["quantization_config"] = _quantization_config()
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    # Never the checkpoint's dtype silently: float32 as TRL, or bf16 weights under --bf16 (jpo's choice, unlike TRL's
    # float32 weights under autocast: a 7B model's full-weight SFT fits where the recipes plan it); model_init_kwargs'
    # dtype wins either way.
    dtype = kwargs.get("dtype", "bfloat16" if config.bf16 else "float32")
    kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    return kwargs


def _with_adapter(config, folder: str, base: str, trainable: bool, merge: bool = False) -> nn.Module:
    """Base + the adapter in `folder`: trainable (continued), frozen, or merged into the base (a plain model; kept
    apart on a 4-bit base, which cannot take merged weights)."""
    from peft import PeftModel, prepare_model_for_kbit_training

    model = load_model(base, **_load_kwargs(config))
    if trainable and config.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    model = PeftModel.from_pretrained(model, folder, is_trainable=trainable)
    return model.merge_and_unload() if merge and not config.load_in_4bit else model


def load_policy(config, name: str | None = None) -> nn.Module:
    """The causal LM `name` (default `config.model_name_or_path`) in the dtype its training precision wants, with
    `config.model_init_kwargs` and, under `config.use_peft`, a fresh LoRA adapter; an adapter folder continues
    (`use_peft`) or is merged (see the module docstring)."""
    name = name or config.model_name_or_path
    base = adapter_base(name)
    if base is not None:
        model = _with_adapter(config, name, base, trainable=config.use_peft, merge=not config.use_peft)
        if not config.use_peft:
            model.requires_grad_(True)  # peft froze the base when it attached the adapter; merged, all of it trains
        logger.info("%s is a LoRA adapter on %s: %s", name, base,
                    "training that adapter on (the --lora_* options do not apply)" if config.use_peft
                    else "merged into its base; training every weight")
        if config.disable_dropout:
            disable_dropout(model)
        return model
    model = load_model(name, **_load_kwargs(config))
    if config.disable_dropout:
        disable_dropout(model)
    return add_lora(model, config) if config.use_peft else model


def adapter_reference(config, name) -> nn.Module | None:
    """The reference for training that continues the LoRA adapter in folder `name` (`use_peft`): the SFT model,
    base + that adapter, frozen. None where the default reference is already right (not an adapter folder, or
    merged for full training: a copy of the policy; a fresh adapter: the policy with it disabled)."""
    if not isinstance(name, str) or not config.use_peft:
        return None
    base = adapter_base(name)
    if base is None:
        return None
    # Not merged: the same computation as the policy's (base + adapter), so the two agree to the bit at the start.
    reference = _with_adapter(config, name, base, trainable=False)
    reference.requires_grad_(False)
    return reference.eval()


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
