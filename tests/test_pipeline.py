"""`jpo run`: manifests make reruns skip finished units, crashes resume, and changes rerun what they touch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jpo.cli import main
from jpo.pipeline import Pipeline, read_recipe, train_runs

RECIPE = {
    "name": "tiny",
    "model": "unused/hub-model",
    "prompt_template": "### Instructions: {prompt}\n\n### Response:",
    "data": {
        "sft": {"source": "jpo-authors", "task": "anthropic_helpful", "split": "validation", "kind": "sft"},
        "conditional": {"source": "jpo-authors", "task": "anthropic_helpful", "split": "validation"},
        "pairs": {"from": "sft"},
        "eval": {"source": "jpo-authors", "task": "anthropic_helpful", "split": "test", "kind": "prompts"},
    },
    "judge": {"spec": "openai:gpt-3.5-turbo-0125"},
    "sft": {"config": {"learning_rate": 1e-4}},
    "train": {"common": {"beta": 0.1, "use_peft": True, "lora_r": 8, "lora_alpha": 16},
              "runs": [{"name": "jpo", "objective": "jpo", "data": ["conditional", "joint"]}]},
    "generate": {"temperatures": [0.001]},
    "dry_run": {"model_type": "llama"},
    "paper": {"jpo": 74.5},
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
    assert list(first) == ["pairs", "judge", "sft", "train/jpo", "generate/sft", "evaluate/sft", "generate/jpo",
                           "evaluate/jpo", "analyze", "report"]
    run = tmp_path / "run"
    manifest = json.loads((run / "train" / "jpo" / "manifest.json").read_text())
    assert manifest["versions"]["jpo"] and manifest["commands"][0].startswith("jpo train --config ")
    assert manifest["result"]["steps"] == 1
    card = (run / "train" / "jpo" / "model" / "README.md").read_text()
    assert "JPO: DPO's sigmoid loss on joint log-probabilities" in card and "| 0.001 |" in card
    assert "lora_r: 8" in card and "max_steps: 1" in card
    report = (run / "report" / "report.md").read_text()
    assert "| jpo |" in report and "74.5%" in report

    assert set(run_tiny().values()) == {"skipped"}  # nothing changed: nothing runs

    # a crash inside training: no manifest for it; the rerun resumes there and redoes what reads its model
    (run / "train" / "jpo" / "manifest.json").unlink()
    again = run_tiny()
    assert [k for k, v in again.items() if v == "ran"] == ["train/jpo", "generate/jpo", "evaluate/jpo", "report"]

    # a changed generation setting reruns generation and what follows, not training
    changed = {**RECIPE, "generate": {"temperatures": [0.001, 1.0]}}
    again = run_tiny(changed)
    assert [k for k, v in again.items() if v == "ran"] == ["generate/sft", "evaluate/sft", "generate/jpo",
                                                           "evaluate/jpo", "report"]
    assert [k for k, v in run_tiny(changed, "--from", "evaluate").items() if v == "ran"] == \
        ["evaluate/sft", "evaluate/jpo", "analyze", "report"]
    assert set(run_tiny(changed, "--force").values()) == {"ran"}


def test_recipe_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "epochs": 3}))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "unknown recipe key(s): epochs" in capsys.readouterr().err
    bad = {**RECIPE, "train": {"runs": [{"name": "jpo", "objective": "jpo", "config": {"learning_rat": 1e-5}}]}}
    path.write_text(yaml.safe_dump(bad))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "train run jpo: unknown key 'learning_rat' (did you mean 'learning_rate'?)" in capsys.readouterr().err
    no_joint = {**RECIPE, "data": {k: v for k, v in RECIPE["data"].items() if k != "pairs"}}
    path.write_text(yaml.safe_dump(no_joint))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "uses joint data, but the recipe has no data.pairs" in capsys.readouterr().err
    path.write_text("- a list\n")
    assert main(["run", str(path)]) == 2
    assert "a recipe is a mapping" in capsys.readouterr().err


def test_sweeps_expand_to_named_runs():
    recipe = {"train": {"runs": [{"name": "dpo", "objective": "dpo", "sweep": {"learning_rate": [1e-7, 5e-7]}}]}}
    runs = train_runs(recipe)
    assert [r["name"] for r in runs] == ["dpo-lr1e-07", "dpo-lr5e-07"]
    assert [r["config"]["learning_rate"] for r in runs] == [1e-7, 5e-7]


def test_unit_keys_chain_through_dependencies(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    keys = []
    for temperature in (0.5, 0.5, 1.0):
        recipe = read_recipe(path)
        recipe["generate"] = {"temperatures": [temperature]}
        pipeline = Pipeline(recipe, str(path), Path(tmp_path / "run"), dry_run=False, source_paths={})
        pipeline.plan()
        keys.append({u.label: u.key for u in pipeline.units})
    assert keys[0] == keys[1]
    changed = {label for label in keys[0] if keys[0][label] != keys[2][label]}
    assert changed == {"generate/sft", "generate/jpo", "evaluate/sft", "evaluate/jpo", "report"}


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

    monkeypatch.setattr("jpo.pipeline.subprocess.run", fake_run)
    small = {"max_steps": 2, "max_length": 128, "max_prompt_length": 96, "per_device_train_batch_size": 2,
             "logging_steps": 1, "save_strategy": "no"}
    with MockJudgeServer() as server:
        recipe = {**RECIPE, "model": str(tiny_model_path),
                  "data": {**{k: {**v, "limit": 12} for k, v in RECIPE["data"].items() if k != "pairs"},
                           "pairs": {"from": "sft"}},
                  "judge": {"spec": "openai:mock", "base_url": server.base_url, "concurrency": 4},
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
    state = json.loads((run / "train" / "dpo" / "model" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    manifest = json.loads((run / "train" / "dpo" / "manifest.json").read_text())
    assert "accelerate.commands.launch" in manifest["commands"][0]
    assert (run / "judge" / "joint.jsonl").exists() and server.outcomes()["ok"] > 0
    winrate = json.loads((run / "evaluate" / "dpo" / "winrate.json").read_text())
    assert winrate["average"]["n"] == 12
