"""Asking a judge about comparison items: both orders, flip = tie, nothing dropped, nothing paid twice.

Every item is asked as (a, b) and as (b, a). Agreement gives that label; any disagreement gives `tie` (the paper's
rule: a judge that flips with position has no preference); an order without a usable answer gives `invalid` with
its reason. Invalid items are counted and kept in the output -- never dropped, never turned into ties -- because a
silent tie would bias a win-rate toward 50% and a silent drop would bias it toward the judge's easy cases.

Identical questions (an item repeated, or one item's swap equal to another's) are asked once. Answers already in
the store are reused; each new answer is stored the moment it arrives, so an interrupted run resumes where it was.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jpo.errors import JpoError
from jpo.feedback.base import Judge, Question, Usage, Verdict
from jpo.feedback.store import VerdictStore
from jpo.progress import progress_bar

LABELS = ("a", "b", "tie", "invalid")
_SWAP = {"a": "b", "b": "a", "tie": "tie", None: None}


@dataclass
class Judged:
    """One item's outcome. `forward` is the answer to (a, b); `backward` to (b, a), in the positions shown."""

    label: str
    forward: Verdict
    backward: Verdict
    reason: str | None = None


@dataclass
class JudgeRun:
    """Outcomes in item order, and the run's accounting."""

    results: list[Judged]
    judge_id: str
    template_version: str
    asked: int = 0  # questions sent to the judge in this run
    reused: int = 0  # questions answered from the store
    usage: Usage = field(default_factory=Usage)
    elapsed: float = 0.0
    cost: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.label for result in self.results)
        return {label: counted.get(label, 0) for label in LABELS}

    @property
    def invalid_reasons(self) -> Counter:
        """Why items are invalid, by kind ("unparseable (names no output)", "HTTP 500 after 6 attempts", ...)."""
        kinds = Counter()
        for result in self.results:
            if result.label == "invalid" and result.reason:
                kind = result.reason.split("; ")[0].removeprefix("ab: ").removeprefix("ba: ").split(":")[0]
                kinds[re.sub(r"\s*\([^)]*\d[^)]*\)", "", kind)] += 1  # "(706 > 512 tokens)": one kind, any size
        return kinds

    def require_valid(self, what: str = "items") -> None:
        """Raise JpoError (one line: how many, why, the first reason) when items were asked and none got a valid
        label: a server that is down or a judge that cannot score the data must not pass for a finished run."""
        if not self.results or any(result.label != "invalid" for result in self.results):
            return
        reasons = self.invalid_reasons
        why = ", ".join(f"{kind} x{n}" for kind, n in reasons.most_common(3))
        if len(reasons) > 3:
            why += f", {sum(n for _, n in reasons.most_common()[3:])} more of {len(reasons) - 3} other kinds"
        first = " ".join(str(self.results[0].reason).split("; ")[0].split())
        raise JpoError(f"judge {self.judge_id} gave no valid verdict: all {len(self.results)} {what} invalid "
                       f"({why}); first: {first[:300]}")

    def summary(self) -> str:
        counts = self.counts
        line = (
            f"{len(self.results)} items: a={counts['a']} b={counts['b']} tie={counts['tie']} "
            f"invalid={counts['invalid']} | {self.asked} verdicts asked, {self.reused} reused "
            f"in {self.elapsed:.1f}s | judge {self.judge_id}"
        )
        if self.invalid_reasons:
            line += " | invalid: " + ", ".join(f"{why} x{n}" for why, n in self.invalid_reasons.most_common(3))
        if self.cost:
            line += f" | {self.cost}"
        return line


def questions_of(item: dict[str, Any]) -> tuple[Question, Question]:
    """An item's two orders; a conditional item may give one `prompt` instead of `prompt_a` and `prompt_b`."""
    prompt_a, prompt_b = (item["prompt_a"], item["prompt_b"]) if "prompt_a" in item else (item["prompt"],) * 2
    forward = Question(prompt_a, item["response_a"], prompt_b, item["response_b"])
    return forward, forward.swapped()


def combine(forward: Verdict, backward: Verdict) -> Judged:
    """The order-swap rule. `backward` answered the swapped question, so its a/b are exchanged before comparing."""
    problems = [f"{order}: {v.error}" for order, v in (("ab", forward), ("ba", backward)) if v.choice is None]
    if problems:
        return Judged("invalid", forward, backward, "; ".join(problems))
    first, second = forward.choice, _SWAP[backward.choice]
    return Judged(first if first == second else "tie", forward, backward)


async def ajudge(
    items: Sequence[dict[str, Any]],
    judge: Judge,
    *,
    store: VerdictStore | None = None,
    progress: bool = True,
    description: str = "judging",
) -> JudgeRun:
    """Judge every item in both orders (see module doc). Raises JpoError on a fatal backend error (bad key, no model)."""
    started = time.perf_counter()
    pairs = [questions_of(item) for item in items]
    unique: dict[str, Question] = {}
    for pair in pairs:
        for question in pair:
            unique.setdefault(question.fingerprint(), question)
    answers: dict[str, Verdict] = {}
    if store is not None:
        answers.update(store.get_many(judge.id, judge.template_version, unique))
    run = JudgeRun([], judge.id, judge.template_version, reused=len(answers))
    pending = [key for key in unique if key not in answers]
    batches = [pending[i : i + max(1, judge.batch_size)] for i in range(0, len(pending), max(1, judge.batch_size))]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    bar = progress_bar(len(unique), initial=len(answers), desc=description, unit="verdict", enabled=progress)

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            verdicts = await judge.answer_batch([unique[key] for key in batch])
            if len(verdicts) != len(batch):
                raise JpoError(f"judge {judge.id} returned {len(verdicts)} verdicts for {len(batch)} questions")
            for key, verdict in zip(batch, verdicts, strict=True):
                answers[key] = verdict
                run.usage = run.usage + verdict.usage
                if store is not None:
                    store.put(judge.id, judge.template_version, key, verdict)
            run.asked += len(batch)
            bar.update(len(batch))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(max(1, judge.max_concurrency), len(batches))):
                group.create_task(worker())
    except* Exception as errors:  # one worker's failure cancels the rest; report it, not the group
        raise errors.exceptions[0] from None
    finally:
        bar.close()
        await judge.aclose()
    run.results = [combine(answers[f.fingerprint()], answers[b.fingerprint()]) for f, b in pairs]
    run.elapsed = time.perf_counter() - started
    run.cost = judge.cost_summary()
    return run


def judge_items(
    items: Sequence[dict[str, Any]],
    judge: Judge,
    *,
    store: VerdictStore | None = None,
    progress: bool = True,
    description: str = "judging",
) -> JudgeRun:
    """Synchronous `ajudge`, for scripts and the pipeline."""
    return asyncio.run(ajudge(items, judge, store=store, progress=progress, description=description))


def verdict_record(order: str, verdict: Verdict) -> dict[str, Any]:
    """A verdict as stored in an output row: `said` in the positions shown, `choice` in the item's own a/b."""
    said = verdict.choice
    record = {"order": order, "said": said, "choice": said if order == "ab" else _SWAP[said], "raw": verdict.raw}
    if verdict.error:
        record["error"] = verdict.error
    if verdict.detail:
        record["detail"] = verdict.detail
    return record


def labeled_rows(items: Sequence[dict[str, Any]], run: JudgeRun) -> list[dict[str, Any]]:
    """Input rows with `label`, both raw verdicts, the judge id and template version (and why, when invalid).
    A label the input already had (a human's, an earlier judge's) is kept as `input_label`, not overwritten."""
    rows = []
    for item, result in zip(items, run.results, strict=True):
        earlier = {"input_label": item["label"]} if "label" in item else {}
        row = {**item, **earlier, "label": result.label, "judge": run.judge_id, "judge_template": run.template_version,
               "verdicts": [verdict_record("ab", result.forward), verdict_record("ba", result.backward)]}
        if result.reason:
            row["invalid_reason"] = result.reason
        else:
            row.pop("invalid_reason", None)
        rows.append(row)
    return rows


@dataclass
class Labelled:
    """Items labelled by the annotator (`rows`, as `labeled_rows` writes them, and its `run`), with how far each
    agreement judge agrees: name -> {percent, kappa, n} (`jpo.analysis.agreement`)."""

    rows: list[dict[str, Any]]
    run: JudgeRun
    agreement: dict[str, dict[str, Any]] = field(default_factory=dict)
    agreement_runs: dict[str, JudgeRun] = field(default_factory=dict)

    def require_valid(self, what: str) -> None:
        """JpoError when the annotator or an agreement judge gave no valid verdict (`JudgeRun.require_valid`)."""
        for name, run in {"judge": self.run, **self.agreement_runs}.items():
            run.require_valid(f"{name} {what} items")


def label_items(items: Sequence[dict[str, Any]], annotator: Judge, *, store: VerdictStore | None = None,
                others: dict[str, Judge] | None = None, what: str = "items") -> Labelled:
    """`items` labelled by `annotator` (both orders; `run.require_valid` says whether any label is usable), and
    the same items asked of each of `others` for agreement only: what `jpo run` does for D_C, D_H and every
    selection point. `what` names the items in messages. Verdicts go through `store`: a question is paid for once."""
    from jpo.analysis.agreement import agreement

    run = judge_items(items, annotator, store=store, progress=False, description=f"judge {what}")
    rows = labeled_rows(items, run)
    done = Labelled(rows, run)
    for name, judge in (others or {}).items():
        second = judge_items(items, judge, store=store, progress=False, description=f"{name} {what}")
        result = agreement([r["label"] for r in rows], [r.label for r in second.results])
        done.agreement[name] = {"percent": result.percent, "kappa": result.kappa, "n": result.n}
        done.agreement_runs[name] = second
    return done
