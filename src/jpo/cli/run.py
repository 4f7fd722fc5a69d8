"""`jpo run RECIPE`: one experiment from a YAML recipe, as resumable units (see jpo.runner)."""

from __future__ import annotations

import argparse
import dataclasses
from contextlib import ExitStack
from pathlib import Path

from jpo.errors import JpoError
from jpo.runner.recipe import DRY_TRAIN, BuildModel, Recipe, for_dry_run, for_sweep, load_recipe
from jpo.runner.units import STAGES

TINY_BUILD = BuildModel(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


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


def run_recipe(recipe: Recipe, *, output_dir: str | None = None, dry_run: bool = False, sweep: bool = False,
               start: str | None = None, force: bool = False, paths: dict[str, str] | None = None,
               dry_run_tokenizer: str | None = None) -> Path:
    """Plan and execute a recipe (what `jpo run` and `jpo demo` do); returns the run folder."""
    from jpo.runner.plan import plan
    from jpo.runner.tiny import tiny_like
    from jpo.runner.units import execute

    if sweep:
        recipe = for_sweep(recipe)
    default = recipe.output_dir or f"runs/{recipe.name}"
    run_dir = Path(output_dir or (default + ("-dry-run" if dry_run else "")))
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.threads:
        import torch

        torch.set_num_threads(recipe.threads)
    with ExitStack() as stack:
        if dry_run:
            if isinstance(recipe.model, BuildModel):
                model: str | BuildModel = dataclasses.replace(
                    TINY_BUILD, pretrain=recipe.model.pretrain and {**recipe.model.pretrain, **DRY_TRAIN})
            else:
                folder = run_dir / "dry_run_model"
                if not (folder / "config.json").exists():
                    tiny_like(recipe.model, folder, model_type=recipe.dry_run.model_type,
                              tokenizer_path=dry_run_tokenizer or recipe.dry_run.tokenizer,
                              chat=recipe.prompt_template == "chat")
                model = str(folder)
            from jpo.feedback.mock_server import MockJudgeServer

            server = stack.enter_context(MockJudgeServer())
            recipe = for_dry_run(recipe, model, server.base_url)
        units = plan(recipe, run_dir, paths or {})
        done = execute(units, start, force)
    ran = sum(1 for _, how in done if how == "ran")
    print(f"jpo run: {recipe.name}{' (dry run)' if dry_run else ''}: {ran} unit(s) ran, {len(done) - ran} skipped "
          f"-> {run_dir}; report: {run_dir / 'report' / 'results.md'}")
    return run_dir


def with_seeds(recipe: Recipe, count: int | None) -> Recipe:
    if count is None:
        return recipe
    if count < 1:
        raise JpoError("--seeds must be at least 1")
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, seeds=list(range(count))))


def run(args: argparse.Namespace) -> int:
    run_recipe(load_recipe(args.recipe), output_dir=args.output_dir, dry_run=args.dry_run, sweep=args.sweep,
               start=args.start, force=args.force, paths=source_paths(args.source_path),
               dry_run_tokenizer=args.dry_run_tokenizer)
    return 0
