"""Win-rate against gold: the paper's scoring, bootstrap intervals, and the authors' published numbers."""

from __future__ import annotations

import numpy as np
import pytest

from jpo.errors import DataError
from jpo.evaluate.winrate import (
    bootstrap_ci,
    outcome_of_label,
    paired_difference,
    read_authors_verdicts,
    win_rate,
)


@pytest.mark.parametrize(("file", "run", "expected", "counts"), [
    ("master.json", "tldr_dove", 0.732, (293, 146, 61)),
    ("master_helpful.json", "helpful_dove", 0.745, (305, 135, 60)),
])
def test_authors_verdicts_give_their_published_win_rates(shared_data, file, run, expected, counts) -> None:
    outcomes = read_authors_verdicts(shared_data("jpo-authors", "verdicts", file))[run]
    result = win_rate(outcomes)
    assert round(result.estimate, 3) == expected
    assert (result.wins, result.ties, result.losses, result.invalid, result.n) == (*counts, 0, 500)
    assert result.low < result.estimate < result.high
    assert 0.03 < result.high - result.low < 0.10  # ~ 2 * 1.96 * sd / sqrt(500)
    assert str(result).startswith(f"{100 * expected:.1f}% [")


def test_scoring_and_invalid_are_reported_not_scored() -> None:
    result = win_rate(["win", "tie", "loss", "invalid", "win"])
    assert result.estimate == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert (result.n, result.invalid) == (4, 1)
    assert np.isnan(win_rate(["invalid"]).estimate) and "n/a" in str(win_rate(["invalid"]))
    with pytest.raises(ValueError):
        win_rate(["won"])
    assert [outcome_of_label(x) for x in "ab"] == ["win", "loss"]
    assert outcome_of_label("a", model_side="b") == "loss" and outcome_of_label("tie") == "tie"
    labels = win_rate(["a", "tie", "b", "invalid", "a"], seed=0)  # judge labels, the model's generation as a
    assert (labels.estimate, labels.wins, labels.invalid) == (result.estimate, 2, 1)
    assert win_rate(["a", "b", "b"], model_side="b").wins == 2


def test_bootstrap_matches_the_normal_approximation_and_respects_groups() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2, size=400).astype(float)
    low, high = bootstrap_ci(values, seed=3)
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.01) and high == pytest.approx(values.mean() + half, abs=0.01)
    # ten copies of each value are not ten times the evidence when resampled as groups
    repeated = np.repeat(values, 10)
    groups = np.repeat(np.arange(values.size), 10)
    grouped = bootstrap_ci(repeated, groups, seed=3)
    naive = bootstrap_ci(repeated, seed=3)
    assert (grouped[1] - grouped[0]) > 2.5 * (naive[1] - naive[0])
    assert bootstrap_ci(values, seed=3) == (low, high)  # reproducible


def test_bad_verdict_file_names_the_problem(tmp_path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"run": {"k": "model", "k2": "better"}}')
    with pytest.raises(DataError, match=r"v\.json: field 'run': unknown verdict 'better'"):
        read_authors_verdicts(path)


def test_paired_difference_resamples_prompts_as_pairs() -> None:
    """Prompts differ in difficulty; the second method wins exactly where the first does plus on 10% more prompts.
    Pairing removes the difficulty variance, so its interval is far narrower than two independent ones combined."""
    rng = np.random.default_rng(0)
    ease = rng.uniform(0, 1, 300)
    extra = rng.uniform(0, 1, 300) < 0.1
    first = [{"id": str(i), "outcome": "win" if e > 0.5 or x else "loss"} for i, (e, x) in enumerate(zip(ease, extra, strict=True))]
    second = [{"id": str(i), "outcome": "win" if e > 0.5 else "loss"} for i, e in enumerate(ease)]
    second.append({"id": "only-in-second", "outcome": "win"})  # not a pair: left out
    result = paired_difference(first, second)
    wins = [r["outcome"] == "win" for r in first], [r["outcome"] == "win" for r in second[:-1]]
    assert result["prompts"] == 300
    assert result["difference"] == round(100 * (np.mean(wins[0]) - np.mean(wins[1])), 2) > 0
    low, high = result["ci95"]
    assert 0 <= low < result["difference"] < high
    unpaired = np.hypot(*[np.subtract(*bootstrap_ci(np.array(w, float))[::-1]) for w in wins]) * 100
    assert (high - low) < 0.5 * unpaired
