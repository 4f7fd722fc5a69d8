"""Selection scale: choosing a labelling budget out of 250k and 1M joint-comparison candidates (issue #14: minutes on
2 cores, memory linear in the budget plus a chunk).

Each measurement runs in a fresh process and prints wall time and the peak of traced allocations (Python objects
and numpy arrays, through tracemalloc) of the `jpo.selection.select` call alone, i.e. without the instances it is
given. Margin selectors use cached per-instance rewards (a joint pair's margin is r_a - r_b, so the model scores
the n instances once); the model-scoring rate is measured separately on stories260K, and so is the disagreement
selector, whose two judges answer per candidate (it does not decompose).

`--label-quality` adds what each selector buys on the demo's annotation pool (1000 instructions, one response each,
10 random partners each: 10,000 candidates): the share of decisive labels from the demo's annotator (oracle, temperature 0.2), how many of those agree
with the exact oracle, the true quality gap |q_a - q_b| of the chosen comparisons and the instructions they cover,
over 3 seeds. The margin selectors use the SFT model's per-instance reward (the demo's SFT, `--sft-epochs` epochs);
`disagreement` asks two cheaper, noisier oracles (temperature 0.4, seeds 3 and 4), not the annotator itself.

Run: .venv/bin/python benchmarks/bench_select.py [--quick] [--label-quality]   (stories260K from ../shared)
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "models" / "stories260K"

CHILD = """
import sys, time, tracemalloc
import numpy as np
from jpo.selection import select
n, pool, selector, budget = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
pool = pool if pool == "all" else int(pool)
families = ("sort", "reverse", "dedup", "keywords", "summary")
rows = [{"prompt": f"instruction {i}", "response": f"response {i}", "family": families[i % 5]} for i in range(n)]
rewards = np.random.default_rng(0).normal(size=n)  # cached per-instance rewards
tracemalloc.start()
start = time.perf_counter()
items, report = select(rows, selector, budget, pool=pool, rewards=rewards if selector in ("uncertainty", "certainty") else None)
elapsed = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
assert len(items) == budget, report.summary()
print(report.candidates, f"{elapsed:.3f}", f"{peak / 2**20:.1f}")
"""

SCORING = """
import random, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from jpo.selection.scores import joint_logps
from jpo.tasks import graded_response, make_instance
torch.set_num_threads(int(sys.argv[3]))
n = int(sys.argv[2]); rng = random.Random(0)
rows = []
for _ in range(n):
    p = make_instance(rng).prompt
    rows.append({"prompt": p, "response": graded_response(p, rng.randint(0, 3), rng)})
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]); tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
tokenizer.pad_token = tokenizer.eos_token
start = time.perf_counter()
logps, tokens = joint_logps(model, tokenizer, rows, max_length=256, batch_size=128)
elapsed = time.perf_counter() - start
print(f"{elapsed:.3f}", f"{tokens.mean():.1f}")
"""

DISAGREEMENT = """
import sys, time
import numpy as np
from jpo.feedback.registry import make_judge
from jpo.selection import select
from jpo.tasks import graded_response, make_instance
import random
n, k, budget = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); rng = random.Random(0)
rows = []
for _ in range(n):
    p = make_instance(rng).prompt
    rows.append({"prompt": p, "response": graded_response(p, rng.randint(0, 3), rng)})
judges = [make_judge("oracle:temperature=0.1,seed=1"), make_judge("oracle:temperature=0.1,seed=2")]
start = time.perf_counter()
items, report = select(rows, "disagreement", budget, pool=k, judges=judges)
print(report.candidates, f"{time.perf_counter() - start:.3f}")
"""


LABEL_QUALITY = """
import random, sys, tempfile
from pathlib import Path
import numpy as np
import torch
from scipy.stats import spearmanr
from jpo.data import read_jsonl
from jpo.demo.config import load_config
from jpo.demo.pipeline import Demo
from jpo.feedback.registry import make_judge
from jpo.feedback.runner import judge_items
from jpo.selection import select
from jpo.selection.scores import instance_rewards
from jpo.tasks import quality
torch.set_num_threads(1)
config = load_config(None)
config.sft["num_train_epochs"] = int(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    demo = Demo(config, Path(tmp), progress=False, echo=lambda line: None)
    data = demo.data()
    sft, _ = demo.sft(demo.base_model(data), data, 0)
    pool = read_jsonl(data / "pool.jsonl")
    rng = random.Random(config.pairing_seed)
    rows = [{"prompt": r["prompt"], "response": rng.choice([r["response_a"], r["response_b"]]), "family": r["family"]}
            for r in pool]
    rewards = instance_rewards(rows, str(sft), max_length=config.max_length)
q = np.array([quality(r["prompt"], r["response"]) for r in rows])
print(f"Spearman(SFT per-instance reward, true quality) = {spearmanr(rewards, q).statistic:.3f} over {len(rows)} instances")
annotator, exact = make_judge("oracle:temperature=0.2,seed=1"), make_judge("oracle")
committee = [make_judge("oracle:temperature=0.4,seed=3"), make_judge("oracle:temperature=0.4,seed=4")]
where = {r["prompt"]: k for k, r in enumerate(rows)}
print(f"{'budget':>6} {'selector':>12} {'decisive %':>11} {'correct % of decisive':>22} {'true |dq|':>10} {'instructions':>12}")
for budget in (250, 1000):
    for name in ("random", "coverage", "uncertainty", "certainty", "disagreement"):
        runs = []
        for seed in (0, 1, 2):
            items, _ = select(rows, name, budget, pool=10, seed=seed, rewards=rewards,
                              judges=committee if name == "disagreement" else ())
            said = [r.label for r in judge_items(items, annotator, progress=False).results]
            truth = [r.label for r in judge_items(items, exact, progress=False).results]
            decisive = [k for k, label in enumerate(said) if label in ("a", "b")]
            gap = np.mean([abs(q[where[i["prompt_a"]]] - q[where[i["prompt_b"]]]) for i in items])
            covered = len({i["prompt_a"] for i in items} | {i["prompt_b"] for i in items})
            runs.append((len(decisive) / budget, sum(said[k] == truth[k] for k in decisive) / max(1, len(decisive)),
                         gap, covered))
        m, sd = np.mean(runs, axis=0), np.std(runs, axis=0)
        print(f"{budget:>6} {name:>12} {100 * m[0]:>6.1f} +-{100 * sd[0]:.1f} {100 * m[1]:>15.1f} +-{100 * sd[1]:.1f} "
              f"{m[2]:>10.3f} {m[3]:>12.0f}")
"""


def child(code: str, *args: object) -> list[str]:
    env_path = str(ROOT / "src")
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r})\n" + code,
                             *map(str, args)], capture_output=True, text=True, check=True)
    return result.stdout.split()


def instances_for(candidates: int, pool: str) -> int:
    if pool == "all":
        return math.ceil((1 + math.sqrt(1 + 8 * candidates)) / 2)
    return candidates // int(pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="250k only, fewer selectors (a smoke run)")
    parser.add_argument("--label-quality", action="store_true", help="also measure what each selector buys on the "
                        "demo's pool (trains the demo's SFT model first)")
    parser.add_argument("--sft-epochs", type=int, default=1, help="--label-quality: SFT epochs (the demo uses 8)")
    args = parser.parse_args()
    sizes = [250_000] if args.quick else [250_000, 1_000_000]
    selectors = ["random", "uncertainty"] if args.quick else ["random", "coverage", "uncertainty", "certainty"]
    budget = 10_000
    print(f"selection of a budget of {budget} (cached per-instance rewards for the margin selectors)")
    print(f"{'candidates':>10} {'pool':>12} {'instances':>9} {'selector':>12} {'seconds':>8} {'peak MiB':>9}")
    timings = {}
    for size in sizes:
        for pool in ("all", "10"):
            n = instances_for(size, pool)
            for selector in selectors:
                candidates, seconds, peak = child(CHILD, n, pool, selector, budget)
                timings[(size, pool, selector)] = float(seconds)
                label = "all pairs" if pool == "all" else f"{pool} partners"
                print(f"{candidates:>10} {label:>12} {n:>9} {selector:>12} {float(seconds):>8.2f} {float(peak):>9.1f}")
    if not args.quick:
        for selector in selectors:
            ratio = timings[(1_000_000, "10", selector)] / timings[(250_000, "10", selector)]
            print(f"time ratio 1M/250k ({selector}, 10 partners): {ratio:.2f}x (linear = 4x)")
    print("\nmemory against the budget (1M candidates, 10 partners per instance, uncertainty)")
    print(f"{'budget':>8} {'seconds':>8} {'peak MiB':>9}")
    for b in ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]):
        _, seconds, peak = child(CHILD, instances_for(1_000_000, "10") if not args.quick else 25_000, "10",
                                 "uncertainty", b)
        print(f"{b:>8} {float(seconds):>8.2f} {float(peak):>9.1f}")
    if MODEL.exists():
        n = 1_000 if args.quick else 3_000
        for threads in (1, 2):
            seconds, tokens = child(SCORING, MODEL, n, threads)
            rate = n / float(seconds)
            print(f"{'' if threads > 1 else chr(10)}scoring with stories260K ({threads} torch thread(s), joint scope, "
                  f"{float(tokens):.0f} tokens per instance): {n} instances in {float(seconds):.1f} s = {rate:.0f} "
                  f"instances/s; the 100,000 instances of a 1M-candidate pool (10 partners) at this rate: "
                  f"{100_000 / rate / 60:.1f} min (extrapolated)")
    else:
        print(f"\nscoring rate not measured: {MODEL} not found")
    n, k = (2_000, 5) if args.quick else (10_000, 5)
    candidates, seconds = child(DISAGREEMENT, n, k, 1_000)
    print(f"disagreement (two oracle judges, both orders, per candidate): {candidates} candidates in "
          f"{float(seconds):.1f} s = {int(candidates) / float(seconds):.0f} candidates/s")
    if args.label_quality:
        print(f"\nwhat each selector buys on the demo's pool (SFT {args.sft_epochs} epoch(s); mean +- sd over 3 seeds)")
        print(subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r})\n"
                              + LABEL_QUALITY, str(args.sft_epochs)], capture_output=True, text=True,
                             check=True).stdout, end="")


if __name__ == "__main__":
    main()
