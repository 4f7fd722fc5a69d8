"""`jpo demo`: `jpo run` on the built-in recipe configs/demo.yaml -- the paper's experiment in miniature on the
synthetic task, offline, on CPU (what `make demo` runs). Nothing here but the recipe's location and two overrides.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jpo.errors import JpoError
from jpo.runner.run import DEMO_RECIPE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jpo.cli.run import add_run_arguments

    parser.add_argument("--out", "--output-dir", dest="out", default="runs/demo",
                        help="output folder (default: runs/demo); --output-dir as in `jpo run`")
    parser.add_argument("--seeds", type=int, help="preference-training seeds 0..N-1 (default: the recipe's; the "
                        "paper uses 3)")
    parser.add_argument("--config", default=None, help=f"another recipe instead of the built-in {DEMO_RECIPE.name}")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jpo.runner.recipe import load_recipe
    from jpo.runner.run import run_recipe, with_seeds

    if args.config is not None and not args.config.strip():
        raise JpoError("--config: expected the path of a recipe file, got an empty string")
    path = Path(args.config) if args.config is not None else DEMO_RECIPE
    if args.config is None and not path.exists():
        raise JpoError(f"{path}: the demo's recipe is not here (run from a checkout of jpo, or pass --config)")
    recipe = with_seeds(load_recipe(path), args.seeds)
    started = time.perf_counter()
    run_recipe(recipe, output_dir=args.out, dry_run=args.dry_run, sweep=args.sweep, start=args.start,
               force=args.force)
    print(f"jpo demo: done in {(time.perf_counter() - started) / 60:.1f} min")
    return 0
