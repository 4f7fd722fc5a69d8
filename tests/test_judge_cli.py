"""`jpo judge` end to end: killed mid-run and rerun pays for nothing twice; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jpo.feedback.mock_server import MockJudgeServer, prefer_longer

ROOT = Path(__file__).resolve().parents[1]


def write_items(path: Path, n: int) -> None:
    rows = [{"id": f"i{i}", "prompt": f"question {i}", "response_a": "x" * (1 + i % 7), "response_b": "y" * 4}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")


def jpo_judge(tmp_path: Path, server: MockJudgeServer, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jpo", "judge", "--input", str(tmp_path / "items.jsonl"),
            "--output", str(tmp_path / "labeled.jsonl"), "--judge", "openai:mock", "--base_url", server.base_url,
            "--concurrency", "4", "--cache", str(tmp_path / "cache.sqlite"), "--no_progress", *extra]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_without_repeating_finished_verdicts(tmp_path: Path, how: signal.Signals) -> None:
    n = 150
    write_items(tmp_path / "items.jsonl", n)
    with MockJudgeServer(prefer_longer, delay=0.02) as server:
        # SIGINT's default disposition in the child: a suite started in the background by a non-interactive shell
        # (`make test &`) inherits SIGINT ignored, and Python then keeps it ignored, so Ctrl-C would never arrive
        process = subprocess.Popen(jpo_judge(tmp_path, server), env=env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        for _ in range(3000):  # bounded: 30 s
            if len(server.log) >= n // 2 or process.poll() is not None:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run finished before it could be interrupted"
        process.send_signal(how)
        _, stderr = process.communicate(timeout=30)
        first_run = list(server.log)
        if how == signal.SIGINT:
            assert process.returncode == 130 and "interrupted" in stderr
        with sqlite3.connect(tmp_path / "cache.sqlite") as db:
            stored = db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
        assert 0 < stored < 2 * n
        assert len(first_run) - stored <= 4  # lost at most the requests in flight (concurrency 4)

        done = subprocess.run(jpo_judge(tmp_path, server), env=env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        second_run = server.log[len(first_run):]
    # exactly the unstored questions were asked again: nothing stored was paid for twice
    assert len(second_run) == 2 * n - stored
    assert f"{2 * n - stored} verdicts asked, {stored} reused" in done.stdout
    repeated = {e.key for e in first_run} & {e.key for e in second_run}
    assert len(repeated) <= 4
    rows = [json.loads(line) for line in (tmp_path / "labeled.jsonl").read_text().splitlines()]
    expected = ["a" if 1 + i % 7 > 4 else ("b" if 1 + i % 7 < 4 else "tie") for i in range(n)]
    assert [row["label"] for row in rows] == expected
    assert [row["id"] for row in rows] == [f"i{i}" for i in range(n)]


def test_bad_input_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    good = {"id": "1", "prompt": "p", "response_a": "a", "response_b": "b"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "2", "response_b": 7}) + "\n")
    with MockJudgeServer() as server:
        result = subprocess.run(jpo_judge(tmp_path, server), env=env(), capture_output=True, text=True, timeout=60)
        assert server.log == []
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"{path}:2" in lines[0] and "response_b" in lines[0]


def test_to_preferences_writes_decisive_items(tmp_path: Path) -> None:
    write_items(tmp_path / "items.jsonl", 14)
    with MockJudgeServer(prefer_longer) as server:
        result = subprocess.run(jpo_judge(tmp_path, server, "--to-preferences", str(tmp_path / "prefs.jsonl")),
                                env=env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    prefs = [json.loads(line) for line in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    assert len(prefs) == 12 and "left out: 2 ties, 0 invalid" in result.stdout
    assert set(prefs[0]) == {"id", "prompt", "chosen", "rejected"}
    assert all(len(p["chosen"]) > len(p["rejected"]) for p in prefs)
    from jpo.data import load_preferences

    assert len(load_preferences(tmp_path / "prefs.jsonl")) == 12


def test_items_with_identical_responses_are_counted(tmp_path: Path, capsys) -> None:
    from jpo.cli import main

    rows = [{"id": f"i{i}", "prompt_a": f"question {i}", "response_a": "y" * (4 if i < 3 else 2 + i),
             "prompt_b": f"question {i}", "response_b": "y" * 4} for i in range(8)]
    rows.append({"id": "joint", "prompt_a": "P", "response_a": "same", "prompt_b": "Q", "response_b": "same"})
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with MockJudgeServer(prefer_longer) as server:
        assert main(jpo_judge(tmp_path, server)[3:]) == 0
    out = capsys.readouterr().out
    assert "3 items with identical responses (same prompt, same response on both sides)" in out  # not 'joint'


def test_preference_rows_are_joint_unless_every_prompt_pair_is_equal() -> None:
    from jpo.data.load import preference_rows

    rows = [{"id": "1", "prompt_a": "p", "response_a": "x", "prompt_b": "q", "response_b": "y", "label": "b"},
            {"id": "2", "prompt_a": "p", "response_a": "x", "prompt_b": "p", "response_b": "y", "label": "a"},
            {"id": "3", "prompt_a": "p", "response_a": "x", "prompt_b": "p", "response_b": "z", "label": "tie"},
            {"id": "4", "prompt_a": "p", "response_a": "x", "prompt_b": "p", "response_b": "w", "label": "invalid"}]
    joint = preference_rows(rows)
    assert joint == [
        {"id": "1", "prompt_chosen": "q", "chosen": "y", "prompt_rejected": "p", "rejected": "x"},
        {"id": "2", "prompt_chosen": "p", "chosen": "x", "prompt_rejected": "p", "rejected": "y"},
    ]
    assert preference_rows(rows[1:]) == [{"id": "2", "prompt": "p", "chosen": "x", "rejected": "y"}]
    assert preference_rows(rows[2:]) == []
