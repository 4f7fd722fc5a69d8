"""The shared order-swap runner, the verdict store and the backend registry, with in-process judges."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from jpo.errors import JpoError
from jpo.feedback import JudgeOptions, Question, SyncJudge, Verdict, make_judge, register_backend
from jpo.feedback.registry import BACKENDS, backend_class
from jpo.feedback.runner import combine, judge_items, labeled_rows
from jpo.feedback.store import VerdictStore


class ScriptedJudge(SyncJudge):
    """Answers from the texts: prefers a response containing 'GOOD'; 'SAME' makes it always say the first position
    (a position-biased judge); 'NOISE' makes its answer unreadable."""

    id = "scripted"
    template_version = "t1"
    batch_size = 3

    def __init__(self) -> None:
        self.asked: list[Question] = []
        self.batches: list[int] = []

    @classmethod
    def from_spec(cls, argument, options):
        return cls()

    def answer_batch_sync(self, questions: Sequence[Question]) -> list[Verdict]:
        self.batches.append(len(questions))
        self.asked.extend(questions)
        out = []
        for q in questions:
            if "NOISE" in q.response_a:
                out.append(Verdict(None, "hmm", "unparseable (names no output): 'hmm'"))
            elif "SAME" in q.response_a:
                out.append(Verdict("a", "Output (a)"))
            else:
                out.append(Verdict("a" if "GOOD" in q.response_a else "b", "x"))
        return out


def item(i: int, a: str, b: str, prompt_b: str | None = None) -> dict:
    return {"id": str(i), "prompt_a": f"p{i}", "response_a": a, "prompt_b": prompt_b or f"p{i}", "response_b": b}


ITEMS = [item(0, "GOOD 0", "bad 0"), item(1, "bad 1", "GOOD 1", "q1"), item(2, "SAME", "SAME too"),
         item(3, "NOISE x", "NOISE y")]


def test_both_orders_agreement_flip_and_invalid(tmp_path) -> None:
    judge = ScriptedJudge()
    run = judge_items(ITEMS, judge, progress=False)
    assert [r.label for r in run.results] == ["a", "b", "tie", "invalid"]
    assert run.counts == {"a": 1, "b": 1, "tie": 1, "invalid": 1}
    assert "unparseable" in run.results[3].reason and run.results[3].reason.startswith("ab:")
    assert len(judge.asked) == 8 and max(judge.batches) <= 3
    rows = labeled_rows(ITEMS, run)
    assert rows[1]["label"] == "b" and rows[1]["prompt_b"] == "q1" and rows[1]["judge"] == "scripted"
    assert [v["order"] for v in rows[1]["verdicts"]] == ["ab", "ba"]
    assert rows[1]["verdicts"][1] == {"order": "ba", "said": "a", "choice": "b", "raw": "x"}
    assert rows[3]["invalid_reason"] and "invalid=1" in run.summary()
    assert run.invalid_reasons == {"unparseable (names no output)": 1}
    assert "invalid: unparseable (names no output) x1" in run.summary()
    relabeled = labeled_rows([dict(ITEMS[0], label="b")] + ITEMS[1:], run)[0]
    assert (relabeled["label"], relabeled["input_label"]) == ("a", "b")


def test_combine_never_turns_an_unreadable_answer_into_a_tie() -> None:
    bad = Verdict(None, "?", "HTTP 500 after 6 attempts", received=False)
    assert combine(Verdict("a"), bad).label == "invalid"
    assert combine(Verdict("a"), Verdict("b")).label == "a"  # b in swapped positions is a
    assert combine(Verdict("a"), Verdict("a")).label == "tie"
    assert combine(Verdict("tie"), Verdict("tie")).label == "tie"
    with pytest.raises(ValueError):
        Verdict(None)  # a missing answer must say why


def test_store_resumes_and_dedupes(tmp_path) -> None:
    items = ITEMS + [dict(ITEMS[0], id="dup")]  # the same question under another id is asked once
    with VerdictStore(tmp_path / "v.sqlite") as store:
        first = ScriptedJudge()
        run = judge_items(items, first, store=store, progress=False)
        assert run.asked == 8 and len(store) == 8
        second = ScriptedJudge()
        again = judge_items(items, second, store=store, progress=False)
    assert second.asked == [] and again.reused == 8
    assert [r.label for r in again.results] == [r.label for r in run.results]
    assert again.results[3].forward.raw == "hmm"  # stored as received, unparseable included
    with VerdictStore(tmp_path / "v.sqlite") as reopened:
        other = ScriptedJudge()
        other.template_version = "t2"  # a new prompt never reuses old verdicts
        judge_items(items[:1], other, store=reopened, progress=False)
        assert len(other.asked) == 2


def test_transport_failures_are_not_stored(tmp_path) -> None:
    class Flaky(ScriptedJudge):
        def answer_batch_sync(self, questions):
            return [Verdict(None, "", "timeout after 1s after 6 attempts", received=False) for _ in questions]

    with VerdictStore(tmp_path / "v.sqlite") as store:
        run = judge_items(ITEMS[:1], Flaky(), store=store, progress=False)
        assert run.results[0].label == "invalid" and "timeout" in run.results[0].reason
        assert len(store) == 0


def test_registry_specs() -> None:
    register_backend("scripted-test", ScriptedJudge)
    try:
        assert isinstance(make_judge("scripted-test"), ScriptedJudge)
    finally:
        BACKENDS.pop("scripted-test")
    from jpo.tasks.oracle import OracleJudge

    assert "oracle" not in BACKENDS and backend_class("oracle") is OracleJudge  # found through its entry point
    with pytest.raises(JpoError, match="unknown judge 'nope'"):
        make_judge("nope:x")
    with pytest.raises(JpoError, match="needs a model name"):
        make_judge("openai", JudgeOptions(base_url="http://127.0.0.1:1/v1"))
    with pytest.raises(JpoError, match="no API key"):
        make_judge("openai:gpt-4o-mini", JudgeOptions(api_key_env="JPO_TEST_SURELY_UNSET"))


def test_a_fatal_backend_error_stops_the_run() -> None:
    class Broken(ScriptedJudge):
        def answer_batch_sync(self, questions):
            raise JpoError("model not found")

    with pytest.raises(JpoError, match="model not found"):
        judge_items(ITEMS, Broken(), progress=False)
