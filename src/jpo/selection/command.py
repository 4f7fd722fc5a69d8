"""`jpo pairs --budget N [--strategy SELECTOR]`: the selection options `jpo pairs` adds, and their dispatch."""

from __future__ import annotations

import argparse
from typing import Any

from jpo.data.pairs import PairReport
from jpo.errors import JpoError
from jpo.selection.selectors import SELECTORS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection under a labelling budget (--budget)")
    group.add_argument("--budget", type=int, help="pick this many joint comparisons out of the candidate pool with "
                       f"--strategy {' | '.join(SELECTORS)}")
    group.add_argument("--pool", default="all", help="candidates: all pairs of instructions, or K random partners "
                       "per instance (default: all)")
    group.add_argument("--model", help="uncertainty / certainty: the reference (SFT) model folder")
    group.add_argument("--policy", help="uncertainty / certainty: a model trained from --model; ranks by its implicit "
                       "reward margin instead of the reference's length-normalised log-likelihood")
    group.add_argument("--beta", type=float, default=0.1, help="implicit reward scale with --policy")
    group.add_argument("--judges", nargs=2, metavar="SPEC", help="disagreement: two cheap judge specs")
    group.add_argument("--no_progress", action="store_true", help="no progress bars (shown only on a terminal)")


def select_for_pairs(instances: list[dict[str, Any]], args: argparse.Namespace, report: PairReport
                     ) -> list[dict[str, Any]]:
    """The `jpo pairs --budget` items; the selection's own account goes into the pairing report."""
    from jpo.feedback.registry import make_judge
    from jpo.selection.candidates import parse_pool
    from jpo.selection.selectors import select

    if args.strategy not in SELECTORS:
        raise JpoError(f"--budget selects with --strategy {' | '.join(SELECTORS)}, not {args.strategy!r}")
    judges = [make_judge(spec) for spec in args.judges or ()]
    items, selection = select(instances, args.strategy, args.budget, pool=parse_pool(args.pool), seed=args.seed,
                              reference=args.model, policy=args.policy, judges=judges, group=args.group_field,
                              beta=args.beta, progress=not args.no_progress)
    report.items = len(items)
    report.notes.append(selection.summary())
    return items
