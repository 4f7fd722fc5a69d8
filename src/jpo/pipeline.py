"""`jpo run RECIPE`: one experiment of the paper from a YAML recipe, as resumable stages.

    pairs -> judge -> sft -> train (one unit per method) -> generate -> evaluate -> analyze -> report

Every stage is a thin call of the matching `jpo` command (`jpo pairs`-style data building, `jpo judge`, `jpo sft`,
`jpo train`, `jpo generate`, `jpo evaluate`, `jpo analyze`), so a recipe run is exactly what a user could type, and
each unit's manifest records that command. A unit (a stage, or one model within train/generate/evaluate) writes
`manifest.json` beside its outputs when it finishes: a key hashing its configuration and the keys of the units it
reads, the inputs, outputs, versions and timings. A rerun skips every unit whose manifest key still matches and whose
outputs exist; a crash leaves the crashed unit without a manifest, so the rerun resumes there (judging resumes from
its verdict store, training from its last checkpoint). `--from STAGE` reruns that stage and everything after it;
`--force` reruns everything.

`--dry-run` checks a recipe without a GPU or network: the recipe and every training config are validated, a few rows
of each data source are read (local stand-ins via `--source-path` or $JPO_SOURCE_<NAME>), the recipe's model is
built at a tiny size with random weights from its config, judges are answered by a local mock OpenAI-compatible
server, and every stage runs for one step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.errors import JpoError

STAGES = ("pairs", "judge", "sft", "train", "generate", "evaluate", "analyze", "report")
RECIPE_KEYS = {"name", "description", "model", "output_dir", "seed", "prompt_template", "data", "judge", "sft",
               "train", "generate", "evaluate", "analyze", "accelerate", "dry_run", "paper", "hardware"}
DATA_PARTS = ("sft", "conditional", "joint", "eval")
DRY_ROWS = {"sft": 12, "conditional": 12, "joint": 12, "eval": 2}


# --- recipe ------------------------------------------------------------------------------------------------------


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    try:
        recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise JpoError(f"{path}: cannot read recipe: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise JpoError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(recipe, dict):
        raise JpoError(f"{path}: a recipe is a mapping (name, model, data, ...)")
    unknown = sorted(set(recipe) - RECIPE_KEYS)
    if unknown:
        raise JpoError(f"{path}: unknown recipe key(s): {', '.join(unknown)} (known: {', '.join(sorted(RECIPE_KEYS))})")
    for key in ("name", "model", "data"):
        if key not in recipe:
            raise JpoError(f"{path}: the recipe needs '{key}'")
    data = recipe["data"]
    if not isinstance(data, dict) or "eval" not in data:
        raise JpoError(f"{path}: data needs at least an 'eval' source (and sft / conditional / joint)")
    for part in data:
        if part not in DATA_PARTS + ("pairs",):
            raise JpoError(f"{path}: data.{part}: unknown part (known: {', '.join(DATA_PARTS)}, pairs)")
    for run in train_runs(recipe):
        for name in run.get("data", []):
            if name not in ("conditional", "joint"):
                raise JpoError(f"{path}: train run {run['name']}: data '{name}' is not conditional or joint")
            if name == "joint" and "pairs" not in data and "joint" not in data:
                raise JpoError(f"{path}: train run {run['name']} uses joint data, but the recipe has no data.pairs "
                               "(to judge) or data.joint (ready-made) section")
    return recipe


def train_runs(recipe: dict[str, Any], *, first_of_sweeps: bool = False) -> list[dict[str, Any]]:
    """The recipe's train runs with sweeps expanded: `sweep: {learning_rate: [1e-7, 3e-7]}` gives one run per value,
    named `<run>-lr1e-07`. A dry run takes the first value only: the others differ in a number, not in code."""
    section = recipe.get("train") or {}
    runs = []
    for run in section.get("runs", []):
        if "name" not in run or "objective" not in run:
            raise JpoError(f"train run {run!r}: needs name and objective")
        sweep = run.get("sweep") or {}
        if not sweep:
            runs.append(run)
            continue
        if len(sweep) != 1:
            raise JpoError(f"train run {run['name']}: sweep one option at a time")
        (option, values), = sweep.items()
        short = {"learning_rate": "lr", "beta": "beta"}.get(option, option)
        for value in values[:1] if first_of_sweeps else values:
            runs.append({**{k: v for k, v in run.items() if k != "sweep"}, "name": f"{run['name']}-{short}{value:g}",
                         "config": {**(run.get("config") or {}), option: value}})
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        raise JpoError(f"train runs must have distinct names: {names}")
    return runs


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def versions() -> dict[str, str]:
    import importlib.metadata

    import jpo

    out = {"jpo": jpo.__version__, "python": platform.python_version()}
    for package in ("torch", "transformers", "datasets", "accelerate", "peft"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


# --- units and manifests -----------------------------------------------------------------------------------------


@dataclass
class Unit:
    """One resumable piece of work: a stage, or one model's share of train / generate / evaluate."""

    stage: str
    name: str
    folder: Path
    config: dict[str, Any]
    deps: list[Unit]
    outputs: list[str]
    run: Callable[[Unit], dict[str, Any] | None]
    commands: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.stage if self.name == self.stage else f"{self.stage}/{self.name}"

    @property
    def key(self) -> str:
        return digest({"stage": self.stage, "name": self.name, "config": self.config,
                       "deps": [d.key for d in self.deps]})

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def finished(self) -> bool:
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return False
        return manifest.get("key") == self.key and all((self.folder / o).exists() for o in self.outputs)


def write_manifest(unit: Unit, started: float, extra: dict[str, Any] | None) -> None:
    manifest = {
        "stage": unit.stage, "name": unit.name, "key": unit.key, "config": unit.config,
        "inputs": {d.label: {"key": d.key, "folder": str(d.folder)} for d in unit.deps},
        "outputs": unit.outputs, "commands": unit.commands, "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 2), "result": extra or {},
    }
    tmp = unit.manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, unit.manifest_path)


def cli(unit: Unit, name: str, argv: list[str]) -> None:
    """Run `jpo NAME ARGV` in this process (errors propagate as JpoError) and record the command."""
    from jpo.cli import build_parser

    unit.commands.append(shlex.join(["jpo", name, *argv]))
    parser = build_parser(name)
    args = parser.parse_args(argv)
    status = args._run(args)
    if status:
        raise JpoError(f"jpo {name} exited with status {status}")


# --- the pipeline ------------------------------------------------------------------------------------------------


class Pipeline:
    def __init__(self, recipe: dict[str, Any], recipe_path: str, run_dir: Path, *, dry_run: bool,
                 source_paths: dict[str, str]) -> None:
        self.recipe, self.recipe_path, self.run_dir, self.dry_run = recipe, recipe_path, run_dir, dry_run
        self.source_paths = source_paths
        self.seed = int(recipe.get("seed", 0))
        self.template = recipe.get("prompt_template")
        self.judge_spec = (recipe.get("judge") or {}).get("spec")
        self.judge_flags: list[str] = []
        self.model_path = str(recipe["model"])
        self.units: list[Unit] = []

    # -- helpers
    def folder(self, *parts: str) -> Path:
        path = self.run_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add(self, stage: str, name: str, config: dict[str, Any], deps: list[Unit], outputs: list[str],
            run: Callable[[Unit], dict[str, Any] | None], *folder: str) -> Unit:
        unit = Unit(stage, name, self.run_dir.joinpath(stage, *folder), config, deps, outputs, run)
        self.units.append(unit)
        return unit

    def judge_argv(self) -> list[str]:
        if not self.judge_spec:
            raise JpoError("the recipe's judge section needs a spec (e.g. openai:gpt-3.5-turbo-0125)")
        return ["--judge", self.judge_spec, *self.judge_flags, "--no_progress"]

    # -- stage bodies
    def run_pairs(self, unit: Unit) -> dict[str, Any]:
        from jpo.data import write_jsonl
        from jpo.data.pairs import PairReport, instances_from_preferences, instances_from_sft, make_pairs
        from jpo.data.sources import drop_overlap, load_source

        data = self.recipe["data"]
        out: dict[str, Any] = {}
        loaded: dict[str, list[dict[str, Any]]] = {}
        kinds = {"sft": "sft", "conditional": "preference", "joint": "preference", "eval": "prompts"}
        for part in ("eval", "sft", "conditional", "joint"):  # eval first: training rows must not contain its prompts
            spec = data.get(part)
            if not spec:
                continue
            limit = spec.get("limit")
            if self.dry_run:
                limit = min(limit or DRY_ROWS[part], DRY_ROWS[part])
            name, kind = spec["source"], spec.get("kind", kinds[part])
            path = spec.get("path") or self.source_paths.get(f"{name}:{kind}") or self.source_paths.get(name)
            result = load_source(name, spec.get("split", "test" if part == "eval" else "train"), kind=kind,
                                 path=path, task=spec.get("task"), limit=limit)
            rows = result.rows
            report = result.report.as_dict()
            if part != "eval" and "eval" in loaded:
                rows, overlap = drop_overlap(rows, loaded["eval"], kinds[part])
                report["left_out"]["instruction is an evaluation prompt"] = overlap
            loaded[part] = rows
            write_jsonl(unit.folder / f"{part}.jsonl", rows)
            out[part] = report
            print(f"jpo run: {result.report.summary()}")
        pairs = data.get("pairs")
        if pairs:
            origin = pairs.get("from", "sft")
            if origin not in loaded:
                raise JpoError(f"data.pairs.from: '{origin}' is not a loaded data part ({', '.join(loaded)})")
            report = PairReport()
            seed = int(pairs.get("seed", self.seed))
            instances = (instances_from_sft(loaded[origin], report) if origin == "sft"
                         else instances_from_preferences(loaded[origin], seed, report))
            items = make_pairs(instances, strategy=pairs.get("strategy", "random"),
                               pairs_per_instance=int(pairs.get("pairs_per_instance", 1)), seed=seed, report=report)
            write_jsonl(unit.folder / "items.jsonl", items)
            out["pairs"] = report.summary()
            print(f"jpo run: pairs: {report.summary()}")
        return out

    def run_judge(self, unit: Unit, pairs: Unit) -> dict[str, Any]:
        out = {}
        todo = [("joint", pairs.folder / "items.jsonl")] if (pairs.folder / "items.jsonl").exists() else []
        if (self.recipe.get("judge") or {}).get("conditional") and (pairs.folder / "conditional.jsonl").exists():
            todo.append(("conditional", pairs.folder / "conditional.jsonl"))
        for name, items in todo:
            cli(unit, "judge", ["--input", str(items), "--output", str(unit.folder / f"{name}_labeled.jsonl"),
                                "--to-preferences", str(unit.folder / f"{name}.jsonl"),
                                "--cache", str(unit.folder / "verdicts.sqlite"), *self.judge_argv()])
            out[name] = sum(1 for _ in open(unit.folder / f"{name}.jsonl", encoding="utf-8"))
        return out

    def preference_file(self, name: str, pairs: Unit, judge: Unit | None) -> Path:
        judged = judge.folder / f"{name}.jsonl" if judge else None
        if judged and judged.exists():
            return judged
        path = pairs.folder / f"{name}.jsonl"
        if not path.exists():
            raise JpoError(f"no {name} preferences: the recipe has neither data.{name} nor judged pairs")
        return path

    def templated(self, unit: Unit, source: Path, kind: str) -> str:
        """The training file with the model's prompt template applied (the judge saw the bare instructions)."""
        from jpo.data import read_jsonl, write_jsonl
        from jpo.data.load import load_preferences, load_sft
        from jpo.modeling import apply_template

        if not self.template:
            return str(source)
        rows = (load_sft if kind == "sft" else load_preferences)(source) if kind != "prompts" else read_jsonl(source)
        target = unit.folder / f"data_{source.stem}.jsonl"
        write_jsonl(target, apply_template(rows, self.template, kind))
        return str(target)

    def train_config(self, section: dict[str, Any], run: dict[str, Any] | None, model: str,
                     datasets: list[str], output_dir: Path) -> dict[str, Any]:
        config = {"seed": self.seed, "report_to": "none", **(section.get("common") or section.get("config") or {})}
        if run is not None:
            config.update(run.get("config") or {})
            config["objective"] = run["objective"]
        config.update({"model_name_or_path": model, "dataset": datasets, "output_dir": str(output_dir)})
        if self.dry_run:
            config.update({"max_steps": 1, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                           "max_length": 128, "max_prompt_length": 96, "logging_steps": 1, "save_strategy": "no", "bf16": False,
                           "load_in_4bit": False, "warmup_steps": 0, "gradient_checkpointing": False})
            if run is not None and config.get("precompute_ref_log_probs"):
                config["ref_cache_dir"] = str(self.run_dir / "ref_cache")
        return config

    def launch(self, unit: Unit, command: str, config: dict[str, Any], section: dict[str, Any]) -> None:
        """Train in this process, or under `accelerate launch` when the stage's section (or the recipe) names an
        accelerate config: `accelerate: {config_file: configs/accelerate/zero3.yaml, num_processes: 8}`."""
        import yaml

        path = unit.folder / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        accelerate = section.get("accelerate") or self.recipe.get("accelerate")
        resume = any(Path(config["output_dir"]).glob("checkpoint-*"))
        argv = ["--config", str(path)] + (["--resume_from_checkpoint", "true"] if resume else [])
        if accelerate and not self.dry_run:
            launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate["config_file"]]
            if accelerate.get("num_processes"):
                launch += ["--num_processes", str(accelerate["num_processes"])]
            full = [*launch, "-m", "jpo", command, *argv]
            unit.commands.append(shlex.join(full))
            completed = subprocess.run(full, check=False)
            if completed.returncode:
                raise JpoError(f"{unit.label}: training exited with status {completed.returncode}")
        else:
            cli(unit, command, argv)

    def run_sft(self, unit: Unit, pairs: Unit, config: dict[str, Any]) -> dict[str, Any]:
        data = self.templated(unit, pairs.folder / "sft.jsonl", "sft")
        model_dir = unit.folder / "model"
        self.launch(unit, "sft", self.train_config(config, None, self.model_path, [data], model_dir), config)
        return self.card(unit, model_dir, "sft", [pairs.folder / "sft.jsonl"])

    def run_train(self, unit: Unit, run: dict[str, Any], base: str, pairs: Unit, judge: Unit | None) -> dict[str, Any]:
        sources = [self.preference_file(name, pairs, judge) for name in run.get("data", ["conditional"])]
        datasets = [self.templated(unit, path, "preference") for path in sources]
        model_dir = unit.folder / "model"
        section = self.recipe.get("train") or {}
        self.launch(unit, "train", self.train_config(section, run, base, datasets, model_dir), section)
        return self.card(unit, model_dir, run["objective"], sources)

    def card(self, unit: Unit, model_dir: Path, objective: str, data: list[Path]) -> dict[str, Any]:
        import yaml

        from jpo.model_card import write_model_card

        state = model_dir / "trainer_state.json"
        history = json.loads(state.read_text())["log_history"] if state.exists() else []
        reports: dict[str, Any] = {}
        for dep in unit.deps:
            if dep.stage in ("pairs", "judge") and dep.manifest_path.exists():
                result = json.loads(dep.manifest_path.read_text()).get("result", {})
                reports.update({(k if dep.stage == "pairs" else f"judged {k} preferences"): v
                                for k, v in result.items()})
        config = yaml.safe_load((unit.folder / "config.yaml").read_text())
        write_model_card(model_dir, recipe=self.recipe, objective=objective, config=config,
                         data_files=[str(p) for p in data], data_reports=reports, log_history=history)
        losses = [e["loss"] for e in history if "loss" in e]
        return {"model": str(model_dir), "steps": len(losses), "final_loss": losses[-1] if losses else None}

    def run_generate(self, unit: Unit, model_dir: Path, pairs: Unit) -> dict[str, Any]:
        section = self.recipe.get("generate") or {}
        prompts = self.templated(unit, pairs.folder / "eval.jsonl", "prompts")
        temperatures = section.get("temperatures", [0.001, 0.5, 1.0])
        argv = ["--model", str(model_dir), "--prompts", prompts, "--output", str(unit.folder / "generations.jsonl"),
                "--temperatures", ",".join(f"{t:g}" for t in temperatures),
                "--seeds", ",".join(str(s) for s in section.get("seeds", [self.seed])),
                "--max_new_tokens", str(8 if self.dry_run else section.get("max_new_tokens", 128)),
                "--batch_size", str(section.get("batch_size", 16)), "--generator", unit.name, "--no_progress"]
        if self.dry_run:
            argv += ["--device", "cpu", "--backend", "hf"]
        cli(unit, "generate", argv)
        if section.get("alpaca_eval"):
            self.alpaca_eval_export(unit, pairs)
        return {"generations": str(unit.folder / "generations.jsonl")}

    def alpaca_eval_export(self, unit: Unit, pairs: Unit) -> None:
        """AlpacaEval's model_outputs.json with the *bare* instructions (the template is ours, not AlpacaEval's)."""
        from jpo.data import read_jsonl

        bare = {str(r["id"]): r for r in read_jsonl(pairs.folder / "eval.jsonl")}
        rows = read_jsonl(unit.folder / "generations.jsonl")
        first = rows[0]["temperature"], rows[0]["seed"]
        records = [{"instruction": bare[str(r["id"])]["prompt"], "output": r["response"], "generator": unit.name,
                    "dataset": bare[str(r["id"])].get("dataset", "jpo")}
                   for r in rows if (r["temperature"], r["seed"]) == first]
        (unit.folder / "model_outputs.json").write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n",
                                                        encoding="utf-8")

    def run_evaluate(self, unit: Unit, generate: Unit, pairs: Unit, model_dir: Path) -> dict[str, Any]:
        cli(unit, "evaluate", ["--generations", str(generate.folder / "generations.jsonl"),
                               "--references", str(pairs.folder / "eval.jsonl"), "--output", str(unit.folder),
                               "--n_resamples", "200" if self.dry_run else "10000", *self.judge_argv()])
        result = json.loads((unit.folder / "winrate.json").read_text())
        from jpo.model_card import add_evaluation

        if (model_dir / "README.md").exists():
            add_evaluation(model_dir, result)
        return {"average": result["average"]}

    def run_analyze(self, unit: Unit, judge: Unit) -> dict[str, Any]:
        labeled = sorted(judge.folder.glob("*_labeled.jsonl"))
        if not labeled:
            return {"skipped": "nothing was judged"}
        argv = [a for path in labeled for a in ("--labels", f"{path.stem.removesuffix('_labeled')}={path}")]
        cli(unit, "analyze", [*argv, "--output", str(unit.folder)])
        return {"labels": [str(p) for p in labeled]}

    def run_report(self, unit: Unit, evaluations: dict[str, Unit]) -> dict[str, Any]:
        from jpo.model_card import report_markdown

        results = {}
        for model, evaluation in evaluations.items():
            path = evaluation.folder / "winrate.json"
            if path.exists():
                results[model] = json.loads(path.read_text())
        text = report_markdown(self.recipe, results, dry_run=self.dry_run)
        (unit.folder / "report.md").write_text(text, encoding="utf-8")
        (unit.folder / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(text)
        return {"models": sorted(results)}

    # -- the plan
    def plan(self) -> None:
        recipe = self.recipe
        pairs = self.add("pairs", "pairs", {"data": recipe["data"], "seed": self.seed, "dry_run": self.dry_run,
                                            "paths": self.source_paths}, [],
                         ["eval.jsonl"], lambda u: self.run_pairs(u))
        judge = None
        if "pairs" in recipe["data"] or (recipe.get("judge") or {}).get("conditional"):
            judge = self.add("judge", "judge", {"judge": recipe.get("judge"), "dry_run": self.dry_run}, [pairs], [],
                             lambda u: self.run_judge(u, pairs))
        models: dict[str, tuple[Unit, Path]] = {}
        base = self.model_path
        sft_section = recipe.get("sft") or {}
        sft = None
        if sft_section.get("enabled", True) and "sft" in recipe["data"]:
            sft = self.add("sft", "sft", {"sft": sft_section, "model": self.model_path,
                                          "template": self.template}, [pairs], ["model/config.json"],
                           lambda u: self.run_sft(u, pairs, sft_section))
            base = str(sft.folder / "model")
            models["sft"] = (sft, sft.folder / "model")
        train_section = {k: v for k, v in (recipe.get("train") or {}).items() if k != "runs"}
        for run in train_runs(recipe, first_of_sweeps=self.dry_run):
            deps = [d for d in (pairs, judge, sft) if d is not None]
            unit = self.add("train", run["name"], {"train": train_section, "run": run, "base": base,
                                                   "template": self.template, "accelerate": recipe.get("accelerate")},
                            deps, ["model/trainer_state.json"],
                            lambda u, run=run: self.run_train(u, run, base, pairs, judge), run["name"])
            models[run["name"]] = (unit, unit.folder / "model")
        wanted = (recipe.get("evaluate") or {}).get("models") or list(models)
        evaluations: dict[str, Unit] = {}
        for name in wanted:
            if name not in models:
                raise JpoError(f"evaluate.models: '{name}' is not a trained model ({', '.join(models)})")
            trained, model_dir = models[name]
            generate = self.add("generate", name, {"generate": recipe.get("generate"), "template": self.template},
                                [trained, pairs], ["generations.jsonl"],
                                lambda u, d=model_dir: self.run_generate(u, d, pairs), name)
            evaluations[name] = self.add(
                "evaluate", name, {"judge": recipe.get("judge"), "evaluate": recipe.get("evaluate")},
                [generate], ["winrate.json"],
                lambda u, g=generate, d=model_dir: self.run_evaluate(u, g, pairs, d), name)
        if judge is not None and (recipe.get("analyze") or {}).get("enabled", True):
            self.add("analyze", "analyze", {"analyze": recipe.get("analyze")}, [judge], [],
                     lambda u: self.run_analyze(u, judge))
        self.add("report", "report", {"recipe": recipe.get("name")}, list(evaluations.values()), ["report.md"],
                 lambda u: self.run_report(u, evaluations))

    def execute(self, start: str | None, force: bool) -> list[tuple[str, str]]:
        """Run the units in order; returns (label, ran | skipped) per unit. A unit reruns when forced, when its
        stage is at or after `start`, when its manifest is missing or stale, or when a unit it reads ran again."""
        rerun_from = STAGES.index(start) if start else len(STAGES)
        done, ran = [], set()
        for unit in self.units:
            again = force or STAGES.index(unit.stage) >= rerun_from or any(d.label in ran for d in unit.deps)
            if not again and unit.finished():
                print(f"jpo run: {unit.label}: finished earlier (manifest {unit.key}); skipped")
                done.append((unit.label, "skipped"))
                continue
            unit.folder.mkdir(parents=True, exist_ok=True)
            unit.manifest_path.unlink(missing_ok=True)
            unit.commands = []
            started = time.time()
            print(f"jpo run: {unit.label}: running")
            result = unit.run(unit)
            write_manifest(unit, started, result)
            print(f"jpo run: {unit.label}: done in {time.time() - started:.1f}s")
            done.append((unit.label, "ran"))
            ran.add(unit.label)
        return done


# --- dry-run helpers ---------------------------------------------------------------------------------------------

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512}


def tiny_model(recipe: dict[str, Any], folder: Path, tokenizer_path: str | None) -> str:
    """The recipe's architecture at a tiny size with random weights, saved with a tokenizer, for dry runs.

    The config comes from the recipe's model when it is readable offline (a local folder or the HF cache), else
    from `dry_run.model_type` (mistral, qwen2, llama, ...); the tokenizer from `dry_run.tokenizer`, `--dry-run-tokenizer`
    or $JPO_DRY_RUN_TOKENIZER, else from the model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dry = recipe.get("dry_run") or {}
    name = str(recipe["model"])
    try:
        values = AutoConfig.from_pretrained(name, local_files_only=True).to_dict()
    except (OSError, ValueError):
        if not dry.get("model_type"):
            raise JpoError(f"dry run: cannot read the config of {name!r} offline; set dry_run.model_type "
                           "(e.g. mistral, qwen2) in the recipe") from None
        values = {"model_type": dry["model_type"]}
    source = tokenizer_path or dry.get("tokenizer") or os.environ.get("JPO_DRY_RUN_TOKENIZER") or name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        raise JpoError(f"dry run: cannot load a tokenizer from {source!r} offline; pass --dry-run-tokenizer DIR "
                       "or set $JPO_DRY_RUN_TOKENIZER") from None
    if recipe.get("prompt_template") == "chat" and tokenizer.chat_template is None:  # a stand-in for the real one
        tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                                   "{% if add_generation_prompt %}assistant:{% endif %}")
    values.update(TINY, vocab_size=len(tokenizer), tie_word_embeddings=True)
    values.pop("layer_types", None)  # per-layer lists are rebuilt for the tiny depth
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        values[key] = getattr(tokenizer, key, None)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # Reloaded beside the config, the tokenizer is what training will see: transformers may swap in the
    # architecture's own tokenizer class (Qwen2 adds a pad token), so the vocabulary is sized from the reload.
    reloaded = AutoTokenizer.from_pretrained(folder)
    config.vocab_size = max(len(tokenizer), len(reloaded))
    config.pad_token_id = reloaded.pad_token_id
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    return str(folder)


def validate_configs(recipe: dict[str, Any]) -> None:
    """Build every training config now, so a typo in a field name fails before hours of judging."""
    from jpo.train.config import PreferenceConfig, SFTConfig

    def check(cls: type, values: dict[str, Any], where: str) -> None:
        import dataclasses

        from jpo.config import check_keys

        check_keys(where, values, (f.name for f in dataclasses.fields(cls) if f.init))

    sft = recipe.get("sft") or {}
    check(SFTConfig, sft.get("config") or {}, "sft.config")
    train = recipe.get("train") or {}
    check(PreferenceConfig, train.get("common") or {}, "train.common")
    for run in train_runs(recipe):
        check(PreferenceConfig, {**(run.get("config") or {}), "objective": run["objective"]}, f"train run {run['name']}")


# --- CLI ---------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML (see configs/)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the recipe and data, and run every stage for one step on a tiny random model")
    parser.add_argument("--from", dest="start", choices=STAGES, help="rerun this stage and every later one")
    parser.add_argument("--force", action="store_true", help="rerun every stage, ignoring finished manifests")
    parser.add_argument("--output-dir", help="run folder (default: the recipe's output_dir, or runs/NAME; a dry run "
                        "adds -dry-run)")
    parser.add_argument("--source-path", action="append", default=[], metavar="NAME=PATH",
                        help="read a named source from a local file or folder instead of the hub (repeatable); "
                        "NAME:KIND=PATH for one kind only (e.g. tldr:preference=comparisons.jsonl)")
    parser.add_argument("--dry-run-tokenizer", help="tokenizer folder for the dry run's tiny model")


def run(args: argparse.Namespace) -> int:
    recipe = read_recipe(args.recipe)
    validate_configs(recipe)
    source_paths = {}
    for spec in args.source_path:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise JpoError(f"--source-path expects NAME=PATH, got {spec!r}")
        source_paths[name] = path
    default = recipe.get("output_dir") or f"runs/{recipe['name']}"
    run_dir = Path(args.output_dir or (default + ("-dry-run" if args.dry_run else "")))
    run_dir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(recipe, args.recipe, run_dir, dry_run=args.dry_run, source_paths=source_paths)
    with ExitStack() as stack:
        if args.dry_run:
            model_dir = run_dir / "dry_run_model"
            if not (model_dir / "config.json").exists():
                tiny_model(recipe, model_dir, args.dry_run_tokenizer)
            pipeline.model_path = str(model_dir)
            judge = recipe.get("judge") or {}
            if judge.get("spec"):
                from jpo.feedback.mock_server import MockJudgeServer
                from jpo.feedback.registry import backend_class, parse_spec

                backend_class(parse_spec(judge["spec"])[0])  # the recipe's judge must exist
                server = stack.enter_context(MockJudgeServer())
                pipeline.judge_spec = "openai:mock"
                pipeline.judge_flags = ["--base_url", server.base_url, "--api_key_env", "JPO_DRY_RUN_NO_KEY"]
        else:
            judge = recipe.get("judge") or {}
            for flag in ("base_url", "api_key_env", "concurrency", "price_in", "price_out", "max_tokens", "template"):
                if judge.get(flag) is not None:
                    pipeline.judge_flags += [f"--{flag}", str(judge[flag])]
        pipeline.plan()
        done = pipeline.execute(args.start, args.force)
    ran = sum(1 for _, how in done if how == "ran")
    print(f"jpo run: {recipe['name']}{' (dry run)' if args.dry_run else ''}: {ran} unit(s) ran, "
          f"{len(done) - ran} skipped -> {run_dir}")
    return 0
