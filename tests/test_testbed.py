"""A testbed that can tell methods apart (issue 25): the run variants a recipe expresses (a nested fraction of D_C,
fresh conditional labels, another data order, another run's number of steps), the sensitivity checks R1-R4 first in
the report, the equal-budget control, seeds that reseed the base model, reproducible results.json, and the README's
numbers generated from a report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from jpo.data import read_jsonl, write_jsonl
from jpo.errors import JpoError
from jpo.runner.recipe import load_recipe, parse_recipe, recipe_values

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def demo_values() -> dict:
    return yaml.safe_load((CONFIGS / "demo.yaml").read_text())


# --- recipe: the variants ----------------------------------------------------------------------------------------


def test_the_demo_has_the_sensitivity_runs_and_the_equal_budget_control():
    recipe = load_recipe(CONFIGS / "demo.yaml")
    runs = {r.name: r for r in recipe.runs()}
    checks = recipe.sensitivity
    full, half, more, reordered = (runs[n] for n in (checks.run, checks.half, checks.more, checks.reordered))
    assert full.objective == half.objective == more.objective == reordered.objective == "dpo"
    assert full.data == half.data == reordered.data == ["conditional"] and half.subset == 0.5
    assert more.data == ["conditional", "fresh"] and more.fresh == "size_of_conditional"
    assert reordered.reorder and not full.reorder
    assert half.steps_of == more.steps_of == reordered.steps_of == "dpo"  # every check at DPO's steps
    control = runs["dpo-budget"]
    assert control.data == ["conditional", "fresh"] and control.fresh == "size_of_joint" and control.steps_of == "jpo"
    assert "jpo - dpo-budget" in recipe.evaluate.paired
    assert recipe.data.fresh.source == "synthetic" and recipe.data.fresh.split == "fresh"
    # the scaling curve at a fixed number of steps: each point trains as many steps as the run on all of D_H
    assert recipe.train.scaling.fixed == "steps"
    assert {runs[f"jpo-dh-{n}"].steps_of for n in recipe.train.scaling.sizes} == {"jpo-dh"}
    assert recipe.train.selection is None  # the grid is configs/demo-selection.yaml


def test_scaling_at_fixed_steps_or_fixed_epochs():
    values = demo_values()
    runs = {r.name: r for r in parse_recipe(values, "demo.yaml").runs()}
    assert runs["jpo-dh-100"].steps_of == "jpo-dh" and runs["jpo-dh-100"].joint_size == 100
    values["train"]["scaling"]["fixed"] = "epochs"
    runs = {r.name: r for r in parse_recipe(values, "demo.yaml").runs()}
    assert runs["jpo-dh-100"].steps_of is None
    values["train"]["scaling"]["fixed"] = "compute"
    with pytest.raises(JpoError, match="train.scaling.fixed: 'compute' is not one of steps, epochs"):
        parse_recipe(values, "demo.yaml")


def test_the_selection_grid_is_its_own_recipe_extending_the_demo(tmp_path):
    from jpo.runner.plan import plan

    demo, selection = load_recipe(CONFIGS / "demo.yaml"), load_recipe(CONFIGS / "demo-selection.yaml")
    assert selection.name == "demo-selection" and selection.train.selection.selectors[0] == "random"
    assert len(selection.train.selection.points()) == 28
    # everything it does not set is the demo's; it keeps the pool (2,000: a budget of 2,000 is one label per pool
    # instruction), the 5 epochs (the full-D_H point at the grid's 225 steps) and the beta its budgets were set for
    assert (selection.model, selection.sft, selection.judge) == (demo.model, demo.sft, demo.judge)
    assert selection.train.common == {**demo.train.common, "num_train_epochs": 5, "beta": 0.1}
    assert selection.data.conditional == dataclasses.replace(demo.data.conditional, limit=2000)
    assert max(selection.train.selection.budgets) == selection.data.conditional.limit
    assert selection.data.fresh is None and selection.sensitivity is None and not selection.paper.findings
    stages = [u.stage for u in plan(selection, tmp_path)]
    assert stages.count("select") == 7 and stages[-1] == "report"


def test_extends_merges_mappings_and_a_null_removes_a_key(tmp_path):
    (tmp_path / "base.yaml").write_text((CONFIGS / "demo.yaml").read_text())
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\ntrain: {seeds: [3], scaling: null}\nsensitivity: null\n")
    values = recipe_values(child)
    assert values["name"] == "child" and values["train"]["seeds"] == [3] and "scaling" not in values["train"]
    assert values["train"]["common"] == demo_values()["train"]["common"] and "sensitivity" not in values
    child.write_text("extends: child.yaml\n")
    with pytest.raises(JpoError, match="a cycle"):
        load_recipe(child)
    child.write_text("extends: [base.yaml]\n")
    with pytest.raises(JpoError, match="extends: expected the path of another recipe file"):
        load_recipe(child)


@pytest.mark.parametrize(("change", "message"), [
    ({"subset": 1.5}, r"train.runs\[0\] \(dpo\).subset: a fraction of D_C in \(0, 1\], got 1.5"),
    ({"subset": 0.5, "data": ["joint"]}, "subset: a fraction of D_C, but the run does not train on conditional"),
    ({"fresh": 100}, "data 'fresh' and `fresh: N`"),
    ({"data": ["conditional", "fresh"]}, "data 'fresh' and `fresh: N`"),
    ({"data": ["conditional", "fresh"], "fresh": "size_of_everything"},
     "fresh: 'size_of_everything' is not one of size_of_joint, size_of_conditional"),
    ({"data": ["joint", "fresh"], "fresh": 10}, "fresh labels go with conditional data only"),
    ({"steps_of": "dpo"}, r"steps_of: 'dpo' is not one of"),  # not itself
    ({"steps_of": "nobody"}, r"steps_of: 'nobody' is not one of"),
    ({"reorder": -1}, "reorder: 0"),
    ({"steps_of": "kto", "config": {"max_steps": 3}}, "steps_of and config.max_steps both set"),
])
def test_bad_run_variants_are_one_line_errors(change, message):
    values = demo_values()
    values["train"]["runs"][0].update(change)
    with pytest.raises(JpoError, match=message):
        parse_recipe(values, "demo.yaml")


def test_fresh_labels_need_a_fresh_source_and_steps_of_a_run_with_its_own_steps():
    values = demo_values()
    del values["data"]["fresh"]
    with pytest.raises(JpoError, match="fresh conditional labels need data.fresh"):
        parse_recipe(values, "demo.yaml")
    values = demo_values()
    values["train"]["runs"][1]["steps_of"] = "dpo-budget"  # a run that itself takes jpo's steps
    with pytest.raises(JpoError, match="dpo-budget must set its own number of steps"):
        parse_recipe(values, "demo.yaml")


def test_a_run_that_takes_another_runs_steps_reads_that_runs_unit(tmp_path):
    from jpo.runner.plan import plan

    units = {u.label: u for u in plan(load_recipe(CONFIGS / "demo.yaml"), tmp_path)}
    half = units["train/dpo-half/seed0"]
    assert units["train/dpo/seed0"] in half.deps
    labels = list(units)
    assert labels.index("train/dpo/seed0") < labels.index("train/dpo-half/seed0")
    assert units["train/jpo/seed0"] in units["train/dpo-budget/seed0"].deps


# --- the rows a variant trains on --------------------------------------------------------------------------------


def _rows(prefix: str, n: int) -> list[dict]:
    return [{"prompt_chosen": f"{prefix}{i}", "chosen": " a", "prompt_rejected": f"{prefix}{i}", "rejected": " b"}
            for i in range(n)]


def test_training_rows_of_each_variant(tmp_path):
    from jpo.runner.recipe import Run
    from jpo.runner.stages import training_rows

    write_jsonl(tmp_path / "D_C.jsonl", _rows("c", 40))
    write_jsonl(tmp_path / "D_H.jsonl", _rows("h", 12))
    write_jsonl(tmp_path / "D_F.jsonl", _rows("f", 30))
    files = (tmp_path / "D_C.jsonl", tmp_path / "D_H.jsonl")

    def rows(**run):
        return training_rows(Run(name="r", objective="dpo", **run), *files, 7, tmp_path / "D_F.jsonl")

    quarter, counts = rows(subset=0.25)
    half, _ = rows(subset=0.5)
    assert len(quarter) == 10 and len(half) == 20 and counts == {"D_C": 10}
    prompts = [r["prompt_chosen"] for r in half]
    assert {r["prompt_chosen"] for r in quarter} < set(prompts)  # nested: one permutation's prefixes
    assert prompts == sorted(prompts, key=lambda p: int(p[1:]))  # in D_C's order: only *which* rows differ
    assert {r["prompt_chosen"] for r in rows(subset=0.5)[0]} == set(prompts)  # seeded
    assert {r["prompt_chosen"] for r in training_rows(Run(name="r", objective="dpo", subset=0.5), *files, 8)[0]} != \
        set(prompts)
    budget, counts = rows(data=["conditional", "fresh"], fresh="size_of_joint")
    assert counts == {"D_C": 40, "D_F": 12, "D_F_wanted": 12} and len(budget) == 52
    assert {r["prompt_chosen"] for r in budget if r["data"] == "D_F"} == {f"f{i}" for i in range(12)}  # the first
    more, counts = rows(data=["conditional", "fresh"], fresh="size_of_conditional")
    assert counts == {"D_C": 40, "D_F": 30, "D_F_wanted": 40} and len(more) == 70  # D_F short: counted, not hidden
    assert rows(data=["conditional", "fresh"], fresh=5)[1]["D_F"] == 5
    # a source with no instruction beyond D_C's (a sample, a dry run) wrote an empty D_F: 0 rows, counted as missing
    (tmp_path / "D_F.jsonl").write_text("")
    assert rows(data=["conditional", "fresh"], fresh="size_of_joint")[1] == {"D_C": 40, "D_F": 0, "D_F_wanted": 12}


def test_the_fresh_split_is_disjoint_and_leaves_the_other_splits_as_they_are():
    from jpo.tasks import Sizes, build_splits

    without = build_splits(Sizes(pretrain=50, pool=30, validation=5, test=5), seed=3)
    with_fresh = build_splits(Sizes(pretrain=50, pool=30, validation=5, test=5, fresh=20), seed=3)
    for name in ("pretrain", "pool", "validation", "test"):
        assert with_fresh[name] == without[name]
    fresh = with_fresh["fresh"]
    assert len(fresh) == 20 and set(fresh[0]) >= {"id", "prompt", "response_a", "response_b", "family"}
    others = {r["prompt"] for name in ("pretrain", "pool", "validation", "test") for r in with_fresh[name]}
    assert not others & {r["prompt"] for r in fresh}


def test_a_fresh_slice_of_a_real_source_leaves_out_the_pools_instructions():
    from jpo.protocol import pool_items

    rows = [{"prompt_chosen": p, "chosen": " x", "prompt_rejected": p, "rejected": " y"}
            for p in ("p1", "p2", "p3", "p1", "p4", "p5")]
    report = {"left_out": {}}
    pool = pool_items(rows, 2, {"left_out": {}})
    fresh = pool_items(rows, 2, report, {i["prompt_a"] for i in pool})
    assert [i["prompt_a"] for i in pool] == ["p1", "p2"] and [i["prompt_a"] for i in fresh] == ["p3", "p4"]
    assert report["left_out"] == {"an instruction of the conditional pool": 3, "beyond limit 2 instructions": 1}


# --- the task's habits (R4's contract) ---------------------------------------------------------------------------


def test_the_tasks_most_frequent_habit_can_be_named_and_removed():
    """R4's contract with the task: the habits a response shows, by name, and the response without one of them."""
    from jpo.tasks import HABITS, habits_in, without_habit

    first, second = HABITS[0], HABITS[-1]
    assert habits_in(f" apple kiwi pear {first}") == [first] and habits_in(" apple kiwi pear") == []
    assert habits_in(f" apple {second} kiwi {first}") == [first, second]  # in HABITS order
    assert without_habit(f" apple kiwi pear {first}", first) == " apple kiwi pear"
    assert without_habit(f" {first} apple {first}", first) == " apple"
    assert without_habit(" apple kiwi", first) == " apple kiwi"


# --- the report --------------------------------------------------------------------------------------------------


def _scored(wins: dict[str, int], n: int = 200) -> list[dict]:
    """n prompts; the first `wins` of them won, the rest lost (one temperature, one seed)."""
    return [{"id": f"p{i}", "temperature": 1.0, "seed": 0, "outcome": "win" if i < wins else "loss"}
            for i in range(n)]


def _recipe():
    return load_recipe(CONFIGS / "demo.yaml")


def test_the_sensitivity_checks_are_met_or_not_by_their_thresholds_and_intervals():
    from jpo.runner.report.markdown import sensitivity_lines
    from jpo.runner.report.statistics import sensitivity_result

    recipe = _recipe()
    shown = {"dpo": "DPO", "sft": "SFT"}
    # DPO 30% (60 of 200 won), half 20%, more 36%, reordered 30%, SFT 10%: every check met
    scored = {"dpo": _scored(60), "dpo-half": _scored(40), "dpo-more": _scored(72), "dpo-reordered": _scored(60),
              "sft": _scored(20)}
    stripped = {"habit": "filler", "share": {"sft": 95.0, "dpo": 10.0},
                "scored": {"dpo": _scored(60), "sft": _scored(40)}}  # 10 of the 20 points survive: exactly half
    result = sensitivity_result(recipe, scored, shown, stripped, {"dpo": 210, "dpo-half": 210, "dpo-more": 210,
                                                                  "dpo-reordered": 210, "jpo": 400})
    by = {c["check"]: c for c in result["checks"]}
    assert list(by) == ["R1", "R2", "R3", "R4", "DPO - SFT"] and result["met"] and not result["failed"]
    assert "every run at the same number of optimizer steps (210)." in sensitivity_lines(result, dry=False)[2]
    assert by["R1"]["value"] == 10.0 and by["R1"]["ci95"][0] > 0 and by["R2"]["value"] == 6.0
    assert by["R3"]["value"] == 0.0 and by["R4"]["value"] == 10.0 and by["DPO - SFT"]["value"] == 20.0
    assert "50% survives" in by["R4"]["note"] and "95.0% of SFT's" in by["R4"]["note"]
    lines = sensitivity_lines(result, dry=False)
    assert lines[0] == "## Can this testbed tell methods apart?" and "Every check is met" in lines[-1]

    # saturated: the half is as good as all of D_C (R1), fresh labels add 0.5 (R2), the reorder moves 3 points (R3),
    # the gain is the habit (R4: 2 of 20 points survive), DPO - SFT only 9 points with SFT at 21%
    scored = {"dpo": _scored(60), "dpo-half": _scored(60), "dpo-more": _scored(61), "dpo-reordered": _scored(66),
              "sft": _scored(42)}
    stripped["scored"] = {"dpo": _scored(60), "sft": _scored(58)}
    result = sensitivity_result(recipe, scored, shown, stripped, {"dpo": 210, "dpo-half": 105})
    assert result["failed"] == ["R1", "R2", "R3", "R4", "DPO - SFT"]
    assert "**the runs did not train equally long** (dpo 210, dpo-half 105 optimizer steps)" in \
        sensitivity_lines(result, dry=False)[4]
    lines = sensitivity_lines(result, dry=False)
    assert lines[0] == ("**This testbed cannot tell methods apart here (R1, R2, R3, R4, DPO - SFT not met): its "
                        "results below must not be read as evidence about the methods.**")
    assert "| R1 | DPO on all of D_C - on a nested random half (dpo-half) | +0.0 [+0.0, +0.0] | >= +2.0, interval " \
           "above 0 | **not met** |" in lines


def test_a_check_that_cannot_be_measured_is_not_met():
    from jpo.runner.report.statistics import sensitivity_result

    recipe = _recipe()
    result = sensitivity_result(recipe, {"dpo": _scored(60), "sft": _scored(10)}, {"dpo": "DPO"}, None)
    by = {c["check"]: c for c in result["checks"]}
    assert by["R1"]["met"] is None and by["R4"]["met"] is None and by["DPO - SFT"]["met"] is True
    assert by["R4"]["note"] == "not measured: the task names no surface habits" and not result["met"]


def test_the_equal_budget_control_answers_whether_a_joint_label_is_worth_a_conditional_one():
    from jpo.runner.report.markdown import equal_budget_lines
    from jpo.runner.report.statistics import equal_budget_result

    recipe = _recipe()
    scored = {"jpo": _scored(70), "dpo-budget": _scored(64), "dpo": _scored(60)}
    shown = {"jpo": "JPO", "dpo-budget": "DPO (D_C + |D_H| fresh)", "dpo": "DPO"}
    (entry,) = equal_budget_result(recipe, scored, shown, {"jpo": 2764, "dpo-budget": 2764})
    assert (entry["joint"], entry["control"], entry["conditional"]) == ("jpo", "dpo-budget", "dpo")
    assert entry["joint_vs_control"]["difference"] == 3.0 and entry["control_vs_conditional"]["difference"] == 2.0
    lines = equal_budget_lines([entry], shown)
    assert lines[4].startswith("- JPO (2764 rows) - DPO (D_C + |D_H| fresh) (2764 rows): +3.0 [")
    assert lines[4].endswith(": here a joint label is worth more than a conditional one.")
    assert lines[5].startswith("- JPO - DPO (D_C alone): +5.0 [")


# --- seeds that reseed the base model ----------------------------------------------------------------------------


def test_vary_base_gives_each_seed_its_own_built_pretrained_and_sft_model(tmp_path):
    from jpo.runner.plan import plan

    values = demo_values()
    values["train"].update(seeds=[0, 1, 2], vary_base=True)
    units = {u.label: u for u in plan(parse_recipe(values, "demo.yaml"), tmp_path)}
    # the recipe's own seed (0) keeps the names and keys a one-seed run has; the others their own
    for stage in ("model", "pretrain", "sft"):
        assert stage in units and {f"{stage}/seed1", f"{stage}/seed2"} <= set(units) and f"{stage}/seed0" not in units
    assert units["sft"] in units["train/dpo/seed0"].deps and units["sft"] in units["generate/sft/seed0"].deps
    for seed in (1, 2):
        assert units[f"sft/seed{seed}"] in units[f"train/dpo/seed{seed}"].deps
        assert units[f"sft/seed{seed}"] in units[f"generate/sft/seed{seed}"].deps
        assert units[f"sft/seed{seed}"].config["seed"] == units[f"pretrain/seed{seed}"].config["seed"] == seed
        assert units[f"pretrain/seed{seed}"] in units[f"sft/seed{seed}"].deps
    assert len({units[label].key for label in ("model", "model/seed1", "model/seed2")}) == 3
    assert units["model/seed1"].folder == tmp_path / "model" / "seed1"
    one = {u.label: u for u in plan(parse_recipe({**values, "train": {**values["train"], "seeds": [0]}},
                                                 "demo.yaml"), tmp_path)}
    assert one["sft"].key == units["sft"].key  # one seed is the same run with or without vary_base
    # without it, one base for every seed
    values["train"]["vary_base"] = False
    units = {u.label: u for u in plan(parse_recipe(values, "demo.yaml"), tmp_path)}
    assert {"model", "pretrain", "sft"} <= set(units) and "sft/seed1" not in units
    assert units["sft"] in units["train/dpo/seed1"].deps and units["sft"].key == one["sft"].key


def test_the_sweep_leaves_out_the_variant_runs():
    from jpo.runner.recipe import for_sweep

    swept = for_sweep(load_recipe(CONFIGS / "demo.yaml"))
    names = {r.name.split("-lr")[0] for r in swept.runs()}
    assert names == {"dpo", "kto", "jpo", "jpo-dh", "jpo-mix", "dpo-dh"} and swept.sensitivity is None


# --- reproducible, and the README's numbers from a report --------------------------------------------------------


def tiny_recipe(tmp_path: Path) -> Path:
    """The demo at toy size with the variants and the checks, two seeds that reseed the base model."""
    values = demo_values()
    values["data"].update(pretrain={**values["data"]["pretrain"], "limit": 32},
                          conditional={**values["data"]["conditional"], "limit": 16},
                          eval={**values["data"]["eval"], "limit": 8}, fresh={**values["data"]["fresh"], "limit": 30})
    del values["data"]["validation"]
    pretrain = {**values["model"]["build"]["pretrain"], "num_train_epochs": 1, "warmup_steps": 0}
    values["model"]["build"] = {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                "intermediate_size": 64, "pretrain": pretrain}
    values["sft"]["config"].update(num_train_epochs=1)
    values["train"]["common"].update(num_train_epochs=1, per_device_train_batch_size=8)
    keep = ("dpo", "jpo", "dpo-budget", "dpo-half", "dpo-more", "dpo-reordered")
    values["train"].update(seeds=[0, 1], vary_base=True, runs=[r for r in values["train"]["runs"] if r["name"] in keep])
    values["train"].pop("scaling")
    values["judge"]["agreement"] = {}
    values["generate"].update(max_new_tokens=6, temperatures=[0.001, 1.0])
    values["evaluate"].update(n_resamples=200, joint=[], paired=["dpo - sft", "jpo - dpo", "jpo - dpo-budget"])
    values["paper"]["findings"] = {"dpo - sft": 23.9, "jpo - dpo": 5.2}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


@pytest.mark.slow
def test_two_fresh_runs_of_a_recipe_write_the_same_results_json(tmp_path, capsys):
    """Issue 25 item 5: the same recipe and seeds, two fresh folders, byte-identical results.json (times, paths and
    the machine go to provenance.json); the report's first section is the sensitivity checks."""
    from jpo.cli import main

    recipe = tiny_recipe(tmp_path)
    for name in ("first", "second"):
        assert main(["run", str(recipe), "--output-dir", str(tmp_path / name)]) == 0
    capsys.readouterr()
    first, second = tmp_path / "first" / "report", tmp_path / "second" / "report"
    assert (first / "results.json").read_bytes() == (second / "results.json").read_bytes()
    for generations in (tmp_path / "first" / "generate").glob("*/seed*/generations.jsonl"):
        twin = tmp_path / "second" / generations.relative_to(tmp_path / "first")
        assert generations.read_bytes() == twin.read_bytes(), generations
    results = json.loads((first / "results.json").read_text())
    assert [c["check"] for c in results["sensitivity"]["checks"]] == ["R1", "R2", "R3", "R4", "DPO - SFT"]
    assert results["equal_budget"][0]["control"] == "dpo-budget" and results["data"]["D_F"] > 0
    assert set(results["per_seed"]["models"]) == {"sft", *(n for n in ("dpo", "jpo", "dpo-budget", "dpo-half",
                                                                        "dpo-more", "dpo-reordered"))}
    assert results["per_seed"]["vary_base"] and len(results["per_seed"]["models"]["sft"]["per_seed"]) == 2
    text = (first / "results.md").read_text()
    assert text.splitlines()[2].startswith("**This testbed cannot tell methods apart here (")  # a toy cannot
    assert text.index("## Can this testbed tell methods apart?") < text.index("Win-rate (%) against the gold")
    assert "## Is a joint label worth a conditional one?" in text and "## Spread over seeds" in text
    provenance = json.loads((first / "provenance.json").read_text())
    assert set(provenance) == {"command", "commit", "cpu", "seconds", "total_seconds"}
    assert {"data", "model", "pretrain", "sft", "train", "generate", "evaluate"} <= set(provenance["seconds"])
    # each seed its own base model; the checks' runs at DPO's steps
    assert (tmp_path / "first" / "sft" / "seed1" / "model" / "config.json").exists()
    assert (tmp_path / "first" / "sft" / "model" / "config.json").exists()  # seed 0: the recipe's own
    for seed in (0, 1):
        steps = {name: json.loads((tmp_path / "first" / "train" / name / f"seed{seed}" / "model" /
                                   "trainer_state.json").read_text())["global_step"]
                 for name in ("dpo", "dpo-half", "dpo-more", "dpo-reordered")}
        assert len(set(steps.values())) == 1, steps
    data = read_jsonl(tmp_path / "first" / "train" / "dpo-half" / "seed0" / "data.jsonl")
    assert len(data) == round(0.5 * results["data"]["D_C"])

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- demo-numbers:start -->\nstale numbers\n<!-- demo-numbers:end -->\n\nafter\n")
    from jpo.runner.readme import update_readme

    update_readme(readme, first)
    text = readme.read_text()
    assert "stale numbers" not in text and text.endswith("<!-- demo-numbers:end -->\n\nafter\n")
    assert f"commit `{provenance['commit']}`" in text and provenance["cpu"] in text


def test_the_readme_block_renders_from_a_results_json(tmp_path):
    """Issue 25 item 5: the README's demo numbers come from a run's report, with the commit, command and CPU."""
    import subprocess
    import sys

    from jpo.runner.readme import END, START, update_readme

    report = tmp_path / "report"
    report.mkdir()
    check = {"check": "R1", "what": "x", "value": 2.5, "ci95": [0.4, 4.6], "threshold": ">= +2.0", "met": True,
             "note": ""}
    results = {"recipe": "demo", "dry_run": False, "seeds": [0, 1, 2],
               "rows": [{"method": "SFT", "name": "sft", "data": "D_S", "rows": 2000, "average": 6.3,
                         "ci95": [5.0, 7.6]},
                        {"method": "DPO (D_C + |D_H| fresh)", "name": "dpo-budget", "data": "D_C ∪ D_F (|D_H|)",
                         "rows": 2764, "average": 21.1, "ci95": [18.5, 23.6]}],
               "sensitivity": {"checks": [check, {**check, "check": "R2", "met": False, "value": 0.2}], "met": False,
                               "failed": ["R2"]},
               "paired": {"DPO - SFT": {"difference": 14.8, "ci95": [12.8, 16.8]}},
               "equal_budget": [{"joint": "jpo", "control": "dpo-budget",
                                 "joint_vs_control": {"difference": 0.6, "ci95": [-0.5, 1.7]}}],
               "findings": ["- JPO - DPO: paper +5.2 points, here +0.3 [-0.7, +1.4]: not distinguishable from 0."],
               "scaling": {"fixed": "steps", "points": [{"method": "JPO (D_H only), 100 of D_H", "average": 19.4,
                                                         "ci95": [16.8, 22.2]}]},
               "per_seed": {"seeds": [0, 1, 2], "vary_base": True,
                            "models": {"sft": {"per_seed": [6.0, 6.5, 6.4], "sd": 0.26, "min": 6.0, "max": 6.5}},
                            "paired": {"dpo - sft": {"per_seed": [14.0, 15.0, 15.5], "sd": 0.76}}}}
    (report / "results.json").write_text(json.dumps(results))
    (report / "provenance.json").write_text(json.dumps({
        "command": "jpo demo --seeds 3", "commit": "abc123def456", "cpu": "Intel(R) Xeon(R) (2 logical cores)",
        "seconds": {"pretrain": 270.0, "train": 300.0}, "total_seconds": 570.0}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nstale numbers\n{END}\nrest\n")
    block = update_readme(readme, report)
    text = readme.read_text()
    assert text == f"intro\n{START}\n{block}\n{END}\nrest\n"
    assert block.startswith("Generated by `scripts/readme_numbers.py` from ")
    assert "`jpo demo --seeds 3` at commit `abc123def456` on Intel(R) Xeon(R) (2 logical cores); 3 seed(s) (0, 1, 2); " \
           "wall-clock 9.5 min of stage time (pretrain 4.5, train 5.0 min)." in block
    assert "**not met: R2; these results are no evidence about the methods**" in block
    assert "| R2 | +0.2 [+0.4, +4.6] | >= +2.0 | not met |" in block
    assert "| DPO (D_C + \\|D_H\\| fresh) | D_C ∪ D_F (\\|D_H\\|) | 2764 | 21.1 [18.5, 23.6] |" in block
    assert "Equal budget: jpo - DPO (D_C + |D_H| fresh) +0.6 [-0.5, +1.7]." in block
    assert "Scaling (a fixed number of steps per point): JPO (D_H only), 100 of D_H 19.4 [16.8, 22.2]." in block
    assert "- JPO - DPO: paper +5.2 points, here +0.3 [-0.7, +1.4]: not distinguishable from 0." in block
    assert "SFT 6.0, 6.5, 6.4 (sd 0.3)" in block and "dpo - sft +14.0, +15.0, +15.5 (sd 0.8)" in block
    assert update_readme(readme, report) == block and readme.read_text() == text  # regenerated in place

    # the script, as the README shows it
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_numbers.py"), str(report), "--readme",
                           str(readme)], capture_output=True, text=True)
    assert done.returncode == 0 and readme.read_text() == text
    readme.write_text("no markers\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_numbers.py"), str(report), "--readme",
                           str(readme)], capture_output=True, text=True)
    assert done.returncode == 2 and "needs one '<!-- demo-numbers:start -->' line" in done.stderr
    assert START in (ROOT / "README.md").read_text()  # the README carries the block


@pytest.mark.parametrize("name", ["demo", "tldr-mistral7b", "tldr-qwen0.5b", "hh-helpful-mistral7b",
                                  "hh-helpful-qwen0.5b"])
def test_every_recipe_with_extra_conditional_labels_has_the_equal_budget_control(name):
    """Issue 25 item 3: beside JPO on D_C ∪ D_H, DPO on D_C + |D_H| fresh conditional labels of the same source,
    at JPO's steps, paired against JPO."""
    recipe = load_recipe(CONFIGS / f"{name}.yaml")
    runs = {r.name: r for r in recipe.train.runs}
    assert runs["jpo"].data == ["conditional", "joint"]
    control = runs["dpo-budget"]
    assert (control.objective, control.data, control.fresh, control.steps_of) == \
        ("dpo", ["conditional", "fresh"], "size_of_joint", "jpo")
    assert "jpo - dpo-budget" in recipe.evaluate.paired
    fresh, conditional = recipe.data.fresh, recipe.data.conditional
    if fresh.source == "synthetic":  # the task's own split of comparisons, disjoint from every other
        assert fresh.split == "fresh"
    else:  # a held-out slice of the same preference source (its instructions after D_C's)
        assert (fresh.source, fresh.split, fresh.kind) == (conditional.source, conditional.split, conditional.kind)


def test_r4_removes_the_most_frequent_habit_from_both_models_and_judges_again(tmp_path, monkeypatch):
    """R4's measurement on the synthetic task with its exact oracle: SFT's answers are the gold ones plus a habit,
    DPO's are the gold ones without it; with the habit removed from both, nothing of DPO's gain survives. The habit
    is a stand-in through the task's contract (`habits_in`, `without_habit`), whatever the task's own habits are."""
    import jpo.tasks
    from jpo.runner.report.statistics import sensitivity_result
    from jpo.runner.stages import habit_stripped
    from jpo.runner.units import Unit
    from jpo.tasks import Sizes, build_splits

    monkeypatch.setattr(jpo.tasks, "habits_in", lambda response: ["zzz"] if "zzz" in response.split() else [])
    monkeypatch.setattr(jpo.tasks, "without_habit", lambda response, habit: " " + " ".join(
        w for w in response.split() if w != habit))

    references = build_splits(Sizes(pretrain=0, pool=0, validation=0, test=30), seed=5)["test"]
    write_jsonl(tmp_path / "eval.jsonl", references)
    evaluations = {}
    for name, suffix in (("sft", " zzz"), ("dpo", "")):
        folder = tmp_path / "generate" / name
        write_jsonl(folder / "generations.jsonl", [
            {"id": r["id"], "prompt": r["prompt"], "response": r["reference"] + suffix, "temperature": 1.0, "seed": 0}
            for r in references])
        generate = Unit("generate", name, folder, {}, [], [], lambda u: None)
        evaluations[name, 0] = Unit("evaluate", name, tmp_path / "evaluate" / name, {}, [generate], [],
                                    lambda u: None)
    recipe = _recipe()
    stripped = habit_stripped(recipe, evaluations, ["dpo", "sft"], tmp_path, tmp_path)
    assert stripped["habit"] == "zzz" and stripped["share"] == {"dpo": 0.0, "sft": 100.0}
    outcomes = {name: {s["outcome"] for s in scored} for name, scored in stripped["scored"].items()}
    assert outcomes == {"dpo": {"tie"}, "sft": {"tie"}}  # the gold answer itself, once the habit is gone
    scored = {"dpo": [{**s, "outcome": "tie"} for s in stripped["scored"]["dpo"]],
              "sft": [{**s, "outcome": "loss"} for s in stripped["scored"]["sft"]]}  # before: the filler loses
    by = {c["check"]: c for c in sensitivity_result(recipe, scored, {"dpo": "DPO"}, stripped)["checks"]}
    assert by["DPO - SFT"]["value"] == 50.0 and by["R4"]["value"] == 0.0 and by["R4"]["met"] is False
    assert "0% survives" in by["R4"]["note"]


def test_the_built_tokenizer_never_sees_the_evaluation_prompts(tmp_path):
    """The demo's tokenizer trains on the run's training texts only: the test prompts stay unseen, and the validation-
    split measurement (benchmarks/testbed_sensitivity.py, which evaluates on the validation prompts instead) builds
    the very model the demo builds."""
    from jpo.data import write_jsonl
    from jpo.runner.recipe import BuildModel
    from jpo.runner.stages import build_model
    from jpo.tasks import Sizes, build_splits

    splits = build_splits(Sizes(pretrain=200, pool=40, validation=30, test=30), seed=0)
    build = BuildModel(vocab_size=200, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    tokenizers = []
    for split in ("validation", "test"):
        data = tmp_path / split / "data"
        data.mkdir(parents=True)
        write_jsonl(data / "pool.jsonl", splits["pool"])
        write_jsonl(data / "pretrain.jsonl", splits["pretrain"])
        write_jsonl(data / "eval.jsonl", splits[split] + [{"id": "x", "prompt": "zyzzyva " * 50, "reference": ""}])
        build_model(build, data, tmp_path / split)
        tokenizers.append((tmp_path / split / "model" / "tokenizer.json").read_text())
    assert tokenizers[0] == tokenizers[1]
    assert "zyzzyva" not in json.loads(tokenizers[0])["model"]["vocab"]
