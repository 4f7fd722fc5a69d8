"""The quality score q(instruction, response) in [0, 1]: the known truth the demo's oracle judges by.

q is one minus the word-level edit distance between the response and the instruction's ideal answer (the family's
answer with the habits the instruction wants, families.py), divided by the longer of the two, after the habit words
the instruction is indifferent to are taken out of the response: every misplaced, missing or extra word costs the
same -- a content slip, a wanted habit left out, a forbidden habit written -- so partial answers get partial credit
and padding a right answer with junk is penalised. Case and a trailing full stop are ignored, as a human rater would.
"""

from __future__ import annotations

from jpo.tasks.families import parse


def words(text: str) -> list[str]:
    return text.lower().replace(" .", " ").rstrip(".").split()


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance over words (insert, delete, substitute each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, word_a in enumerate(a, 1):
        current = [i]
        for j, word_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word_a != word_b)))
        previous = current
    return previous[-1]


def similarity(response: str | list[str], target: str) -> float:
    got, want = (words(response) if isinstance(response, str) else response), words(target)
    longest = max(len(got), len(want))
    return 1.0 if longest == 0 else 1.0 - edit_distance(got, want) / longest


def quality(prompt: str, response: str) -> float:
    """q(prompt, response) in [0, 1]; 1 exactly for the ideal answer. ValueError for a prompt not of this task."""
    instance = parse(prompt)
    return similarity([word for word in words(response) if word not in instance.neutral], instance.target)
