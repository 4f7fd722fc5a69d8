"""The bodies of the runner's stages after `data`: each reads the files of the units it depends on and writes its
own, through the library's functions (`jpo.feedback`, `jpo.train`, `jpo.evaluate`), never through command lines.
Training under `accelerate launch` is the one exception: it needs processes of its own, so it runs
`jpo train --config FILE` (the same config file the manifest records for an in-process run).

The report's two measurements that ask the evaluation judge again are here too (`joint_ranking`, `habit_stripped`):
the report (runner/report/) assembles and renders what they return.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from jpo.config import option_flags
from jpo.data import items_to_preferences, read_jsonl, write_jsonl
from jpo.errors import JpoError
from jpo.evaluate.generate import GenerateOptions
from jpo.runner.recipe import Accelerate, BuildModel, Recipe, Run
from jpo.runner.settings import Training, ref_cache, run_layers, training
from jpo.runner.units import Unit

# --- model -------------------------------------------------------------------------------------------------------


def build_model(build: BuildModel, data_dir: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    """The demo's model: a tokenizer trained on the pool, D_S, the joint items and the pretraining corpus -- never
    the evaluation prompts (the test prompts stay unseen, and a validation-split measurement, which evaluates on the
    validation prompts instead, trains the very models the run does) nor the fresh comparisons (their number leaves
    the models alone) -- and a random Llama (initial weights drawn with `seed`)."""
    from jpo.runner.tiny import save_base_model

    texts: list[str] = []
    for name in ("pool", "sft", "joint", "items", "pretrain"):
        path = data_dir / f"{name}.jsonl"
        if path.exists():
            texts += [str(row[k]) for row in read_jsonl(path) for k in
                      ("prompt", "response", "prompt_a", "response_a", "prompt_b", "response_b", "prompt_chosen",
                       "chosen", "prompt_rejected", "rejected") if k in row]
    params = save_base_model(texts, out / "model", vocab_size=build.vocab_size, hidden_size=build.hidden_size,
                             layers=build.num_layers, heads=build.num_heads, intermediate_size=build.intermediate_size,
                             max_positions=build.max_positions, seed=seed)
    return {"parameters": params,
            "line": f"tiny Llama: {params / 1e6:.2f}M parameters, BPE tokenizer ({build.vocab_size} max)"}


# --- feedback ----------------------------------------------------------------------------------------------------


def written_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a file a stage wrote. An empty one is 0 rows, not bad input: a source with no instruction beyond
    D_C's (a sample, a dry run) has no fresh slice, and the runs that want fresh rows say how many were missing."""
    return read_jsonl(path) if path.stat().st_size else []


def collect_feedback(recipe: Recipe, data_dir: Path, out: Path) -> dict[str, Any]:
    """D_C and D_H as training rows (D_C.jsonl, D_H.jsonl). The pool is judged when `judge.conditional` is set or
    it has no labels; joint items are judged; the `judge.agreement` judges label the same items, for agreement
    only. Ties and invalid verdicts are counted, never training rows."""
    from jpo.analysis.interplay import interplay
    from jpo.feedback import make_judge
    from jpo.feedback.runner import label_items
    from jpo.feedback.store import VerdictStore

    pool = read_jsonl(data_dir / "pool.jsonl") if (data_dir / "pool.jsonl").exists() else []
    fresh = written_rows(data_dir / "fresh.jsonl") if (data_dir / "fresh.jsonl").exists() else None
    todo = {}
    for name, items in (("conditional", pool), ("fresh", fresh or [])):  # fresh: labelled as D_C is
        if items and (recipe.judge.conditional or any("label" not in item for item in items)):
            if not recipe.judge.spec:
                raise JpoError(f"{recipe.path}: the {name} data has no labels: set judge.spec and "
                               "judge.conditional: true")
            todo[name] = items
    if (data_dir / "items.jsonl").exists():
        todo["joint"] = read_jsonl(data_dir / "items.jsonl")
    labelled: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, Any] = {}
    options = recipe.judge.options()
    with VerdictStore(out / "verdicts.sqlite") as store:
        for name, items in todo.items():  # judges made per set: each set's cost is its own
            others = {other: make_judge(spec, options) for other, spec in recipe.judge.agreement.items()
                      if name != "fresh"}  # agreement on the control labels only
            done = label_items(items, make_judge(recipe.judge.spec, options), store=store, others=others,
                               what=name)
            done.require_valid(name)
            write_jsonl(out / f"{name}_labeled.jsonl", done.rows)
            labelled[name] = done.rows
            stats[name] = {"items": len(items), "labels": done.run.counts, "judge": done.run.judge_id,
                           "cost": done.run.cost, "agreement": done.agreement}
    d_c, counts_c = items_to_preferences(labelled.get("conditional", pool))
    if "joint" in labelled:
        d_h, _ = items_to_preferences(labelled["joint"])
    else:
        d_h = read_jsonl(data_dir / "joint.jsonl") if (data_dir / "joint.jsonl").exists() else []
    write_jsonl(out / "D_C.jsonl", d_c)
    write_jsonl(out / "D_H.jsonl", d_h)
    stats["conditional_labels"] = counts_c
    stats["D_C"], stats["D_H"] = len(d_c), len(d_h)
    if fresh is not None:
        d_f, stats["fresh_labels"] = items_to_preferences(labelled.get("fresh", fresh))
        write_jsonl(out / "D_F.jsonl", d_f)
        stats["D_F"] = len(d_f)
    if "conditional" in labelled and "joint" in labelled:
        stats["interplay"] = interplay(labelled["conditional"], labelled["joint"]).to_dict()
    if labelled:  # `jpo analyze` on the judge's labels: agreement, position bias, tie rates, charts
        from jpo.analysis.labels import load_labels
        from jpo.analysis.report import analyze, write_report

        sources = [load_labels(out / f"{name}_labeled.jsonl", name) for name in labelled]
        write_report(analyze(sources), out / "analysis")
    agree = "; ".join(f"{other} agrees {entry['percent']:.1f}% ({name})" for name in ("conditional", "joint")
                      for other, entry in stats.get(name, {}).get("agreement", {}).items()
                      if entry["percent"] is not None)
    stats["line"] = f"D_C {len(d_c)} of {len(pool)} conditional comparisons, D_H {len(d_h)}" + \
        (f", D_F {stats['D_F']} of {len(fresh)} fresh" if fresh is not None else "") + (f"; {agree}" if agree else "")
    (out / "feedback.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    return stats


# --- training ----------------------------------------------------------------------------------------------------


def training_rows(run: Run, d_c_file: Path, d_h_file: Path, seed: int,
                  d_f_file: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows a run trains on and their count per origin (`jpo.protocol.training_set`), from the feedback stage's
    D_C, D_F and D_H files (D_H: the feedback stage's, or a selection's, the select stage's)."""
    from jpo.protocol import training_set

    d_f = written_rows(d_f_file) if run.fresh is not None and d_f_file is not None and d_f_file.exists() else None
    try:
        return training_set(run.data, read_jsonl(d_c_file), read_jsonl(d_h_file), d_f, seed=seed,
                            subset=run.subset, joint_size=run.joint_size, fresh=run.fresh)
    except JpoError as error:
        raise JpoError(f"train run {run.name}: {error}") from None


def templated(rows: list[dict[str, Any]], template: str | None, kind: str) -> list[dict[str, Any]]:
    """Rows with the model's prompt template applied (judges saw the bare instructions)."""
    from jpo.modeling import apply_template

    return apply_template(rows, template, kind)


def launch(unit, training: Training, accelerate: Accelerate | None):
    """Train in this process, or under `accelerate launch` when the section names an accelerate config. The
    settings are written beside the model either way (`config.yaml`), and the manifest records the equivalent
    command."""
    import yaml

    path = unit.folder / "config.yaml"
    path.write_text(yaml.safe_dump(training.settings, sort_keys=False), encoding="utf-8")
    resume = any(training.output_dir.glob("checkpoint-*"))
    argv = ["--config", str(path)] + (["--resume_from_checkpoint", "true"] if resume else [])
    if accelerate:
        launch_argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate.config_file]
        if accelerate.num_processes:
            launch_argv += ["--num_processes", str(accelerate.num_processes)]
        full = [*launch_argv, "-m", "jpo", training.command, *argv]
        unit.commands.append(shlex.join(full))
        completed = subprocess.run(full, check=False)
        if completed.returncode:
            raise JpoError(f"{unit.label}: training exited with status {completed.returncode}")
        return None
    unit.commands.append(shlex.join(["jpo", training.command, *argv]))
    from jpo.train import train_preferences, train_sft

    train = train_sft if training.command == "sft" else train_preferences
    return train(training.config(), resume_from_checkpoint=True if resume else None)


def train_sft_model(unit, recipe: Recipe, base: str, data_dir: Path, run_dir: Path,
                    seed: int | None = None) -> dict[str, Any]:
    rows = read_jsonl(data_dir / "sft.jsonl")
    data_file = unit.folder / "data.jsonl"
    write_jsonl(data_file, templated(rows, recipe.prompt_template, "sft"))
    model_dir = unit.folder / "model"
    sft = training("sft", [recipe.sft.config], seed=recipe.seed if seed is None else seed, model=base,
                   data_file=data_file, output_dir=model_dir, ref_cache_dir=ref_cache(run_dir))
    launch(unit, sft, recipe.sft.accelerate)
    return {**card(unit, recipe, model_dir, "sft", sft.settings, data_dir), "rows": len(rows),
            "line": f"SFT on {len(rows)} D_S rows ({recipe.sft.from_})"}


def pretrain_model(unit, recipe: Recipe, base: str, data_dir: Path, run_dir: Path,
                   seed: int | None = None) -> dict[str, Any]:
    """The built model pretrained on every token of data.pretrain's documents (`jpo.train.pretrain`)."""
    from jpo.train.pretrain import pretrain

    rows = [{"prompt": r["prompt"], "response": r["response"]} for r in read_jsonl(data_dir / "pretrain.jsonl")]
    data_file = unit.folder / "data.jsonl"
    write_jsonl(data_file, rows)
    model_dir = unit.folder / "model"
    plain = training("sft", [{"completion_only_loss": False}, recipe.model.pretrain],
                     seed=recipe.seed if seed is None else seed, model=base, data_file=data_file,
                     output_dir=model_dir, ref_cache_dir=ref_cache(run_dir))
    import yaml

    config_file = unit.folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(plain.settings, sort_keys=False), encoding="utf-8")
    unit.commands.append(shlex.join(["jpo", "sft", "--config", str(config_file)]))  # completion_only_loss: false
    pretrain(plain.config())
    return {**card(unit, recipe, model_dir, "pretrain", plain.settings, data_dir), "rows": len(rows),
            "line": f"pretrained on {len(rows)} documents"}


def train_run(unit, recipe: Recipe, run: Run, seed: int, base: str, data_dir: Path, feedback_dir: Path,
              d_h_file: Path, run_dir: Path, steps_from: Path | None = None) -> dict[str, Any]:
    """One preference run at one seed. `steps_from`: the model folder of the run whose optimizer steps this one
    takes (`steps_of`), read from its trainer_state.json."""
    rows, counts = training_rows(run, feedback_dir / "D_C.jsonl", d_h_file, seed, feedback_dir / "D_F.jsonl")
    data_file = unit.folder / "data.jsonl"
    write_jsonl(data_file, templated(rows, recipe.prompt_template, "preference"))
    model_dir = unit.folder / "model"
    decided: dict[str, int] = {}  # what this stage decides over the recipe's settings
    if steps_from is not None:
        decided["max_steps"] = json.loads((steps_from / "trainer_state.json").read_text())["global_step"]
    if run.reorder:  # the same rows in an order no seed of the run uses
        decided["data_seed"] = seed + 10007 * run.reorder
    preference = training("train", [*run_layers(recipe.train.common, run.config, run.objective), decided],
                          seed=seed, model=base, data_file=data_file, output_dir=model_dir,
                          ref_cache_dir=ref_cache(run_dir))
    launch(unit, preference, recipe.train.accelerate)
    short = (f"; {counts['D_F']} of {counts['D_F_wanted']} fresh rows wanted (data.fresh has no more decisive "
             "labels)") if counts.get("D_F", 0) < counts.get("D_F_wanted", 0) else ""
    max_steps = preference.settings.get("max_steps")
    steps = f", {max_steps} steps (as {run.steps_of})" if steps_from is not None else ""
    return {**card(unit, recipe, model_dir, run.objective, preference.settings, data_dir, feedback_dir),
            "rows": len(rows), "origins": counts, "max_steps": max_steps,
            "line": f"{run.shown} seed {seed}: {len(rows)} rows of {run.data_label}{steps}{short}"}


def card(unit, recipe: Recipe, model_dir: Path, objective: str, config: dict[str, Any],
         *folders: Path) -> dict[str, Any]:
    """The model card beside the checkpoint, and what the manifest records about the training."""
    from jpo.model_card import write_model_card

    state = model_dir / "trainer_state.json"
    history = json.loads(state.read_text())["log_history"] if state.exists() else []
    reports: dict[str, Any] = {}
    for dep in unit.deps:
        if dep.stage in ("data", "feedback") and dep.folder in folders and dep.manifest_path.exists():
            reports.update({k: v for k, v in dep.result().items() if k != "line"})
    write_model_card(model_dir, name=recipe.name, objective=objective, config=config,
                     base_model=recipe.model if isinstance(recipe.model, str) else None,
                     description=recipe.description, datasets=hub_datasets(recipe),
                     prompt_template=recipe.prompt_template, data_files=config["dataset"], data_reports=reports,
                     log_history=history)
    losses = [e["loss"] for e in history if "loss" in e]
    return {"model": str(model_dir), "steps": len(losses), "final_loss": losses[-1] if losses else None}


def hub_datasets(recipe: Recipe) -> list[str]:
    """The hub datasets a recipe's data comes from (a model card's `datasets`)."""
    import dataclasses

    from jpo.data.sources import SOURCES

    names = []
    for part in dataclasses.fields(recipe.data):
        spec = getattr(recipe.data, part.name)
        source = SOURCES.get(spec.source) if spec is not None else None
        if source:
            for part in source.parts.values():
                if part.hub.name != "json" and part.hub.name not in names:
                    names.append(part.hub.name)
    return names


# --- generation and evaluation -----------------------------------------------------------------------------------


def generate_for(unit, recipe: Recipe, model_dir: Path, prompts_file: Path, seed: int, name: str) -> dict[str, Any]:
    """`generations.jsonl`: the model's responses to the prompts, with the recipe's prompt template applied (then
    also written as `prompts.jsonl`, the file the recorded `jpo generate` command reads)."""
    from jpo.evaluate.generate import generate_from, write_alpaca_eval

    section = recipe.generate
    prompts = templated(read_jsonl(prompts_file), recipe.prompt_template, "prompts")
    given = prompts_file
    if recipe.prompt_template:  # the prompts as the model sees them, so that the recorded command reproduces the run
        given = unit.folder / "prompts.jsonl"
        write_jsonl(given, prompts)
    stats: dict[str, int] = {}
    rows, backend = generate_from(str(model_dir), prompts, [seed], section, generator=name, progress=False,
                                  stats=stats)
    write_jsonl(unit.folder / "generations.jsonl", rows)
    unit.commands.append(shlex.join(
        ["jpo", "generate", "--model", str(model_dir), "--prompts", str(given), "--output",
         str(unit.folder / "generations.jsonl"), "--seeds", str(seed), "--generator", name,
         *option_flags(section, GenerateOptions)]))
    if section.alpaca_eval:  # AlpacaEval's model_outputs.json, with the *bare* instructions
        bare = {str(r["id"]): r for r in read_jsonl(prompts_file)}
        write_alpaca_eval(unit.folder / "model_outputs.json",
                          [{**r, "prompt": bare[str(r["id"])]["prompt"],
                            "dataset": bare[str(r["id"])].get("dataset", "jpo")} for r in rows])
    truncated = stats.get("prompts_truncated", 0)
    return {"generations": len(rows), "backend": backend, "prompts_truncated": truncated,
            "line": f"{len(rows)} generations ({backend}), {truncated} prompts truncated to fit the context"}


def evaluate_for(unit, recipe: Recipe, generations_file: Path, references_file: Path,
                 model_dir: Path) -> dict[str, Any]:
    """Each generation judged against its prompt's gold reference (both orders): winrate.json, and scored.jsonl
    with one outcome per generation (what the report pools over seeds and compares paired)."""
    from jpo.evaluate.against_gold import evaluate_generations
    from jpo.feedback import make_judge
    from jpo.feedback.store import VerdictStore
    from jpo.model_card import add_evaluation

    generations, references = read_jsonl(generations_file), read_jsonl(references_file)
    judge = make_judge(recipe.evaluation_judge(), recipe.judge.options())
    with VerdictStore(unit.folder / "verdicts.sqlite") as store:
        result = evaluate_generations(generations, references, judge, store=store, progress=False,
                                      n_resamples=recipe.evaluate.n_resamples)
    result.judge_run.require_valid("generations")
    summary = result.as_dict()
    result.write(unit.folder, rows=False)  # scored.jsonl below holds one outcome per generation
    quality = synthetic_quality(recipe)
    scored = []
    for row in result.rows:
        entry = _scored(row)
        if quality:
            entry["quality"] = quality(row["prompt_a"], row["response_a"])
        scored.append(entry)
    write_jsonl(unit.folder / "scored.jsonl", scored)
    if (model_dir / "README.md").exists():
        add_evaluation(model_dir, summary)
    average = summary["average"]
    return {"average": average, "line": f"win-rate {100 * average['estimate']:.1f}% vs gold (n {average['n']})"}


def _generations(recipe: Recipe, evaluations: dict[tuple[str, int], Unit], name: str) -> list[dict[str, Any]]:
    """A model's generations at every training seed (the files its evaluate units judged)."""
    return [row for seed in recipe.train.seeds
            for row in read_jsonl(evaluations[name, seed].deps[0].folder / "generations.jsonl")]


def _scored(row: dict[str, Any]) -> dict[str, Any]:
    """One line of scored.jsonl from a judged generation: its prompt, temperature, seed and outcome against gold."""
    from jpo.evaluate import outcome_of_label

    return {"id": row["prompt_id"], "temperature": row["temperature"], "seed": row["seed"],
            "outcome": outcome_of_label(row["label"])}


def joint_ranking(recipe: Recipe, out: Path, evaluations: dict[tuple[str, int], Unit], shown: dict[str, str],
                  data_dir: Path) -> dict[str, Any] | None:
    """`evaluate.joint`'s models ranked by joint comparisons of their generations (every seed), with the
    evaluation judge, beside their win-rates against gold (`jpo.evaluate.ranking.evaluate_joint`)."""
    if not recipe.evaluate.joint:
        return None
    from jpo.evaluate.ranking import evaluate_joint
    from jpo.feedback import make_judge
    from jpo.feedback.store import VerdictStore

    generations = {shown[name]: _generations(recipe, evaluations, name) for name in recipe.evaluate.joint}
    judge = make_judge(recipe.evaluation_judge(), recipe.judge.options())
    with VerdictStore(out / "joint_verdicts.sqlite") as store:
        result = evaluate_joint(generations, judge, references=read_jsonl(data_dir / "eval.jsonl"), store=store,
                                progress=False, seed=recipe.seed, max_per_pair=recipe.evaluate.joint_max_per_pair)
    return {"markdown": result.markdown(), **result.as_dict()}


def habit_stripped(recipe: Recipe, evaluations: dict[tuple[str, int], Unit], names: list[str],
                   data_dir: Path, out: Path) -> dict[str, Any] | None:
    """R4's measurement: the surface habit most frequent in the generations of `names` (every seed; the synthetic
    task's `jpo.tasks.habits_in`), removed from all of them (`jpo.tasks.without_habit`), and each generation judged
    against gold again with the evaluation judge. None for a source without habits (not the synthetic task)."""
    if recipe.data.eval.source != "synthetic":
        return None
    from collections import Counter

    from jpo.evaluate import evaluate_generations
    from jpo.feedback import make_judge
    from jpo.feedback.store import VerdictStore
    from jpo.tasks import habits_in, without_habit

    references = read_jsonl(data_dir / "eval.jsonl")
    generations = {name: _generations(recipe, evaluations, name) for name in names}
    shown = {name: [set(habits_in(r["response"])) for r in rows] for name, rows in generations.items()}
    counts = Counter(h for found in shown.values() for each in found for h in each)
    if not counts:
        return {"habit": None, "share": {}, "scored": {}}
    habit = min(counts, key=lambda h: (-counts[h], h))  # the most frequent; ties by name, so the choice is stable
    judge = make_judge(recipe.evaluation_judge(), recipe.judge.options())
    scored = {}
    with VerdictStore(out / "habit_verdicts.sqlite") as store:
        for name, rows in generations.items():
            stripped = [{**r, "response": without_habit(r["response"], habit)} for r in rows]
            result = evaluate_generations(stripped, references, judge, store=store, progress=False,
                                          n_resamples=100)  # only the outcomes are read
            scored[name] = [_scored(r) for r in result.rows]
    share = {name: round(100 * sum(habit in each for each in found) / len(found), 1) if found else None
             for name, found in shown.items()}
    return {"habit": habit, "share": share, "scored": scored}


def synthetic_quality(recipe: Recipe):
    """The synthetic task's true quality score, a finer view than the win-rate; None for other sources."""
    if recipe.data.eval.source != "synthetic":
        return None
    from jpo.tasks import quality

    return quality
