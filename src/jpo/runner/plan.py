"""A recipe as a list of units, in the order they run:

    data -> model, pretrain (when built) -> feedback -> sft -> select (when a selector chooses D_H) -> train (run x seed;
    the `online:` runs too, runner/online.py) -> generate / evaluate (model x seed) -> report

A unit's key hashes the part of the recipe it reads and the keys of the units it reads, so a changed setting reruns
exactly what depends on it (see units.py for the resume rule).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from jpo.config import option_fields
from jpo.runner import stages
from jpo.runner.online import OnlineUnits, online_units, round_model
from jpo.runner.recipe import BuildModel, Recipe, point_name, point_selector
from jpo.runner.select import select_points
from jpo.runner.settings import merged, run_layers
from jpo.runner.units import Unit
from jpo.selection.selectors import MARGIN_SELECTORS


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def plan(recipe: Recipe, run_dir: Path, source_paths: dict[str, str] | None = None) -> list[Unit]:
    from jpo.runner.data import prepare_data
    from jpo.runner.report import write_report

    units: list[Unit] = []

    def add(stage: str, name: str, config: dict[str, Any], deps: list[Unit], outputs: list[str], run,
            *folder: str) -> Unit:
        unit = Unit(stage, name, run_dir.joinpath(stage, *folder), config, deps, outputs, run)
        units.append(unit)
        return unit

    data = add("data", "data",
               {"data": _plain(recipe.data), "sft_from": recipe.sft.from_, "pairs": _plain(recipe.pairs),
                "seed": recipe.seed, "paths": source_paths or {}},
               [], ["eval.jsonl"], lambda u: prepare_data(recipe, u.folder, source_paths or {}))
    # The base (built, pretrained) and SFT models: one, at the recipe's seed, for every training seed; or, with
    # train.vary_base, one per training seed (folders and units named seed<N>, but for the recipe's own seed).
    external = None if isinstance(recipe.model, BuildModel) else _within(recipe.model, run_dir)
    vary = recipe.train.vary_base
    # The recipe's own seed keeps the plain names (and keys) under vary_base too, so one seed is the same run either way.
    own = {seed: None if not vary or seed == recipe.seed else seed for seed in recipe.train.seeds}
    bases = {seed: _base(recipe, add, data, own[seed], run_dir)
             for seed in (recipe.train.seeds if vary else recipe.train.seeds[:1])}
    # How the judge is reached (endpoint, key, concurrency, retries, prices) does not change what it answers.
    transport = ("base_url", "api_key_env", "concurrency", "request_timeout", "max_retries", "price_in", "price_out")
    judge = {f.name: getattr(recipe.judge, f.name) for f in option_fields(type(recipe.judge)) if f.name not in transport}
    feedback = add("feedback", "feedback", {"judge": judge}, [data],
                   ["D_C.jsonl", "D_H.jsonl", *(["D_F.jsonl"] if recipe.data.fresh else [])],
                   lambda u: stages.collect_feedback(recipe, data.folder, u.folder))
    chains = {seed: _sft(recipe, add, data, external, own[seed], run_dir, *base) for seed, base in bases.items()}
    if not vary:
        chains = dict.fromkeys(recipe.train.seeds, next(iter(chains.values())))
    # One select unit per selector (and seed): what it reads is what its key holds -- the SFT model and the
    # template only for the margin selectors, the cheap judges only for disagreement -- so adding a selector or a
    # budget reruns that selector's points alone.
    selects: dict[str, Unit] = {}
    selection = recipe.train.selection
    runs = {r.name: r for r in recipe.runs()}
    wanted = [("pairs", recipe.seed, recipe.pairs.strategy, [recipe.pairs.budget])] if recipe.selecting() else []
    if selection:
        wanted += [(f"seed{seed}/{selector}", seed, selector, selection.budgets)
                   for seed in recipe.train.seeds for selector in selection.selectors]
    for name, seed, selector, budgets in wanted:
        active = selector.startswith("active-")
        margin = active or selector in MARGIN_SELECTORS
        config = {"selector": selector, "budgets": budgets, "seed": seed, "pool": recipe.pairs.pool, "judge": judge,
                  "judges": recipe.pairs.judges if selector == "disagreement" else None,
                  "template": recipe.prompt_template if margin else None}
        if active:  # the loop's rounds, and its intermediate models' settings: those of the run its labels are for
            run = runs[selection.run_name(point_name(selector, budgets[0]))]
            config.update(rounds=selection.rounds,
                          train=merged(run_layers(recipe.train.common, run.config, run.objective)))
        sft = chains.get(seed, chains[recipe.train.seeds[0]]).sft  # `pairs` at the recipe's seed: the first SFT
        selects[name] = add("select", name, config, [data, sft] if margin else [data],
                            [f"{point_name(selector, b)}/D_H.jsonl" for b in budgets],
                            lambda u, p=[(selector, b) for b in budgets], s=seed, c=config, sft=sft: select_points(
                                u, recipe, p, s, data.folder, sft.folder / "model", c.get("train"), c.get("rounds")),
                            *name.split("/"))
    trained: dict[tuple[str, int], Unit] = {}
    # A run that takes another's number of steps (steps_of) reads that run's unit: planned after it.
    for run in sorted(runs.values(), key=lambda r: r.steps_of is not None):
        for seed in recipe.train.seeds:
            chosen = selects.get(f"seed{seed}/{point_selector(run.selected)}" if run.selected else "pairs")
            joint = (chosen.folder / (run.selected or point_name(recipe.pairs.strategy, recipe.pairs.budget))
                     if chosen else feedback.folder) / "D_H.jsonl"
            steps = trained[run.steps_of, seed] if run.steps_of else None
            policy, policy_deps = chains[seed].policy, chains[seed].policy_deps
            trained[run.name, seed] = add(
                "train", f"{run.name}/seed{seed}",
                {"common": recipe.train.common, "run": _plain(run), "seed": seed, "base": external,
                 "template": recipe.prompt_template, "accelerate": _plain(recipe.train.accelerate)},
                [data, feedback, *policy_deps, *([chosen] if chosen else []), *([steps] if steps else [])],
                ["model/trainer_state.json"],
                lambda u, run=run, seed=seed, joint=joint, steps=steps, policy=policy: stages.train_run(
                    u, recipe, run, seed, str(policy), data.folder, feedback.folder, joint, run_dir,
                    steps.folder / "model" if steps else None),
                run.name, f"seed{seed}")
    online = online_units(recipe, add, {seed: ([data, *c.policy_deps], str(c.policy)) for seed, c in chains.items()},
                          judge, data.folder, run_dir, external)
    evaluations: dict[tuple[str, int], Unit] = {}

    def evaluate(name: str, seed: int, source: Unit | None, model_dir: str, *folder: str) -> Unit:
        """A model's generate and evaluate units (`folder`: under generate/ and evaluate/)."""
        label = "/".join(folder)
        generate = add("generate", label,
                       {"generate": _plain(recipe.generate), "template": recipe.prompt_template, "seed": seed},
                       [source, data], ["generations.jsonl"],
                       lambda u, m=model_dir, n=name, s=seed: stages.generate_for(
                           u, recipe, Path(m), data.folder / "eval.jsonl", s, n),
                       *folder)
        return add("evaluate", label, {"judge": recipe.evaluation_judge(), "n_resamples": recipe.evaluate.n_resamples},
                   [generate], ["winrate.json", "scored.jsonl"],
                   lambda u, g=generate, m=model_dir: stages.evaluate_for(
                       u, recipe, g.folder / "generations.jsonl", data.folder / "eval.jsonl", Path(m)),
                   *folder)

    for name in recipe.evaluated():
        for seed in recipe.train.seeds:
            source, model_dir = ((chains[seed].sft, chains[seed].policy) if name == "sft" else online.get((name, seed))
                                 or (trained[name, seed], str(trained[name, seed].folder / "model")))
            evaluations[name, seed] = evaluate(name, seed, source, model_dir, name, f"seed{seed}")
    # The online runs' policies after each earlier round (evaluate_rounds): the win-rate curves of the report.
    checkpoints: dict[tuple[str, int, int], Unit] = {}
    for run in recipe.online:
        if run.evaluate_rounds and run.name in recipe.evaluated():
            for seed in recipe.train.seeds:
                unit, model_dir = online[run.name, seed]
                for number in range(1, run.rounds):
                    checkpoints[run.name, seed, number] = evaluate(
                        f"{run.name}@round{number}", seed, unit, f"{model_dir}/{round_model(number)}", run.name,
                        f"seed{seed}-round{number}")
    online_trained = {key: unit for key, (unit, _) in online.items()}
    add("report", "report", {"evaluate": _plain(recipe.evaluate), "paper": _plain(recipe.paper),
                             "name": recipe.name, "seeds": recipe.train.seeds,
                             "sensitivity": _plain(recipe.sensitivity), "vary_base": vary},
        [feedback, *selects.values(), *trained.values(), *online_trained.values(), *evaluations.values(),
         *checkpoints.values()], ["results.md", "results.json"],
        lambda u: write_report(recipe, u.folder, feedback, chains[recipe.train.seeds[0]].sft, trained, evaluations,
                               data.folder, selects, OnlineUnits(online_trained, checkpoints)))
    return units


@dataclasses.dataclass
class _Chain:
    policy: str  # the model preference training starts from (and the reference)
    policy_deps: list[Unit]
    sft: Unit | None


def _names(recipe: Recipe, seed: int | None) -> tuple[dict[str, int], tuple[str, ...], int]:
    """A base unit's extra key, folder and seed: at `seed` None the recipe's seed under the plain names (model,
    pretrain, sft); at a seed, that seed, under seed<N>."""
    return ({} if seed is None else {"seed": seed}), (() if seed is None else (f"seed{seed}",)), (
        recipe.seed if seed is None else seed)


def _base(recipe: Recipe, add, data: Unit, seed: int | None, run_dir: Path) -> tuple[str, list[Unit]]:
    """The model SFT starts from and its units: the recipe's model, or a built one (then pretrained)."""
    extra, at, seed_of = _names(recipe, seed)
    if not isinstance(recipe.model, BuildModel):
        return recipe.model, []
    built = add("model", at[0] if at else "model", {"build": _plain(recipe.model), **extra}, [data],
                ["model/config.json"], lambda u: stages.build_model(recipe.model, data.folder, u.folder,
                                                                    0 if seed is None else seed), *at)
    if not recipe.model.pretrain:
        return str(built.folder / "model"), [built]
    pretrained = add("pretrain", at[0] if at else "pretrain", {"pretrain": recipe.model.pretrain, "seed": seed_of},
                     [data, built], ["model/config.json"],
                     lambda u, built_dir=str(built.folder / "model"): stages.pretrain_model(
                         u, recipe, built_dir, data.folder, run_dir, seed_of), *at)
    return str(pretrained.folder / "model"), [pretrained]


def _sft(recipe: Recipe, add, data: Unit, external: str | None, seed: int | None, run_dir: Path, base: str,
         base_deps: list[Unit]) -> _Chain:
    """The model preference training starts from: the SFT model trained on `base` (or `base` itself without
    SFT). A model a unit made is named by that unit's key (a dependency), never by its folder, so a run folder can
    be moved or copied without invalidating its manifests; only a model from outside the run is named."""
    _, at, seed_of = _names(recipe, seed)
    if recipe.sft.from_ == "none":
        return _Chain(base, base_deps, None)
    sft = add("sft", at[0] if at else "sft", {"sft": _plain(recipe.sft), "base": external,
                                              "template": recipe.prompt_template, "seed": seed_of},
              [data, *base_deps], ["model/config.json"],
              lambda u: stages.train_sft_model(u, recipe, base, data.folder, run_dir, seed_of), *at)
    return _Chain(str(sft.folder / "model"), [sft], sft)


def _within(model: str, run_dir: Path) -> str:
    """A model path inside the run folder (the dry run's stand-in) relative to it; any other name as given."""
    try:
        return str(Path(model).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return model
