"""Evaluation: sample responses at several temperatures, judge them against gold, report win-rates with intervals."""

from jpo.evaluate.against_gold import Evaluation, comparison_items, evaluate_generations
from jpo.evaluate.generate import generate, load_model_and_tokenizer, to_alpaca_eval
from jpo.evaluate.winrate import (
    WinRate,
    bootstrap_ci,
    outcome_of_label,
    paired_difference,
    read_authors_verdicts,
    win_rate,
)

__all__ = [
    "Evaluation", "WinRate", "bootstrap_ci", "comparison_items", "evaluate_generations", "generate",
    "load_model_and_tokenizer", "outcome_of_label", "paired_difference", "read_authors_verdicts", "to_alpaca_eval", "win_rate",
]
