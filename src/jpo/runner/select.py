"""The select stage: joint comparisons chosen by a selector (`jpo.selection`) among the D_S instances, after SFT
because the margin selectors score with the SFT model, then labelled by the recipe's annotator. One unit serves
`pairs: {budget: N}` (the run's D_H) and one per seed and selector serves `train.selection` (its every budget).

Each point is its own labelling campaign of `budget` labels; the budgets of a unit share one verdict store, so a
comparison two budgets both chose is asked once. Besides the annotator, the `judge.agreement` judges label the same
picks, which is how the report tells how good each selector's labels are, not only how many are decisive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jpo.data import items_to_preferences, read_jsonl, write_jsonl
from jpo.errors import JpoError
from jpo.runner.recipe import Recipe, point_name


def select_points(unit, recipe: Recipe, points: list[tuple[str, int]], seed: int, data_dir: Path,
                  sft_dir: Path, train_config: dict[str, Any] | None = None,
                  rounds: int | None = None) -> dict[str, Any]:
    """`<selector>-<budget>/items_labeled.jsonl` and `D_H.jsonl` per point; the result holds each point's account:
    candidates, labels, decisive rows, instructions covered and agreement with the agreement judges. An
    `active-<selector>` point buys its budget in `rounds` batches, training its intermediate models from the SFT model
    with `train_config` (the settings of the run the labels are for) under `<point>/rounds/`."""
    from jpo.feedback import make_judge
    from jpo.feedback.runner import label_items
    from jpo.feedback.store import VerdictStore
    from jpo.runner.settings import seeded
    from jpo.runner.stages import templated
    from jpo.selection import parse_pool, select, select_active
    from jpo.selection.scores import instance_rewards
    from jpo.selection.selectors import MARGIN_SELECTORS, scoring_note

    pairs = recipe.pairs
    instances = read_jsonl(data_dir / "sft.jsonl")
    max_length = recipe.train.common.get("max_length", 1024)
    rewards, scoring = None, {}
    if any(selector in MARGIN_SELECTORS for selector, _ in points):  # the SFT model saw templated instructions
        rewards = instance_rewards(templated(instances, recipe.prompt_template, "sft"), str(sft_dir),
                                   max_length=max_length, stats=scoring)
    options = recipe.judge.options()
    cheap = [make_judge(spec, options) for spec in pairs.judges]
    annotator = make_judge(recipe.judge.spec, options)
    others = {name: make_judge(spec, options) for name, spec in recipe.judge.agreement.items()}
    accounts: dict[str, Any] = {}
    section = "pairs" if unit.name == "pairs" else "train.selection"
    with VerdictStore(unit.folder / "verdicts.sqlite") as store:
        for selector, budget in points:
            point = point_name(selector, budget)
            try:
                if selector.startswith("active-"):
                    active = select_active(instances, budget, judge=annotator, reference=str(sft_dir),
                                           train_config=seeded(train_config or {}, seed),
                                           output_dir=str(unit.folder / point / "rounds"), rounds=rounds,
                                           selector=selector.removeprefix("active-"), pool=parse_pool(pairs.pool),
                                           seed=seed, store=store, max_length=max_length)
                    own, candidates, summary = active.rows, active.reports[0].candidates, active.summary()
                    items = [{k: row[k] for k in ("id", "prompt_a", "response_a", "prompt_b", "response_b")}
                             for row in own]
                else:
                    items, report = select(instances, selector, budget, pool=parse_pool(pairs.pool), seed=seed,
                                           rewards=rewards, judges=cheap if selector == "disagreement" else ())
                    if selector in MARGIN_SELECTORS:
                        report.notes.append(scoring_note(scoring))
                    own, candidates, summary = None, report.candidates, report.summary()
                # the annotator's labels (for an active point: its loop's, reused from the store) and agreement
                done = label_items(items, annotator, store=store, others=others, what=point)
            except JpoError as error:  # found only now that D_S is known: a budget larger than the pool, ...
                raise JpoError(f"{recipe.path}: {section}: {point}: {error}") from None
            rows = done.rows if own is None else own  # an active point's rows also say their round
            d_h, counts = items_to_preferences(rows)
            write_jsonl(unit.folder / point / "items_labeled.jsonl", rows)
            write_jsonl(unit.folder / point / "D_H.jsonl", d_h)
            accounts[point] = {"selector": selector, "budget": budget, "selection": summary,
                               "candidates": candidates, "labelled": len(rows), "labels": counts,
                               "D_H": len(d_h), "instructions": len({i["prompt_a"] for i in items}
                                                                    | {i["prompt_b"] for i in items}),
                               "agreement": done.agreement}
    (unit.folder / "selection.json").write_text(json.dumps(accounts, indent=1) + "\n", encoding="utf-8")
    shown = ", ".join(f"{p} {a['D_H']}/{a['labelled']}" for p, a in accounts.items())
    return {"points": accounts, "seed": seed, "line": f"decisive of labelled: {shown}"}
