"""`jpo judge`: label comparison items with an AI judge, both orders, flip = tie, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jpo.feedback.base import JudgeOptions
from jpo.feedback.registry import make_judge
from jpo.feedback.runner import judge_items, labeled_rows
from jpo.feedback.store import VerdictStore


def add_judge_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The judge options `jpo judge` and `jpo evaluate` share (`jpo evaluate --export_items` asks no judge)."""
    group = parser.add_argument_group("judge")
    group.add_argument("--judge", required=required, metavar="SPEC",
                       help="openai:MODEL | hf:PATH (local causal LM) | rm:PATH (reward model) | oracle | "
                            "verdicts:PATH[#RUN] (the JPO authors' cached verdicts, verdicts/master*.json)")
    group.add_argument("--base_url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, Ollama)")
    group.add_argument("--api_key_env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    group.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (API judges)")
    group.add_argument("--request_timeout", type=float, default=60.0, help="seconds per request")
    group.add_argument("--max_retries", type=int, default=5, help="retries per question (429, 5xx, timeouts, unparseable)")
    group.add_argument("--max_tokens", type=int, default=16, help="answer length limit for API judges")
    group.add_argument("--template", help="prompt template file (.txt, or .json/.yaml with system/conditional/joint)")
    group.add_argument("--cache", help="verdict store (SQLite); default: beside the output file")
    group.add_argument("--batch_size", type=int, default=16, help="questions per forward pass (hf:, rm:)")
    group.add_argument("--device", help="torch device for hf:/rm: judges (default: cuda if available, else cpu)")
    group.add_argument("--tie_margin", type=float, default=0.0,
                       help="score difference below which hf:/rm: judges answer tie")
    group.add_argument("--price_in", type=float, help="USD per million prompt tokens (cost estimate)")
    group.add_argument("--price_out", type=float, help="USD per million completion tokens (cost estimate)")
    group.add_argument("--no_progress", action="store_true", help="no progress bar")


def judge_options(args: argparse.Namespace) -> JudgeOptions:
    return JudgeOptions(
        base_url=args.base_url, api_key_env=args.api_key_env, concurrency=args.concurrency,
        request_timeout=args.request_timeout, max_retries=args.max_retries, max_tokens=args.max_tokens,
        template=args.template, batch_size=args.batch_size, device=args.device, tie_margin=args.tie_margin,
        price_per_million_input=args.price_in, price_per_million_output=args.price_out,
    )


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


def preference_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decisive items as training rows: TRL's conditional {prompt, chosen, rejected} when every prompt pair is equal,
    else joint {prompt_chosen, chosen, prompt_rejected, rejected}."""
    out = []
    for row in rows:
        if row["label"] not in ("a", "b"):
            continue
        win, lose = ("a", "b") if row["label"] == "a" else ("b", "a")
        out.append({"id": row["id"], "prompt_chosen": row[f"prompt_{win}"], "chosen": row[f"response_{win}"],
                    "prompt_rejected": row[f"prompt_{lose}"], "rejected": row[f"response_{lose}"]})
    if out and all(r["prompt_chosen"] == r["prompt_rejected"] for r in out):
        return [{"id": r["id"], "prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]}
                for r in out]
    return out


def run(args: argparse.Namespace) -> int:
    from jpo.data import load_items, write_jsonl
    from jpo.data.load import identical_pairs

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
