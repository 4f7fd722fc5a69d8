"""`jpo generate`: sample responses to evaluation prompts at several temperatures (and seeds)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def number_list(text: str, kind: type = float) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (a causal LM, or a PEFT adapter folder)")
    parser.add_argument("--prompts", required=True, help="evaluation prompts ({id, prompt}, the authors' test files, "
                        "AlpacaEval, MT-Bench questions, ...)")
    parser.add_argument("--output", required=True, help="generations (JSONL): {id, prompt, response, temperature, seed}")
    parser.add_argument("--temperatures", type=number_list, default=[0.001, 0.5, 1.0],
                        help="comma-separated, e.g. 0.001,0.5,1.0 (<= 0 is greedy)")
    parser.add_argument("--seeds", type=lambda text: number_list(text, int), default=[0], help="comma-separated")
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--backend", choices=("auto", "hf", "vllm"), default="auto",
                        help="auto: vLLM when installed and a GPU is present, else transformers")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="model dtype")
    parser.add_argument("--generator", help="model name recorded in each row (default: the model folder's name)")
    parser.add_argument("--alpaca_eval", metavar="FILE", help="also write AlpacaEval's model_outputs.json")
    parser.add_argument("--alpaca_eval_temperature", type=float, help="temperature exported (default: the first)")
    parser.add_argument("--chat_template_path", metavar="FILE_OR_MODEL",
                        help="chat template (a Jinja file, or a tokenizer whose template to use) for the prompts")
    parser.add_argument("--chat", action="store_true",
                        help="send plain-text prompts as one user message through the chat template")
    parser.add_argument("--no_progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from jpo.data import load_prompts, write_jsonl
    from jpo.evaluate.generate import generate_from, to_alpaca_eval

    prompts = load_prompts(args.prompts)[: args.limit]
    generator = args.generator or Path(args.model).resolve().name
    stats: dict[str, int] = {}
    rows, backend = generate_from(args.model, prompts, args.temperatures, args.seeds,
                                  max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, top_p=args.top_p,
                                  backend=args.backend, device=args.device, dtype=args.dtype, generator=generator,
                                  progress=not args.no_progress, chat_template_path=args.chat_template_path,
                                  chat=args.chat, stats=stats)
    write_jsonl(args.output, rows)
    empty = sum(1 for r in rows if not r["response"].strip())
    print(f"jpo generate: {len(rows)} generations ({len(prompts)} prompts x {len(args.temperatures)} temperatures x "
          f"{len(args.seeds)} seeds, {backend}), {empty} empty, "
          f"{stats.get('prompts_truncated', 0)} prompts truncated to fit the context -> {args.output}")
    if args.alpaca_eval:
        records = to_alpaca_eval(rows, args.alpaca_eval_temperature)
        path = Path(args.alpaca_eval)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"jpo generate: {len(records)} AlpacaEval outputs -> {path}")
    return 0
