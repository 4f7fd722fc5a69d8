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
    recipe = parse_recipe({**RECIPE, "online": [{"name": "x", "rounds": 9, "prompts_per_round": 500,
                                                 "config": {"max_steps": 45, "beta": 0.2}}],
                           "train": {**RECIPE["train"], "runs": [{"name": "dpo", "objective": "dpo",
                                                                  "config": {"max_steps": 360}}]},
                           "evaluate": {"paired": ["x - dpo"]}}, "r.yaml")
    assert "x" in recipe.models()
    dry = for_dry_run(recipe, recipe.model, None)  # a built model is its own stand-in
    assert (dry.online[0].rounds, dry.online[0].prompts_per_round) == (2, 6)
    # the dry run's one step, whatever steps a run asks for itself
    assert dry.online[0].config == {"beta": 0.2} and dry.train.runs[0].config == {}


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


def _tiny_online_demo(tmp_path) -> str:
    """configs/demo-online.yaml at toy size: the demo's toy sizes (tests/test_demo.py), 3 rounds of 8 prompts, 2
    steps a round, the offline JPO run at the online runs' 6 steps."""
    from test_demo import tiny_demo

    path = tiny_demo(tmp_path, "demo-online.yaml")
    recipe = yaml.safe_load(path.read_text())
    for run in recipe["online"]:
        run.update(rounds=3, prompts_per_round=8, max_new_tokens=6)
        run["config"]["max_steps"] = 2
    recipe["train"]["runs"][0]["config"]["max_steps"] = 6
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return str(path)


@pytest.mark.slow
def test_the_online_demo_reports_curves_costs_and_the_headline(tmp_path, capsys):
    """Issue 22's measurement at toy size: online JPO, online DPO and offline JPO at equal steps, every round's policy
    evaluated, the cost table, the round's wall time by stage, the headline and the curves' plot in the report."""
    run = tmp_path / "run"
    assert main(["run", _tiny_online_demo(tmp_path), "--output-dir", str(run)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for label in ("evaluate/online-jpo/seed0-round1", "evaluate/online-dpo/seed0-round2"):
        assert f"jpo run: {label}: done" in out
    report = run / "report"
    online = json.loads((report / "results.json").read_text())["online"]
    jpo, dpo = online["runs"]["online-jpo"], online["runs"]["online-dpo"]
    assert [p["round"] for p in jpo["curve"]] == [0, 1, 2, 3] == [p["round"] for p in dpo["curve"]]
    # one sample per prompt against two; a joint comparison per sample against one conditional per prompt
    assert [c["samples"] for c in jpo["costs"]] == [[8]] * 3 and [c["samples"] for c in dpo["costs"]] == [[16]] * 3
    assert [c["comparisons"]["joint"] for c in jpo["costs"]] == [[8]] * 3
    assert [c["comparisons"]["conditional"] for c in dpo["costs"]] == [[8]] * 3
    assert [p["samples"] for p in jpo["curve"]] == [0, 8, 16, 24] and dpo["curve"][-1]["samples"] == 48
    assert jpo["curve"][-1]["judge_questions"] == sum(c["judge_questions"][0] for c in jpo["costs"])
    assert all(c["decisive"][0] <= c["comparisons"]["joint"][0] for c in jpo["costs"])
    assert all(c["tokens_generated"][0] >= c["samples"][0] for c in jpo["costs"])
    # equal training steps: 3 rounds x 2 against the offline run's 6 (a round with no decisive label trains none)
    assert jpo["steps"] == [sum(c["train_steps"][0] for c in jpo["costs"])] and max(jpo["steps"]) <= 6
    assert online["offline"]["jpo"]["steps"] == [6] and online["offline"]["jpo"]["judge_questions"] > 0
    sft = json.loads((report / "results.json").read_text())["rows"][0]
    assert sft["name"] == "sft" and jpo["curve"][0]["average"] == sft["average"]  # round 0 is the SFT model
    (comparison,) = online["comparisons"]
    assert (comparison["joint"], comparison["conditional"]) == ("online-jpo", "online-dpo")
    assert [s["round"] for s in comparison["same_round"]] == [1, 2, 3]
    assert [s["samples"] for s in comparison["same_samples"]] == [16]  # JPO's round 2 = DPO's round 1
    head = comparison["joint_at_conditional_budget"]
    assert head["reaches"] == "online-dpo" and head["other"] == "online-jpo"
    assert len(head["difference"]["per_seed"]) == 1 and "seconds" not in online
    markdown = (report / "results.md").read_text()
    for text in ("## Online training on the policy's own samples", "Headline:", "Cost per round",
                 "Wall time of a round", "Offline references"):
        assert text in markdown
    assert (report / "online_curves.png").exists()
    seconds = json.loads((report / "provenance.json").read_text())["online_round_seconds"]["online-jpo"]
    assert set(seconds) >= {"generation", "judging", "training", "total"}
    # the README's online block is written from this report, never typed
    from jpo.runner.readme import BLOCKS, update_readme

    start, end = BLOCKS["online"]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{start}\nstale\n{end}\nrest\n")
    block = update_readme(readme, report, "online")
    assert block.startswith("Generated by `scripts/readme_numbers.py` from ") and "stale" not in readme.read_text()
    assert "online JPO - online DPO after the same round" in block and "| 3 | 24 / " in block
    assert "wall time" in block and "Offline reference: offline JPO" in block
    with pytest.raises(JpoError, match="needs one '<!-- demo-numbers:start -->'"):
        update_readme(readme, report)  # the demo block's markers are not in this file


@pytest.mark.slow
def test_two_fresh_runs_of_the_online_demo_write_the_same_results_json(tmp_path, capsys):
    """The online section is counts and win-rates only (its round times are in provenance.json): the same recipe in
    two fresh folders writes byte-identical results.json."""
    path = tmp_path / "tiny-demo-online.yaml"
    _tiny_online_demo(tmp_path)
    recipe = yaml.safe_load(path.read_text())
    for run in recipe["online"]:
        run["rounds"] = 2
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    for folder in ("first", "second"):
        assert main(["run", str(path), "--output-dir", str(tmp_path / folder)]) == 0, capsys.readouterr().err
    first, second = ((tmp_path / f / "report" / "results.json").read_bytes() for f in ("first", "second"))
    assert first == second and b'"online"' in first
