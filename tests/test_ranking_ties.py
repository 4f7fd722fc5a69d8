"""Ties in a joint evaluation are reported as ties: equal scores share a rank, an undefined Kendall tau says why
(never `nan`), and items cut by --max_per_pair are counted where the left-out items are listed."""

from __future__ import annotations

import json

import pytest
from test_ranking import task

from jpo.cli import main
from jpo.data import write_jsonl
from jpo.errors import JpoError
from jpo.evaluate.ranking import evaluate_joint, joint_items, shared_ranks
from jpo.feedback import make_judge

CUT = "joint items over the cap per pair of systems (--max_per_pair, evaluate.joint_max_per_pair)"


def test_equal_scores_share_the_best_of_their_ranks() -> None:
    assert shared_ranks({"x": 0.7, "y": 0.5, "z": 0.5, "w": 0.1}) == {"x": 1, "y": 2, "z": 2, "w": 4}
    assert shared_ranks({"x": 0.5, "y": 0.5 + 1e-12}) == {"x": 1, "y": 1}  # float rounding is no order


def test_systems_with_identical_outputs_share_their_rank_in_both_protocols() -> None:
    systems, references = task(30)
    systems = {"level0": systems["level0"], "twinA": systems["level2"], "twinB": systems["level2"],
               "level4": systems["level4"]}
    result = evaluate_joint(systems, make_judge("oracle"), references=references, progress=False, n_resamples=50)
    assert result.ranks() == {"level0": 1, "twinA": 2, "twinB": 2, "level4": 4}
    # against gold too (the task's gold references are mediocre, so the levels stay apart and only the twins tie)
    assert result.conditional_ranks() == {"level0": 1, "twinA": 2, "twinB": 2, "level4": 4}
    text = result.markdown()
    assert "| 2 | twinA |" in text and "| 2 | twinB |" in text and "share a rank" in text
    # tau-b over the shared ranks, the twins' tie counted as a tie in both: the same order, tau 1
    assert result.kendall_tau == pytest.approx(1.0)


def test_an_undefined_kendall_tau_says_why_instead_of_printing_nan(tmp_path, capsys) -> None:
    systems, references = task(20)
    specs = []
    for name in ("x", "y", "z"):  # three systems with the same outputs: no order by either protocol
        write_jsonl(tmp_path / f"{name}.jsonl", systems["level1"])
        specs.append(f"{name}={tmp_path / f'{name}.jsonl'}")
    write_jsonl(tmp_path / "refs.jsonl", references)
    assert main(["evaluate", "--protocol", "joint", "--generations", *specs, "--references", str(tmp_path / "refs.jsonl"),
                 "--judge", "oracle", "--no_progress", "--n_resamples", "50", "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower()
    assert "Kendall tau undefined: every system has the same Bradley-Terry score" in printed
    saved = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert saved["kendall_tau"] is None and "same" in saved["kendall_tau_undefined"]
    assert saved["joint"]["ranks"] == {"x": 1, "y": 1, "z": 1}


def test_items_cut_by_max_per_pair_are_counted(tmp_path, capsys) -> None:
    systems, _ = task(25, seed=3)
    items, left_out = joint_items(systems, max_per_pair=10)
    assert len(items) == 6 * 10 and left_out[CUT] == 6 * (2 * 25 - 10)
    specs = []
    for name, rows in systems.items():
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
        specs.append(f"{name}={tmp_path / f'{name}.jsonl'}")
    assert main(["evaluate", "--protocol", "joint", "--generations", *specs, "--max_per_pair", "10",
                 "--export_items", str(tmp_path / "items.jsonl")]) == 0
    assert f"(left out: 240 {CUT})" in capsys.readouterr().out
    with pytest.raises(JpoError, match="at least 2"):
        joint_items(systems, max_per_pair=1)
