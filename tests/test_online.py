"""Online JPO (`jpo.online.loop`): the loop end to end with the synthetic task's oracle and a tiny built model, in
each mode; the per-round cost log; resuming without regenerating or re-judging; the TRL-shaped entry point."""

from __future__ import annotations

import json

import pytest

from jpo.errors import JpoError
from jpo.online.config import OnlineJPOConfig
from jpo.online.loop import OnlineJPOTrainer, comparisons, train_online
from jpo.tasks import Sizes, build_splits, corpus
from jpo.tasks.oracle import OracleJudge

TRAIN = {"per_device_train_batch_size": 4, "max_steps": 1, "learning_rate": 1e-3, "logging_steps": 1,
         "report_to": "none", "bf16": False, "max_length": 96}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 1-layer Llama with a BPE tokenizer trained on the synthetic task's text, and 12 pool prompts."""
    from jpo.runner.tiny import save_base_model
    from jpo.train import train_sft

    splits = build_splits(Sizes(pretrain=64, pool=12, validation=2, test=2), seed=0)
    base = tmp_path_factory.mktemp("base")
    save_base_model(corpus(splits), base, vocab_size=300, hidden_size=32, layers=1, heads=2, intermediate_size=64)
    # a few SFT steps, so that samples use the task's words and the oracle's verdicts are not all ties
    folder = tmp_path_factory.mktemp("model")
    train_sft({"model_name_or_path": str(base), "output_dir": str(folder), "max_steps": 30, "learning_rate": 1e-2,
               "per_device_train_batch_size": 16, "report_to": "none", "bf16": False, "save_strategy": "no",
               "logging_steps": 10}, [{"prompt": r["prompt"], "response": r["response"]} for r in splits["pretrain"]])
    prompts = [{"prompt": row["prompt"], "family": row["family"]} for row in splits["pool"]]
    return str(folder), prompts


class CountingOracle(OracleJudge):
    """The exact oracle, counting every question it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.questions = 0

    def answer_batch_sync(self, questions):
        self.questions += len(questions)
        return super().answer_batch_sync(questions)


def config(tmp_path, model, **changes) -> OnlineJPOConfig:
    values = {"output_dir": str(tmp_path / "online"), "model_name_or_path": model, "rounds": 2,
              "prompts_per_round": 6, "max_new_tokens": 6, "temperature": 1.0, **TRAIN, **changes}
    return OnlineJPOConfig(**values)


@pytest.mark.parametrize("mode, joint, conditional", [("jpo", 6, 0), ("dpo", 0, 6), ("mix", 12, 6)])
def test_each_mode_samples_compares_judges_and_trains(tiny, tmp_path, mode, joint, conditional):
    model, prompts = tiny
    judge = CountingOracle()
    result = train_online(config(tmp_path, model, mode=mode), prompts, judge)
    assert [e["round"] for e in result.rounds] == [1, 2] and result.ran == [1, 2] and result.resumed == []
    per_prompt = {"jpo": 1, "dpo": 2, "mix": 2}[mode]
    for entry in result.rounds:
        assert entry["prompts"] == 6 and entry["samples"] == 6 * per_prompt
        assert entry["comparisons"] == {"joint": joint, "conditional": conditional}
        assert sum(entry["labels"].values()) == joint + conditional
        assert entry["decisive"] == entry["labels"]["a"] + entry["labels"]["b"] == entry["train_rows"]
        assert 0 < entry["tokens_generated"] <= entry["samples"] * 6
        assert entry["judge_asked"] + entry["judge_reused"] == entry["judge_questions"] <= 2 * (joint + conditional)
        assert set(entry["seconds"]) == {"generation", "judging", "training", "total"}
        assert entry["train_steps"] == (1 if entry["decisive"] else 0)
    assert judge.questions == sum(e["judge_asked"] for e in result.rounds) > 0
    assert result.rounds[-1]["cumulative"]["decisive"] > 0  # the fixture's model gives the oracle something to prefer
    out = tmp_path / "online"
    log = [json.loads(line) for line in (out / "online_log.jsonl").read_text().splitlines()]
    assert log == result.rounds
    assert log[1]["cumulative"]["samples"] == 2 * 6 * per_prompt
    assert (out / "config.json").exists() and (out / "rounds" / "round-002" / "model" / "config.json").exists()
    labelled = [json.loads(line) for line in (out / "rounds" / "round-001" / "labeled.jsonl").read_text().splitlines()]
    # judged in both orders, as `jpo judge` does; a conditional item compares two samples of one prompt
    assert all(len(row["verdicts"]) == 2 and row["judge"] == judge.id for row in labelled)
    for row in labelled:
        assert (row["prompt_a"] == row["prompt_b"]) == (row["kind"] == "conditional")


@pytest.mark.parametrize("selector, extra", [("uncertainty", {}), (
    "disagreement", {"selection_judges": ["oracle:temperature=0.3,seed=1", "oracle:temperature=0.3,seed=2"]})])
def test_a_selector_chooses_the_joint_comparisons(tiny, tmp_path, selector, extra):
    model, prompts = tiny
    result = train_online(config(tmp_path, model, selector=selector, selection_budget=3, **extra), prompts,
                          OracleJudge())
    assert [e["comparisons"]["joint"] for e in result.rounds] == [3, 3]
    assert result.rounds[0]["train_steps"] == 1  # round 2 then scores with the trained policy against the reference
    rows = (tmp_path / "online" / "rounds" / "round-002" / "labeled.jsonl").read_text().splitlines()
    assert {json.loads(line)["selector"] for line in rows} == {selector}


def test_the_policy_moves_and_each_reference_is_used(tiny, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model, prompts = tiny
    start = AutoModelForCausalLM.from_pretrained(model)
    for reference in ("sft", "previous"):
        out = tmp_path / reference
        # the reference's log-probs precomputed each round, as the demo's training settings ask
        result = train_online(config(out, model, ref_model=reference, train_on="all", prompts_per_round=4,
                                     precompute_ref_log_probs=True, ref_cache_dir=str(out / "cache")),
                              prompts, OracleJudge())
        trained = AutoModelForCausalLM.from_pretrained(out / "online")
        changed = any(not torch.equal(a, b) for a, b in zip(start.parameters(), trained.parameters(), strict=True))
        assert result.rounds[-1]["cumulative"]["train_steps"] > 0 and changed
        # train_on all: round 2 trains on round 1's labels too
        assert result.rounds[1]["train_rows"] == result.rounds[0]["decisive"] + result.rounds[1]["decisive"]


def test_resume_reads_finished_rounds_and_never_regenerates_or_rejudges(tiny, tmp_path, monkeypatch):
    import jpo.online.loop as online

    model, prompts = tiny
    calls = []
    real = online.sample_transformers
    monkeypatch.setattr(online, "sample_transformers", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    first_judge = CountingOracle()
    first = train_online(config(tmp_path, model, rounds=2), prompts, first_judge)
    assert len(calls) == 2 and first.ran == [1, 2]
    rounds = tmp_path / "online" / "rounds"
    kept = {n: (rounds / f"round-00{n}" / "samples.jsonl").read_text() for n in (1, 2)}
    stamps = {n: (rounds / f"round-00{n}" / "labeled.jsonl").stat().st_mtime_ns for n in (1, 2)}

    calls.clear()
    second_judge = CountingOracle()
    second = train_online(config(tmp_path, model, rounds=3), prompts, second_judge)
    assert second.resumed == [1, 2] and second.ran == [3] and len(calls) == 1  # round 3 only sampled
    assert second_judge.questions == second.rounds[2]["judge_asked"]  # only round 3's questions asked
    assert second.rounds[:2] == first.rounds
    for n in (1, 2):
        assert (rounds / f"round-00{n}" / "samples.jsonl").read_text() == kept[n]
        assert (rounds / f"round-00{n}" / "labeled.jsonl").stat().st_mtime_ns == stamps[n]
    assert second.rounds[2]["cumulative"]["samples"] == 3 * 6
    # round 3's prompts continue the seeded order: 6 new prompts after 2 x 6 of the 12
    third = [json.loads(line)["prompt"] for line in (rounds / "round-003" / "samples.jsonl").read_text().splitlines()]
    earlier = {json.loads(line)["prompt"] for n in (1,) for line in kept[n].splitlines()}
    assert set(third) == earlier  # 12 prompts, 6 per round: round 3 wraps around to round 1's

    with pytest.raises(JpoError, match=r"other settings \(mode: 'jpo' -> 'mix', samples_per_prompt: 1 -> 2\)"):
        train_online(config(tmp_path, model, rounds=4, mode="mix"), prompts, CountingOracle())

    # a round killed after judging: its samples and labels are read, only training runs again
    (rounds / "round-003" / "round.json").unlink()
    calls.clear()
    again_judge = CountingOracle()
    again = train_online(config(tmp_path, model, rounds=3), prompts, again_judge)
    assert again.ran == [3] and calls == [] and again_judge.questions == 0
    assert again.rounds[2]["judge_questions"] == second.rounds[2]["judge_questions"]


def test_missing_eos_penalty_decides_without_the_judge():
    cfg = OnlineJPOConfig(output_dir="unused", mode="dpo", missing_eos_penalty=1.0, report_to="none")
    samples = [{"prompt": "p", "sample": 0, "response": "x", "eos": True, "tokens": 2},
               {"prompt": "p", "sample": 1, "response": "y", "eos": False, "tokens": 6}]
    items, _ = comparisons(samples, cfg, seed=0)
    from jpo.online.loop import judge_round

    judge = CountingOracle()
    labelled, stats = judge_round(items, judge, None, cfg)
    assert labelled[0]["label"] == "a" and labelled[0]["decided_by"] == "missing_eos_penalty"
    assert judge.questions == 0 and stats["eos_decided"] == 1


def test_bad_settings_are_one_line_errors(tiny, tmp_path):
    model, prompts = tiny
    with pytest.raises(JpoError, match="even number"):
        OnlineJPOConfig(output_dir="x", mode="dpo", samples_per_prompt=3, report_to="none")
    with pytest.raises(JpoError, match="mode must be one of"):
        OnlineJPOConfig(output_dir="x", mode="online", report_to="none")
    from jpo.online.loop import prompt_pool

    assert prompt_pool(["a", {"prompt": "b", "family": "x"}, "a"]) == ([{"prompt": "a"}, {"prompt": "b", "family": "x"}], 1)
    with pytest.raises(JpoError, match="prompt 1: expected a string or a row with a 'prompt' field"):
        prompt_pool([{"instruction": "a"}])
    with pytest.raises(JpoError, match="exceeds the pool"):
        train_online(config(tmp_path, model, prompts_per_round=13), prompts, OracleJudge())
    with pytest.raises(JpoError, match="disagreement selector needs two"):
        OnlineJPOConfig(output_dir="x", selector="disagreement", report_to="none")
    with pytest.raises(JpoError, match="vllm package"):
        train_online(config(tmp_path, model, generation_backend="vllm"), prompts, OracleJudge())
    with pytest.raises(JpoError, match="^rounds must be >= 1, got 0$"):
        OnlineJPOConfig(output_dir="x", rounds=0, report_to="none")


def test_a_round_without_a_decisive_label_says_so(tiny, tmp_path, caplog):
    """Every comparison a tie (a margin no quality difference reaches): the round trains nothing, and says why."""
    model, prompts = tiny
    with caplog.at_level("WARNING", logger="jpo.online.loop"):
        result = train_online(config(tmp_path, model, rounds=1), prompts, OracleJudge(margin=1e9))
    assert result.rounds[0]["decisive"] == 0 and result.rounds[0]["train_steps"] == 0
    assert "online round 1: no decisive label among 6 comparisons" in caplog.text


def test_trainer_entry_point_shaped_like_trl(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import jpo

    model, prompts = tiny
    assert jpo.OnlineJPOTrainer is OnlineJPOTrainer and jpo.OnlineJPOConfig is OnlineJPOConfig
    # a model name and no tokenizer (loaded from it), as in the README; then a model object and its tokenizer
    for name, given, tokenizer in (("path", model, None),
                                   ("object", AutoModelForCausalLM.from_pretrained(model),
                                    AutoTokenizer.from_pretrained(model))):
        trainer = OnlineJPOTrainer(given, args=config(tmp_path / name, None, rounds=1),
                                   train_dataset=[p["prompt"] for p in prompts], judge="oracle",
                                   processing_class=tokenizer)
        result = trainer.train()
        assert result.pool == {"prompts": 12, "repeated_prompts_left_out": 0}
        assert trainer.log_history == result.rounds and len(result.rounds) == 1
        assert trainer.model is result.model and (tmp_path / name / "online" / "tokenizer_config.json").exists()


def test_sampling_says_which_prompts_were_truncated_to_fit_the_context(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jpo.online.loop import sample_transformers

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    long = " ".join(["Once upon a time there was a little dog."] * 120)  # beyond stories260K's 512 positions
    drawn = sample_transformers(model, tokenizer, ["The dog", long], 2, max_new_tokens=4, temperature=1.0, top_p=1.0,
                                batch_size=4, seed=0)
    assert [[s["prompt_truncated"] for s in per_prompt] for per_prompt in drawn] == [[False, False], [True, True]]
