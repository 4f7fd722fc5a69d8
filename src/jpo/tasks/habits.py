"""The surface habits of the synthetic task's responses: what the report's R4 check removes from two models'
outputs to see how much of a preference-training gain survives without them.

The contract the runner relies on (`jpo.runner.report.habit_stripped`), whatever the task's design:

- `habits_in(response) -> list[str]`: the names of the surface habits `response` shows, each at most once;
- `without_habit(response, habit) -> str`: `response` with that habit removed (unchanged if it has none), in the
  task's response format (a leading space, words separated by single spaces).

The runner counts habits over both models' generations, takes the most frequent, and removes it from both.
In this task the one habit is the filler sentence ("i hope this helps") that the world's text appends.
"""

from __future__ import annotations

from jpo.tasks.vocab import FILLER

HABITS = ("filler",)


def _filler_at(words: list[str]) -> int | None:
    n = len(FILLER)
    return next((i for i in range(len(words) - n + 1) if tuple(words[i:i + n]) == FILLER), None)


def habits_in(response: str) -> list[str]:
    """The habits `response` shows: ["filler"] when it holds the filler sentence, else []."""
    return ["filler"] if _filler_at(response.split()) is not None else []


def without_habit(response: str, habit: str) -> str:
    """`response` without every occurrence of `habit` (a name from HABITS); ValueError for an unknown name."""
    if habit not in HABITS:
        raise ValueError(f"unknown habit {habit!r}; this task's habits: {', '.join(HABITS)}")
    words = response.split()
    while (start := _filler_at(words)) is not None:
        del words[start:start + len(FILLER)]
    return " " + " ".join(words) if words else ""
