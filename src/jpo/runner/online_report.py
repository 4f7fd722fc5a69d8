"""The report's online section (issue 22): what each online run cost per round, its win-rate against gold as a
function of generated samples and of judge questions, and the comparison of online JPO with online DPO and with the
offline runs it is paired with in `evaluate.paired`.

A run's curve has a point per round: round 0 is the SFT model it starts from (no cost), round R the policy after R
rounds (the run's own evaluation for the last round; earlier rounds when the run has `evaluate_rounds`). Costs come
from the loop's log (`online_log.jsonl`: samples, judge questions, decisive labels, tokens generated, training
steps), averaged over seeds; win-rates pool the seeds as the rest of the report does, and differences are paired on
the same prompts (`jpo.evaluate.paired_difference`), pooled and per seed.

The headline, for each online JPO run A and online DPO run B with curves: the generation budget at which B first
reaches its own final win-rate, and A's win-rate at that budget (A's last point with no more samples), paired against
B's final; and the other way round. Wall-clock seconds of each round (generation, judging, training) are not in
results.json, which a rerun must reproduce byte for byte: they are in the markdown and provenance.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jpo.data import read_jsonl

COSTS = ("samples", "judge_questions", "decisive", "tokens_generated", "train_steps")
STAGES = ("generation", "judging", "training")


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def _seed_rate(scored: list[dict[str, Any]]) -> float:
    from jpo.evaluate.winrate import SCORES

    scores = [SCORES[s["outcome"]] for s in scored if s["outcome"] in SCORES]
    return round(100 * sum(scores) / len(scores), 2) if scores else 0.0


def _pair(first: dict[int, list[dict[str, Any]]], second: dict[int, list[dict[str, Any]]],
          seeds: list[int]) -> dict[str, Any]:
    """first - second: pooled over seeds and at each seed, paired on the same prompts."""
    from jpo.evaluate import paired_difference

    pooled = paired_difference([s for seed in seeds for s in first[seed]], [s for seed in seeds for s in second[seed]])
    return {**pooled, "per_seed": [paired_difference(first[seed], second[seed]) for seed in seeds]}


def online_result(recipe, units, evaluations: dict[tuple[str, int], Any], trained: dict[tuple[str, int], Any],
                  feedback: dict[str, Any], sizes: dict[str, Any], temperatures: list[float]) -> dict[str, Any] | None:
    """The online section's numbers (`units`: runner.online.OnlineUnits); None without online runs. Every value is
    a count or a win-rate, so two runs of one recipe give the same; the round times are in `seconds` (kept out of
    results.json by `public_online`)."""
    from jpo.runner.report import summarise

    runs = [run for run in recipe.online if (run.name, recipe.train.seeds[0]) in units.trained]
    if not runs:
        return None
    seeds = list(recipe.train.seeds)

    def scored_of(unit) -> list[dict[str, Any]]:
        return read_jsonl(unit.folder / "scored.jsonl")

    sft = {seed: scored_of(evaluations["sft", seed]) for seed in seeds} if all(
        ("sft", seed) in evaluations for seed in seeds) else None
    out: dict[str, Any] = {"seeds": seeds, "runs": {}, "offline": {}, "comparisons": [], "seconds": {}}
    points: dict[tuple[str, int], dict[int, list[dict[str, Any]]]] = {}  # (run, round) -> seed -> scored rows
    for run in runs:
        logs = {seed: read_jsonl(units.trained[run.name, seed].folder / "model" / "online_log.jsonl")
                for seed in seeds}
        rounds = min(len(log) for log in logs.values())
        costs = [{"round": r, **{key: [logs[seed][r - 1][key] for seed in seeds] for key in COSTS},
                  "comparisons": {kind: [logs[seed][r - 1]["comparisons"].get(kind, 0) for seed in seeds]
                                  for kind in ("joint", "conditional")},
                  "missing_eos": [logs[seed][r - 1]["missing_eos"] for seed in seeds]}
                 for r in range(1, rounds + 1)]
        curve = []
        for r in range(rounds + 1):
            if r == 0:
                rows = sft
            elif r == rounds and (run.name, seeds[0]) in evaluations:
                rows = {seed: scored_of(evaluations[run.name, seed]) for seed in seeds}
            elif (run.name, seeds[0], r) in units.checkpoints:
                rows = {seed: scored_of(units.checkpoints[run.name, seed, r]) for seed in seeds}
            else:
                rows = None
            if rows is None:
                continue
            points[run.name, r] = rows
            total = {key: _mean([sum(logs[seed][i][key] for i in range(r)) for seed in seeds]) for key in COSTS}
            row = summarise(f"{run.shown}, round {r}", run.data_label, [s for seed in seeds for s in rows[seed]],
                            temperatures)
            curve.append({"round": r, **total, "average": row["average"], "ci95": row["ci95"],
                          "per_seed": [_seed_rate(rows[seed]) for seed in seeds]})
        out["runs"][run.name] = {
            "label": run.shown, "mode": run.mode, "rounds": rounds, "prompts_per_round": run.prompts_per_round,
            "samples_per_prompt": logs[seeds[0]][0]["samples"] // max(1, logs[seeds[0]][0]["prompts"]),
            "train_on": run.train_on, "reference": run.ref_model,
            "steps": [sum(entry["train_steps"] for entry in logs[seed][:rounds]) for seed in seeds],
            "costs": costs, "curve": curve}
        out["seconds"][run.name] = {stage: _mean([entry["seconds"][stage] for seed in seeds
                                                  for entry in logs[seed][:rounds]]) for stage in (*STAGES, "total")}
        checkpoint_seconds = [u.manifest()["seconds"] + u.deps[0].manifest()["seconds"]
                              for (name, _, _), u in units.checkpoints.items() if name == run.name]
        if checkpoint_seconds:  # generating from and judging a round's policy: the curve's cost, not the loop's
            out["seconds"][run.name]["evaluating a round's policy"] = _mean(checkpoint_seconds)
    out["offline"] = _offline(recipe, runs, trained, feedback, sizes, evaluations, seeds, temperatures)
    for a in (run for run in runs if run.mode == "jpo"):
        for b in (run for run in runs if run.mode == "dpo"):
            if len(out["runs"][a.name]["curve"]) > 1 and len(out["runs"][b.name]["curve"]) > 1:
                out["comparisons"].append(_compare(out["runs"], points, a.name, b.name, seeds))
    return out


def _offline(recipe, runs, trained, feedback, sizes, evaluations, seeds, temperatures) -> dict[str, Any]:
    """The offline runs `evaluate.paired` compares with an online run: win-rate, steps per seed, labels, judge
    questions (both orders of each judged comparison of the data it trains on)."""
    from jpo.runner.report import summarise

    online = {run.name for run in runs}
    named = {r.name: r for r in recipe.runs()}
    wanted = []
    for pair in recipe.evaluate.paired:
        first, _, second = (p.strip() for p in pair.partition(" - "))
        for this, other in ((first, second), (second, first)):
            if this in online and other in named and other not in wanted:
                wanted.append(other)
    out = {}
    for name in wanted:
        if not all((name, seed) in evaluations for seed in seeds):
            continue
        run = named[name]
        rows = {seed: read_jsonl(evaluations[name, seed].folder / "scored.jsonl") for seed in seeds}
        steps = []
        for seed in seeds:
            state = trained[name, seed].folder / "model" / "trainer_state.json"
            steps.append(json.loads(state.read_text())["global_step"] if state.exists() else None)
        judged = {"conditional": "conditional", "joint": "joint", "mix": "conditional", "fresh": "fresh"}
        items = sum(feedback.get(judged[d], {}).get("items", 0) for d in dict.fromkeys(run.data))
        if "mix" in run.data:
            items += feedback.get("joint", {}).get("items", 0)
        summary = summarise(run.shown, run.data_label, [s for seed in seeds for s in rows[seed]], temperatures)
        out[name] = {"label": run.shown, "data": run.data_label, "rows": sizes.get(name), "steps": steps,
                     "judge_questions": 2 * items, "average": summary["average"], "ci95": summary["ci95"],
                     "per_seed": [_seed_rate(rows[seed]) for seed in seeds]}
    return out


def _compare(runs: dict[str, Any], points, a: str, b: str, seeds: list[int]) -> dict[str, Any]:
    """Online JPO run `a` against online DPO run `b`: each at the budget where the other reaches its final
    win-rate, round by round (equal judge questions and steps when both ask as many per round) and at equal
    numbers of generated samples."""
    curve_a, curve_b = runs[a]["curve"], runs[b]["curve"]

    def reach(curve: list[dict[str, Any]]) -> dict[str, Any]:
        """The first point of a curve at its final win-rate or above."""
        final = curve[-1]["average"]
        return next(p for p in curve if p["average"] >= final)

    def budget(first: str, curve_first, second: str, curve_second) -> dict[str, Any]:
        """`second`'s win-rate at the generation budget where `first` reaches its final win-rate: `second`'s last
        point with no more samples (None when every point of it has more)."""
        reached = reach(curve_first)
        entry = {"reaches": first, "at_round": reached["round"], "samples": reached["samples"],
                 "final": curve_first[-1]["average"], "other": second, "other_round": None}
        within = [p for p in curve_second if p["samples"] <= reached["samples"]]
        if within:
            there = within[-1]
            entry.update(other_round=there["round"], other_samples=there["samples"], other_average=there["average"],
                         difference=_pair(points[second, there["round"]], points[first, curve_first[-1]["round"]],
                                          seeds))
        return entry

    by_round_b = {p["round"]: p for p in curve_b}
    same_round = [{"round": p["round"], "samples": [p["samples"], by_round_b[p["round"]]["samples"]],
                   "judge_questions": [p["judge_questions"], by_round_b[p["round"]]["judge_questions"]],
                   "train_steps": [p["train_steps"], by_round_b[p["round"]]["train_steps"]],
                   "difference": _pair(points[a, p["round"]], points[b, p["round"]], seeds)}
                  for p in curve_a if p["round"] > 0 and p["round"] in by_round_b]
    by_samples_b = {p["samples"]: p for p in curve_b if p["round"] > 0}
    same_samples = [{"samples": p["samples"], "rounds": [p["round"], by_samples_b[p["samples"]]["round"]],
                     "difference": _pair(points[a, p["round"]], points[b, by_samples_b[p["samples"]]["round"]],
                                         seeds)}
                    for p in curve_a if p["round"] > 0 and p["samples"] in by_samples_b]
    final = _pair(points[a, curve_a[-1]["round"]], points[b, curve_b[-1]["round"]], seeds)
    return {"joint": a, "conditional": b, "finals": final,
            "joint_at_conditional_budget": budget(b, curve_b, a, curve_a),
            "conditional_at_joint_budget": budget(a, curve_a, b, curve_b),
            "same_round": same_round, "same_samples": same_samples}


def public_online(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """results.json's part: everything but the wall-clock seconds."""
    return None if result is None else {k: v for k, v in result.items() if k != "seconds"}


def _d(d: dict[str, Any]) -> str:
    return f"{d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def _n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _word(d: dict[str, Any]) -> str:
    return "above" if d["ci95"][0] > 0 else "below" if d["ci95"][1] < 0 else "not distinguishable from"


def headline(result: dict[str, Any], comparison: dict[str, Any]) -> list[str]:
    """The comparison's sentences: each run at the budget where the other reaches its final win-rate."""
    label = {name: run["label"] for name, run in result["runs"].items()}
    lines = []
    for key in ("joint_at_conditional_budget", "conditional_at_joint_budget"):
        h = comparison[key]
        first, other = label[h["reaches"]], label[h["other"]]
        if h["other_round"] is None:
            lines.append(f"- {first} reaches its final win-rate ({h['final']:.1f}%) after {_n(h['samples'])} "
                         f"generated samples (round {h['at_round']}); {other} has no evaluated point within that "
                         "budget.")
            continue
        d = h["difference"]
        lines.append(f"- {first} reaches its final win-rate ({h['final']:.1f}%) after {_n(h['samples'])} generated "
                     f"samples (round {h['at_round']}); at that budget {other} (round {h['other_round']}, "
                     f"{_n(h['other_samples'])} samples) is at {h['other_average']:.1f}%: {other} - {first}'s final "
                     f"{_d(d)} points (paired; per seed " + ", ".join(_d(s) for s in d["per_seed"])
                     + f"), {_word(d)} it.")
    f = comparison["finals"]
    a, b = label[comparison["joint"]], label[comparison["conditional"]]
    ra, rb = result["runs"][comparison["joint"]], result["runs"][comparison["conditional"]]
    lines.append(f"- Final policies: {a} - {b} {_d(f)} points (per seed " + ", ".join(_d(s) for s in f["per_seed"])
                 + f"), with {_n(ra['curve'][-1]['samples'])} vs {_n(rb['curve'][-1]['samples'])} samples, "
                 f"{_n(ra['curve'][-1]['judge_questions'])} vs {_n(rb['curve'][-1]['judge_questions'])} judge "
                 f"questions, {'/'.join(map(str, ra['steps']))} vs {'/'.join(map(str, rb['steps']))} training steps "
                 "(per seed).")
    return lines


def online_lines(result: dict[str, Any]) -> list[str]:
    """The markdown section."""
    seeds = result["seeds"]
    lines = ["## Online training on the policy's own samples", "",
             "Win-rate (%) against gold after each round (round 0: the SFT model), seeds pooled (95% bootstrap "
             "interval), by cumulative samples generated and judge questions asked (means over seeds). Differences "
             "are paired on the same prompts.", ""]
    for comparison in result["comparisons"]:
        lines += ["Headline:", "", *headline(result, comparison), ""]
    steps = {run["label"]: run["steps"] for run in result["runs"].values()}
    steps.update({entry["label"]: entry["steps"] for entry in result["offline"].values()})
    equal = len({s for values in steps.values() for s in values}) == 1
    lines += [("Every arm trained the same number of optimizer steps: " if equal else
               "**The arms did not train equally long** (optimizer steps per seed): ")
              + "; ".join(f"{name} {'/'.join(map(str, values))}" for name, values in steps.items()) + ".", ""]
    for name, run in result["runs"].items():
        head = f"### {run['label']} ({name}): {run['mode']}, {run['rounds']} rounds x {run['prompts_per_round']} " \
               f"prompts x {run['samples_per_prompt']} sample(s), trained on {run['train_on']}'s labels, reference " \
               f"{run['reference']}"
        lines += [head, "", "| Round | Samples | Judge questions | Decisive labels | Steps | Win-rate [95% CI] | "
                  "Per seed |", "|---|---|---|---|---|---|---|"]
        for p in run["curve"]:
            lines.append(f"| {p['round']} | {_n(p['samples'])} | {_n(p['judge_questions'])} | {_n(p['decisive'])} | "
                         f"{_n(p['train_steps'])} | {p['average']:.1f} [{p['ci95'][0]:.1f}, {p['ci95'][1]:.1f}] | "
                         + ", ".join(f"{v:.1f}" for v in p["per_seed"]) + " |")
        lines += ["", "Cost per round (mean over seeds; tokens: generated tokens, EOS included):", "",
                  "| Round | Samples | Tokens | Missing EOS | Comparisons (joint / conditional) | Judge questions | "
                  "Decisive labels | Steps |", "|---|---|---|---|---|---|---|---|"]
        for c in run["costs"]:
            lines.append(f"| {c['round']} | {_n(_mean(c['samples']))} | {_n(_mean(c['tokens_generated']))} | "
                         f"{_n(_mean(c['missing_eos']))} | {_n(_mean(c['comparisons']['joint']))} / "
                         f"{_n(_mean(c['comparisons']['conditional']))} | {_n(_mean(c['judge_questions']))} | "
                         f"{_n(_mean(c['decisive']))} | {_n(_mean(c['train_steps']))} |")
        seconds = result.get("seconds", {}).get(name)
        if seconds:
            total = seconds["total"] or 1.0
            lines += ["", f"Wall time of a round (mean over rounds and seeds): {seconds['total']:.1f} s -- "
                      + ", ".join(f"{stage} {seconds[stage]:.1f} s ({100 * seconds[stage] / total:.0f}%)"
                                  for stage in STAGES)
                      + (f"; evaluating a round's policy for the curve (generate + judge against gold, outside the "
                         f"loop) {seconds[key]:.1f} s" if (key := "evaluating a round's policy") in seconds else "")
                      + "."]
        lines.append("")
    if result["offline"]:
        lines += ["Offline references (trained once on the pool's responses, not on the policy's samples):", ""]
        for entry in result["offline"].values():
            lines.append(f"- {entry['label']} ({entry['data']}, {entry['rows']} decisive labels, "
                         f"{_n(entry['judge_questions'])} judge questions, {'/'.join(map(str, entry['steps']))} "
                         f"steps): {entry['average']:.1f} [{entry['ci95'][0]:.1f}, {entry['ci95'][1]:.1f}]; per seed "
                         + ", ".join(f"{v:.1f}" for v in entry["per_seed"]) + ".")
        lines.append("")
    for comparison in result["comparisons"]:
        label = {name: run["label"] for name, run in result["runs"].items()}
        a, b = label[comparison["joint"]], label[comparison["conditional"]]
        lines += [f"{a} - {b} after the same round (the same judge questions and steps when both ask as many per "
                  "round), paired:", "", "| Round | Samples | Judge questions | Difference [95% CI] | Per seed |",
                  "|---|---|---|---|---|"]
        for s in comparison["same_round"]:
            lines.append(f"| {s['round']} | {_n(s['samples'][0])} / {_n(s['samples'][1])} | "
                         f"{_n(s['judge_questions'][0])} / {_n(s['judge_questions'][1])} | {_d(s['difference'])} | "
                         + ", ".join(_d(d) for d in s["difference"]["per_seed"]) + " |")
        if comparison["same_samples"]:
            lines += ["", f"{a} - {b} at the same number of generated samples (rounds {a} / {b}; {b} has trained "
                      "fewer steps there):", "", "| Samples | Rounds | Difference [95% CI] | Per seed |",
                      "|---|---|---|---|"]
            for s in comparison["same_samples"]:
                lines.append(f"| {_n(s['samples'])} | {s['rounds'][0]} / {s['rounds'][1]} | {_d(s['difference'])} | "
                             + ", ".join(_d(d) for d in s["difference"]["per_seed"]) + " |")
        lines.append("")
    lines.append(f"Seeds: {', '.join(map(str, seeds))}. Plot: online_curves.png.")
    return lines


def online_plot(result: dict[str, Any], out: Path) -> Path:
    """online_curves.png: win-rate by samples generated and by judge questions, one line per online run (95%
    intervals), the offline references as dashed lines (their responses are the pool's, not generated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, key, title in ((axes[0], "samples", "samples generated"), (axes[1], "judge_questions",
                                                                         "judge questions")):
        for index, run in enumerate(result["runs"].values()):
            curve = run["curve"]
            axis.errorbar([p[key] for p in curve], [p["average"] for p in curve],
                          yerr=[[p["average"] - p["ci95"][0] for p in curve],
                                [p["ci95"][1] - p["average"] for p in curve]],
                          marker="o", capsize=3, color=f"C{index}", label=run["label"])
        for index, entry in enumerate(result["offline"].values(), start=len(result["runs"])):
            axis.axhline(entry["average"], color=f"C{index}", ls="--", lw=1,
                         label=f"{entry['label']} ({entry['steps'][0]} steps)")
        axis.set_xlabel(f"cumulative {title}")
        axis.set_title(f"Win-rate vs gold by {title}")
    axes[0].set_ylabel("average win-rate vs gold (%)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    path = out / "online_curves.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
