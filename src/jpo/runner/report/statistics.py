"""The report's numbers, each computed from scored generations (`scored.jsonl`: one outcome per prompt, temperature
and seed): a model's win-rate row, the paper's findings beside the same differences here, the selection grid, the
sensitivity checks, the equal-budget comparison and the spread over seeds.

Win-rates pool every seed of a model: the 95% bootstrap interval resamples prompts, all seeds and temperatures of a
prompt moving together, so it covers the variation over runs and over prompts. Paired differences compare two
models prompt by prompt (`jpo.evaluate.paired_difference`).
"""

from __future__ import annotations

from typing import Any

from jpo.data import read_jsonl
from jpo.runner.recipe import Recipe, point_name
from jpo.runner.units import Unit


def pair_names(pair: str) -> tuple[str, str]:
    """The two model names of an `evaluate.paired` entry or a paper finding, `"first - second"`."""
    first, _, second = (p.strip() for p in pair.partition(" - "))
    return first, second


def seed_rate(scored: list[dict[str, Any]]) -> float:
    """The average win-rate (%) of one seed's scored generations, without an interval (0.0 for none)."""
    from jpo.evaluate.winrate import SCORES

    scores = [SCORES[s["outcome"]] for s in scored if s["outcome"] in SCORES]
    return round(100 * sum(scores) / len(scores), 2) if scores else 0.0


def summarise(label: str, data: str, scored: list[dict[str, Any]], temperatures: list[float]) -> dict[str, Any]:
    """A results row: win-rate per temperature and over all of them (percent), bootstrap intervals resampling
    prompts; the mean true quality where the task has one."""
    from jpo.evaluate import win_rate

    per_t, ci_t = {}, {}
    for t in temperatures:
        subset = [s for s in scored if s["temperature"] == t]
        rate = win_rate([s["outcome"] for s in subset], [s["id"] for s in subset])
        per_t[str(t)] = round(100 * rate.estimate, 2)
        ci_t[str(t)] = [round(100 * rate.low, 2), round(100 * rate.high, 2)]
    overall = win_rate([s["outcome"] for s in scored], [s["id"] for s in scored])
    row = {"method": label, "data": data, "win_rate": per_t, "average": round(100 * overall.estimate, 2),
           "ci95": [round(100 * overall.low, 2), round(100 * overall.high, 2)], "ci95_per_temperature": ci_t,
           "outcomes": {k: sum(s["outcome"] == k for s in scored) for k in ("win", "tie", "loss", "invalid")}}
    if scored and "quality" in scored[0]:
        row["mean_quality"] = round(100 * sum(s["quality"] for s in scored) / len(scored), 2)
    return row


def finding(name: str, paper: float, ours: dict[str, Any] | None) -> str:
    """One sentence on one of the paper's findings, with both numbers, decided by the paired interval [low, high] of
    the same difference here:

    - "reproduced": the interval excludes 0 in the paper's direction and holds the paper's value (or lies beyond
      it: "reproduced, larger than the paper's");
    - "smaller than the paper's": it excludes 0 in the paper's direction, but the paper's value lies beyond it;
    - "not distinguishable from 0": it includes 0;
    - "reversed": it excludes 0 in the other direction.
    """
    if ours is None:
        return f"- {name}: paper {paper:+.1f} points; not run here."
    low, high = ours["ci95"]
    sign = -1.0 if paper < 0 else 1.0  # the paper's direction (a difference of 0 is read as "not negative")
    near, far = sorted((sign * low, sign * high))  # the interval in the paper's direction
    if near > 0:
        if sign * paper > far:
            word = "smaller than the paper's (the paper's value lies outside the interval)"
        elif sign * paper < near:
            word = "reproduced, larger than the paper's (the paper's value lies outside the interval)"
        else:
            word = "reproduced (the paper's value lies inside the interval)"
    elif far < 0:
        word = "reversed"
    else:
        word = "not distinguishable from 0"
    return f"- {name}: paper {paper:+.1f} points, here {ours['difference']:+.1f} [{low:+.1f}, {high:+.1f}]: {word}."


def _mean(values: list[float | None]) -> float | None:
    """The mean of the values that exist (an agreement is None where no label could be compared)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def selection_result(recipe: Recipe, scored: dict[str, list[dict[str, Any]]], selects: dict[str, Unit],
                     temperatures: list[float]) -> dict[str, Any] | None:
    """train.selection's grid: each point's win-rate (seeds pooled) and its labels (mean over seeds), and for each
    selector the fewest labels at which it reaches random's full-budget win-rate, with the paired difference at
    half that budget."""
    from jpo.evaluate import paired_difference

    selection = recipe.train.selection
    if selection is None:
        return None
    run = selection.run

    def trained_on(selector: str, budget: int) -> list[dict[str, Any]]:
        """The scored generations of the run trained on a point's labels."""
        return scored[selection.run_name(point_name(selector, budget))]

    accounts = [{point: account for selector in selection.selectors
                 for point, account in selects[f"seed{seed}/{selector}"].result()["points"].items()}
                for seed in recipe.train.seeds]
    points = []
    for point in selection.points():
        mine = [a[point] for a in accounts]
        row = summarise(point, "D_H", scored[selection.run_name(point)], temperatures)
        row.update(selector=mine[0]["selector"], budget=mine[0]["budget"],
                   decisive=sum(a["D_H"] for a in mine) / len(mine),
                   instructions=sum(a["instructions"] for a in mine) / len(mine),
                   agreement={name: _mean([a["agreement"][name]["percent"] for a in mine])
                              for name in mine[0]["agreement"]})
        points.append(row)
    full = max(selection.budgets)
    goals, against_random = {}, {}
    if "random" in selection.selectors:
        against_random = {point_name(selector, budget): paired_difference(trained_on(selector, budget),
                                                                          trained_on("random", budget))
                          for selector in selection.selectors if selector != "random"
                          for budget in selection.budgets}
        target = next(p for p in points if p["selector"] == "random" and p["budget"] == full)
        half = max((b for b in selection.budgets if b <= full / 2), default=None)
        for selector in selection.selectors:
            mine = sorted((p for p in points if p["selector"] == selector), key=lambda p: p["budget"])
            reached = next((p["budget"] for p in mine if p["average"] >= target["average"]), None)
            at_half = None if half is None else paired_difference(trained_on(selector, half),
                                                                  trained_on("random", full))
            goals[selector] = {"reaches_at": reached, "half_budget": half, "half_vs_random_full": at_half}
    return {"run": run, "max_steps": selection.max_steps, "full": full, "points": points, "goals": goals,
            "against_random": against_random}


def _check(check: str, what: str, paired: dict[str, Any] | None, threshold: str, met: bool | None,
           note: str = "") -> dict[str, Any]:
    return {"check": check, "what": what, "value": paired["difference"] if paired else None,
            "ci95": paired["ci95"] if paired else None, "threshold": threshold, "met": met, "note": note}


def sensitivity_result(recipe: Recipe, scored: dict[str, list[dict[str, Any]]], shown: dict[str, str],
                       stripped: dict[str, Any] | None,
                       steps: dict[str, int] | None = None) -> dict[str, Any] | None:
    """The recipe's sensitivity checks (recipe.Sensitivity: R1-R4 and `run` - SFT), each with its value, paired 95%
    interval, threshold and whether it is met (None: could not be measured, which is not met). `steps`: each run's
    optimizer steps at the first seed, to say whether the checks' runs trained equally long."""
    from jpo.evaluate import paired_difference

    checks = recipe.sensitivity
    if checks is None:
        return None

    def paired(first: str | None, second: str | None) -> dict[str, Any] | None:
        return paired_difference(scored[first], scored[second]) if first in scored and second in scored else None

    run, name = checks.run, shown.get(checks.run, checks.run)
    results = []
    d = paired(run, checks.half)
    results.append(_check("R1", f"{name} on all of D_C - on a nested random half ({checks.half or 'not run'})", d,
                          f">= {checks.r1:+.1f}, interval above 0",
                          None if d is None else d["difference"] >= checks.r1 and d["ci95"][0] > 0))
    d = paired(checks.more, run)
    results.append(_check("R2", f"{name} on D_C + |D_C| fresh conditional labels ({checks.more or 'not run'}) - on "
                          "D_C", d, f">= {checks.r2:+.1f}, interval above 0",
                          None if d is None else d["difference"] >= checks.r2 and d["ci95"][0] > 0))
    d = paired(checks.reordered, run)
    results.append(_check("R3", f"{name} on D_C in another order ({checks.reordered or 'not run'}) - in its own",
                          d, f"within ±{checks.r3:.1f}, interval covering 0",
                          None if d is None else abs(d["difference"]) <= checks.r3 and d["ci95"][0] <= 0 <= d["ci95"][1]))
    base = paired(run, "sft")
    if stripped and stripped["habit"] and base:
        after = paired_difference(stripped["scored"][run], stripped["scored"]["sft"])
        share = after["difference"] / base["difference"] if base["difference"] > 0 else None
        note = (f"habit '{stripped['habit']}' in {stripped['share'].get('sft')}% of SFT's and "
                f"{stripped['share'].get(run)}% of {name}'s generations; {name} - SFT {base['difference']:+.1f} "
                "before removing it" + (f", {100 * share:.0f}% survives" if share is not None else
                                        ", which is not a gain"))
        results.append(_check("R4", f"{name} - SFT with the most frequent surface habit removed from both", after,
                              f">= {100 * checks.r4:.0f}% of {name} - SFT",
                              share is not None and share >= checks.r4, note))
    else:
        why = ("the task names no surface habits" if stripped is None else
               "no generation shows a habit" if stripped and not stripped["habit"] else "no SFT evaluation")
        results.append(_check("R4", f"{name} - SFT with the most frequent surface habit removed from both", None,
                              f">= {100 * checks.r4:.0f}% of {name} - SFT", None, f"not measured: {why}"))
    results.append(_check(f"{name} - SFT", f"{name} over the SFT model it starts from", base,
                          f">= {checks.over_sft:+.1f}", None if base is None else base["difference"] >= checks.over_sft))
    involved = [n for n in (run, checks.half, checks.more, checks.reordered) if n in (steps or {})]
    return {"checks": results, "met": all(r["met"] for r in results),
            "failed": [r["check"] for r in results if not r["met"]],
            "steps": {n: steps[n] for n in involved}}


def equal_budget_result(recipe: Recipe, scored: dict[str, list[dict[str, Any]]], shown: dict[str, str],
                        sizes: dict[str, Any]) -> list[dict[str, Any]]:
    """"Is a joint label worth a conditional one?": each JPO-style run on D_C ∪ D_H against each run on D_C + |D_H|
    fresh conditional labels (the equal-budget control), and both against the same objective on D_C alone."""
    from jpo.evaluate import paired_difference

    runs = [r for r in recipe.train.runs if r.name in scored]
    unions = [r for r in runs if set(r.data) == {"conditional", "joint"} and r.subset is None]
    controls = [r for r in runs if r.fresh == "size_of_joint" and set(r.data) == {"conditional", "fresh"}]
    out = []
    for union in unions:
        for control in controls:
            alone = next((r.name for r in runs if r.data == ["conditional"] and r.objective == control.objective
                          and r.subset is None and not r.reorder), None)
            entry = {"joint": union.name, "control": control.name, "conditional": alone,
                     "rows": {union.name: sizes.get(union.name), control.name: sizes.get(control.name)},
                     "joint_vs_control": paired_difference(scored[union.name], scored[control.name])}
            if alone:
                entry["joint_vs_conditional"] = paired_difference(scored[union.name], scored[alone])
                entry["control_vs_conditional"] = paired_difference(scored[control.name], scored[alone])
            out.append(entry)
    return out


def per_seed_result(recipe: Recipe, evaluations: dict[tuple[str, int], Unit],
                    names: list[str]) -> dict[str, Any] | None:
    """Each model's average win-rate at each seed (a seed's generations only) and each paired difference of
    `evaluate.paired` at each seed, with their spread (sample standard deviation, range). None for one seed."""
    import statistics

    from jpo.evaluate import paired_difference

    seeds = list(recipe.train.seeds)
    if len(seeds) < 2:
        return None
    by_seed = {(name, seed): read_jsonl(evaluations[name, seed].folder / "scored.jsonl") for name in names
               for seed in seeds}

    def spread(values: list[float]) -> dict[str, float]:
        return {"sd": round(statistics.stdev(values), 2), "min": min(values), "max": max(values)}

    models = {}
    for name in names:
        values = [seed_rate(by_seed[name, seed]) for seed in seeds]
        models[name] = {"per_seed": values, **spread(values)}
    differences = {}
    for pair in recipe.evaluate.paired:
        first, second = pair_names(pair)
        values = [paired_difference(by_seed[first, seed], by_seed[second, seed])["difference"] for seed in seeds]
        differences[pair] = {"per_seed": values, **spread(values)}
    return {"seeds": seeds, "vary_base": recipe.train.vary_base, "models": models, "paired": differences}
