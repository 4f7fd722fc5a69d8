"""Position bias and tie rates per judge.

A judge without position bias picks the option shown first in half of its decisive verdicts. The annotation page
randomises sides per assignment and `jpo judge` asks both orders, so every verdict knows which option came first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from jpo.analysis.labels import Judgment


@dataclass
class PositionBias:
    """`first` of `decisive` verdicts picked the option shown first; `rate` = first / decisive, with a Wilson 95%
    interval (0.5 inside it: no evidence of bias). `unknown`: decisive verdicts whose order was not recorded."""

    decisive: int
    first: int
    rate: float | None
    ci95: tuple[float, float] | None
    unknown: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    """The Wilson score 95% interval of `successes` / `n` (scipy's `binomtest(...).proportion_ci`); None for n 0."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def position_bias(verdicts: Iterable[Judgment]) -> dict[str, PositionBias]:
    """Per judge: how often a decisive verdict (a or b, in the item's terms) picked the option shown first."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # decisive with order, first, unknown order
    for verdict in verdicts:
        if verdict.label not in ("a", "b"):
            continue
        if verdict.first is None:
            counts[verdict.judge][2] += 1
            continue
        counts[verdict.judge][0] += 1
        counts[verdict.judge][1] += verdict.label == verdict.first
    return {judge: PositionBias(n, first, first / n if n else None, wilson(first, n), unknown)
            for judge, (n, first, unknown) in sorted(counts.items())}


def tie_rate(judgments: Iterable[Judgment]) -> dict[str, dict[str, Any]]:
    """Per judge: counts of a / b / tie / invalid and the tie rate among valid labels."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"a": 0, "b": 0, "tie": 0, "invalid": 0})
    for judgment in judgments:
        counts[judgment.judge][judgment.label] += 1
    out = {}
    for judge, c in sorted(counts.items()):
        valid = c["a"] + c["b"] + c["tie"]
        out[judge] = {**c, "n": valid, "tie_rate": c["tie"] / valid if valid else None}
    return out
