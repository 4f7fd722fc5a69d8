"""A synthetic instruction-following task with a known quality score: the ground truth behind `jpo demo`.

Its oracle judge (`--judge oracle[:temperature=T,seed=S,margin=M]`) is declared in pyproject.toml's `jpo.judges`
entry points, so judges find it without this package importing feedback's registry.
"""

from jpo.tasks.datasets import Sizes, build_splits, corpus
from jpo.tasks.families import FAMILIES, HABITS, PROFILES, STYLES, Instance, make_instance, parse
from jpo.tasks.quality import edit_distance, quality, similarity
from jpo.tasks.responses import (
    annotation_pair,
    gold,
    graded_response,
    habits_in,
    without_habit,
    world_response,
)

__all__ = [
    "FAMILIES", "HABITS", "PROFILES", "STYLES", "Instance", "Sizes", "annotation_pair", "build_splits", "corpus",
    "edit_distance", "gold", "graded_response", "habits_in", "make_instance", "parse", "quality", "similarity",
    "without_habit", "world_response",
]
