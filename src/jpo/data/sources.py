"""Named sources: the paper's datasets by name (`tldr`, `hh-helpful`, `ultrafeedback`, `jpo-authors`, `alpaca-eval`).

`load_source(name, split, kind=...)` returns canonical rows (see `jpo.data.formats`): ``sft`` rows ``{prompt,
response}``, ``preference`` rows ``{prompt_chosen, chosen, prompt_rejected, rejected}`` or ``prompts`` rows ``{id,
prompt, reference}``, each with a report of what was read, merged and left out. Each source knows its real hub
location (dataset name, config, data_dir, split names) and reads it with `datasets.load_dataset`; a local copy
stands in for the hub with `path=` (a file, or a folder holding one file per split) or the environment variable
``JPO_SOURCE_<NAME>`` (``JPO_SOURCE_HH_HELPFUL=/data/hh``), which is how the tests and offline users run.

A source is data, not code: per kind, its location, the formats (`jpo.data.formats`) its files come in, a filter
that names the reason for every row it leaves out, and the finishing touches that make the rows the paper's (plain
text, the TL;DR instruction). Rows go through the same detection and conversion as `jpo.data.load`; where a file
reader would stop at a bad row, a source counts the row under the conversion's message and goes on, because the
published datasets hold rows the paper leaves out (CNN/DM articles among the TL;DR comparisons, multi-turn HH
dialogues). Instructions are deduplicated (first occurrence kept; repeats counted), never dropped silently. Prompts
are the *task instruction* the judge sees (for TL;DR: the paper's summary instruction around the post); the
authors' model template (``### Instructions: ... ### Response:``) is applied later, by whoever tokenizes
(`jpo.modeling.apply_template`), so judges never see it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.data.formats import COLUMNS, FORMATS_BY_NAME, text_of
from jpo.data.io import SUFFIXES, Table, read_hub, read_hub_file, read_table
from jpo.data.load import as_kind, convert_row, detect, unify_text
from jpo.errors import DataError, JpoError

# The paper's TL;DR task instruction and the authors' model template, exactly as in their released generations
# (`outputs/tldr_0.001.json`): note the space before the newline after "accordingly.", and no space after
# "### Response:" (the authors' outputs all begin with one, which `jpo.modeling.apply_template` restores on
# responses).
TLDR_INSTRUCTION = "You are given a social media post, summarize it accordingly. \nPost: {post}"
AUTHORS_TEMPLATE = "### Instructions: {prompt}\n\n### Response:"

PROMPT_FIELDS = ("prompt", "prompt_chosen", "prompt_rejected")
RESPONSE_FIELDS = ("response", "chosen", "rejected")


@dataclass
class SourceReport:
    """What a source read, kept and left out (by reason)."""

    name: str
    split: str
    kind: str
    origin: str = ""
    read: int = 0
    kept: int = 0
    duplicates: int = 0
    made_chat: int = 0  # plain-text rows made chat turns to match rows that are conversations (see unify_text)
    left_out: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        parts = [f"{self.name}:{self.split} ({self.kind}, from {self.origin}): {self.read} read, {self.kept} kept"]
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated instructions merged")
        if self.made_chat:
            parts.append(f"{self.made_chat} plain-text rows made chat turns to match the conversations")
        parts += [f"{n} left out: {reason}" for reason, n in sorted(self.left_out.items())]
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "kind": self.kind, "origin": self.origin, "read": self.read,
                "kept": self.kept, "duplicates": self.duplicates, "made_chat": self.made_chat,
                "left_out": dict(self.left_out)}


@dataclass
class SourceRows:
    rows: list[dict[str, Any]]
    report: SourceReport

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Hub:
    """Where one part of a source lives on the Hugging Face Hub."""

    name: str
    config: str | None = None
    data_dir: str | None = None
    data_files: dict[str, str] | None = None  # split -> file in the repo (for repos of plain files)
    # split -> one file fetched with `huggingface_hub.hf_hub_download`, for repos `load_dataset` cannot read by name
    # (a loading script): from the hub cache this works offline too, which `hf://` data files do not
    files: dict[str, str] | None = None
    splits: dict[str, str] = field(default_factory=dict)  # our split name -> the hub's


Drop = Callable[[dict[str, Any]], str | None]  # a converted row -> why it is left out, or None to keep it
Finish = Callable[[dict[str, Any], str | None], dict[str, Any]]  # (kept row, task) -> the source's row


@dataclass(frozen=True)
class Part:
    """One kind of a source's rows: where they live, the formats their files come in, what is left out and why, how
    a kept row is finished, and which extra columns it keeps (None: all the format passes through)."""

    hub: Hub
    formats: tuple[str, ...]
    drop: Drop | None = None
    finish: Finish | None = None
    extras: tuple[str, ...] | None = None
    # file names to look for in a local folder, before the generic `{split}.jsonl` etc.: split -> name, where `*`
    # stands for any split and `{task}` for the source's task
    local: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    parts: dict[str, Part]
    default_kind: str
    tasks: tuple[str, ...] = ()  # a source holding several tasks' data: the choices of `task=` (first: default)


# --- filters and finishing touches -------------------------------------------------------------------------------


def tldr_instruction(post: str) -> str:
    """The paper's summary instruction around a Reddit post (idempotent)."""
    post = post.strip()
    return post if post.startswith(TLDR_INSTRUCTION[:40]) else TLDR_INSTRUCTION.format(post=post)


_TRL_TLDR = re.compile(r"POST:\s*(.*?)\s*TL;DR:\s*$", re.S)


def _with_instruction(row: dict[str, Any], task: str | None = "tldr") -> dict[str, Any]:
    """The authors store bare posts, TRL whole `SUBREDDIT: ... POST: ... TL;DR:` prompts; the paper's task
    instruction around the post is what the judge and the model see."""
    if task != "tldr":
        return row
    out = dict(row)
    for column in PROMPT_FIELDS:
        if isinstance(out.get(column), str):
            found = _TRL_TLDR.search(out[column])
            out[column] = tldr_instruction(found.group(1) if found else out[column])
    return out


def _tldr(row: dict[str, Any], task: str | None) -> dict[str, Any]:
    """TL;DR rows: the instruction around the post, summaries stripped, the post's id as `id` in every layout."""
    out = _with_instruction(row)
    for column in RESPONSE_FIELDS:
        if isinstance(out.get(column), str):
            out[column] = out[column].strip()
    if "instruction_id" in out:
        out["id"] = out.pop("instruction_id")
    return out


def _plain_text(row: dict[str, Any], strip: bool) -> dict[str, Any]:
    """Single-turn chat rows as plain text: where every prompt is one user turn and every response one assistant
    turn. A row with more (a system turn, earlier turns) stays chat messages, never cut to its last turn."""
    out = dict(row)
    roles = [(c, "user") for c in PROMPT_FIELDS] + [(c, "assistant") for c in RESPONSE_FIELDS]
    chats = [(c, role) for c, role in roles if isinstance(out.get(c), list)]
    if all(len(out[c]) == 1 and out[c][0]["role"] == role for c, role in chats):
        for column, _ in chats:
            out[column] = out[column][0]["content"]
        for column, _ in roles:
            if isinstance(out.get(column), str) and strip:
                out[column] = out[column].strip()
    return out


def _hh(row: dict[str, Any], task: str | None) -> dict[str, Any]:
    return _plain_text(row, strip=True)


def _ultrafeedback(row: dict[str, Any], task: str | None) -> dict[str, Any]:
    return _plain_text(row, strip=False)


def _multi_turn(row: dict[str, Any]) -> str | None:
    """The paper keeps single-turn dialogues: one user turn and one assistant turn per side."""
    if any(isinstance(row.get(c), list) and len(row[c]) != 1 for c in PROMPT_FIELDS + RESPONSE_FIELDS):
        return "multi-turn dialogue"
    return None


def _undecided(row: dict[str, Any]) -> str | None:
    """UltraFeedback pairs whose ratings tie, or whose responses are the same text, state no preference."""
    scores = row["metadata"] if isinstance(row.get("metadata"), dict) else row
    if scores.get("score_chosen") is not None and scores.get("score_chosen") == scores.get("score_rejected"):
        return "tied scores"
    if text_of(row["chosen"]).strip() == text_of(row["rejected"]).strip():
        return "identical responses"
    return None


def _alpaca_eval(row: dict[str, Any], task: str | None) -> dict[str, Any]:
    out = dict(row)
    if "generator" in out:
        out["reference_generator"] = out.pop("generator")
    return out


# --- the catalogue -----------------------------------------------------------------------------------------------

_TLDR_SFT_HUB = Hub("vwxyzjn/summarize_from_feedback_tldr_3_filtered")
_TLDR_SFT_FORMATS = ("tldr-posts", "jpo-authors-gold", "jpo-authors-sft", "trl-prompt-completion")
_TLDR_EXTRAS = ("id", "subreddit", "title", "worker")
_AUTHORS_REPO = "jointpreferences/sft_and_pref_data"
_AUTHORS_SFT = ("jpo-authors-sft", "jpo-authors-gold")
_HH_HUB = Hub("Anthropic/hh-rlhf", data_dir="helpful-base")
_HH_SFT = ("trl-implicit-preference", *_AUTHORS_SFT)
_ULTRAFEEDBACK_HUB = Hub("trl-lib/ultrafeedback_binarized")
_ULTRAFEEDBACK = ("trl-preference", "trl-implicit-preference")


def _authors_hub(kind: str) -> Hub:
    files = {
        "sft": {"train": "train_sft.jsonl", "validation": "val_sft.jsonl"},
        "preference": {"train": "train_conditional_pref.jsonl", "validation": "val_conditional_pref.jsonl",
                       "joint": "train_joint_pref.jsonl"},
        "prompts": {"test": "test.json*"},  # tldr/test.json (JSON Lines), anthropic_helpful/test.jsonl
    }[kind]
    return Hub(_AUTHORS_REPO, data_files={split: f"data/{{task}}/{name}" for split, name in files.items()})


def _authors_part(kind: str, formats: tuple[str, ...]) -> Part:
    hub = _authors_hub(kind)
    local = {split: name.removeprefix("data/") for split, name in (hub.data_files or {}).items()}
    return Part(hub, formats, finish=_with_instruction, local=local)


SOURCES: dict[str, Source] = {
    "tldr": Source(
        "tldr", "Reddit TL;DR: OpenAI's human comparisons (preference), the filtered TL;DR SFT set (sft), its test "
        "posts with gold summaries (prompts); prompts carry the paper's summary instruction",
        {"sft": Part(_TLDR_SFT_HUB, _TLDR_SFT_FORMATS, finish=_tldr, extras=_TLDR_EXTRAS),
         "prompts": Part(_TLDR_SFT_HUB, _TLDR_SFT_FORMATS, finish=_tldr, extras=_TLDR_EXTRAS,
                         local={"test": "tldr/test.json"}),
         "preference": Part(Hub("openai/summarize_from_feedback", config="comparisons"),
                            ("tldr-comparisons", "jpo-authors", "trl-preference"), finish=_tldr, extras=_TLDR_EXTRAS)},
        "sft"),
    "hh-helpful": Source(
        "hh-helpful", "Anthropic HH helpful-base, single-turn dialogues only, instruction and responses split from "
        "the transcripts (preference: HH's chosen/rejected; sft: the chosen side; prompts: test with chosen as gold)",
        {"preference": Part(_HH_HUB, ("trl-implicit-preference", "jpo-authors"), drop=_multi_turn, finish=_hh),
         "sft": Part(_HH_HUB, _HH_SFT, drop=_multi_turn, finish=_hh),
         "prompts": Part(_HH_HUB, _HH_SFT, drop=_multi_turn, finish=_hh)},
        "preference"),
    "ultrafeedback": Source(
        "ultrafeedback", "UltraFeedback binarized (trl-lib/ultrafeedback_binarized; the paper's appendix E): "
        "preference pairs, their chosen side as sft, test prompts (chosen as reference, ties included)",
        {"preference": Part(_ULTRAFEEDBACK_HUB, _ULTRAFEEDBACK, drop=_undecided, finish=_ultrafeedback,
                            extras=("source_index", "source")),
         "sft": Part(_ULTRAFEEDBACK_HUB, _ULTRAFEEDBACK, drop=_undecided, finish=_ultrafeedback, extras=()),
         "prompts": Part(_ULTRAFEEDBACK_HUB, _ULTRAFEEDBACK, finish=_ultrafeedback, extras=())},
        "preference"),
    "jpo-authors": Source(
        "jpo-authors", "the JPO authors' released data (jointpreferences/sft_and_pref_data) in its own columns "
        "(i_chosen, r_chosen, i_reject, r_reject; instruction, response; instruction, gold_response); choose the "
        "task with task=tldr|anthropic_helpful; split `joint` is their joint-preference file (D_H)",
        {"preference": _authors_part("preference", ("jpo-authors",)),
         "sft": _authors_part("sft", _AUTHORS_SFT),
         "prompts": _authors_part("prompts", _AUTHORS_SFT)},
        "preference", tasks=("tldr", "anthropic_helpful")),
    "alpaca-eval": Source(
        "alpaca-eval", "the 805 AlpacaEval instructions, with a reference output (text-davinci-003 from the hub "
        "file; gpt4_1106_preview for AlpacaEval 2 from a local model_outputs.json)",
        {"prompts": Part(Hub("tatsu-lab/alpaca_eval", files={"eval": "alpaca_eval.json"}),
                         ("alpaca", "instructions"), finish=_alpaca_eval, extras=("dataset", "reference_generator"),
                         local={"*": "gpt4_1106_preview_model_outputs.json"})},
        "prompts"),
}

SPLIT_ALIASES = {"test": ("test", "eval", "validation", "val"), "validation": ("validation", "val", "valid", "eval"),
                 "eval": ("eval", "test"), "train": ("train",)}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise JpoError(f"unknown source {name!r} (known: {', '.join(SOURCES)})")
    return SOURCES[name]


def _env_path(name: str) -> str | None:
    return os.environ.get("JPO_SOURCE_" + re.sub(r"\W", "_", name).upper())


def _local_file(folder: Path, split: str, names: dict[str, str], task: str | None) -> Path:
    """The file for `split` in a local folder: the source's own file names first, then `{split}*` (with aliases:
    a `test` split may be stored as `eval` or `validation`)."""
    tried = [names[k].format(task=task or "") for k in (split, "*") if k in names]
    for alias in SPLIT_ALIASES.get(split, (split,)):
        tried += [f"{alias}{suffix}{gz}" for suffix in SUFFIXES for gz in ("", ".gz")] + [f"{alias}_*"]
    for pattern in tried:
        found = sorted(f for f in folder.glob(pattern) if f.is_file())
        if found:
            return found[0]
    raise DataError(f"no file for split '{split}' (looked for {', '.join(tried)})", path=folder)


def _hub_table(part: Part, split: str, task: str | None) -> Table:
    hub = part.hub
    if hub.files is not None:
        if split not in hub.files:
            raise JpoError(f"{hub.name}: no split '{split}' (has {', '.join(hub.files)})")
        return read_hub_file(hub.name, hub.files[split])
    kwargs: dict[str, Any] = {}
    if hub.config:
        kwargs["name"] = hub.config
    if hub.data_dir:
        kwargs["data_dir"] = hub.data_dir
    hub_split = hub.splits.get(split, split)
    if hub.data_files is not None:
        if split not in hub.data_files:
            raise JpoError(f"{hub.name}: no split '{split}' (has {', '.join(hub.data_files)})")
        kwargs["data_files"] = {split: hub.data_files[split].format(task=task or "")}
    return read_hub(hub.name, hub_split, **kwargs)


def _read(part: Part, table: Table, kind: str, task: str | None, report: SourceReport) -> list[dict[str, Any]]:
    """The table's rows in `kind`'s columns, through the part's formats; every row left out is counted by reason."""
    if not table.rows and "object" not in table.meta:  # an empty hub split
        return []
    fmt = detect(table, [FORMATS_BY_NAME[name] for name in part.formats])
    rows = []
    for index in range(len(table.rows)):
        try:
            row = convert_row(table, index, fmt)
        except DataError as error:
            report.left_out[error.message if error.field is None else f"{error.field}: {error.message}"] += 1
            continue
        reason = part.drop(row) if part.drop else None
        if reason:
            report.left_out[reason] += 1
            continue
        rows.append(part.finish(row, task) if part.finish else row)
    rows = as_kind(rows, fmt.kind, kind)
    if part.extras is None:
        return rows
    keep = (*COLUMNS[kind], *part.extras)
    return [{column: row[column] for column in keep if column in row} for row in rows]


def load_source(
    name: str,
    split: str = "train",
    *,
    kind: str | None = None,
    path: str | os.PathLike | None = None,
    task: str | None = None,
    limit: int | None = None,
    dedupe: bool = True,
) -> SourceRows:
    """Canonical rows of `kind` from a named source's `split`: the hub, or a local `path` / $JPO_SOURCE_<NAME>.

    `task` picks the task of a source that holds several (`jpo-authors`: tldr | anthropic_helpful). `limit` keeps
    the first N rows after conversion and deduplication (counted as left out)."""
    source = get_source(name)
    kind = kind or source.default_kind
    if kind not in source.parts:
        raise JpoError(f"source {name!r} has no {kind} data (has: {', '.join(source.parts)})")
    part = source.parts[kind]
    if source.tasks:
        task = task or source.tasks[0]
        if task not in source.tasks:
            raise JpoError(f"{name}: unknown task {task!r} ({' | '.join(source.tasks)})")
    local = path or _env_path(name)
    if local:
        local_path = Path(local).expanduser()
        if local_path.is_dir() and not (local_path / "dataset_dict.json").exists():
            local_path = _local_file(local_path, split, part.local, task)
        table = read_table(local_path)
    else:
        table = _hub_table(part, split, task)
    report = SourceReport(name, split, kind, origin=table.path, read=len(table.rows))
    rows = _read(part, table, kind, task, report)
    (report.made_chat,) = unify_text([rows])
    if dedupe:
        rows = _dedupe(rows, kind, report)
    if limit is not None and len(rows) > limit:
        report.left_out[f"beyond limit {limit}"] += len(rows) - limit
        rows = rows[:limit]
    report.kept = len(rows)
    return SourceRows(rows, report)


def _key(row: dict[str, Any], kind: str) -> Any:
    if kind == "preference":
        return tuple(text_of(row[f]) for f in COLUMNS["preference"])
    return text_of(row["prompt"])


def _dedupe(rows: list[dict[str, Any]], kind: str, report: SourceReport) -> list[dict[str, Any]]:
    """One row per instruction for sft and prompts (the first); for preferences one row per exact comparison, and
    a comparison of a response with itself is no preference."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        if kind == "preference" and row["prompt_chosen"] == row["prompt_rejected"] and row["chosen"] == row["rejected"]:
            report.left_out["chosen equals rejected"] += 1
            continue
        key = _key(row, kind)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        out.append(row)
    if kind == "prompts":  # ids must identify prompts: content-derived ids of different prompts never collide, but
        ids = Counter(str(r["id"]) for r in out)  # a source's own ids might
        repeated = {i for i, n in ids.items() if n > 1}
        if repeated:
            raise JpoError(f"{report.name}: {len(repeated)} ids name different prompts (e.g. {sorted(repeated)[0]!r})")
    return out


def drop_overlap(rows: list[dict[str, Any]], prompts: list[dict[str, Any]], kind: str) -> tuple[list[dict], int]:
    """Training rows whose instruction is an evaluation prompt are left out (and counted): a model must not be
    scored on what it was trained on."""
    held_out = {text_of(p["prompt"]) for p in prompts}
    fields = ("prompt_chosen", "prompt_rejected") if kind == "preference" else ("prompt",)
    kept = [r for r in rows if not any(text_of(r[f]) in held_out for f in fields)]
    return kept, len(rows) - len(kept)
