"""Turning (prompt, response) into token ids the way TRL's trainers do, with explicit truncation.

Plain text (as TRL's DPOTrainer): the EOS token is appended to the response text unless it already ends with it;
``prompt`` and ``prompt + response`` are each tokenized with the tokenizer's special tokens (so BOS where the
tokenizer adds one), and the response starts where the two token lists stop agreeing (a token can merge across the
boundary). Conversational prompts (lists of messages) go through the tokenizer's chat template: the prompt with the
generation prompt, the whole conversation without; the template's own end-of-turn tokens close the response.

Which tokens count (see logprobs.py): position 0 is never a target, since nothing precedes it; the remaining prompt
tokens (chat-template scaffolding included, because the model must produce them too for log p(I) to be a
probability of the text it is conditioned on) form the prompt part; the response tokens and EOS form the response
part.

Truncation is the same whichever scope is trained, and never removes the final token (EOS):
``keep_start`` (TRL's default name) keeps the prompt and the start of the response, then EOS;
``keep_end`` drops the oldest prompt tokens (after BOS) first, then the end of the response, keeping EOS.
``max_prompt_length`` first shortens long prompts from the left (keeping BOS). A row that cannot fit (no room for one
response token plus EOS) is not trained on and is counted in `EncodeReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jpo.errors import JpoError
from jpo.modeling import encode_text, ensure_pad_token, is_conversational

TRUNCATION_MODES = ("keep_start", "keep_end")


@dataclass
class Encoded:
    """One tokenized sequence: ``input_ids[:prompt_len]`` is the prompt (with BOS), the rest response + EOS."""

    input_ids: list[int]
    prompt_len: int


@dataclass
class EncodeReport:
    rows: int = 0
    truncated: int = 0  # rows where at least one sequence lost tokens
    dropped: int = 0  # rows that cannot fit and are not trained on
    dropped_indices: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.rows} rows: {self.rows - self.dropped} used, {self.truncated} truncated, "
                f"{self.dropped} dropped (prompt leaves no room for a response within max_length)")


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(tokenizer, prompt: Any, responses: list[Any],
                  template_kwargs: dict[str, Any] | None = None) -> tuple[list[int], list[list[int]]]:
    """Prompt ids and, for each response, the ids of ``prompt + response (+ EOS)``, sharing one prompt boundary.

    With several responses to the same prompt (a conditional pair) the boundary is the shortest common prefix over
    all of them, as TRL computes it, so chosen and rejected see the same prompt tokens. `template_kwargs` (a row's
    ``tools`` and ``chat_template_kwargs``) go to the chat template of conversational rows.
    """
    template_kwargs = template_kwargs or {}
    prompt_ids = encode_text(tokenizer, prompt, generation_prompt=True, **template_kwargs)
    fulls = []
    for response in responses:
        if is_conversational(prompt) != is_conversational(response):
            raise JpoError("a prompt and its response must both be text or both be lists of chat messages")
        if is_conversational(prompt):
            full = encode_text(tokenizer, list(prompt) + list(response), **template_kwargs)
        else:
            eos = tokenizer.eos_token
            text = response if response.endswith(eos) else response + eos
            full = encode_text(tokenizer, prompt + text)
            if full[-1] != tokenizer.eos_token_id:  # tokenizers that do not parse special tokens in text
                full.append(tokenizer.eos_token_id)
        fulls.append(full)
    boundary = min(_common_prefix(prompt_ids, full) for full in fulls)
    return prompt_ids[:boundary], fulls


def truncate(
    ids: list[int],
    prompt_len: int,
    *,
    max_length: int | None,
    max_prompt_length: int | None,
    truncation_mode: str,
    has_bos: bool,
) -> Encoded | None:
    """Fit one sequence into the limits, keeping BOS and the final token; None when it cannot fit."""
    keep_head = 1 if has_bos else 0
    prompt, response = ids[:prompt_len], ids[prompt_len:]
    if max_prompt_length is not None and len(prompt) > max_prompt_length:
        tail = max_prompt_length - keep_head
        if tail < 1:
            return None
        prompt = prompt[:keep_head] + prompt[len(prompt) - tail:]
    if max_length is not None and len(prompt) + len(response) > max_length:
        if truncation_mode == "keep_end":
            excess = len(prompt) + len(response) - max_length
            removable = max(len(prompt) - keep_head - 1, 0)  # keep at least one prompt token after BOS
            cut = min(excess, removable)
            prompt = prompt[:keep_head] + prompt[keep_head + cut:]
        room = max_length - len(prompt)
        if room < 2:  # one response token and EOS
            return None
        if len(response) > room:
            response = response[: room - 1] + response[-1:]
    return Encoded(input_ids=prompt + response, prompt_len=len(prompt))


class Encoder:
    """Tokenization settings for one run; also part of the reference log-prob cache key (`settings`)."""

    def __init__(self, tokenizer, *, max_length: int | None, max_prompt_length: int | None = None,
                 truncation_mode: str = "keep_start", max_completion_length: int | None = None) -> None:
        if truncation_mode not in TRUNCATION_MODES:
            raise JpoError(f"--truncation_mode must be one of {', '.join(TRUNCATION_MODES)}, not {truncation_mode!r}")
        if max_length is not None and max_length < 3:
            raise JpoError(f"--max_length {max_length} leaves no room for BOS, a response token and EOS")
        ensure_pad_token(tokenizer)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_prompt_length = max_prompt_length
        self.truncation_mode = truncation_mode
        self.max_completion_length = max_completion_length
        self.has_bos = tokenizer.bos_token_id is not None and bool(tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id])

    @property
    def settings(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.name_or_path, "vocab": len(self.tokenizer),
                "max_length": self.max_length, "max_prompt_length": self.max_prompt_length,
                "truncation_mode": self.truncation_mode, "max_completion_length": self.max_completion_length}

    def encode(self, prompt: Any, responses: list[Any],
               template_kwargs: dict[str, Any] | None = None) -> tuple[list[Encoded | None], bool]:
        """Each response with `prompt`, truncated; the flag says whether any sequence lost tokens."""
        prompt_ids, fulls = tokenize_pair(self.tokenizer, prompt, responses, template_kwargs)
        out, truncated = [], False
        for full in fulls:
            length = len(full)
            if self.max_completion_length is not None and len(full) - len(prompt_ids) > self.max_completion_length:
                keep = len(prompt_ids) + self.max_completion_length - 1
                full = full[:keep] + full[-1:]  # the response's start, then its final token (EOS)
            enc = truncate(full, len(prompt_ids), max_length=self.max_length,
                           max_prompt_length=self.max_prompt_length, truncation_mode=self.truncation_mode,
                           has_bos=self.has_bos)
            truncated |= enc is None or len(enc.input_ids) < length
            out.append(enc)
        return out, truncated
