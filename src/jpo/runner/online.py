"""The recipe's `online:` section: runs of the online loop (`jpo.online.loop.train_online`) beside the offline ones.

    online:
      - {name: online-jpo, mode: jpo, rounds: 4, prompts_per_round: 256}
      - {name: online-dpo, mode: dpo, rounds: 4, prompts_per_round: 256}

Each run starts from the SFT model (the base model when `sft.from` is none), samples on the pool's instructions (the
conditional data's, which the offline runs are labelled on; D_S's when there is no pool) and asks the recipe's
annotator (`judge.spec`, with the judge section's options), once per seed of `train.seeds`. Its training settings
are `train.common` with the run's `config` over them (its `max_steps` / epochs are per round). Its model is then
generated from and evaluated like every other run, under the run's name. With `evaluate_rounds: true` the policy
after each earlier round is too (generate/evaluate units `<name>/seed<N>-round<R>`), which gives the report's
win-rate curves by samples generated and by judge questions (runner/report/online.py).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.errors import JpoError

# The dry run's loop: two rounds of the tiny pool's instructions, short samples.
DRY_ONLINE = {"rounds": 2, "prompts_per_round": 6, "max_new_tokens": 8}


def round_model(number: int) -> str:
    """Round `number`'s policy, relative to the loop's output folder (`jpo.online.loop`'s layout)."""
    return f"rounds/round-{number:03d}/model"


@dataclass
class OnlineUnits:
    """What the report reads of the online runs: their train units, (name, seed) -> unit, the loop's log in the
    unit's `model/online_log.jsonl`; and the evaluate units of the policies after earlier rounds
    (`evaluate_rounds`), (name, seed, round) -> unit."""

    trained: dict[tuple[str, int], Any] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int, int], Any] = field(default_factory=dict)


@dataclass
class OnlineRun:
    """One online run: the loop's settings (`OnlineJPOConfig`'s names; None keeps its default) and training keys in
    `config` (JPOConfig's, over train.common)."""

    name: str
    mode: str = "jpo"
    label: str | None = None
    rounds: int = 2
    prompts_per_round: int = 64
    samples_per_prompt: int | None = None
    train_on: str = "round"
    ref_model: str = "sft"
    generation_backend: str = "transformers"
    pairing_strategy: str = "random"
    pairs_per_instance: int = 1
    max_new_tokens: int = 64
    temperature: float = 0.9
    top_p: float = 1.0
    missing_eos_penalty: float | None = None
    selector: str | None = None
    selection_budget: int | None = None
    selection_pool: str | int = "all"
    selection_judges: list[str] = field(default_factory=list)
    evaluate_rounds: bool = False  # generate from and evaluate the policy after every round, not only the last
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        return self.label or f"online {self.mode.upper() if self.mode != 'mix' else 'JPO + DPO'} ({self.name})"

    @property
    def data_label(self) -> str:
        per = {"jpo": "joint", "dpo": "conditional", "mix": "joint + conditional"}[self.mode]
        return f"{per} labels on own samples, {self.rounds} x {self.prompts_per_round} prompts"

    def settings(self) -> dict[str, Any]:
        """The loop's fields as OnlineJPOConfig keys."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("name", "label", "config", "evaluate_rounds")}

    def trained(self) -> dict[str, Any]:
        """What the run's training reads (its unit's key): everything but which rounds are evaluated."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "evaluate_rounds"}


def check_online(recipe) -> None:
    """Each online run's settings and config, as OnlineJPOConfig would take them; names distinct from every other
    model's; a judge to ask."""
    from jpo.online.config import OnlineJPOConfig
    from jpo.runner.settings import check_layers, online_layers, typed_settings

    at = recipe.path or "recipe"
    taken = {"sft", *(r.name for r in recipe.runs())}
    for i, run in enumerate(recipe.online):
        where = f"{at}: online[{i}] ({run.name})"
        if run.name in taken:
            raise JpoError(f"{where}: the name is taken (models: {', '.join(sorted(taken))})")
        taken.add(run.name)
        # typed as every other training-settings mapping of a recipe (`1e-4` a number, a wrong type one line)
        run.config.update(typed_settings(f"{where}.config", run.config, "online"))
        clash = set(run.config) & set(run.settings())
        if clash:
            raise JpoError(f"{where}.config: set {', '.join(sorted(clash))} on the run itself, not in config")
        try:
            OnlineJPOConfig(output_dir="unused", report_to="none", **run.settings())
        except JpoError as error:
            raise JpoError(f"{where}: {error}") from None
        # and combined as its stage combines them, so that a value out of range in train.common or the run's
        # config (a negative learning rate) fails here, naming its key, not after SFT
        check_layers("online", list(zip(
            (f"{at}: train.common", f"{where}.config", where, f"{at}: prompt_template"),
            online_layers(recipe.train.common, run.config, run.settings(), recipe.prompt_template), strict=True)))
        if not recipe.judge.spec:
            raise JpoError(f"{where}: the online loop asks the recipe's annotator: set judge.spec")


def online_for_dry_run(runs: list[OnlineRun], mock, dry_train: dict[str, Any]) -> list[OnlineRun]:
    """The runs at the dry run's size (two rounds of six prompts, short samples, transformers on the CPU, the dry
    run's training settings `dry_train` over the run's own), the selector's judges answered as the dry run answers
    every judge (`mock`: spec -> spec)."""
    return [dataclasses.replace(run, rounds=min(run.rounds, DRY_ONLINE["rounds"]),
                                config={k: v for k, v in run.config.items() if k not in dry_train},
                                selection_budget=run.selection_budget and min(run.selection_budget, 3),
                                selection_judges=[mock(spec) for spec in run.selection_judges],
                                prompts_per_round=min(run.prompts_per_round, DRY_ONLINE["prompts_per_round"]),
                                max_new_tokens=min(run.max_new_tokens, DRY_ONLINE["max_new_tokens"]),
                                generation_backend="transformers") for run in runs]


def pool_prompts(data_dir: Path) -> list[dict[str, Any]]:
    """The instructions the loop samples on: the pool's (conditional data), else D_S's."""
    from jpo.data import read_jsonl

    if (data_dir / "pool.jsonl").exists():
        return [{"prompt": item["prompt_a"]} for item in read_jsonl(data_dir / "pool.jsonl")]
    if (data_dir / "sft.jsonl").exists():
        return [{"prompt": row["prompt"]} for row in read_jsonl(data_dir / "sft.jsonl")]
    raise JpoError("online runs need instructions to sample on: the recipe has no data.conditional or D_S")


def online_units(recipe, add, starts: dict[int, tuple[list, str]], judge: dict[str, Any], data_dir: Path,
                 run_dir: Path, external: str | None) -> dict[tuple[str, int], tuple[Any, str]]:
    """One unit per run and seed, of the train stage (`--from train` reruns it), added through the planner's `add`;
    `starts`: seed -> (the units the seed's starting policy needs, that policy's folder) -- one SFT model for every
    seed, or one per seed under train.vary_base. `judge`: the judge settings that change answers (the planner's, as
    in the feedback unit's key). Returns (name, seed) -> (unit, model dir), what the planner's
    generate / evaluate loop reads."""
    out = {}
    for run in recipe.online:
        for seed in recipe.train.seeds:
            deps, policy = starts[seed]
            unit = add("train", f"{run.name}/seed{seed}",
                       {"common": recipe.train.common, "run": run.trained(), "seed": seed, "judge": judge,
                        "base": external, "template": recipe.prompt_template},
                       deps, ["model/online_log.jsonl", "model/config.json"],
                       lambda u, run=run, seed=seed, policy=policy: train_online_run(
                           u, recipe, run, seed, policy, data_dir, run_dir),
                       run.name, f"seed{seed}")
            out[run.name, seed] = (unit, str(unit.folder / "model"))
    return out


def train_online_run(unit, recipe, run: OnlineRun, seed: int, policy: str, data_dir: Path,
                     run_dir: Path) -> dict[str, Any]:
    """The stage: `train_online` from `policy` on the pool's instructions; the loop's log and model in `model/`."""
    from jpo.online.loop import train_online
    from jpo.runner.settings import online_layers, ref_cache, training
    from jpo.runner.units import digest

    model_dir = unit.folder / "model"
    online = training("online", online_layers(recipe.train.common, run.config, run.settings(), recipe.prompt_template),
                      seed=seed, model=policy, data_file=None, output_dir=model_dir, ref_cache_dir=ref_cache(run_dir))
    # The loop resumes from the rounds a killed unit finished, and a grown `rounds` goes on from them; any other
    # change (training settings, the model, the judge) starts afresh, so no round of the old settings is kept.
    key = digest({**unit.config, "run": {**unit.config["run"], "rounds": None}, "deps": [d.key for d in unit.deps]})
    stamp = unit.folder / "online_key"
    if model_dir.exists() and (not stamp.exists() or stamp.read_text() != key):
        shutil.rmtree(model_dir)
    stamp.write_text(key)
    result = train_online(online.config(), pool_prompts(data_dir), recipe.judge.spec,
                          judge_options=recipe.judge.options())
    total = result.rounds[-1]["cumulative"]
    return {"model": str(model_dir), "rounds": len(result.rounds), "resumed": result.resumed, "cumulative": total,
            "rows": total["decisive"],  # the report's Rows: the decisive labels trained on, over all rounds
            "line": f"{run.shown} seed {seed}: {len(result.rounds)} rounds, {total['samples']} samples, "
                    f"{total['judge_questions']} judge questions, {total['decisive']} decisive labels"}
