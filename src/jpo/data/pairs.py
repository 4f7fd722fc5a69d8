"""Joint comparison pairs: (I_a, R_a) against (I_b, R_b) with *different* instructions, and the mixes D_M.

`build_pairs` is the one entry point (`jpo pairs` and `jpo run` both call it); it dispatches on the strategy.
Pairing follows the paper's section 5.1: every instance is compared with an instance of another instruction, chosen
by a seeded random derangement. With K pairs per instance we shuffle once and pair position i with position i + s
for the shifts s = 1..K: each shift is a derangement, every instance is `a` in exactly K items and `b` in K, and no
unordered pair repeats while K < n/2 -- all in O(n) array work, so a million instances pair in seconds.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jpo.data.formats import Text, item_id, text_of
from jpo.errors import JpoError

STRATEGIES = ("random", "similar", "cross-task", "proxy")
# Strategies whose output is already labelled: preference rows, not items for a judge.
LABELLED = ("proxy",)
GROUP_FIELDS = ("task", "source", "category", "subreddit", "dataset")


@dataclass
class PairReport:
    """What pairing kept and left out, so nothing disappears without a count."""

    rows_in: int = 0
    instances: int = 0
    duplicate_instructions: int = 0
    items: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.rows_in} rows -> {self.instances} instances"]
        if self.duplicate_instructions:
            parts.append(f"{self.duplicate_instructions} repeated instructions merged")
        parts.append(f"{self.items} comparison items")
        return "; ".join(parts + self.notes)


def _key(prompt: Text) -> str:
    return prompt if isinstance(prompt, str) else repr(prompt)


def instances_from_sft(rows: list[dict[str, Any]], report: PairReport) -> list[dict[str, Any]]:
    """D_S with one instance per distinct instruction (the first; later repeats are counted, not paired)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        key = _key(row["prompt"])
        if key in seen:
            report.duplicate_instructions += 1
            continue
        seen.add(key)
        out.append(row)
    report.rows_in, report.instances = len(rows), len(out)
    return out


def _sides(row: dict[str, Any]) -> tuple[tuple[Text, Text], tuple[Text, Text]]:
    """The two (instruction, response) sides of a preference row or of an (unlabelled) comparison item."""
    if "prompt_a" in row:
        return (row["prompt_a"], row["response_a"]), (row["prompt_b"], row["response_b"])
    return (row["prompt_chosen"], row["chosen"]), (row["prompt_rejected"], row["rejected"])


def instances_from_preferences(rows: list[dict[str, Any]], seed: int, report: PairReport) -> list[dict[str, Any]]:
    """D_S from preference data or comparison items: per instruction, one of its responses picked at random
    (seeded), as in the paper -- whatever the comparison's label was, ties included."""
    members: dict[str, list[dict[str, Any]]] = {}
    mentions = 0
    for row in rows:
        first, second = _sides(row)
        mentions += 1 if first[0] == second[0] else 2
        for prompt, response in (first, second):
            members.setdefault(_key(prompt), []).append({"prompt": prompt, "response": response})
    rng = random.Random(seed)
    out = [rng.choice(candidates) for candidates in members.values()]
    report.rows_in, report.instances = len(rows), len(out)
    report.duplicate_instructions = mentions - len(out)
    return out


def proxy_pairs(rows: list[dict[str, Any]], seed: int, report: PairReport) -> list[dict[str, Any]]:
    """The paper's Appendix E proxy for joint preferences, labelled without a judge: the chosen (instruction,
    response) of row i preferred to the rejected (instruction, response) of row j != i, j a seeded derangement.
    One row per preference row, as the paper's D_H matches D_C in size; a partner with the same instruction is
    left out and counted (that comparison would be conditional, not joint)."""
    if any("prompt_chosen" not in row for row in rows):
        raise JpoError("--strategy proxy needs labelled preference rows (chosen / rejected), not unlabelled items")
    if len(rows) < 2:
        raise JpoError(f"--strategy proxy needs at least 2 preference rows (have {len(rows)})")
    a, b = _partners_random(len(rows), 1, np.random.default_rng(seed))
    out, same = [], 0
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        win, lose = rows[i], rows[j]
        if _key(win["prompt_chosen"]) == _key(lose["prompt_rejected"]):
            same += 1
            continue
        texts = (win["prompt_chosen"], win["chosen"], lose["prompt_rejected"], lose["rejected"])
        out.append({"id": item_id(*texts), "prompt_chosen": texts[0], "chosen": texts[1],
                    "prompt_rejected": texts[2], "rejected": texts[3]})
    report.rows_in, report.instances, report.items = len(rows), len(rows), len(out)
    if same:
        report.notes.append(f"{same} partners with the same instruction left out")
    return out


def _partners_random(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    a = np.concatenate([order] * k)
    b = np.concatenate([np.roll(order, -shift) for shift in range(1, k + 1)])
    return a, b


def _partners_cross_task(groups: list[str], k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle within groups, lay groups end to end, and shift by at least the largest group's size: a shift s with
    m <= s <= n - m always lands in another group."""
    n = len(groups)
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    largest = int(np.bincount(codes).max())
    shifts = list(range(largest, largest + k))
    if shifts[-1] > n - largest:
        raise JpoError(
            f"cross-task pairing needs the largest task ({largest} of {n} instances) to be at most "
            f"{(n - k + 1) // 2} for {k} pair(s) per instance"
        )
    order = np.lexsort((rng.random(n), codes))
    a = np.concatenate([order] * k)
    b = np.concatenate([np.roll(order, -shift) for shift in shifts])
    return a, b


def _tfidf(texts: list[str]):
    from scipy import sparse

    vocabulary: dict[str, int] = {}
    indptr, indices, counts = [0], [], []
    for text in texts:
        tokens = Counter(re.findall(r"\w+", text.lower()))
        for token, count in tokens.items():
            indices.append(vocabulary.setdefault(token, len(vocabulary)))
            counts.append(count)
        indptr.append(len(indices))
    matrix = sparse.csr_matrix((np.asarray(counts, dtype=np.float32), indices, indptr),
                               shape=(len(texts), max(1, len(vocabulary))))
    document_frequency = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = np.log((1 + len(texts)) / (1 + document_frequency)) + 1.0
    matrix = matrix.multiply(idf.astype(np.float32)).tocsr()
    norms = np.sqrt(matrix.multiply(matrix).sum(axis=1)).A1
    norms[norms == 0] = 1.0
    return sparse.diags(1.0 / norms) @ matrix


def _partners_similar(prompts: list[str], k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each instance with its k nearest *other* instructions by TF-IDF cosine (the paper's limitations section asks
    for similar instructions: "fried rice" against "stealing wifi" teaches little)."""
    n = len(prompts)
    if k >= n:
        raise JpoError(f"--pairs-per-instance {k} needs more than {k} distinct instructions (have {n})")
    matrix = _tfidf(prompts)
    a_parts, b_parts = [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        scores = (matrix[start:stop] @ matrix.T).toarray()
        scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never itself
        nearest = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(-scores, axis=1)[:, :k]
        a_parts.append(np.repeat(np.arange(start, stop), k))
        b_parts.append(nearest.reshape(-1))
    return np.concatenate(a_parts), np.concatenate(b_parts)


def group_field(instances: list[dict[str, Any]], requested: str | None) -> str:
    if requested:
        if any(requested not in row for row in instances):
            raise JpoError(f"--group-field '{requested}' is missing from some instances")
        return requested
    for name in GROUP_FIELDS:
        if all(name in row for row in instances):
            return name
    raise JpoError(f"cross-task pairing needs a task label in every row: one of {', '.join(GROUP_FIELDS)} "
                   "(or name one with --group-field)")


def _pair_instances(instances: list[dict[str, Any]], strategy: str, k: int, seed: int, group: str | None,
                    report: PairReport) -> list[dict[str, Any]]:
    """Comparison items pairing each instance (`prompt`, `response`) with instances of other instructions."""
    n = len(instances)
    pairing = [name for name in STRATEGIES if name not in LABELLED]
    if strategy not in pairing:
        raise JpoError(f"unknown pairing strategy '{strategy}' (expected {', '.join(pairing)})")
    if k < 1:
        raise JpoError("--pairs-per-instance must be at least 1")
    if n < 2 or (strategy == "random" and 2 * k >= n):
        raise JpoError(f"{n} distinct instructions cannot give {k} distinct partner(s) each (need more than {2 * k})")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        a, b = _partners_random(n, k, rng)
    elif strategy == "cross-task":
        name = group_field(instances, group)
        a, b = _partners_cross_task([str(row[name]) for row in instances], k, rng)
    else:
        a, b = _partners_similar([text_of(row["prompt"]) for row in instances], k)
    items, seen = [], set()
    repeats = 0
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        first, second = instances[i], instances[j]
        texts = (first["prompt"], first["response"], second["prompt"], second["response"])
        unordered = frozenset((i, j))
        if unordered in seen:  # the similar strategy can pick a and b as each other's neighbours
            repeats += 1
            continue
        seen.add(unordered)
        items.append({"id": item_id(*texts), "prompt_a": texts[0], "response_a": texts[1],
                      "prompt_b": texts[2], "response_b": texts[3]})
    if repeats:
        report.notes.append(f"{repeats} mutual pairs kept once")
    report.items = len(items)
    return items


def build_pairs(
    rows: list[dict[str, Any]],
    *,
    kind: str = "sft",
    strategy: str = "random",
    pairs_per_instance: int = 1,
    seed: int = 0,
    group: str | None = None,
    report: PairReport | None = None,
) -> list[dict[str, Any]]:
    """Joint comparisons from instruction-response rows (`kind` sft) or preference rows / comparison items (`kind`
    preference): unlabelled items for a judge, or -- for a strategy in LABELLED -- preference rows. The one place
    that maps a strategy to its pairing."""
    report = report if report is not None else PairReport()
    if strategy == "proxy":
        if kind != "preference":
            raise JpoError("--strategy proxy pairs preference rows (chosen of one row, rejected of another), "
                           f"not {kind} rows")
        return proxy_pairs(rows, seed, report)
    return _pair_instances(instances_of(rows, kind, seed, report), strategy, pairs_per_instance, seed, group, report)


def instances_of(rows: list[dict[str, Any]], kind: str, seed: int, report: PairReport) -> list[dict[str, Any]]:
    """One (instruction, response) instance per instruction: the D_S rows themselves, or a random side of each
    preference row (the paper's D_S)."""
    return instances_from_sft(rows, report) if kind == "sft" else instances_from_preferences(rows, seed, report)


def mix(
    conditional: list[dict[str, Any]],
    joint: list[dict[str, Any]],
    *,
    total: int | None = None,
    joint_fraction: float | None = None,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """D_M = D_C ∪ D_H, or the paper's ablation mixes: `total` rows of which `joint_fraction` come from D_H,
    sampled without replacement. Rows are tagged with their origin (`data`: D_C or D_H) and shuffled."""
    rng = random.Random(seed)
    if total is None and joint_fraction is None:
        take_c, take_h = len(conditional), len(joint)
    else:
        size = total if total is not None else len(conditional) + len(joint)
        fraction = 0.5 if joint_fraction is None else joint_fraction
        if not 0.0 <= fraction <= 1.0:
            raise JpoError(f"--joint-fraction must be within [0, 1], got {fraction}")
        take_h = round(size * fraction)
        take_c = size - take_h
    if take_c > len(conditional) or take_h > len(joint):
        raise JpoError(f"the mix needs {take_c} conditional and {take_h} joint rows; "
                       f"have {len(conditional)} and {len(joint)}")
    rows = [{**row, "data": "D_C"} for row in rng.sample(conditional, take_c)]
    rows += [{**row, "data": "D_H"} for row in rng.sample(joint, take_h)]
    rng.shuffle(rows)
    return rows, {"D_C": take_c, "D_H": take_h, "left_out_D_C": len(conditional) - take_c,
                  "left_out_D_H": len(joint) - take_h}


def pairing_rows(input: str | None = None, *, source: str | None = None, task: str | None = None,
                 labelled: bool = False) -> tuple[list[dict[str, Any]], str, str, str]:
    """What `jpo pairs` pairs: (rows, kind, description, notes) of a file (`input`) or a named source (`source`,
    NAME[:SPLIT], `task` for jpo-authors). Instruction-response rows, or preference rows where the strategy needs
    labels (`labelled`) or the data has no instruction-response rows. The notes are what `jpo data validate`
    counts (empty responses, identical pairs, columns not read), each after "; "."""
    from jpo.data.load import inspect
    from jpo.errors import DataError

    if source:
        from jpo.data.sources import get_source, load_source

        name, _, split = source.partition(":")
        kind = "sft" if "sft" in get_source(name).parts and not labelled else "preference"
        loaded = load_source(name, split or "train", kind=kind, task=task)
        return loaded.rows, kind, loaded.report.summary(), ""
    if not input:
        raise JpoError("--input (or --source) is required")
    found = inspect(input)
    if found.kind not in ("sft", "preference"):
        raise DataError(f"{found.format.name} rows are {found.kind}, not instruction-response or preference data",
                        path=found.path)
    return found.rows, found.kind, f"{found.path} (layout {found.format.name})", "".join(f"; {n}" for n in found.notes())
