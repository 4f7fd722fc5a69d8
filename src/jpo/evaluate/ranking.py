"""Ranking systems by joint comparisons: system X's response to I_a against system Y's response to I_b != I_a.

The conditional protocol asks "is X's answer better than the gold answer to the same instruction"; the joint one
compares systems directly, each on a different instruction, as the JPO paper's annotators compare instances. Items
are counterbalanced: for every pair of systems and every instruction i with its partner pi(i) (a seeded derangement
within each temperature/seed slot), both X@i vs Y@pi(i) and Y@i vs X@pi(i) are asked, so neither system is favoured
by the instructions it happens to answer. They are judged like any item (both orders, flip = tie, through the
shared runner and its store) or exported for humans (`jpo annotate`) and read back by id.

The ranking is a Bradley-Terry fit (choix's iterative Luce spectral ranking on the win matrix; a tie counts half a
win each way, as in the win-rate) with a small prior (`alpha` virtual comparisons per pair), so a system that won
every comparison still gets a finite score. Scores are log-strengths centred at 0: exp(s_X - s_Y) is the fitted odds
that X beats Y. Intervals are percentile bootstraps over items.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jpo.errors import DataError, JpoError
from jpo.evaluate.winrate import SCORES, WinRate, outcome_of_label
from jpo.feedback.base import Judge
from jpo.feedback.runner import JudgeRun, ajudge, labeled_rows
from jpo.feedback.store import VerdictStore

ALPHA = 0.01
STABLE = 0.95  # share of random subsamples that must reproduce the full ranking
TIED = 1e-9  # scores closer than this are equal (BT fits of identical records differ only by float rounding)


def shared_ranks(values: Mapping[str, float]) -> dict[str, int]:
    """Competition ranks, highest value first: equal values share the best of their ranks (1, 1, 3), so a tie is
    shown as a tie rather than ordered by name or dictionary order."""
    return {name: 1 + sum(other > value + TIED for other in values.values()) for name, value in values.items()}


def tau_undefined(first: Sequence[float], second: Sequence[float]) -> str | None:
    """Why Kendall's tau of two score lists is undefined (one side has no order at all), or None when it is not."""
    for scores, what in ((first, "Bradley-Terry score"), (second, "win-rate against gold")):
        if max(scores) - min(scores) <= TIED:
            return f"every system has the same {what}, so that protocol gives no order to agree with"
    return None


@dataclass
class ProtocolCost:
    """What a protocol paid its judge: the distinct questions its items needed (both orders; identical ones asked
    once), those asked in this run (the rest came from the store), tokens, and how many comparisons were decisive."""

    items: int
    decisive: int
    questions: int
    asked: int
    prompt_tokens: int
    completion_tokens: int
    needed: float | None = None  # decisive comparisons a subsample needs to give the full ranking (see below)

    @classmethod
    def of(cls, runs: Sequence[JudgeRun]) -> ProtocolCost:
        results = [r for run in runs for r in run.results]
        return cls(len(results), sum(r.label in ("a", "b") for r in results), sum(run.asked + run.reused for run in runs),
                   sum(run.asked for run in runs), sum(run.usage.prompt_tokens for run in runs),
                   sum(run.usage.completion_tokens for run in runs))

    def per_decisive(self) -> dict[str, float | None]:
        if not self.decisive:
            return {"questions": None, "tokens": None}
        return {"questions": self.questions / self.decisive,
                "tokens": (self.prompt_tokens + self.completion_tokens) / self.decisive}


@dataclass
class JointEvaluation:
    """The joint ranking, its win matrix and, with references, the conditional win-rates beside it."""

    systems: list[str]
    scores: dict[str, tuple[float, float, float]]  # BT log-strength, 95% low, high
    matrix: dict[str, dict[str, dict[str, float]]]  # X -> Y -> {rate, wins, ties, losses, n}
    rows: list[dict[str, Any]] = field(repr=False)
    judge_id: str
    joint_cost: ProtocolCost
    invalid: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    conditional: dict[str, WinRate] | None = None
    conditional_cost: ProtocolCost | None = None
    kendall_tau: float | None = None
    kendall_tau_undefined: str | None = None  # why there is no tau (with references), e.g. every win-rate equal
    judge_cost: str | None = None

    def write(self, folder: str | Path) -> list[Path]:
        """ranking.md, ranking.json and joint_labeled.jsonl in `folder` (made); the paths written."""
        import json

        from jpo.data.io import write_jsonl

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "ranking.md", folder / "ranking.json", folder / "joint_labeled.jsonl"]
        write_jsonl(written[2], self.rows)
        written[1].write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        written[0].write_text(self.markdown() + "\n", encoding="utf-8")
        return written

    def ranking(self) -> list[str]:
        """Systems best first; tied systems (see `ranks`) in name order."""
        return sorted(self.systems, key=lambda s: (-self.scores[s][0], s))

    def ranks(self) -> dict[str, int]:
        """Each system's rank by BT score; tied systems share a rank."""
        return shared_ranks({s: v[0] for s, v in self.scores.items()})

    def conditional_ranking(self) -> list[str] | None:
        if self.conditional is None:
            return None
        return sorted(self.systems, key=lambda s: (-self.conditional[s].estimate, s))

    def conditional_ranks(self) -> dict[str, int] | None:
        """Each system's rank by win-rate against gold; equal win-rates share a rank."""
        if self.conditional is None:
            return None
        return shared_ranks({s: w.estimate for s, w in self.conditional.items()})

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "judge": self.judge_id,
            "joint": {"ranking": self.ranking(), "ranks": self.ranks(),
                      "bradley_terry": {s: {"score": v[0], "low": v[1], "high": v[2]} for s, v in self.scores.items()},
                      "win_matrix": self.matrix, "invalid": self.invalid,
                      "cost": {**vars(self.joint_cost), "per_decisive": self.joint_cost.per_decisive()}},
            "left_out": self.left_out,
            "judge_cost": self.judge_cost,
        }
        if self.conditional is not None and self.conditional_cost is not None:
            out["conditional"] = {
                "ranking": self.conditional_ranking(), "ranks": self.conditional_ranks(),
                "win_rate": {s: w.as_dict() for s, w in self.conditional.items()},
                "cost": {**vars(self.conditional_cost), "per_decisive": self.conditional_cost.per_decisive()}}
            out["kendall_tau"] = self.kendall_tau
            if self.kendall_tau_undefined:
                out["kendall_tau_undefined"] = self.kendall_tau_undefined
        return out

    def markdown(self) -> str:
        lines = [f"Joint ranking (judge `{self.judge_id}`; Bradley-Terry log-strength, 95% bootstrap interval over "
                 "items; tie = half a win)", ""]
        header = "| rank | system | BT score | 95% CI |"
        rule = "|---|---|---|---|"
        if self.conditional is not None:
            header += " win-rate vs gold | rank vs gold |"
            rule += "---|---|"
        lines += [header, rule]
        ranks, by_gold = self.ranks(), self.conditional_ranks()
        for name in self.ranking():
            score, low, high = self.scores[name]
            line = f"| {ranks[name]} | {name} | {score:+.3f} | [{low:+.3f}, {high:+.3f}] |"
            if self.conditional is not None and by_gold is not None:
                w = self.conditional[name]
                line += f" {100 * w.estimate:.1f}% [{100 * w.low:.1f}, {100 * w.high:.1f}] | {by_gold[name]} |"
            lines.append(line)
        if len(set(ranks.values())) < len(ranks) or (by_gold and len(set(by_gold.values())) < len(by_gold)):
            lines += ["", "Systems with equal scores share a rank."]
        lines += ["", "Win matrix (row beats column; tie = 0.5; comparisons in parentheses)", "",
                  "| | " + " | ".join(self.systems) + " |", "|---" * (len(self.systems) + 1) + "|"]
        for x in self.systems:
            cells = ["—" if x == y else f"{100 * self.matrix[x][y]['rate']:.1f}% ({int(self.matrix[x][y]['n'])})"
                     for y in self.systems]
            lines.append(f"| {x} | " + " | ".join(cells) + " |")
        lines += ["", "| protocol | items | decisive | judge questions | per decisive | tokens per decisive | "
                      f"decisive needed for the same ranking in {100 * STABLE:.0f}% of subsamples |",
                  "|---|---|---|---|---|---|---|"]
        costs = [("joint", self.joint_cost)]
        if self.conditional_cost is not None:
            costs.append(("conditional vs gold", self.conditional_cost))
        for name, cost in costs:
            per = cost.per_decisive()
            cells = ["n/a" if v is None else f"{v:{spec}}" for v, spec in
                     ((per["questions"], ".2f"), (per["tokens"], ".2f"), (cost.needed, ".0f"))]
            lines.append(f"| {name} | {cost.items} | {cost.decisive} | {cost.questions} | " + " | ".join(cells) + " |")
        if self.kendall_tau is not None:
            lines += ["", f"Rank agreement between the protocols: Kendall tau = {self.kendall_tau:+.3f} "
                          f"({len(self.systems)} systems)"]
        elif self.kendall_tau_undefined:
            lines += ["", f"Rank agreement between the protocols: Kendall tau undefined: {self.kendall_tau_undefined}"]
        if self.invalid or any(self.left_out.values()):
            left = ", ".join(f"{n} {why}" for why, n in self.left_out.items() if n)
            lines += ["", f"Left out: {self.invalid} invalid joint verdicts" + (f"; {left}" if left else "")]
        return "\n".join(lines)


def joint_items(generations: Mapping[str, Sequence[dict[str, Any]]], *, seed: int = 0,
                prompts: Mapping[str, Any] | None = None, max_per_pair: int | None = None,
                ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Counterbalanced joint items over the generations every system has (by id, temperature and seed), and how
    many generations were left out because some system lacks them. `prompts` (id -> text) replaces the shown prompt
    (the reference file's clean instruction); `max_per_pair` caps the items per pair of systems (default: all)."""
    if len(generations) < 2:
        raise JpoError(f"a joint ranking needs at least two systems, got {len(generations)}")
    keyed: dict[str, dict[tuple, dict[str, Any]]] = {}
    for name, rows in generations.items():
        keyed[name] = {}
        for index, row in enumerate(rows):
            key = (str(row["id"]), row.get("temperature"), row.get("seed"))
            if key in keyed[name]:
                raise DataError(f"system {name}: generation {key} appears twice", row=index + 1, field="id")
            keyed[name][key] = row
    common = set.intersection(*(set(rows) for rows in keyed.values()))
    left_out = {f"generations of {name} that another system lacks": len(rows) - len(common)
                for name, rows in keyed.items()}
    slots: dict[tuple, list[str]] = {}
    for pid, temperature, gen_seed in sorted(common, key=str):
        slots.setdefault((temperature, gen_seed), []).append(pid)
    rng = np.random.default_rng(seed)
    partners: list[tuple[tuple, str, str]] = []
    for slot, ids in slots.items():
        if len(ids) < 2:
            left_out["slots with a single prompt"] = left_out.get("slots with a single prompt", 0) + 1
            continue
        order = [ids[k] for k in rng.permutation(len(ids))]
        partners += [(slot, order[k], order[(k + 1) % len(order)]) for k in range(len(order))]
    names = sorted(generations)
    items = []
    if max_per_pair is not None and max_per_pair < 2:
        raise JpoError(f"--max_per_pair {max_per_pair}: items come in counterbalanced pairs, so at least 2")
    for x, y in itertools.combinations(names, 2):
        chosen = partners
        if max_per_pair is not None and 2 * len(partners) > max_per_pair:
            chosen = [partners[k] for k in sorted(rng.choice(len(partners), max_per_pair // 2, replace=False))]
            # named for both ways to set the cap: `jpo rank`'s flag and a recipe's key
            cut = "joint items over the cap per pair of systems (--max_per_pair, evaluate.joint_max_per_pair)"
            left_out[cut] = left_out.get(cut, 0) + 2 * (len(partners) - len(chosen))
        for (temperature, gen_seed), i, j in chosen:
            for first, second in ((x, y), (y, x)):
                row_a, row_b = keyed[first][(i, temperature, gen_seed)], keyed[second][(j, temperature, gen_seed)]
                items.append({
                    "id": f"{first}:{i}|{second}:{j}|t={temperature}|s={gen_seed}",
                    "system_a": first, "system_b": second, "prompt_id_a": i, "prompt_id_b": j,
                    "temperature": temperature, "seed": gen_seed,
                    "prompt_a": prompts.get(i, row_a["prompt"]) if prompts else row_a["prompt"],
                    "response_a": row_a["response"],
                    "prompt_b": prompts.get(j, row_b["prompt"]) if prompts else row_b["prompt"],
                    "response_b": row_b["response"]})
    return items, left_out


def win_counts(systems: Sequence[str], rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per labelled item: the index of system a, of system b, and a's score (1 win, 0.5 tie, 0 loss); invalid
    items are not scores and are left out by the caller."""
    index = {name: k for k, name in enumerate(systems)}
    a = np.asarray([index[row["system_a"]] for row in rows], dtype=np.int64)
    b = np.asarray([index[row["system_b"]] for row in rows], dtype=np.int64)
    score = np.asarray([SCORES[outcome_of_label(row["label"])] for row in rows])
    return a, b, score


def bradley_terry(n: int, a: np.ndarray, b: np.ndarray, score: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Centred BT log-strengths from choix on the win matrix (a tie is half a win each way)."""
    import choix

    a, b = a.astype(np.int64), b.astype(np.int64)
    wins = np.zeros((n, n))
    np.add.at(wins, (a, b), score)
    np.add.at(wins, (b, a), 1.0 - score)
    params = choix.ilsr_pairwise_dense(wins, alpha=alpha)
    return params - params.mean()


def bootstrap_bt(n: int, a: np.ndarray, b: np.ndarray, score: np.ndarray, *, n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT scores and their percentile intervals from `scipy.stats.bootstrap` over items (one fit per resample;
    percentile, as for the win-rates, since BCa is undefined when a system wins every resample alike)."""
    from scipy import stats

    estimate = bradley_terry(n, a, b, score)
    if a.size < 2:
        return estimate, estimate.copy(), estimate.copy()
    result = stats.bootstrap((a, b, score), lambda x, y, z: bradley_terry(n, x, y, z), paired=True,
                             vectorized=False, n_resamples=n_resamples, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed))
    return estimate, result.confidence_interval.low, result.confidence_interval.high


def win_matrix(systems: Sequence[str], a: np.ndarray, b: np.ndarray, score: np.ndarray
               ) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {x: {} for x in systems}
    for i, x in enumerate(systems):
        for j, y in enumerate(systems):
            if i == j:
                continue
            own = np.concatenate([score[(a == i) & (b == j)], 1.0 - score[(a == j) & (b == i)]])
            out[x][y] = {"rate": float(own.mean()) if own.size else float("nan"), "wins": int((own == 1).sum()),
                         "ties": int((own == 0.5).sum()), "losses": int((own == 0).sum()), "n": int(own.size)}
    return out


def comparisons_needed(rank_of, decisive: np.ndarray, *, draws: int = 200, seed: int = 0) -> float | None:
    """How many decisive comparisons a protocol needs: the mean decisive count of the smallest random subsample of
    its comparisons (sizes on a geometric grid) whose ranking equals the full data's in STABLE of `draws` draws.
    `rank_of(positions)` ranks the systems from those comparisons (None when it cannot). None: only all of them do."""
    n = decisive.size
    target = rank_of(np.arange(n))
    rng = np.random.default_rng(seed)
    for size in np.unique(np.geomspace(min(10, n), n, 16).astype(int))[:-1]:
        picks = [rng.choice(n, size, replace=False) for _ in range(draws)]
        if sum(rank_of(pick) == target for pick in picks) >= STABLE * draws:
            return float(np.mean([decisive[pick].sum() for pick in picks]))
    return None


def _bt_order(n: int, a: np.ndarray, b: np.ndarray, score: np.ndarray):
    return lambda pick: tuple(np.argsort(-bradley_terry(n, a[pick], b[pick], score[pick]), kind="stable"))


def _win_rate_order(n: int, system: np.ndarray, score: np.ndarray):
    def order(pick: np.ndarray):
        counts = np.bincount(system[pick], minlength=n)
        if (counts == 0).any():
            return None
        return tuple(np.argsort(-np.bincount(system[pick], weights=score[pick], minlength=n) / counts, kind="stable"))

    return order


async def aevaluate_joint(generations: Mapping[str, Sequence[dict[str, Any]]], judge: Judge | None = None, *,
                          references: Sequence[dict[str, Any]] | None = None, labels: Sequence[dict] | None = None,
                          store: VerdictStore | None = None, progress: bool = True, n_resamples: int = 1000,
                          seed: int = 0, max_per_pair: int | None = None) -> JointEvaluation:
    """Judge the joint items (or take `labels`: judged items from `jpo annotate export --format items` or `jpo judge`,
    joined by id), fit the ranking; with `references`, also each system's conditional win-rate against gold with the
    same judge, and the two protocols' rank agreement and cost."""
    from scipy.stats import kendalltau

    from jpo.evaluate.against_gold import aevaluate

    prompts = {str(r["id"]): r["prompt"] for r in references or () if "prompt" in r}
    items, left_out = joint_items(generations, seed=seed, prompts=prompts, max_per_pair=max_per_pair)
    systems = sorted(generations)
    if labels is not None:
        rows, runs = _join_labels(items, labels, left_out), []
        judge_id = "labels"
    else:
        if judge is None:
            raise JpoError("a joint evaluation needs a judge or judged labels")
        run = await ajudge(items, judge, store=store, progress=progress, description="judging joint items")
        run.require_valid("joint items")
        rows, runs, judge_id = labeled_rows(items, run), [run], run.judge_id
    scored = [row for row in rows if row["label"] != "invalid"]
    a, b, score = win_counts(systems, scored)
    if not a.size:
        raise JpoError("no valid joint verdict to rank the systems by")
    estimate, low, high = bootstrap_bt(len(systems), a, b, score, n_resamples=n_resamples, seed=seed)
    cost = ProtocolCost.of(runs) if runs else ProtocolCost(len(rows), sum(r["label"] in ("a", "b") for r in rows),
                                                         0, 0, 0, 0)
    cost.needed = comparisons_needed(_bt_order(len(systems), a, b, score), score != 0.5, seed=seed)
    result = JointEvaluation(systems, {s: (float(estimate[k]), float(low[k]), float(high[k]))
                                       for k, s in enumerate(systems)},
                             win_matrix(systems, a, b, score), rows, judge_id, cost,
                             invalid=len(rows) - len(scored), left_out=left_out)
    if references is not None:
        if judge is None:
            raise JpoError("win-rates against gold need a judge")
        evaluations = {name: await aevaluate(generations[name], references, judge, store=store, progress=progress,
                                             n_resamples=n_resamples) for name in systems}
        for name, evaluation in evaluations.items():
            evaluation.judge_run.require_valid(f"generations of {name} against gold")
        result.conditional = {name: e.average for name, e in evaluations.items()}
        result.conditional_cost = ProtocolCost.of([e.judge_run for e in evaluations.values()])
        valid = [(k, row) for k, name in enumerate(systems) for row in evaluations[name].rows
                 if row["label"] != "invalid"]
        system = np.asarray([k for k, _ in valid], dtype=np.int64)
        outcome = np.asarray([SCORES[outcome_of_label(row["label"])] for _, row in valid])
        result.conditional_cost.needed = comparisons_needed(_win_rate_order(len(systems), system, outcome),
                                                            outcome != 0.5, seed=seed)
        joint_scores = [result.scores[s][0] for s in systems]
        gold_scores = [result.conditional[s].estimate for s in systems]
        result.kendall_tau_undefined = tau_undefined(joint_scores, gold_scores)
        if result.kendall_tau_undefined is None:
            # tau-b over the shared ranks, not the raw scores: a float-rounding difference between two tied BT
            # scores is no order; tau-b counts ties on one side properly
            joint_ranks, gold_ranks = result.ranks(), result.conditional_ranks() or {}
            result.kendall_tau = float(kendalltau([joint_ranks[s] for s in systems],
                                                  [gold_ranks[s] for s in systems]).statistic)
    result.judge_cost = judge.cost_summary() if judge is not None else None
    return result


def _join_labels(items: list[dict[str, Any]], labels: Sequence[dict[str, Any]], left_out: dict[str, int]
                 ) -> list[dict[str, Any]]:
    """Judged items joined to the rebuilt joint items by id; items nobody labelled are counted, not guessed."""
    by_id = {str(row["id"]): row for row in labels}
    rows = []
    for item in items:
        label = by_id.get(item["id"], {}).get("label")
        if label not in ("a", "b", "tie"):
            continue
        rows.append({**item, "label": label})
    left_out["joint items without a label"] = len(items) - len(rows)
    left_out["labels that match no joint item"] = len(by_id.keys() - {item["id"] for item in items})
    return rows


def evaluate_joint(generations: Mapping[str, Sequence[dict[str, Any]]], judge: Judge | None = None,
                   **kwargs: Any) -> JointEvaluation:
    """Synchronous `aevaluate_joint`, for scripts and the runner."""
    import asyncio

    return asyncio.run(aevaluate_joint(generations, judge, **kwargs))


def load_systems(specs: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`NAME=PATH` or `PATH` (named by its stem) -> the generations of each system; JpoError on a repeated name."""
    from jpo.data import load_generations

    systems: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name.split(".")[0], spec
        if name in systems:
            raise JpoError(f"two systems named {name!r}: name them with NAME=PATH")
        systems[name] = load_generations(path)
    return systems
