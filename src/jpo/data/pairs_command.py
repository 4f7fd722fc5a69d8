"""`jpo pairs`: joint comparison items from instruction-response or preference data; `jpo pairs mix`: D_M."""

from __future__ import annotations

import argparse

from jpo.data.io import write_jsonl
from jpo.data.load import inspect, load_preferences
from jpo.data.pairs import (
    STRATEGIES,
    PairReport,
    instances_from_preferences,
    instances_from_sft,
    make_pairs,
    mix,
)
from jpo.errors import DataError, JpoError
from jpo.selection.command import add_arguments as add_selection_arguments
from jpo.selection.command import select_for_pairs
from jpo.selection.selectors import SELECTORS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="instruction-response (D_S) or preference (D_C) data")
    parser.add_argument("--source", metavar="NAME[:SPLIT]", help="a named source instead of --input (tldr, hh-helpful, "
                        "ultrafeedback, jpo-authors, alpaca-eval; see jpo.data.sources); local copy: $JPO_SOURCE_<NAME>")
    parser.add_argument("--source-task", help="jpo-authors: tldr | anthropic_helpful")
    parser.add_argument("--output", required=True, help="where to write the comparison items (JSON Lines)")
    parser.add_argument("--strategy", choices=STRATEGIES + SELECTORS[1:], default="random",
                        help="random: seeded derangement (the paper); similar: nearest other instruction by TF-IDF; "
                             "cross-task: partners from another task label; with --budget, a selector")
    parser.add_argument("--pairs-per-instance", type=int, default=1, metavar="K", help="items per instance (k*n)")
    parser.add_argument("--group-field", help="the task label column for --strategy cross-task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditional", help="mix: D_C preference file")
    parser.add_argument("--joint", help="mix: D_H preference file")
    parser.add_argument("--total", type=int, help="mix: rows in the mix (default: all of both)")
    parser.add_argument("--joint-fraction", type=float, help="mix: share of D_H rows (default 0.5 with --total)")
    add_selection_arguments(parser)  # selection hook: --budget, --pool, --model, --policy, --beta, --judges
    parser.add_argument("verb", nargs="?", choices=["mix"], help="`mix` builds D_M = D_C ∪ D_H instead of pairs")


def run_pairs(args: argparse.Namespace) -> int:
    if args.source:
        return run_pairs_from_source(args)
    if not args.input:
        raise JpoError("--input (or --source) is required")
    loaded = inspect(args.input)
    report = PairReport()
    if loaded.kind == "sft":
        instances = instances_from_sft(loaded.rows, report)
    elif loaded.kind == "preference":
        instances = instances_from_preferences(loaded.rows, args.seed, report)
    else:
        raise DataError(f"{loaded.format.name} rows are {loaded.kind}, not instruction-response or preference data",
                        path=loaded.path)
    items = _pairs(instances, args, report, loaded.path)
    write_jsonl(args.output, items)
    print(f"pairs: {loaded.path} ({loaded.format.name}): {report.summary()} -> {args.output}")
    return 0


def run_pairs_from_source(args: argparse.Namespace) -> int:
    """`--source NAME[:SPLIT]`: its instruction-response rows (or preference rows where it has none)."""
    from jpo.data.sources import get_source, load_source

    name, _, split = args.source.partition(":")
    kind = "sft" if "sft" in get_source(name).parts else "preference"
    loaded = load_source(name, split or "train", kind=kind, task=args.source_task)
    report = PairReport()
    instances = (instances_from_sft(loaded.rows, report) if kind == "sft"
                 else instances_from_preferences(loaded.rows, args.seed, report))
    items = _pairs(instances, args, report, loaded.report.origin)
    write_jsonl(args.output, items)
    print(f"pairs: {loaded.report.summary()}")
    print(f"pairs: {report.summary()} -> {args.output}")
    return 0


def _pairs(instances: list[dict], args: argparse.Namespace, report: PairReport, origin: str) -> list[dict]:
    """`make_pairs` with the data's origin in its error (too few instructions, no task labels, ...)."""
    if args.budget is not None:  # selection hook: the budget's items from jpo.selection
        return select_for_pairs(instances, args, report)
    try:
        return make_pairs(instances, strategy=args.strategy, pairs_per_instance=args.pairs_per_instance,
                          seed=args.seed, group=args.group_field, report=report)
    except JpoError as error:
        raise JpoError(f"{origin}: {error}") from None


def run_mix(args: argparse.Namespace) -> int:
    if not args.conditional or not args.joint:
        raise JpoError("`jpo pairs mix` needs --conditional D_C and --joint D_H")
    rows, counts = mix(load_preferences(args.conditional), load_preferences(args.joint), total=args.total,
                       joint_fraction=args.joint_fraction, seed=args.seed)
    write_jsonl(args.output, rows)
    left = f" (left out: {counts['left_out_D_C']} D_C, {counts['left_out_D_H']} D_H)" if args.total else ""
    print(f"mix: {counts['D_C']} D_C + {counts['D_H']} D_H = {len(rows)} rows{left} -> {args.output}")
    return 0


def run(args: argparse.Namespace) -> int:
    return run_mix(args) if args.verb == "mix" else run_pairs(args)
