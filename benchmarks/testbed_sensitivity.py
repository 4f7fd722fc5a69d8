"""Can the demo's testbed tell methods apart? Measures issue 25's sensitivity criteria R1-R4 on the synthetic task.

    PYTHONPATH=src python benchmarks/testbed_sensitivity.py [--recipe configs/demo.yaml] [--out runs/sensitivity]
                                                            [--split validation]

What it does, with the library only (`jpo.runner.run_recipe` for the recipe's own stages, `jpo.train` and the
runner's stage functions for the rest):

1. `jpo run` on the recipe reduced to its DPO run (no other runs, no selection grid, no scaling), evaluated on the
   recipe's synthetic validation prompts (the task is tuned on them; `--split test`: its test prompts, once, at the
   end): data, built model, pretraining, feedback (D_C), SFT, DPO on all of D_C.
2. Three more DPO runs from the same SFT model, each with the full run's settings and exactly its number of
   optimizer steps (`max_steps`): on a nested random half of D_C; on D_C plus |D_C| fresh conditional labels (the
   task's `fresh` split, labelled by the recipe's annotator); on all of D_C in another data order (seed 1).
3. Generation on the same prompts at the recipe's temperatures and evaluation against gold by the recipe's judge.
4. The criteria, each a paired difference on the same prompts with its 95% bootstrap interval
   (`jpo.evaluate.paired_difference`):
   R1  DPO(all D_C) - DPO(half D_C) >= +2.0, interval excluding 0;
   R2  DPO(D_C + |D_C| fresh) - DPO(D_C) >= +1.0, interval excluding 0;
   R3  |DPO(other order) - DPO| <= 1.0, interval covering 0;
   R4  DPO - SFT with the habit most frequent in DPO's outputs removed from both models' outputs (rescored by the
       exact oracle) keeps at least half of DPO - SFT;
   DPO - SFT >= 10.
   It prints them and writes `sensitivity.json` (with the time of each stage) into the output folder.

Measured 2026-11-30 on configs/demo.yaml (the habit task; DPO lr 1.5e-4, 5 epochs = 170 steps on D_C's 1,064 rows),
validation split, 500 prompts x 3 temperatures, seed 0, 2 shared CPU cores: SFT 25.3, DPO 35.5, half 32.0, +fresh
36.1, other order 35.2 (average win-rate %). R1 +3.5 [+2.1, +4.9] met; R2 +0.6 [-0.5, +1.8] NOT met; R3 -0.2
[-0.8, +0.3] met; R4 +9.6 [+7.6, +11.6] without "okay" (of +10.2) met; DPO - SFT +10.2 [+8.1, +12.3] met.
(Measured with the test split at size 0, so the pretraining corpus, drawn after it, differs from the final recipe's.)
Once, at the end, on the recipe's TEST prompts (`--split test`, the `jpo demo` run's own SFT and DPO models): SFT
21.0, DPO 32.1, half 28.4, +fresh 32.1, other order 32.0; R1 +3.7 [+2.3, +5.1] met; R2 -0.0 [-1.2, +1.2] NOT met;
R3 -0.2 [-0.6, +0.2] met; R4 +10.9 [+8.9, +13.0] without "sure" (of +11.2) met; DPO - SFT +11.2 [+9.1, +13.3] met.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml


def measurement_recipe(path: Path, split: str, folder: Path) -> Path:
    """The recipe reduced to SFT and DPO, evaluated on its own validation prompts (`split` validation) or its own test
    prompts (`split` test). Every synthetic split keeps the recipe's size, so the prompts are exactly the recipe's:
    the test prompts are drawn after the validation ones, and a validation split of another size would shift them
    into what was tuned on."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["name"] = f"{raw['name']}-sensitivity"
    if split == "validation":  # evaluated on the validation prompts; the test split is still drawn, at its size
        raw["data"]["eval"], raw["data"]["validation"] = raw["data"]["validation"], raw["data"]["eval"]
    raw["data"].pop("fresh", None)
    raw["train"]["runs"] = [run for run in raw["train"]["runs"] if run["name"] == "dpo"]
    for key in ("selection", "scaling"):
        raw["train"].pop(key, None)
    raw["train"]["seeds"] = [0]
    raw["evaluate"]["paired"] = ["dpo - sft"]
    raw["evaluate"].pop("joint", None)
    raw.pop("paper", None)
    out = folder / "recipe.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out


def fresh_labels(recipe, count: int, out: Path) -> list[dict[str, Any]]:
    """`count` decisive conditional labels on the task's `fresh` split by the recipe's annotator (training rows)."""
    from jpo.data import items_to_preferences
    from jpo.feedback import make_judge
    from jpo.feedback.runner import judge_items, labeled_rows
    from jpo.runner.data import pool_items
    from jpo.tasks import Sizes, build_splits

    data = recipe.data
    limit = math.ceil(2.0 * count)  # about 60% of comparisons are decisive
    sizes = {part.split: part.limit for part in (data.pretrain, data.conditional, data.eval, data.validation)}
    splits = build_splits(Sizes(**sizes, fresh=limit), recipe.seed)
    items = pool_items(splits["fresh"], None, {"left_out": {}})
    run = judge_items(items, make_judge(recipe.judge.spec, recipe.judge.options()), progress=False)
    rows, _ = items_to_preferences(labeled_rows(items, run))
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} decisive fresh labels of {limit} comparisons; need {count}")
    from jpo.data import write_jsonl

    write_jsonl(out / "fresh_labels.jsonl", rows[:count])
    return rows[:count]


def train_and_score(name: str, rows: list[dict[str, Any]], base_config: dict[str, Any], steps: int, seed: int,
                    recipe, run_dir: Path, out: Path) -> tuple[Path, dict[str, float]]:
    """DPO on `rows` at the full run's settings and `steps` optimizer steps; generate, evaluate; scored.jsonl."""
    from jpo.data import write_jsonl
    from jpo.runner import stages
    from jpo.train import train_preferences

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    data_file = folder / "data.jsonl"
    write_jsonl(data_file, stages.templated(rows, recipe.prompt_template, "preference"))
    config = {**base_config, "dataset": [str(data_file)], "output_dir": str(folder / "model"), "max_steps": steps,
              "seed": seed, "data_seed": seed}
    times = {}
    started = time.perf_counter()
    train_preferences(config)
    times["train"] = time.perf_counter() - started
    unit = SimpleNamespace(folder=folder, commands=[])
    started = time.perf_counter()
    stages.generate_for(unit, recipe, folder / "model", run_dir / "data" / "eval.jsonl", 0, name)
    times["generate"] = time.perf_counter() - started
    started = time.perf_counter()
    stages.evaluate_for(unit, recipe, folder / "generations.jsonl", run_dir / "data" / "eval.jsonl", folder / "model")
    times["evaluate"] = time.perf_counter() - started
    return folder / "scored.jsonl", times


def rescored_without(habit: str, generations: list[dict[str, Any]], references: list[dict[str, Any]],
                     spec: str) -> list[dict[str, Any]]:
    """Scored rows of `generations` with the word `habit` taken out of every response, judged by `spec`."""
    from jpo.evaluate import outcome_of_label
    from jpo.evaluate.against_gold import evaluate_generations
    from jpo.feedback import make_judge
    from jpo.tasks import without_habit

    stripped = [{**row, "response": without_habit(row["response"], habit)} for row in generations]
    result = evaluate_generations(stripped, references, make_judge(spec), progress=False, n_resamples=10)
    return [{"id": row["prompt_id"], "temperature": row["temperature"], "seed": row["seed"],
             "outcome": outcome_of_label(row["label"])} for row in result.rows]


def stage_seconds(run_dir: Path) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for manifest in run_dir.glob("*/**/manifest.json"):
        stage = manifest.relative_to(run_dir).parts[0]
        try:
            seconds[stage] = round(seconds.get(stage, 0.0) + json.loads(manifest.read_text())["seconds"], 1)
        except (KeyError, ValueError):
            pass
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="configs/demo.yaml")
    parser.add_argument("--out", default="runs/sensitivity")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    parser.add_argument("--from", dest="start", help="rerun the recipe from this stage (a run folder already in --out)")
    args = parser.parse_args(argv)

    from jpo.data import read_jsonl
    from jpo.evaluate import paired_difference
    from jpo.runner.recipe import load_recipe
    from jpo.runner.run import run_recipe
    from jpo.tasks import habits_in

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(measurement_recipe(Path(args.recipe), args.split, Path(tmp)))
        run_dir = run_recipe(recipe, output_dir=str(out / "run"), start=args.start)
    timings: dict[str, Any] = {"recipe stages": stage_seconds(run_dir)}
    d_c = read_jsonl(run_dir / "feedback" / "D_C.jsonl")
    dpo_dir = run_dir / "train" / "dpo" / "seed0"
    base_config = yaml.safe_load((dpo_dir / "config.yaml").read_text())
    steps = json.loads((dpo_dir / "model" / "trainer_state.json").read_text())["global_step"]
    variants = {
        "half": (random.Random(1).sample(d_c, len(d_c) // 2), 0),
        "fresh": (d_c + fresh_labels(recipe, len(d_c), out), 0),
        "order": (d_c, 1),
    }
    scored_files = {"sft": run_dir / "evaluate" / "sft" / "seed0" / "scored.jsonl",
                    "dpo": run_dir / "evaluate" / "dpo" / "seed0" / "scored.jsonl"}
    for name, (rows, seed) in variants.items():
        scored_files[name], timings[name] = train_and_score(name, rows, base_config, steps, seed, recipe, run_dir,
                                                            out)
    scored = {name: read_jsonl(path) for name, path in scored_files.items()}
    # R4: the habit DPO writes most often, taken out of both models' outputs
    generations = {name: read_jsonl(run_dir / "generate" / name / "seed0" / "generations.jsonl")
                   for name in ("sft", "dpo")}
    counts = Counter(habit for row in generations["dpo"] for habit in habits_in(row["response"]))
    habit, habit_count = counts.most_common(1)[0] if counts else ("", 0)
    references = read_jsonl(run_dir / "data" / "eval.jsonl")
    stripped = {name: rescored_without(habit, rows, references, recipe.evaluation_judge())
                for name, rows in generations.items()}
    gain = paired_difference(scored["dpo"], scored["sft"])
    kept = paired_difference(stripped["dpo"], stripped["sft"])
    checks = {
        "R1 dpo - dpo(half)": (paired_difference(scored["dpo"], scored["half"]), lambda d: d["difference"] >= 2.0
                               and d["ci95"][0] > 0),
        "R2 dpo(+fresh) - dpo": (paired_difference(scored["fresh"], scored["dpo"]), lambda d: d["difference"] >= 1.0
                                 and d["ci95"][0] > 0),
        "R3 dpo(order 1) - dpo": (paired_difference(scored["order"], scored["dpo"]),
                                  lambda d: abs(d["difference"]) <= 1.0 and d["ci95"][0] <= 0 <= d["ci95"][1]),
        f"R4 dpo - sft without {habit!r}": (kept, lambda d: d["difference"] >= gain["difference"] / 2),
        "dpo - sft": (gain, lambda d: d["difference"] >= 10.0),
    }
    from jpo.runner.report import summarise

    temperatures = list(recipe.generate.temperatures)
    table = {name: summarise(name, "", rows, temperatures) for name, rows in scored.items()}
    for name, row in table.items():
        print(f"{name:6s} win-rate {row['average']:5.1f} {row['ci95']}  per T {row['win_rate']}  "
              f"mean q {row.get('mean_quality')}")
    print(f"D_C {len(d_c)} rows, {steps} steps; most frequent habit in DPO's outputs: {habit!r} "
          f"({habit_count} of {len(generations['dpo'])}); habits in DPO's outputs {dict(counts.most_common())}")
    result: dict[str, Any] = {"split": args.split, "prompts": len(references), "D_C": len(d_c), "steps": steps,
                              "habit": habit, "habits": dict(counts), "models": table, "criteria": {}}
    for name, (difference, test) in checks.items():
        met = test(difference)
        result["criteria"][name] = {**difference, "met": met}
        print(f"{'met ' if met else 'FAIL'} {name}: {difference['difference']:+.1f} "
              f"[{difference['ci95'][0]:+.1f}, {difference['ci95'][1]:+.1f}]")
    timings["total"] = round(time.perf_counter() - started, 1)
    result["seconds"] = timings
    print(f"times: {json.dumps(timings)}")
    (out / "sensitivity.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0 if all(c["met"] for c in result["criteria"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
