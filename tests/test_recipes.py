"""Every shipped recipe is valid, follows the paper's protocol and settings, carries the paper's numbers, and passes
`jpo run RECIPE --dry-run` on the shared samples standing in for the hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from jpo.cli import main
from jpo.data import read_jsonl
from jpo.runner import load_recipe
from jpo.runner.plan import plan
from jpo.runner.recipe import BuildModel, for_dry_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))
PAPER_TASKS = {"tldr": "TL;DR", "hh-helpful": "HH-helpful"}


def test_there_is_a_recipe_per_experiment():
    names = {p.stem for p in RECIPES}
    assert names >= {"demo", "tldr-mistral7b", "tldr-qwen0.5b", "hh-helpful-mistral7b", "hh-helpful-qwen0.5b",
                     "ultrafeedback-alpacaeval-mistral7b", "ultrafeedback-alpacaeval-qwen0.5b",
                     "jpo-authors-tldr-mistral7b", "jpo-authors-hh-mistral7b"}


@pytest.mark.parametrize("recipe_path", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_valid_and_plans(recipe_path, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    recipe = load_recipe(recipe_path)
    stages = [u.stage for u in plan(recipe, tmp_path)]
    assert stages[0] == "data" and stages[-1] == "report" and "train" in stages and "evaluate" in stages
    for accelerate in (recipe.sft.accelerate, recipe.train.accelerate):
        if accelerate:
            assert load_config_from_file(str(ROOT / accelerate.config_file)).mixed_precision == "bf16"


@pytest.mark.parametrize("recipe_path", RECIPES, ids=lambda p: p.stem)
def test_recipe_dry_run_and_sweep_forms_pass_the_same_checks(recipe_path):
    """`--dry-run` and `--sweep` transform the recipe and validate it again: a parse-time check must hold for the
    transformed recipe too."""
    from jpo.runner.recipe import DRY_TRAIN, for_sweep

    recipe = load_recipe(recipe_path)
    model = (BuildModel(pretrain={**recipe.model.pretrain, **DRY_TRAIN} if recipe.model.pretrain else {})
             if isinstance(recipe.model, BuildModel) else "tiny")
    assert for_dry_run(recipe, model, "http://127.0.0.1:1/v1").dry
    if recipe.sweep and recipe.data.validation:
        assert for_sweep(recipe).name == f"{recipe.name}-sweep"


@pytest.mark.parametrize("task", ["tldr", "hh-helpful"])
@pytest.mark.parametrize("size", ["mistral7b", "qwen0.5b"])
def test_tldr_and_hh_recipes_follow_the_papers_protocol_and_tables_4_6_7(task, size):
    recipe = load_recipe(CONFIGS / f"{task}-{size}.yaml")
    common = recipe.train.common
    assert recipe.sft.from_ == "conditional" and recipe.data.sft is None  # D_S from the pool (§5.1)
    assert recipe.pairs.from_ == "sft" and recipe.pairs.strategy == "random" and recipe.judge.conditional
    assert recipe.data.conditional.limit == {"tldr": 11800, "hh-helpful": 12800}[task]  # Table 4
    assert common["num_train_epochs"] == {"tldr": 10, "hh-helpful": 5}[task]  # Table 7
    assert (common["lora_r"], common["lora_alpha"], common["lora_dropout"]) == (8, 16, 0.05) and common["use_peft"]
    assert (common["beta"], common["learning_rate"], common["lr_scheduler_type"], common["warmup_steps"]) == \
        (0.1, 5e-5, "cosine", 100)
    assert common["per_device_train_batch_size"] * common["gradient_accumulation_steps"] == 32
    if size == "mistral7b":
        assert recipe.model == "mistralai/Mistral-7B-v0.1" and common["load_in_4bit"]
    sft = recipe.sft.config
    processes = recipe.sft.accelerate.num_processes if recipe.sft.accelerate else 1
    lr, batch = {"tldr": (2e-5, 12), "hh-helpful": (1.5e-6, 6)}[task]  # Table 6
    assert sft["learning_rate"] == lr and sft["num_train_epochs"] == 3
    assert sft["per_device_train_batch_size"] * sft["gradient_accumulation_steps"] * processes == batch
    runs = {r.name: r for r in recipe.train.runs}
    assert (runs["dpo"].data, runs["kto"].data, runs["jpo"].data) == (["conditional"], ["conditional"],
                                                                      ["conditional", "joint"])
    assert runs["jpo-dh"].data == ["joint"] and runs["jpo-mix"].data == ["mix"]
    assert (runs["dpo-dh"].objective, runs["dpo-dh"].data) == ("dpo", ["joint"])
    assert recipe.train.seeds == [0, 1, 2] and recipe.generate.temperatures == [0.001, 0.5, 1.0]


def test_alpaca_eval_recipes_use_appendix_e_settings():
    for name in ("ultrafeedback-alpacaeval-mistral7b", "ultrafeedback-alpacaeval-qwen0.5b"):
        recipe = load_recipe(CONFIGS / f"{name}.yaml")
        assert recipe.train.common["beta"] == 0.01 and recipe.train.common["num_train_epochs"] == 1
        assert recipe.pairs.from_ == "conditional" and recipe.pairs.strategy == "proxy"  # no judge for D_H
        assert not recipe.judge.conditional and recipe.sft.from_ == "none"
        rates = sorted({r.config["learning_rate"] for r in recipe.runs() if r.objective == "jpo"})
        assert rates == [1e-7, 3e-7, 5e-7]
        assert recipe.generate.temperatures == [0.7] and recipe.generate.alpaca_eval


def table_5() -> dict[str, dict[str, dict[str, float]]]:
    """Table 5 of ../shared/paper/RESULTS.md: {task: {method: {temperature | average: win-rate}}}."""
    path = ROOT.parent / "shared" / "paper" / "RESULTS.md"
    if not path.exists():
        pytest.skip(f"{path} not found: the paper's numbers are only beside the project's own checkout")
    text = path.read_text().split("## Table 5")[1].split("\n## ")[0]
    out: dict[str, dict[str, dict[str, float]]] = {"tldr": {}, "hh-helpful": {}}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 9 and re.fullmatch(r"[\d.]+", cells[1]):
            keys = ["0.001", "0.5", "1.0", "average"]
            out["tldr"][cells[0].lower()] = dict(zip(keys, map(float, cells[1:5]), strict=True))
            out["hh-helpful"][cells[0].lower()] = dict(zip(keys, map(float, cells[5:9]), strict=True))
    return out


@pytest.mark.parametrize("name", ["tldr-mistral7b", "hh-helpful-mistral7b", "tldr-qwen0.5b", "hh-helpful-qwen0.5b",
                                  "jpo-authors-tldr-mistral7b", "jpo-authors-hh-mistral7b"])
def test_paper_sections_carry_table_5(name):
    task = "tldr" if "tldr" in name else "hh-helpful"
    paper = load_recipe(CONFIGS / f"{name}.yaml").paper.win_rate
    expected = table_5()[task]
    assert set(expected) == {"sft", "dpo", "kto", "jpo"}
    for method, values in expected.items():
        assert paper[method] == values, method


def test_reproducing_doc_shows_table_5_beside_the_run():
    text = (ROOT / "docs" / "reproducing.md").read_text()
    for task, methods in table_5().items():
        for method, values in methods.items():
            assert f"{values['average']:.1f}" in text, (task, method)
    assert "Table 5" in text and "results.md" in text


@pytest.fixture
def stand_ins(tmp_path, shared_data):
    """Local copies standing in for each source's hub data. TL;DR comparisons have no shared sample: a small file
    in the hub's own layout (info/summaries/choice) is built from the shared TL;DR posts. The authors' train files
    are stood in for by their HH validation files."""
    posts = read_jsonl(shared_data("jpo-authors", "tldr", "test.json"))[-40:]
    comparisons = tmp_path / "tldr_comparisons.jsonl"
    comparisons.write_text("".join(json.dumps({
        "info": {"id": p["instruction_id"], "post": p["instruction"], "title": p["title"]},
        "summaries": [{"text": p["gold_response"]}, {"text": p["title"]}], "choice": i % 2}) + "\n"
        for i, p in enumerate(posts)))
    return {
        "tldr:sft": shared_data("jpo-authors", "tldr", "test.json"),
        "tldr:preference": comparisons,
        "hh-helpful": shared_data("hh-rlhf", "harmless-base", "test.jsonl.gz"),
        "jpo-authors:sft": shared_data("jpo-authors", "anthropic_helpful", "val_sft.jsonl"),
        "jpo-authors:preference": shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"),
        "jpo-authors": shared_data("jpo-authors"),
        "ultrafeedback": shared_data("ultrafeedback_sample"),
        "alpaca-eval": shared_data("alpaca_eval"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("recipe_path", RECIPES, ids=lambda p: p.stem)
def test_recipe_dry_run(recipe_path, stand_ins, tiny_model_path, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", str(recipe_path), "--dry-run", "--output-dir", str(out), "--dry-run-tokenizer",
            str(tiny_model_path)]
    for name, path in stand_ins.items():
        argv += ["--source-path", f"{name}={path}"]
    assert main(argv) == 0, capsys.readouterr().err
    recipe = load_recipe(recipe_path)
    model = recipe.model if isinstance(recipe.model, BuildModel) else "tiny"
    dry = for_dry_run(recipe, model, None)  # the first seed, one small scaling run, one budget per selector
    scaling, selection = recipe.train.scaling, recipe.train.selection
    assert len(dry.runs()) == len(recipe.runs()) - (len(scaling.sizes) - 1 if scaling else 0) - (
        len(selection.selectors) * (len(selection.budgets) - 1) if selection else 0)
    for run in dry.runs():
        folder = out / "train" / run.name / f"seed{dry.train.seeds[0]}"
        state = json.loads((folder / "model" / "trainer_state.json").read_text())
        assert state["global_step"] == 1
        assert (folder / "model" / "README.md").exists()
        assert (out / "evaluate" / run.name / f"seed{dry.train.seeds[0]}" / "winrate.json").exists()
    if recipe.generate.alpaca_eval:
        first = next(p for p in (out / "generate").glob("*/seed0/model_outputs.json"))
        exported = json.loads(first.read_text())
        assert exported and not exported[0]["instruction"].startswith("user:")  # bare instructions, no template
    if isinstance(recipe.model, BuildModel) and recipe.model.pretrain:  # the demo's model is pretrained first
        state = json.loads((out / "pretrain" / "model" / "trainer_state.json").read_text())
        assert state["global_step"] == 1
        sft_base = yaml.safe_load((out / "sft" / "config.yaml").read_text())["model_name_or_path"]
        assert sft_base == str(out / "pretrain" / "model")
    data = json.loads((out / "data" / "manifest.json").read_text())["result"]
    if recipe.sft.from_ == "conditional":  # D_S drawn from the conditional pool's instructions
        assert data["D_S"]["from"] == "conditional" and data["D_S"]["from_pool_instructions"] == data["D_S"]["rows"]
        sft = read_jsonl(out / "data" / "sft.jsonl")
        pool = {item["prompt_a"] for item in read_jsonl(out / "data" / "pool.jsonl")}
        assert sft and {row["prompt"] for row in sft} == pool
    assert (out / "report" / "results.md").read_text().startswith(f"# {recipe.name} (dry run")
    assert f"jpo run: {recipe.name} (dry run)" in capsys.readouterr().out


def _demo_values() -> dict:
    return yaml.safe_load((CONFIGS / "demo.yaml").read_text())


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    (("generate",), "max_new_tokens", "twenty", "generate.max_new_tokens: expected an integer, got 'twenty'"),
    (("generate",), "max_new_tokens", 2.5, "generate.max_new_tokens: expected an integer, got 2.5"),
    (("generate",), "max_new_tokens", True, "generate.max_new_tokens: expected an integer, got True"),
    (("generate",), "top_p", "high", "generate.top_p: expected a number, got 'high'"),
    (("generate",), "temperatures", 0.5, "generate.temperatures: expected a list of numbers, got 0.5"),
    (("generate",), "temperatures", [0.5, "hot"], "generate.temperatures: expected a list of numbers"),
    (("generate",), "alpaca_eval", "yes", "generate.alpaca_eval: expected true or false, got 'yes'"),
    (("generate",), "backend", "tensorrt", "generate.backend: 'tensorrt' is not one of auto, hf, vllm"),
    (("train",), "seeds", [0, "one"], "train.seeds: expected a list of integers, got [0, 'one']"),
    (("train", "common"), "learning_rate", "fast", "train.common.learning_rate: expected a number, got 'fast'"),
    (("train", "common"), "max_steps", 2.5, "train.common.max_steps: expected an integer, got 2.5"),
    (("train", "common"), "per_device_train_batch_size", "32x",
     "train.common.per_device_train_batch_size: expected an integer, got '32x'"),
    (("train", "common"), "use_cpu", "yes", "train.common.use_cpu: expected true or false, got 'yes'"),
    (("train", "common"), "lr_scheduler_type", "cosinus", "train.common.lr_scheduler_type: expected one of linear, "
                                                            "cosine"),
    (("train", "common"), "truncation_mode", "middle",
     "train.common.truncation_mode: expected one of keep_start, keep_end, got 'middle'"),
    (("train", "common"), "lora_target_modules", "q_proj", "train.common.lora_target_modules: expected a list of "
                                                           "texts or nothing (null), got 'q_proj'"),
    (("sft", "config"), "num_train_epochs", "three", "sft.config.num_train_epochs: expected a number, got 'three'"),
    (("sft", "config"), "disable_tqdm", 1, "sft.config.disable_tqdm: expected true or false or nothing (null), "
                                           "got 1"),
    (("model", "build", "pretrain"), "learning_rate", [0.1], "model.build.pretrain.learning_rate: expected a number"),
    ((), "sweep", {"learning_rate": [1e-4, "fast"]}, "sweep.learning_rate: expected a number, got 'fast'"),
    ((), "sweep", {"learning_rat": [1e-4]}, "sweep: unknown key 'learning_rat' (did you mean 'learning_rate'?)"),
    (("model", "build"), "hidden_size", "96", None),  # text that spells an integer is that integer
    (("train", "common"), "learning_rate", "1e-4", None),  # YAML 1.1 text for a number: the number
])
def test_every_recipe_value_is_typed_at_parse_time(section, key, value, expected, tmp_path):
    """Issue 23 item 7: a wrong value is one line naming the file, the key and the expected type, before any work;
    a number YAML 1.1 reads as text (`1e-4`) is that number."""
    from jpo.errors import JpoError
    from jpo.runner.recipe import parse_recipe

    values = _demo_values()
    target = values
    for part in section:
        target = target[part]
    target[key] = value
    if expected is None:
        recipe = parse_recipe(values, "recipe.yaml")
        parsed = {"hidden_size": lambda: recipe.model.hidden_size,
                  "learning_rate": lambda: recipe.train.common["learning_rate"]}[key]()
        assert parsed == float(value) and not isinstance(parsed, str)
        return
    with pytest.raises(JpoError) as error:
        parse_recipe(values, "recipe.yaml")
    message = str(error.value)
    assert message.startswith("recipe.yaml: ") and expected in message and "\n" not in message


def test_a_run_config_and_a_yaml_file_are_typed_too(tmp_path):
    from jpo.errors import JpoError

    values = _demo_values()
    values["train"]["runs"][1]["config"]["learning_rate"] = "3e-4"  # KTO's own value, YAML 1.1 text
    path = tmp_path / "typed.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False).replace("'3e-4'", "3e-4"))
    recipe = load_recipe(path)
    assert recipe.train.runs[1].config["learning_rate"] == 3e-4
    assert plan(recipe, tmp_path / "run")  # the typed value reaches the units' configs
    values["train"]["runs"][1]["config"]["beta"] = "strong"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    with pytest.raises(JpoError, match=rf"^{re.escape(str(path))}: train.runs\[1\] \(kto\).config.beta: expected a "
                                       "number, got 'strong'$"):
        load_recipe(path)


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    (("train", "common"), "beta", -1, "recipe.yaml: train.common.beta: must be positive, got -1"),
    (("train", "common"), "learning_rate", -0.1, "recipe.yaml: train.common.learning_rate: must be non-negative"),
    (("train", "runs", 0), "config", {"learning_rate": -1},
     "recipe.yaml: train.runs[0] (dpo).config.learning_rate: must be non-negative, got -1"),
    (("train", "common"), "max_length", 0, "recipe.yaml: train.common.max_length: must be at least 1"),
    (("train", "runs", 0), "config", {"max_steps": -5},
     "recipe.yaml: train.runs[0] (dpo).config.max_steps: must be positive, or -1"),
    (("sft", "config"), "per_device_train_batch_size", 0,
     "recipe.yaml: sft.config.per_device_train_batch_size: must be at least 1, got 0"),
    (("sft", "config"), "warmup_steps", -3, "recipe.yaml: sft.config.warmup_steps: must be non-negative, got -3"),
    (("model", "build", "pretrain"), "num_train_epochs", 0,
     "recipe.yaml: model.build.pretrain.num_train_epochs: must be positive, got 0"),
    ((), "sweep", {"learning_rate": [1e-4, -1e-4]}, "recipe.yaml: sweep.learning_rate: must be non-negative"),
])
def test_a_recipes_training_settings_are_checked_at_parse_time(section, key, value, expected):
    """A value out of range fails when the recipe is read, naming the file and the key, not at the train stage
    after the judge was paid (the config each stage builds is built once here, on the CPU, without a model)."""
    from jpo.errors import JpoError
    from jpo.runner.recipe import parse_recipe

    values = _demo_values()
    target = values
    for part in section:
        target = target[part]
    target[key] = value
    with pytest.raises(JpoError) as error:
        parse_recipe(values, "recipe.yaml")
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)


def test_gpu_settings_do_not_fail_a_recipe_read_on_the_cpu():
    """bf16 / tf32 are for the machine that trains: reading the recipe on a CPU does not refuse them."""
    from jpo.runner.recipe import parse_recipe

    values = _demo_values()
    values["train"]["common"].update(bf16=True, tf32=True)
    values["sft"]["config"]["bf16"] = True
    recipe = parse_recipe(values, "recipe.yaml")
    assert recipe.train.common["bf16"] is True and recipe.train.common["tf32"] is True


@pytest.mark.parametrize(("values", "expected"), [
    ({}, "recipe.yaml: missing required keys: name, data"),
    ({"name": "x"}, "recipe.yaml: missing required key: data"),
    ("run", "recipe.yaml: train.runs[0]: missing required keys: name, objective"),
    ("source", "recipe.yaml: data.eval: missing required key: source"),
])
def test_missing_required_keys_are_named(values, expected):
    """Issue 23 item 14: an empty recipe (or section) names the keys it lacks, not Python's positional arguments."""
    from jpo.errors import JpoError
    from jpo.runner.recipe import parse_recipe

    if values == "run":  # nested sections: a run, a data part
        values = _demo_values()
        values["train"]["runs"][0] = {"data": ["conditional"]}
    elif values == "source":
        values = _demo_values()
        values["data"]["eval"] = {"split": "test"}
    with pytest.raises(JpoError) as error:
        parse_recipe(values, "recipe.yaml")
    assert str(error.value).startswith(expected) and "positional" not in str(error.value)


def _set(values: dict, path: str, value) -> None:
    """`values` with the key at `path` (`train/runs/0/data`; list indices as numbers) set to `value`."""
    *keys, last = path.split("/")
    for key in keys:
        values = values[int(key)] if isinstance(values, list) else values[key]
    values[last] = value


@pytest.mark.parametrize(("path", "value", "expected"), [
    # names: they name folders and are written `a - b`
    ("name", "", "name: '' is not a usable name"),
    ("train/runs/1/name", "../../kto", "train.runs[1].name: '../../kto' is not a usable name"),
    ("train/runs/1/name", "dpo", "train.runs: a model's name (sweep, scaling and selection points included): 'dpo' is "
                                 "given twice"),
    ("train/runs/1/name", "sft", "train.runs: 'sft' is the SFT model's name"),
    # seeds, sizes and counts
    ("seed", -1, "seed: at least 0, got -1"),
    ("train/seeds", [], "train.seeds: at least one seed"),
    ("train/seeds", [0, -1], "train.seeds: at least 0, got -1"),
    ("train/seeds", [0, 1, 0], "train.seeds: '0' is given twice"),
    ("data/conditional/limit", 0, "data.conditional.limit: at least 1, got 0"),
    ("data/eval/limit", -5, "data.eval.limit: at least 1, got -5"),
    ("data/conditional/source", "synthetik", "data.conditional.source: 'synthetik' is not one of synthetic"),
    ("data/conditional/split", "poool", "data.conditional.split: 'poool' is not one of pretrain, pool"),
    ("model/build/hidden_size", 0, "model.build: hidden_size: at least 1, got 0"),
    ("model/build/num_heads", 7, "model.build: hidden_size 96 is not a multiple of num_heads 7"),
    ("model/build/hiden_size", 96, "model.build: unknown key 'hiden_size' (did you mean 'hidden_size'?)"),
    ("train/scaling/sizes", [], "train.scaling.sizes: at least one size"),
    ("train/scaling/sizes", [100, -1], "train.scaling.sizes: at least 1, got -1"),
    ("train/scaling/sizes", [100, 100], "train.scaling.sizes: '100' is given twice"),
    ("pairs/pairs_per_instance", 0, "pairs.pairs_per_instance: at least 1, got 0"),
    ("pairs/pool", -3, "pairs.pool: --pool -3: need at least one partner per instance"),
    ("evaluate/n_resamples", 0, "evaluate.n_resamples: at least 1, got 0"),
    ("evaluate/joint_max_per_pair", 0, "evaluate.joint_max_per_pair: at least 1, got 0"),
    # a run's data and a sweep grid: an empty one trains nothing, a repeat is silently merged
    ("train/runs/0/data", [], "train.runs[0] (dpo).data: at least one of conditional, joint, mix, fresh"),
    ("train/runs/0/data", ["conditional", "conditional"], "train.runs[0] (dpo).data: 'conditional' is given twice"),
    ("sweep", {"learning_rate": []}, "sweep.learning_rate: at least one value"),
    ("sweep", {"learning_rate": [1e-4, 1e-4]}, "sweep.learning_rate: '0.0001' is given twice"),
    ("sweep", {"learning_rate": [1e-4, -1]}, "sweep.learning_rate: must be non-negative, got -1"),
    ("train/runs/1/sweep", {"learning_rate": []}, "train.runs[1] (kto).sweep.learning_rate: at least one value"),
    # what evaluate, the report and the judges name
    ("evaluate/paired", ["dpo - dpo"], "evaluate.paired 'dpo - dpo': a model against itself"),
    ("evaluate/paired", ["jpo - dpo", "jpo - dpo"], "evaluate.paired: 'jpo - dpo' is given twice"),
    ("evaluate/joint", ["sft", "dpo", "sft"], "evaluate.joint: 'sft' is given twice"),
    ("sensitivity/r3", -1, "sensitivity.r3: at least 0, got -1"),
    ("sensitivity/r4", 2, "sensitivity.r4: a share of dpo - SFT in [0, 1], got 2"),
    ("judge/spec", "orcle:temperature=0.1", "judge.spec: unknown judge 'orcle'"),
    ("evaluate/judge", "orcle", "evaluate.judge: unknown judge 'orcle'"),
    ("judge/agreement", {"second": "nope:x"}, "judge.agreement.second: unknown judge 'nope'"),
    ("pairs/judges", ["oracle", "orcle"], "pairs.judges[1]: unknown judge 'orcle'"),
    ("judge/tie_margin", -1, "judge: tie_margin must be non-negative, got -1"),
    ("judge/concurrency", 0, "judge: concurrency must be at least 1, got 0"),
    # a judge's options, where the judge checks them without being built (the oracle's)
    ("judge/spec", "oracle:temprature=0.1", "judge.spec: bad oracle option 'temprature=0.1'"),
    ("judge/agreement", {"second": "oracle:seed=two"}, "judge.agreement.second: oracle option seed must be a number"),
    ("generate/device", "gpu9", "generate: device: Invalid device string: 'gpu9'"),
])
def test_a_value_that_would_be_dropped_or_fail_late_is_refused_at_parse_time(path, value, expected):
    """Bad values that the recipe reader once accepted -- an empty list that trains nothing, a repeated seed or size
    done twice, a name that is a path, a judge that does not exist, a size of 0 -- fail when the recipe is read, in
    one line naming the file and the key."""
    from jpo.errors import JpoError
    from jpo.runner.recipe import parse_recipe

    values = _demo_values()
    _set(values, path, value)
    with pytest.raises(JpoError) as error:
        parse_recipe(values, "recipe.yaml")
    assert str(error.value).startswith(f"recipe.yaml: {expected}") and "\n" not in str(error.value), error.value


def test_an_online_runs_combined_settings_are_checked_at_parse_time(tmp_path):
    """An online run's settings as its stage merges them (train.common, then its config): a negative learning rate
    in its config fails on reading, not after pretraining and SFT."""
    from jpo.errors import JpoError

    path = tmp_path / "online.yaml"
    path.write_text(f"extends: {CONFIGS / 'demo-online.yaml'}\nonline:\n"
                    "  - {name: online-jpo, config: {learning_rate: -1}}\n  - {name: online-dpo, mode: dpo}\n")
    with pytest.raises(JpoError, match=rf"^{re.escape(str(path))}: online\[0\] \(online-jpo\).config.learning_rate: "
                                       "must be non-negative, got -1$"):
        load_recipe(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("name: a\nname: b\n", ":2:1: not valid YAML: key 'name' is given twice in one mapping"),
    ("train:\n  common:\n    beta: 0.1\n    beta: 0.5\n", ":4:5: not valid YAML: key 'beta' is given twice"),
    ("train:\n  runs:\n    - {name: a, objective: dpo, objective: jpo}\n", ":3:33: not valid YAML: key 'objective'"),
    ("name: x\n\tdata: 1\n", ":2:1: not valid YAML: found character '\\t' that cannot start any token"),
    ("name: x\ndata: {eval: {source: synthetic\n", ":3:1: not valid YAML: expected ',' or '}'"),
    (b"name: \xff\n", ": cannot read recipe: not UTF-8 text (byte 6)"),
    ("extends: nothere.yaml\nname: x\n", ": extends: nothere.yaml ("),
    ("extends: folder\nname: x\n", ": extends: folder ("),
])
def test_a_recipe_file_that_cannot_be_read_names_the_file_and_line(text, expected, tmp_path):
    """A key given twice (PyYAML keeps the last and drops the first without a word), a YAML syntax error, a file that
    is not UTF-8, and `extends:` naming no file: one line naming the file (and the line and column), never a
    traceback, nothing silently dropped."""
    from jpo.errors import JpoError

    (tmp_path / "folder").mkdir()
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(JpoError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}{expected}") and "\n" not in message, message
