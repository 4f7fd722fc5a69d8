"""The one report of a run (`jpo run` and `jpo demo` alike): results.md (a table like the paper's Table 5, beside
the paper's numbers where the recipe gives them), results.json, details.json, interplay.json and PNG plots.

Win-rates pool every seed of a model: the 95% bootstrap interval resamples prompts, all seeds and temperatures of a
prompt moving together, so it covers the variation over runs and over prompts. Paired differences compare two
models prompt by prompt (`jpo.evaluate.paired_difference`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jpo.data import read_jsonl
from jpo.runner.recipe import BuildModel, Recipe, point_name
from jpo.runner.units import Unit


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


def _md(text: str) -> str:
    """Text for a markdown table cell: a `|` (as in "|D_H|") would end the cell."""
    return str(text).replace("|", "\\|")


def _cell(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if interval is None else f"{value:.1f} [{interval[0]:.1f}, {interval[1]:.1f}]"


def table(rows: list[dict[str, Any]], temperatures: list[float], paper: bool) -> list[str]:
    quality = any("mean_quality" in r for r in rows)
    head = ["Method", "Data", "Rows"] + [f"T={t:g}" for t in temperatures] + ["Average [95% CI]"]
    head += ["Mean q"] if quality else []
    head += ["Paper avg"] if paper else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [_md(row["method"]), _md(row["data"]), str(row.get("rows", ""))]
        cells += [_cell(row["win_rate"][str(t)]) for t in temperatures]
        cells += [_cell(row["average"], row["ci95"])]
        cells += [_cell(row.get("mean_quality"))] if quality else []
        cells += [_cell(row.get("paper", {}).get("average"))] if paper else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(first: dict[str, Any], second: dict[str, Any], paired: dict[str, Any] | None) -> str:
    """One sentence on the first compared pair, whatever the numbers say, decided by the paired interval of the
    difference on the same prompts (two unpaired intervals overlap more than the evidence warrants)."""
    a, b = first["method"], second["method"]
    if paired:
        difference, (low, high) = paired["difference"], paired["ci95"]
        evidence = f"paired 95% interval of the difference [{low:+.1f}, {high:+.1f}]"
    else:
        difference = first["average"] - second["average"]
        low, high = first["ci95"][0] - second["ci95"][1], first["ci95"][1] - second["ci95"][0]
        evidence = f"95% intervals {first['ci95']} and {second['ci95']}"
    word = "beats" if low > 0 else "loses to" if high < 0 else "is not distinguishable from"
    return (f"{a} {word} {b} here: {first['average']:.1f}% vs {second['average']:.1f}% average win-rate against "
            f"gold ({difference:+.1f} points; {evidence}).")


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


def margin_lines(curves: dict[str, list[list[dict[str, Any]]]]) -> list[str]:
    """How much of each run's final implicit-reward margin comes from the instructions (JPO's prompt term; zero
    for response-scope objectives), averaged over seeds."""
    lines = ["| Method | final reward margin | from the instructions | share |", "|---|---|---|---|"]
    for label, histories in curves.items():
        finals = [next((h for h in reversed(history) if "rewards/margins" in h), None) for history in histories]
        finals = [f for f in finals if f is not None]
        if not finals:
            continue
        total = sum(f["rewards/margins"] for f in finals) / len(finals)
        prompt = sum(f.get("rewards/margins_prompt", 0.0) for f in finals) / len(finals)
        share = f"{100 * prompt / total:.0f}%" if total else "n/a"
        lines.append(f"| {_md(label)} | {total:.3f} | {prompt:.3f} | {share} |")
    return lines if len(lines) > 2 else []


def feedback_lines(feedback: dict[str, Any]) -> list[str]:
    lines = ["## Data", ""]
    for name in ("conditional", "joint"):
        entry = feedback.get(name)
        if not entry:
            continue
        agree = "; ".join(f"{other} agrees on {a['percent']:.1f}% (kappa {a['kappa'] if a['kappa'] is None else round(a['kappa'], 2)})"
                          for other, a in entry["agreement"].items() if a["percent"] is not None)
        lines.append(f"- {name} comparisons: {entry['items']} items judged by `{entry['judge']}` (labels "
                     f"{entry['labels']})" + (f"; {agree}" if agree else "") + ".")
    selected = feedback.get("selected")
    if selected:
        lines.append(f"- joint comparisons chosen by a selector after SFT: {selected['selection']}; labels "
                     f"{selected['labels']}, {selected['instructions']} instructions covered.")
    lines.append(f"- D_C: {feedback['D_C']} decisive conditional preferences; D_H: {feedback['D_H']} joint "
                 "preferences" + (f"; D_F: {feedback['D_F']} decisive fresh conditional preferences (labels "
                                  f"{feedback['fresh_labels']}), for the runs that add fresh labels"
                                  if "D_F" in feedback else "") + ".")
    interplay = feedback.get("interplay")
    if interplay:
        lines += ["", "## Interplay of conditional and joint labels (paper Figures 2-3)", "",
                  "| Members' conditional status | Joint judgment | Share | Count |", "|---|---|---|---|"]
        for group, title in (("both_chosen", "both chosen"), ("both_rejected", "both rejected"),
                             ("chosen_vs_rejected", "one chosen, one rejected")):
            for outcome, share in interplay["percent"][group].items():
                shown = "n/a" if share is None else f"{share:.1f}%"
                lines.append(f"| {title} | {outcome} | {shown} | {interplay[group][outcome]} |")
        if interplay.get("skipped"):
            lines += ["", "Left out of the interplay: " + "; ".join(f"{k}: {v}" for k, v in interplay["skipped"].items())]
    return lines


def joint_ranking(recipe: Recipe, out: Path, evaluations: dict[tuple[str, int], Unit], shown: dict[str, str],
                  data_dir: Path) -> dict[str, Any] | None:
    """`evaluate.joint`'s models ranked by joint comparisons of their generations (every seed), with the
    evaluation judge, beside their win-rates against gold (`jpo.evaluate.ranking.evaluate_joint`)."""
    if not recipe.evaluate.joint:
        return None
    from jpo.evaluate.ranking import evaluate_joint
    from jpo.feedback import make_judge
    from jpo.feedback.store import VerdictStore

    generations = {shown[name]: [row for seed in recipe.train.seeds for row in
                                 read_jsonl(evaluations[name, seed].deps[0].folder / "generations.jsonl")]
                   for name in recipe.evaluate.joint}
    judge = make_judge(recipe.evaluation_judge(), recipe.judge.options())
    with VerdictStore(out / "joint_verdicts.sqlite") as store:
        result = evaluate_joint(generations, judge, references=read_jsonl(data_dir / "eval.jsonl"), store=store,
                                progress=False, seed=recipe.seed, max_per_pair=recipe.evaluate.joint_max_per_pair)
    return {"markdown": result.markdown(), **result.as_dict()}


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


def selection_lines(result: dict[str, Any]) -> list[str]:
    points, budgets = result["points"], sorted({p["budget"] for p in result["points"]})
    selectors = list(dict.fromkeys(p["selector"] for p in points))
    at = {(p["selector"], p["budget"]): p for p in points}
    lines = ["## Which joint comparisons to label: win-rate by number of labels", "",
             f"Each selector picks each budget of joint comparisons out of the candidate pool; the annotator labels "
             f"them; {result['run']} is trained on the decisive labels for exactly {result['max_steps']} steps at "
             "every point (the same training budget). Average win-rate (%) against gold [95% CI], seeds pooled:", "",
             "| Selector | " + " | ".join(f"{b} labels" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    lines += [f"| {s} | " + " | ".join(_cell(at[s, b]["average"], at[s, b]["ci95"]) for b in budgets) + " |"
              for s in selectors]
    if result.get("against_random"):
        lines += ["", "Each selector against random at the same budget (win-rate points, paired 95% interval):", "",
                  "| Selector | " + " | ".join(f"{b} labels" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for s in selectors:
            if s == "random":
                continue
            cells = [result["against_random"][point_name(s, b)] for b in budgets]
            lines.append(f"| {s} | " + " | ".join(f"{d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
                                                  for d in cells) + " |")
    names = list(points[0]["agreement"])
    lines += ["", "What the labels were (mean over seeds): decisive labels (the rows trained on), instructions "
              "covered" + "".join(f", agreement with {n} (%)" for n in names) + ":", "",
              "| Selector | Budget | Decisive | Instructions | " + " | ".join(names) + (" |" if names else "|"),
              "|---|---|---|---|" + "---|" * len(names)]
    lines += [f"| {p['selector']} | {p['budget']} | {p['decisive']:.0f} | {p['instructions']:.0f} | "
              + " | ".join(_cell(p["agreement"][n]) for n in names) + (" |" if names else "|") for p in points]
    if result["goals"]:
        target = at["random", result["full"]]
        lines += ["", f"Against random at the full budget ({result['full']} labels: {target['average']:.1f}%):", ""]
        for selector, goal in result["goals"].items():
            reach = (f"reaches it at {goal['reaches_at']} labels" if goal["reaches_at"] is not None
                     else "does not reach it at any budget")
            half = goal["half_vs_random_full"]
            if half is not None:
                reach += (f"; with {goal['half_budget']} labels {half['difference']:+.1f} points "
                          f"[{half['ci95'][0]:+.1f}, {half['ci95'][1]:+.1f}] (paired)")
            lines.append(f"- {selector}: {reach}.")
    return lines


def habit_stripped(recipe: Recipe, evaluations: dict[tuple[str, int], Unit], names: list[str],
                   data_dir: Path, out: Path) -> dict[str, Any] | None:
    """R4's measurement: the surface habit most frequent in the generations of `names` (every seed; the synthetic
    task's `jpo.tasks.habits_in`), removed from all of them (`jpo.tasks.without_habit`), and each generation judged
    against gold again with the evaluation judge. None for a source without habits (not the synthetic task)."""
    if recipe.data.eval.source != "synthetic":
        return None
    from collections import Counter

    from jpo.evaluate import evaluate_generations, outcome_of_label
    from jpo.feedback import make_judge
    from jpo.feedback.store import VerdictStore
    from jpo.tasks import habits_in, without_habit

    references = read_jsonl(data_dir / "eval.jsonl")
    generations = {name: [row for seed in recipe.train.seeds for row in
                          read_jsonl(evaluations[name, seed].deps[0].folder / "generations.jsonl")]
                   for name in names}
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
            scored[name] = [{"id": r["prompt_id"], "temperature": r["temperature"], "seed": r["seed"],
                             "outcome": outcome_of_label(r["label"])} for r in result.rows]
    share = {name: round(100 * sum(habit in each for each in found) / len(found), 1) if found else None
             for name, found in shown.items()}
    return {"habit": habit, "share": share, "scored": scored}


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


def sensitivity_lines(result: dict[str, Any], dry: bool) -> list[str]:
    """The report's first lines: whether the testbed can tell methods apart, then the checks' table."""
    lines = []
    if not result["met"]:
        lines += [f"**This testbed cannot tell methods apart here ({', '.join(result['failed'])} not met): its results "
                  "below must not be read as evidence about the methods.**"
                  + (" (A dry run: no check is expected to pass.)" if dry else ""), ""]
    steps = result.get("steps") or {}
    if len(set(steps.values())) == 1:
        equal = f"every run at the same number of optimizer steps ({next(iter(steps.values()))})."
    elif steps:
        equal = ("**the runs did not train equally long** (" + ", ".join(f"{n} {v}" for n, v in steps.items())
                 + " optimizer steps): give them `steps_of`, or the checks measure compute as well as labels.")
    else:
        equal = "optimizer steps not known."
    lines += ["## Can this testbed tell methods apart?", "",
              "Each check is a paired difference in win-rate points on the same prompts, 95% paired bootstrap "
              f"interval; {equal}", "",
              "| Check | What | Value [95% CI] | Threshold | Met |", "|---|---|---|---|---|"]
    for r in result["checks"]:
        value = "n/a" if r["value"] is None else f"{r['value']:+.1f} [{r['ci95'][0]:+.1f}, {r['ci95'][1]:+.1f}]"
        met = "not measured" if r["met"] is None else "met" if r["met"] else "**not met**"
        lines.append(f"| {_md(r['check'])} | {_md(r['what'])} | {value} | {r['threshold']} | {met} |")
    notes = [f"{r['check']}: {r['note']}" for r in result["checks"] if r["note"]]
    if notes:
        lines += ["", *notes]
    if result["met"]:
        lines += ["", "Every check is met: more labels still help at equal steps, the data order does not decide the "
                  "result, and the gain is not one surface habit."]
    return lines


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


def _pair(d: dict[str, Any]) -> str:
    return f"{d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def equal_budget_lines(entries: list[dict[str, Any]], shown: dict[str, str]) -> list[str]:
    lines = ["## Is a joint label worth a conditional one?", "",
             "JPO on D_C ∪ D_H against the equal-budget control, DPO on D_C plus as many fresh conditional labels "
             "(same annotator) as D_H has rows: paired differences in win-rate points, 95% interval.", ""]
    for e in entries:
        j, c = shown[e["joint"]], shown[e["control"]]
        d = e["joint_vs_control"]
        word = ("worth more than" if d["ci95"][0] > 0 else "worth less than" if d["ci95"][1] < 0
                else "not distinguishable from")
        lines.append(f"- {j} ({e['rows'][e['joint']]} rows) - {c} ({e['rows'][e['control']]} rows): {_pair(d)}: "
                     f"here a joint label is {word} a conditional one.")
        if e.get("conditional"):
            a = shown[e["conditional"]]
            lines.append(f"- {j} - {a} (D_C alone): {_pair(e['joint_vs_conditional'])}; {c} - {a}: "
                         f"{_pair(e['control_vs_conditional'])} (what more conditional labels alone give).")
    return lines


def per_seed_result(recipe: Recipe, evaluations: dict[tuple[str, int], Unit],
                    names: list[str]) -> dict[str, Any] | None:
    """Each model's average win-rate at each seed (a seed's generations only) and each paired difference of
    `evaluate.paired` at each seed, with their spread (sample standard deviation, range). None for one seed."""
    import statistics

    from jpo.evaluate import paired_difference
    from jpo.evaluate.winrate import SCORES

    seeds = list(recipe.train.seeds)
    if len(seeds) < 2:
        return None
    by_seed = {(name, seed): read_jsonl(evaluations[name, seed].folder / "scored.jsonl") for name in names
               for seed in seeds}

    def spread(values: list[float]) -> dict[str, float]:
        return {"sd": round(statistics.stdev(values), 2), "min": min(values), "max": max(values)}

    models = {}
    for name in names:
        values = []
        for seed in seeds:
            scores = [SCORES[s["outcome"]] for s in by_seed[name, seed] if s["outcome"] in SCORES]
            values.append(round(100 * sum(scores) / len(scores), 2) if scores else 0.0)
        models[name] = {"per_seed": values, **spread(values)}
    differences = {}
    for pair in recipe.evaluate.paired:
        first, _, second = (p.strip() for p in pair.partition(" - "))
        values = [paired_difference(by_seed[first, seed], by_seed[second, seed])["difference"] for seed in seeds]
        differences[pair] = {"per_seed": values, **spread(values)}
    return {"seeds": seeds, "vary_base": recipe.train.vary_base, "models": models, "paired": differences}


def per_seed_lines(result: dict[str, Any], shown: dict[str, str]) -> list[str]:
    seeds = result["seeds"]
    what = ("each seed its own built model, pretraining, SFT and preference training" if result["vary_base"] else
            "each seed its own preference training, from one pretrained and SFT model (train.vary_base: true "
            "varies those too)")
    lines = ["## Spread over seeds", "", f"Average win-rate (%) per seed ({what}); sd: sample standard deviation:", "",
             "| Model | " + " | ".join(f"seed {s}" for s in seeds) + " | sd | range |", "|---|" + "---|" * (len(seeds) + 2)]
    for name, m in result["models"].items():
        lines.append(f"| {_md(shown.get(name, name))} | " + " | ".join(f"{v:.1f}" for v in m["per_seed"])
                     + f" | {m['sd']:.1f} | {m['max'] - m['min']:.1f} |")
    if result["paired"]:
        lines += ["", "Paired differences per seed (win-rate points):", "",
                  "| Difference | " + " | ".join(f"seed {s}" for s in seeds) + " | sd |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for pair, d in result["paired"].items():
            first, _, second = (p.strip() for p in pair.partition(" - "))
            lines.append(f"| {_md(shown.get(first, first))} - {_md(shown.get(second, second))} | "
                         + " | ".join(f"{v:+.1f}" for v in d["per_seed"]) + f" | {d['sd']:.1f} |")
    return lines


def provenance(units: list[Unit]) -> dict[str, Any]:
    """Where and how a report was made, kept out of results.json so that two runs of one recipe write the same
    results.json: the command line, the commit, the CPU, and each stage's wall-clock seconds (summed over its
    units, from their manifests)."""
    import shlex
    import subprocess
    import sys

    def git(*args: str) -> str | None:  # Popen, not run: a test's stand-in for a training subprocess.run stays so
        try:
            with subprocess.Popen(["git", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  cwd=Path(__file__).resolve().parent) as process:
                out = process.communicate()[0].strip()
        except OSError:
            return None
        return out if process.returncode == 0 else None

    program = Path(sys.argv[0]).name
    command = shlex.join(["jpo" if program in ("jpo", "__main__.py") else program, *sys.argv[1:]])
    cpu, cores = "unknown", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            cores += line.startswith("processor")
    except OSError:
        pass
    seconds: dict[str, float] = {}
    seen, todo = set(), list(units)
    while todo:  # every unit the report reads, directly or not
        unit = todo.pop()
        if unit.label in seen:
            continue
        seen.add(unit.label)
        todo += unit.deps
        try:
            seconds[unit.stage] = seconds.get(unit.stage, 0.0) + unit.manifest()["seconds"]
        except (OSError, ValueError, KeyError):
            pass
    from jpo.runner.units import STAGES

    seconds = {stage: round(seconds[stage], 1) for stage in STAGES if stage in seconds}
    return {"command": command, "commit": git("describe", "--always", "--dirty", "--abbrev=12"),
            "cpu": f"{cpu} ({cores} logical cores)" if cores else cpu, "seconds": seconds,
            "total_seconds": round(sum(seconds.values()), 1)}


def _steps(trained: dict[tuple[str, int], Unit], seed: int) -> dict[str, int]:
    """Each run's optimizer steps at `seed` (its trainer_state.json), where it has one."""
    steps = {}
    for (name, at), unit in trained.items():
        state = unit.folder / "model" / "trainer_state.json"
        if at == seed and state.exists():
            steps[name] = json.loads(state.read_text())["global_step"]
    return steps


def write_report(recipe: Recipe, out: Path, feedback: Unit, sft: Unit | None, trained: dict[tuple[str, int], Unit],
                 evaluations: dict[tuple[str, int], Unit], data_dir: Path,
                 selects: dict[str, Unit] | None = None, online=None) -> dict[str, Any]:
    """`online`: runner.online.OnlineUnits, the online runs' train units and their earlier rounds' evaluations."""
    from jpo.evaluate import paired_difference
    from jpo.runner.online_report import online_result

    temperatures = list(recipe.generate.temperatures)
    seeds = list(recipe.train.seeds)
    runs = {r.name: r for r in recipe.runs()}
    scored = {name: [s for seed in seeds for s in read_jsonl(evaluations[name, seed].folder / "scored.jsonl")]
              for name in dict.fromkeys(n for n, _ in evaluations)}
    sizes = {name: unit.result().get("rows") for (name, _), unit in trained.items()}
    for name in dict.fromkeys(name for name, _ in (online.trained if online else {})):
        # an online run's decisive labels differ by seed (its own samples): their mean
        counts = [unit.result().get("rows", 0) for (other, _), unit in online.trained.items() if other == name]
        sizes[name] = round(sum(counts) / len(counts))
    if sft is not None:
        sizes["sft"] = sft.result().get("rows")
    rows, scaling = [], []
    for name, items in scored.items():
        run = runs.get(name)
        shown_as = run or next((r for r in recipe.online if r.name == name), None)  # online: runner/online.py
        label, data = (shown_as.shown, shown_as.data_label) if shown_as else ("SFT", "D_S")
        row = {**summarise(label, data, items, temperatures), "name": name, "rows": sizes.get(name),
               "seeds": len(seeds)}
        if name in recipe.paper.win_rate:
            row["paper"] = recipe.paper.win_rate[name]
        if run and run.selected:
            continue
        (scaling if run and run.joint_size is not None else rows).append(row)
    if scaling and recipe.train.scaling and recipe.train.scaling.run in scored:
        full = next(r for r in rows if r["name"] == recipe.train.scaling.run)
        scaling.append(full)
    scaling.sort(key=lambda r: r["rows"] or 0)
    shown = {r["name"]: r["method"] for r in rows + scaling}
    paired = {}
    for pair in recipe.evaluate.paired:
        first, _, second = (p.strip() for p in pair.partition(" - "))
        paired[f"{shown[first]} - {shown[second]}"] = paired_difference(scored[first], scored[second])
    findings = []
    for pair, paper in recipe.paper.findings.items():
        first, _, second = (p.strip() for p in pair.partition(" - "))
        ours = paired_difference(scored[first], scored[second]) if first in scored and second in scored else None
        findings.append(finding(f"{shown.get(first, first)} - {shown.get(second, second)}", paper, ours))
    curves = {}
    for (name, _), unit in trained.items():
        state = unit.folder / "model" / "trainer_state.json"
        if state.exists() and runs[name].joint_size is None and not runs[name].selected:
            curves.setdefault(runs[name].shown, []).append(json.loads(state.read_text())["log_history"])
    feedback_stats = {k: v for k, v in feedback.result().items() if k != "line"}
    if "pairs" in (selects or {}):  # D_H chosen by a selector after SFT
        (feedback_stats["selected"],) = selects["pairs"].result()["points"].values()
        feedback_stats["D_H"] = feedback_stats["selected"]["D_H"]
    shown_all = {**shown, "sft": "SFT"}
    checks = recipe.sensitivity
    stripped = (habit_stripped(recipe, evaluations, [checks.run, "sft"], data_dir, out)
                if checks is not None and checks.run in scored and "sft" in scored else None)
    result = {"rows": rows, "paired": paired, "findings": findings, "scaling": scaling, "feedback": feedback_stats,
              "curves": curves, "seeds": seeds, "recipe": dataclasses.asdict(recipe),
              "joint": joint_ranking(recipe, out, evaluations, shown_all, data_dir),
              "selection": selection_result(recipe, scored, selects or {}, temperatures),
              "sensitivity": sensitivity_result(recipe, scored, shown_all, stripped, _steps(trained, seeds[0])),
              "equal_budget": equal_budget_result(recipe, scored, shown_all, sizes),
              "per_seed": per_seed_result(recipe, evaluations, [r["name"] for r in rows]),
              "provenance": provenance([feedback, *trained.values(), *evaluations.values()]),
              "online": online_result(recipe, online, evaluations, trained, feedback_stats, sizes, temperatures)
              if online else None}
    if result["online"]:  # wall-clock seconds of the loop's stages: provenance, not results.json
        result["provenance"]["online_round_seconds"] = result["online"]["seconds"]
    write_outputs(recipe, result, out)
    return {"models": [r["name"] for r in rows], "line": f"wrote {out / 'results.md'}"}


def markdown(recipe: Recipe, result: dict[str, Any]) -> str:
    temperatures = list(recipe.generate.temperatures)
    rows = result["rows"]
    has_paper = any("paper" in r for r in rows)
    lines = [f"# {recipe.name}" + (" (dry run: tiny model, tiny data, one step; numbers mean nothing)"
                                   if recipe.dry else ""), ""]
    if result.get("sensitivity"):  # first: whether anything below can be read as evidence
        lines += [*sensitivity_lines(result["sensitivity"], recipe.dry), ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    lines += [f"Win-rate (%) against the gold references of {recipe.data.eval.source}:{recipe.data.eval.split}, "
              f"judged by `{recipe.evaluation_judge()}` in both orders (win 1, tie 0.5, loss 0), per sampling "
              f"temperature and over all of them; {len(result['seeds'])} preference-training seed(s) "
              f"({', '.join(map(str, result['seeds']))}) "
              + ("each from its own built model, pretraining and SFT" if recipe.train.vary_base
                 and len(result["seeds"]) > 1 else "from one SFT model")
              + ", pooled; 95% bootstrap intervals resample "
              "prompts (all seeds and temperatures of a prompt together)."
              + (" Mean q: the generations' true quality (x100)." if any("mean_quality" in r for r in rows) else ""),
              "", *table(rows, temperatures, has_paper), ""]
    if recipe.paper.source:
        lines += [f"Paper: {recipe.paper.source.strip()}." + (f" {recipe.paper.notes.strip()}" if recipe.paper.notes else ""),
                  ""]
    by_label = {r["method"]: r for r in rows + result["scaling"]}
    if result["paired"]:
        (name, first), = list(result["paired"].items())[:1]
        a, b = name.split(" - ")
        lines += [verdict(by_label[a], by_label[b], first), "",
                  "Paired differences on the same prompts (win-rate points, 95% paired bootstrap interval): "
                  + "; ".join(f"{k}: {d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
                              for k, d in result["paired"].items()) + ".", ""]
    shown = {**{r["name"]: r["method"] for r in rows + result["scaling"]}, "sft": "SFT"}
    if result.get("online"):
        from jpo.runner.online_report import online_lines

        lines += [*online_lines(result["online"]), ""]
    if result.get("equal_budget"):
        lines += [*equal_budget_lines(result["equal_budget"], shown), ""]
    if result.get("findings"):
        lines += ["## Beside the paper", "", "Each of the paper's differences (win-rate points) against the same "
                  "difference here, paired on the same prompts:", "", *result["findings"], ""]
    margins = margin_lines(result["curves"])
    if margins:
        lines += ["## Where the margin comes from", "", "Final `rewards/margins` and its instruction part "
                  "`rewards/margins_prompt` (last logged step, mean over seeds):", "", *margins, ""]
    if result.get("joint"):
        lines += ["## Ranking by joint comparisons", "", result["joint"]["markdown"], ""]
    lines += feedback_lines(result["feedback"])
    if result["scaling"]:
        scaling = recipe.train.scaling
        fixed = (f"every point trains as many optimizer steps as {scaling.run} on all of D_H, so the curve measures "
                 "labels" if scaling.fixed == "steps" else "every point trains the run's epochs (fixed epochs): "
                 "steps grow with the data, so the curve measures labels and compute together")
        lines += ["", f"## Data scaling: the same run on growing subsets of D_H (paper Figure 7), fixed {scaling.fixed}",
                  "", f"{fixed[0].upper()}{fixed[1:]}.", "", *table(result["scaling"], temperatures, False)]
    if result.get("per_seed"):
        lines += ["", *per_seed_lines(result["per_seed"], shown)]
    if result.get("selection"):
        lines += ["", *selection_lines(result["selection"])]
    if recipe.paper.data:
        lines += ["", f"Paper's data sizes: {recipe.paper.data}."]
    pretrain = {"model.build.pretrain": recipe.model.pretrain} if isinstance(recipe.model, BuildModel) else {}
    settings = {**pretrain, "sft": recipe.sft.config, "train.common": recipe.train.common,
                **{f"run {r.name}": r.config for r in recipe.train.runs if r.config}}
    lines += ["", "## Settings", "", "```json", json.dumps(settings, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
    return [p[0] for p in points], [p[1] for p in points]


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = result["rows"]
    figure, axis = plt.subplots(figsize=(8, 4))
    errors = [[r["average"] - r["ci95"][0] for r in rows], [r["ci95"][1] - r["average"] for r in rows]]
    axis.bar(range(len(rows)), [r["average"] for r in rows], yerr=errors, capsize=4, color="#4c72b0")
    axis.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=20, ha="right")
    axis.set_ylabel("win-rate vs gold (%)")
    axis.axhline(50, color="gray", lw=0.8, ls="--")
    axis.set_title("Average win-rate over temperatures, 95% bootstrap intervals")
    figure.tight_layout()
    written.append(out / "winrate.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    for key, name in (("loss", "loss"), ("rewards/margins", "reward_margin")):
        figure, axis = plt.subplots(figsize=(7, 4))
        for index_label, (label, runs) in enumerate(result["curves"].items()):
            for index, history in enumerate(runs):
                steps, values = _series(history, key)
                if steps:
                    axis.plot(steps, values, label=label if index == 0 else None, color=f"C{index_label}",
                              alpha=0.9 if index == 0 else 0.4)
        axis.set_xlabel("step")
        axis.set_ylabel(key)
        axis.set_title(f"Training {key} per method (all seeds)")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        figure.tight_layout()
        written.append(out / f"training_{name}.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)

    if result["scaling"]:
        figure, axis = plt.subplots(figsize=(6, 4))
        points = result["scaling"]
        axis.errorbar([r["rows"] for r in points], [r["average"] for r in points],
                      yerr=[[r["average"] - r["ci95"][0] for r in points], [r["ci95"][1] - r["average"] for r in points]],
                      marker="o", capsize=4)
        axis.set_xlabel("joint comparisons (D_H rows trained on)")
        axis.set_ylabel("average win-rate vs gold (%)")
        axis.set_title("Data scaling on D_H")
        figure.tight_layout()
        written.append(out / "scaling.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)

    if result.get("selection"):
        figure, axis = plt.subplots(figsize=(6, 4))
        points = result["selection"]["points"]
        for selector in dict.fromkeys(p["selector"] for p in points):
            mine = sorted((p for p in points if p["selector"] == selector), key=lambda p: p["budget"])
            axis.errorbar([p["budget"] for p in mine], [p["average"] for p in mine],
                          yerr=[[p["average"] - p["ci95"][0] for p in mine], [p["ci95"][1] - p["average"] for p in mine]],
                          marker="o", capsize=3, label=selector, alpha=0.85)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("labelled joint comparisons")
        axis.set_ylabel("average win-rate vs gold (%)")
        axis.set_title(f"Selectors, {result['selection']['max_steps']} training steps per point")
        axis.legend(fontsize=8)
        figure.tight_layout()
        written.append(out / "selection.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)

    if result.get("online") and any(len(run["curve"]) > 1 for run in result["online"]["runs"].values()):
        from jpo.runner.online_report import online_plot

        written.append(online_plot(result["online"], out))
    return written


def public_results(recipe: Recipe, result: dict[str, Any]) -> dict[str, Any]:
    """results.json: the numbers, and only what a rerun of the same recipe and seeds reproduces byte for byte (no
    paths, times or machine; those are in provenance.json and details.json)."""
    from jpo.runner.online_report import public_online

    keys = ("method", "name", "data", "win_rate", "average", "ci95", "ci95_per_temperature", "outcomes",
            "mean_quality", "rows", "seeds", "paper")
    return {"recipe": recipe.name, "dry_run": recipe.dry, "seeds": result["seeds"],
            "rows": [{k: row[k] for k in keys if k in row} for row in result["rows"]],
            "sensitivity": result.get("sensitivity"), "paired": result["paired"],
            "equal_budget": result.get("equal_budget") or [], "findings": result["findings"],
            "scaling": {"fixed": recipe.train.scaling.fixed if recipe.train.scaling else None,
                        "points": [{k: row[k] for k in keys if k in row} for row in result["scaling"]]},
            "per_seed": result.get("per_seed"), "data": {k: result["feedback"].get(k) for k in ("D_C", "D_H", "D_F")
                                                         if k in result["feedback"]},
            **({"online": public_online(result["online"])} if result.get("online") else {})}


def write_outputs(recipe: Recipe, result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(recipe, result)
    (out / "results.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps(public_results(recipe, result), indent=1) + "\n", encoding="utf-8")
    if "interplay" in result["feedback"]:
        (out / "interplay.json").write_text(json.dumps(result["feedback"]["interplay"], indent=1), encoding="utf-8")
    extra = {k: result.get(k) for k in ("paired", "findings", "scaling", "feedback", "seeds", "recipe", "joint",
                                        "selection", "sensitivity", "equal_budget", "per_seed", "online")}
    (out / "details.json").write_text(json.dumps(extra, indent=1, default=str), encoding="utf-8")
    if result.get("provenance"):
        (out / "provenance.json").write_text(json.dumps(result["provenance"], indent=1) + "\n", encoding="utf-8")
    print(text)
    return [out / "results.md", out / "results.json", *plots(result, out)]
