"""The demo's data splits, built from one seed: a pretraining corpus, the annotation pool (two responses per
instruction, from which the paper's protocol draws D_S, D_C and D_H), and validation / test prompts with gold
references.

The pretraining corpus and the pool hold the same kind of text (`world_response`: mixed quality, instruction-blind
habits), as a base LLM's corpus holds the kind of answers its preference data later compares. Instructions never
repeat across splits, so a test prompt is never one the model was trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from jpo.data import item_id
from jpo.tasks.families import make_instance
from jpo.tasks.responses import annotation_pair, gold, world_response


@dataclass(frozen=True)
class Sizes:
    """Instructions per split. `pretrain`: documents (instruction + response) of the pretraining corpus; `fresh`:
    more pool-format comparisons (instructions of no other split), a second conditional source of the same kind as
    `pool` -- what "more conditional labels" means at an equal label budget."""

    pretrain: int = 20000
    pool: int = 2000
    validation: int = 200
    test: int = 500
    fresh: int = 0


def _unique_prompts(n: int, rng: random.Random, seen: set[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    while len(out) < n:
        instance = make_instance(rng)
        if instance.prompt not in seen:
            seen.add(instance.prompt)
            out.append((instance.prompt, instance.family))
    return out


def build_splits(sizes: Sizes, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """{"pretrain": [{prompt, response, family}], "pool" / "fresh": [{id, prompt, response_a, response_b, family}],
    "validation" / "test": [{id, prompt, reference, family}]}."""
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, list[dict[str, Any]]] = {"pretrain": [], "pool": [], "validation": [], "test": [],
                                               "fresh": []}
    splits["pool"] = _comparisons(sizes.pool, rng, seen)
    for split in ("validation", "test"):
        for prompt, family in _unique_prompts(getattr(sizes, split), rng, seen):
            splits[split].append({"id": item_id(prompt), "prompt": prompt, "reference": gold(prompt, rng),
                                  "family": family})
    # Drawn last, so a larger corpus leaves the pool and the evaluation prompts as they are.
    for prompt, family in _unique_prompts(sizes.pretrain, rng, seen):
        splits["pretrain"].append({"prompt": prompt, "response": world_response(prompt, rng), "family": family})
    # Its own random stream, drawn after everything else: adding it changes no other split, and its rows depend on
    # the other splits only through the instructions it must avoid.
    splits["fresh"] = _comparisons(sizes.fresh, random.Random(f"{seed}:fresh"), seen)
    return splits


def _comparisons(n: int, rng: random.Random, seen: set[str]) -> list[dict[str, Any]]:
    """n pool-format rows: two independently drawn world responses to each of n new instructions."""
    rows = []
    for prompt, family in _unique_prompts(n, rng, seen):
        response_a, response_b = annotation_pair(prompt, rng)
        rows.append({"id": item_id(prompt, response_a, response_b), "prompt": prompt, "response_a": response_a,
                     "response_b": response_b, "family": family})
    return rows


def corpus(splits: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every text the tokenizer should know: instructions and all responses."""
    texts: list[str] = []
    for rows in splits.values():
        for row in rows:
            texts.extend(str(row[key]) for key in ("prompt", "response", "response_a", "response_b", "reference")
                         if key in row)
    return texts
