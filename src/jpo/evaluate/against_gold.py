"""Judging generations against gold references and summarising them as win-rates per temperature.

Generations meet their references by id -- never by line order, which silently pairs the wrong texts as soon as a
file is filtered, shuffled or resumed. Each (generation, reference) is a conditional comparison item with the
generation as `a`; the shared runner asks both orders, so a judge's position bias becomes ties, not wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.errors import DataError
from jpo.evaluate.winrate import WinRate, outcome_of_label, win_rate
from jpo.feedback.base import Judge
from jpo.feedback.runner import JudgeRun, ajudge, labeled_rows
from jpo.feedback.store import VerdictStore


@dataclass
class Evaluation:
    """Win-rates per temperature (None when the generations carry no temperature) and over all of them."""

    per_temperature: dict[float | None, WinRate]
    average: WinRate
    rows: list[dict[str, Any]] = field(repr=False)
    judge_run: JudgeRun = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge_run.judge_id,
            "judge_template": self.judge_run.template_version,
            "per_temperature": [{"temperature": t, **w.as_dict()} for t, w in self.per_temperature.items()],
            "average": self.average.as_dict(),
            "judging": {"asked": self.judge_run.asked, "reused": self.judge_run.reused, "cost": self.judge_run.cost},
        }

    def write(self, folder: str | Path, *, rows: bool = True) -> list[Path]:
        """winrate.json, winrate.md and (with `rows`) labeled.jsonl in `folder` (made); the paths written. What
        `jpo evaluate` writes and a recipe's evaluate unit writes."""
        from jpo.data.io import write_jsonl

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "winrate.md", folder / "winrate.json"]
        written[1].write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        written[0].write_text(self.markdown() + "\n", encoding="utf-8")
        if rows:
            write_jsonl(folder / "labeled.jsonl", self.rows)
            written.append(folder / "labeled.jsonl")
        return written

    def markdown(self) -> str:
        lines = [f"Win-rate against gold (judge `{self.judge_run.judge_id}`; win 1, tie 0.5, loss 0; 95% bootstrap "
                 "interval over prompts)", "",
                 "| temperature | win-rate | 95% CI | wins | ties | losses | invalid | n |",
                 "|---|---|---|---|---|---|---|---|"]
        named = [(("n/a" if t is None else f"{t:g}"), w) for t, w in self.per_temperature.items()]
        if len(self.per_temperature) > 1:
            named.append(("**average**", self.average))
        for name, w in named:
            rate, interval = ((f"{100 * w.estimate:.1f}%", f"[{100 * w.low:.1f}, {100 * w.high:.1f}]") if w.n
                              else ("n/a", "n/a"))  # every verdict invalid: there is no estimate to show
            lines.append(f"| {name} | {rate} | {interval} | {w.wins} | {w.ties} | {w.losses} | {w.invalid} | {w.n} |")
        return "\n".join(lines)


def match_by_text(generations: Sequence[dict[str, Any]], references: Sequence[dict[str, Any]],
                  rows: Sequence[int]) -> dict[int, dict[str, Any]]:
    """For the generations at `rows` (whose ids no reference has): the reference whose prompt text the generation's
    prompt contains -- equal, or wrapped in a template (the JPO authors' released outputs carry theirs:
    "### Instructions: ...\n\n### Response:"). The longest such prompt wins; two of that length with different
    ids, or none, leave the generation unmatched. Conversations are compared as their rendered text."""
    from jpo.feedback.templates import render_text

    candidates = [(render_text(r["prompt"]).strip(), r) for r in references
                  if r.get("prompt") is not None and r.get("reference") is not None]
    candidates = [(text, r) for text, r in candidates if text]
    exact: dict[str, list[dict[str, Any]]] = {}
    for text, r in candidates:
        exact.setdefault(text, []).append(r)
    matched = {}
    for index in rows:
        shown = render_text(generations[index]["prompt"])
        same = exact.get(shown.strip(), [])
        # equal text first (a dictionary look-up); the scan over every reference only for templated prompts
        found = [(len(shown.strip()), r) for r in same] or [(len(text), r) for text, r in candidates if text in shown]
        if not found:
            continue
        longest = max(length for length, _ in found)
        best = {str(r["id"]): r for length, r in found if length == longest}
        if len(best) == 1:
            matched[index] = next(iter(best.values()))
    return matched


def comparison_items(generations: Sequence[dict[str, Any]], references: Sequence[dict[str, Any]], *,
                     generations_path: str | None = None) -> list[dict[str, Any]]:
    """One conditional item per generation: (prompt, generation) as `a`, (prompt, reference) as `b`.

    Generations meet their references by id; a generation whose id no reference has is matched by its prompt text
    (`match_by_text`; its item says `"matched_by": "prompt text"`). The prompt shown to the judge is the reference
    file's when it has one (the clean instruction), else the generation's. A generation matched neither way is an
    error naming its row."""
    by_id = {str(r["id"]): r for r in references}
    unknown = [i for i, row in enumerate(generations) if str(row["id"]) not in by_id]
    by_text = match_by_text(generations, references, unknown) if unknown else {}
    items, missing = [], []
    for index, row in enumerate(generations):
        reference = by_text.get(index) or by_id.get(str(row["id"]))
        if reference is None or reference.get("reference") is None:
            missing.append((index, row["id"]))
            continue
        prompt = reference.get("prompt", row["prompt"])
        prompt_id = str(reference["id"])
        temperature, seed = row.get("temperature"), row.get("seed")
        items.append({"id": f"{prompt_id}|t={temperature}|s={seed}", "prompt_id": prompt_id,
                      "temperature": temperature, "seed": seed, "prompt_a": prompt, "response_a": row["response"],
                      "prompt_b": prompt, "response_b": reference["reference"],
                      **({"matched_by": "prompt text"} if index in by_text else {})})
    if missing:
        index, rid = missing[0]
        raise DataError(f"id {rid!r} has no reference ({len(missing)} of {len(generations)} generations unmatched; "
                        "generations join references by id, else by a reference prompt their prompt contains)",
                        path=generations_path, row=index + 1, field="id")
    return items


async def aevaluate(generations: Sequence[dict[str, Any]], references: Sequence[dict[str, Any]], judge: Judge, *,
                    store: VerdictStore | None = None, progress: bool = True, n_resamples: int = 10_000,
                    generations_path: str | None = None) -> Evaluation:
    items = comparison_items(generations, references, generations_path=generations_path)
    run = await ajudge(items, judge, store=store, progress=progress, description="judging vs gold")
    rows = labeled_rows(items, run)
    outcomes = [outcome_of_label(row["label"]) for row in rows]
    groups = [row["prompt_id"] for row in rows]
    per_temperature = {}
    for temperature in dict.fromkeys(row["temperature"] for row in rows):
        chosen = [i for i, row in enumerate(rows) if row["temperature"] == temperature]
        per_temperature[temperature] = win_rate([outcomes[i] for i in chosen], [groups[i] for i in chosen],
                                                n_resamples=n_resamples)
    return Evaluation(per_temperature, win_rate(outcomes, groups, n_resamples=n_resamples), rows, run)


def evaluate_generations(generations: Sequence[dict[str, Any]], references: Sequence[dict[str, Any]], judge: Judge,
                         *, store: VerdictStore | None = None, progress: bool = True,
                         n_resamples: int = 10_000) -> Evaluation:
    """Judge each generation against its reference (joined by id) and compute win-rates per temperature and overall
    (the overall figure pools all temperatures; with the same prompts at each it is their mean)."""
    import asyncio

    return asyncio.run(aevaluate(generations, references, judge, store=store, progress=progress,
                                 n_resamples=n_resamples))


def load_gold(source: str) -> list[dict[str, Any]]:
    """Gold references: {id, reference} rows, or prompt rows with a gold response (the authors' test files,
    AlpacaEval, ...). DataError naming the source when it has neither."""
    from jpo.data import load_prompts, load_references

    try:
        return load_references(source)
    except DataError as as_references:
        try:
            rows = load_prompts(source)
        except DataError:
            raise as_references from None
    if not any("reference" in row for row in rows):
        raise DataError("no gold responses: expected {id, reference} or prompts with a reference column", path=source)
    return rows
