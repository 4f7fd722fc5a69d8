"""Can the demo's testbed tell methods apart? Measures issue 25's sensitivity criteria R1-R4 on the synthetic task,
on the VALIDATION prompts (the split the task and recipe are tuned on), at one or more pretraining seeds.

    PYTHONPATH=src python benchmarks/testbed_sensitivity.py [--recipe configs/demo.yaml] [--out runs/sensitivity]
                                                            [--seeds 0 1 2] [--split validation]

What it does, with the library only (`jpo.runner.run_recipe`, the demo's own runner and report):

1. The recipe reduced to its four sensitivity runs (`sensitivity:` -- DPO on all of D_C; on a nested random half;
   on D_C + |D_C| fresh conditional labels; on D_C in another order, the last three at DPO's number of optimizer
   steps), evaluated on the recipe's synthetic validation prompts (`--split test`: its test prompts, which the demo
   itself reports; never while tuning). Every synthetic split keeps the recipe's size, so the prompts are exactly
   the recipe's.
2. `--seeds`: the training seeds, each with its own built model, pretraining and SFT (`train.vary_base`), as
   `jpo demo --seeds N` runs them; the data and labels are the recipe's seed's.
3. It prints the report's checks pooled over the seeds (R1-R4, DPO - SFT: each a paired difference on the same
   prompts with its 95% bootstrap interval, `jpo.runner.report.statistics.sensitivity_result`), then R1-R3 and
   DPO - SFT at each seed with their intervals, and writes `sensitivity.json` (with the stages' seconds) into the
   output folder.
   Exit status 0 when every pooled check and every per-seed check is met.

Measured 2026-11-30 on the validation split (1,000 or, where said, 500 prompts x 3 temperatures), `--seeds 0 1 2`,
2 CPU cores shared with other jobs. Per seed: R1 = DPO - DPO(half), R2 = DPO(+fresh) - DPO,
R3 = DPO(other order) - DPO, each with its paired 95% interval.
- The demo's recipe at its former beta 0.1 (configs/demo.yaml, which now has 0.5: pool 800, 12 epochs, 1,000
  validation prompts; D_C 462, D_H 560, 180 steps) with the tokenizer trained on the training texts only, so these
  are the demo's very base and SFT models (9.3 min):
  seed 0: DPO - SFT +10.4 [+8.7, +12.2]; R1 +5.9 [+4.4, +7.4]; R2 +2.6 [+1.4, +3.9]; R3 +0.1 [-0.3, +0.5].
  seed 1: DPO - SFT +14.3 [+12.5, +16.1]; R1 +5.4 [+4.2, +6.7]; R2 +3.6 [+2.4, +4.9]; R3 -0.8 [-1.3, -0.3] NOT MET.
  seed 2: DPO - SFT +5.8 [+4.0, +7.8] NOT MET; R1 -2.2 [-3.8, -0.5] NOT MET; R2 +10.2 [+8.5, +11.8]; R3 +0.5.
  Pooled, all met: R1 +3.1 [+2.2, +3.9]; R2 +5.5 [+4.7, +6.3]; R3 -0.1 [-0.4, +0.2]; R4 +10.0 [+8.9, +11.1]
  without "sure" (98%); DPO - SFT +10.2 [+9.0, +11.3]. The same at 8 epochs (120 steps): pooled R1 +1.6 [+0.9,
  +2.2] NOT met, R2 +2.9, DPO - SFT +12.9; seed 0 R2 +0.4 [-0.6, +1.4] NOT met. At learning rate 1e-4 (not
  1.5e-4): pooled R1 +1.4 [+0.8, +2.1] NOT met, R2 +3.3, DPO - SFT +12.3; seed 0 R2 +0.8 [-0.2, +1.8] NOT met.
- beta (configs/demo.yaml's, every run's), the demo's recipe otherwise, 3.7-5 min each (the stages before training
  reused from the run above): per seed DPO - SFT / R1 / R2, then the pooled checks not met.
  0.25: +11.7 / +14.3 / +7.8; +6.0 / +3.9 / -1.5; +3.4 / +4.1 / +9.3; pooled R3 +0.5 [+0.2, +0.8].
  0.5 (chosen): +13.1 / +14.6 / +11.7; +6.9 / +4.3 / +2.6; +2.4 / +4.6 / +6.0; seed 2's R3 +0.4 [+0.1, +0.7]; pooled
  R3 +0.2 [+0.0, +0.4] (DPO - SFT +13.1 [+12.0, +14.2], R1 +4.6, R2 +4.3, R4 97%).
  1.0: +12.8 / +14.6 / +11.4; +5.3 / +4.2 / +1.9; +2.2 / +2.7 / +5.4; pooled all met (DPO - SFT +12.9).
  0.5 at learning rate 2e-4: +11.4 / +13.0 / +9.3; +8.0 / +5.3 / +3.7; +5.0 / +5.0 / +9.0; pooled all met.
  0.25 with the annotator at temperature 0.05 (D_C 541): +13.7 / +14.7 / +9.8; +5.9 / +4.9 / +5.7; +0.9 / +3.7 /
  +5.0; pooled R3 -0.5 [-0.7, -0.3].
- Before that fix the tokenizer also trained on the evaluated prompts (other models than the demo's), ~9 min each:
  pool 800, 12 epochs, 1,000 validation prompts (the sizes chosen):
  seed 0: DPO - SFT +11.7 [+10.1, +13.3]; R1 +5.8 [+4.6, +7.1]; R2 +2.6 [+1.5, +3.7]; R3 -0.1 [-0.4, +0.3].
  seed 1: DPO - SFT +8.8 [+7.2, +10.4] NOT MET; R1 +2.5 [+1.2, +3.9]; R2 +1.8 [+0.6, +3.0]; R3 +0.0 [-0.5, +0.5].
  seed 2: DPO - SFT +14.7 [+12.8, +16.5]; R1 +5.4 [+4.0, +6.9]; R2 +5.5 [+4.3, +6.8]; R3 -0.6 [-1.0, -0.1] NOT MET.
  Pooled, all met: R1 +4.6 [+3.8, +5.4]; R2 +3.3 [+2.6, +4.0]; R3 -0.2 [-0.5, +0.1]; R4 +10.3 [+9.3, +11.3]
  without "sure" (88%); DPO - SFT +11.7 [+10.7, +12.8].
  Pool 1,000, 10 epochs (D_C 598, 190 steps), 500 prompts: pooled R1 +4.7, R2 +2.5 [+1.5, +3.5], R3 -0.1, DPO - SFT
  +12.8; per seed R2 +1.5 [-0.1, +3.1] / +4.1 / +1.8, DPO - SFT +13.7 / +9.7 / +15.1. The same with 1,000 prompts
  (which also redraws the pretraining corpus): pooled R1 +3.3, R2 +1.7 [+1.0, +2.4], DPO - SFT +18.0; per seed R2
  +0.8 [-0.2, +1.9] / +3.4 / +0.9.
- The task's table (src/jpo/tasks/families.py), each at the former sizes (pool 2,000, 5 epochs, 500 prompts; load
  average ~3, 20-23 min each):
  twenty styles, each wanting three habits and forbidding three (chosen; D_C 1,176, 185 steps):
  seed 0: DPO - SFT +18.0 [+15.7, +20.3]; R1 +3.6 [+2.0, +5.2]; R2 -1.1 [-2.7, +0.3]; R3 -0.5 [-1.1, -0.0].
  seed 1: DPO - SFT +19.2 [+16.7, +21.7]; R1 +1.1 [-0.3, +2.5]; R2 +1.8 [+0.5, +3.1]; R3 -0.4 [-0.9, +0.1].
  seed 2: DPO - SFT +17.5 [+15.2, +19.8]; R1 +2.2 [+1.0, +3.5]; R2 +0.7 [-0.6, +2.0]; R3 -0.3 [-0.8, +0.2].
  Pooled: R1 +2.3 [+1.5, +3.1] met; R2 +0.5 [-0.4, +1.3] NOT met; R3 -0.4 [-0.7, -0.1] NOT met (interval just below
  0); R4 +16.7 [+15.2, +18.2] without "well" (92%) met; DPO - SFT +18.2 [+16.7, +19.8] met.
  Twenty styles wanting two (forbidding two): pooled DPO - SFT +10.0, R1 +3.2, R2 +0.4, R3 -0.5 [-0.9, -0.0].
  Twenty styles wanting three, forbidden habits in the world's text as often as indifferent ones (0.25, not 0.1):
  DPO - SFT +5.1, R1 -0.9, R2 -0.0; and wanted ones rarer too (0.3, not 0.4): DPO - SFT +2.6, R1 +0.5, R2 -0.4.
- The former table, ten styles wanting two, with configs/demo.yaml's annotator (temperature 0.1, pool 2,000: D_C
  1,190, 190 steps; load average 5-6, 37 min):
  seed 0: DPO - SFT +9.8 [+7.8, +11.8]; R1 +2.6 [+1.2, +4.1]; R2 -0.2 [-1.5, +1.0]; R3 -0.5 [-1.1, +0.1].
  seed 1: DPO - SFT +15.7 [+13.3, +18.2]; R1 +4.6 [+3.1, +6.2]; R2 +0.4 [-1.1, +1.9]; R3 +0.5 [-0.3, +1.3].
  seed 2: DPO - SFT +8.5 [+6.5, +10.6]; R1 +2.9 [+1.3, +4.5]; R2 +0.9 [-0.3, +2.1]; R3 +0.0 [-0.7, +0.7].
  Pooled: R1 +3.4 [+2.5, +4.3] met; R2 +0.4 [-0.5, +1.2] NOT met; R3 +0.0 [-0.4, +0.4] met; R4 +10.6 [+9.3, +12.0]
  without "well" (93% of DPO - SFT) met; DPO - SFT +11.3 [+10.0, +12.7] met (not at seeds 0 and 2 alone).
- The same with a pool of 3,000 (D_C 1,776, 280 steps): pooled R1 +2.0 [+1.1, +2.8], R2 +0.3 [-0.6, +1.2], DPO - SFT
  +8.0 [+6.4, +9.6]; per seed DPO - SFT +7.2 / +11.7 / +5.1: worse on every criterion but R3, so not taken.
- Before (annotator temperature 0.15), seed 0 only: DPO - SFT +10.2 [+8.1, +12.3], R1 +3.5 [+2.1, +4.9], R2 +0.6
  [-0.5, +1.8], R3 -0.2 [-0.8, +0.3] (an earlier version of this script, which trained the three variants itself).
With a pool of 2,000 or more, R2 was not met: at DPO's fixed number of steps, twice the labels in half the epochs
added less than a point, for every table and temperature tried (families.py says why); smaller pools put D_C on the
rising part of the curve, at the cost of DPO - SFT.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

RUNS = ("dpo", "dpo-half", "dpo-more", "dpo-reordered")
PAIRS = ("dpo - sft", "dpo - dpo-half", "dpo-more - dpo", "dpo-reordered - dpo")


def measurement_recipe(path: Path, split: str, seeds: list[int], folder: Path) -> Path:
    """The recipe reduced to SFT and its sensitivity runs at `seeds` (each its own base model), evaluated on its own
    validation prompts (`split` validation) or its own test prompts (`split` test). The splits keep their sizes: the
    test prompts are drawn after the validation ones, and a validation split of another size would shift them into
    what was tuned on."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["name"] = f"{raw['name']}-sensitivity"
    if split == "validation":  # evaluated on the validation prompts; the test split is still drawn, at its size
        raw["data"]["eval"], raw["data"]["validation"] = raw["data"]["validation"], raw["data"]["eval"]
    raw["train"]["runs"] = [run for run in raw["train"]["runs"] if run["name"] in RUNS]
    for key in ("selection", "scaling"):
        raw["train"].pop(key, None)
    raw["train"]["seeds"] = seeds
    raw["train"]["vary_base"] = True
    raw["evaluate"]["paired"] = list(PAIRS)
    raw["evaluate"].pop("joint", None)
    raw.pop("paper", None)
    out = folder / "recipe.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds per stage, summed over the stage's units (their manifests)."""
    seconds: dict[str, float] = {}
    for manifest in run_dir.glob("*/**/manifest.json"):
        stage = manifest.relative_to(run_dir).parts[0]
        try:
            seconds[stage] = round(seconds.get(stage, 0.0) + json.loads(manifest.read_text())["seconds"], 1)
        except (KeyError, ValueError):
            pass
    return seconds


def per_seed_checks(run_dir: Path, seeds: list[int]) -> dict[int, dict[str, Any]]:
    """R1-R3 and DPO - SFT at each seed (that seed's generations only), with paired 95% intervals."""
    from jpo.data import read_jsonl
    from jpo.evaluate import paired_difference

    tests = {"dpo - sft": lambda d: d["difference"] >= 10.0,
             "dpo - dpo-half": lambda d: d["difference"] >= 2.0 and d["ci95"][0] > 0,
             "dpo-more - dpo": lambda d: d["difference"] >= 1.0 and d["ci95"][0] > 0,
             "dpo-reordered - dpo": lambda d: abs(d["difference"]) <= 1.0 and d["ci95"][0] <= 0 <= d["ci95"][1]}
    out = {}
    for seed in seeds:
        scored = {name: read_jsonl(run_dir / "evaluate" / name / f"seed{seed}" / "scored.jsonl")
                  for name in ("sft", *RUNS)}
        out[seed] = {}
        for pair, test in tests.items():
            first, _, second = pair.partition(" - ")
            d = paired_difference(scored[first], scored[second])
            out[seed][pair] = {"difference": d["difference"], "ci95": d["ci95"], "met": test(d)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="configs/demo.yaml")
    parser.add_argument("--out", default="runs/sensitivity")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, each its own base model")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    args = parser.parse_args(argv)

    from jpo.runner.recipe import load_recipe
    from jpo.runner.run import run_recipe

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(measurement_recipe(Path(args.recipe), args.split, args.seeds, Path(tmp)))
        run_dir = run_recipe(recipe, output_dir=str(out / "run"))
    report = json.loads((run_dir / "report" / "results.json").read_text())
    pooled = report["sensitivity"]
    for check in pooled["checks"]:
        value = "n/a" if check["value"] is None else f"{check['value']:+.1f} [{check['ci95'][0]:+.1f}, " \
                                                      f"{check['ci95'][1]:+.1f}]"
        print(f"{'met ' if check['met'] else 'FAIL'} pooled {check['check']}: {value}  {check['note']}")
    seeds = per_seed_checks(run_dir, args.seeds)
    for seed, checks in seeds.items():
        print(f"seed {seed}: " + "; ".join(f"{pair} {d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
                                          f"{'' if d['met'] else ' NOT MET'}" for pair, d in checks.items()))
    models = {row["name"]: row["average"] for row in report.get("rows", [])}
    print(f"win-rates pooled: {models}; steps {pooled.get('steps')}; data {report.get('data')}")
    result = {"split": args.split, "seeds": args.seeds, "pooled": pooled, "per_seed": seeds, "models": models,
              "data": report.get("data"),
              "seconds": {"recipe stages": stage_seconds(run_dir), "total": round(time.perf_counter() - started, 1)}}
    print(f"times: {json.dumps(result['seconds'])}")
    (out / "sensitivity.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    met = pooled["met"] and all(d["met"] for checks in seeds.values() for d in checks.values())
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
