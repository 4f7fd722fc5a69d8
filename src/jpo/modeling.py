"""The modeling layer under training, feedback and evaluation: loading models and tokenizers, the pad-token rule,
the device, turning text into token ids, and padding.

Every stage that runs a model goes through these few functions so that a prompt is tokenized the same way when a
model is trained on it, judged with it and evaluated on it, and a model that cannot be loaded fails with one line
naming it, whichever stage loads it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from jpo.errors import JpoError

logger = logging.getLogger(__name__)

# A prompt template that makes rows conversational (a user turn, an assistant turn) for the tokenizer's template.
CHAT = "chat"


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    _exists_if_a_path(name, "a tokenizer")
    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise JpoError(f"cannot load a tokenizer from {name!r}: {_first_line(error)}") from None


def _exists_if_a_path(name: str, what: str) -> None:
    """A name written as a path (absolute, ./, ../ or ~) that is not there: said as such, not as the Hub's complaint
    about an invalid repo id."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise JpoError(f"cannot load {what} from {name!r}: no such file or folder")


def load_model(name: str, auto_class=None, *, what: str = "a causal LM", **kwargs: Any):
    """`auto_class.from_pretrained(name, **kwargs)`, AutoModelForCausalLM by default."""
    from transformers import AutoModelForCausalLM

    if not name:
        raise JpoError("--model_name_or_path is required")
    _exists_if_a_path(name, what)
    try:
        return (auto_class or AutoModelForCausalLM).from_pretrained(name, **kwargs)
    except (OSError, ValueError) as error:
        raise JpoError(f"cannot load {what} from {name!r}: {_first_line(error)}") from None


def tokenizer_source(path: str) -> str:
    """Where the tokenizer of a model folder lives: the folder, or an adapter's base model when it has none."""
    folder = Path(path)
    adapter = folder / "adapter_config.json"
    if adapter.exists() and not (folder / "tokenizer_config.json").exists():
        return json.loads(adapter.read_text())["base_model_name_or_path"]
    return path


def ensure_pad_token(tokenizer) -> None:
    """Pad with EOS when the tokenizer has no pad token (as TRL does); padded positions are masked out anyway."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise JpoError("the tokenizer has neither a pad token nor an EOS token; set tokenizer.pad_token")
        tokenizer.pad_token = tokenizer.eos_token


def context_length(model) -> int | None:
    """How many positions the model takes (its config's max_position_embeddings, n_positions or
    max_sequence_length); None where the config does not say."""
    config = getattr(model, "config", None)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_max_length(max_length: int | None, model) -> int | None:
    """`max_length` (None: no limit), capped at the model's context with one log line where it is beyond it:
    positions past the context index past the position table, or run a RoPE model where it was never trained."""
    limit = context_length(model)
    if limit is None or (max_length is not None and max_length <= limit):
        return max_length
    logger.warning("--max_length %s is beyond the model's context of %d positions (config.max_position_embeddings): "
                   "capped at %d", "unset" if max_length is None else max_length, limit, limit)
    return limit


def padded_width(width: int, multiple_of: int | None) -> int:
    """`width` rounded up to a multiple of `multiple_of` (unchanged for None)."""
    return width if not multiple_of else -(-width // multiple_of) * multiple_of


def check_attention_trains(model, device: Any) -> None:
    """JpoError where the model's attention implementation cannot be trained on `device` (a torch.device or its
    name): torch's FlexAttention has no backward pass on CPU, which otherwise fails inside the first step."""
    if getattr(model.config, "_attn_implementation", None) == "flex_attention" and str(device).startswith("cpu"):
        raise JpoError("attn_implementation 'flex_attention' cannot train on CPU (torch's FlexAttention has no "
                       "backward there): load the model with attn_implementation='sdpa' or 'eager' "
                       "(model_init_kwargs={\"attn_implementation\": \"sdpa\"})")


def pick_device(requested: str | None = None) -> str:
    import torch

    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def is_conversational(text: Any) -> bool:
    return isinstance(text, list)


def encode_text(tokenizer, text: Any, *, generation_prompt: bool = False, **template_kwargs: Any) -> list[int]:
    """Token ids of a plain-text prompt (with the tokenizer's special tokens, e.g. BOS) or of a conversation (through
    the tokenizer's chat template, with the assistant's generation prompt when `generation_prompt`).

    A BOS the text already carries is not added twice: plain text that starts with the tokenizer's BOS string is
    tokenized as the text without it where the tokenizer adds BOS itself (so ``"<s>### Instruction"`` and
    ``"### Instruction"`` give the same ids, whether or not the tokenizer parses special tokens in text), and a
    conversation whose template renders a BOS the tokenizer then adds again keeps one.

    `template_kwargs` go to the chat template (a row's ``tools`` and ``chat_template_kwargs``, as TRL passes them)."""
    bos, bos_id = tokenizer.bos_token, tokenizer.bos_token_id
    if is_conversational(text):
        if tokenizer.chat_template is None:
            raise JpoError("conversational data needs a tokenizer with a chat template; this tokenizer has none "
                           "(give one with --chat_template_path)")
        out = tokenizer.apply_chat_template(text, tokenize=True, return_dict=True,
                                            add_generation_prompt=generation_prompt, **template_kwargs)
        ids = list(out["input_ids"])
    else:
        ids = None
        if bos and bos_id is not None and text.startswith(bos):
            stripped = text
            while stripped.startswith(bos):
                stripped = stripped[len(bos):]
            without = list(tokenizer(stripped)["input_ids"])
            if without[:1] == [bos_id]:  # the tokenizer adds BOS itself: the text's BOS is that one
                ids = without
        if ids is None:
            ids = list(tokenizer(text)["input_ids"])
    while bos_id is not None and ids[:2] == [bos_id, bos_id]:
        ids = ids[1:]
    return ids


def set_chat_template(tokenizer, path: str | None) -> None:
    """Give `tokenizer` the chat template at `path` (TRL's ``chat_template_path``): a Jinja file, or a tokenizer
    folder or hub name whose template to copy. Nothing happens for None; one line where neither exists."""
    if not path:
        return
    if Path(path).is_file():
        tokenizer.chat_template = Path(path).read_text(encoding="utf-8")
        return
    template = load_tokenizer(path).chat_template
    if not template:
        raise JpoError(f"--chat_template_path {path!r}: the tokenizer there has no chat template")
    tokenizer.chat_template = template


def pad(seqs: list[list[int]], value: int, side: str = "right", multiple_of: int | None = None):
    """A [len(seqs), longest] long tensor (longest rounded up to `multiple_of` where given); `side="left"` for
    generation, where decoders continue from the end."""
    import torch

    width = padded_width(max(len(s) for s in seqs), multiple_of)
    if side == "left":
        return torch.tensor([[value] * (width - len(s)) + list(s) for s in seqs], dtype=torch.long)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def apply_template(rows: list[dict[str, Any]], template: str | None, kind: str) -> list[dict[str, Any]]:
    """Wrap every prompt in the model's template (e.g. AUTHORS_TEMPLATE); responses get the leading space the
    authors' template expects after "### Response:" so that tokenization matches their models. The template
    `chat` instead makes rows conversational (a user turn, an assistant turn), for the tokenizer's chat template."""
    from jpo.data.formats import text_of

    if not template:
        return rows
    if template != CHAT and "{prompt}" not in template:
        raise JpoError(f"a prompt template needs a {{prompt}} placeholder (or is 'chat'): {template!r}")
    prompt_fields = {"sft": ("prompt",), "prompts": ("prompt",), "preference": ("prompt_chosen", "prompt_rejected"),
                     "unpaired": ("prompt",)}[kind]
    response_fields = {"sft": ("response",), "prompts": (), "preference": ("chosen", "rejected"),
                       "unpaired": ("completion",)}[kind]
    spaced = template.endswith(":")
    out = []
    for row in rows:
        new = dict(row)
        for f in prompt_fields:
            if not isinstance(new[f], str):
                raise JpoError("a prompt template applies to plain-text prompts; conversational rows use the "
                               "tokenizer's chat template instead (leave prompt_template unset)")
            new[f] = [{"role": "user", "content": new[f]}] if template == CHAT else template.replace("{prompt}", new[f])
        for f in response_fields:
            if template == CHAT:
                new[f] = [{"role": "assistant", "content": text_of(new[f])}]
            elif spaced and isinstance(new[f], str) and new[f] and not new[f][0].isspace():
                new[f] = " " + new[f]
        out.append(new)
    return out
