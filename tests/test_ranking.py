"""Ranking systems by joint comparisons: counterbalanced items, the Bradley-Terry fit (choix) against the likelihood,
the oracle recovering systems of known quality, `jpo evaluate --protocol joint`, human labels by id, the mock API."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
from scipy.optimize import minimize

from jpo.cli import main
from jpo.data import item_id, read_jsonl, write_jsonl
from jpo.evaluate.ranking import bradley_terry, evaluate_joint, joint_items
from jpo.feedback import JudgeOptions, make_judge
from jpo.feedback.mock_server import MockJudgeServer
from jpo.tasks import gold, graded_response, make_instance

LEVELS = (0, 1, 2, 4)  # edits away from the ideal answer: the true order is level0 > level1 > level2 > level4


def task(n: int = 60, seed: int = 0, temperatures=(0.0,)) -> tuple[dict[str, list[dict]], list[dict]]:
    rng = random.Random(seed)
    prompts = list(dict.fromkeys(make_instance(rng).prompt for _ in range(n)))
    references = [{"id": item_id(p), "prompt": p, "reference": gold(p, rng)} for p in prompts]
    systems = {f"level{level}": [{"id": item_id(p), "prompt": p, "response": graded_response(p, level, rng),
                                  "temperature": t, "seed": 0} for p in prompts for t in temperatures]
               for level in LEVELS}
    return systems, references


def test_joint_items_are_counterbalanced_across_systems_and_instructions():
    systems, _ = task(30, temperatures=(0.0, 1.0))
    systems["level4"] = systems["level4"][:-2]  # a system that lacks two generations
    items, left_out = joint_items(systems, seed=1)
    assert all(item["prompt_id_a"] != item["prompt_id_b"] for item in items)
    assert all(item["temperature"] in (0.0, 1.0) for item in items)
    per_pair = Counter(frozenset((i["system_a"], i["system_b"])) for i in items)
    assert len(per_pair) == 6 and len(set(per_pair.values())) == 1
    as_a, as_b = Counter(i["system_a"] for i in items), Counter(i["system_b"] for i in items)
    assert as_a == as_b  # every system on each side equally often
    answered = Counter((i["system_a"], i["prompt_id_a"]) for i in items)
    assert len(set(answered.values())) <= 2  # each system answers each prompt as often (per temperature slot)
    assert left_out["generations of level0 that another system lacks"] == 2
    assert left_out["generations of level4 that another system lacks"] == 0
    assert len({i["id"] for i in items}) == len(items)
    capped, _ = joint_items(systems, seed=1, max_per_pair=10)
    assert Counter(frozenset((i["system_a"], i["system_b"])) for i in capped) == {p: 10 for p in per_pair}


def test_the_bradley_terry_fit_is_the_maximum_likelihood_with_ties_as_half_wins():
    rng = np.random.default_rng(0)
    strengths = np.array([1.0, 0.3, -0.2, -1.1])
    a, b = rng.integers(0, 4, 3000), rng.integers(0, 4, 3000)
    keep = a != b
    a, b = a[keep], b[keep]
    p = 1 / (1 + np.exp(-(strengths[a] - strengths[b])))
    score = np.where(rng.random(a.size) < 0.15, 0.5, (rng.random(a.size) < p).astype(float))
    fitted = bradley_terry(4, a, b, score, alpha=0.0)

    def negative_log_likelihood(s):
        margin = s[a] - s[b]
        return -(score * -np.logaddexp(0, -margin) + (1 - score) * -np.logaddexp(0, margin)).sum()

    best = minimize(negative_log_likelihood, np.zeros(4), method="BFGS").x
    assert fitted == pytest.approx(best - best.mean(), abs=1e-3)
    assert list(np.argsort(-fitted)) == [0, 1, 2, 3]
    one_sided = bradley_terry(2, np.array([0, 0, 0]), np.array([1, 1, 1]), np.ones(3))
    assert np.all(np.isfinite(one_sided)) and one_sided[0] > one_sided[1]  # the prior keeps a sweep finite


def test_the_oracle_recovers_the_true_order_by_both_protocols():
    systems, references = task(60)
    result = evaluate_joint(systems, make_judge("oracle"), references=references, progress=False, n_resamples=200)
    truth = [f"level{level}" for level in LEVELS]
    assert result.ranking() == truth and result.conditional_ranking() == truth
    assert result.kendall_tau == pytest.approx(1.0)
    scores = [result.scores[s] for s in truth]
    assert all(low <= est <= high for est, low, high in scores)
    assert scores[0][1] > scores[1][2]  # the ideal system's interval is clear of the next one
    m = result.matrix
    assert all(m[x][y]["rate"] + m[y][x]["rate"] == pytest.approx(1.0) for x in truth for y in truth if x != y)
    assert m["level0"]["level4"]["n"] == 2 * 60
    joint, conditional = result.joint_cost, result.conditional_cost
    assert joint.items == 6 * 2 * 60 and joint.questions <= 2 * joint.items and conditional.items == 4 * 60
    assert joint.prompt_tokens == 0 and joint.asked == joint.questions  # the oracle is free but its calls count
    assert 0 < joint.needed <= joint.decisive and 0 < conditional.needed <= conditional.decisive
    text = result.markdown()
    assert "| 1 | level0 |" in text and "Kendall tau = +1.000" in text


def test_jpo_evaluate_protocol_joint_and_the_human_label_round_trip(tmp_path, capsys):
    systems, references = task(25, seed=3)
    specs = []
    for name, rows in systems.items():
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
        specs.append(f"{name}={tmp_path / f'{name}.jsonl'}")
    write_jsonl(tmp_path / "refs.jsonl", references)
    common = ["evaluate", "--protocol", "joint", "--generations", *specs, "--judge", "oracle", "--no_progress",
              "--n_resamples", "100"]
    assert main([*common, "--references", str(tmp_path / "refs.jsonl"), "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| 1 | level0 |" in printed and "Kendall tau" in printed
    saved = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert saved["joint"]["ranking"] == [f"level{v}" for v in LEVELS]
    assert set(saved["conditional"]["ranking"]) == set(systems) and -1 <= saved["kendall_tau"] <= 1
    assert len(read_jsonl(tmp_path / "out" / "joint_labeled.jsonl")) == 6 * 2 * 25

    # Humans: export the items, label them elsewhere (here `jpo judge`, as `jpo annotate export` would), read back.
    no_judge = [arg for arg in common if arg not in ("--judge", "oracle")]  # exporting asks no judge
    assert main([*no_judge, "--export_items", str(tmp_path / "items.jsonl")]) == 0
    assert main(no_judge) == 2
    assert "--judge SPEC is required (only --protocol joint --export_items asks no judge)" in capsys.readouterr().err
    assert main(["judge", "--input", str(tmp_path / "items.jsonl"), "--output", str(tmp_path / "judged.jsonl"),
                 "--judge", "oracle", "--no_progress"]) == 0
    labels = [{k: row[k] for k in ("id", "prompt_a", "response_a", "prompt_b", "response_b", "label")}
              for row in read_jsonl(tmp_path / "judged.jsonl")][:-5]  # five left unlabelled
    write_jsonl(tmp_path / "labels.jsonl", labels)
    capsys.readouterr()
    assert main([*common, "--labels", str(tmp_path / "labels.jsonl"), "--output", str(tmp_path / "human")]) == 0
    saved = json.loads((tmp_path / "human" / "ranking.json").read_text())
    assert saved["joint"]["ranking"] == [f"level{v}" for v in LEVELS]
    assert saved["left_out"]["joint items without a label"] == 5


def test_joint_ranking_through_the_openai_client_against_the_mock_server():
    # The mock prefers the longer output: systems padded with more words must rank higher.
    prompts = [f"Tell me about topic {i}." for i in range(12)]
    systems = {f"words{k}": [{"id": f"p{i}", "prompt": p, "response": " ".join(["word"] * (k + i % 3)),
                              "temperature": 0.0, "seed": 0} for i, p in enumerate(prompts)] for k in (2, 5, 9)}
    with MockJudgeServer() as server:
        judge = make_judge("openai:mock-judge", JudgeOptions(base_url=server.base_url, concurrency=8,
                                                              request_timeout=5.0))
        result = evaluate_joint(systems, judge, progress=False, n_resamples=100)
        requests = len(server.log)
    assert result.ranking() == ["words9", "words5", "words2"]
    cost = result.joint_cost
    assert cost.asked == cost.questions == requests == 2 * 3 * 2 * 12
    assert cost.prompt_tokens > 0 and cost.per_decisive()["tokens"] > 0
    assert "requests" in result.judge_cost
