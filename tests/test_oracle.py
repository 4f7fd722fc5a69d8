"""The oracle judge: exact and noisy answers, ties, and the shared order-swap rule applied to it; registered by the
task through its entry point, reachable from the CLI and make_judge by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jpo.errors import JpoError
from jpo.feedback import JudgeOptions, Question, make_judge
from jpo.feedback.runner import judge_items

SRC = str(Path(__file__).resolve().parents[1] / "src")

SORT = "Sort these words alphabetically: pear apple kiwi"
REVERSE = "Reverse the order of these words: red blue green"


def test_exact_oracle_prefers_higher_quality_in_either_position():
    judge = make_judge("oracle")
    good, bad = "apple kiwi pear", "pear apple kiwi"
    verdicts = judge.answer_batch_sync([Question(SORT, good, SORT, bad), Question(SORT, bad, SORT, good)])
    assert [v.choice for v in verdicts] == ["a", "b"]
    assert verdicts[0].detail == {"q_a": 1.0, "q_b": pytest.approx(1 / 3, abs=1e-6)}


def test_joint_items_compare_across_instructions():
    judge = make_judge("oracle")
    # a perfect reversal beats a sort with one word missing
    verdict = judge.answer_batch_sync([Question(SORT, "apple kiwi", REVERSE, "green blue red")])[0]
    assert verdict.choice == "b"


def test_tie_within_margin():
    exact = make_judge("oracle")
    assert exact.answer_batch_sync([Question(SORT, "apple kiwi pear", REVERSE, "green blue red")])[0].choice == "tie"
    close = Question(SORT, "apple kiwi pear pear", REVERSE, "green blue red")  # q 0.75 vs 1.0
    assert exact.answer_batch_sync([close])[0].choice == "b"
    wide = make_judge("oracle", JudgeOptions(tie_margin=0.3))
    assert wide.answer_batch_sync([close])[0].choice == "tie"
    assert make_judge("oracle:margin=0.3").answer_batch_sync([close])[0].choice == "tie"


def test_order_swap_through_the_runner():
    items = [
        {"id": "clear", "prompt": SORT, "response_a": "pear apple kiwi", "response_b": "apple kiwi pear"},
        {"id": "equal", "prompt": SORT, "response_a": "apple kiwi pear", "response_b": "apple kiwi pear."},
        {"id": "joint", "prompt_a": REVERSE, "response_a": "green blue red", "prompt_b": SORT,
         "response_b": "kiwi"},
    ]
    run = judge_items(items, make_judge("oracle"), progress=False)
    assert [r.label for r in run.results] == ["b", "tie", "a"]


def test_noisy_oracle_is_deterministic_and_flips_become_ties():
    # q 2/3 vs 1/3 under a high temperature: the two orders are independent draws, so some items flip
    items = [{"id": "x", "prompt": SORT, "response_a": "apple kiwi", "response_b": "pear apple kiwi"}]
    judge = make_judge("oracle:temperature=1,seed=7")
    question = Question(SORT, "apple kiwi", SORT, "pear apple kiwi")
    first = judge.answer_batch_sync([question] * 3)
    assert len({v.choice for v in first}) == 1  # same question, same answer (the verdict store relies on it)
    labels = []
    for seed in range(40):
        run = judge_items(items, make_judge(f"oracle:temperature=1,seed={seed}"), progress=False)
        labels.append(run.results[0].label)
    assert {"a", "b", "tie"} <= set(labels)  # noise flips some answers; a flip is a tie
    assert labels.count("a") > labels.count("b")  # but the better answer still wins more often


def test_unscorable_text_is_invalid_not_a_guess():
    items = [{"id": "x", "prompt": "Write a poem", "response_a": "waves", "response_b": "sand"}]
    run = judge_items(items, make_judge("oracle"), progress=False)
    assert run.results[0].label == "invalid"
    assert "not scorable" in run.results[0].reason


@pytest.mark.parametrize("spec", ["oracle:temp=1", "oracle:temperature=hot", "oracle:temperature=-1"])
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(JpoError):
        make_judge(spec)


def _python(code_or_args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)


def test_the_cli_knows_the_oracle_without_importing_anything(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "x", "prompt": SORT, "response_a": "pear apple kiwi",
                                 "response_b": "apple kiwi pear"}) + "\n")
    done = _python(["-m", "jpo", "judge", "--input", str(items), "--output", str(tmp_path / "out.jsonl"),
                    "--judge", "oracle:temperature=0.2,seed=1,margin=0", "--no_progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out.jsonl").read_text())["label"] == "b"


def test_the_judges_package_does_not_import_the_task(tmp_path):
    import pkgutil

    import jpo.feedback

    modules = [f"jpo.feedback.{m.name}" for m in pkgutil.iter_modules(jpo.feedback.__path__)]
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint('jpo.tasks' in sys.modules)"
    done = _python(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
