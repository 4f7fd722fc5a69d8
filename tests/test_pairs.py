"""Joint pair construction: derangement, determinism, strategies, mixes, and the `jpo pairs` command."""

from __future__ import annotations

from collections import Counter

import pytest

from jpo.cli import main
from jpo.data import load_items, load_preferences, read_jsonl, write_jsonl
from jpo.data.pairs import PairReport, build_pairs, instances_from_preferences, instances_from_sft, mix
from jpo.errors import JpoError


def instances(n: int, task: bool = False) -> list[dict]:
    rows = [{"prompt": f"instruction {i}", "response": f"response {i}"} for i in range(n)]
    if task:
        for i, row in enumerate(rows):
            row["task"] = ["sort", "reverse", "count"][i % 3]
    return rows


@pytest.mark.parametrize("k", [1, 3])
def test_random_pairs_are_a_derangement_with_k_distinct_partners(k):
    data = instances(50)
    items = build_pairs(data, pairs_per_instance=k, seed=1)
    assert len(items) == k * 50
    assert all(item["prompt_a"] != item["prompt_b"] for item in items)
    as_a = Counter(item["prompt_a"] for item in items)
    as_b = Counter(item["prompt_b"] for item in items)
    assert set(as_a.values()) == {k} and set(as_b.values()) == {k}
    assert len({frozenset((i["prompt_a"], i["prompt_b"])) for i in items}) == k * 50  # no pair twice
    assert all(i["response_a"] == i["prompt_a"].replace("instruction", "response") for i in items)


def test_pairing_is_deterministic_under_a_seed_and_ids_are_stable():
    first = build_pairs(instances(40), seed=7)
    assert first == build_pairs(instances(40), seed=7)
    assert [i["id"] for i in first] != [i["id"] for i in build_pairs(instances(40), seed=8)]
    assert len({i["id"] for i in first}) == 40


def test_conditional_data_gives_one_instance_per_instruction_picked_by_seed():
    rows = [{"prompt_chosen": f"P{i}", "chosen": f"good {i}", "prompt_rejected": f"P{i}", "rejected": f"bad {i}"}
            for i in range(200)]
    report = PairReport()
    picked = instances_from_preferences(rows, seed=0, report=report)
    assert [r["prompt"] for r in picked] == [f"P{i}" for i in range(200)]
    good = sum(r["response"].startswith("good") for r in picked)
    assert 60 < good < 140  # a fair coin per instruction, not always the chosen side
    assert picked == instances_from_preferences(rows, seed=0, report=PairReport())
    assert picked != instances_from_preferences(rows, seed=1, report=PairReport())
    assert (report.rows_in, report.instances, report.duplicate_instructions) == (200, 200, 0)


def test_repeated_instructions_are_merged_and_counted():
    rows = instances(10) + [{"prompt": "instruction 3", "response": "another answer"}]
    report = PairReport()
    kept = instances_from_sft(rows, report)
    assert len(kept) == 10 and report.duplicate_instructions == 1
    assert "1 repeated instructions merged" in report.summary()


def test_cross_task_pairs_never_share_a_task():
    data = instances(60, task=True)
    items = build_pairs(data, strategy="cross-task", pairs_per_instance=2, seed=0)
    task = {row["prompt"]: row["task"] for row in data}
    assert len(items) == 120
    assert all(task[i["prompt_a"]] != task[i["prompt_b"]] for i in items)


def test_cross_task_needs_labels_and_balance():
    with pytest.raises(JpoError, match="needs a task label"):
        build_pairs(instances(10), strategy="cross-task")
    lopsided = instances(10, task=True)
    for row in lopsided[:8]:
        row["task"] = "sort"
    with pytest.raises(JpoError, match="largest task"):
        build_pairs(lopsided, strategy="cross-task")


def test_similar_pairs_pick_the_nearest_other_instruction():
    data = [
        {"prompt": "how to cook fried rice at home", "response": "r1"},
        {"prompt": "how to cook fried rice quickly", "response": "r2"},
        {"prompt": "how to fix a flat bicycle tire", "response": "r3"},
        {"prompt": "how to fix a bicycle tire puncture", "response": "r4"},
    ]
    items = build_pairs(data, strategy="similar")
    pairs = {frozenset((i["prompt_a"], i["prompt_b"])) for i in items}
    assert pairs == {frozenset((data[0]["prompt"], data[1]["prompt"])),
                     frozenset((data[2]["prompt"], data[3]["prompt"]))}


def test_too_few_instances_is_a_clear_error():
    with pytest.raises(JpoError, match="cannot give 2 distinct partner"):
        build_pairs(instances(4), pairs_per_instance=2)


def test_mix_union_and_ablation_ratio():
    dc = [{"prompt_chosen": f"C{i}", "chosen": "a", "prompt_rejected": f"C{i}", "rejected": "b"} for i in range(10)]
    dh = [{"prompt_chosen": f"H{i}", "chosen": "a", "prompt_rejected": f"G{i}", "rejected": "b"} for i in range(10)]
    union, counts = mix(dc, dh, seed=0)
    assert len(union) == 20 and counts["D_C"] == counts["D_H"] == 10
    assert Counter(r["data"] for r in union) == {"D_C": 10, "D_H": 10}
    half, counts = mix(dc, dh, total=10, joint_fraction=0.5, seed=0)
    assert Counter(r["data"] for r in half) == {"D_C": 5, "D_H": 5}
    assert counts["left_out_D_C"] == 5
    assert half == mix(dc, dh, total=10, joint_fraction=0.5, seed=0)[0]
    with pytest.raises(JpoError, match="needs 0 conditional and 12 joint"):
        mix(dc, dh, total=12, joint_fraction=1.0)


def test_pairs_command_end_to_end(tmp_path, capsys):
    source = tmp_path / "sft.jsonl"
    write_jsonl(source, instances(30))
    out = tmp_path / "items.jsonl"
    assert main(["pairs", "--input", str(source), "--output", str(out), "--pairs-per-instance", "2", "--seed", "3"]) == 0
    assert "30 rows -> 30 instances; 60 comparison items" in capsys.readouterr().out
    items = load_items(out)
    assert len(items) == 60 and items == read_jsonl(out)
    first_ids = [i["id"] for i in items]
    assert main(["pairs", "--input", str(source), "--output", str(out), "--pairs-per-instance", "2", "--seed", "3"]) == 0
    assert [i["id"] for i in read_jsonl(out)] == first_ids


def test_pairs_mix_command(tmp_path, capsys):
    dc, dh = tmp_path / "dc.jsonl", tmp_path / "dh.jsonl"
    write_jsonl(dc, [{"prompt": f"C{i}", "chosen": "a", "rejected": "b"} for i in range(6)])
    write_jsonl(dh, [{"prompt_chosen": f"H{i}", "chosen": "a", "prompt_rejected": f"G{i}", "rejected": "b"}
                     for i in range(6)])
    out = tmp_path / "dm.jsonl"
    assert main(["pairs", "mix", "--conditional", str(dc), "--joint", str(dh), "--output", str(out)]) == 0
    assert "6 D_C + 6 D_H = 12 rows, 0 identical pairs" in capsys.readouterr().out
    assert len(load_preferences(out)) == 12
    write_jsonl(dc, [{"prompt": f"C{i}", "chosen": "a", "rejected": "a" if i < 2 else "b"} for i in range(6)])
    assert main(["pairs", "mix", "--conditional", str(dc), "--joint", str(dh), "--output", str(out)]) == 0
    assert "6 D_C + 6 D_H = 12 rows, 2 identical pairs (chosen equals rejected)" in capsys.readouterr().out
    assert len(load_preferences(out)) == 12  # counted, not dropped: training drops (and counts) them


def test_pairs_from_the_authors_conditional_data(shared_data, tmp_path):
    source = shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl")
    out = tmp_path / "items.jsonl"
    assert main(["pairs", "--input", str(source), "--output", str(out)]) == 0
    items = load_items(out)
    rows = load_preferences(source)
    assert len(items) == len({r["prompt_chosen"] for r in rows})
    assert all(i["prompt_a"] != i["prompt_b"] for i in items)


def test_proxy_pairs_chosen_of_one_row_against_rejected_of_another():
    from jpo.data.pairs import build_pairs

    rows = [{"prompt_chosen": f"I{i}", "chosen": f"good{i}", "prompt_rejected": f"I{i}", "rejected": f"bad{i}"}
            for i in range(20)]
    report = PairReport()
    out = build_pairs(rows, kind="preference", strategy="proxy", seed=4, report=report)
    assert len(out) == 20 == report.items
    by_prompt = {r["prompt_chosen"]: r for r in rows}
    for row in out:
        assert row["prompt_chosen"] != row["prompt_rejected"]
        assert row["chosen"] == by_prompt[row["prompt_chosen"]]["chosen"]  # a chosen side stays chosen
        assert row["rejected"] == by_prompt[row["prompt_rejected"]]["rejected"]
    assert sorted(r["prompt_chosen"] for r in out) == sorted(r["prompt_rejected"] for r in out)  # each row once per side
    assert out == build_pairs(rows, kind="preference", strategy="proxy", seed=4)
    with pytest.raises(JpoError, match="preference rows"):
        build_pairs([{"prompt": "a", "response": "b"}] * 3, kind="sft", strategy="proxy")


def test_pairs_proxy_command_on_the_ultrafeedback_sample(shared_data, tmp_path, capsys):
    source = shared_data("ultrafeedback_sample", "train_clean.jsonl")
    out = tmp_path / "dh.jsonl"
    assert main(["pairs", "--input", str(source), "--output", str(out), "--strategy", "proxy", "--seed", "1"]) == 0
    assert "preference rows (labelled by construction)" in capsys.readouterr().out
    joint = load_preferences(out)
    conditional = load_preferences(source)
    assert len(conditional) - 5 <= len(joint) <= len(conditional)  # only same-instruction partners are left out
    assert all(r["prompt_chosen"] != r["prompt_rejected"] for r in joint)
    chosen = {(r["prompt_chosen"], r["chosen"]) for r in conditional}
    rejected = {(r["prompt_rejected"], r["rejected"]) for r in conditional}
    assert all((r["prompt_chosen"], r["chosen"]) in chosen and (r["prompt_rejected"], r["rejected"]) in rejected
               for r in joint)
