"""Responses of graded quality: the text of the world (the pretraining corpus and the annotation pool, hence D_S)
and the gold references.

A response as found in the world's text is the ideal answer with k random edits of the kinds small models make
(swap two words, drop one, insert or substitute a plausible word, or answer with the input unchanged), and, more
often than not, a polite filler sentence after the answer. The edits are noise that sampling reproduces; the filler
is a *systematic* habit, as verbosity is for real LLMs: a model that imitates this text (pretraining, then SFT on
D_S) writes the filler even when decoding greedily, and only preferences say that it costs quality. So the SFT
policy is clearly worse than the best responses the pool shows (ideal, no filler), at every temperature.
Levels drawn per response make the two responses to one instruction usually differ in quality, sometimes not at all
(a tie, as with real annotators). Gold references are "good but not perfect", like human ones: most are ideal, some
carry one slip, none has the filler.
"""

from __future__ import annotations

import random

from jpo.tasks.families import Instance, parse
from jpo.tasks.vocab import FILLER, LIST_WORDS

# Probability of each corruption level (index = number of edits) and of the filler, for every response of the
# world's text. Fixed before any test result was seen (see configs/demo.yaml).
WORLD_LEVELS: tuple[float, ...] = (0.35, 0.3, 0.2, 0.15)
FILLER_RATE = 0.6
GOLD_LEVELS: tuple[float, ...] = (0.6, 0.4)


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


def graded_response(prompt: str, level: int, rng: random.Random, allow_copy: bool = True,
                    filler: bool = False) -> str:
    """The ideal answer to `prompt` after `level` random edits (level 0 is the ideal answer itself); `allow_copy`
    permits the gross failure of answering with the input unchanged; `filler` appends the filler sentence.
    Starts with a space (see ANSWER_CUE)."""
    instance = parse(prompt)
    words = instance.target.split()
    for _ in range(level):
        words = _edit(words, instance, rng, allow_copy)
    return " " + " ".join(words + (list(FILLER) if filler else []))


def draw_level(levels: tuple[float, ...], rng: random.Random) -> int:
    return rng.choices(range(len(levels)), weights=levels)[0]


def world_response(prompt: str, rng: random.Random) -> str:
    """A response as the world's text holds it: a pretraining document's answer, or one side of a pool pair."""
    return graded_response(prompt, draw_level(WORLD_LEVELS, rng), rng, filler=rng.random() < FILLER_RATE)


def annotation_pair(prompt: str, rng: random.Random) -> tuple[str, str]:
    """Two independently drawn responses to one training instruction."""
    return world_response(prompt, rng), world_response(prompt, rng)


def gold(prompt: str, rng: random.Random) -> str:
    """A test reference: ideal 60% of the time, otherwise one small slip (never a copy of the input, no filler)."""
    return graded_response(prompt, draw_level(GOLD_LEVELS, rng), rng, allow_copy=False)
