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

Special tokens the text already carries are not added again: a plain-text prompt that starts with the tokenizer's BOS
string (``"<s>### Instruction: ..."``) is tokenized as the same text without it (the tokenizer adds the one BOS),
and a response that ends with the EOS string gets no second EOS (see `jpo.modeling.encode_text`). A BOS or EOS
string elsewhere in the text may be meant (multi-turn text) or not; it is kept, and the rows are named in
`EncodeReport.special_token_rows` so the trainer can say so once.

Truncation is the same whichever scope is trained, and never removes the final token (EOS):
``keep_start`` (TRL's default name) keeps the prompt and the start of the response, then EOS;
``keep_end`` drops the oldest prompt tokens (after BOS) first, then the end of the response, keeping EOS.
``max_prompt_length`` first shortens long prompts from the left (keeping BOS). A row that cannot fit (no room for one
response token plus EOS) is not trained on and is counted in `EncodeReport`.

The responses of one prompt (the two sides of a pair with equal prompts) are truncated together (`truncate_group`):
the prompt is cut once, as the longest response needs, so both sides keep the same prompt tokens in every mode and
the pair stays a pair with equal prompts (Lemma D.1: JPO is DPO on it), whatever the lengths.
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


# Why a row is left out of training (the `skip` column of the encoded data); "" = trained on.
LENGTH, IDENTICAL, IDENTICAL_TRUNCATED, UNDESIRABLE = "length", "identical", "identical_truncated", "undesirable"


@dataclass
class EncodeReport:
    """What tokenization did to a dataset: every row left out is counted here, by reason (indices are of the input
    rows, 0-based)."""

    rows: int = 0
    truncated: int = 0  # rows used where at least one sequence lost tokens
    dropped: int = 0  # rows that cannot fit and are not trained on
    dropped_indices: list[int] = field(default_factory=list)
    # Pairs whose chosen and rejected are the same token sequence: as text, or only once truncated (long responses
    # that differ only at the end). Their margin is 0 whatever the model: a constant ln 2 that trains nothing.
    identical: int = 0
    identical_after_truncation: int = 0  # of `identical`, those that differ as text
    identical_indices: list[int] = field(default_factory=list)
    undesirable: int = 0  # SFT on labelled (KTO) rows: the rows labelled undesirable, not trained on
    special_token_rows: list[int] = field(default_factory=list)  # BOS/EOS strings inside the text, kept as tokens

    @property
    def used(self) -> int:
        return self.rows - self.dropped - self.identical - self.undesirable

    def summary(self) -> str:
        text = f"{self.rows} rows: {self.used} used, {self.truncated} truncated, {self.dropped} dropped"
        if self.dropped:
            text += " (prompt leaves no room for a response within max_length)"
        if self.identical:
            after = (f", {self.identical_after_truncation} of them only after truncation"
                     if self.identical_after_truncation else "")
            text += f", {self.identical} identical pairs dropped (chosen = rejected{after})"
        if self.undesirable:
            text += f", {self.undesirable} undesirable rows (label false) left out of SFT"
        return text

    def warnings(self, name: str) -> list[str]:
        """The lines a trainer logs about `name` data: the summary where rows were left out, and one line naming the
        rows whose text carries the BOS or EOS string inside."""
        lines = [f"{name} data: {self.summary()}"] if self.rows - self.used else []
        rows = self.special_token_rows
        if not rows:
            return lines
        shown = ", ".join(str(i + 1) for i in rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        return [*lines, f"{name} data: {len(rows)} rows carry the tokenizer's BOS or EOS string inside their text "
                        f"(rows {shown}); it is tokenized as that special token, once, where it stands"]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _strip_eos(tokenizer, response: Any) -> Any:
    """The response without a trailing EOS string (plain text, or the last message's content): the EOS is added
    as a token, once."""
    eos = tokenizer.eos_token
    if not eos:
        return response
    if is_conversational(response):
        if not response or not isinstance(response[-1].get("content"), str):
            return response
        return [*response[:-1], {**response[-1], "content": _strip_eos(tokenizer, response[-1]["content"])}]
    while response.endswith(eos):
        response = response[: -len(eos)]
    return response


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
        response = _strip_eos(tokenizer, response)
        if is_conversational(prompt):
            full = encode_text(tokenizer, list(prompt) + list(response), **template_kwargs)
        else:
            # EOS as text, as TRL appends it (so the last word tokenizes as before a special token), then as a
            # token where the tokenizer does not parse special tokens in text.
            full = encode_text(tokenizer, prompt + response + tokenizer.eos_token)
            if full[-1] != tokenizer.eos_token_id:
                full = encode_text(tokenizer, prompt + response) + [tokenizer.eos_token_id]
        fulls.append(full)
    boundary = min(_common_prefix(prompt_ids, full) for full in fulls)
    return prompt_ids[:boundary], fulls


def _fit_prompt(prompt: list[int], longest: int, *, max_length: int | None, max_prompt_length: int | None,
                truncation_mode: str, keep_head: int) -> list[int] | None:
    """The prompt as every response of it keeps it: cut by `max_prompt_length`, then (keep_end) as the longest
    response (`longest` tokens, EOS included) needs to fit `max_length`; None when it cannot fit."""
    if max_prompt_length is not None and len(prompt) > max_prompt_length:
        tail = max_prompt_length - keep_head
        if tail < 1:
            return None
        prompt = prompt[:keep_head] + prompt[len(prompt) - tail:]
    if max_length is not None and truncation_mode == "keep_end" and len(prompt) + longest > max_length:
        excess = len(prompt) + longest - max_length
        removable = max(len(prompt) - keep_head - 1, 0)  # keep at least one prompt token after BOS
        cut = min(excess, removable)
        prompt = prompt[:keep_head] + prompt[keep_head + cut:]
    return prompt


def truncate_group(
    prompt: list[int],
    responses: list[list[int]],
    *,
    max_length: int | None,
    max_prompt_length: int | None,
    truncation_mode: str,
    has_bos: bool,
) -> list[Encoded | None]:
    """Fit ``prompt + response`` for each of `responses` (each ending with EOS) into the limits with one shared
    prompt cut, keeping BOS and each final token. Either every response fits or none (None each): the room left by
    the shared prompt is the same for all."""
    fitted = _fit_prompt(prompt, max(len(r) for r in responses), max_length=max_length,
                         max_prompt_length=max_prompt_length, truncation_mode=truncation_mode,
                         keep_head=1 if has_bos else 0)
    if fitted is None:
        return [None] * len(responses)
    out: list[Encoded | None] = []
    for response in responses:
        if max_length is not None and len(fitted) + len(response) > max_length:
            room = max_length - len(fitted)
            if room < 2:  # one response token and EOS
                return [None] * len(responses)
            response = response[: room - 1] + response[-1:]
        out.append(Encoded(input_ids=fitted + response, prompt_len=len(fitted)))
    return out


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
    return truncate_group(ids[:prompt_len], [ids[prompt_len:]], max_length=max_length,
                          max_prompt_length=max_prompt_length, truncation_mode=truncation_mode, has_bos=has_bos)[0]


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
        # "encoding": bumped when the same rows come to mean other numbers in a cached reference (2: equal prompts
        # truncated together, their prompt terms computed once for both sides).
        return {"encoding": 2, "tokenizer": self.tokenizer.name_or_path, "vocab": len(self.tokenizer),
                "max_length": self.max_length, "max_prompt_length": self.max_prompt_length,
                "truncation_mode": self.truncation_mode, "max_completion_length": self.max_completion_length}

    def encode(self, prompt: Any, responses: list[Any],
               template_kwargs: dict[str, Any] | None = None) -> tuple[list[Encoded | None], bool]:
        """Each response with `prompt` (`template_kwargs`: see `tokenize_pair`), each response first cut to
        `max_completion_length` (its start, then its final token), then truncated together (one prompt cut for all:
        see `truncate_group`); the flag says whether any sequence lost tokens."""
        prompt_ids, fulls = tokenize_pair(self.tokenizer, prompt, responses, template_kwargs)
        boundary = len(prompt_ids)
        completions = [full[boundary:] for full in fulls]
        cap = self.max_completion_length
        if cap is not None:
            completions = [c[: cap - 1] + c[-1:] if len(c) > cap else c for c in completions]
        out = truncate_group(prompt_ids, completions, max_length=self.max_length,
                             max_prompt_length=self.max_prompt_length, truncation_mode=self.truncation_mode,
                             has_bos=self.has_bos)
        truncated = any(enc is None or len(enc.input_ids) < len(full) for enc, full in zip(out, fulls, strict=True))
        return out, truncated

    def special_inside(self, *texts: Any) -> bool:
        """Whether any text carries the BOS or EOS string other than a leading BOS / trailing EOS (which encoding
        takes as the one BOS / EOS): inside multi-turn text it may be meant, so it is kept and reported."""
        specials = [t for t in (self.tokenizer.bos_token, self.tokenizer.eos_token) if t]
        for text in texts:
            parts = [m.get("content") for m in text] if is_conversational(text) else [text]
            for part in parts:
                if not isinstance(part, str):
                    continue
                part = _strip_eos(self.tokenizer, part)
                bos = self.tokenizer.bos_token
                while bos and part.startswith(bos):
                    part = part[len(bos):]
                if any(s in part for s in specials):
                    return True
        return False
