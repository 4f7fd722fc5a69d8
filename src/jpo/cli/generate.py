"""`jpo generate`: sample responses to evaluation prompts at several temperatures (and seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jpo.config import add_options, options_from
from jpo.evaluate.generate import GenerateOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (a causal LM, or a PEFT adapter folder)")
    parser.add_argument("--prompts", required=True, help="evaluation prompts ({id, prompt}, the authors' test files, "
                        "AlpacaEval, MT-Bench questions, ...)")
    parser.add_argument("--output", required=True, help="generations (JSONL): {id, prompt, response, temperature, seed}")
    add_options(parser, GenerateOptions)
    parser.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated")
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--generator", help="model name recorded in each row (default: the model folder's name)")
    parser.add_argument("--alpaca_eval", metavar="FILE", help="also write AlpacaEval's model_outputs.json")
    parser.add_argument("--alpaca_eval_temperature", type=float, help="temperature exported (default: the first)")
    parser.add_argument("--chat_template_path", metavar="FILE_OR_MODEL",
                        help="chat template (a Jinja file, or a tokenizer whose template to use) for the prompts")
    parser.add_argument("--chat", action="store_true",
                        help="send plain-text prompts as one user message through the chat template")
    parser.add_argument("--no_progress", action="store_true")


def _seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def run(args: argparse.Namespace) -> int:
    from jpo.data import load_prompts, write_jsonl
    from jpo.evaluate.generate import generate_from, write_alpaca_eval

    options = options_from(args, GenerateOptions)
    prompts = load_prompts(args.prompts)[: args.limit]
    generator = args.generator or Path(args.model).resolve().name
    stats: dict[str, int] = {}
    rows, backend = generate_from(args.model, prompts, args.seeds, options, generator=generator,
                                  progress=not args.no_progress, chat_template_path=args.chat_template_path,
                                  chat=args.chat, stats=stats)
    write_jsonl(args.output, rows)
    empty = sum(1 for r in rows if not r["response"].strip())
    print(f"jpo generate: {len(rows)} generations ({len(prompts)} prompts x {len(options.temperatures)} temperatures "
          f"x {len(args.seeds)} seeds, {backend}), {empty} empty, "
          f"{stats.get('prompts_truncated', 0)} prompts truncated to fit the context -> {args.output}")
    if args.alpaca_eval:
        records = write_alpaca_eval(args.alpaca_eval, rows, args.alpaca_eval_temperature)
        print(f"jpo generate: {len(records)} AlpacaEval outputs -> {args.alpaca_eval}")
    return 0
