"""`jpo run RECIPE`: one experiment from a YAML recipe, as resumable units (see jpo.runner)."""

from __future__ import annotations

import argparse

from jpo.errors import JpoError
from jpo.runner.units import STAGES


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `jpo run` and `jpo demo` share."""
    parser.add_argument("--dry-run", action="store_true",
                        help="the recipe at toy size: tiny random model, a few rows per source, one training step, "
                             "mock judge; checks recipe, data and every stage without a GPU or network")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of the experiment, train every run over the recipe's `sweep` grid and score "
                             "it on the validation prompts (how a recipe's learning rates are chosen)")
    parser.add_argument("--from", dest="start", choices=STAGES, help="rerun this stage and every later one")
    parser.add_argument("--force", action="store_true", help="rerun every unit, ignoring finished manifests")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML (see configs/)")
    add_run_arguments(parser)
    parser.add_argument("--output-dir", help="run folder (default: the recipe's output_dir, or runs/NAME; a dry run "
                        "adds -dry-run)")
    parser.add_argument("--source-path", action="append", default=[], metavar="NAME=PATH",
                        help="read a named source from a local file or folder instead of the hub (repeatable); "
                        "NAME:KIND=PATH for one kind only (e.g. tldr:preference=comparisons.jsonl)")
    parser.add_argument("--dry-run-tokenizer", help="tokenizer folder for the dry run's tiny model")


def source_paths(specs: list[str]) -> dict[str, str]:
    paths = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise JpoError(f"--source-path expects NAME=PATH, got {spec!r}")
        paths[name] = path
    return paths


def run(args: argparse.Namespace) -> int:
    from jpo.runner.recipe import load_recipe
    from jpo.runner.run import run_recipe

    run_recipe(load_recipe(args.recipe), output_dir=args.output_dir, dry_run=args.dry_run, sweep=args.sweep,
               start=args.start, force=args.force, paths=source_paths(args.source_path),
               dry_run_tokenizer=args.dry_run_tokenizer)
    return 0
