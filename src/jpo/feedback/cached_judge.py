"""`verdicts:PATH[#RUN]` -- a judge that answers from the JPO authors' cached verdict files.

The authors released the ChatGPT verdicts behind their Table 5 win-rates (`verdicts/master.json` for TL;DR,
`master_helpful.json` for Anthropic-Helpful): `{run: {key: verdict}}`, where a key is
`INSTRUCTION<SEP><SEP><SEP><SEP>GOLD<SEP><SEP><SEP><SEP>OUTPUT` -- the instruction as the model saw it (wrapped in
their template), the gold response, the model's output -- and the verdict names the side the judge preferred:
`model`, `gold` or `equal`. With this judge `jpo evaluate` recomputes their win-rates from their files, through
the same pairing, order-swap and scoring as any other judge.

A question is answered when its two responses are a (gold, output) pair of the file, in either position, and its
instruction occurs in the key's instruction (ours is the reference file's clean text, theirs carries the
template). Anything else is invalid with the reason "not in the cached verdicts", never guessed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from jpo.errors import DataError, JpoError
from jpo.feedback.base import JudgeOptions, Question, SyncJudge, Verdict
from jpo.feedback.templates import render_text

SEPARATOR = "<SEP><SEP><SEP><SEP>"
# The side each verdict prefers, as the choice of a question that shows the model's output first (`a`).
MODEL_FIRST = {"model": "a", "gold": "b", "equal": "tie"}
_SWAP = {"a": "b", "b": "a", "tie": "tie"}


class CachedVerdictsJudge(SyncJudge):
    """Answers from `{(gold, output): [(instruction, verdict), ...]}` built from one run of a verdict file."""

    batch_size = 1024

    def __init__(self, verdicts: dict[str, str], name: str) -> None:
        self.index: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for key, verdict in verdicts.items():
            parts = key.split(SEPARATOR)
            if len(parts) != 3 or verdict not in MODEL_FIRST:
                raise JpoError(f"{name}: expected keys INSTRUCTION{SEPARATOR}GOLD{SEPARATOR}OUTPUT with verdicts "
                               f"model | gold | equal, got {key[:60]!r}: {verdict!r}")
            instruction, gold, output = parts
            self.index.setdefault((gold, output), []).append((instruction, verdict))
        self.id = f"verdicts:{name}"

    @classmethod
    def from_spec(cls, argument: str | None, options: JudgeOptions) -> CachedVerdictsJudge:
        if not argument:
            raise JpoError("the verdicts judge needs a file: --judge verdicts:PATH[#RUN]")
        path, _, run = argument.partition("#")
        try:
            raw = Path(path).read_bytes()
            data = json.loads(raw)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read cached verdicts: {error}", path=path) from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()) or not data:
            raise DataError("expected cached verdicts {run: {key: verdict}}", path=path)
        if not run:
            if len(data) > 1:
                raise JpoError(f"{path} holds several runs ({', '.join(data)}): pick one with verdicts:PATH#RUN")
            run = next(iter(data))
        if run not in data:
            raise JpoError(f"{path} has no run {run!r} (runs: {', '.join(data)})")
        digest = hashlib.sha256(raw).hexdigest()[:8]  # part of the id: a changed file is another judge to the store
        return cls(data[run], f"{Path(path).name}#{run}@{digest}")

    def answer(self, question: Question) -> Verdict:
        prompt = render_text(question.prompt_a).strip()
        a, b = render_text(question.response_a), render_text(question.response_b)
        if question.prompt_a == question.prompt_b:
            for (gold, output), flip in (((b, a), False), ((a, b), True)):  # the output shown first, or second
                for instruction, verdict in self.index.get((gold, output), ()):
                    if prompt in instruction:
                        choice = MODEL_FIRST[verdict]
                        return Verdict(_SWAP[choice] if flip else choice, raw=verdict)
        return Verdict(None, error="not in the cached verdicts (no entry with this instruction, gold and output)")

    def answer_batch_sync(self, questions: Sequence[Question]) -> list[Verdict]:
        return [self.answer(question) for question in questions]
