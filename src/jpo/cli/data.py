"""`jpo data validate FILE...`: what each file is, how many rows it has, and what is wrong with it.

An error is what no command can read: a file that cannot be parsed, a row with a missing or malformed field (the
first one is named, file:line: field); it makes the exit status 2. A note is a count of rows that are readable but
worth knowing about (empty responses, identical pairs, columns passed through unread): the same counts `jpo train`,
`jpo sft` and `jpo pairs` print, which they handle without failing, so notes alone exit 0."""

from __future__ import annotations

import argparse

from jpo.data.formats import FORMATS
from jpo.data.io import read_table
from jpo.data.load import Loaded, inspect
from jpo.errors import JpoError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    validate = verbs.add_parser("validate", help="print each file's detected format, row count and notes; exit 2 if "
                              "any file or row cannot be read")
    validate.add_argument("files", nargs="+", metavar="FILE", help="data files, saved dataset folders or hub names")


def _verdict_map_size(obj: dict) -> int | None:
    """The JPO authors' cached verdicts: {run: {instruction+output: verdict}}. Its entry count, or None."""
    if obj and all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in obj.values()):
        return sum(len(v) for v in obj.values())
    return None


def validate(source: str) -> str:
    """One line describing a valid source; raises JpoError with the first error otherwise."""
    return _described(source)[0]


def _described(source: str) -> tuple[str, bool]:
    """`validate`'s line and whether it carries notes."""
    table = read_table(source)
    if not table.rows and "object" in table.meta and (size := _verdict_map_size(table.meta["object"])) is not None:
        return f"{table.path}: jpo-authors-verdicts (verdicts: cached judge verdicts), {size} entries", False
    loaded = inspect(table)
    fmt = loaded.format
    notes = "".join(f"; {note}" for note in loaded.notes())  # the same notes `jpo train` and `jpo pairs` print
    line = f"{table.path}: {fmt.name} ({fmt.kind}: {fmt.description}), {len(loaded)} rows{notes}{_near_note(loaded)}"
    return line, bool(notes)


def _near_note(loaded: Loaded) -> str:
    """A column that another format needs usually means the file lost a column (`prompt,chosen` is a preference
    file without `rejected`): name that format too."""
    if not loaded.unused:
        return ""
    note = ""
    present = loaded.format.columns | set(loaded.unused)
    near = [f for f in FORMATS if f is not loaded.format and f.columns & set(loaded.unused)]
    if near:
        best = min(near, key=lambda f: (len(f.columns - present), -len(f.columns & present), f.name))
        note += f" ({best.name} would also need {', '.join(sorted(best.columns - present))})"
    return note


def run(args: argparse.Namespace) -> int:
    bad = noted = 0
    for source in args.files:
        try:
            line, has_notes = _described(source)
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
