"""The task families: how an instruction is written, and what its ideal answer is.

Every instruction carries its whole input in its text, so the ideal answer (and hence the quality of any response)
is a function of the instruction text alone: the oracle judge needs nothing but the two texts a real judge sees.
Families differ in difficulty (reversing is easier than sorting for a small LM; a summary must pick slots out of a
post), which is what makes comparing answers to *different* instructions informative.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from jpo.tasks.vocab import ADJECTIVES, ANIMALS, FEELINGS, FOODS, KEYWORDS, LIST_WORDS, NAMES, PLACES


@dataclass(frozen=True)
class Instance:
    """One instruction with its family, the input words it operates on and its ideal answer (space-joined)."""

    family: str
    prompt: str
    inputs: tuple[str, ...]
    target: str


TEMPLATES: dict[str, tuple[str, ...]] = {
    "sort": ("Sort these words alphabetically: ", "Put these words in alphabetical order: "),
    "reverse": ("Reverse the order of these words: ", "Write these words in reverse order: "),
    "dedup": ("Remove the repeated words: ", "Keep only the first copy of each word: "),
    "keywords": ("List the keywords of this post: ", "Which places, animals and foods does this post mention? "),
    "summary": ("Summarize this post in a few words: ", "Give a one-line summary of this post: "),
}
FAMILIES: tuple[str, ...] = tuple(TEMPLATES)
# Every prompt ends with this cue, as the paper's TL;DR prompts end with "TL;DR:": plain-text trainers (ours, TRL)
# concatenate prompt + response, so the cue marks where the answer starts and responses begin with a space.
ANSWER_CUE = " Answer:"

POSTS: tuple[str, ...] = (
    "{name} went to the {place} with a {adj} {animal} and ate {food} .",
    "at the {place} {name} met a {adj} {animal} . later they shared {food} and felt {feeling} .",
    "{name} baked {food} for a {adj} {animal} near the {place} and was {feeling} .",
    "today {name} saw a {animal} eating {food} at the {place} .",
)


def _target(family: str, inputs: tuple[str, ...]) -> str:
    if family == "sort":
        return " ".join(sorted(inputs))
    if family == "reverse":
        return " ".join(reversed(inputs))
    if family == "dedup":
        return " ".join(dict.fromkeys(inputs))
    if family == "keywords":
        return " ".join(dict.fromkeys(word for word in inputs if word in KEYWORDS))
    if family == "summary":
        name = next(word for word in inputs if word in NAMES)
        animal = next(word for word in inputs if word in ANIMALS)
        place = next(word for word in inputs if word in PLACES)
        return f"{name} met a {animal} at the {place}"
    raise ValueError(f"unknown task family {family!r}")


def _inputs(family: str, rng: random.Random) -> tuple[str, ...]:
    if family in ("sort", "reverse"):
        return tuple(rng.sample(LIST_WORDS, rng.randint(3, 4)))
    if family == "dedup":
        words = rng.sample(LIST_WORDS, 3)
        for _ in range(1):
            words.insert(rng.randint(1, len(words)), rng.choice(words))
        return tuple(words)
    post = rng.choice(POSTS).format(
        name=rng.choice(NAMES), place=rng.choice(PLACES), adj=rng.choice(ADJECTIVES), animal=rng.choice(ANIMALS),
        food=rng.choice(FOODS), feeling=rng.choice(FEELINGS),
    )
    return tuple(post.split())


def make_instance(rng: random.Random, family: str | None = None) -> Instance:
    """A fresh random instruction (of `family`, or of a uniformly drawn one)."""
    family = family or rng.choice(FAMILIES)
    inputs = _inputs(family, rng)
    prompt = rng.choice(TEMPLATES[family]) + " ".join(inputs) + ANSWER_CUE
    return Instance(family, prompt, inputs, _target(family, inputs))


def parse(prompt: str) -> Instance:
    """Recover the family, inputs and ideal answer from an instruction's text; ValueError if it is not one of ours."""
    text = prompt.strip().removesuffix(ANSWER_CUE.strip()).rstrip()
    for family, templates in TEMPLATES.items():
        for template in templates:
            if text.startswith(template.strip()):
                inputs = tuple(text[len(template.strip()):].split())
                try:
                    return Instance(family, prompt, inputs, _target(family, inputs))
                except StopIteration:
                    raise ValueError(f"a {family} instruction without its required words: {prompt!r}") from None
    raise ValueError(f"not an instruction of the synthetic task: {prompt[:60]!r}")
