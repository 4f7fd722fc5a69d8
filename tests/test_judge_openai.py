"""The openai: judge against a local OpenAI-compatible server (127.0.0.1) that fails on purpose."""

from __future__ import annotations

import re

import pytest

from jpo.errors import JpoError
from jpo.feedback import JudgeOptions, make_judge
from jpo.feedback.mock_server import MockJudgeServer
from jpo.feedback.openai_judge import known_price, retry_after_seconds
from jpo.feedback.runner import judge_items
from jpo.feedback.store import VerdictStore

_OUTPUT = re.compile(r"### Output \(([ab])\):\n(\S+)")
MODES = ("429", "500", "slow", "garbage")


def truthful(messages) -> str:
    """Prefers the output tagged GOOD; answers the first position when neither is (a position-biased judge);
    never gives a readable answer about NOISE outputs."""
    outputs = dict(_OUTPUT.findall(messages[-1]["content"]))
    if any(text.startswith("NOISE") for text in outputs.values()):
        return "I would rather not say."
    for position, text in outputs.items():
        if text.startswith("GOOD"):
            return f"Output ({position})"
    return "**Output (a)**"


def one_in_five_first_attempts_fail(key: str, attempt: int) -> str | None:
    number = int(key, 16)
    return MODES[(number // 5) % 4] if attempt == 0 and number % 5 == 0 else None


def make_items() -> tuple[list[dict], list[str]]:
    items, expected = [], []
    for i in range(100):
        kind = "ab"[i % 2] if i < 80 else ("tie" if i < 95 else "invalid")
        good, bad = f"GOOD-{i}", f"BAD-{i}"
        a, b = {"a": (good, bad), "b": (bad, good), "tie": (f"MEH-{i}", f"SO-SO-{i}"),
                "invalid": (f"NOISE-{i}", f"NOISE-again-{i}")}[kind]
        prompt_b = f"instruction {i}" if i % 3 else f"another instruction {i}"  # conditional and joint items
        items.append({"id": f"item-{i}", "prompt_a": f"instruction {i}", "response_a": a, "prompt_b": prompt_b,
                      "response_b": b})
        expected.append(kind)
    return items, expected


def options(server: MockJudgeServer, **extra) -> JudgeOptions:
    settings = {"concurrency": 16, "request_timeout": 0.5, "max_retries": 4, "backoff_base": 0.01,
                "backoff_max": 1.0, **extra}
    return JudgeOptions(base_url=server.base_url, **settings)


def test_failures_end_labelled_or_invalid_and_no_verdict_is_asked_twice(tmp_path) -> None:
    items, expected = make_items()
    with MockJudgeServer(truthful, failures=one_in_five_first_attempts_fail, retry_after=0.2, slow_seconds=1.0) as server:
        with VerdictStore(tmp_path / "cache.sqlite") as store:
            run = judge_items(items, make_judge("openai:mock-judge", options(server)), store=store, progress=False)
            log = list(server.log)
            assert [r.label for r in run.results] == expected
            invalid = [r for r in run.results if r.label == "invalid"]
            assert len(invalid) == 5 and all("unparseable" in r.reason for r in invalid)
            # every kind of failure happened, on about 20% of the 200 questions' first attempts
            first = [entry for entry in log if entry.attempt == 0]
            failed = [entry for entry in first if entry.outcome != "ok"]
            assert len(first) == 200 and 20 <= len(failed) <= 60
            assert {entry.outcome for entry in failed} == set(MODES)
            # a readable answer, once received, is never asked for again
            noise = {e.key for e in log if e.attempt == 4}  # NOISE questions: asked until retries ran out
            ok_per_key: dict[str, int] = {}
            for entry in log:
                if entry.outcome == "ok":
                    ok_per_key[entry.key] = ok_per_key.get(entry.key, 0) + 1
            dup = [k for k, c in ok_per_key.items() if c > 1 and k not in noise]
            assert not dup, [(e.attempt, e.outcome, round(e.time - log[0].time, 3)) for e in log if e.key in dup]
            asked_per_key = {key: sum(e.key == key for e in log) for key in noise}
            assert len(noise) == 10 and set(asked_per_key.values()) == {5}  # bounded: 1 + max_retries
            # Retry-After was honoured
            for entry in failed:
                if entry.outcome == "429":
                    retry = next(e for e in log if e.key == entry.key and e.attempt == 1)
                    assert retry.time - entry.time >= 0.19
            # a rerun asks nothing: every answer, unreadable ones included, was stored
            rerun = judge_items(items, make_judge("openai:mock-judge", options(server)), store=store, progress=False)
            assert len(server.log) == len(log) and rerun.asked == 0
            assert [r.label for r in rerun.results] == expected


def test_retries_run_out_into_invalid_with_reason() -> None:
    with MockJudgeServer(truthful, failures=lambda key, attempt: "500") as server:
        run = judge_items([{"prompt_a": "p", "response_a": "GOOD", "prompt_b": "p", "response_b": "BAD"}],
                          make_judge("openai:m", options(server, max_retries=2)), progress=False)
        assert run.results[0].label == "invalid"
        assert "HTTP 500 after 3 attempts" in run.results[0].reason
        assert len(server.log) == 6


def test_usage_and_cost_are_reported() -> None:
    with MockJudgeServer(truthful) as server:
        judge = make_judge("openai:gpt-4o-mini-2024-07-18", options(server))
        run = judge_items(make_items()[0][:4], judge, progress=False)
    assert judge.usage.completion_tokens == 3 * 8 and judge.usage.prompt_tokens > 0
    assert "8 requests, est. $" in run.cost and "est. $" in run.summary()
    assert known_price("gpt-4o-mini-2024-07-18") == (0.15, 0.60) and known_price("llama") is None


@pytest.mark.parametrize(("mode", "message", "most"), [
    ("401", "HTTP 401.*Incorrect API key", 2),
    ("404", "HTTP 404.*unknown model", 2),
    ("400", "first 3 requests were all rejected with HTTP 400 .*max_tokens", 4),
])
def test_bad_key_model_or_request_stops_at_once(mode: str, message: str, most: int) -> None:
    with MockJudgeServer(truthful, failures=lambda key, attempt: mode) as server:
        with pytest.raises(JpoError, match=message):
            judge_items(make_items()[0][:20], make_judge("openai:m", options(server, concurrency=2)), progress=False)
        assert len(server.log) <= most


def test_a_request_rejected_for_one_item_only_makes_that_item_invalid() -> None:
    items = make_items()[0][:6]
    with MockJudgeServer(truthful, failures=lambda key, attempt: None) as server:
        first_key = None

        def reject_one(key: str, attempt: int) -> str | None:
            nonlocal first_key
            first_key = first_key or key
            return "400" if key == first_key else None

        server.failures = reject_one
        run = judge_items(items, make_judge("openai:m", options(server, concurrency=1)), progress=False)
    assert run.counts["invalid"] == 1 and "HTTP 400" in next(r.reason for r in run.results if r.label == "invalid")
    assert run.counts["a"] + run.counts["b"] == 5


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_the_mock_judge_serves_from_the_command_line():
    """`python -m jpo.cli.mock_judge --port 0`: prints its address and answers a chat completion there."""
    import subprocess
    import sys

    import httpx

    server = subprocess.Popen([sys.executable, "-m", "jpo.cli.mock_judge", "--port", "0"], stdout=subprocess.PIPE,
                              text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        reply = httpx.post(f"{base_url}/chat/completions", timeout=30, json={
            "model": "m", "messages": [{"role": "user", "content": "Output (a): short\nOutput (b): much longer"}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    finally:
        server.terminate()
        server.wait(timeout=30)
