"""The report unit's body: the results dict assembled from the units' files (scored generations, trainer states,
the feedback's counts, the online loop's logs) and written out: results.md (markdown.py), results.json (the numbers
a rerun reproduces byte for byte), details.json, interplay.json, provenance.json and the plots (plots.py).

The numbers themselves are computed in statistics.py and online.py; the two measurements that ask a judge again (the
joint ranking, the habit-stripped generations) are stage bodies in runner/stages.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jpo.data import read_jsonl
from jpo.runner.recipe import Recipe
from jpo.runner.report.markdown import markdown
from jpo.runner.report.online import online_result, public_online
from jpo.runner.report.plots import plots
from jpo.runner.report.statistics import (
    equal_budget_result,
    finding,
    pair_names,
    per_seed_result,
    selection_result,
    sensitivity_result,
    summarise,
)
from jpo.runner.stages import habit_stripped, joint_ranking
from jpo.runner.units import Unit


def write_report(recipe: Recipe, out: Path, feedback: Unit, sft: Unit | None, trained: dict[tuple[str, int], Unit],
                 evaluations: dict[tuple[str, int], Unit], data_dir: Path,
                 selects: dict[str, Unit] | None = None, online=None) -> dict[str, Any]:
    """The report of a planned run (plan.py's report unit) into `out`: the units it reads by stage, `evaluations`
    keyed (model name, seed); `online`: runner.online.OnlineUnits, the online runs' train units and their earlier
    rounds' evaluations. Returns the unit's result (the models reported, the line printed)."""
    from jpo.evaluate import paired_difference

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
        first, second = pair_names(pair)
        paired[f"{shown[first]} - {shown[second]}"] = paired_difference(scored[first], scored[second])
    findings = []
    for pair, paper in recipe.paper.findings.items():
        first, second = pair_names(pair)
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


def _steps(trained: dict[tuple[str, int], Unit], seed: int) -> dict[str, int]:
    """Each run's optimizer steps at `seed` (its trainer_state.json), where it has one."""
    steps = {}
    for (name, at), unit in trained.items():
        state = unit.folder / "model" / "trainer_state.json"
        if at == seed and state.exists():
            steps[name] = json.loads(state.read_text())["global_step"]
    return steps


def public_results(recipe: Recipe, result: dict[str, Any]) -> dict[str, Any]:
    """results.json: the numbers, and only what a rerun of the same recipe and seeds reproduces byte for byte (no
    paths, times or machine; those are in provenance.json and details.json)."""
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
    """Every file of the report, from the results dict; prints results.md. Returns results.md, results.json and the
    plots' paths."""
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


def checkout_commit() -> str | None:
    """The commit of jpo's checkout (`git describe --always --dirty --abbrev=12`), None outside a git checkout: what
    every generated number records (a report's provenance, the README's blocks)."""
    import subprocess

    try:  # Popen, not run: a test's stand-in for a training subprocess.run stays so
        with subprocess.Popen(["git", "describe", "--always", "--dirty", "--abbrev=12"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parent) as process:
            out = process.communicate()[0].strip()
    except OSError:
        return None
    return out if process.returncode == 0 else None


def provenance(units: list[Unit]) -> dict[str, Any]:
    """Where and how a report was made, kept out of results.json so that two runs of one recipe write the same
    results.json: the command line, the commit, the CPU, and each stage's wall-clock seconds (summed over its
    units, from their manifests)."""
    import shlex
    import sys

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
    return {"command": command, "commit": checkout_commit(),
            "cpu": f"{cpu} ({cores} logical cores)" if cores else cpu, "seconds": seconds,
            "total_seconds": round(sum(seconds.values()), 1)}
