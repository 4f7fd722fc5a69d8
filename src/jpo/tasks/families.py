"""The task families, the request styles and the habits: how an instruction is written, and what its ideal answer is.

Every instruction carries its whole input in its text, so the ideal answer (and hence the quality of any response)
is a function of the instruction text alone: the oracle judge needs nothing but the two texts a real judge sees.

An instruction is a *family* phrase (what to do with the input: sort, reverse, deduplicate, pick keywords,
summarize; two wordings each), an optional *style* (who the answer is for: "for my boss", "for a child", ...) and the
input: "Sort these words alphabetically for my boss: pear apple kiwi Answer:". The ideal answer is the family's
answer to the input (the *core*) with the *habits* the style wants around it.

The habits (HABITS) are ten surface features of a response, one word each, written after the core in a fixed order
("apple kiwi pear well thanks"). What an instruction thinks of each habit depends on its style (PROFILES):
each of the twenty styles wants three habits, forbids three others and is indifferent to the remaining four (the
quality score ignores them); each habit is wanted by six styles, forbidden by six others and indifferent to the rest,
so every habit is right for some instructions and wrong for others -- "for my boss" wants "so" and forbids "okay",
"for my team" the reverse. A plain instruction (no style) has no opinion on any habit. The table is an arbitrary,
seeded draw (balanced: every habit wanted and forbidden equally often), fixed before any result was seen, as
individual requesters' tastes are arbitrary: nothing in the words "for my boss" says which habit they want, so a
model can only learn it from its data.

What preferences must teach: the world's text (responses.py) follows each style's taste only unreliably (a wanted
habit less than half the time), so imitation (pretraining, SFT) leaves every habit decision uncertain. Preferences
add 20 x 6 style-dependent decisions, each seen only in the comparisons that have that style (one in 21) and whose
two responses differ in that habit, among the other habits and content edits that also differ, through a noisy
annotator. No single surface feature carries the preference and no global rule helps: where a habit matters it is as
often wanted as forbidden. (Two first designs learnt nothing about the habits on the demo's model: a table over
(family, style) pairs, 40 x 4 decisions, and habits written blind to the instruction.)
Why labels count (issue 25): with DPO, this model's labels sharpen what pretraining half-learnt, so the curve rises
only up to a point. With a pool of 2,000 instructions (D_C 1,176 labels, 185 steps; benchmarks/testbed_sensitivity.py
--seeds 0 1 2 on the validation split, pooled over three pretraining seeds) DPO beat SFT by +18.2 [+16.7, +19.8] and
all of D_C beat a nested half by +2.3 [+1.5, +3.1], but 1,176 fresh labels more added only +0.5 [-0.4, +1.3] (R2, not
met): greedy DPO already wrote 97% of the wanted habits (SFT 71%, DPO on half of D_C 90%), and what was left, each
forbidden habit still written 9% of the time (SFT 10%) and the content (right in 35% of answers), did not move with
more labels. The demo therefore labels a pool of 800 (D_C 462, 180 steps, 1,000 validation prompts): there, at beta
0.1, R1 is +3.1 [+2.2, +3.9], R2 +5.5 [+4.7, +6.3] and DPO - SFT +10.2 [+9.0, +11.3] (per seed +10.4 / +14.3 /
+5.8): fewer labels make each count, and leave DPO less to gain, so DPO - SFT sat at the issue's threshold of 10
(and fell short of it on the test split). At beta 0.5 (the loss flattens at smaller log-ratio margins, so the policy
stays nearer SFT through 12 epochs) DPO - SFT is +13.1 [+12.0, +14.2] (per seed +13.1 / +14.6 / +11.7), R1 +4.6, R2
+4.3, but R3 +0.2 [+0.0, +0.4] just misses (configs/demo.yaml has every size and value tried). Making the world's
text say less about the table (forbidden habits as common as indifferent ones; or also wanted ones rarer) did not
make labels count more: DPO then learnt almost nothing (DPO - SFT +5.1 and +2.6; R1 -0.9 and +0.5). The former
table (ten styles wanting two and forbidding two) measured DPO - SFT +11.3, hanging on the pretrained model (+9.8 /
+15.7 / +8.5), R1 +3.4, R2 +0.4; twenty styles wanting two: DPO - SFT +10.0, R1 +3.2, R2 +0.4.
Families also differ in difficulty (reversing is easier than sorting for a small LM; a summary must pick slots out of
a post), which is what makes comparing answers to *different* instructions informative.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from jpo.tasks.vocab import ADJECTIVES, ANIMALS, FEELINGS, FOODS, KEYWORDS, LIST_WORDS, NAMES, PLACES


@dataclass(frozen=True)
class Instance:
    """One instruction: its family and style, the input words it operates on, the family's answer to them (`core`),
    the habits it wants and those it forbids, and its ideal answer (`target`: the wanted prefix habits, the core, the
    wanted suffix habits; space-joined)."""

    family: str
    style: str
    prompt: str
    inputs: tuple[str, ...]
    core: str
    wanted: frozenset[str]
    forbidden: frozenset[str]
    target: str

    @property
    def neutral(self) -> frozenset[str]:
        """The habits this instruction has no opinion on: the quality score ignores them."""
        return frozenset(HABITS) - self.wanted - self.forbidden


# Family phrases (two wordings each); a prompt is `phrase [style]: inputs Answer:`.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "sort": ("Sort these words alphabetically", "Put these words in alphabetical order"),
    "reverse": ("Reverse the order of these words", "Write these words in reverse order"),
    "dedup": ("Remove the repeated words", "Keep only the first copy of each word"),
    "keywords": ("List the keywords of this post", "Name the places, animals and foods in this post"),
    "summary": ("Summarize this post in a few words", "Give a one-line summary of this post"),
}
FAMILIES: tuple[str, ...] = tuple(TEMPLATES)
# Who the answer is for; "" is a plain instruction (wants no habit). Drawn uniformly (twenty styles and "").
STYLES: tuple[str, ...] = ("", "for my boss", "for a child", "for a friend", "for my teacher", "for a report",
                           "for a letter", "for the radio", "for a poster", "for my team", "for a card",
                           "for my mother", "for a stranger", "for the news", "for a speech", "for my doctor",
                           "for a blog", "for my client", "for a story", "for the class", "for a note")
# The habits: words of no task's answer, written before (PREFIXES) or after (SUFFIXES) the core, in this order. All
# after it: written before it, they shifted the answer and the demo's model lost the content it had (DPO, which
# raises the wanted ones, then lowered content accuracy by half).
PREFIXES: tuple[str, ...] = ()
SUFFIXES: tuple[str, ...] = ("sure", "well", "okay", "so", "hey", "thanks", "done", "cheers", "enjoy", "bye")
HABITS: tuple[str, ...] = PREFIXES + SUFFIXES
WANTED_PER_STYLE = 3  # and as many forbidden: 6 of the 10 habits matter to each style


def _profiles(seed: int = 2026) -> dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]]:
    """(family, style) -> (the habits it wants, the habits it forbids). Each style wants WANTED_PER_STYLE habits and
    forbids as many others, the same in every family; every habit is wanted by equally many styles and forbidden by
    equally many (a seeded shuffle of the balanced multisets, repaired by random swaps until no style names a habit
    twice). A plain instruction has no opinion."""
    styled = [style for style in STYLES if style]
    per_habit = len(styled) * WANTED_PER_STYLE // len(HABITS)
    rng = random.Random(seed)
    wanted = [habit for habit in HABITS for _ in range(per_habit)]
    forbidden = list(wanted)
    rng.shuffle(wanted)
    rng.shuffle(forbidden)
    k = WANTED_PER_STYLE

    def bad(i: int) -> bool:
        named = wanted[i * k:(i + 1) * k] + forbidden[i * k:(i + 1) * k]
        return len(set(named)) < len(named)

    while True:
        bad_styles = [i for i in range(len(styled)) if bad(i)]
        if not bad_styles:
            break
        i = rng.choice(bad_styles)
        slots = rng.choice((wanted, forbidden))
        a, b = rng.randrange(i * k, (i + 1) * k), rng.randrange(len(slots))
        slots[a], slots[b] = slots[b], slots[a]
    by_style = {style: (frozenset(wanted[i * k:(i + 1) * k]), frozenset(forbidden[i * k:(i + 1) * k]))
                for i, style in enumerate(styled)}
    by_style[""] = (frozenset(), frozenset())
    return {(family, style): by_style[style] for family in FAMILIES for style in STYLES}


PROFILES: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = _profiles()

# Every prompt ends with this cue, as the paper's TL;DR prompts end with "TL;DR:": plain-text trainers (ours, TRL)
# concatenate prompt + response, so the cue marks where the answer starts and responses begin with a space.
ANSWER_CUE = " Answer:"

POSTS: tuple[str, ...] = (
    "{name} went to the {place} with a {adj} {animal} and ate {food} .",
    "at the {place} {name} met a {adj} {animal} . later they shared {food} and felt {feeling} .",
    "{name} baked {food} for a {adj} {animal} near the {place} and was {feeling} .",
    "today {name} saw a {animal} eating {food} at the {place} .",
)


def _core(family: str, inputs: tuple[str, ...]) -> str:
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


def with_habits(core: str, habits: frozenset[str] | set[str]) -> str:
    """`core` with `habits` at their places: prefixes before it, suffixes after it, each in HABITS order."""
    return " ".join([h for h in PREFIXES if h in habits] + core.split() + [h for h in SUFFIXES if h in habits])


def _inputs(family: str, rng: random.Random) -> tuple[str, ...]:
    if family in ("sort", "reverse"):
        return tuple(rng.sample(LIST_WORDS, rng.randint(3, 4)))
    if family == "dedup":
        words = rng.sample(LIST_WORDS, 3)
        words.insert(rng.randint(1, len(words)), rng.choice(words))
        return tuple(words)
    post = rng.choice(POSTS).format(
        name=rng.choice(NAMES), place=rng.choice(PLACES), adj=rng.choice(ADJECTIVES), animal=rng.choice(ANIMALS),
        food=rng.choice(FOODS), feeling=rng.choice(FEELINGS),
    )
    return tuple(post.split())


def _instance(family: str, style: str, prompt: str, inputs: tuple[str, ...]) -> Instance:
    core = _core(family, inputs)
    wanted, forbidden = PROFILES[family, style]
    return Instance(family, style, prompt, inputs, core, wanted, forbidden, with_habits(core, wanted))


def make_instance(rng: random.Random, family: str | None = None) -> Instance:
    """A fresh random instruction (of `family`, or of a uniformly drawn one; its style uniformly drawn)."""
    family = family or rng.choice(FAMILIES)
    inputs = _inputs(family, rng)
    phrase, style = rng.choice(TEMPLATES[family]), rng.choice(STYLES)
    prompt = phrase + (f" {style}" if style else "") + ": " + " ".join(inputs) + ANSWER_CUE
    return _instance(family, style, prompt, inputs)


def parse(prompt: str) -> Instance:
    """Recover the family, style, inputs and ideal answer from an instruction's text; ValueError if it is not one of
    ours."""
    text = prompt.strip().removesuffix(ANSWER_CUE.strip()).rstrip()
    for family, phrases in TEMPLATES.items():
        for phrase in phrases:
            if not text.startswith(phrase):
                continue
            rest = text[len(phrase):]
            for style in STYLES:
                head = f" {style}:" if style else ":"
                if rest.startswith(head):
                    inputs = tuple(rest[len(head):].split())
                    try:
                        return _instance(family, style, prompt, inputs)
                    except StopIteration:
                        raise ValueError(f"a {family} instruction without its required words: {prompt!r}") from None
    raise ValueError(f"not an instruction of the synthetic task: {prompt[:60]!r}")
