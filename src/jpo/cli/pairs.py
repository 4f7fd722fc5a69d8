"""`jpo pairs`: joint comparisons from instruction-response or preference data (with `--budget`, chosen by a
selector of `jpo.selection`); `jpo pairs mix`: D_M."""

from __future__ import annotations

import argparse

from jpo.data.pairs import LABELLED, STRATEGIES
from jpo.errors import JpoError
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
    # No `choices`: argparse checks a positional's choices before it reports unknown flags, so a mistyped flag's
    # value (`--pairs_per_instanc 2`) would read as "invalid choice: '2'"; without them it is named as unrecognized.
    parser.add_argument("verb", nargs="?", help="`mix` builds D_M = D_C ∪ D_H instead of pairs")


def run_pairs(args: argparse.Namespace) -> int:
    from jpo.data.io import write_jsonl
    from jpo.data.pairs import PairReport, build_pairs, instances_of, pairing_rows

    rows, kind, described, notes = pairing_rows(args.input, source=args.source, task=args.source_task,
                                                labelled=args.strategy in LABELLED)
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


def select_for_pairs(instances: list[dict], args: argparse.Namespace, report) -> list[dict]:
    """The `--budget` items of `jpo.selection.select`; the selection's own account goes into the pairing report."""
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


def run_mix(args: argparse.Namespace) -> int:
    from jpo.data.io import write_jsonl
    from jpo.data.load import identical_pairs, load_preferences
    from jpo.data.pairs import mix

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
