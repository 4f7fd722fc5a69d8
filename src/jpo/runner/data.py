"""The data stage: read each part of a recipe's data, and build the paper's D_S and the joint comparisons.

- The *pool* is the conditional comparisons, one per instruction (Table 4 counts instructions after removing
  duplicates; later comparisons of an instruction are counted and left out), as items `{id, prompt_a, response_a,
  prompt_b, response_b}` carrying the source's label (`a`: the first side chosen) where it has one
  (`jpo.protocol.pool_items`).
- D_S is one random response per pool instruction whatever its label, ties included (`sft: {from: conditional}`,
  `jpo.protocol.sft_instances`), or a separate instruction-response source (`sft: {from: sft}`).
- Joint comparisons pair D_S instances across instructions (to be judged), or, for `strategy: proxy`, the chosen
  side of one pool row against the rejected side of another (labelled by construction).

`synthetic` is the demo's task as a named source: its splits (pretrain, pool, validation, test, fresh: more
pool-format comparisons) are built together from the recipe's seed, each part's `limit` being that split's size, so
instructions never repeat across splits.
The pretraining documents (data.pretrain) are written as pretrain.jsonl for a built model's pretraining stage.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from jpo.data import items_to_preferences, write_jsonl
from jpo.data.formats import text_of
from jpo.data.pairs import LABELLED, PairReport, build_pairs, instances_from_sft
from jpo.errors import JpoError
from jpo.protocol import pool_items, sft_instances
from jpo.runner.recipe import DataPart, Recipe

SYNTHETIC = "synthetic"
SYNTHETIC_SPLITS = {"pretrain": "sft", "pool": "preference", "validation": "prompts", "test": "prompts",
                    "fresh": "preference"}
PART_KINDS = {"eval": "prompts", "validation": "prompts", "sft": "sft", "conditional": "preference",
              "joint": "preference", "pretrain": "sft", "fresh": "preference"}


def synthetic_splits(recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
    """Every synthetic split the recipe reads, built in one call (the sizes are the parts' limits)."""
    from jpo.tasks import Sizes, build_splits

    sizes = dict.fromkeys(SYNTHETIC_SPLITS, 0)
    for name in PART_KINDS:
        part = getattr(recipe.data, name)
        if part is not None and part.source == SYNTHETIC:
            if part.split not in SYNTHETIC_SPLITS:
                raise JpoError(f"{recipe.path}: data.{name}: synthetic has splits {', '.join(SYNTHETIC_SPLITS)}")
            if not part.limit:
                raise JpoError(f"{recipe.path}: data.{name}: a synthetic split needs its size as `limit`")
            sizes[part.split] = part.limit
    return build_splits(Sizes(**sizes), recipe.seed)


def read_part(recipe: Recipe, name: str, part: DataPart, source_paths: dict[str, str],
              synthetic: dict[str, list[dict[str, Any]]] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Canonical rows of one data part and the report of what was read and left out. The pool part is read
    whole: its limit counts instructions, applied after one comparison per instruction is kept."""
    kind = part.kind or PART_KINDS[name]
    if part.source == SYNTHETIC:
        rows = synthetic[part.split]
        return rows, {"name": SYNTHETIC, "split": part.split, "kind": SYNTHETIC_SPLITS[part.split],
                      "origin": f"jpo.tasks.build_splits(seed={recipe.seed})", "read": len(rows), "kept": len(rows),
                      "duplicates": 0, "left_out": {}}
    from jpo.data.sources import load_source

    path = part.path or source_paths.get(f"{part.source}:{kind}") or source_paths.get(part.source)
    limit = None if name in ("conditional", "fresh") else part.limit  # counted in instructions, by pool_items
    loaded = load_source(part.source, part.split, kind=kind, path=path, task=part.task, limit=limit)
    return loaded.rows, loaded.report.as_dict()


def prepare_data(recipe: Recipe, out: Path, source_paths: dict[str, str]) -> dict[str, Any]:
    """Write eval.jsonl (and validation.jsonl, pretrain.jsonl), pool.jsonl, sft.jsonl (D_S), items.jsonl (joint comparisons to
    judge) or joint.jsonl (ready-made D_H) into `out`; return the reports (the manifest's result)."""
    from jpo.data.sources import drop_overlap

    data = recipe.data
    synthetic = synthetic_splits(recipe) if any(
        p is not None and p.source == SYNTHETIC for p in (getattr(data, n) for n in PART_KINDS)) else None
    reports: dict[str, Any] = {}
    held_out: list[dict[str, Any]] = []
    loaded: dict[str, list[dict[str, Any]]] = {}
    for name in ("eval", "validation", "sft", "conditional", "fresh", "joint", "pretrain"):  # held-out prompts first
        part = getattr(data, name)
        if part is None:
            continue
        rows, report = read_part(recipe, name, part, source_paths, synthetic)
        kind = part.kind or PART_KINDS[name]
        if kind == "prompts":
            held_out += rows
        elif part.source != SYNTHETIC:  # synthetic splits never share an instruction
            rows, overlap = drop_overlap(rows, held_out, kind)
            if overlap:
                report["left_out"]["instruction is an evaluation prompt"] = overlap
                report["kept"] = len(rows)
        loaded[name] = rows
        reports[name] = report
    write_jsonl(out / "eval.jsonl", loaded["eval"])
    for name in ("validation", "pretrain"):
        if name in loaded:
            write_jsonl(out / f"{name}.jsonl", loaded[name])
    pool: list[dict[str, Any]] = []
    if "conditional" in loaded:
        pool = pool_items(loaded["conditional"], data.conditional.limit, reports["conditional"])
        write_jsonl(out / "pool.jsonl", pool)
    if "fresh" in loaded:  # after D_C's instructions, never one of them
        fresh = pool_items(loaded["fresh"], data.fresh.limit, reports["fresh"], {text_of(i["prompt_a"]) for i in pool})
        write_jsonl(out / "fresh.jsonl", fresh)
    if "joint" in loaded:
        write_jsonl(out / "joint.jsonl", loaded["joint"])

    d_s: list[dict[str, Any]] = []
    origin = recipe.sft.from_
    if origin != "none":
        report = PairReport()
        d_s = (sft_instances(pool, recipe.seed, report) if origin == "conditional"
               else [{"prompt": r["prompt"], "response": r["response"]} for r in instances_from_sft(loaded["sft"],
                                                                                                  report)])
        write_jsonl(out / "sft.jsonl", d_s)
        pool_prompts = {text_of(i["prompt_a"]) for i in pool}
        reports["D_S"] = {"from": origin, "rows": len(d_s), "pool_instructions": len(pool_prompts),
                          "from_pool_instructions": sum(text_of(r["prompt"]) in pool_prompts for r in d_s)}
    pairs = recipe.pairs
    if pairs is not None and not recipe.selecting():  # a selector chooses D_H after SFT (the select stage)
        report = PairReport()
        if pairs.from_ == "sft":
            rows, kind = d_s, "sft"
        else:
            rows, counts = items_to_preferences([i for i in pool if "label" in i])
            if not rows:
                raise JpoError(f"{recipe.path}: pairs.strategy proxy needs labelled conditional data; the pool has "
                               f"none ({counts})")
            kind = "preference"
        built = build_pairs(rows, kind=kind, strategy=pairs.strategy, pairs_per_instance=pairs.pairs_per_instance,
                            seed=recipe.seed, group=pairs.group_field, report=report)
        write_jsonl(out / ("joint.jsonl" if pairs.strategy in LABELLED else "items.jsonl"), built)
        reports["pairs"] = report.summary()
    labels = Counter(i.get("label", "unlabelled") for i in pool)
    counted = ", ".join(f"{label} {n}" for label, n in sorted(labels.items()))
    line = (f"pool {len(pool)} instructions ({counted}), D_S {len(d_s)} ({origin}), eval {len(loaded['eval'])}"
            + (f", fresh {reports['fresh']['kept']} instructions" if "fresh" in reports else "")
            + (f", pairs: {reports['pairs']}" if "pairs" in reports else ""))
    return {**reports, "line": line}
