"""Selection scale: choosing a labelling budget out of 250k and 1M joint-comparison candidates (issue #14: minutes on
2 cores, memory linear in the budget plus a chunk).

Each measurement runs in a fresh process and prints wall time and the peak of traced allocations (Python objects
and numpy arrays, through tracemalloc) of the `jpo.selection.select` call alone, i.e. without the instances it is
given. Margin selectors use cached per-instance rewards (a joint pair's margin is r_a - r_b, so the model scores
the n instances once); the model-scoring rate is measured separately on stories260K, and so is the disagreement
selector, whose two judges answer per candidate (it does not decompose).

What each selector buys (decisive labels, their agreement with the exact oracle, instructions covered, and the
win-rate a model trained on them reaches) is measured by `configs/demo-selection.yaml`'s `train.selection` grid,
not here.

Run: .venv/bin/python benchmarks/bench_select.py [--quick]   (stories260K from ../shared)
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


if __name__ == "__main__":
    main()
