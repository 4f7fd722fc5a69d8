"""scripts/readme_numbers.py --block trl: the README's count of TRL's DPOTrainer tests passing on JPOTrainer comes from
the two runs' junit files, never typed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import script_module


def _script():
    return script_module("scripts/readme_numbers.py")

def _junit(path: Path, outcomes: dict[str, str]) -> None:
    cases = "".join(
        f'<testcase classname="tests.test_dpo_trainer.TestDPOTrainer" name="{name}" time="1.0">'
        + {"passed": "", "failed": '<failure message="boom"/>', "skipped": '<skipped message="no"/>',
           "error": '<error message="e"/>'}[status] + "</testcase>"
        for name, status in outcomes.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest" timestamp="2026-11-30T12:00:00">'
                    f"{cases}</testsuite></testsuites>")

def test_trl_block_counts_the_tests_that_pass_on_both(tmp_path):
    out = tmp_path / "out"
    _junit(out / "results" / "trl.xml", {"test_a": "passed", "test_b": "passed", "test_c": "passed",
                                         "test_vision": "skipped", "test_moe": "failed"})
    _junit(out / "results" / "jpo.xml", {"test_a": "passed", "test_b": "failed", "test_c": "error",
                                         "test_vision": "skipped", "test_moe": "passed"})
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- trl-suite:start -->\nstale\n<!-- trl-suite:end -->\nrest\n")
    assert _script().main([str(out), "--block", "trl", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "**1 of the 3 tests that pass on TRL's DPOTrainer** (5 collected" in text
    assert "Not passing: `test_b`, `test_c`." in text and "2026-11-30T12:00:00" in text
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("rest\n")

def test_trl_block_without_the_runs_is_one_line(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- trl-suite:start -->\n<!-- trl-suite:end -->\n")
    assert _script().main([str(tmp_path / "missing"), "--block", "trl", "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("readme_numbers: ") and "trl.xml" in err and err.count("\n") == 1

@pytest.mark.parametrize("content", ["no markers\n", "<!-- trl-suite:end -->\n<!-- trl-suite:start -->\n"])
def test_trl_block_needs_its_markers_in_order(tmp_path, capsys, content):
    out = tmp_path / "out"
    _junit(out / "results" / "trl.xml", {"test_a": "passed"})
    _junit(out / "results" / "jpo.xml", {"test_a": "passed"})
    readme = tmp_path / "README.md"
    readme.write_text(content)
    assert _script().main([str(out), "--block", "trl", "--readme", str(readme)]) == 2
    assert "needs one '<!-- trl-suite:start -->' line" in capsys.readouterr().err
    assert readme.read_text() == content
