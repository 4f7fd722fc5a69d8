"""Running a recipe: plan its units and execute them (what `jpo run` and `jpo demo` call), and the built-in demo
recipe's location."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from pathlib import Path

from jpo.errors import JpoError
from jpo.runner.recipe import DRY_TRAIN, BuildModel, Recipe, for_dry_run, for_sweep

# configs/demo.yaml, through a symbolic link beside this module so that a built wheel carries the recipe's contents.
DEMO_RECIPE = Path(__file__).with_name("demo.yaml")
TINY_BUILD = BuildModel(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


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
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file of that name, a path through a file, no permission: the flag's mistake
        raise JpoError(f"{run_dir}: cannot make the run folder here: {error.strerror}") from None
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
        raise JpoError(f"--seeds must be at least 1, got {count}")
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, seeds=list(range(count))))
