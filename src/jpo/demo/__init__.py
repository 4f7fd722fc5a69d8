"""`jpo demo`: the paper's experiment in miniature, end to end, offline, on CPU (what `make demo` runs).

A synthetic task with a known quality score stands in for TL;DR / Anthropic-Helpful, an oracle judge for ChatGPT,
and a ~1M-parameter Llama for Mistral-7B; everything else is the library's real pipeline. See pipeline.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# Measured with default sizes on this project's 2 CPU cores, idle: a fresh 1-seed run took 3.7 min (SFT 131 s, the
# five preference runs of a seed 72 s, generation ~10 s per seed); the --scaling runs added 11-18 s per seed. While
# other jobs shared the cores the same run took 13.7-25.6 min, hence the warning. Printed before the run starts.
MINUTES_FIXED = 2.5
MINUTES_PER_SEED = 1.5
MINUTES_SCALING_PER_SEED = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds to run and pool (the paper uses 3)")
    parser.add_argument("--scaling", action="store_true",
                        help="also train JPO on growing subsets of D_H (the data-scaling curve, paper Figure 7)")
    parser.add_argument("--force", action="store_true", help="redo every stage instead of reusing cached ones")
    parser.add_argument("--config", default=None, help="YAML overriding the demo's settings (see configs/demo.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (summary lines only)")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of the experiment, run the hyperparameter sweep on the validation prompts and "
                             "write OUT/sweep.json (how configs/demo.yaml was chosen)")


def run(args: argparse.Namespace) -> int:
    from jpo.errors import JpoError

    if args.seeds < 1:
        raise JpoError("--seeds must be at least 1")
    from jpo.demo.config import load_config
    from jpo.demo.pipeline import run_demo
    from jpo.demo.report import verdict, write_outputs

    config = load_config(args.config)
    if args.sweep:
        import json

        from jpo.demo.sweep import run_sweep

        result = run_sweep(config, Path(args.out), progress=not args.no_progress)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "sweep.json").write_text(json.dumps(result, indent=1))
        for family, entry in result.items():
            print(f"jpo demo --sweep: {family}: chose {entry['chosen']}")
        return 0
    minutes = MINUTES_FIXED + args.seeds * (MINUTES_PER_SEED + (MINUTES_SCALING_PER_SEED if args.scaling else 0))
    print(f"jpo demo: about {minutes:.0f} minutes on 2 idle CPU cores for a fresh run ({args.seeds} seed(s)"
          f"{', with the scaling curve' if args.scaling else ''}; several times longer while other jobs share the "
          "cores); cached stages are reused (--force redoes them).")
    started = time.perf_counter()
    out = Path(args.out)
    result = run_demo(config, out, seeds=args.seeds, scaling=args.scaling, force=args.force,
                      progress=not args.no_progress)
    written = write_outputs(result, out)
    print(verdict(result["rows"], result.get("paired")))
    print(f"jpo demo: done in {(time.perf_counter() - started) / 60:.1f} min; wrote "
          + ", ".join(str(path) for path in written))
    return 0
