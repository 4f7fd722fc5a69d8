"""The online section's numbers (issue 22): what each online run cost per round, its win-rate against gold as a
function of generated samples and of judge questions, and the comparison of online JPO with online DPO and with the
offline runs it is paired with in `evaluate.paired` (its text: online_markdown.py; its plot: plots.py).

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
from typing import Any

from jpo.data import read_jsonl
from jpo.runner.report.statistics import pair_names, seed_rate, summarise

COSTS = ("samples", "judge_questions", "decisive", "tokens_generated", "train_steps")


STAGES = ("generation", "judging", "training")


def mean(values: list[float]) -> float:
    """The mean to one decimal (0.0 for none): a cost or a time over seeds and rounds."""
    return round(sum(values) / len(values), 1) if values else 0.0


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
            total = {key: mean([sum(logs[seed][i][key] for i in range(r)) for seed in seeds]) for key in COSTS}
            row = summarise(f"{run.shown}, round {r}", run.data_label, [s for seed in seeds for s in rows[seed]],
                            temperatures)
            curve.append({"round": r, **total, "average": row["average"], "ci95": row["ci95"],
                          "per_seed": [seed_rate(rows[seed]) for seed in seeds]})
        out["runs"][run.name] = {
            "label": run.shown, "mode": run.mode, "rounds": rounds, "prompts_per_round": run.prompts_per_round,
            "samples_per_prompt": logs[seeds[0]][0]["samples"] // max(1, logs[seeds[0]][0]["prompts"]),
            "train_on": run.train_on, "reference": run.ref_model,
            "steps": [sum(entry["train_steps"] for entry in logs[seed][:rounds]) for seed in seeds],
            "costs": costs, "curve": curve}
        out["seconds"][run.name] = {stage: mean([entry["seconds"][stage] for seed in seeds
                                                  for entry in logs[seed][:rounds]]) for stage in (*STAGES, "total")}
        checkpoint_seconds = [u.manifest()["seconds"] + u.deps[0].manifest()["seconds"]
                              for (name, _, _), u in units.checkpoints.items() if name == run.name]
        if checkpoint_seconds:  # generating from and judging a round's policy: the curve's cost, not the loop's
            out["seconds"][run.name]["evaluating a round's policy"] = mean(checkpoint_seconds)
    out["offline"] = _offline(recipe, runs, trained, feedback, sizes, evaluations, seeds, temperatures)
    for a in (run for run in runs if run.mode == "jpo"):
        for b in (run for run in runs if run.mode == "dpo"):
            if len(out["runs"][a.name]["curve"]) > 1 and len(out["runs"][b.name]["curve"]) > 1:
                out["comparisons"].append(_compare(out["runs"], points, a.name, b.name, seeds))
    return out


def _offline(recipe, runs, trained, feedback, sizes, evaluations, seeds, temperatures) -> dict[str, Any]:
    """The offline runs `evaluate.paired` compares with an online run: win-rate, steps per seed, labels, judge
    questions (both orders of each judged comparison of the data it trains on)."""
    online = {run.name for run in runs}
    named = {r.name: r for r in recipe.runs()}
    wanted = []
    for pair in recipe.evaluate.paired:
        first, second = pair_names(pair)
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
                     "per_seed": [seed_rate(rows[seed]) for seed in seeds]}
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
