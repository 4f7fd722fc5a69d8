"""Pairing scale: `jpo pairs` on 1,000,000 instruction-response instances (issue: <= 20 s, memory linear in n).

Prints wall time and peak RSS growth at n = 250k, 500k and 1M side by side, so linearity is read off the ratios.
Run: .venv/bin/python benchmarks/bench_pairs.py [--max 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys, time
from jpo.data import write_jsonl
from jpo.data.pairs import build_pairs
n = int(sys.argv[1]); out = sys.argv[2]
rows = [{"prompt": f"Summarize post {i}: the quick brown fox jumps over the lazy dog", "response": f"summary {i}"}
        for i in range(n)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
items = build_pairs(rows, seed=0)
paired = time.perf_counter() - start
write_jsonl(out, items)
total = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{n} {paired:.3f} {total:.3f} {(peak - base) / 1024:.1f} {base / 1024:.1f}")
"""


def measure(n: int, out: Path) -> tuple[float, float, float, float]:
    result = subprocess.run([sys.executable, "-c", CHILD, str(n), str(out)], capture_output=True, text=True, check=True)
    _, paired, total, growth, base = result.stdout.split()
    return float(paired), float(total), float(growth), float(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max", type=int, default=1_000_000)
    args = parser.parse_args()
    sizes = [args.max // 4, args.max // 2, args.max]
    print(f"{'n':>9} {'pair s':>8} {'pair+write s':>13} {'RSS growth MiB':>15} {'input MiB':>10}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            results[n] = measure(n, Path(tmp) / "items.jsonl")
            paired, total, growth, base = results[n]
            print(f"{n:>9} {paired:>8.2f} {total:>13.2f} {growth:>15.1f} {base:>10.1f}")
    small, large = results[sizes[0]], results[sizes[-1]]
    print(f"time ratio {sizes[-1]}/{sizes[0]}: {large[1] / small[1]:.2f}x (linear = {sizes[-1] / sizes[0]:.0f}x)")
    print(f"memory ratio {sizes[-1]}/{sizes[0]}: {large[2] / max(small[2], 1e-9):.2f}x (linear = {sizes[-1] / sizes[0]:.0f}x)")
    print(f"{sizes[-1]} instances paired and written in {large[1]:.1f} s (budget 20 s)")


if __name__ == "__main__":
    main()
