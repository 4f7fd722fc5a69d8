"""The one interface every judge backend implements.

A backend answers *one order* of a comparison: "is (prompt_a, response_a) or (prompt_b, response_b) better?". It
never sees item ids, never swaps orders, never caches and never decides what a flip means: the shared runner
(`jpo.feedback.runner`) does that identically for every backend, so an API judge, a local LM, a reward model and
the synthetic oracle cannot disagree on the protocol, only on the answers.

Concurrency is the runner's job too. A backend states how many questions it wants per call (`batch_size`) and how
many calls may be in flight at once (`max_concurrency`): an HTTP judge asks for 1 x N, a local model for 32 x 1.
`answer_batch` is a coroutine; local backends subclass `SyncJudge` and write plain synchronous code, which the
runner runs in a worker thread so the event loop (and the store writes) keep going.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from jpo.data.formats import Text
from jpo.errors import JpoError

Choice = Literal["a", "b", "tie"]
CHOICES: tuple[str, ...] = ("a", "b", "tie")


@dataclass(frozen=True)
class Question:
    """One order of one comparison item, exactly as the judge will see it (position a is shown first)."""

    prompt_a: Text
    response_a: Text
    prompt_b: Text
    response_b: Text

    @property
    def conditional(self) -> bool:
        """Equal prompts: "which response to this instruction is better" (paper Fig. 13) rather than joint (Fig. 14)."""
        return self.prompt_a == self.prompt_b

    def swapped(self) -> Question:
        return Question(self.prompt_b, self.response_b, self.prompt_a, self.response_a)

    def fingerprint(self) -> str:
        """Content hash of the four texts in this order; part of the verdict store's key."""
        payload = json.dumps(
            [self.prompt_a, self.response_a, self.prompt_b, self.response_b], ensure_ascii=False, sort_keys=True
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Usage:
    """Tokens billed for one answer (all attempts included); zero for local backends."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass
class Verdict:
    """A judge's answer to one Question.

    `choice` is None when no usable answer was obtained; `error` then says why (e.g. "unparseable: 'I think both'",
    "HTTP 500 after 6 attempts"). `received` tells a final answer from the model (store it, never pay for it again;
    an unparseable reply counts as received) from a transport failure (not stored, so a rerun asks again).
    `detail` holds backend-specific evidence worth keeping in the output rows (log-probs, reward scores).
    """

    choice: Choice | None
    raw: str = ""
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: int = 1
    received: bool = True
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.choice is not None and self.choice not in CHOICES:
            raise ValueError(f"Verdict.choice must be one of {CHOICES} or None, got {self.choice!r}")
        if self.choice is None and not self.error:
            raise ValueError("a Verdict without a choice must say why in `error`")


@dataclass
class JudgeOptions:
    """Everything a backend can be told; each backend reads the fields it needs. Declared once: these fields are the
    judge flags of `jpo judge` / `jpo evaluate` (`jpo.config.add_options`) and the keys of a recipe's `judge`
    section (`jpo.runner.recipe.JudgeSection` extends this class)."""

    base_url: str | None = field(default=None, metadata={
        "help": "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, Ollama)"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the API key"})
    # never a flag or a recipe key (a secret would end up in shell history and manifests): Python callers only
    api_key: str | None = field(default=None, metadata={"internal": True})
    concurrency: int = field(default=16, metadata={"help": "requests in flight at once (API judges)"})
    request_timeout: float = field(default=60.0, metadata={"help": "seconds per request"})
    max_retries: int = field(default=5, metadata={"help": "retries per question (429, 5xx, timeouts, unparseable)"})
    # seconds; the n-th retry waits up to backoff_base * 2**n (full jitter)
    backoff_base: float = field(default=1.0, metadata={"internal": True})
    backoff_max: float = field(default=60.0, metadata={"internal": True})
    max_tokens: int = field(default=16, metadata={"help": "answer length limit for API judges"})
    template: str | None = field(default=None, metadata={
        "help": "prompt template file (.txt, or .json/.yaml with system/conditional/joint)"})
    batch_size: int = field(default=16, metadata={"help": "questions per forward pass (hf:, rm:)"})
    device: str | None = field(default=None, metadata={
        "help": "torch device for hf:/rm: judges (default: cuda if available, else cpu)"})
    tie_margin: float = field(default=0.0, metadata={"help": "score difference below which hf:/rm: judges answer tie"})
    price_in: float | None = field(default=None, metadata={"help": "USD per million prompt tokens (cost estimate)"})
    price_out: float | None = field(default=None, metadata={
        "help": "USD per million completion tokens (cost estimate)"})
    extra: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})

    def __post_init__(self) -> None:
        """Out-of-range options fail where they are given (flag or recipe key), not as a hung pool or a judge that
        never answers tie; JpoError naming the option."""
        for name in ("concurrency", "max_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise JpoError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_retries", "tie_margin", "price_in", "price_out"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise JpoError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.request_timeout <= 0:
            raise JpoError(f"request_timeout must be positive (seconds), got {self.request_timeout}")

    def options(self) -> JudgeOptions:
        """The options alone, without what a subclass adds (a recipe section's judge spec, ...)."""
        return JudgeOptions(**{f.name: getattr(self, f.name) for f in fields(JudgeOptions)})


class Judge(ABC):
    """A comparison judge.

    `id` names the judge's *behaviour* (backend + model/path + anything that changes answers) and goes into cache
    keys and output rows; `template_version` is a short hash of the prompt text used ("" when there is none). Two
    judges with the same (id, template_version) must give the same answer to the same Question.
    """

    id: str
    template_version: str = ""
    batch_size: int = 1
    max_concurrency: int = 1

    @classmethod
    @abstractmethod
    def from_spec(cls, argument: str | None, options: JudgeOptions) -> Judge:
        """Build from the part of `--judge` after the colon (`openai:gpt-4o` -> "gpt-4o"; `oracle` -> None)."""

    @classmethod
    def check_spec(cls, argument: str | None) -> None:
        """Raise JpoError where `argument` cannot make this judge, without building it (a recipe is checked when it
        is read, before anything runs). The default checks nothing: building a model-backed judge would load the
        model; a judge whose options are parsed from the argument overrides this."""
        return None

    @abstractmethod
    async def answer_batch(self, questions: Sequence[Question]) -> list[Verdict]:
        """One Verdict per Question, same order. Must not raise for a single bad answer: return Verdict(None, error=...)."""

    async def aclose(self) -> None:
        """Release connections / models; the runner calls it once at the end."""
        return None

    def cost_summary(self) -> str | None:
        """A one-line account of tokens and money spent, if the backend pays for anything."""
        return None


class SyncJudge(Judge):
    """Base for local backends whose work is synchronous (a model forward pass, a Python function)."""

    batch_size = 32
    max_concurrency = 1

    @abstractmethod
    def answer_batch_sync(self, questions: Sequence[Question]) -> list[Verdict]:
        """One Verdict per Question, same order."""

    async def answer_batch(self, questions: Sequence[Question]) -> list[Verdict]:
        return await asyncio.to_thread(self.answer_batch_sync, questions)
