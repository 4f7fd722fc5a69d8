"""`jpo run`: the recipe parsed once (unknown keys name the file, the key and the nearest valid one), the dry run as
one transformation, manifests that make reruns skip finished units, crashes resume, and changes rerun what they
touch."""

from __future__ import annotations

import ast
import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from jpo.cli import main
from jpo.data import read_jsonl
from jpo.errors import JpoError
from jpo.runner.plan import plan
from jpo.runner.recipe import for_dry_run, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {
    "name": "tiny",
    "model": "unused/hub-model",
    "prompt_template": "### Instructions: {prompt}\n\n### Response:",
    "data": {
        "conditional": {"source": "jpo-authors", "task": "anthropic_helpful", "split": "validation"},
        "eval": {"source": "jpo-authors", "task": "anthropic_helpful", "split": "test", "kind": "prompts"},
    },
    "sft": {"from": "conditional", "config": {"learning_rate": 1e-4}},
    "pairs": {"from": "sft"},
    "judge": {"spec": "openai:gpt-3.5-turbo-0125", "conditional": True},
    "train": {"common": {"beta": 0.1, "use_peft": True, "lora_r": 8, "lora_alpha": 16},
              "runs": [{"name": "jpo", "objective": "jpo", "data": ["conditional", "joint"]}]},
    "generate": {"temperatures": [0.001]},
    "dry_run": {"model_type": "llama"},
    "paper": {"win_rate": {"jpo": {"average": 74.5}}},
}


@pytest.fixture
def run_tiny(tmp_path, shared_data, tiny_model_path, capsys):
    authors = shared_data("jpo-authors")

    def run(recipe=RECIPE, *extra: str) -> dict[str, str]:
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        status = main(["run", str(path), "--dry-run", "--output-dir", str(tmp_path / "run"),
                       "--source-path", f"jpo-authors={authors}", "--dry-run-tokenizer", str(tiny_model_path),
                       *extra])
        out = capsys.readouterr().out
        assert status == 0, out
        return {line.split(": ")[1]: line.rsplit("; ", 1)[-1] if "skipped" in line else "ran"
                for line in out.splitlines()
                if line.startswith("jpo run: ") and (line.endswith("skipped") or ": running" in line)}

    return run


@pytest.mark.slow
def test_rerun_skips_resume_and_invalidation(run_tiny, tmp_path):
    first = run_tiny()
    assert set(first.values()) == {"ran"}
    assert list(first) == ["data", "feedback", "sft", "train/jpo/seed0", "generate/sft/seed0", "evaluate/sft/seed0",
                           "generate/jpo/seed0", "evaluate/jpo/seed0", "report"]
    run = tmp_path / "run"
    manifest = json.loads((run / "train" / "jpo" / "seed0" / "manifest.json").read_text())
    assert manifest["versions"]["jpo"] and manifest["commands"][0].startswith("jpo train --config ")
    assert manifest["result"]["steps"] == 1
    card = (run / "train" / "jpo" / "seed0" / "model" / "README.md").read_text()
    assert "JPO: DPO's sigmoid loss on joint log-probabilities" in card and "| 0.001 |" in card
    assert "lora_r: 8" in card and "max_steps: 1" in card
    report = (run / "report" / "results.md").read_text()
    assert report.startswith("# tiny (dry run") and "| jpo |" in report and "74.5" in report
    data = json.loads((run / "data" / "manifest.json").read_text())["result"]["D_S"]
    assert data["from"] == "conditional" and data["from_pool_instructions"] == data["rows"] > 0
    # the recorded generate command reads the prompts as the model saw them (templated) and gives back the run's
    # generations
    generated = run / "generate" / "jpo" / "seed0"
    argv = shlex.split(json.loads((generated / "manifest.json").read_text())["commands"][0])
    prompts = read_jsonl(argv[argv.index("--prompts") + 1])
    assert prompts and all(p["prompt"].startswith("### Instructions: ") for p in prompts)
    argv[argv.index("--output") + 1] = str(tmp_path / "again.jsonl")
    assert argv[0] == "jpo" and main([*argv[1:], "--no_progress"]) == 0
    assert read_jsonl(tmp_path / "again.jsonl") == read_jsonl(generated / "generations.jsonl")

    assert set(run_tiny().values()) == {"skipped"}  # nothing changed: nothing runs
    shutil.copytree(run, tmp_path / "copied")  # manifests name models by their units' keys, not by folders
    moved = run_tiny(RECIPE, "--output-dir", str(tmp_path / "copied"))
    assert set(moved.values()) == {"skipped"}, moved

    # a crash inside training: no manifest for it; the rerun resumes there and redoes what reads its model
    (run / "train" / "jpo" / "seed0" / "manifest.json").unlink()
    again = run_tiny()
    assert [k for k, v in again.items() if v == "ran"] == ["train/jpo/seed0", "generate/jpo/seed0",
                                                           "evaluate/jpo/seed0", "report"]

    # a changed generation setting reruns generation and what follows, not training
    changed = {**RECIPE, "generate": {"temperatures": [0.001, 1.0]}}
    again = run_tiny(changed)
    assert [k for k, v in again.items() if v == "ran"] == ["generate/sft/seed0", "evaluate/sft/seed0",
                                                           "generate/jpo/seed0", "evaluate/jpo/seed0", "report"]
    assert [k for k, v in run_tiny(changed, "--from", "evaluate").items() if v == "ran"] == \
        ["evaluate/sft/seed0", "evaluate/jpo/seed0", "report"]
    assert set(run_tiny(changed, "--force").values()) == {"ran"}


def test_recipe_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "epochs": 3}))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert f"{path}: unknown key 'epochs'" in capsys.readouterr().err
    bad = {**RECIPE, "train": {"runs": [{"name": "jpo", "objective": "jpo", "config": {"learning_rat": 1e-5}}]}}
    path.write_text(yaml.safe_dump(bad))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert (f"{path}: train.runs[0] (jpo).config: unknown key 'learning_rat' (did you mean 'learning_rate'?)"
            in capsys.readouterr().err)
    typo = {**RECIPE, "sft": {"form": "conditional"}}
    path.write_text(yaml.safe_dump(typo))
    assert main(["run", str(path)]) == 2
    assert f"{path}: sft: unknown key 'form' (did you mean 'from'?)" in capsys.readouterr().err
    no_joint = {k: v for k, v in RECIPE.items() if k != "pairs"}
    path.write_text(yaml.safe_dump(no_joint))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "uses joint data, but the recipe has no pairs section" in capsys.readouterr().err
    path.write_text("- a list\n")
    assert main(["run", str(path)]) == 2
    assert "a recipe must be a mapping" in capsys.readouterr().err


def test_sweeps_and_scaling_expand_to_named_runs():
    recipe = parse_recipe({**RECIPE, "paper": {}, "train": {
        "runs": [{"name": "dpo", "objective": "dpo", "sweep": {"learning_rate": [1e-7, 5e-7]}},
                 {"name": "jpo-dh", "objective": "jpo", "data": ["joint"]}],
        "scaling": {"run": "jpo-dh", "sizes": [100, 1000]}}})
    runs = recipe.runs()
    assert [r.name for r in runs] == ["dpo-lr1e-07", "dpo-lr5e-07", "jpo-dh", "jpo-dh-100", "jpo-dh-1000"]
    assert [r.config.get("learning_rate") for r in runs[:2]] == [1e-7, 5e-7]
    assert [r.joint_size for r in runs[2:]] == [None, 100, 1000]
    with pytest.raises(JpoError, match="must train on D_H alone"):
        parse_recipe({**RECIPE, "train": {"runs": RECIPE["train"]["runs"], "scaling": {"run": "jpo", "sizes": [5]}}})


def test_dry_run_is_one_transformation_of_the_recipe():
    recipe = parse_recipe({**RECIPE, "train": {**RECIPE["train"], "seeds": [0, 1, 2],
                                               "accelerate": {"config_file": "configs/accelerate/ddp.yaml"}}})
    dry = for_dry_run(recipe, "/tmp/tiny-model", "http://127.0.0.1:1/v1")
    assert dry.model == "/tmp/tiny-model" and dry.dry and dry.train.seeds == [0]
    assert dry.train.common["max_steps"] == 1 and dry.sft.config["max_steps"] == 1 and dry.train.accelerate is None
    assert dry.data.conditional.limit == 12 and dry.data.eval.limit == 2
    assert dry.judge.spec == "openai:mock" and dry.judge.base_url == "http://127.0.0.1:1/v1"
    assert dry.generate.max_new_tokens == 8 and recipe.generate.max_new_tokens == 128  # the original is untouched
    # no stage body or the planner knows about dry runs: the transformation is the only place
    for name in ("data.py", "stages.py", "plan.py", "units.py"):
        tree = ast.parse((ROOT / "src" / "jpo" / "runner" / name).read_text())
        names = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(tree)
                 if isinstance(n, ast.Name | ast.Attribute)}
        assert not names & {"dry", "dry_run", "for_dry_run"}, name


def test_unit_keys_chain_through_dependencies(tmp_path):
    keys = []
    for temperature in (0.5, 0.5, 1.0):
        recipe = parse_recipe({**RECIPE, "generate": {"temperatures": [temperature]}})
        keys.append({u.label: u.key for u in plan(recipe, tmp_path / "run")})
    assert keys[0] == keys[1]
    changed = {label for label in keys[0] if keys[0][label] != keys[2][label]}
    assert changed == {"generate/sft/seed0", "generate/jpo/seed0", "evaluate/sft/seed0", "evaluate/jpo/seed0", "report"}


def test_seeds_repeat_preference_training_not_sft(tmp_path):
    recipe = parse_recipe({**RECIPE, "train": {**RECIPE["train"], "seeds": [0, 1, 2]}})
    labels = [u.label for u in plan(recipe, tmp_path / "run")]
    assert labels.count("sft") == 1
    assert [label for label in labels if label.startswith("train/")] == [f"train/jpo/seed{s}" for s in (0, 1, 2)]
    assert "generate/sft/seed2" in labels and "evaluate/jpo/seed1" in labels


@pytest.mark.slow
def test_real_run_on_a_local_model_with_a_judge_server_and_accelerate(tmp_path, shared_data, tiny_model_path,
                                                                      monkeypatch, capsys):
    """Not a dry run: the recipe's own (local) model, its judge settings pointed at a local OpenAI-compatible
    server, and training launched through `accelerate launch` (intercepted here and run in this process)."""
    import subprocess

    from jpo.feedback.mock_server import MockJudgeServer

    launched = []

    def fake_run(command, check):
        launched.append(command)
        assert command[1:3] == ["-m", "accelerate.commands.launch"]
        assert command[command.index("-m", 3) + 1] == "jpo"
        return subprocess.CompletedProcess(command, main(command[command.index("-m", 3) + 2:]))

    monkeypatch.setattr("jpo.runner.stages.subprocess.run", fake_run)
    small = {"max_steps": 2, "max_length": 128, "max_prompt_length": 96, "per_device_train_batch_size": 2,
             "logging_steps": 1, "save_strategy": "no"}
    with MockJudgeServer() as server:
        recipe = {**RECIPE, "model": str(tiny_model_path), "paper": {},
                  "data": {k: {**v, "limit": 12} for k, v in RECIPE["data"].items()},
                  "judge": {"spec": "openai:mock", "base_url": server.base_url, "concurrency": 4,
                            "conditional": True},
                  "sft": {"config": small},
                  "train": {"accelerate": {"config_file": "configs/accelerate/ddp.yaml", "num_processes": 1},
                            "common": {**small, "beta": 0.1},
                            "runs": [{"name": "dpo", "objective": "dpo", "data": ["conditional"]}]},
                  "generate": {"temperatures": [0.001], "max_new_tokens": 8}}
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        status = main(["run", str(path), "--output-dir", str(tmp_path / "run"),
                       "--source-path", f"jpo-authors={shared_data('jpo-authors')}"])
    assert status == 0, capsys.readouterr().err
    assert len(launched) == 1 and "configs/accelerate/ddp.yaml" in launched[0]
    run = tmp_path / "run"
    state = json.loads((run / "train" / "dpo" / "seed0" / "model" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    manifest = json.loads((run / "train" / "dpo" / "seed0" / "manifest.json").read_text())
    assert "accelerate.commands.launch" in manifest["commands"][0]
    assert (run / "feedback" / "joint_labeled.jsonl").exists() and server.outcomes()["ok"] > 0
    winrate = json.loads((run / "evaluate" / "dpo" / "seed0" / "winrate.json").read_text())
    assert winrate["average"]["n"] == 12


def test_only_a_built_model_with_pretrain_settings_gets_a_pretrain_unit(tmp_path):
    hub = [u.label for u in plan(parse_recipe(RECIPE), tmp_path / "hub")]
    assert "pretrain" not in hub and "model" not in hub
    built = {**RECIPE, "model": {"build": {"hidden_size": 32, "pretrain": {"learning_rate": 3e-3}}},
             "data": {**RECIPE["data"], "pretrain": {"source": "synthetic", "split": "pretrain", "limit": 10}},
             "threads": 1}
    recipe = parse_recipe(built)
    units = {u.label: u for u in plan(recipe, tmp_path / "built")}
    assert list(units)[:4] == ["data", "model", "pretrain", "feedback"]
    assert [d.label for d in units["pretrain"].deps] == ["data", "model"]
    assert [d.label for d in units["sft"].deps] == ["data", "pretrain"]  # SFT starts from the pretrained model
    assert recipe.threads == 1
    with pytest.raises(JpoError, match=r"model.build.pretrain: unknown key 'learning_rat' \(did you mean "
                                       r"'learning_rate'\?\)"):
        parse_recipe({**built, "model": {"build": {"pretrain": {"learning_rat": 3e-3}}}})
    with pytest.raises(JpoError, match="model.build.pretrain needs the documents"):
        parse_recipe({**built, "data": RECIPE["data"]})
    with pytest.raises(JpoError, match="data.pretrain is read only to pretrain a built model"):
        parse_recipe({**RECIPE, "data": built["data"]})
    with pytest.raises(JpoError, match="threads: at least 1"):
        parse_recipe({**built, "threads": 0})


SELECTING = {**RECIPE, "paper": {},
             "pairs": {"from": "sft", "pool": 4, "judges": ["oracle:seed=3", "oracle:seed=4"]},
             "train": {"seeds": [0, 1], "runs": [{"name": "jpo", "objective": "jpo", "data": ["conditional", "joint"]},
                                                 {"name": "jpo-dh", "objective": "jpo", "data": ["joint"]}],
                       "selection": {"run": "jpo-dh", "budgets": [10, 20], "max_steps": 30,
                                     "selectors": ["random", "certainty"]}}}


def test_selection_is_a_select_unit_per_seed_and_a_run_per_selector_and_budget(tmp_path):
    recipe = parse_recipe(SELECTING)
    selected = [r for r in recipe.runs() if r.selected]
    assert [r.name for r in selected] == ["jpo-dh-random-10", "jpo-dh-random-20", "jpo-dh-certainty-10",
                                          "jpo-dh-certainty-20"]
    assert all(r.config["max_steps"] == 30 and r.data == ["joint"] for r in selected)  # one training budget
    units = {u.label: u for u in plan(recipe, tmp_path / "run")}
    labels = list(units)
    assert [label for label in labels if label.startswith("select/")] == [
        "select/seed0/random", "select/seed0/certainty", "select/seed1/random", "select/seed1/certainty"]
    assert labels.index("sft") < labels.index("select/seed0/random") < labels.index("train/jpo/seed0")
    # a unit reads (and its key holds) only what its selector uses: the margin selectors score with the SFT model
    assert [d.label for d in units["select/seed1/certainty"].deps] == ["data", "sft"]
    assert [d.label for d in units["select/seed1/random"].deps] == ["data"]
    assert units["select/seed1/certainty"].config["budgets"] == [10, 20]
    assert "select/seed1/certainty" in [d.label for d in units["train/jpo-dh-certainty-20/seed1"].deps]
    assert not any(d.stage == "select" for d in units["train/jpo-dh/seed0"].deps)
    assert "evaluate/jpo-dh-random-10/seed1" in units and "select/pairs" not in units
    # adding a selector leaves every other selector's units (and what was trained on them) as they were
    more = parse_recipe({**SELECTING, "train": {**SELECTING["train"], "selection": {
        **SELECTING["train"]["selection"], "selectors": ["random", "certainty", "coverage"]}}})
    again = {u.label: u.key for u in plan(more, tmp_path / "run")}
    assert all(again[label] == unit.key for label, unit in units.items() if label != "report")
    # pairs.budget: D_H itself is chosen by a selector after SFT, and every joint run trains on it
    chosen = parse_recipe({**SELECTING, "pairs": {**SELECTING["pairs"], "strategy": "certainty", "budget": 50},
                           "train": {k: v for k, v in SELECTING["train"].items() if k != "selection"}})
    units = {u.label: u for u in plan(chosen, tmp_path / "chosen")}
    assert [u for u in units if u.startswith("select")] == ["select/pairs"]
    assert (units["select/pairs"].config["selector"], units["select/pairs"].config["budgets"]) == ("certainty", [50])
    assert "select/pairs" in [d.label for d in units["train/jpo/seed1"].deps]


@pytest.mark.parametrize(("change", "message"), [
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "run": "jpo"}}},
     "train.selection.run must train on D_H alone"),
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "selectors": ["certainity"]}}},
     "train.selection: selector: 'certainity' is not one of random, coverage, uncertainty, certainty, disagreement"),
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "budgets": [0]}}},
     r"train.selection: budgets are numbers of comparisons, at least 1: \[0\]"),
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "max_step": 3}}},
     r"train.selection: unknown key 'max_step' \(did you mean 'max_steps'\?\)"),
    ({"pairs": {"from": "sft", "pool": "some"}}, "pairs.pool: --pool must be 'all' or a number"),
    ({"pairs": {"from": "sft", "pool": 4}, "train": {**SELECTING["train"], "selection": {
        **SELECTING["train"]["selection"], "selectors": ["disagreement"]}}},
     "the disagreement selector needs two cheap judges in pairs.judges, got 0"),
    ({"pairs": {"from": "sft", "strategy": "uncertainty"}}, "pairs.strategy 'uncertainty' is a selector: set pairs.budget"),
    ({"pairs": {"from": "sft", "strategy": "similar", "budget": 5}}, "pairs: selector: 'similar' is not one of"),
    ({"pairs": {"from": "sft", "strategy": "active-certainty", "budget": 5}},
     "pairs.strategy: the active loop is measured in train.selection"),
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "rounds": 11,
                                                    "selectors": ["active-uncertainty"]}}},
     r"train.selection.rounds must be between 1 and the smallest budget \(10\), got 11"),
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "selectors": ["active-random"]}}},
     "'active-random' is not one of random, .*, active-uncertainty, active-certainty"),
    ({"train": {**SELECTING["train"], "selection": {**SELECTING["train"]["selection"], "selectors": ["active-certainty"]}}},
     "the active selectors do not apply prompt_template yet"),
])
def test_selection_errors_name_the_file_and_the_key(change, message):
    if "active-uncertainty" in str(change) or "active-random" in str(change):
        change = {**change, "prompt_template": None}  # the active loop does not template yet (its own error)
    with pytest.raises(JpoError, match=message) as error:
        parse_recipe({**SELECTING, **change}, "configs/x.yaml")
    assert str(error.value).startswith("configs/x.yaml: ") and "\n" not in str(error.value)


def test_a_budget_larger_than_the_pool_names_the_recipe_section_and_the_point(tmp_path):
    from jpo.data import write_jsonl
    from jpo.runner.select import select_points
    from jpo.runner.units import Unit

    recipe = parse_recipe({**SELECTING, "judge": {"spec": "oracle"}, "pairs": {"from": "sft", "pool": 2}}, "r.yaml")
    write_jsonl(tmp_path / "sft.jsonl", [{"prompt": f"instruction {i}", "response": f"response {i}"} for i in range(5)])
    unit = Unit("select", "seed0/random", tmp_path / "select", {}, [], [], lambda u: None)
    unit.folder.mkdir()
    with pytest.raises(JpoError, match=r"^r.yaml: train.selection: random-11: --budget 11 is larger than the pool "
                                       r"\(10 candidates\)$"):
        select_points(unit, recipe, [("random", 10), ("random", 11)], 0, tmp_path, tmp_path / "no-model")
    labelled = [json.loads(line) for line in (tmp_path / "select" / "random-10" / "items_labeled.jsonl")
                .read_text().splitlines()]  # the point before the failing one was bought and written
    assert len(labelled) == 10 and len((tmp_path / "select" / "random-10" / "D_H.jsonl").read_text().splitlines()) \
        == sum(row["label"] in ("a", "b") for row in labelled)
