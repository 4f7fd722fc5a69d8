"""`jpo run RECIPE`: every experiment, the demo included, as one recipe -> units -> report.

    recipe.py   the recipe as dataclasses; the dry-run and sweep transformations
    settings.py a recipe's training settings, from its keys to the config the Trainer gets (one merge)
    data.py     the data stage: sources, the pool, D_S, joint comparisons
    stages.py   the other stage bodies: model, feedback (D_C, D_H), sft, train, generate, evaluate
    plan.py     a recipe as units; units.py: manifests and the resume rule
    report/     the one report: its numbers, results.md, plots; run.py: plan and execute a recipe (`jpo run` / `jpo demo`, in jpo.cli)
"""

from jpo.runner.recipe import Recipe, load_recipe, parse_recipe

__all__ = ["Recipe", "load_recipe", "parse_recipe"]
