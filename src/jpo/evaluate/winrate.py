"""Win-rate against gold with bootstrap intervals.

A judged generation is a `win` (1), `tie` (0.5) or `loss` (0) against its reference, the paper's scoring. `invalid`
verdicts (no usable answer) are left out of the estimate and reported beside it: scoring them as ties would pull
every model toward 50%.

Intervals are percentile bootstraps (`scipy.stats.bootstrap`) over *prompts*: when a prompt has several
generations (seeds, or all temperatures for the averaged figure) they are resampled together, because they are not
independent evidence; two methods compared on the same prompts are resampled as pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from jpo.errors import DataError

SCORES = {"win": 1.0, "tie": 0.5, "loss": 0.0}
OUTCOMES = ("win", "tie", "loss", "invalid")
# The JPO authors' verdict files name the side the judge preferred.
AUTHORS_VERDICTS = {"model": "win", "equal": "tie", "gold": "loss"}


@dataclass
class WinRate:
    """`estimate`, `low`, `high` are fractions in [0, 1]; `n` counts scored generations (invalid excluded)."""

    estimate: float
    low: float
    high: float
    wins: int
    ties: int
    losses: int
    invalid: int
    n: int
    confidence: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.n == 0:
            return f"n/a (no scored generations, {self.invalid} invalid)"
        return (f"{100 * self.estimate:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] "
                f"({self.wins} W / {self.ties} T / {self.losses} L, {self.invalid} invalid)")


def outcome_of_label(label: str, model_side: str = "a") -> str:
    """A judge label (a | b | tie | invalid) as the model's outcome, the model's generation being `model_side`."""
    if label in ("tie", "invalid"):
        return label
    if label not in ("a", "b"):
        raise ValueError(f"unknown label {label!r}")
    return "win" if label == model_side else "loss"


def _ratio_of_sums(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return sums.sum(axis=axis) / counts.sum(axis=axis)


def _difference_of_means(first: np.ndarray, second: np.ndarray, axis: int = -1) -> np.ndarray:
    return first.mean(axis=axis) - second.mean(axis=axis)


def _percentile_interval(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], *, n_resamples: int, confidence: float,
    seed: int,
) -> tuple[float, float]:
    """`scipy.stats.bootstrap` over the positions the samples share (resampled together: paired).

    Percentile rather than scipy's default BCa: BCa is undefined when every resample gives the same value (a method
    that wins every prompt), which evaluations of small or strong models do produce."""
    size = samples[0].size
    if size == 0:
        return float("nan"), float("nan")
    if size == 1:  # nothing to resample
        value = float(statistic(*samples))
        return value, value
    result = stats.bootstrap(samples, statistic, paired=True, vectorized=True, n_resamples=n_resamples,
                             confidence_level=confidence, method="percentile",
                             batch=max(1, 2_000_000 // size),  # bounded memory for large evaluations
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_ci(
    values: Sequence[float],
    groups: Sequence[Hashable] | None = None,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`, resampling whole groups (default: each value alone).

    A resample draws groups with replacement; its statistic is the mean over all values of the drawn groups (their
    summed scores over their summed sizes), so a prompt judged at three temperatures weighs three times, as in the
    point estimate."""
    values = np.asarray(values, dtype=float)
    if groups is None:
        sums, counts = values, np.ones_like(values)
    else:
        _, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
        sums = np.bincount(index, weights=values)
        counts = np.bincount(index).astype(float)
    return _percentile_interval((sums, counts), _ratio_of_sums, n_resamples=n_resamples, confidence=confidence,
                                seed=seed)


def win_rate(
    outcomes: Iterable[str],
    groups: Sequence[Hashable] | None = None,
    *,
    model_side: str = "a",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> WinRate:
    """Win-rate (win 1, tie 0.5, loss 0) with a bootstrap interval.

    `outcomes` are win | tie | loss | invalid, or judge labels a | b | tie | invalid with the model's generation on
    `model_side`. `groups` (one per outcome, e.g. the prompt id) makes the interval resample prompts rather than
    generations."""
    outcomes = [outcome_of_label(o, model_side) if o in ("a", "b") else o for o in outcomes]
    unknown = set(outcomes) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"unknown outcome(s) {sorted(unknown)}; expected {OUTCOMES}")
    if groups is not None and len(groups) != len(outcomes):
        raise ValueError("groups must have one entry per outcome")
    keep = [i for i, outcome in enumerate(outcomes) if outcome != "invalid"]
    scores = [SCORES[outcomes[i]] for i in keep]
    counted = {name: outcomes.count(name) for name in OUTCOMES}
    kept_groups = None if groups is None else [groups[i] for i in keep]
    low, high = bootstrap_ci(scores, kept_groups, n_resamples=n_resamples, confidence=confidence, seed=seed)
    estimate = float(np.mean(scores)) if scores else float("nan")
    return WinRate(estimate, low, high, counted["win"], counted["tie"], counted["loss"], counted["invalid"],
                   len(scores), confidence)


def paired_difference(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> dict[str, float]:
    """Difference in win-rate (points) of two methods on the same prompts, with a paired bootstrap interval: each
    prompt's score (mean over its seeds and temperatures) is differenced before resampling prompts, which removes
    the prompt-difficulty variance that makes two unpaired intervals overlap."""
    def per_prompt(scored: list[dict[str, Any]]) -> dict[str, float]:
        sums: dict[str, list[float]] = {}
        for s in scored:
            if s["outcome"] in SCORES:
                sums.setdefault(s["id"], []).append(SCORES[s["outcome"]])
        return {key: sum(values) / len(values) for key, values in sums.items()}

    a, b = per_prompt(first), per_prompt(second)
    shared = sorted(a.keys() & b.keys())
    first_scores, second_scores = np.array([a[key] for key in shared]), np.array([b[key] for key in shared])
    low, high = _percentile_interval((first_scores, second_scores), _difference_of_means, n_resamples=10_000,
                                     confidence=0.95, seed=0)
    mean = float(_difference_of_means(first_scores, second_scores)) if shared else 0.0
    return {"difference": round(100 * mean, 2), "ci95": [round(100 * low, 2), round(100 * high, 2)],
            "prompts": len(shared)}


def read_authors_verdicts(path: str | Path) -> dict[str, list[str]]:
    """The JPO authors' cached verdict files (`{run: {instruction<SEP>...: "model" | "gold" | "equal"}}`) as outcomes
    per run, so their published win-rates can be recomputed with `win_rate`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read verdicts: {error}", path=path) from None
    if not isinstance(data, dict):
        raise DataError("expected an object {run: {key: verdict}}", path=path)
    runs = {}
    for run, verdicts in data.items():
        if not isinstance(verdicts, dict):
            raise DataError("expected an object {key: verdict}", path=path, field=run)
        outcomes = []
        for verdict in verdicts.values():
            if verdict not in AUTHORS_VERDICTS:
                raise DataError(f"unknown verdict {verdict!r} (expected model, gold or equal)", path=path, field=run)
            outcomes.append(AUTHORS_VERDICTS[verdict])
        runs[run] = outcomes
    return runs
