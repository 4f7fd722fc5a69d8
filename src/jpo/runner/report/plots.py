"""The report's PNG plots, from the results dict (results.py): win-rates with their intervals, training curves,
data scaling, the selection grid, and the online runs' win-rate by samples generated and by judge questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _errors(points: list[dict[str, Any]]) -> list[list[float]]:
    """Matplotlib's `yerr` for points with an `average` and its `ci95`: the distances below and above."""
    return [[p["average"] - p["ci95"][0] for p in points], [p["ci95"][1] - p["average"] for p in points]]


def _save(plt, figure, path: Path) -> Path:
    """Write a figure as a PNG (120 dpi) and close it."""
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """A logged value's (steps, values) in a trainer's log history."""
    points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
    return [p[0] for p in points], [p[1] for p in points]


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    """Every plot the results have data for, written into `out`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = result["rows"]
    figure, axis = plt.subplots(figsize=(8, 4))
    axis.bar(range(len(rows)), [r["average"] for r in rows], yerr=_errors(rows), capsize=4, color="#4c72b0")
    axis.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=20, ha="right")
    axis.set_ylabel("win-rate vs gold (%)")
    axis.axhline(50, color="gray", lw=0.8, ls="--")
    axis.set_title("Average win-rate over temperatures, 95% bootstrap intervals")
    written.append(_save(plt, figure, out / "winrate.png"))

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
        written.append(_save(plt, figure, out / f"training_{name}.png"))

    if result["scaling"]:
        figure, axis = plt.subplots(figsize=(6, 4))
        points = result["scaling"]
        axis.errorbar([r["rows"] for r in points], [r["average"] for r in points],
                      yerr=_errors(points),
                      marker="o", capsize=4)
        axis.set_xlabel("joint comparisons (D_H rows trained on)")
        axis.set_ylabel("average win-rate vs gold (%)")
        axis.set_title("Data scaling on D_H")
        written.append(_save(plt, figure, out / "scaling.png"))

    if result.get("selection"):
        figure, axis = plt.subplots(figsize=(6, 4))
        points = result["selection"]["points"]
        for selector in dict.fromkeys(p["selector"] for p in points):
            mine = sorted((p for p in points if p["selector"] == selector), key=lambda p: p["budget"])
            axis.errorbar([p["budget"] for p in mine], [p["average"] for p in mine],
                          yerr=_errors(mine),
                          marker="o", capsize=3, label=selector, alpha=0.85)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("labelled joint comparisons")
        axis.set_ylabel("average win-rate vs gold (%)")
        axis.set_title(f"Selectors, {result['selection']['max_steps']} training steps per point")
        axis.legend(fontsize=8)
        written.append(_save(plt, figure, out / "selection.png"))

    if result.get("online") and any(len(run["curve"]) > 1 for run in result["online"]["runs"].values()):
        written.append(online_plot(result["online"], out))
    return written


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
                          yerr=_errors(curve),
                          marker="o", capsize=3, color=f"C{index}", label=run["label"])
        for index, entry in enumerate(result["offline"].values(), start=len(result["runs"])):
            axis.axhline(entry["average"], color=f"C{index}", ls="--", lw=1,
                         label=f"{entry['label']} ({entry['steps'][0]} steps)")
        axis.set_xlabel(f"cumulative {title}")
        axis.set_title(f"Win-rate vs gold by {title}")
    axes[0].set_ylabel("average win-rate vs gold (%)")
    axes[1].legend(fontsize=8)
    return _save(plt, figure, out / "online_curves.png")
