"""`jpo judge`: label comparison items with an AI judge, both orders, flip = tie, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from jpo.config import add_options, options_from
from jpo.feedback.base import JudgeOptions

JUDGE_SPEC_HELP = ("openai:MODEL | hf:PATH (local causal LM) | rm:PATH (reward model) | oracle | "
                   "verdicts:PATH[#RUN] (the JPO authors' cached verdicts, verdicts/master*.json)")


def add_judge_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The judge options `jpo judge` and `jpo evaluate` share (`jpo evaluate --export_items` asks no judge): the
    spec, `JudgeOptions`' fields, the verdict store and the progress bar."""
    group = parser.add_argument_group("judge")
    group.add_argument("--judge", required=required, metavar="SPEC", help=JUDGE_SPEC_HELP)
    add_options(group, JudgeOptions)
    group.add_argument("--cache", help="verdict store (SQLite); default: beside the output file")
    group.add_argument("--no_progress", action="store_true", help="no progress bar")


def judge_options(args: argparse.Namespace) -> JudgeOptions:
    return options_from(args, JudgeOptions)


def default_cache(output: str) -> Path:
    path = Path(output)
    return path.with_name(path.name.split(".")[0] + ".verdicts.sqlite")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="comparison items {id, prompt_a, response_a, prompt_b, "
                        "response_b} or {id, prompt, response_a, response_b} (or preference rows)")
    parser.add_argument("--output", required=True, help="labeled items (JSONL): every input field + label, verdicts")
    parser.add_argument("--to-preferences", "--to_preferences", dest="to_preferences", metavar="FILE",
                        help="also write the decisive items as training preferences (JSONL)")
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jpo.data import load_items, write_jsonl
    from jpo.data.load import identical_pairs, preference_rows
    from jpo.feedback.registry import make_judge
    from jpo.feedback.runner import judge_items, labeled_rows
    from jpo.feedback.store import VerdictStore

    items = load_items(args.input)
    judge = make_judge(args.judge, judge_options(args))
    cache = Path(args.cache) if args.cache else default_cache(args.output)
    with VerdictStore(cache) as store:
        result = judge_items(items, judge, store=store, progress=not args.no_progress)
    result.require_valid()  # nothing written: a failed run must not look like a labelled file
    rows = labeled_rows(items, result)
    write_jsonl(args.output, rows)
    print(f"jpo judge: {result.summary()}")
    same = identical_pairs(items, "items")  # judged as asked: a tie at best, and training drops them
    print(f"jpo judge: {same} items with identical responses (same prompt, same response on both sides)")
    print(f"jpo judge: wrote {len(rows)} labeled items to {args.output} (verdict cache {cache})")
    if args.to_preferences:
        preferences = preference_rows(rows)
        write_jsonl(args.to_preferences, preferences)
        counts = result.counts
        print(f"jpo judge: wrote {len(preferences)} preferences to {args.to_preferences} "
              f"(left out: {counts['tie']} ties, {counts['invalid']} invalid)")
    return 0
