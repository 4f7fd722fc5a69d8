"""Named sources: the paper's datasets by name (`tldr`, `hh-helpful`, `ultrafeedback`, `jpo-authors`, `alpaca-eval`).

`load_source(name, split, kind=...)` returns canonical rows (see `jpo.data.formats`): ``sft`` rows ``{prompt,
response}``, ``preference`` rows ``{prompt_chosen, chosen, prompt_rejected, rejected}`` or ``prompts`` rows ``{id,
prompt, reference}``, each with a report of what was read, merged and left out. Each source knows its real hub
location (dataset name, config, data_dir, split names) and reads it with `datasets.load_dataset`; a local copy
stands in for the hub with `path=` (a file, or a folder holding one file per split) or the environment variable
``JPO_SOURCE_<NAME>`` (``JPO_SOURCE_HH_HELPFUL=/data/hh``), which is how the tests and offline users run.

Instructions are deduplicated (first occurrence kept; repeats counted), and rows a source cannot use are counted
by reason, never dropped silently. Prompts are the *task instruction* the judge sees (for TL;DR: the paper's
summary instruction around the post); the authors' model template (``### Instructions: ... ### Response:``) is
applied later, by whoever tokenizes (`jpo.modeling.apply_template`), so judges never see it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.data.formats import item_id, parse_hh, text_of
from jpo.data.io import SUFFIXES, Table, read_hub, read_table
from jpo.data.load import convert_rows, detect
from jpo.errors import DataError, JpoError

# The paper's TL;DR task instruction and the authors' model template, exactly as in their released generations
# (`outputs/tldr_0.001.json`): note the space before the newline after "accordingly.", and no space after
# "### Response:" (the authors' outputs all begin with one, which `jpo.modeling.apply_template` restores on responses).
TLDR_INSTRUCTION = "You are given a social media post, summarize it accordingly. \nPost: {post}"
AUTHORS_TEMPLATE = "### Instructions: {prompt}\n\n### Response:"

KINDS = ("sft", "preference", "prompts")


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
    left_out: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        parts = [f"{self.name}:{self.split} ({self.kind}, from {self.origin}): {self.read} read, {self.kept} kept"]
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated instructions merged")
        parts += [f"{n} left out: {reason}" for reason, n in sorted(self.left_out.items())]
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "kind": self.kind, "origin": self.origin, "read": self.read,
                "kept": self.kept, "duplicates": self.duplicates, "left_out": dict(self.left_out)}


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
    splits: dict[str, str] = field(default_factory=dict)  # our split name -> the hub's


# A converter gets one raw row and a counter of reasons; it returns canonical rows (0 or more).
Convert = Callable[[dict[str, Any], Counter], list[dict[str, Any]]]


@dataclass(frozen=True)
class Part:
    kind: str
    hub: Hub
    convert: Convert
    # file names to look for in a local folder, before the generic `{split}.jsonl` etc.: split -> name, where `*`
    # stands for any split and `{task}` for the jpo-authors task
    local: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    parts: dict[str, Part]
    default_kind: str


# --- converters --------------------------------------------------------------------------------------------------


def tldr_instruction(post: str) -> str:
    """The paper's summary instruction around a Reddit post (idempotent)."""
    post = post.strip()
    return post if post.startswith(TLDR_INSTRUCTION[:40]) else TLDR_INSTRUCTION.format(post=post)


_TRL_TLDR = re.compile(r"POST:\s*(.*?)\s*TL;DR:\s*$", re.S)


def _post_of(row: dict[str, Any]) -> str | None:
    """The post of a TL;DR row in any of its published layouts (None for CNN/DM articles in the comparisons)."""
    if isinstance(row.get("info"), dict):
        return row["info"].get("post")
    for column in ("post", "instruction"):
        if isinstance(row.get(column), str):
            return row[column]
    if isinstance(row.get("prompt"), str):  # trl-lib/tldr: "SUBREDDIT: r/... TITLE: ... POST: ... TL;DR:"
        found = _TRL_TLDR.search(row["prompt"])
        return found.group(1) if found else row["prompt"]
    return None


def _tldr_sft(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    post = _post_of(row)
    summary = next((row[c] for c in ("summary", "response", "gold_response", "completion", "label")
                    if isinstance(row.get(c), str)), None)
    if not post or summary is None:
        why["no post or summary"] += 1
        return []
    extra = {k: row[k] for k in ("id", "subreddit", "title") if k in row}
    if "instruction_id" in row:
        extra["id"] = row["instruction_id"]
    return [{"prompt": tldr_instruction(post), "response": summary.strip(), **extra}]


def _tldr_prompts(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    out = []
    for sft in _tldr_sft(row, why):
        prompt, reference = sft.pop("prompt"), sft.pop("response")
        out.append({"id": str(sft.pop("id", item_id(prompt))), "prompt": prompt, "reference": reference, **sft})
    return out


def _tldr_preference(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    if "summaries" in row:  # openai/summarize_from_feedback comparisons
        post = _post_of(row)
        if not post:
            why["CNN/DM article, not a TL;DR post"] += 1
            return []
        summaries, choice = row["summaries"], row.get("choice")
        if choice not in (0, 1) or len(summaries) != 2:
            why["no valid choice between two summaries"] += 1
            return []
        chosen, rejected = summaries[choice]["text"], summaries[1 - choice]["text"]
        info = row["info"]
        extra = {"id": str(info.get("id")), "subreddit": info.get("subreddit"), "worker": row.get("worker")}
    elif "i_chosen" in row:  # the authors' layout, bare posts
        return _wrap_tldr(_authors_rows(row, why, "preference"))
    else:  # trl-lib/tldr-preference: {prompt, chosen, rejected}
        post, chosen, rejected, extra = _post_of(row), row.get("chosen"), row.get("rejected"), {}
        if not post or not isinstance(chosen, str) or not isinstance(rejected, str):
            why["no post, chosen or rejected"] += 1
            return []
    prompt = tldr_instruction(post)
    return [{"prompt_chosen": prompt, "chosen": chosen.strip(), "prompt_rejected": prompt,
             "rejected": rejected.strip(), **{k: v for k, v in extra.items() if v is not None}}]


def _hh_single_turn(row: dict[str, Any], why: Counter) -> tuple[str, str, str] | None:
    """(instruction, chosen, rejected) of a one-exchange HH transcript; longer dialogues are counted and skipped
    (the paper keeps single-turn dialogues)."""

    def fail(message: str, field: str) -> DataError:
        return DataError(message, field=field)

    try:
        chosen, rejected = parse_hh(row["chosen"], "chosen", fail), parse_hh(row["rejected"], "rejected", fail)
    except (DataError, KeyError, TypeError):
        why["not an HH transcript"] += 1
        return None
    roles = [m["role"] for m in chosen]
    if roles != ["user", "assistant"] or [m["role"] for m in rejected] != roles:
        why["multi-turn dialogue"] += 1
        return None
    if chosen[0]["content"] != rejected[0]["content"]:
        why["chosen and rejected start differently"] += 1
        return None
    return chosen[0]["content"].strip(), chosen[1]["content"].strip(), rejected[1]["content"].strip()


def _hh_preference(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    if "instruction" in row:  # the authors' processed files
        return _authors_rows(row, why, "preference")
    found = _hh_single_turn(row, why)
    if found is None:
        return []
    prompt, chosen, rejected = found
    return [{"prompt_chosen": prompt, "chosen": chosen, "prompt_rejected": prompt, "rejected": rejected}]


def _hh_sft(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    """The chosen response as the demonstration (the authors' `val_sft` is exactly HH's chosen side)."""
    if "instruction" in row:
        return _authors_rows(row, why, "sft")
    found = _hh_single_turn(row, why)
    return [] if found is None else [{"prompt": found[0], "response": found[1]}]


def _hh_prompts(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    if "instruction" in row:
        return _authors_rows(row, why, "prompts")
    return [{"id": item_id(r["prompt"]), "prompt": r["prompt"], "reference": r["response"]}
            for r in _hh_sft(row, why)]


def _messages_text(value: Any, role: str) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        turns = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == role]
        return turns[-1] if turns else None
    return None


def _ultrafeedback_preference(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    prompt = _messages_text(row.get("prompt"), "user") or _messages_text(row.get("chosen"), "user")
    chosen = _messages_text(row.get("chosen"), "assistant")
    rejected = _messages_text(row.get("rejected"), "assistant")
    if not prompt or chosen is None or rejected is None:
        why["no prompt, chosen or rejected"] += 1
        return []
    scores = row.get("metadata") if isinstance(row.get("metadata"), dict) else row
    if scores.get("score_chosen") is not None and scores.get("score_chosen") == scores.get("score_rejected"):
        why["tied scores"] += 1
        return []
    if chosen.strip() == rejected.strip():
        why["identical responses"] += 1
        return []
    extra = {k: row[k] for k in ("source_index", "source") if k in row}
    return [{"prompt_chosen": prompt, "chosen": chosen, "prompt_rejected": prompt, "rejected": rejected, **extra}]


def _ultrafeedback_sft(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    return [{"prompt": r["prompt_chosen"], "response": r["chosen"]} for r in _ultrafeedback_preference(row, why)]


def _ultrafeedback_prompts(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    """Test prompts with the chosen response as reference (a tie in scores does not matter here)."""
    prompt = _messages_text(row.get("prompt"), "user") or _messages_text(row.get("chosen"), "user")
    if not prompt:
        why["no prompt"] += 1
        return []
    reference = _messages_text(row.get("chosen"), "assistant")
    return [{"id": item_id(prompt), "prompt": prompt, **({"reference": reference} if reference is not None else {})}]


def _alpaca_eval_prompts(row: dict[str, Any], why: Counter) -> list[dict[str, Any]]:
    instruction = row.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        why["no instruction"] += 1
        return []
    out = {"id": item_id(instruction), "prompt": instruction, "dataset": row.get("dataset")}
    if isinstance(row.get("output"), str):
        out["reference"] = row["output"]
        out["reference_generator"] = row.get("generator")
    return [{k: v for k, v in out.items() if v is not None}]


def _authors_rows(row: dict[str, Any], why: Counter, kind: str) -> list[dict[str, Any]]:
    """The authors' released files through the data layer's own formats (`jpo-authors`, `jpo-authors-sft`, ...)."""
    table = Table("jpo-authors", [row])
    try:
        fmt = detect(table)
        converted = convert_rows(table, fmt)[0]
    except DataError:
        why[f"not a {kind} row of the authors' layout"] += 1
        return []
    if kind == "preference" and fmt.kind == "preference":
        return [converted]
    if fmt.kind == "sft" and kind == "sft":
        return [converted]
    if fmt.kind == "sft" and kind == "prompts":
        rid = converted.pop("instruction_id", None) or converted.pop("id", None)
        prompt, reference = converted.pop("prompt"), converted.pop("response")
        return [{"id": str(rid or item_id(prompt)), "prompt": prompt, "reference": reference, **converted}]
    why[f"a {fmt.kind} row where {kind} rows are expected"] += 1
    return []


def _authors(kind: str) -> Convert:
    return lambda row, why: _authors_rows(row, why, kind)


def _wrap_tldr(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The authors store bare posts; the task instruction is what the judge and the model see."""
    for out in rows:
        for column in ("prompt", "prompt_chosen", "prompt_rejected"):
            if isinstance(out.get(column), str):
                out[column] = tldr_instruction(out[column])
    return rows


# --- the catalogue -----------------------------------------------------------------------------------------------

_TLDR_SFT_HUB = Hub("vwxyzjn/summarize_from_feedback_tldr_3_filtered")
_AUTHORS_REPO = "jointpreferences/sft_and_pref_data"


def _authors_hub(kind: str) -> Hub:
    files = {
        "sft": {"train": "train_sft.jsonl", "validation": "val_sft.jsonl"},
        "preference": {"train": "train_conditional_pref.jsonl", "validation": "val_conditional_pref.jsonl",
                       "joint": "train_joint_pref.jsonl"},
        "prompts": {"test": "test.json*"},  # tldr/test.json (JSON Lines), anthropic_helpful/test.jsonl
    }[kind]
    return Hub(_AUTHORS_REPO, data_files={split: f"data/{{task}}/{name}" for split, name in files.items()})


SOURCES: dict[str, Source] = {
    "tldr": Source(
        "tldr", "Reddit TL;DR: OpenAI's human comparisons (preference), the filtered TL;DR SFT set (sft), its test "
        "posts with gold summaries (prompts); prompts carry the paper's summary instruction",
        {"sft": Part("sft", _TLDR_SFT_HUB, _tldr_sft),
         "prompts": Part("prompts", _TLDR_SFT_HUB, _tldr_prompts, {"test": "tldr/test.json"}),
         "preference": Part("preference", Hub("openai/summarize_from_feedback", config="comparisons"),
                            _tldr_preference)},
        "sft"),
    "hh-helpful": Source(
        "hh-helpful", "Anthropic HH helpful-base, single-turn dialogues only, instruction and responses split from "
        "the transcripts (preference: HH's chosen/rejected; sft: the chosen side; prompts: test with chosen as gold)",
        {kind: Part(kind, Hub("Anthropic/hh-rlhf", data_dir="helpful-base"), convert)
         for kind, convert in (("preference", _hh_preference), ("sft", _hh_sft), ("prompts", _hh_prompts))},
        "preference"),
    "ultrafeedback": Source(
        "ultrafeedback", "UltraFeedback binarized (trl-lib/ultrafeedback_binarized; the paper's appendix E): "
        "preference pairs, their chosen side as sft, test prompts",
        {kind: Part(kind, Hub("trl-lib/ultrafeedback_binarized"), convert)
         for kind, convert in (("preference", _ultrafeedback_preference), ("sft", _ultrafeedback_sft),
                               ("prompts", _ultrafeedback_prompts))},
        "preference"),
    "jpo-authors": Source(
        "jpo-authors", "the JPO authors' released data (jointpreferences/sft_and_pref_data) in its own columns "
        "(i_chosen, r_chosen, i_reject, r_reject; instruction, response; instruction, gold_response); choose the "
        "task with task=tldr|anthropic_helpful; split `joint` is their joint-preference file (D_H)",
        {kind: Part(kind, _authors_hub(kind), _authors(kind),
                    {split: name.removeprefix("data/") for split, name in _authors_hub(kind).data_files.items()})
         for kind in KINDS},
        "preference"),
    "alpaca-eval": Source(
        "alpaca-eval", "the 805 AlpacaEval instructions, with a reference output (text-davinci-003 from the hub "
        "file; gpt4_1106_preview for AlpacaEval 2 from a local model_outputs.json)",
        {"prompts": Part("prompts", Hub("json", data_files={
            "eval": "hf://datasets/tatsu-lab/alpaca_eval/alpaca_eval.json"}), _alpaca_eval_prompts,
            {"*": "gpt4_1106_preview_model_outputs.json"})},
        "prompts"),
}

SPLIT_ALIASES = {"test": ("test", "eval", "validation", "val"), "validation": ("validation", "val", "valid", "eval"),
                 "eval": ("eval", "test"), "train": ("train",)}


def source_names() -> list[str]:
    return list(SOURCES)


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

    `task` picks the authors' task for `jpo-authors` (tldr | anthropic_helpful). `limit` keeps the first N rows
    after conversion and deduplication (counted as left out)."""
    source = get_source(name)
    kind = kind or source.default_kind
    if kind not in source.parts:
        raise JpoError(f"source {name!r} has no {kind} data (has: {', '.join(source.parts)})")
    part = source.parts[kind]
    if name == "jpo-authors":
        task = task or "tldr"
        if task not in ("tldr", "anthropic_helpful"):
            raise JpoError(f"jpo-authors: unknown task {task!r} (tldr | anthropic_helpful)")
    local = path or _env_path(name)
    if local:
        local_path = Path(local).expanduser()
        if local_path.is_dir() and not (local_path / "dataset_dict.json").exists():
            local_path = _local_file(local_path, split, part.local, task)
        table = read_table(local_path)
    else:
        table = _hub_table(part, split, task)
    report = SourceReport(name, split, kind, origin=table.path, read=len(table.rows))
    rows: list[dict[str, Any]] = []
    for index, raw in enumerate(table.rows):
        try:
            rows.extend(part.convert(raw, report.left_out))
        except (KeyError, TypeError, AttributeError) as error:
            raise table.error(index, f"not a {name} {kind} row ({type(error).__name__}: {error})") from None
    if name == "jpo-authors" and task == "tldr":
        rows = _wrap_tldr(rows)
    if dedupe:
        rows = _dedupe(rows, kind, report)
    if limit is not None and len(rows) > limit:
        report.left_out[f"beyond limit {limit}"] += len(rows) - limit
        rows = rows[:limit]
    report.kept = len(rows)
    return SourceRows(rows, report)


def _key(row: dict[str, Any], kind: str) -> Any:
    if kind == "preference":
        return tuple(text_of(row[f]) for f in ("prompt_chosen", "chosen", "prompt_rejected", "rejected"))
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
