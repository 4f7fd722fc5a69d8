"""`jpo run` with an `online:` section: the online runs planned after SFT, trained by the loop with the recipe's
annotator, then generated from and evaluated like every other run; bad sections are one-line errors."""

from __future__ import annotations

import json

import pytest
import yaml

from jpo.cli import main
from jpo.errors import JpoError
from jpo.runner.recipe import for_dry_run, parse_recipe

CPU = {"save_strategy": "no", "use_cpu": True, "disable_tqdm": True, "max_length": 64}
RECIPE = {
    "name": "tiny-online",
    "threads": 1,
    "data": {"conditional": {"source": "synthetic", "split": "pool", "limit": 16},
             "eval": {"source": "synthetic", "split": "test", "limit": 4}},
    "model": {"build": {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                        "intermediate_size": 64}},
    "judge": {"spec": "oracle", "conditional": True},
    "pairs": {"from": "sft"},  # the offline runs read D_H (empty without pairs)
    "sft": {"from": "conditional", "config": {"max_steps": 20, "learning_rate": 0.01,
                                              "per_device_train_batch_size": 8, **CPU}},
    "train": {"common": {"max_steps": 1, "learning_rate": 0.001, "per_device_train_batch_size": 4, **CPU},
              "runs": [{"name": "dpo", "objective": "dpo"}]},
    "online": [{"name": "online-jpo", "mode": "jpo", "rounds": 2, "prompts_per_round": 6, "max_new_tokens": 6},
               {"name": "online-dpo", "mode": "dpo", "rounds": 1, "prompts_per_round": 6, "max_new_tokens": 6,
                "ref_model": "previous", "config": {"beta": 0.2}}],
    "generate": {"temperatures": [1.0], "max_new_tokens": 6, "backend": "hf", "device": "cpu"},
    "evaluate": {"n_resamples": 200, "paired": ["online-jpo - dpo"]},
}


@pytest.mark.slow
def test_jpo_run_trains_generates_and_evaluates_the_online_runs(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    run = tmp_path / "run"
    assert main(["run", str(path), "--output-dir", str(run)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for label in ("train/online-jpo/seed0", "train/online-dpo/seed0", "generate/online-jpo/seed0",
                  "evaluate/online-dpo/seed0"):
        assert f"jpo run: {label}: done" in out
    folder = run / "train" / "online-jpo" / "seed0"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["result"]["rounds"] == 2 and manifest["result"]["cumulative"]["samples"] == 12
    log = [json.loads(line) for line in (folder / "model" / "online_log.jsonl").read_text().splitlines()]
    assert [e["round"] for e in log] == [1, 2] and all(e["mode"] == "jpo" for e in log)
    dpo_log = json.loads((run / "train" / "online-dpo" / "seed0" / "model" / "online_log.jsonl").read_text())
    assert dpo_log["samples"] == 12 and dpo_log["reference"] == "previous"
    # the online loop asked the recipe's annotator, on the pool's instructions
    pool = {json.loads(line)["prompt_a"] for line in (run / "data" / "pool.jsonl").read_text().splitlines()}
    samples = (folder / "model" / "rounds" / "round-001" / "samples.jsonl").read_text().splitlines()
    assert {json.loads(line)["prompt"] for line in samples} <= pool
    results = {row["name"]: row for row in json.loads((run / "report" / "results.json").read_text())["rows"]}
    assert results["online-jpo"]["method"] == "online JPO (online-jpo)" and results["online-dpo"]["outcomes"]
    assert "online JPO (online-jpo) - dpo: " in (run / "report" / "results.md").read_text()

    # a rerun skips the finished online units
    assert main(["run", str(path), "--output-dir", str(run)]) == 0
    assert "jpo run: train/online-jpo/seed0: finished earlier" in capsys.readouterr().out
    first = (folder / "model" / "rounds" / "round-001" / "samples.jsonl").stat().st_mtime_ns

    # one more round goes on from the finished ones; another setting starts the loop afresh
    grown = {**RECIPE, "online": [{**RECIPE["online"][0], "rounds": 3}, RECIPE["online"][1]]}
    path.write_text(yaml.safe_dump(grown, sort_keys=False))
    assert main(["run", str(path), "--output-dir", str(run)]) == 0
    capsys.readouterr()
    assert json.loads((folder / "manifest.json").read_text())["result"]["resumed"] == [1, 2]
    assert (folder / "model" / "rounds" / "round-001" / "samples.jsonl").stat().st_mtime_ns == first
    changed = {**RECIPE, "online": [{**RECIPE["online"][0], "rounds": 3, "temperature": 0.7}, RECIPE["online"][1]]}
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    assert main(["run", str(path), "--output-dir", str(run)]) == 0, capsys.readouterr().err
    assert json.loads((folder / "manifest.json").read_text())["result"]["resumed"] == []


def test_online_section_errors_and_dry_run_sizes():
    with pytest.raises(JpoError, match=r"online\[0\] \(dpo\): the name is taken"):
        parse_recipe({**RECIPE, "online": [{"name": "dpo"}]}, "r.yaml")
    with pytest.raises(JpoError, match=r"online\[0\] \(x\).config: unknown key 'betta'"):
        parse_recipe({**RECIPE, "online": [{"name": "x", "config": {"betta": 0.1}}]}, "r.yaml")
    with pytest.raises(JpoError, match=r"online\[0\] \(x\): --mode must be one of"):
        parse_recipe({**RECIPE, "online": [{"name": "x", "mode": "offline"}]}, "r.yaml")
    with pytest.raises(JpoError, match="unknown key 'round'"):
        parse_recipe({**RECIPE, "online": [{"name": "x", "round": 3}]}, "r.yaml")
    recipe = parse_recipe({**RECIPE, "online": [{"name": "x", "rounds": 9, "prompts_per_round": 500}],
                           "evaluate": {"paired": ["x - dpo"]}}, "r.yaml")
    assert "x" in recipe.models()
    dry = for_dry_run(recipe, recipe.model, None)  # a built model is its own stand-in
    assert (dry.online[0].rounds, dry.online[0].prompts_per_round) == (2, 6)


@pytest.mark.slow
def test_dry_run_shrinks_the_online_runs(tmp_path, capsys):
    online = [{"name": "online-jpo", "rounds": 5, "prompts_per_round": 50, "selector": "disagreement",
               "selection_budget": 10,
               "selection_judges": ["oracle:temperature=0.3,seed=1", "oracle:temperature=0.3,seed=2"]}]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "online": online, "evaluate": {"n_resamples": 200}}))
    assert main(["run", str(path), "--dry-run", "--output-dir", str(tmp_path / "run")]) == 0
    assert "jpo run: evaluate/online-jpo/seed0: done" in capsys.readouterr().out
    log = (tmp_path / "run" / "train" / "online-jpo" / "seed0" / "model" / "online_log.jsonl").read_text()
    entries = [json.loads(line) for line in log.splitlines()]
    assert [(e["prompts"], e["comparisons"]["joint"]) for e in entries] == [(6, 3), (6, 3)]



def test_an_online_runs_config_is_typed_at_parse_time():
    """A training setting of an online run is typed like every other recipe setting (issue 23 item 7)."""
    import copy

    recipe = copy.deepcopy(RECIPE)
    recipe["online"][1]["config"] = {"learning_rate": "1e-4"}  # YAML 1.1 reads this as text
    assert parse_recipe(recipe, "r.yaml").online[1].config["learning_rate"] == 1e-4
    recipe["online"][1]["config"] = {"learning_rate": "fast"}
    with pytest.raises(JpoError, match=r"r.yaml.*online\[1\].*learning_rate"):
        parse_recipe(recipe, "r.yaml")
