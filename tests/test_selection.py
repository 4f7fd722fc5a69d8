"""Selecting joint comparisons under a labelling budget: the streamed pool, each selector against a brute-force
answer, the `jpo pairs --budget` hook, model scores through jpo.train, and the active loop on stories260K."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from conftest import ulps

from jpo.cli import main
from jpo.data import load_items, read_jsonl, write_jsonl
from jpo.errors import JpoError
from jpo.feedback.registry import make_judge
from jpo.feedback.runner import judge_items
from jpo.selection import candidate_chunks, pool_size, select, select_active, select_indices
from jpo.selection.selectors import comparison_item, pair_keys
from jpo.tasks import graded_response, make_instance


def task_instances(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        instance = make_instance(rng)
        if instance.prompt in seen:
            continue
        seen.add(instance.prompt)
        rows.append({"prompt": instance.prompt, "response": graded_response(instance.prompt, rng.randint(0, 3), rng),
                     "family": instance.family})
    return rows


def unordered(a, b) -> list[frozenset]:
    return [frozenset(p) for p in zip(a.tolist(), b.tolist(), strict=True)]


@pytest.mark.parametrize("chunk_size", [5, 1000])
def test_the_all_pairs_pool_streams_every_unordered_pair_once(chunk_size):
    n = 23
    seen = []
    for a, b in candidate_chunks(n, "all", chunk_size=chunk_size):
        assert a.size <= chunk_size and np.all(a != b)
        seen += unordered(a, b)
    assert len(seen) == len(set(seen)) == pool_size(n, "all") == n * (n - 1) // 2


def test_a_partner_pool_gives_k_distinct_partners_per_instance():
    n, k = 40, 3
    pairs = [p for a, b in candidate_chunks(n, k, seed=1, chunk_size=16) for p in unordered(a, b)]
    assert len(pairs) == len(set(pairs)) == n * k
    uses = Counter(i for pair in pairs for i in pair)
    assert set(uses.values()) == {2 * k}
    with pytest.raises(JpoError, match="cannot give"):
        next(candidate_chunks(6, 3))


def test_random_selection_is_seeded_distinct_and_the_same_however_the_pool_is_chunked():
    a, b, report = select_indices(60, "random", 100, seed=3)
    assert report.selected == 100 and report.candidates == 60 * 59 // 2
    assert len(set(unordered(a, b))) == 100
    again = select_indices(60, "random", 100, seed=3, chunk_size=17)
    assert unordered(a, b) == unordered(again[0], again[1])
    other = select_indices(60, "random", 100, seed=4)
    assert unordered(a, b) != unordered(other[0], other[1])


@pytest.mark.parametrize("selector", ["uncertainty", "certainty"])
def test_margin_selectors_take_the_smallest_or_largest_margins_of_the_whole_pool(selector):
    n, budget = 50, 40
    rewards = np.random.default_rng(0).normal(size=n)
    a, b, _ = select_indices(n, selector, budget, rewards=rewards, chunk_size=64)
    margins = np.abs(rewards[a] - rewards[b])
    everything = sorted(abs(rewards[i] - rewards[j]) for i in range(n) for j in range(i + 1, n))
    expected = everything[:budget] if selector == "uncertainty" else everything[-budget:]
    assert sorted(margins) == pytest.approx(sorted(expected))
    order = margins if selector == "uncertainty" else -margins
    assert np.all(np.diff(order) >= 0)  # best first


def test_unscorable_instances_are_left_out_and_counted():
    rewards = np.arange(10, dtype=float)
    rewards[3] = np.nan  # an instance too long for the model
    a, b, report = select_indices(10, "uncertainty", 5, rewards=rewards)
    assert 3 not in set(a.tolist()) | set(b.tolist())
    assert report.unscorable == 9 and "9 unscorable" in report.summary()


def test_coverage_spreads_the_budget_over_instructions_and_families():
    data = task_instances(120)
    budget = 150  # each instruction at most ceil(300 / 120) = 3 times
    covered, report = select(data, "coverage", budget, seed=0)
    random_items, _ = select(data, "random", budget, seed=0)
    assert 0 <= report.over_cap <= budget // 10  # greedy packing leaves a few for the relaxed pass

    def uses(items):
        return Counter(p for item in items for p in (item["prompt_a"], item["prompt_b"]))

    cap = -(-2 * budget // len(data))
    assert max(uses(covered).values()) <= cap + 1 < max(uses(random_items).values())
    assert len(uses(covered)) >= len(data) - 2 > len(uses(random_items))
    family = {row["prompt"]: row["family"] for row in data}
    cells = Counter(tuple(sorted((family[i["prompt_a"]], family[i["prompt_b"]]))) for i in covered)
    share = -(-budget // 15)  # 5 families: 15 cells
    assert max(cells.values()) <= share + report.over_cap and len(cells) == 15


def test_disagreement_picks_the_candidates_two_judges_label_differently():
    data = task_instances(40, seed=2)
    judges = [make_judge("oracle"), make_judge("oracle:temperature=0.3,seed=5")]
    items, report = select(data, "disagreement", 10, pool=4, judges=judges)
    assert report.selected == 10 and report.candidates == 160
    exact, noisy = (judge_items(items, judge, progress=False).results for judge in judges)
    assert all(x.label != y.label for x, y in zip(exact, noisy, strict=True))
    with pytest.raises(JpoError, match="two judges"):
        select(data, "disagreement", 10)


def test_candidates_labelled_before_are_skipped_and_counted():
    n = 30
    first_a, first_b, _ = select_indices(n, "random", 50, seed=0)
    a, b, report = select_indices(n, "random", 50, seed=0, exclude=pair_keys(first_a, first_b, n))
    assert not set(unordered(a, b)) & set(unordered(first_a, first_b))
    assert report.labelled_before == 50 and report.selected == 50


def test_items_are_comparison_items_with_content_ids():
    data = task_instances(10)
    items, _ = select(data, "random", 5, seed=0)
    assert items[0]["id"] == comparison_item(data, *[data.index(next(r for r in data if r["prompt"] == items[0][
        f"prompt_{side}"])) for side in "ab"])["id"]
    assert [item["priority_rank"] for item in items] == list(range(5))


def test_jpo_pairs_budget_writes_the_selected_items(tmp_path, capsys):
    write_jsonl(tmp_path / "sft.jsonl", task_instances(30))
    out = tmp_path / "items.jsonl"
    assert main(["pairs", "--input", str(tmp_path / "sft.jsonl"), "--output", str(out), "--strategy", "coverage",
                 "--budget", "12", "--pool", "5"]) == 0
    assert len(load_items(out)) == 12 and {row["selector"] for row in read_jsonl(out)} == {"coverage"}
    assert "coverage: 12 of 150 candidates" in capsys.readouterr().out
    assert main(["pairs", "--input", str(tmp_path / "sft.jsonl"), "--output", str(out), "--strategy", "uncertainty",
                 "--budget", "12"]) == 2
    assert "needs a reference model" in capsys.readouterr().err


def test_model_scores_come_from_the_training_log_probs(tiny_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jpo.selection.scores import instance_rewards, joint_logps

    data = [{"prompt": "Once upon a time", "response": " there was a cat."},
            {"prompt": "Lily went to the park.", "response": " She saw a big dog and was happy."},
            {"prompt": "Tom had a red ball." * 30, "response": " Yes."}]  # no room for a response in 64 tokens
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.pad_token = tokenizer.eos_token
    logps, tokens = joint_logps(model, tokenizer, data, max_length=64, batch_size=2)
    assert np.isnan(logps[2]) and tokens[2] == 0
    for row, logp, count in zip(data[:2], logps, tokens, strict=False):
        ids = tokenizer(row["prompt"] + row["response"] + tokenizer.eos_token)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        direct = logits.gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).sum().item()
        assert logp == pytest.approx(direct, abs=ulps(128, direct)) and count == len(ids) - 1  # float32 rounding
    rewards = instance_rewards(data[:2], str(tiny_model_path))
    assert rewards == pytest.approx(logps[:2] / tokens[:2], abs=1e-4)
    same = instance_rewards(data[:2], str(tiny_model_path), policy=str(tiny_model_path))
    assert same == pytest.approx([0.0, 0.0], abs=1e-6)  # the implicit reward of the reference itself


def test_the_active_loop_labels_in_rounds_and_ranks_with_the_trained_policy(tiny_model_path, tmp_path):
    data = task_instances(16, seed=4)
    config = dict(per_device_train_batch_size=4, learning_rate=1e-3, beta=0.1, max_length=128, max_steps=2,
                  logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, objective="jpo")
    result = select_active(data, 12, judge=make_judge("oracle"), reference=str(tiny_model_path),
                           train_config=config, output_dir=str(tmp_path), rounds=2, pool=3)
    assert [r.selected for r in result.reports] == [6, 6]
    assert len({row["id"] for row in result.rows}) == 12  # nothing bought twice
    assert result.reports[1].labelled_before == 6
    assert [row["round"] for row in result.rows] == [0] * 6 + [1] * 6
    assert result.models == [str(tmp_path / "round_0")] and (tmp_path / "round_0" / "config.json").exists()
    assert result.decisive == [sum(r["label"] in "ab" for r in result.rows if r["round"] == k) for k in (0, 1)]


def test_an_active_round_without_a_decisive_label_keeps_its_model(tmp_path, tiny_model_path):
    """A round whose labels are all ties (a small budget on a task with many ties) trains no model: the next round is
    chosen as this one was, and the summary says so -- instead of stopping the whole selection."""
    from jpo.feedback.base import SyncJudge, Verdict

    class AlwaysTie(SyncJudge):
        id = "always-tie"

        @classmethod
        def from_spec(cls, argument, options):
            return cls()

        def answer_batch_sync(self, questions):
            return [Verdict("tie", raw="tie") for _ in questions]

    data = task_instances(12)
    result = select_active(data, 4, judge=AlwaysTie(), reference=str(tiny_model_path),
                           train_config={"objective": "jpo", "max_steps": 1, "use_cpu": True, "report_to": "none"},
                           output_dir=str(tmp_path), rounds=2, pool=3)
    assert [r.selected for r in result.reports] == [2, 2] and result.decisive == [0, 0]
    assert result.models == [] and result.untrained == [0] and not (tmp_path / "round_0").exists()
    first_round = result.summary().split("; round 1")[0]
    assert first_round.startswith("round 0: 2 labelled, 0 decisive") and "(no model trained" in first_round


def test_scoring_is_capped_at_the_model_context_and_its_losses_are_counted(tiny_model_path, tmp_path, capsys,
                                                                           caplog):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jpo.selection.scores import joint_logps

    data = [{"prompt": "Once upon a time", "response": " there was a cat."},
            {"prompt": "Tell a story.", "response": " The dog ran." * 200},  # kept from its start: truncated
            {"prompt": "Tom had a red ball." * 200, "response": " Yes."}]  # no room for a response: unscorable
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.pad_token = tokenizer.eos_token
    stats: dict[str, int] = {}
    with caplog.at_level("WARNING"):
        logps, tokens = joint_logps(model, tokenizer, data, max_length=None, batch_size=2, stats=stats)
    assert "beyond the model's context of 512 positions" in caplog.text  # no limit asked: the model's is kept
    assert stats == {"truncated": 1, "unscorable": 1}
    assert tokens[1] == 511 and np.isnan(logps[2]) and not np.isnan(logps[:2]).any()
    write_jsonl(tmp_path / "sft.jsonl", task_instances(6) + data[1:])
    assert main(["pairs", "--input", str(tmp_path / "sft.jsonl"), "--output", str(tmp_path / "items.jsonl"),
                 "--strategy", "uncertainty", "--budget", "3", "--model", str(tiny_model_path),
                 "--no_progress"]) == 0
    assert ("1 instances truncated to fit the model's context when scored, 1 unscorable (too long to score at all)"
            in capsys.readouterr().out)
