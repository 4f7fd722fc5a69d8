"""Training speed and memory, measured side by side in one run (CPU).

    .venv/bin/python benchmarks/bench_train.py [--steps N]

1. DPO pairs/s of our trainer against TRL's DPOTrainer at the same settings (stories260K, the JPO authors'
   val_conditional_pref data, batch 8, max_length 256), whole process: model loading, tokenization, the reference
   precomputation where enabled, and training. TRL runs with bf16=False and gradient_checkpointing=False (its
   defaults would put bf16 autocast on a CPU and recompute activations, both slower and not "the same settings").
   `dpo_fast` (reference log-probs precomputed, --group_by_length) is also compared with TRL precomputing its own
   reference log-probs, so the gain is not only the precomputation, which TRL offers too.
2. JPO over DPO in our trainer: step time and peak memory at the same settings (equal prompts, where JPO skips the
   cancelled prompt terms), and JPO with the prompt terms computed (as on data with different prompts).
3. Peak memory of one JPO step (policy forward + backward, reference forward) on a random-init Llama with a 128k
   vocabulary and ~1k-token prompts: our chunked log-probs against a naive full float32 log-softmax.

Each measurement runs in a fresh subprocess (peak RSS is per process); memory is the peak RSS growth over the
RSS just before the measured work. The machine is shared, so the runs are interleaved and each ratio is taken
within one round.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "stories260K"
DATA = SHARED / "data" / "jpo-authors" / "anthropic_helpful" / "val_conditional_pref.jsonl"
SETTINGS = dict(per_device_train_batch_size=8, learning_rate=1e-3, beta=0.1, max_length=256, logging_steps=1000,
                seed=0, report_to="none", save_strategy="no", disable_tqdm=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers (one per subprocess) ------------------------------------------------------------------------------
def worker_trl(steps: int, out: str, extra: str) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from jpo.data import load_preferences

    start = time.perf_counter()
    rows = load_preferences(DATA)
    ds = Dataset.from_list([{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]}
                            for r in rows])
    args = DPOConfig(output_dir=out, max_steps=steps, bf16=False, gradient_checkpointing=False, **SETTINGS,
                     **json.loads(extra))
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(MODEL), args=args, train_dataset=ds,
                         processing_class=AutoTokenizer.from_pretrained(MODEL))
    before = rss_mb()
    output = trainer.train()
    return {"wall": time.perf_counter() - start, "train": output.metrics["train_runtime"], "steps": steps,
            "mem": peak_mb() - before}


def worker_ours(steps: int, out: str, extra: str) -> dict:
    from jpo.data import load_preferences
    from jpo.train.api import train_preferences

    start = time.perf_counter()
    rows = load_preferences(DATA)
    config = dict(SETTINGS, model_name_or_path=str(MODEL), output_dir=out, max_steps=steps, **json.loads(extra))
    before = rss_mb()
    result = train_preferences(config, rows)
    runtime = next(h["train_runtime"] for h in result.log_history if "train_runtime" in h)
    return {"wall": time.perf_counter() - start, "train": runtime, "steps": steps, "mem": peak_mb() - before}


def worker_vocab(mode: str, prompt_tokens: int) -> dict:
    """One JPO step with a 128k vocabulary: chunked log-probs (ours) or a full float32 log-softmax."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from jpo.train.logprobs import PROMPT, RESPONSE, segments_for, sequence_logps
    from jpo.train.losses import OBJECTIVES, SequenceLogps, preference_loss

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128256, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096)
    policy, ref = LlamaForCausalLM(config), LlamaForCausalLM(config)
    ref.load_state_dict(policy.state_dict())
    ref.requires_grad_(False)
    response = 128
    length = prompt_tokens + response
    ids = torch.randint(3, 128256, (2, length))  # chosen and rejected, different prompts
    mask = torch.ones_like(ids)
    seg = torch.tensor([segments_for(length, prompt_tokens, True)] * 2)

    def naive(model):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        per_token = logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        s = seg[:, 1:]
        ones = torch.ones_like(per_token)
        return SequenceLogps((per_token * (s == PROMPT)).sum(1), (per_token * (s == RESPONSE)).sum(1),
                             (ones * (s == PROMPT)).sum(1), (ones * (s == RESPONSE)).sum(1))

    def logps(model):
        return sequence_logps(model, model, ids, mask, seg) if mode == "chunked" else naive(model)

    before = rss_mb()
    start = time.perf_counter()
    with torch.no_grad():
        r = logps(ref)
    p = logps(policy)
    split = lambda s: [SequenceLogps(*(t[i:i + 1] for t in (s.prompt, s.response, s.prompt_tokens,  # noqa: E731
                                                              s.response_tokens))) for i in (0, 1)]
    (pc, pr), (rc, rr) = split(p), split(r)
    preference_loss(pc, pr, rc, rr, OBJECTIVES["jpo"], 0.1).losses.sum().backward()
    return {"wall": time.perf_counter() - start, "mem": peak_mb() - before}


def run_worker(*args: str) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=46, help="optimizer steps per run (46 = one epoch of 363 rows)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; medians are reported")
    parser.add_argument("--prompt_tokens", type=int, default=1024)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = {"trl": lambda: worker_trl(int(rest[0]), rest[1], rest[2]),
                  "ours": lambda: worker_ours(int(rest[0]), rest[1], rest[2]),
                  "vocab": lambda: worker_vocab(rest[0], int(rest[1]))}[kind]()
        print(json.dumps(result))
        return
    if not MODEL.exists() or not DATA.exists():
        sys.exit(f"needs {MODEL} and {DATA} (the shared folder beside the project)")

    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    configs = {
        "trl_dpo": {},
        "trl_dpo_precomputed": {"precompute_ref_log_probs": True},
        "dpo": {"objective": "dpo"},
        "dpo_fast": {"objective": "dpo", "precompute_ref_log_probs": True, "group_by_length": True},
        "jpo": {"objective": "jpo"},
        "jpo_prompt_terms": {"objective": "jpo", "skip_equal_prompt_terms": False},
    }
    results: dict[str, list[dict]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, extra in configs.items():
            out = str(tmp / f"{name}{r}")
            if name.startswith("trl"):
                res = run_worker("trl", str(args.steps), out, json.dumps(extra))
            else:
                extra = dict(extra, ref_cache_dir=str(tmp / f"cache{r}_{name}"))
                res = run_worker("ours", str(args.steps), out, json.dumps(extra))
            results[name].append(res)
            print(f"  {name:18s} whole process {res['wall']:6.1f}s  train {res['train']:6.1f}s  "
                  f"peak +{res['mem']:7.1f} MiB", flush=True)

    med = {n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in results.items()}
    pairs = args.steps * SETTINGS["per_device_train_batch_size"]
    print(f"\n1. DPO pairs/s, whole process ({args.steps} steps x batch 8, max_length 256, stories260K):")
    for name in ("trl_dpo", "trl_dpo_precomputed", "dpo", "dpo_fast"):
        print(f"   {name:20s} {pairs / med[name]['wall']:7.2f} pairs/s")
    for ours, trl in (("dpo", "trl_dpo"), ("dpo_fast", "trl_dpo"), ("dpo_fast", "trl_dpo_precomputed")):
        print(f"   ratio {ours} / {trl}: {med[trl]['wall'] / med[ours]['wall']:.2f}x")
    print("\n2. JPO vs DPO in our trainer (train loop only):")
    for name in ("jpo", "jpo_prompt_terms"):
        step = med[name]["train"] / med["dpo"]["train"]
        mem = (med[name]["mem"] / med["dpo"]["mem"]) if med["dpo"]["mem"] > 0 else float("nan")
        print(f"   {name:17s} step time {step:.2f}x   peak memory {mem:.2f}x")

    print(f"\n3. One JPO step, random-init Llama, vocab 128256, {args.prompt_tokens}-token prompts, 128-token "
          "responses, 1 pair:")
    chunked = run_worker("vocab", "chunked", str(args.prompt_tokens))
    naive = run_worker("vocab", "naive", str(args.prompt_tokens))
    print(f"   chunked: peak +{chunked['mem']:.0f} MiB, {chunked['wall']:.2f}s;  naive full log-softmax: "
          f"peak +{naive['mem']:.0f} MiB, {naive['wall']:.2f}s")
    print(f"   peak memory naive / chunked: {naive['mem'] / chunked['mem']:.2f}x")


if __name__ == "__main__":
    main()
