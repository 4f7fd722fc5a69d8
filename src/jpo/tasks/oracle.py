"""The synthetic task's judge: answers from the known quality score q, optionally with annotator noise.

It lives with the task and registers itself with `jpo.feedback`'s registry (see `jpo.tasks`), so the judges'
package never depends on the task it happens to be tested on.

`--judge oracle` is exact: the higher q wins, |q_a - q_b| <= margin is a tie. `--judge oracle:temperature=T,seed=S`
is a noisy annotator: outside the margin it picks (a) with the Bradley-Terry probability sigmoid((q_a - q_b) / T).
The noise is a deterministic function of (seed, question), so the judge keeps the contract that the same question
gets the same answer (the verdict store relies on it), while the two orders of one item are independent draws, so a
noisy oracle flips with position -- and the shared runner turns that flip into a tie, exactly as for a real judge.
Two oracles with different seeds are two independent annotators; the demo measures how often they agree.

Spec keys (comma-separated `key=value` after the colon): `temperature` (0 = exact), `seed`, `margin` (defaults to
`--tie_margin`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from jpo.data import text_of
from jpo.errors import JpoError
from jpo.feedback.base import JudgeOptions, Question, SyncJudge, Verdict
from jpo.tasks.quality import quality

KEYS = ("temperature", "seed", "margin")


def _uniform(seed: int, question: Question) -> float:
    """A uniform number in [0, 1) fixed by the seed and the question's texts in their order."""
    digest = hashlib.sha256(f"{seed}:{question.fingerprint()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class OracleJudge(SyncJudge):
    """Judges by q(prompt, response) from `jpo.tasks`; see the module doc for the noise model."""

    batch_size = 256

    def __init__(self, temperature: float = 0.0, seed: int = 0, margin: float = 0.0) -> None:
        if temperature < 0 or margin < 0:
            raise JpoError(f"oracle temperature and margin must be >= 0 (got {temperature}, {margin})")
        self.temperature, self.seed, self.margin = temperature, seed, margin
        self.id = (f"oracle(margin={margin:g})" if temperature == 0
                   else f"oracle(temperature={temperature:g},seed={seed},margin={margin:g})")

    @classmethod
    def from_spec(cls, argument: str | None, options: JudgeOptions) -> OracleJudge:
        values: dict[str, float] = {"margin": options.tie_margin}
        for part in filter(None, (argument or "").split(",")):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in KEYS:
                raise JpoError(f"bad oracle option {part!r}: expected key=value with key in {', '.join(KEYS)}")
            try:
                values[key] = float(value)
            except ValueError:
                raise JpoError(f"oracle option {key} must be a number, got {value!r}") from None
        return cls(temperature=values.get("temperature", 0.0), seed=int(values.get("seed", 0)),
                   margin=values["margin"])

    @classmethod
    def check_spec(cls, argument: str | None) -> None:
        cls.from_spec(argument, JudgeOptions())  # cheap: parses the options, loads nothing

    def answer(self, question: Question) -> Verdict:
        try:
            q_a = quality(text_of(question.prompt_a), text_of(question.response_a))
            q_b = quality(text_of(question.prompt_b), text_of(question.response_b))
        except ValueError as error:
            # Real data reaches here (the oracle knows q only for the synthetic task's instructions): say so.
            return Verdict(None, error=f"not scorable: the oracle scores only the synthetic task (jpo.tasks): {error}")
        detail = {"q_a": round(q_a, 6), "q_b": round(q_b, 6)}
        difference = q_a - q_b
        if abs(difference) <= self.margin + 1e-12:
            return Verdict("tie", raw="tie", detail=detail)
        if self.temperature == 0:
            choice = "a" if difference > 0 else "b"
        else:
            p_a = 1.0 / (1.0 + math.exp(-difference / self.temperature))
            choice = "a" if _uniform(self.seed, question) < p_a else "b"
        return Verdict(choice, raw=choice, detail=detail)

    def answer_batch_sync(self, questions: Sequence[Question]) -> list[Verdict]:
        return [self.answer(question) for question in questions]
