"""Training steps per second of the demo's tiny Llama under torch's thread settings, alone and with a second copy
of itself running at the same time (as when two runs, or a run and the test suite, share the cores).

    python benchmarks/bench_threads.py [--steps 60]

Prints one line per (threads, OMP_WAIT_POLICY, concurrent copies): steps/s of each copy. Each copy is a subprocess,
so that the OpenMP runtime starts with the setting under test (libgomp reads OMP_WAIT_POLICY once, when torch loads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, torch
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 512, (32, 40))
def step():
    loss = model(input_ids=x, labels=x).loss
    loss.backward(); opt.step(); opt.zero_grad()
for _ in range(5):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start)}))
"""


def run(threads: int, policy: str | None, copies: int, steps: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": policy} if policy else {})
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(threads), str(steps)], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(copies)]
    return [json.loads(p.communicate()[0])["steps_per_s"] for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for copies in (1, 2):
        for threads, policy in [(t, p) for t in args.threads for p in (None, "PASSIVE")]:
            started = time.perf_counter()
            rates = run(threads, policy, copies, args.steps)
            print(f"threads {threads}, OMP_WAIT_POLICY {policy or 'unset'}, {copies} concurrent "
                  f"cop{'y' if copies == 1 else 'ies'}: steps/s "
                  + ", ".join(f"{r:.1f}" for r in rates) + f" (wall {time.perf_counter() - started:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
