"""A synthetic instruction-following task with a known quality score: the ground truth behind `jpo demo`.

Importing the task registers its oracle judge (`--judge oracle[:temperature=T,seed=S,margin=M]`); the `jpo` command
imports it before any subcommand runs.
"""

from jpo.feedback.registry import register_backend
from jpo.tasks.datasets import Sizes, build_splits, corpus
from jpo.tasks.families import FAMILIES, Instance, make_instance, parse
from jpo.tasks.quality import edit_distance, quality, similarity
from jpo.tasks.responses import annotation_pair, demonstration, gold, graded_response

__all__ = [
    "FAMILIES", "Instance", "Sizes", "annotation_pair", "build_splits", "corpus", "demonstration", "edit_distance",
    "gold", "graded_response", "make_instance", "parse", "quality", "similarity",
]

register_backend("oracle", "jpo.tasks.oracle:OracleJudge")
