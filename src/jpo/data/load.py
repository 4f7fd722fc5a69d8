"""Load any supported source as rows of one kind, with the format detected from its columns.

Detection looks at the columns of the first row and takes the most specific matching layout (the one that
explains the most columns); every later row must have that layout's columns too, or the error names its line.
Named sources (`jpo.data.sources`) read their files through the same detection, conversion and kind changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jpo.data.formats import (
    ALSO_READ_AS,
    COLUMNS,
    FORMATS,
    KINDS,
    RESPONSES,
    Format,
    as_messages,
    item_id,
    text_of,
)
from jpo.data.io import Table, read_table
from jpo.errors import DataError


@dataclass
class Loaded:
    """Rows of one kind read from one source, with what was detected."""

    path: str
    format: Format
    kind: str
    rows: list[dict[str, Any]]
    unused: tuple[str, ...] = ()  # columns of the source that the format does not read (passed through)
    made_chat: int = 0  # rows whose plain text became chat turns, to match conversational rows (see `unify_text`)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def empty_responses(self) -> int:
        """Rows with an empty response: allowed (a model may answer nothing), but always reported."""
        return sum(any(f in row and not text_of(row[f]).strip() for f in RESPONSES) for row in self.rows)

    @property
    def identical_pairs(self) -> int:
        """Pairs comparing a text with itself (same prompt, same response): no preference, so training drops them."""
        return identical_pairs(self.rows, self.kind)

    def notes(self) -> list[str]:
        """What `jpo data validate`, `jpo train`, `jpo sft` and `jpo pairs` all report about a source."""
        notes = []
        if self.empty_responses:
            notes.append(f"{self.empty_responses} with an empty response")
        if self.identical_pairs:
            notes.append(f"{self.identical_pairs} identical pairs (chosen equals rejected, not trained on)")
        if self.made_chat:
            notes.append(f"{self.made_chat} rows of plain text made chat turns (user prompt, assistant response) to "
                         "match the conversational rows")
        if self.unused:
            notes.append(f"columns the {self.format.name} layout does not read (passed through): "
                         f"{', '.join(self.unused)}")
        return notes

    def summary(self) -> str:
        """One line: the source, its layout, its rows and `notes`."""
        return "; ".join([f"{self.path} (layout {self.format.name}): {len(self)} {self.kind} rows", *self.notes()])


# The two sides of a pair, in the order (prompt, response, prompt, response).
PAIR_SIDES = {"preference": COLUMNS["preference"], "items": ("prompt_a", "response_a", "prompt_b", "response_b")}
PROMPT_FIELDS = ("prompt", "prompt_chosen", "prompt_rejected", "prompt_a", "prompt_b")
RESPONSE_FIELDS = ("response", "completion", "chosen", "rejected", "response_a", "response_b", "reference")


def identical_pairs(rows: Iterable[dict[str, Any]], kind: str) -> int:
    """How many `kind` rows (preference or items) compare a text with itself: the same prompt and the same response
    on both sides. No preference can be read from one (training drops and counts them); 0 for other kinds."""
    sides = PAIR_SIDES.get(kind)
    if sides is None:
        return 0
    return sum(row[sides[0]] == row[sides[2]] and row[sides[1]] == row[sides[3]] for row in rows)


def unify_text(groups: list[list[dict[str, Any]]]) -> list[int]:
    """One representation for rows read together (one Arrow table, one tokenization): where any prompt or response
    is a list of chat messages, every plain-text one becomes chat turns (a prompt a user turn, a response an
    assistant turn), as TRL asks of a dataset. Converts in place; returns the rows converted per group."""
    fields = PROMPT_FIELDS + RESPONSE_FIELDS
    values = [row[f] for rows in groups for row in rows for f in fields if f in row]
    if not any(isinstance(v, list) for v in values) or not any(isinstance(v, str) for v in values):
        return [0] * len(groups)
    counts = []
    for rows in groups:
        count = 0
        for row in rows:
            plain = [f for f in fields if isinstance(row.get(f), str)]
            for field in plain:
                row[field] = as_messages(row[field], "user" if field in PROMPT_FIELDS else "assistant")
            count += bool(plain)
        counts.append(count)
    return counts


def formats_of(kinds: Iterable[str]) -> tuple[Format, ...]:
    wanted = set(kinds)
    return tuple(f for f in FORMATS if f.kind in wanted)


def detect(table: Table, formats: Iterable[Format] = FORMATS) -> Format:
    """The most specific of `formats` whose columns the first row has.

    A DataError otherwise: when the row has all but one of a layout's columns (and at least two of them), it names
    that column (`file:1: field 'response_b': missing column (layout items)`), else it lists every layout."""
    if not table.rows:
        if "object" in table.meta:
            raise DataError("a JSON object where rows (an array or JSON Lines) are expected", path=table.path)
        raise DataError("no rows", path=table.path)
    keys = set(table.rows[0])
    formats = tuple(formats)
    candidates = [f for f in formats if f.matches(keys)]
    if not candidates:
        near = [f for f in formats if len(f.columns - keys) == 1 and len(f.columns & keys) >= 2]
        best = max((len(f.columns) for f in near), default=0)
        missing: dict[str, Format] = {}
        for f in near:
            if len(f.columns) == best:
                missing.setdefault(next(iter(f.columns - keys)), f)
        if len(missing) == 1:  # one column away from one layout (or from layouts that all lack the same column)
            (column, fmt), = missing.items()
            raise table.error(0, f"missing column (layout {fmt.name})", column)
        known = "; ".join(f"{f.name}: {', '.join(sorted(f.columns))}" for f in formats)
        raise table.error(0, f"unrecognised columns {sorted(keys)}; expected one of [{known}]")
    return max(candidates, key=lambda f: len(f.columns))


def convert_row(table: Table, index: int, fmt: Format) -> dict[str, Any]:
    """Row `index` of `table` in its kind's columns; a DataError names the line and field of what is wrong."""
    row = table.rows[index]
    for column in sorted(fmt.columns):
        if column not in row:
            raise table.error(index, f"missing column (the file's format is {fmt.name})", column)

    def fail(message: str, field: str | None) -> DataError:
        return table.error(index, message, field)

    return fmt.convert(row, fail)


def unused_columns(table: Table, fmt: Format) -> tuple[str, ...]:
    return tuple(sorted({column for row in table.rows for column in row} - fmt.reads))


def _unique_ids(rows: list[dict[str, Any]], table: Table, *, explicit: bool) -> None:
    """Ids must identify rows. Repeated explicit ids are an error; repeated content gets `-2`, `-3` suffixes."""
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        rid = row["id"]
        if rid in seen:
            if explicit:
                first = table.where(seen[rid])
                place = f"line {first['line']}" if "line" in first else f"row {first['row']}"
                raise table.error(index, f"duplicate id {rid!r} (first at {place})", "id")
            count = 2
            while f"{rid}-{count}" in seen:
                count += 1
            row["id"] = rid = f"{rid}-{count}"
        seen[rid] = index


ID_COLUMNS = ("id", "instruction_id", "question_id")


def _source_id(row: dict[str, Any]) -> str:
    """The row's own id (under any of the usual names), else one derived from its prompt."""
    for column in ID_COLUMNS:
        if row.get(column) is not None:
            return str(row[column])
    return item_id(row["prompt"])


def _chosen_side(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"prompt": r["prompt_chosen"], "response": r["chosen"],
             **{k: v for k, v in r.items() if k not in COLUMNS["preference"]}} for r in rows]


def as_kind(rows: list[dict[str, Any]], source_kind: str, kind: str) -> list[dict[str, Any]]:
    """Rows of `source_kind` as rows of `kind`: see ALSO_READ_AS; named sources also take a preference's chosen side
    as a demonstration (sft) or as the reference of its prompt (prompts)."""
    if source_kind == kind:
        return rows
    if (source_kind, kind) in (("preference", "sft"), ("preference", "prompts")):
        return as_kind(_chosen_side(rows), "sft", kind)
    if (source_kind, kind) == ("unpaired", "sft"):  # KTO rows for SFT: the label rides along (SFT_READS_LABELLED)
        return [{"prompt": r["prompt"], "response": r["completion"],
                 **{k: v for k, v in r.items() if k not in ("prompt", "completion")}} for r in rows]
    if (source_kind, kind) == ("sft", "prompts"):
        return [{"id": _source_id(r), "prompt": r["prompt"], "reference": r["response"],
                 **{k: v for k, v in r.items() if k not in ("prompt", "response", *ID_COLUMNS)}} for r in rows]
    if (source_kind, kind) == ("sft", "generations"):
        return [{**r, "id": _source_id(r)} for r in rows]
    if (source_kind, kind) == ("preference", "items"):
        return preferences_to_items(rows)
    if (source_kind, kind) == ("preference", "unpaired"):
        return unpair(rows)
    raise AssertionError(f"no conversion from {source_kind} to {kind}")


# SFT training reads labelled (KTO) layouts as what they are, their label used (undesirable rows left out), where
# the plain SFT layouts alone would take `{messages, label}` for TRL messages and pass the label by unread.
SFT_READS_LABELLED = ("unpaired",)

# The kinds a trainer reads (as one dataset, so in one text representation: see `unify_text`).
TRAINED_KINDS = ("preference", "sft", "unpaired")


def load(source: str | os.PathLike, kind: str, also: tuple[str, ...] = ()) -> Loaded:
    """Rows of `kind` from a file, a saved dataset or a hub name; raises DataError naming file, line and field.
    `also`: more kinds whose layouts are read as `kind` (SFT training reads KTO files with their label:
    `SFT_READS_LABELLED`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    table = read_table(source)
    allowed = formats_of((kind, *ALSO_READ_AS.get(kind, ()), *also))
    if kind in TRAINED_KINDS:
        _not_another_trained_kind(table, kind, allowed)
    fmt = detect(table, allowed)
    rows = as_kind(_convert_all(table, fmt), fmt.kind, kind)
    if kind in ("items", "prompts", "references"):  # generations repeat prompts across temperatures and seeds
        _unique_ids(rows, table, explicit=any(column in table.rows[0] for column in ID_COLUMNS))
    # One representation only where rows become one Arrow table and one tokenization (training): items, prompts and
    # generations may mix plain and chat text, and are shown or judged as written.
    (made_chat,) = unify_text([rows]) if kind in TRAINED_KINDS else (0,)  # e.g. Alpaca rows, some with a system
    return Loaded(table.path, fmt, kind, rows, unused_columns(table, fmt), made_chat)


def _not_another_trained_kind(table: Table, kind: str, allowed: tuple[Format, ...]) -> None:
    """A DataError where a trainer is given another trainer's data (preference pairs to `jpo sft`, SFT rows to
    `jpo train`): the file's columns fit a layout of that kind more specifically than any layout of `kind`, which
    would otherwise read a part of each row (LLaMA-Factory's DPO file as ShareGPT turns) or list every layout."""
    try:
        overall = detect(table)
    except DataError:
        return
    if overall.kind not in TRAINED_KINDS or overall in allowed:
        return
    keys = set(table.rows[0])
    own = [len(f.columns) for f in allowed if f.matches(keys)]
    if own and max(own) >= len(overall.columns):
        return
    raise table.error(0, f"these are {overall.kind} rows (layout {overall.name}: {', '.join(sorted(overall.columns))}"
                         f"), not {kind} rows (layouts {', '.join(f.name for f in allowed)})")


def load_many(sources: Iterable[str | os.PathLike], kind: str, also: tuple[str, ...] = ()) -> list[Loaded]:
    """Several sources read as one dataset (`jpo train --dataset a.jsonl b.jsonl`): each loaded as `load` does,
    then in one text representation (`unify_text`: plain-text files next to conversational ones become chat
    turns, counted in each file's `made_chat`)."""
    loaded = [load(source, kind, also) for source in sources]
    for one, count in zip(loaded, unify_text([one.rows for one in loaded]), strict=True):
        one.made_chat += count
    return loaded


def _convert_all(table: Table, fmt: Format) -> list[dict[str, Any]]:
    return [convert_row(table, index, fmt) for index in range(len(table.rows))]


def inspect(source: str | os.PathLike | Table) -> Loaded:
    """Load a source as whatever kind its columns say (for `jpo data validate`)."""
    table = source if isinstance(source, Table) else read_table(source)
    fmt = detect(table)
    rows = _convert_all(table, fmt)
    (made_chat,) = unify_text([rows]) if fmt.kind in TRAINED_KINDS else (0,)
    return Loaded(table.path, fmt, fmt.kind, rows, unused_columns(table, fmt), made_chat)


def load_preferences(source: str | os.PathLike) -> list[dict[str, Any]]:
    """Joint preference rows; conditional sources come back with equal prompts."""
    return load(source, "preference").rows


def load_sft(source: str | os.PathLike) -> list[dict[str, Any]]:
    return load(source, "sft").rows


def load_items(source: str | os.PathLike) -> list[dict[str, Any]]:
    """Comparison items; a preference file is read as items with its chosen side as `a` (`preference: "a"`)."""
    return load(source, "items").rows


def load_prompts(source: str | os.PathLike) -> list[dict[str, Any]]:
    """Evaluation prompts with stable ids, and `reference` where the source has a gold response."""
    return load(source, "prompts").rows


def load_unpaired(source: str | os.PathLike) -> list[dict[str, Any]]:
    """KTO rows `{prompt, completion, label}`; paired data gives a desirable and an undesirable row per pair."""
    return load(source, "unpaired").rows


def load_generations(source: str | os.PathLike) -> list[dict[str, Any]]:
    return load(source, "generations").rows


def load_references(source: str | os.PathLike) -> list[dict[str, Any]]:
    return load(source, "references").rows


def preferences_to_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference rows as comparison items, chosen as `a`; the source's own preference is kept as `preference`."""
    items = []
    for row in rows:
        texts = tuple(row[column] for column in COLUMNS["preference"])
        rest = {k: v for k, v in row.items() if k not in COLUMNS["preference"]}
        items.append({"id": str(rest.pop("id", item_id(*texts))), "prompt_a": texts[0], "response_a": texts[1],
                      "prompt_b": texts[2], "response_b": texts[3], "preference": "a", **rest})
    return items


def items_to_preferences(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Decisive judged items as joint preference rows, and the count of every label (ties and invalid are not
    preferences, and are counted rather than silently left out)."""
    counts = {label: 0 for label in ("a", "b", "tie", "invalid")}
    rows = []
    for item in items:
        label = item.get("label")
        if label not in counts:
            raise DataError(f"item {item.get('id')!r} has no label a|b|tie|invalid", field="label")
        counts[label] += 1
        if label in ("a", "b"):
            win, lose = ("a", "b") if label == "a" else ("b", "a")
            rows.append({"id": item["id"], "prompt_chosen": item[f"prompt_{win}"], "chosen": item[f"response_{win}"],
                         "prompt_rejected": item[f"prompt_{lose}"], "rejected": item[f"response_{lose}"]})
    return rows, counts


def preference_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decisive judged items as training rows (`items_to_preferences`), written as TRL's conditional {prompt,
    chosen, rejected} when every prompt pair is equal, else joint {prompt_chosen, chosen, prompt_rejected,
    rejected}: what `jpo judge --to-preferences` writes and the active loop trains on."""
    rows, _ = items_to_preferences(items)
    if rows and all(r["prompt_chosen"] == r["prompt_rejected"] for r in rows):
        return [{"id": r["id"], "prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]}
                for r in rows]
    return rows


def unpair(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired preferences as KTO's unpaired rows: the chosen side desirable, the rejected side undesirable."""
    out = []
    for row in rows:
        out.append({"prompt": row["prompt_chosen"], "completion": row["chosen"], "label": True})
        out.append({"prompt": row["prompt_rejected"], "completion": row["rejected"], "label": False})
    return out


def _verdict_map_size(obj: dict) -> int | None:
    """The JPO authors' cached verdicts: {run: {instruction+output: verdict}}. Its entry count, or None."""
    if obj and all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in obj.values()):
        return sum(len(v) for v in obj.values())
    return None


def describe(source: str) -> tuple[str, bool]:
    """`jpo data validate`'s line for a readable source (its format, row count and `Loaded.notes`) and whether it
    carries notes; DataError / JpoError with the first error otherwise."""
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
    present = loaded.format.columns | set(loaded.unused)
    near = [f for f in FORMATS if f is not loaded.format and f.columns & set(loaded.unused)]
    if not near:
        return ""
    best = min(near, key=lambda f: (len(f.columns - present), -len(f.columns & present), f.name))
    return f" ({best.name} would also need {', '.join(sorted(best.columns - present))})"
