"""Generation with a real tiny model, and judging generations against gold by id."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from jpo.evaluate.against_gold import comparison_items, evaluate_generations
from jpo.evaluate.generate import generate, to_alpaca_eval
from jpo.feedback import JudgeOptions, make_judge
from jpo.feedback.mock_server import MockJudgeServer, prefer_longer

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [{"id": "p1", "prompt": "Once upon a time"}, {"id": "p2", "prompt": "Lily and Ben went to the big park"},
           {"id": "p3", "prompt": "The dog", "reference": "gold"}]


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_path), AutoTokenizer.from_pretrained(tiny_model_path)


def test_batched_greedy_generation_matches_one_at_a_time(tiny) -> None:
    model, tokenizer = tiny
    assert tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token
    batched = generate(model, tokenizer, PROMPTS, [0.0], max_new_tokens=24, batch_size=3, progress=False)
    alone = [generate(model, tokenizer, [p], [0.0], max_new_tokens=24, batch_size=1, progress=False)[0]
             for p in PROMPTS]
    assert [r["response"] for r in batched] == [r["response"] for r in alone]
    assert batched[0]["response"].startswith(", there was a little girl named Lily")  # the model's known story
    assert [r["id"] for r in batched] == ["p1", "p2", "p3"] and "reference" not in batched[2]


def test_temperatures_and_seeds_are_repeatable(tiny) -> None:
    model, tokenizer = tiny
    rows = generate(model, tokenizer, PROMPTS, [0.001, 1.0], [0, 1], max_new_tokens=16, progress=False)
    assert len(rows) == 12 and {(r["temperature"], r["seed"]) for r in rows} == {(t, s) for t in (0.001, 1.0)
                                                                                  for s in (0, 1)}
    again = generate(model, tokenizer, PROMPTS, [0.001, 1.0], [0, 1], max_new_tokens=16, progress=False)
    assert [r["response"] for r in rows] == [r["response"] for r in again]
    hot = {r["seed"]: r["response"] for r in rows if r["temperature"] == 1.0 and r["id"] == "p2"}
    assert hot[0] != hot[1]
    exported = to_alpaca_eval(rows, temperature=1.0)
    assert [e["instruction"] for e in exported] == [p["prompt"] for p in PROMPTS]
    assert set(exported[0]) == {"instruction", "output", "generator", "dataset"}


def test_generations_join_references_by_id_not_line_order() -> None:
    generations = [{"id": f"q{i}", "prompt": f"say {i}", "response": "x" * (i % 4), "temperature": t, "seed": 0}
                   for t in (0.5, 1.0) for i in range(12)]
    references = [{"id": f"q{i}", "prompt": f"say {i}", "reference": "xx"} for i in range(12)]
    random.Random(0).shuffle(references)
    with MockJudgeServer(prefer_longer) as server:
        judge = make_judge("openai:mock", JudgeOptions(base_url=server.base_url))
        result = evaluate_generations(generations, references, judge, progress=False, n_resamples=500)
    # longer than "xx" wins, equal ties, shorter loses: i % 4 == 3 win, == 2 tie, else loss
    at_half = result.per_temperature[0.5]
    assert (at_half.wins, at_half.ties, at_half.losses) == (3, 3, 6)
    assert at_half.estimate == pytest.approx((3 + 1.5) / 12)
    assert result.average.n == 24 and result.average.estimate == pytest.approx(at_half.estimate)
    assert "| 0.5 | 37.5% |" in result.markdown() and result.as_dict()["average"]["wins"] == 6
    with pytest.raises(Exception, match=r"row 1: field 'id': id 'q0' has no reference \(2 of 24"):
        comparison_items(generations, [r for r in references if r["id"] != "q0"], generations_path="g.jsonl")


def test_generate_and_evaluate_commands(tmp_path: Path, tiny_model_path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": p["id"], "prompt": p["prompt"], "reference": "A short gold."}) + "\n"
                               for p in PROMPTS))
    env = {"PYTHONPATH": str(ROOT / "src")}
    import os

    env = {**os.environ, **env}
    gen = subprocess.run([sys.executable, "-m", "jpo", "generate", "--model", str(tiny_model_path), "--prompts",
                          str(prompts), "--temperatures", "0.001,1.0", "--output", str(tmp_path / "gen.jsonl"),
                          "--max_new_tokens", "12", "--backend", "hf", "--alpaca_eval", str(tmp_path / "ae.json"),
                          "--no_progress"], capture_output=True, text=True, env=env, timeout=300)
    assert gen.returncode == 0, gen.stderr
    assert "6 generations (3 prompts x 2 temperatures x 1 seeds" in gen.stdout
    assert len(json.loads((tmp_path / "ae.json").read_text())) == 3
    with MockJudgeServer(prefer_longer) as server:
        ev = subprocess.run([sys.executable, "-m", "jpo", "evaluate", "--generations", str(tmp_path / "gen.jsonl"),
                             "--references", str(prompts), "--judge", "openai:mock", "--base_url", server.base_url,
                             "--output", str(tmp_path / "eval"), "--no_progress", "--n_resamples", "200"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert ev.returncode == 0, ev.stderr
    report = json.loads((tmp_path / "eval" / "winrate.json").read_text())
    assert [row["temperature"] for row in report["per_temperature"]] == [0.001, 1.0]
    assert report["average"]["n"] == 6
    assert (tmp_path / "eval" / "winrate.md").read_text().startswith("Win-rate against gold")
    labeled = [json.loads(line) for line in (tmp_path / "eval" / "labeled.jsonl").read_text().splitlines()]
    assert {row["prompt_id"] for row in labeled} == {"p1", "p2", "p3"}
    assert all(row["response_b"] == "A short gold." for row in labeled)
    bad = subprocess.run([sys.executable, "-m", "jpo", "evaluate", "--generations", str(tmp_path / "gen.jsonl"),
                          "--references", str(tmp_path / "missing.jsonl"), "--judge", "oracle"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "missing.jsonl" in bad.stderr


def test_alpaca_eval_round_trip_on_the_real_file(tiny, shared_data) -> None:
    from jpo.data import load_prompts

    model, tokenizer = tiny
    prompts = load_prompts(shared_data("alpaca_eval", "gpt4_1106_preview_model_outputs.json"))
    assert len(prompts) == 805
    rows = generate(model, tokenizer, prompts[:3], [0.001], max_new_tokens=8, generator="tiny", progress=False)
    exported = to_alpaca_eval(rows)
    assert [e["instruction"] for e in exported] == [p["prompt"] for p in prompts[:3]]
    assert {e["generator"] for e in exported} == {"tiny"} and exported[0]["dataset"] == prompts[0]["dataset"]
    with MockJudgeServer(prefer_longer) as server:
        judge = make_judge("openai:mock", JudgeOptions(base_url=server.base_url))
        result = evaluate_generations(rows, list(reversed(prompts)), judge, progress=False, n_resamples=200)
    assert result.average.n == 3 and result.average.losses == 3  # GPT-4 Turbo's long answers beat 8 tokens
    assert all(row["response_b"] == ref["reference"] for row, ref in zip(result.rows, prompts, strict=False))


def test_generate_reports_prompts_truncated_to_fit_the_context(tmp_path: Path, tiny_model_path, capsys) -> None:
    from jpo.cli import main

    prompts = tmp_path / "prompts.jsonl"
    long = " ".join(["Once upon a time there was a little dog."] * 120)  # far beyond stories260K's 512 positions
    prompts.write_text("".join(json.dumps(p) + "\n" for p in [{"id": "short", "prompt": "The dog"},
                                                                {"id": "long", "prompt": long}]))
    assert main(["generate", "--model", str(tiny_model_path), "--prompts", str(prompts), "--temperatures", "0",
                 "--output", str(tmp_path / "gen.jsonl"), "--max_new_tokens", "4", "--backend", "hf",
                 "--no_progress"]) == 0
    assert "1 prompts truncated to fit the context" in capsys.readouterr().out
