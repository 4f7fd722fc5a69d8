"""Training throughput of a recipe's preference runs (tokens/s and MFU), DPO and JPO side by side in one process.

    python benchmarks/bench_gpu_recipe.py configs/tldr-qwen0.5b.yaml --dataset RUN/judge/joint.jsonl [--steps 200]
        [--padding_free both] [--attn_implementation sdpa]

Meant for a GPU: the recipe's `train.common` settings (LoRA, 4-bit, bf16, batch, max_length, ...) with
`max_steps=--steps`, on preference rows from `--dataset` (e.g. the `judge/joint.jsonl` or `pairs/conditional.jsonl`
of a `jpo run`), wrapped in the recipe's prompt template. `--model` overrides the recipe's model (e.g. the run's SFT
folder, or stories260K for a CPU smoke test). On a machine without the Hub, `--random_init qwen2.5-0.5b --tokenizer
DIR` builds that architecture with random weights (throughput does not depend on the weights) around a local
tokenizer; token ids then stay below the tokenizer's vocabulary, while the LM head keeps the architecture's full size.

Tokens/s counts the tokens of both sequences of every pair trained on (prompt + response + EOS, after the trainer's
truncation to max_length), over the trainer's own `train_runtime` (the training loop, after model loading and any
reference precomputation). MFU = achieved model FLOPs / the GPU's peak dense bf16 FLOPs, with model FLOPs per token
= 2N (policy forward) + 2N (backward through the activations) + 2N (weight gradients, full fine-tuning only; LoRA's
are negligible) + 2N (reference forward, unless precomputed), N = parameters outside the embeddings; attention's
sequence-length term is left out, so MFU is slightly understated. On CPU the MFU column says n/a.

`--padding_free on|off|both` times the trainer with its padding-free packing (the default; see README) and with
padded rows (TRL's layout), side by side in one process; `--attn_implementation` (sdpa, eager, flash_attention_2)
picks the layout packing uses (unit by unit, block mask, varlen row). Tokens/s counts real tokens either way.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# Peak dense bf16 tensor-core FLOP/s by device-name fragment (vendor datasheets).
PEAK_BF16 = {"H200": 989e12, "H100 SXM": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12,
             "L40S": 362e12, "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12}


def peak_flops(override: float | None) -> tuple[float | None, str]:
    import torch

    if override:
        return override * 1e12, "given"
    if not torch.cuda.is_available():
        return None, "cpu"
    name = torch.cuda.get_device_name(0)
    for fragment, value in PEAK_BF16.items():
        if fragment in name:
            return value, name
    return None, name


# Architectures for `--random_init`, from each model's config.json on the Hub.
ARCHITECTURES = {
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, rope_theta=1e6,
                         max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-6),
}


def random_model(name: str, tokenizer_dir: str, folder: Path) -> str:
    """`name`'s architecture with random bf16 weights and `tokenizer_dir`'s tokenizer, saved to `folder`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    settings = dict(ARCHITECTURES[name])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return str(folder)


def pair_tokens(rows, tokenizer, max_length: int | None) -> list[int]:
    counts = []
    for row in rows:
        total = 0
        for prompt, response in ((row["prompt_chosen"], row["chosen"]), (row["prompt_rejected"], row["rejected"])):
            n = len(tokenizer(prompt + response)["input_ids"]) + 1  # + EOS
            total += min(n, max_length) if max_length else n
        counts.append(total)
    return counts


def non_embedding_parameters(model: str) -> int:
    """Parameters outside the token embeddings and LM head, counted on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):
        built = AutoModelForCausalLM.from_config(config)
    embeddings = {id(p) for m in (built.get_input_embeddings(), built.get_output_embeddings()) if m is not None
                  for p in m.parameters()}
    return sum(p.numel() for p in built.parameters() if id(p) not in embeddings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--dataset", required=True, help="preference rows (any format jpo reads)")
    parser.add_argument("--model", help="override the recipe's model")
    parser.add_argument("--random_init", choices=sorted(ARCHITECTURES),
                        help="instead of --model: this architecture with random weights (no Hub needed)")
    parser.add_argument("--tokenizer", help="with --random_init: a local tokenizer folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train.common setting (YAML value), e.g. --set use_peft=false")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--objectives", default="dpo,jpo")
    parser.add_argument("--peak_tflops", type=float, help="the device's peak dense bf16 TFLOP/s, if not in the table")
    parser.add_argument("--padding_free", choices=["on", "off", "both"], default="both",
                        help="padding-free packing on (jpo's default), off (padded rows), or both, side by side")
    parser.add_argument("--attn_implementation", help="the model's attention implementation (default: the "
                        "recipe's, else transformers' choice)")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from jpo.data import load_preferences
    from jpo.modeling import apply_template
    from jpo.runner import load_recipe
    from jpo.train.api import train_preferences

    recipe = load_recipe(args.recipe)
    if args.random_init:
        if not args.tokenizer:
            parser.error("--random_init needs --tokenizer")
        model = random_model(args.random_init, args.tokenizer, Path(tempfile.mkdtemp()) / args.random_init)
    else:
        model = args.model or recipe.model
    rows = apply_template(load_preferences(args.dataset), recipe.prompt_template, "preference")
    common = dict(recipe.train.common)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        common[key] = yaml.safe_load(value)
    if not torch.cuda.is_available():  # a CPU smoke test: no 4-bit, no bf16
        common.update(load_in_4bit=False, bf16=False)
    tokenizer = AutoTokenizer.from_pretrained(model)
    peak, device = peak_flops(args.peak_tflops)
    print(f"recipe {recipe.name}, model {model}, device {device}, {len(rows)} rows, {args.steps} steps")
    if args.attn_implementation:
        kwargs = common.get("model_init_kwargs") or {}
        kwargs = json.loads(kwargs) if isinstance(kwargs, str) else dict(kwargs)
        common["model_init_kwargs"] = {**kwargs, "attn_implementation": args.attn_implementation}
    packings = {"on": [None], "off": [False], "both": [None, False]}[args.padding_free]
    print("| objective | layout | steps | pairs | tokens | train s | tokens/s | model TFLOP/s | MFU | "
          "peak GPU mem GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for objective, padding_free in itertools.product(args.objectives.split(","), packings):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as out:
            config = {**common, "objective": objective, "padding_free": padding_free,
                      "model_name_or_path": model, "output_dir": out,
                      "max_steps": args.steps, "save_strategy": "no", "report_to": "none",
                      "logging_steps": args.steps, "disable_tqdm": True,
                      "ref_cache_dir": str(Path(out) / "ref")}
            result = train_preferences(config, rows)
        end = result.log_history[-1]
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        pairs = args.steps * common.get("per_device_train_batch_size", 8) * \
            common.get("gradient_accumulation_steps", 1) * world
        used = [i for i in range(len(rows)) if i not in set(result.data.dropped_indices)]
        counts = pair_tokens([rows[i] for i in used], tokenizer, common.get("max_length", 1024))
        tokens = int(pairs * sum(counts) / len(counts))
        seconds = end["train_runtime"]
        n = non_embedding_parameters(model)
        per_token = 2 * n + 2 * n + (0 if common.get("use_peft") or common.get("load_in_4bit") else 2 * n) + \
            (0 if common.get("precompute_ref_log_probs") else 2 * n)
        achieved = tokens * per_token / seconds
        mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a"
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if torch.cuda.is_available() else "n/a"
        layout = "padded" if padding_free is False else "packed"
        print(f"| {objective} | {layout} | {args.steps} | {pairs} | {tokens} | {seconds:.1f} | {tokens / seconds:.0f} | "
              f"{achieved / 1e12:.3f} | {mfu} | {memory} |")


if __name__ == "__main__":
    main()
