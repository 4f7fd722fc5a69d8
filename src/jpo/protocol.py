"""The paper's protocol (§5.1) as library functions on plain rows; `jpo run` reads its files and calls them.

    pool_items      the conditional comparisons, one per instruction, as items {id, prompt_a, response_a, ...}
    sft_instances   D_S: one random response per pool instruction, whatever its label (ties included)
    (judge)         D_C = the decisive conditional labels; D_H = D_S instances paired across instructions
                    (`jpo.data.pairs.build_pairs`), judged (`jpo.feedback.label_items`), decisive ones kept
                    (`jpo.data.items_to_preferences`)
    training_set    what one run trains on: D_C, D_H, D_C ∪ D_H, the 50:50 mix of |D_C| rows, a nested fraction of
                    D_C, a subset of D_H, or the equal-budget control: D_C with as many fresh conditional labels as
                    D_H has rows (`fresh="size_of_joint"`)

Every random choice takes a seed, so that a run's data is the same wherever it is rebuilt.
"""

from __future__ import annotations

import random
from typing import Any

from jpo.data import item_id
from jpo.data.formats import text_of
from jpo.data.pairs import PairReport, instances_from_preferences, mix
from jpo.errors import JpoError

Rows = list[dict[str, Any]]


def pool_items(rows: Rows, limit: int | None, report: dict[str, Any], exclude: set[str] | None = None) -> Rows:
    """Conditional comparisons as items, one per instruction (Table 4 counts instructions after removing duplicates;
    later comparisons of an instruction are counted in `report["left_out"]` and left out), at most `limit`
    instructions, none of the instructions in `exclude` (a fresh slice leaves out D_C's pool). An item carries the
    source's label (`a`: the first side chosen) where it has one; the synthetic pool's rows have none."""
    seen: set[str] = set()
    excluded = 0
    items = []
    for row in rows:
        if "response_a" in row:  # unlabelled comparisons (the synthetic pool)
            prompt, first, second, label = row["prompt"], row["response_a"], row["response_b"], None
        else:
            if text_of(row["prompt_chosen"]) != text_of(row["prompt_rejected"]):
                report["left_out"]["a joint comparison in the conditional data"] = \
                    report["left_out"].get("a joint comparison in the conditional data", 0) + 1
                continue
            prompt, first, second, label = row["prompt_chosen"], row["chosen"], row["rejected"], "a"
        key = text_of(prompt)
        if exclude is not None and key in exclude:
            excluded += 1
            continue
        if key in seen:
            report["left_out"]["a later comparison of the same instruction"] = \
                report["left_out"].get("a later comparison of the same instruction", 0) + 1
            continue
        seen.add(key)
        item = {"id": row.get("id") or item_id(prompt, first, second), "prompt_a": prompt, "response_a": first,
                "prompt_b": prompt, "response_b": second}
        items.append({**item, "label": label} if label else item)
    if excluded:
        report["left_out"]["an instruction of the conditional pool"] = excluded
    if limit is not None and len(items) > limit:
        report["left_out"][f"beyond limit {limit} instructions"] = len(items) - limit
        items = items[:limit]
    report["kept"] = len(items)
    return items


def sft_instances(pool: Rows, seed: int, report: PairReport) -> Rows:
    """D_S: one random response (drawn with `seed`) per pool instruction, whatever its label, as `{prompt,
    response}` rows."""
    return [{"prompt": r["prompt"], "response": r["response"]} for r in instances_from_preferences(pool, seed, report)]


def training_set(parts: list[str], d_c: Rows, d_h: Rows, d_f: Rows | None = None, *, seed: int,
                 subset: float | None = None, joint_size: int | None = None,
                 fresh: int | str | None = None) -> tuple[Rows, dict[str, int]]:
    """The rows one run trains on and their count per origin, each row tagged with its origin (`data`).

    `parts`: [conditional] (D_C), [joint] (D_H), both (D_C ∪ D_H), [mix] (50:50 of D_C and D_H, |D_C| rows), or
    fresh with or without conditional (D_C and/or the first `fresh` decisive rows of D_F; `fresh` is a number of
    rows, or "size_of_joint" / "size_of_conditional": as many as D_H / D_C has -- the equal-budget control).
    Where D_F has fewer rows than wanted, all of them, and the counts say so (D_F, D_F_wanted).
    `subset`: a nested random fraction of D_C (every fraction a prefix of one permutation drawn with `seed`, kept
    in D_C's order); `joint_size`: a random subset of D_H of that size.
    """
    counts: dict[str, int] = {}
    picked: Rows = []
    if fresh is not None:
        wanted = {"size_of_joint": len(d_h), "size_of_conditional": len(d_c)}.get(fresh, fresh)
        picked = (d_f or [])[:wanted]
        counts.update(D_F=len(picked), D_F_wanted=wanted)
    if subset is not None:  # nested: every fraction is a prefix of the same permutation of D_C
        order = list(range(len(d_c)))
        random.Random(seed).shuffle(order)
        keep = sorted(order[:round(subset * len(d_c))])
        d_c = [d_c[i] for i in keep]
    if joint_size is not None:
        d_h = random.Random(seed).sample(d_h, min(joint_size, len(d_h)))
    if "fresh" in parts:
        rows = [{**row, "data": "D_C"} for row in d_c] if "conditional" in parts else []
        rows += [{**row, "data": "D_F"} for row in picked]
        random.Random(seed).shuffle(rows)
        return rows, {"D_C": len(rows) - len(picked), **counts}
    if parts == ["mix"]:
        rows, report = mix(d_c, d_h, total=len(d_c), joint_fraction=0.5, seed=seed)
        return rows, {"D_C": report["D_C"], "D_H": report["D_H"]}
    by_name = {"conditional": d_c, "joint": d_h}
    if set(parts) == {"conditional", "joint"}:
        return mix(d_c, d_h, seed=seed)[0], {"D_C": len(d_c), "D_H": len(d_h)}
    if len(parts) != 1 or parts[0] not in by_name:
        raise JpoError(f"data {parts}: use conditional, joint, both, mix, or fresh with conditional")
    return by_name[parts[0]], {"D_C" if parts == ["conditional"] else "D_H": len(by_name[parts[0]])}
