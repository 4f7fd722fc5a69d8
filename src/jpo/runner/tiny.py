"""Tiny models built offline, saved with `save_pretrained` so that SFT, preference training, generation and judging
go through exactly the code paths a real hub model would:

- `save_base_model`: the demo's model (`model: {build: ...}`): a BPE tokenizer trained on the run's training texts
  and a randomly initialised Llama;
- `tiny_like`: a dry run's stand-in for a recipe's model: its architecture at a toy size, random weights.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from jpo.errors import JpoError

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A sentencepiece-style BPE (Metaspace) over the task's text; the task's closed vocabulary ends up as whole
    words, so sequences stay short. Returned as a PreTrainedTokenizerFast with bos/eos/pad/unk set."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=256, padding_side="left",
    )


def build_model(tokenizer, *, hidden_size: int = 128, layers: int = 4, heads: int = 4, intermediate_size: int = 384,
                max_positions: int = 256, seed: int = 0):
    """A randomly initialised LlamaForCausalLM sized for the tokenizer (about 1M parameters by default)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_base_model(texts: Iterable[str], out_dir: str | Path, *, vocab_size: int = 512, seed: int = 0,
                    **model_kwargs) -> int:
    """Train the tokenizer, build the model, save both to `out_dir`; returns the parameter count."""
    tokenizer = train_tokenizer(texts, vocab_size)
    model = build_model(tokenizer, seed=seed, **model_kwargs)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512}


def tiny_like(name: str, folder: Path, *, model_type: str | None, tokenizer_path: str | None,
              chat: bool = False) -> str:
    """The architecture of `name` at a tiny size with random weights, saved with a tokenizer, for dry runs.

    The config comes from `name` when it is readable offline (a local folder or the HF cache), else from
    `model_type` (mistral, qwen2, llama, ...); the tokenizer from `tokenizer_path` or $JPO_DRY_RUN_TOKENIZER, else
    from the model. `chat`: give the tokenizer a stand-in chat template when it has none."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        values = AutoConfig.from_pretrained(name, local_files_only=True).to_dict()
    except (OSError, ValueError):
        if not model_type:
            raise JpoError(f"dry run: cannot read the config of {name!r} offline; set dry_run.model_type "
                           "(e.g. mistral, qwen2) in the recipe") from None
        values = {"model_type": model_type}
    source = tokenizer_path or os.environ.get("JPO_DRY_RUN_TOKENIZER") or name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        raise JpoError(f"dry run: cannot load a tokenizer from {source!r} offline; pass --dry-run-tokenizer DIR "
                       "or set $JPO_DRY_RUN_TOKENIZER") from None
    if chat and tokenizer.chat_template is None:  # a stand-in for the real one
        tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                                   "{% if add_generation_prompt %}assistant:{% endif %}")
    values.update(TINY, vocab_size=len(tokenizer), tie_word_embeddings=True)
    values.pop("layer_types", None)  # per-layer lists are rebuilt for the tiny depth
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        values[key] = getattr(tokenizer, key, None)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # Reloaded beside the config, the tokenizer is what training will see: transformers may swap in the
    # architecture's own tokenizer class (Qwen2 adds a pad token), so the vocabulary is sized from the reload.
    reloaded = AutoTokenizer.from_pretrained(folder)
    config.vocab_size = max(len(tokenizer), len(reloaded))
    config.pad_token_id = reloaded.pad_token_id
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    return str(folder)
