"""The demo is `jpo run configs/demo.yaml`: end to end on a miniature copy of the recipe (seconds), the same results
through `jpo demo` and `jpo run`, its cache, its sweep, and the interplay statistics of oracle labels on a hand-made
set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jpo.cli import main
from jpo.errors import JpoError

ROOT = Path(__file__).resolve().parents[1]


def tiny_demo(tmp_path: Path, recipe_file: str = "demo.yaml", **changes) -> Path:
    """configs/demo.yaml (or another configs/ recipe, its `extends` resolved) at toy sizes (the recipe's own values
    otherwise)."""
    from jpo.runner.recipe import recipe_values

    recipe = recipe_values(ROOT / "configs" / recipe_file)
    recipe["data"]["pretrain"]["limit"] = 48
    recipe["data"]["conditional"]["limit"] = 24
    recipe["data"]["validation"]["limit"] = 8
    recipe["data"]["eval"]["limit"] = 12
    if "fresh" in recipe["data"]:
        recipe["data"]["fresh"]["limit"] = 40
    pretrain = {**recipe["model"]["build"]["pretrain"], "num_train_epochs": 1, "warmup_steps": 0}
    recipe["model"]["build"] = {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                "intermediate_size": 64, "pretrain": pretrain}
    recipe["sft"]["config"].update(num_train_epochs=1, per_device_train_batch_size=16)
    recipe["train"]["common"].update(num_train_epochs=1, per_device_train_batch_size=8)
    if "scaling" in recipe["train"]:
        recipe["train"]["scaling"]["sizes"] = [4]
    if "selection" in recipe["train"]:
        recipe["train"]["selection"].update(selectors=["random", "uncertainty", "disagreement", "active-certainty"],
                                            budgets=[8, 16], max_steps=2)  # the habit task's ties leave
        # 2-item active rounds undecided
    recipe["pairs"]["pool"] = 3
    recipe["generate"].update(max_new_tokens=6, temperatures=[0.001, 1.0])
    recipe["evaluate"]["n_resamples"] = 500
    recipe.update(changes)
    path = tmp_path / f"tiny-{recipe_file}"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_the_demo_recipe_follows_the_papers_protocol():
    from jpo.runner import load_recipe

    recipe = load_recipe(ROOT / "configs" / "demo.yaml")
    assert recipe.sft.from_ == "conditional" and recipe.data.sft is None  # D_S is drawn from the pool
    assert recipe.data.conditional.source == "synthetic" and recipe.data.conditional.split == "pool"
    assert recipe.pairs.from_ == "sft" and recipe.judge.conditional
    runs = {r.name: r for r in recipe.train.runs}
    assert runs["dpo"].data == runs["kto"].data == ["conditional"]
    assert runs["jpo"].data == ["conditional", "joint"] and runs["jpo-dh"].data == ["joint"]
    assert runs["jpo-mix"].data == ["mix"] and (runs["dpo-dh"].objective, runs["dpo-dh"].data) == ("dpo", ["joint"])
    assert recipe.sweep == {"learning_rate": [1e-4, 1.5e-4, 2e-4, 3e-4]}
    # KTO's learning rate is its own value on the one grid every method is swept over
    assert runs["kto"].config["learning_rate"] in recipe.sweep["learning_rate"]
    assert recipe.train.common["learning_rate"] in recipe.sweep["learning_rate"]
    # the built model is pretrained on the task's text before SFT, on one torch thread
    assert recipe.model.pretrain and recipe.data.pretrain.split == "pretrain" and recipe.threads == 1
    assert [r.name for r in recipe.runs()][:3] == ["dpo", "kto", "jpo"]
    assert recipe.evaluate.joint == ["sft", "dpo", "kto", "jpo"]


def test_bad_demo_recipe_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("- not a mapping\n")
    assert main(["demo", "--config", str(path)]) == 2
    assert "a recipe must be a mapping" in capsys.readouterr().err
    with pytest.raises(JpoError, match="--seeds must be at least 1"):
        from jpo.runner.recipe import load_recipe
        from jpo.runner.run import with_seeds

        with_seeds(load_recipe(ROOT / "configs" / "demo.yaml"), 0)


@pytest.mark.parametrize(("argv", "expected"), [
    (["--config", ""], "--config: expected the path of a recipe file, got an empty string"),  # not the built-in demo
    (["--config", "MISSING"], "MISSING: cannot read recipe: No such file or directory"),  # the user's file, not ours
    (["--config", "FOLDER"], "FOLDER: cannot read recipe: Is a directory"),
    (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--seeds", "-1"], "--seeds must be at least 1, got -1"),
    (["--seeds", "abc"], "argument --seeds: invalid int value: 'abc'"),
])
def test_bad_demo_flags_are_one_line_errors_with_status_2(argv, expected, tmp_path, capsys):
    """`jpo demo` refuses bad flags before anything runs (each case fails before a unit is planned)."""
    argv = [a.replace("MISSING", str(tmp_path / "none.yaml")).replace("FOLDER", str(tmp_path)) for a in argv]
    expected = expected.replace("MISSING", str(tmp_path / "none.yaml")).replace("FOLDER", str(tmp_path))
    try:
        status = main(["demo", "--out", str(tmp_path / "out"), *argv])
    except SystemExit as exit_:  # argparse's own errors exit from the parser
        status = exit_.code
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith(f"jpo demo: error: {expected}") and error.count("\n") == 1, error


@pytest.mark.parametrize("command", ["demo", "run"])
def test_a_run_folder_that_cannot_be_made_is_a_one_line_error(command, tmp_path, capsys):
    """`--out` / `--output-dir` naming a file, or a path through one: one line naming the folder, not a
    FileExistsError traceback (the folder is made before anything runs)."""
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        argv = ["demo", "--dry-run", "--out", str(out)] if command == "demo" else \
            ["run", str(ROOT / "configs" / "demo.yaml"), "--dry-run", "--output-dir", str(out)]
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"jpo {command}: error: {out}: cannot make the run folder here: ") and \
            error.count("\n") == 1, error


def test_interplay_of_oracle_labels_on_a_hand_made_set():
    from jpo.analysis.interplay import interplay
    from jpo.feedback import make_judge
    from jpo.feedback.runner import judge_items, labeled_rows

    def judge(items):
        return labeled_rows(items, judge_items(items, make_judge("oracle"), progress=False))

    sort = "Sort these words alphabetically: pear apple kiwi Answer:"
    rev = "Reverse the order of these words: red blue green Answer:"
    dedup = "Remove the repeated words: gold blue gold Answer:"
    rev2 = "Reverse the order of these words: snow rain wind Answer:"
    # conditional: chosen / rejected member of each instruction (q in brackets)
    conditional = [
        {"id": "s", "prompt_a": sort, "response_a": " apple kiwi pear", "prompt_b": sort,  # 1.0 vs 1/3
         "response_b": " pear apple kiwi"},
        {"id": "r", "prompt_a": rev, "response_a": " green red", "prompt_b": rev,  # 2/3 vs 0
         "response_b": " snow rain wind"},
        {"id": "d", "prompt_a": dedup, "response_a": " gold blue", "prompt_b": dedup,  # 1.0 vs 2/3
         "response_b": " gold blue gold"},
        {"id": "r2", "prompt_a": rev2, "response_a": " red", "prompt_b": rev2,  # 0 vs 1/3
         "response_b": " wind"},
    ]
    joint = [
        # both chosen: 1.0 vs 2/3 -> decisive; 1.0 vs 1.0 -> tie
        {"id": "j1", "prompt_a": sort, "response_a": " apple kiwi pear", "prompt_b": rev, "response_b": " green red"},
        {"id": "j2", "prompt_a": sort, "response_a": " apple kiwi pear", "prompt_b": dedup, "response_b": " gold blue"},
        # both rejected: 1/3 vs 0 -> decisive
        {"id": "j3", "prompt_a": sort, "response_a": " pear apple kiwi", "prompt_b": rev,
         "response_b": " snow rain wind"},
        # chosen vs rejected: 2/3 (chosen) vs 2/3 (rejected) -> equal; 1/3 (rejected) vs 2/3 (chosen) -> C>R
        {"id": "j4", "prompt_a": rev, "response_a": " green red", "prompt_b": dedup, "response_b": " gold blue gold"},
        {"id": "j5", "prompt_a": sort, "response_a": " pear apple kiwi", "prompt_b": rev, "response_b": " green red"},
        # both rejected: 2/3 vs 0 -> decisive
        {"id": "j6", "prompt_a": dedup, "response_a": " gold blue gold", "prompt_b": rev,
         "response_b": " snow rain wind"},
        # a rejected answer to an easy instruction (2/3) beats the chosen one of a hard instruction (1/3): C<R
        {"id": "j7", "prompt_a": rev2, "response_a": " wind", "prompt_b": dedup, "response_b": " gold blue gold"},
    ]
    cond_rows, joint_rows = judge(conditional), judge(joint)
    assert [r["label"] for r in cond_rows] == ["a", "a", "a", "b"]
    assert [r["label"] for r in joint_rows] == ["a", "tie", "a", "tie", "b", "a", "b"]
    result = interplay(cond_rows, joint_rows)
    assert result.both_chosen == {"decisive": 1, "tie": 1}
    assert result.both_rejected == {"decisive": 2, "tie": 0}
    assert result.chosen_vs_rejected == {"C>R": 1, "C<R": 1, "equal": 1}


@pytest.mark.slow
def test_demo_and_run_give_the_same_results_through_one_code_path(tmp_path, capsys):
    recipe = tiny_demo(tmp_path)
    assert main(["demo", "--config", str(recipe), "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    demo = tmp_path / "demo" / "report"
    assert {p.name for p in demo.iterdir()} >= {"results.md", "results.json", "details.json", "interplay.json",
                                                 "winrate.png", "training_loss.png", "training_reward_margin.png",
                                                 "scaling.png"}
    rows = json.loads((demo / "results.json").read_text())["rows"]
    assert [row["method"] for row in rows] == ["SFT", "DPO", "KTO", "JPO", "JPO (D_H only)", "JPO (50:50 mix)",
                                               "DPO loss on D_H", "DPO (D_C + |D_H| fresh)", "DPO (half of D_C)",
                                               "DPO (D_C + |D_C| fresh)", "DPO (another order)"]
    for row in rows:
        assert set(row["win_rate"]) == {"0.001", "1.0"}
        assert 0.0 <= row["ci95"][0] <= row["average"] <= row["ci95"][1] <= 100.0
        assert sum(row["outcomes"].values()) == 12 * 2  # test prompts x temperatures, one seed
        assert 0.0 <= row["mean_quality"] <= 100.0
    details = json.loads((demo / "details.json").read_text())
    feedback = details["feedback"]
    by = {row["method"]: row for row in rows}
    assert by["DPO"]["rows"] == by["KTO"]["rows"] == feedback["D_C"]
    assert by["JPO"]["rows"] == feedback["D_C"] + feedback["D_H"]
    assert by["JPO (D_H only)"]["rows"] == by["DPO loss on D_H"]["rows"] == feedback["D_H"]
    assert by["JPO (50:50 mix)"]["rows"] == feedback["D_C"]
    assert by["SFT"]["rows"] == 24  # D_S: one response per pool instruction, ties included
    assert feedback["conditional"]["items"] == feedback["joint"]["items"] == 24
    assert set(feedback["conditional"]["agreement"]) == {"second annotator", "exact oracle"}
    assert set(details["paired"]) >= {"JPO - DPO", "JPO - KTO", "JPO - SFT", "JPO - DPO loss on D_H", "DPO - SFT",
                                      "JPO (D_H only) - DPO", "JPO (50:50 mix) - DPO"}
    joint = details["joint"]  # the four main models ranked by joint comparisons too, with the exact oracle
    assert sorted(joint["joint"]["ranking"]) == ["DPO", "JPO", "KTO", "SFT"] and "kendall_tau" in joint
    pretrained = json.loads((tmp_path / "demo" / "pretrain" / "manifest.json").read_text())
    state = json.loads((tmp_path / "demo" / "pretrain" / "model" / "trainer_state.json").read_text())
    assert pretrained["result"]["rows"] == 48 and state["global_step"] == 3  # 48 documents, batch 16, 1 epoch
    sft_config = yaml.safe_load((tmp_path / "demo" / "sft" / "config.yaml").read_text())
    assert sft_config["model_name_or_path"] == str(tmp_path / "demo" / "pretrain" / "model")
    assert [r["rows"] for r in details["scaling"]] == [4, feedback["D_H"]]
    steps = {name: json.loads((tmp_path / "demo" / "train" / name / "seed0" / "model" / "trainer_state.json")
                              .read_text())["global_step"] for name in ("jpo-dh", "jpo-dh-4")}
    assert steps["jpo-dh-4"] == steps["jpo-dh"]  # the scaling curve at a fixed number of steps
    markdown = (demo / "results.md").read_text()
    assert "| JPO |" in markdown and "Interplay" in markdown and "Data scaling" in markdown
    assert "(paper Figure 7), fixed steps\n\nEvery point trains as many optimizer steps as jpo-dh" in markdown
    assert "Ranking by joint comparisons" in markdown and "Kendall tau" in markdown
    assert len(details["findings"]) == 6 and details["findings"][0].startswith("- DPO - SFT: paper +23.9 points, here")
    assert "- JPO (D_H only) - jpo-dh-100: paper +29.3 points; not run here." in markdown  # this test's scaling size is 4
    assert "## Where the margin comes from" in markdown and "| DPO | " in markdown.split("margin comes from")[1]
    assert by["DPO (D_C + |D_H| fresh)"]["rows"] == feedback["D_C"] + feedback["D_H"]  # the equal-budget control
    assert by["DPO (half of D_C)"]["rows"] == round(feedback["D_C"] / 2)
    assert by["DPO (D_C + |D_C| fresh)"]["rows"] == 2 * feedback["D_C"] and feedback["D_F"] >= feedback["D_H"]
    assert markdown.startswith("# demo\n\n**This testbed cannot tell methods apart here (")  # a toy cannot
    assert "## Is a joint label worth a conditional one?" in markdown and details["selection"] is None
    assert "jpo demo: done in" in out

    assert main(["run", str(recipe), "--output-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report" / "results.json").read_text() == (demo / "results.json").read_text()
    capsys.readouterr()

    assert main(["demo", "--config", str(recipe), "--out", str(tmp_path / "demo")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("jpo run: ")]
    assert lines and all("skipped" in line for line in lines[:-1])  # every unit reused from its manifest
    assert "0 unit(s) ran" in lines[-1]


@pytest.mark.slow
def test_the_selection_grid_recipe_runs_every_selector_at_every_budget(tmp_path, capsys):
    """configs/demo-selection.yaml (the demo's settings, its own recipe): every selector at every budget, the same
    training steps at each point."""
    recipe = tiny_demo(tmp_path, "demo-selection.yaml")
    assert main(["run", str(recipe), "--output-dir", str(tmp_path / "demo")]) == 0
    capsys.readouterr()
    demo = tmp_path / "demo" / "report"
    details = json.loads((demo / "details.json").read_text())
    rows = json.loads((demo / "results.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["sft", "jpo-dh"]
    markdown = (demo / "results.md").read_text()
    selection = details["selection"]  # every selector at every budget, the same training steps at each point
    assert [(p["selector"], p["budget"]) for p in selection["points"]] == [
        (s, b) for s in ("random", "uncertainty", "disagreement", "active-certainty") for b in (8, 16)]
    for point in selection["points"]:
        assert sum(point["outcomes"].values()) == 12 * 2 and 0 <= point["decisive"] <= point["budget"]
        assert set(point["agreement"]) == {"second annotator", "exact oracle"}
        train = tmp_path / "demo" / "train" / f"jpo-dh-{point['selector']}-{point['budget']}" / "seed0"
        assert json.loads((train / "model" / "trainer_state.json").read_text())["global_step"] == 2
    assert set(selection["goals"]) == {"random", "uncertainty", "disagreement", "active-certainty"}
    rounds = tmp_path / "demo" / "select" / "seed0" / "active-certainty" / "active-certainty-16" / "rounds"
    assert [p.name for p in rounds.iterdir()] == ["round_0"]  # 2 rounds: one intermediate model, trained 2 steps
    assert json.loads((rounds / "round_0" / "trainer_state.json").read_text())["global_step"] == 2
    assert selection["goals"]["random"]["half_budget"] == 8
    assert set(selection["against_random"]) == {f"{s}-{b}" for s in ("uncertainty", "disagreement", "active-certainty")
                                                for b in (8, 16)}
    assert "## Which joint comparisons to label" in markdown and "selection.png" in {p.name for p in demo.iterdir()}
    assert not any("-random-" in row["name"] for row in rows)  # the grid is its own table, not Table 5's rows


@pytest.mark.slow
def test_a_selector_can_choose_d_h_after_sft(tmp_path, capsys):
    recipe = tiny_demo(tmp_path)
    values = yaml.safe_load(recipe.read_text())
    values["pairs"].update(strategy="certainty", budget=10)
    values["train"]["runs"] = [r for r in values["train"]["runs"] if r["name"] in ("dpo", "jpo-dh")]
    values["train"].pop("scaling")
    values.pop("sensitivity")
    values["evaluate"].update(paired=[], joint=[])
    values["paper"]["findings"] = {}
    recipe.write_text(yaml.safe_dump(values))
    assert main(["run", str(recipe), "--output-dir", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    assert not (run / "data" / "items.jsonl").exists() and not (run / "feedback" / "joint_labeled.jsonl").exists()
    labelled = [json.loads(line) for line in (run / "select" / "pairs" / "certainty-10" / "items_labeled.jsonl")
                .read_text().splitlines()]
    chosen = (run / "select" / "pairs" / "certainty-10" / "D_H.jsonl").read_text().splitlines()
    assert len(labelled) == 10 and len(chosen) == sum(r["label"] in ("a", "b") for r in labelled)
    rows = {r["name"]: r for r in json.loads((run / "report" / "results.json").read_text())["rows"]}
    assert rows["jpo-dh"]["rows"] == len(chosen)
    details = json.loads((run / "report" / "details.json").read_text())
    assert details["feedback"]["D_H"] == len(chosen)
    assert details["feedback"]["selected"]["selection"].startswith("certainty: 10 of 72 candidates")  # 24 x 3
    assert "joint comparisons chosen by a selector after SFT: certainty" in (run / "report" / "results.md").read_text()
    capsys.readouterr()


@pytest.mark.slow
def test_demo_sweep_scores_one_grid_for_every_method_on_validation_prompts(tmp_path, capsys):
    recipe = tiny_demo(tmp_path)
    values = yaml.safe_load(recipe.read_text())
    values["train"]["runs"] = values["train"]["runs"][:2]  # DPO and KTO: enough to see the grid applied to each
    values["train"].pop("scaling")
    values.pop("sensitivity")
    values["evaluate"]["paired"] = values["evaluate"]["joint"] = []
    values["sweep"] = {"learning_rate": [1e-4, 3e-4]}
    recipe.write_text(yaml.safe_dump(values))
    assert main(["demo", "--config", str(recipe), "--sweep", "--out", str(tmp_path / "sweep")]) == 0
    rows = json.loads((tmp_path / "sweep" / "report" / "results.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["sft", "dpo-lr0.0001", "dpo-lr0.0003", "kto-lr0.0001", "kto-lr0.0003"]
    assert all(sum(r["outcomes"].values()) == 8 * 2 for r in rows)  # the 8 validation prompts, not the test ones
    assert "synthetic:validation" in (tmp_path / "sweep" / "report" / "results.md").read_text()
    for name in ("dpo", "kto"):  # the grid replaces each run's own value, KTO's included
        trained = [yaml.safe_load((tmp_path / "sweep" / "train" / f"{name}-lr{v:g}" / "seed0" / "config.yaml")
                                  .read_text())["learning_rate"] for v in (1e-4, 3e-4)]
        assert trained == [1e-4, 3e-4]


def test_each_paper_finding_gets_a_verdict_with_magnitude():
    """Issue 25 item 4: "reproduced" only when the paired interval excludes 0 in the paper's direction, saying
    whether the paper's value lies inside it; otherwise smaller, not distinguishable from 0, or reversed, each
    with both numbers."""
    from jpo.runner.report.statistics import finding

    # the case: +1.1 [+0.3, +2.0] against the paper's +5.2 is a smaller effect, not a reproduction
    assert finding("JPO - DPO", 5.2, {"difference": 1.1, "ci95": [0.3, 2.0]}) == (
        "- JPO - DPO: paper +5.2 points, here +1.1 [+0.3, +2.0]: smaller than the paper's (the paper's value lies "
        "outside the interval).")
    assert finding("JPO - DPO", 5.2, {"difference": 4.0, "ci95": [2.1, 6.0]}).endswith(
        ": reproduced (the paper's value lies inside the interval).")
    assert finding("JPO - DPO", 5.2, {"difference": 9.0, "ci95": [7.0, 11.0]}).endswith(
        ": reproduced, larger than the paper's (the paper's value lies outside the interval).")
    assert finding("JPO - KTO", 1.5, {"difference": -1.6, "ci95": [-2.6, -0.6]}) == \
        "- JPO - KTO: paper +1.5 points, here -1.6 [-2.6, -0.6]: reversed."
    assert finding("JPO - DPO", 5.2, {"difference": 0.2, "ci95": [-0.5, 0.9]}) == \
        "- JPO - DPO: paper +5.2 points, here +0.2 [-0.5, +0.9]: not distinguishable from 0."
    # a negative finding: the paper's direction is down
    assert finding("X - Y", -2.0, {"difference": -1.0, "ci95": [-1.5, -0.5]}).endswith(": smaller than the paper's "
                                                                                       "(the paper's value lies "
                                                                                       "outside the interval).")
    assert finding("X - Y", -2.0, {"difference": -2.2, "ci95": [-3.0, -1.5]}).endswith(
        ": reproduced (the paper's value lies inside the interval).")
    assert finding("X - Y", -2.0, {"difference": 1.0, "ci95": [0.5, 1.5]}).endswith(": reversed.")
    assert finding("JPO - DPO", 5.2, None) == "- JPO - DPO: paper +5.2 points; not run here."


def test_a_built_wheel_carries_the_demo_recipe(tmp_path):
    """`jpo demo` reads the recipe beside its module, a link to configs/demo.yaml that a wheel stores as a file."""
    import subprocess
    import sys
    import zipfile

    from jpo.runner.run import DEMO_RECIPE

    assert DEMO_RECIPE.resolve() == (ROOT / "configs" / "demo.yaml").resolve()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("jpo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("jpo/runner/demo.yaml") == (ROOT / "configs" / "demo.yaml").read_bytes()
