"""Responses of graded quality: the text of the world (the pretraining corpus and the annotation pool, hence D_S)
and the gold references.

A response as found in the world's text is the family's answer (the core) with k random content edits of the kinds
small models make (swap two words, drop one, insert or substitute a plausible word, or answer with the input
unchanged), and each of the ten habits (families.py) written independently, *unreliably*: a habit the instruction
wants with probability WANTED_RATE (under one half), one it forbids with FORBIDDEN_RATE, one it does not care about
with HABIT_RATE. The edits are noise that sampling reproduces. The habits are how a real LLM's data follows a
requester's taste: a little more often right than wrong, never reliably. A model that imitates this text
(pretraining, then SFT on D_S) writes a wanted habit less than half the time and a forbidden one now and then; only
preferences sharpen that -- each habit is in a minority of responses (and of pairs), rewarded in some comparisons,
punished in others, ignored in the rest -- so learning them takes many labels. (A first version wrote the habits
blind to the instruction; the demo's model then learnt nothing about them from 1,200 labels.)
Levels drawn per response make the two responses to one instruction usually differ in quality, sometimes not at all
(a tie, as with real annotators). Gold references are "good but not perfect", like human ones (SFT wins 44% against
TL;DR's): well above the world's text, but fewer than a third are ideal, the others carry a content slip or a habit
wrong, so a model's win-rate rises with every habit it gets right, not only when it is perfect.
"""

from __future__ import annotations

import random

from jpo.tasks.families import HABITS, Instance, parse, with_habits
from jpo.tasks.vocab import LIST_WORDS

# Probability of each content-edit level (index = number of edits) for every response of the world's text, the rate
# of each habit in it, and the gold references' slips. Fixed before any test result was seen
# (tuned on the validation split only, see configs/demo.yaml).
WORLD_LEVELS: tuple[float, ...] = (0.7, 0.15, 0.1, 0.05)
HABIT_RATE = 0.25  # a habit the instruction is indifferent to
WANTED_RATE = 0.4  # a habit it wants
FORBIDDEN_RATE = 0.1  # a habit it forbids
GOLD_CONTENT_SLIP = 0.4
GOLD_HABIT_SLIP = 0.2


def _edit(words: list[str], instance: Instance, rng: random.Random, allow_copy: bool) -> list[str]:
    pool = list(instance.inputs) + list(LIST_WORDS[:6])
    kinds = ["drop", "insert", "substitute"] + (["swap"] if instance.family != "summary" else ["substitute"])
    kind = rng.choice(kinds + (["copy"] if allow_copy and instance.family != "summary" else []))
    if kind == "copy":
        return list(instance.inputs[: max(3, len(words))])
    if kind == "swap" and len(words) >= 2:
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    elif kind == "drop" and len(words) >= 2:
        del words[rng.randrange(len(words))]
    elif kind == "substitute" and words:
        words[rng.randrange(len(words))] = rng.choice(pool)
    else:
        words.insert(rng.randint(0, len(words)), rng.choice(pool))
    return words


def edited_core(instance: Instance, level: int, rng: random.Random, allow_copy: bool = True) -> str:
    """The family's answer after `level` random content edits."""
    words = instance.core.split()
    for _ in range(level):
        words = _edit(words, instance, rng, allow_copy)
    return " ".join(words)


def graded_response(prompt: str, level: int, rng: random.Random, allow_copy: bool = True,
                    habits: frozenset[str] | set[str] | None = None) -> str:
    """The core answer to `prompt` after `level` random content edits, with `habits` (default: the ones the
    instruction wants, so level 0 is the ideal answer); `allow_copy` permits the gross failure of answering with the
    input unchanged. Starts with a space (see ANSWER_CUE)."""
    instance = parse(prompt)
    return " " + with_habits(edited_core(instance, level, rng, allow_copy),
                             instance.wanted if habits is None else habits)


def draw_level(levels: tuple[float, ...], rng: random.Random) -> int:
    return rng.choices(range(len(levels)), weights=levels)[0]


def world_habits(instance: Instance, rng: random.Random) -> frozenset[str]:
    """The habits of one response of the world's text: each independently, more often where the instruction wants it
    (WANTED_RATE) than where it forbids it (FORBIDDEN_RATE), HABIT_RATE elsewhere."""
    def rate(habit: str) -> float:
        return (WANTED_RATE if habit in instance.wanted else FORBIDDEN_RATE if habit in instance.forbidden
                else HABIT_RATE)

    return frozenset(habit for habit in HABITS if rng.random() < rate(habit))


def world_response(prompt: str, rng: random.Random) -> str:
    """A response as the world's text holds it: a pretraining document's answer, or one side of a pool pair."""
    return graded_response(prompt, draw_level(WORLD_LEVELS, rng), rng, habits=world_habits(parse(prompt), rng))


def annotation_pair(prompt: str, rng: random.Random) -> tuple[str, str]:
    """Two independently drawn responses to one training instruction."""
    return world_response(prompt, rng), world_response(prompt, rng)


def gold(prompt: str, rng: random.Random) -> str:
    """A test reference, "good but not perfect" as human references are: a content slip (one edit, never a copy of
    the input) with probability GOLD_CONTENT_SLIP, and each habit the instruction has an opinion on wrong (a wanted
    one left out, a forbidden one written) with probability GOLD_HABIT_SLIP."""
    instance = parse(prompt)
    level = 1 if rng.random() < GOLD_CONTENT_SLIP else 0
    flipped = {habit for habit in sorted(instance.wanted | instance.forbidden) if rng.random() < GOLD_HABIT_SLIP}
    return graded_response(prompt, level, rng, allow_copy=False, habits=instance.wanted ^ flipped)


def habits_in(response: str) -> list[str]:
    """The habit words a response contains, in HABITS order (as a measurement of outputs: R4 in the demo)."""
    present = set(response.lower().split())
    return [habit for habit in HABITS if habit in present]


def without_habit(response: str, habit: str) -> str:
    """`response` with every occurrence of the word `habit` removed (the demo's R4 check: how much of a gain
    survives when one surface feature is taken out of both models' outputs)."""
    kept = [word for word in response.split() if word.lower() != habit]
    return (" " if response.startswith(" ") else "") + " ".join(kept)
