"""The active loop: label a batch, train on every label so far, and choose the next batch with the trained model.

Round 0 ranks candidates by the reference's own (SimPO) reward, since before any label the policy is the reference
and DPO's implicit reward is zero everywhere. After each round the policy is trained from the reference on all
decisive labels so far, and the next batch is ranked by its implicit reward margin
beta * [(log pi - log pi_ref)(I_a, R_a) - (log pi - log pi_ref)(I_b, R_b)], as in active DPO (Muldrew et al. 2024;
Kveton et al. 2025 select from the policy being trained, not from a fixed external model). Candidates labelled in an
earlier round are never bought twice. The last batch is labelled but not trained on here: the caller trains its
final model on everything returned, with the same training budget as for any other selector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jpo.errors import JpoError
from jpo.selection.selectors import (
    MARGIN_SELECTORS,
    SelectionReport,
    comparison_item,
    pair_keys,
    scoring_note,
    select_indices,
)


@dataclass
class ActiveResult:
    """The labelled items of every round (with `round`), and each round's selection report and decisive count."""

    rows: list[dict[str, Any]]
    reports: list[SelectionReport] = field(default_factory=list)
    decisive: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    # rounds after which no model was trained (no decisive label yet): the next round is chosen as this one was
    untrained: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(f"round {r}: {rep.selected} labelled, {d} decisive" + "".join(f", {n}" for n in rep.notes)
                         + (" (no model trained: the next round chosen as this one)" if r in self.untrained else "")
                         for r, (rep, d) in enumerate(zip(self.reports, self.decisive, strict=True)))


def select_active(instances: Sequence[dict[str, Any]], budget: int, *, judge, reference: str,
                  train_config: dict[str, Any], output_dir: str, rounds: int = 2, selector: str = "uncertainty",
                  pool: str | int = "all", seed: int = 0, store=None, max_length: int | None = 1024,
                  device: str | None = None, progress: bool = False) -> ActiveResult:
    """`budget` labels bought in `rounds` batches (see the module doc). `judge` is a jpo Judge; `train_config` a
    PreferenceConfig dict (objective, beta, epochs, ...) used for every intermediate model, each trained from
    `reference` into `output_dir/round_<r>`. `progress` shows bars for scoring, selecting and judging."""
    from jpo.data.load import preference_rows
    from jpo.feedback.runner import judge_items, labeled_rows
    from jpo.selection.scores import instance_rewards
    from jpo.train.api import train_preferences

    if selector not in MARGIN_SELECTORS:
        raise JpoError(f"the active loop ranks by an implicit-reward margin: selector must be one of "
                       f"{', '.join(MARGIN_SELECTORS)}, not {selector!r}")
    if not 1 <= rounds <= budget:
        raise JpoError(f"--rounds must be between 1 and the budget ({budget}), got {rounds}")
    beta = float(train_config.get("beta", 0.1))
    sizes = [budget // rounds + (1 if r < budget % rounds else 0) for r in range(rounds)]
    result = ActiveResult(rows=[])
    labelled = np.empty(0, dtype=np.int64)
    policy: str | None = None
    n = len(instances)
    for r, size in enumerate(sizes):
        scoring: dict[str, int] = {}
        rewards = instance_rewards(instances, reference, policy, beta=beta, max_length=max_length, device=device,
                                   progress=progress, stats=scoring)
        a, b, report = select_indices(n, selector, size, pool=pool, seed=seed, rewards=rewards, exclude=labelled,
                                      progress=progress)
        report.notes.append(scoring_note(scoring))
        labelled = np.concatenate([labelled, pair_keys(a, b, n)])
        items = [{**comparison_item(instances, i, j), "selector": f"active-{selector}", "round": r}
                 for i, j in zip(a.tolist(), b.tolist(), strict=True)]
        run = judge_items(items, judge, store=store, progress=progress, description=f"active round {r}: judging")
        run.require_valid(f"items of active round {r}")
        rows = labeled_rows(items, run)
        result.rows.extend(rows)
        result.reports.append(report)
        result.decisive.append(sum(row["label"] in ("a", "b") for row in rows))
        if r == rounds - 1:
            break
        preferences = preference_rows(result.rows)
        if not preferences:  # nothing to learn from yet (all ties): keep the model this round was chosen by
            result.untrained.append(r)
            continue
        policy = str(Path(output_dir) / f"round_{r}")
        train_preferences({**train_config, "model_name_or_path": reference, "output_dir": policy}, preferences)
        result.models.append(policy)
    return result
