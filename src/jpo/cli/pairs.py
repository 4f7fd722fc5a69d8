"""`jpo pairs`: joint comparisons from instruction-response or preference data; `jpo pairs mix`: D_M."""

from __future__ import annotations

import argparse

from jpo.data.io import write_jsonl
from jpo.data.load import identical_pairs, inspect, load_preferences
from jpo.data.pairs import LABELLED, STRATEGIES, PairReport, build_pairs, instances_of, mix
from jpo.errors import DataError, JpoError
from jpo.selection.command import add_arguments as add_selection_arguments
from jpo.selection.command import select_for_pairs
from jpo.selection.selectors import SELECTORS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="instruction-response (D_S) or preference (D_C) data")
    parser.add_argument("--source", metavar="NAME[:SPLIT]", help="a named source instead of --input (tldr, hh-helpful, "
                        "ultrafeedback, jpo-authors, alpaca-eval; see jpo.data.sources); local copy: $JPO_SOURCE_<NAME>")
    parser.add_argument("--source-task", help="jpo-authors: tldr | anthropic_helpful")
    parser.add_argument("--output", required=True, help="where to write the comparison items (JSON Lines), or the "
                        "preference rows for a strategy that labels its own pairs (proxy)")
    parser.add_argument("--strategy", choices=STRATEGIES + SELECTORS[1:], default="random",
                        help="random: seeded derangement (the paper); similar: nearest other instruction by TF-IDF; "
                             "cross-task: partners from another task label; proxy: the chosen side of one "
                             "preference row preferred to the rejected side of another, no judge (paper, Appendix E); with "
                             "--budget, a selector of jpo.selection")
    parser.add_argument("--pairs-per-instance", type=int, default=1, metavar="K", help="items per instance (k*n)")
    parser.add_argument("--group-field", help="the task label column for --strategy cross-task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditional", help="mix: D_C preference file")
    parser.add_argument("--joint", help="mix: D_H preference file")
    parser.add_argument("--total", type=int, help="mix: rows in the mix (default: all of both)")
    parser.add_argument("--joint-fraction", type=float, help="mix: share of D_H rows (default 0.5 with --total)")
    add_selection_arguments(parser)  # selection hook: --budget, --pool, --model, --policy, --beta, --judges
    # No `choices`: argparse checks a positional's choices before it reports unknown flags, so a mistyped flag's
    # value (`--pairs_per_instanc 2`) would read as "invalid choice: '2'"; without them it is named as unrecognized.
    parser.add_argument("verb", nargs="?", help="`mix` builds D_M = D_C ∪ D_H instead of pairs")


def read_input(args: argparse.Namespace) -> tuple[list[dict], str, str, str]:
    """(rows, kind, description, notes) of --input or --source: instruction-response rows, or preference rows where
    the strategy needs labels or the data has no instruction-response rows. The notes are what `jpo data validate`
    counts (empty responses, identical pairs, columns not read), each after "; "."""
    if args.source:
        from jpo.data.sources import get_source, load_source

        name, _, split = args.source.partition(":")
        wants_labels = args.strategy in LABELLED
        kind = "sft" if "sft" in get_source(name).parts and not wants_labels else "preference"
        loaded = load_source(name, split or "train", kind=kind, task=args.source_task)
        return loaded.rows, kind, loaded.report.summary(), ""
    if not args.input:
        raise JpoError("--input (or --source) is required")
    loaded = inspect(args.input)
    if loaded.kind not in ("sft", "preference"):
        raise DataError(f"{loaded.format.name} rows are {loaded.kind}, not instruction-response or preference data",
                        path=loaded.path)
    return loaded.rows, loaded.kind, f"{loaded.path} ({loaded.format.name})", "".join(f"; {n}" for n in loaded.notes())


def run_pairs(args: argparse.Namespace) -> int:
    rows, kind, described, notes = read_input(args)
    report = PairReport()
    try:
        if args.budget is not None:  # selection: the budget's items from jpo.selection
            out = select_for_pairs(instances_of(rows, kind, args.seed, report), args, report)
        else:
            out = build_pairs(rows, kind=kind, strategy=args.strategy, pairs_per_instance=args.pairs_per_instance,
                              seed=args.seed, group=args.group_field, report=report)
    except JpoError as error:  # too few instructions, no task labels, ...: say which data
        raise JpoError(f"{args.input or args.source}: {error}") from None
    write_jsonl(args.output, out)
    what = "preference rows (labelled by construction)" if args.strategy in LABELLED else "items"
    print(f"pairs: {described}: {report.summary()}{notes} -> {len(out)} {what} in {args.output}")
    return 0


def run_mix(args: argparse.Namespace) -> int:
    if not args.conditional or not args.joint:
        raise JpoError("`jpo pairs mix` needs --conditional D_C and --joint D_H")
    rows, counts = mix(load_preferences(args.conditional), load_preferences(args.joint), total=args.total,
                       joint_fraction=args.joint_fraction, seed=args.seed)
    write_jsonl(args.output, rows)
    left = f" (left out: {counts['left_out_D_C']} D_C, {counts['left_out_D_H']} D_H)" if args.total else ""
    same = identical_pairs(rows, "preference")  # kept as written: training drops and counts them too
    print(f"mix: {counts['D_C']} D_C + {counts['D_H']} D_H = {len(rows)} rows{left}, {same} identical pairs "
          f"(chosen equals rejected) -> {args.output}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.verb not in (None, "mix"):
        raise JpoError(f"unexpected argument {args.verb!r} (the only verb is `mix`)")
    return run_mix(args) if args.verb == "mix" else run_pairs(args)
