"""Choosing which joint comparisons to pay a judge or an annotator for, under a budget of N labels.

Every selector gives each candidate (a, b) a priority; the pool is streamed in chunks and only the best candidates
so far are kept (the budget, or 8 times it for `coverage`, whose caps then choose among them in priority order). Memory is linear in the
budget plus one chunk, whatever the pool's size. Ties in priority are broken by a seeded random key.

Selectors (the literature each follows is named in the README):
- `random`: uniform without replacement -- the baseline.
- `coverage`: random priority with every instruction used at most ceil(2N/n) times and every (family, family) cell
  at most its share of N: the budget spread over instructions and task families (diversity sampling).
- `uncertainty`: smallest |r_a - r_b| first, r an implicit reward per instance (`scores.py`): the comparisons the
  model is least sure of (uncertainty sampling; the margin of DPO's implicit preference model).
- `certainty`: largest |r_a - r_b| first: comparisons the model is most sure of, which a judge rarely calls a tie
  (Muldrew et al. 2024 found high implicit-preference certainty the better acquisition for DPO).
- `disagreement`: where two cheap judges disagree (opposite decisive labels first, then decisive against tie):
  query by committee.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jpo.data.formats import item_id
from jpo.data.pairs import GROUP_FIELDS
from jpo.errors import JpoError
from jpo.progress import progress_bar
from jpo.selection.candidates import Chunk, candidate_chunks, pool_size

SELECTORS = ("random", "coverage", "uncertainty", "certainty", "disagreement")
MARGIN_SELECTORS = ("uncertainty", "certainty")
FAMILY_FIELDS = ("family", *GROUP_FIELDS)
# Priority -> float; NaN marks a candidate that cannot be scored (an instance too long for the model).
Priority = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class SelectionReport:
    """What selection looked at and what it gave up, so nothing is left out without a count."""

    selector: str
    pool: str
    candidates: int = 0
    unscorable: int = 0
    selected: int = 0
    over_cap: int = 0  # taken beyond a coverage cap because the capped shortlist ran out
    labelled_before: int = 0  # candidates skipped because an earlier round already labelled them
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.selector}: {self.selected} of {self.candidates} candidates ({self.pool})"]
        if self.unscorable:
            parts.append(f"{self.unscorable} unscorable candidates left out")
        if self.labelled_before:
            parts.append(f"{self.labelled_before} labelled in earlier rounds skipped")
        if self.over_cap:
            parts.append(f"{self.over_cap} taken beyond the coverage caps")
        return "; ".join(parts + self.notes)


def family_codes(instances: Sequence[dict[str, Any]], name: str | None = None) -> np.ndarray | None:
    """Integer task-family code per instance from `name` or the first of FAMILY_FIELDS every row has; None if none."""
    if name is None:
        name = next((f for f in FAMILY_FIELDS if all(f in row for row in instances)), None)
        if name is None:
            return None
    elif any(name not in row for row in instances):
        raise JpoError(f"--group-field '{name}' is missing from some instances")
    return np.unique(np.asarray([str(row[name]) for row in instances]), return_inverse=True)[1]


def pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One integer per unordered pair, for exclusion sets."""
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def shortlist(chunks: Iterator[Chunk], priority: Priority, keep: int, seed: int, report: SelectionReport, *,
              n: int, exclude: np.ndarray | None = None, total: int | None = None,
              progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` best candidates of a streamed pool, best first (priority, then a seeded random key); candidates
    whose pair key is in the sorted array `exclude` are skipped before they are scored. `progress` shows a bar over
    the `total` candidates of the pool (`jpo.progress`)."""
    rng = np.random.default_rng([seed, 1])
    bar = progress_bar(total, desc=f"selecting ({report.selector})", unit="candidate", enabled=progress,
                       unit_scale=True)
    best_a, best_b = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    best_p, best_t = np.empty(0), np.empty(0)
    for a, b in chunks:
        report.candidates += a.size
        looked_at = a.size
        if exclude is not None and exclude.size:
            fresh = np.isin(pair_keys(a, b, n), exclude, invert=True)
            report.labelled_before += int(a.size - fresh.sum())
            a, b = a[fresh], b[fresh]
        p = priority(a, b).astype(float)
        scorable = ~np.isnan(p)
        report.unscorable += int(p.size - scorable.sum())
        a, b, p = a[scorable], b[scorable], p[scorable]
        best_a, best_b = np.concatenate([best_a, a]), np.concatenate([best_b, b])
        best_p, best_t = np.concatenate([best_p, p]), np.concatenate([best_t, rng.random(a.size)])
        if best_p.size > keep:
            order = np.lexsort((best_t, -best_p))[:keep]
            best_a, best_b, best_p, best_t = best_a[order], best_b[order], best_p[order], best_t[order]
        bar.update(looked_at)
    bar.close()
    order = np.lexsort((best_t, -best_p))
    return best_a[order], best_b[order]


def take(a: np.ndarray, b: np.ndarray, budget: int, *, n: int, families: np.ndarray | None, capped: bool,
         report: SelectionReport) -> np.ndarray:
    """Positions in (a, b) of the budget, in order. With `capped`: passes within the per-instruction cap ceil(2N/n)
    and the per-family-cell share ceil(N/cells); where greedy packing or the shortlist runs out, a second
    pass allows one more use per instruction and no family share, and a last one no cap (counted in `over_cap`)."""
    if not capped:
        return np.arange(min(budget, a.size))
    cells, cell_of = 1, np.zeros(a.size, dtype=np.int64)
    if families is not None:
        counts = np.bincount(families)
        cells = sum(1 for x in range(counts.size) for y in range(x, counts.size) if x != y or counts[x] > 1)
        low, high = np.minimum(families[a], families[b]), np.maximum(families[a], families[b])
        cell_of = low * counts.size + high
    max_uses, cell_cap = math.ceil(2 * budget / n), math.ceil(budget / cells)
    # Least-used first: instructions fill up level by level (at most 8 passes), so every one is used before any is
    # used again; then the relaxed passes.
    levels = sorted({math.ceil(max_uses * k / 8) for k in range(1, 9)})
    caps = [(level, cell_cap) for level in levels] + [(max_uses + 1, budget), (budget, budget)]
    uses = [0] * n
    cell_use = [0] * (int(cell_of.max()) + 1 if cell_of.size else 1)
    chosen: list[int] = []
    open_positions = list(range(a.size))
    firsts, seconds, cell_list = a.tolist(), b.tolist(), cell_of.tolist()
    for attempt, (use_cap, share) in enumerate(caps):
        left = []
        for position in open_positions:
            i, j, cell = firsts[position], seconds[position], cell_list[position]
            if len(chosen) == budget or uses[i] >= use_cap or uses[j] >= use_cap or cell_use[cell] >= share:
                left.append(position)
                continue
            chosen.append(position)
            uses[i] += 1
            uses[j] += 1
            cell_use[cell] += 1
            report.over_cap += attempt >= len(levels)
        if len(chosen) == budget:
            break
        open_positions = left
    return np.asarray(sorted(chosen), dtype=np.int64)


def margin_priority(rewards: np.ndarray, selector: str) -> Priority:
    """|r_a - r_b|, smallest first for `uncertainty`, largest first for `certainty`."""
    sign = -1.0 if selector == "uncertainty" else 1.0
    return lambda a, b: sign * np.abs(rewards[a] - rewards[b])


def random_priority(seed: int) -> Priority:
    rng = np.random.default_rng([seed, 2])
    return lambda a, b: rng.random(a.size)


def disagreement_priority(instances: Sequence[dict[str, Any]], judges: Sequence[Any], *,
                          progress: bool = False) -> Priority:
    """2 where two judges give opposite decisive labels, 1 where one says tie, 0 where they agree; an invalid verdict
    makes the candidate unscorable. Judged through the shared runner (both orders, flip = tie), without a store;
    `progress` shows each judge's bar over a chunk's verdicts (the slow part: the pool bar moves once a chunk)."""
    from jpo.feedback.runner import ajudge

    if len(judges) != 2:
        raise JpoError(f"the disagreement selector needs two judges, got {len(judges)}")

    def priority(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        items = [{"prompt_a": instances[i]["prompt"], "response_a": instances[i]["response"],
                  "prompt_b": instances[j]["prompt"], "response_b": instances[j]["response"]}
                 for i, j in zip(a.tolist(), b.tolist(), strict=True)]
        labels = []
        for k, judge in enumerate(judges, start=1):
            run = asyncio.run(ajudge(items, judge, progress=progress, description=f"disagreement: judge {k} ({judge.id})"))
            run.require_valid("candidates")  # a judge that is down or cannot score the data: say so, select nothing
            labels.append([r.label for r in run.results])
        out = np.empty(len(items))
        for k, (first, second) in enumerate(zip(*labels, strict=True)):
            if "invalid" in (first, second):
                out[k] = np.nan
            elif first == second:
                out[k] = 0.0
            else:
                out[k] = 1.0 if "tie" in (first, second) else 2.0
        return out

    return priority


def comparison_item(instances: Sequence[dict[str, Any]], i: int, j: int) -> dict[str, Any]:
    first, second = instances[i], instances[j]
    texts = (first["prompt"], first["response"], second["prompt"], second["response"])
    return {"id": item_id(*texts), "prompt_a": texts[0], "response_a": texts[1], "prompt_b": texts[2],
            "response_b": texts[3]}


def select_indices(n: int, selector: str, budget: int, *, pool: str | int = "all", seed: int = 0,
                   rewards: np.ndarray | None = None, priority: Priority | None = None,
                   families: np.ndarray | None = None, exclude: np.ndarray | None = None,
                   shortlist_factor: int = 8, chunk_size: int = 1 << 18, progress: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, SelectionReport]:
    """The index pairs (a, b) of `budget` candidates out of the pool over n instances. `rewards` (one per instance)
    drive the margin selectors; `priority` overrides the selector's own (the disagreement judges); `exclude` holds
    pair keys min*n+max already labelled (the active loop's earlier rounds). `progress`: a bar over the pool."""
    if selector not in SELECTORS:
        raise JpoError(f"unknown selector '{selector}' (expected {', '.join(SELECTORS)})")
    if budget < 1:
        raise JpoError(f"--budget must be at least 1, got {budget}")
    report = SelectionReport(selector, f"pool {pool}" if pool == "all" else f"pool {pool} partners per instance")
    if priority is None:
        if selector in MARGIN_SELECTORS:
            if rewards is None or len(rewards) != n:
                raise JpoError(f"the {selector} selector needs one reward per instance (a reference model)")
            priority = margin_priority(np.asarray(rewards, dtype=float), selector)
        elif selector == "disagreement":
            raise JpoError("the disagreement selector needs two judges (--judges SPEC SPEC)")
        else:
            priority = random_priority(seed)
    total = pool_size(n, pool)
    if budget > total:
        raise JpoError(f"--budget {budget} is larger than the pool ({total} candidates)")
    capped = selector == "coverage"
    keep = min(total, budget * shortlist_factor if capped else budget)
    a, b = shortlist(candidate_chunks(n, pool, seed=seed, chunk_size=chunk_size), priority, keep, seed, report,
                     n=n, exclude=None if exclude is None else np.sort(exclude), total=total, progress=progress)
    positions = take(a, b, budget, n=n, families=families, capped=capped, report=report)
    report.selected = int(positions.size)
    if report.selected < budget:
        report.notes.append(f"only {report.selected} scorable candidates for a budget of {budget}")
    return a[positions], b[positions], report


def scoring_note(stats: dict[str, int]) -> str:
    """The instances' scoring losses (`scores.joint_logps` stats) as a report note."""
    return (f"{stats.get('truncated', 0)} instances truncated to fit the model's context when scored, "
            f"{stats.get('unscorable', 0)} unscorable (too long to score at all)")


def select(instances: Sequence[dict[str, Any]], selector: str, budget: int, *, pool: str | int = "all",
           seed: int = 0, reference: str | None = None, policy: str | None = None,
           rewards: np.ndarray | None = None, judges: Sequence[Any] = (), group: str | None = None,
           beta: float = 0.1, max_length: int | None = 1024, device: str | None = None, progress: bool = False,
           ) -> tuple[list[dict[str, Any]], SelectionReport]:
    """The library entry point: `budget` comparison items ({id, prompt_a, response_a, prompt_b, response_b,
    selector, priority_rank}) out of the pool over `instances` ({prompt, response[, family]}, one per instruction).

    Margin selectors need `rewards` or a `reference` model path (plus `policy` for the implicit reward of a trained
    model); `disagreement` needs two `judges` (jpo Judge objects, e.g. from `jpo.feedback.registry.make_judge`).
    `progress` shows bars (`jpo.progress`) for the slow parts: scoring instances, judging, streaming the pool."""
    scoring: dict[str, int] | None = None
    if selector in MARGIN_SELECTORS and rewards is None:
        if reference is None:
            raise JpoError(f"the {selector} selector needs a reference model (--model PATH)")
        from jpo.selection.scores import instance_rewards

        scoring = {}
        rewards = instance_rewards(instances, reference, policy, beta=beta, max_length=max_length, device=device,
                                   progress=progress, stats=scoring)
    priority = (disagreement_priority(instances, judges, progress=progress)
                if selector == "disagreement" and judges else None)
    families = family_codes(instances, group) if selector == "coverage" else None
    a, b, report = select_indices(len(instances), selector, budget, pool=pool, seed=seed, rewards=rewards,
                                  priority=priority, families=families, progress=progress)
    if selector == "coverage" and families is None:
        report.notes.append("no task-family field: instructions balanced, families not")
    if scoring is not None:
        report.notes.append(scoring_note(scoring))
    items = [{**comparison_item(instances, i, j), "selector": selector, "priority_rank": rank}
             for rank, (i, j) in enumerate(zip(a.tolist(), b.tolist(), strict=True))]
    return items, report
