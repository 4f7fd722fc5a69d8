"""Long selection work reports progress: the bars' counts are checked (not their timing), through `jpo.progress`,
the one place every stage gets its bar from."""

from __future__ import annotations

import random

import pytest

from jpo.cli import main
from jpo.data import write_jsonl
from jpo.feedback.registry import make_judge
from jpo.selection import select
from jpo.tasks import graded_response, make_instance


class Bar:
    """Stands in for tqdm and remembers what a stage reported."""

    def __init__(self, total=None, *, desc="", unit="it", disable=False, initial=0, **_) -> None:
        self.total, self.desc, self.unit, self.disable, self.n, self.closed = total, desc, unit, disable, initial, False

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch) -> list[Bar]:
    made: list[Bar] = []

    def record(*args, **kwargs) -> Bar:
        made.append(Bar(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr("jpo.progress.tqdm", record)
    return made


def instances(n: int) -> list[dict]:
    rng = random.Random(0)
    rows, seen = [], set()
    while len(rows) < n:
        instance = make_instance(rng)
        if instance.prompt not in seen:
            seen.add(instance.prompt)
            rows.append({"prompt": instance.prompt, "response": graded_response(instance.prompt, rng.randint(0, 3), rng)})
    return rows


def named(bars: list[Bar], prefix: str) -> list[Bar]:
    return [bar for bar in bars if bar.desc.startswith(prefix)]


def test_disagreement_reports_the_pool_and_every_judge_verdict(bars) -> None:
    judges = [make_judge("oracle"), make_judge("oracle:temperature=0.5,seed=1")]
    select(instances(20), "disagreement", 10, judges=judges, progress=True)
    (pool,) = named(bars, "selecting (disagreement)")
    assert pool.total == pool.n == 190 and pool.unit == "candidate" and pool.closed  # 20 * 19 / 2 candidates
    judged = named(bars, "disagreement: judge")
    assert [bar.desc.split(" (")[0] for bar in judged] == ["disagreement: judge 1", "disagreement: judge 2"]
    assert all(bar.n == bar.total == 2 * 190 and bar.unit == "verdict" for bar in judged)  # both orders
    assert not any(bar.disable for bar in bars)


def test_uncertainty_reports_the_instances_it_scores(bars, tiny_model_path) -> None:
    data = [{"prompt": f"Once upon a time {k}", "response": " there was a cat" + "." * k} for k in range(7)]
    select(data, "uncertainty", 5, reference=str(tiny_model_path), progress=True)
    (scored,) = named(bars, "scoring instances with stories260K")
    assert scored.total == scored.n == 7 and scored.unit == "instance"
    (pool,) = named(bars, "selecting (uncertainty)")
    assert pool.n == 21


def test_jpo_pairs_shows_bars_on_a_terminal_and_none_under_no_progress(bars, tmp_path) -> None:
    write_jsonl(tmp_path / "sft.jsonl", instances(12))
    command = ["pairs", "--input", str(tmp_path / "sft.jsonl"), "--output", str(tmp_path / "items.jsonl"),
               "--strategy", "disagreement", "--judges", "oracle", "oracle:temperature=1,seed=2", "--budget", "5"]
    assert main(command) == 0
    assert bars and all(bar.disable is None for bar in bars)  # tqdm's "only on a terminal"
    bars.clear()
    assert main([*command, "--no-progress"]) == 0
    assert bars and all(bar.disable is True for bar in bars)
