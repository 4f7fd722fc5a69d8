"""`jpo data validate FILE...`: what each file is, how many rows it has, and what is wrong with it.

An error is what no command can read: a file that cannot be parsed, a row with a missing or malformed field (the
first one is named, file:line: field); it makes the exit status 2. A note is a count of rows that are readable but
worth knowing about (empty responses, identical pairs, columns passed through unread): the same counts `jpo train`,
`jpo sft` and `jpo pairs` print, which they handle without failing, so notes alone exit 0."""

from __future__ import annotations

import argparse

from jpo.errors import JpoError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    validate = verbs.add_parser("validate", help="print each file's detected format, row count and notes; exit 2 if "
                              "any file or row cannot be read")
    validate.add_argument("files", nargs="+", metavar="FILE", help="data files, saved dataset folders or hub names")


def run(args: argparse.Namespace) -> int:
    from jpo.data.load import describe

    bad = noted = 0
    for source in args.files:
        try:
            line, has_notes = describe(source)
            print(line)
            noted += has_notes
        except JpoError as error:
            print(f"error: {error}")
            bad += 1
    if bad:
        print(f"{bad} of {len(args.files)} files invalid")
    elif noted:  # say why the exit status is 0 although something was reported
        print(f"{len(args.files)} of {len(args.files)} files valid ({noted} with notes: counts, not errors)")
    return 2 if bad else 0
