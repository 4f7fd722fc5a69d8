"""A judge run with no valid verdict is a failure (exit 2, one line with the reason), not a labelled file:
a judge server that is down, and the synthetic task's oracle asked about real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jpo.cli import main
from jpo.errors import JpoError
from jpo.feedback.mock_server import MockJudgeServer


def closed_port_url() -> str:
    """The address of a mock judge server that has been shut down: nothing listens there any more."""
    with MockJudgeServer() as server:
        url = server.base_url
    return url


def real_items(shared_data, path: Path, n: int = 20) -> None:
    rows = [json.loads(line) for line in shared_data("ultrafeedback_sample", "train_clean.jsonl").open()][:n]
    path.write_text("".join(json.dumps({"id": str(i), "prompt": r["prompt"], "response_a": r["chosen"],
                                        "response_b": r["rejected"]}) + "\n" for i, r in enumerate(rows)))


def one_error_line(capsys, command: str) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"jpo {command}: error: "), lines
    return lines[0]


def test_judge_with_its_server_down_exits_nonzero_with_the_reason(tmp_path, shared_data, capsys) -> None:
    real_items(shared_data, tmp_path / "items.jsonl")
    status = main(["judge", "--input", str(tmp_path / "items.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                   "--judge", "openai:mock", "--base_url", closed_port_url(), "--max_retries", "0", "--no_progress"])
    line = one_error_line(capsys, "judge")
    assert status == 2 and "no valid verdict: all 20 items invalid (connection error x20)" in line
    assert not (tmp_path / "out.jsonl").exists()  # nothing that looks like a labelled file


def test_oracle_on_real_items_says_it_scores_only_the_synthetic_task(tmp_path, shared_data, capsys) -> None:
    real_items(shared_data, tmp_path / "items.jsonl")
    status = main(["judge", "--input", str(tmp_path / "items.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                   "--judge", "oracle", "--no_progress"])
    line = one_error_line(capsys, "judge")
    assert status == 2 and "all 20 items invalid" in line and "scores only the synthetic task" in line


@pytest.mark.parametrize("judge", ["server-down", "oracle"])
def test_evaluate_with_no_valid_verdict_exits_nonzero(tmp_path, shared_data, capsys, judge) -> None:
    gold = [json.loads(line) for line in shared_data("jpo-authors", "anthropic_helpful", "test.jsonl").open()][:10]
    (tmp_path / "refs.jsonl").write_text("".join(
        json.dumps({"id": str(i), "prompt": r["instruction"], "reference": r["gold_response"]}) + "\n"
        for i, r in enumerate(gold)))
    (tmp_path / "gens.jsonl").write_text("".join(
        json.dumps({"id": str(i), "prompt": r["instruction"], "response": "I do not know."}) + "\n"
        for i, r in enumerate(gold)))
    spec = ["--judge", "oracle"] if judge == "oracle" else ["--judge", "openai:mock", "--base_url", closed_port_url(),
                                                             "--max_retries", "0"]
    status = main(["evaluate", "--generations", str(tmp_path / "gens.jsonl"), "--references",
                   str(tmp_path / "refs.jsonl"), "--output", str(tmp_path / "eval"), "--no_progress", *spec])
    line = one_error_line(capsys, "evaluate")
    assert status == 2 and "no valid verdict: all 10 generations invalid" in line
    assert ("scores only the synthetic task" if judge == "oracle" else "connection error x10") in line
    assert not (tmp_path / "eval" / "winrate.json").exists()


def test_joint_evaluation_with_no_valid_verdict_names_the_reason(tmp_path, shared_data, capsys) -> None:
    gold = [json.loads(line) for line in shared_data("jpo-authors", "anthropic_helpful", "test.jsonl").open()][:6]
    for name, answer in (("x", "I do not know."), ("y", "Ask someone else.")):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"id": str(i), "prompt": r["instruction"], "response": answer}) + "\n"
            for i, r in enumerate(gold)))
    status = main(["evaluate", "--protocol", "joint", "--generations", str(tmp_path / "x.jsonl"),
                   str(tmp_path / "y.jsonl"), "--output", str(tmp_path / "eval"), "--judge", "oracle",
                   "--no_progress"])
    line = one_error_line(capsys, "evaluate")
    assert status == 2 and "joint items invalid" in line and "scores only the synthetic task" in line


def test_disagreement_selection_whose_judges_cannot_score_the_data_exits_nonzero(tmp_path, shared_data,
                                                                                 capsys) -> None:
    rows = [json.loads(line) for line in shared_data("ultrafeedback_sample", "train_clean.jsonl").open()][:8]
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps({"prompt": r["prompt"], "response": r["chosen"]}) + "\n"
                                                for r in rows))
    status = main(["pairs", "--input", str(tmp_path / "sft.jsonl"), "--output", str(tmp_path / "sel.jsonl"),
                   "--strategy", "disagreement", "--budget", "4", "--judges", "oracle", "oracle:temperature=1",
                   "--no_progress"])
    line = one_error_line(capsys, "pairs")
    assert status == 2 and "no valid verdict" in line and "scores only the synthetic task" in line
    assert not (tmp_path / "sel.jsonl").exists()


def test_no_valid_verdict_groups_reasons_that_differ_only_in_sizes():
    """Four questions too long for a local judge's context, each by another number of tokens, are one kind of
    reason counted four times (an outside tester saw x1 x1 x1 for 4 items); more kinds than three are counted."""
    from jpo.feedback.base import Verdict
    from jpo.feedback.runner import Judged, JudgeRun

    def judged(reason: str) -> Judged:
        return Judged("invalid", Verdict(choice=None, error=reason), Verdict(choice=None, error=reason), reason)

    sizes = [706, 731, 690, 802]
    run = JudgeRun([judged(f"ab: question longer than the judge's context ({n} > 512 tokens)") for n in sizes],
                   "hf:tiny", "v1")
    with pytest.raises(JpoError, match=r"all 4 comparisons invalid \(question longer than the judge's context x4\)"):
        run.require_valid("comparisons")
    kinds = [judged(f"kind {k}: detail") for k in "abcde"]
    with pytest.raises(JpoError, match=r"kind a x1, kind b x1, kind c x1, 2 more of 2 other kinds\)"):
        JudgeRun(kinds, "hf:tiny", "v1").require_valid("comparisons")
