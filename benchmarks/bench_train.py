"""Training speed and memory against TRL's DPOTrainer and SFTTrainer, measured side by side in one run (CPU).

    .venv/bin/python benchmarks/bench_train.py [--rounds 3] [--hh_steps 46] [--tldr_steps 20] [--sft_steps 20]
                                               [--vocab] [--readme README.md]

Both trainers run at TRL's defaults for the reference and the data order (a live reference model, random order,
no precomputation) and at the same numeric settings (stories260K, batch 8, lr 1e-3, beta 0.1). TRL runs with
bf16=False and gradient_checkpointing=False: its defaults would put bf16 autocast on a CPU and recompute
activations, neither of which jpo does by default, and both change the numbers. jpo runs `JPOTrainer` as a TRL user
would (the same script with the names changed), objective dpo, padding-free packing and prefix sharing on (its
defaults). The model's position table is widened to 1024 on both sides (stories260K has 512 positions; jpo would cap
max_length there while TRL runs to 1024), and the TL;DR-shaped pairs are those that fit 1024 tokens untruncated, so
both trainers see the same tokens.

Every batch either trainer builds is counted: the positions its forward computes (rows x width) and those holding a
real token (not padding), reported as the real fraction and as jpo's computed tokens over TRL's.

1. DPO pairs/s, whole process (model loading, tokenization, training), on (a) the JPO authors' Anthropic-Helpful
   pairs (val_conditional_pref, 363 rows, max_length 256) and (b) TL;DR-shaped pairs: the paper's summary instruction
   around each post of the authors' TL;DR test set (long: median ~700 tokens of this tokenizer), its gold summary
   chosen and another post's gold summary rejected (short: ~80 tokens), max_length 1024 (TRL's default).
   Peak memory: the growth of the peak RSS over the RSS before training.
2. JPO on D_C ∪ D_H (the HH pairs plus as many joint pairs with different prompts) time per pair, against DPO on
   D_C alone.
3. SFT tokens/s (real tokens of the batches, whole process) on the authors' HH SFT rows (val_sft, 500 rows,
   TRL SFTConfig defaults: batch 8, max_length 1024, completion-only loss): jpo's SFTTrainer (packing on, its
   default) against TRL's SFTTrainer without and with its packing (bfd: rows cut into 1024-token blocks).
4. (--vocab) Peak memory of one JPO step on a random-init Llama with a 128k vocabulary and ~1k-token prompts: our
   chunked log-probs against a naive full float32 log-softmax.

Each run is a fresh subprocess (peak RSS is per process). The machine is shared, so the runs are interleaved round
by round, every round's numbers and the medians are printed, with the load average. `--readme PATH` writes the
summary between the `<!-- bench-train:start -->` and `<!-- bench-train:end -->` lines of that file.
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
HH = SHARED / "data" / "jpo-authors" / "anthropic_helpful" / "val_conditional_pref.jsonl"
TLDR = SHARED / "data" / "jpo-authors" / "tldr" / "test.json"
SFT = SHARED / "data" / "jpo-authors" / "anthropic_helpful" / "val_sft.jsonl"
POSITIONS = 1024  # the widened position table (see the module docstring)
SFT_SETTINGS = dict(per_device_train_batch_size=8, max_length=1024, logging_steps=1000, seed=0, report_to="none",
                    save_strategy="no", disable_tqdm=True)
SETTINGS = dict(per_device_train_batch_size=8, learning_rate=1e-3, beta=0.1, logging_steps=1000, seed=0,
                report_to="none", save_strategy="no", disable_tqdm=True)
MAX_LENGTH = {"hh": 256, "tldr": 1024, "hh_joint": 256}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows_of(data: str) -> list[dict]:
    """TRL-format pairs ``{prompt, chosen, rejected}``; `hh_joint` is D_C ∪ D_H in the joint layout."""
    from jpo.data import load_preferences, read_jsonl

    if data == "tldr":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(MODEL)
        posts = read_jsonl(TLDR)
        instruction = "You are given a social media post, summarize it accordingly. \nPost: {}"  # the paper's
        rows = [{"prompt": instruction.format(row["instruction"].strip()), "chosen": " " + row["gold_response"],
                 "rejected": " " + posts[(i + 1) % len(posts)]["gold_response"]} for i, row in enumerate(posts)]
        # BOS + prompt + response + EOS within max_length on both sides: no truncation anywhere
        return [r for r in rows if len(tok(r["prompt"] + max(r["chosen"], r["rejected"], key=len)).input_ids)
                + 2 <= MAX_LENGTH["tldr"] - 8]
    pairs = load_preferences(HH)
    if data == "hh":
        return [{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in pairs]
    joint = [{"prompt_chosen": a["prompt_chosen"], "chosen": a["chosen"], "prompt_rejected": b["prompt_rejected"],
              "rejected": b["rejected"]} for a, b in zip(pairs, pairs[1:] + pairs[:1], strict=True)]
    return [{k: r[k] for k in ("prompt_chosen", "chosen", "prompt_rejected", "rejected")} for r in pairs] + joint


# --- workers (one per subprocess) ------------------------------------------------------------------------------
class Counting:
    """A collator that counts, over every batch it builds, the positions computed and those holding real tokens."""

    def __init__(self, collator) -> None:
        self.collator, self.computed, self.real = collator, 0, 0

    def __call__(self, items):
        from jpo.train.packing import computed_tokens

        batch = self.collator(items)
        computed, real = computed_tokens(batch)
        self.computed += computed
        self.real += real
        return batch

    def __getattr__(self, name):  # the trainers read their own collator's fields
        return getattr(self.collator, name)


def _model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(MODEL, max_position_embeddings=POSITIONS)


def _measure(trainer, start: float, steps: int) -> dict:
    trainer.data_collator = counting = Counting(trainer.data_collator)
    before = rss_mb()
    output = trainer.train()
    return {"wall": time.perf_counter() - start, "train": output.metrics["train_runtime"], "steps": steps,
            "mem": peak_mb() - before, "computed": counting.computed, "real": counting.real}


def worker(kind: str, data: str, steps: int, out: str, objective: str) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer

    start = time.perf_counter()
    if kind == "trl":
        from trl import DPOConfig as Config
        from trl import DPOTrainer as Trainer

        extra = {"bf16": False, "gradient_checkpointing": False}
    else:
        from jpo import JPOConfig as Config
        from jpo import JPOTrainer as Trainer

        extra = {"objective": objective}
    args = Config(output_dir=out, max_steps=steps, max_length=MAX_LENGTH[data], **SETTINGS, **extra)
    trainer = Trainer(model=_model(), args=args, train_dataset=Dataset.from_list(rows_of(data)),
                      processing_class=AutoTokenizer.from_pretrained(MODEL))
    return _measure(trainer, start, steps)


def worker_sft(kind: str, steps: int, out: str) -> dict:
    """SFT on the authors' HH SFT rows: jpo, TRL unpacked (`trl`) or TRL with its packing (`trl_packed`)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from jpo.data import read_jsonl

    start = time.perf_counter()
    rows = [{"prompt": r["instruction"], "completion": " " + r["response"]} for r in read_jsonl(SFT)]
    if kind.startswith("trl"):
        from trl import SFTConfig as Config
        from trl import SFTTrainer as Trainer

        extra = {"bf16": False, "gradient_checkpointing": False, "packing": kind == "trl_packed"}
    else:
        from jpo.train.config import SFTConfig as Config
        from jpo.train.sft import SFTTrainer as Trainer

        extra = {}
    args = Config(output_dir=out, max_steps=steps, **SFT_SETTINGS, **extra)
    trainer = Trainer(model=_model(), args=args, train_dataset=Dataset.from_list(rows),
                      processing_class=AutoTokenizer.from_pretrained(MODEL))
    return _measure(trainer, start, steps)


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


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _fraction(res: dict) -> str:
    return f"{res['real'] / res['computed']:.2f}"


def summary(results: dict[str, list[dict]], pairs: dict[str, int], loads: list[float], rounds: int,
            sft_steps: int) -> list[str]:
    """The report's lines: medians of the interleaved rounds and every round's ratio."""
    med = {n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in results.items()}
    lines = [f"1. DPO pairs/s, whole process, medians of {rounds} interleaved rounds (1-min load average after each "
             f"round: {', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} cores):"]
    for data, label in (("hh", "HH pairs, max_length 256"), ("tldr", "TL;DR-shaped pairs, max_length 1024")):
        trl, ours = results[f"trl_dpo_{data}"], results[f"jpo_dpo_{data}"]
        mt, mo = med[f"trl_dpo_{data}"], med[f"jpo_dpo_{data}"]
        n = pairs[f"trl_dpo_{data}"]
        ratios = [t["wall"] / o["wall"] for t, o in zip(trl, ours, strict=True)]
        loops = [t["train"] / o["train"] for t, o in zip(trl, ours, strict=True)]
        memory = [o["mem"] / t["mem"] for t, o in zip(trl, ours, strict=True)]
        lines += [f"   {label}: TRL {n / mt['wall']:.2f} pairs/s, jpo {n / mo['wall']:.2f} pairs/s: "
                  f"**{statistics.median(ratios):.2f}x** TRL's pairs/s whole process (per round "
                  f"{', '.join(f'{x:.2f}' for x in ratios)}), {statistics.median(loops):.2f}x the training loop "
                  f"(per round {', '.join(f'{x:.2f}' for x in loops)}); peak memory {statistics.median(memory):.2f}x "
                  f"TRL's (TRL +{mt['mem']:.0f} MiB, jpo +{mo['mem']:.0f} MiB); real tokens / computed tokens: "
                  f"jpo {_fraction(mo)}, TRL {_fraction(mt)}; jpo computes {mo['computed'] / mt['computed']:.2f}x "
                  f"the tokens TRL computes"]
    joint, dc = results["jpo_jpo_dc_dh"], results["jpo_dpo_hh"]
    per_pair = [(j["train"] / pairs["jpo_jpo_dc_dh"]) / (d["train"] / pairs["jpo_dpo_hh"])
                for j, d in zip(joint, dc, strict=True)]
    mj, md = med["jpo_jpo_dc_dh"], med["jpo_dpo_hh"]
    lines += [f"2. JPO on D_C ∪ D_H ({pairs['jpo_jpo_dc_dh']} pairs, half with different prompts): "
              f"{1000 * mj['train'] / pairs['jpo_jpo_dc_dh']:.1f} ms per pair (training loop) against DPO on D_C "
              f"{1000 * md['train'] / pairs['jpo_dpo_hh']:.1f} ms: {statistics.median(per_pair):.2f}x per pair "
              f"(per round {', '.join(f'{x:.2f}' for x in per_pair)}); peak memory +{mj['mem']:.0f} MiB against "
              f"+{md['mem']:.0f} MiB"]
    sft = {name: results[f"sft_{name}"] for name in ("jpo", "trl", "trl_packed")}

    def rate(res: dict) -> float:
        return res["real"] / res["wall"]

    parts = []
    for name, label in (("trl", "TRL unpacked"), ("trl_packed", "TRL packing=True")):
        ratios = [rate(o) / rate(t) for o, t in zip(sft["jpo"], sft[name], strict=True)]
        parts.append(f"**{statistics.median(ratios):.2f}x** {label} (per round {', '.join(f'{x:.2f}' for x in ratios)}"
                     f"; {statistics.median(rate(t) for t in sft[name]):.0f} tokens/s, real fraction "
                     f"{_fraction(med[f'sft_{name}'])})")
    lines += [f"3. SFT real tokens/s, whole process, {sft_steps} steps: jpo "
              f"{statistics.median(rate(o) for o in sft['jpo']):.0f} tokens/s (real fraction "
              f"{_fraction(med['sft_jpo'])}), " + "; ".join(parts)]
    return lines


def write_readme(path: Path, lines: list[str], command: str) -> None:
    """The README's bench-train block: the command, the commit, the date and the cores, then `lines`."""
    import datetime

    from jpo.runner.readme import markers, write_block
    from jpo.runner.report.results import checkout_commit

    commit = checkout_commit() or "unknown"
    block = [f"`{command}` at commit `{commit}`, {datetime.date.today().isoformat()}, {os.cpu_count()} shared CPU "
             "cores (written by the script):", "", *lines]
    write_block(path, markers("bench-train"), "\n".join(block))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians are reported")
    parser.add_argument("--hh_steps", type=int, default=46, help="optimizer steps on HH (46 = one epoch of 363)")
    parser.add_argument("--tldr_steps", type=int, default=20, help="optimizer steps on the TL;DR-shaped pairs")
    parser.add_argument("--sft_steps", type=int, default=20, help="optimizer steps of each SFT run")
    parser.add_argument("--vocab", action="store_true", help="also measure part 4 (128k-vocabulary memory)")
    parser.add_argument("--prompt_tokens", type=int, default=1024)
    parser.add_argument("--readme", type=Path, help="write the summary into this file's bench-train block")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "vocab":
            result = worker_vocab(rest[0], int(rest[1]))
        elif kind == "sft":
            result = worker_sft(rest[0], int(rest[1]), rest[2])
        else:
            result = worker(kind, rest[0], int(rest[1]), rest[2], rest[3])
        print(json.dumps(result))
        return
    if not all(p.exists() for p in (MODEL, HH, TLDR, SFT)):
        sys.exit(f"needs {MODEL}, {HH}, {TLDR} and {SFT} (the shared folder beside the project)")

    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    steps = {"hh": args.hh_steps, "tldr": args.tldr_steps}
    # (name, worker arguments, steps); D_C ∪ D_H has twice the pairs, so twice the steps.
    runs = [("trl_dpo_hh", ("trl", "hh"), "dpo", steps["hh"]), ("jpo_dpo_hh", ("ours", "hh"), "dpo", steps["hh"]),
            ("trl_dpo_tldr", ("trl", "tldr"), "dpo", steps["tldr"]),
            ("jpo_dpo_tldr", ("ours", "tldr"), "dpo", steps["tldr"]),
            ("jpo_jpo_dc_dh", ("ours", "hh_joint"), "jpo", 2 * steps["hh"]),
            ("sft_trl", ("sft", "trl"), None, args.sft_steps), ("sft_jpo", ("sft", "jpo"), None, args.sft_steps),
            ("sft_trl_packed", ("sft", "trl_packed"), None, args.sft_steps)]
    results: dict[str, list[dict]] = {name: [] for name, *_ in runs}
    loads = []
    for r in range(args.rounds):
        for name, (kind, data), objective, n in runs:
            extra = () if objective is None else (objective,)
            res = run_worker(kind, data, str(n), str(tmp / f"{name}{r}"), *extra)
            results[name].append(res)
            print(f"  round {r}  {name:14s} whole process {res['wall']:6.1f}s  train {res['train']:6.1f}s  "
                  f"peak +{res['mem']:7.1f} MiB  tokens computed {res['computed']:7d} real {res['real']:7d}   "
                  f"({load()})", flush=True)
        loads.append(os.getloadavg()[0])

    pairs = {name: n * SETTINGS["per_device_train_batch_size"] for name, _, _, n in runs}
    lines = summary(results, pairs, loads, args.rounds, args.sft_steps)
    print()
    print("\n".join(lines))
    if args.readme:
        command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
        write_readme(args.readme, lines, command)

    if not args.vocab:
        return
    print(f"\n4. One JPO step, random-init Llama, vocab 128256, {args.prompt_tokens}-token prompts, 128-token "
          "responses, 1 pair:")
    chunked = run_worker("vocab", "chunked", str(args.prompt_tokens))
    naive = run_worker("vocab", "naive", str(args.prompt_tokens))
    print(f"   chunked: peak +{chunked['mem']:.0f} MiB, {chunked['wall']:.2f}s;  naive full log-softmax: "
          f"peak +{naive['mem']:.0f} MiB, {naive['wall']:.2f}s")
    print(f"   peak memory naive / chunked: {naive['mem'] / chunked['mem']:.2f}x")


if __name__ == "__main__":
    main()
