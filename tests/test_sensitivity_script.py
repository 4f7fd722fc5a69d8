"""benchmarks/testbed_sensitivity.py's measurement recipe: the demo recipe reduced to its sensitivity runs, evaluated
on the validation prompts at the given seeds, each its own base model (no training here)."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import script_module

from jpo.runner.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def _script():
    return script_module("benchmarks/testbed_sensitivity.py")


def test_measurement_recipe_is_the_demo_on_validation_prompts(tmp_path: Path) -> None:
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    path = _script().measurement_recipe(ROOT / "configs" / "demo.yaml", "validation", [0, 2], tmp_path)
    raw = yaml.safe_load(path.read_text())
    # evaluated on the validation prompts; the test split still drawn at its size, so the prompts are the recipe's
    assert raw["data"]["eval"] == demo["data"]["validation"]
    assert raw["data"]["validation"] == demo["data"]["eval"]
    assert raw["data"]["fresh"] == demo["data"]["fresh"]
    assert [run["name"] for run in raw["train"]["runs"]] == ["dpo", "dpo-half", "dpo-more", "dpo-reordered"]
    assert raw["train"]["seeds"] == [0, 2] and raw["train"]["vary_base"] is True
    assert "scaling" not in raw["train"] and "paper" not in raw
    recipe = load_recipe(path)
    assert recipe.sensitivity.run == "dpo" and recipe.judge.spec == demo["judge"]["spec"]


def test_measurement_recipe_on_test_prompts_keeps_the_splits(tmp_path: Path) -> None:
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw = yaml.safe_load(_script().measurement_recipe(ROOT / "configs" / "demo.yaml", "test", [0], tmp_path)
                         .read_text())
    assert raw["data"]["eval"] == demo["data"]["eval"] and raw["data"]["validation"] == demo["data"]["validation"]
