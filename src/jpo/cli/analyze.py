"""`jpo analyze`: agreement, interplay, position bias and tie rates from label sources; writes a report."""

from __future__ import annotations

import argparse
from collections import Counter

from jpo.errors import JpoError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # `--labels a b` and `--labels a --labels b` both work (extend, not append: the README writes the first)
    parser.add_argument("--labels", action="extend", nargs="+", default=[], metavar="SOURCE",
                        help="label sources (one or more, and repeatable): an annotation database (.db), `jpo "
                             "annotate export` / /api/export JSON Lines, or judged items (`jpo judge` output); "
                             "NAME=PATH names one")
    parser.add_argument("--items", action="extend", nargs="+", default=[],
                        help="item files giving content (protocol, dataset) to sources that only carry ids")
    parser.add_argument("--conditional", help="judged conditional items (or conditional preferences) for the "
                                              "interplay analysis, with --joint")
    parser.add_argument("--joint", help="judged joint items whose members appear in --conditional")
    parser.add_argument("--group-by", default="dataset",
                        help="item field that names the dataset in the agreement table (default: dataset)")
    parser.add_argument("--output", required=True, help="folder for analysis.md, analysis.json and the charts")


def run(args: argparse.Namespace) -> int:
    from jpo.analysis.labels import add_items, load_labels
    from jpo.analysis.report import analyze, write_report
    from jpo.data import read_table

    if not args.labels and not (args.conditional and args.joint):
        raise JpoError("give at least one --labels SOURCE, or --conditional and --joint")
    if bool(args.conditional) != bool(args.joint):
        raise JpoError("--conditional and --joint go together")
    sources = []
    for spec in args.labels:
        name, _, path = spec.partition("=") if "=" in spec else (None, "", spec)
        sources.append(load_labels(path, name))
    names = Counter(s.name for s in sources)
    if any(n > 1 for n in names.values()):
        raise JpoError(f"two label sources share a name ({', '.join(n for n, c in names.items() if c > 1)}); "
                       "name them with --labels NAME=PATH")
    for path in args.items:
        from jpo.data import load_items

        items = load_items(path)
        for source in sources:
            add_items(source, items)
    conditional = [dict(r) for r in read_table(args.conditional).rows] if args.conditional else None
    joint = [dict(r) for r in read_table(args.joint).rows] if args.joint else None
    try:
        result = analyze(sources, group_by=args.group_by, conditional=conditional, joint=joint)
    except ValueError as problem:
        raise JpoError(str(problem)) from None
    written = write_report(result, args.output)
    n_agreement = len(result["agreement"])
    print(f"jpo analyze: {len(sources)} label sources, {n_agreement} agreement rows, "
          f"{len(result['interplay'])} interplay analyses -> {', '.join(str(p) for p in written)}")
    return 0
