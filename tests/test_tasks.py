"""The synthetic task: ideal answers, the quality score on hand cases, graded responses and the splits."""

from __future__ import annotations

import random

import pytest

from jpo.tasks import (
    FAMILIES,
    HABITS,
    PROFILES,
    STYLES,
    Sizes,
    build_splits,
    gold,
    graded_response,
    habits_in,
    make_instance,
    parse,
    quality,
    without_habit,
    world_response,
)
from jpo.tasks.families import PREFIXES, SUFFIXES, WANTED_PER_STYLE
from jpo.tasks.responses import FORBIDDEN_RATE, HABIT_RATE, WANTED_RATE


def test_ideal_answers_by_family():
    assert parse("Sort these words alphabetically: pear apple kiwi").target == "apple kiwi pear"
    assert parse("Reverse the order of these words: red blue green").target == "green blue red"
    assert parse("Remove the repeated words: gold blue gold snow blue").target == "gold blue snow"
    post = "anna went to the park with a tiny dog and ate cake ."
    assert parse(f"List the keywords of this post: {post}").target == "park dog cake"
    assert parse(f"Summarize this post in a few words: {post}").target == "anna met a dog at the park"
    styled = parse(f"Summarize this post in a few words for a child: {post}")
    assert (styled.style, styled.core) == ("for a child", "anna met a dog at the park")
    assert styled.target.split() == [h for h in PREFIXES if h in styled.wanted] + styled.core.split() + \
        [h for h in SUFFIXES if h in styled.wanted]


@pytest.mark.parametrize(
    ("prompt", "response", "expected"),
    [
        ("Sort these words alphabetically: pear apple kiwi", "apple kiwi pear", 1.0),
        ("Sort these words alphabetically: pear apple kiwi", "Apple kiwi pear.", 1.0),  # case, full stop ignored
        ("Sort these words alphabetically: pear apple kiwi", "pear apple kiwi", 1 - 2 / 3),  # the input unchanged
        ("Sort these words alphabetically: pear apple kiwi", "apple kiwi", 1 - 1 / 3),  # one word missing
        ("Sort these words alphabetically: pear apple kiwi", "apple kiwi pear pear", 1 - 1 / 4),  # padded
        ("Sort these words alphabetically: pear apple kiwi", "", 0.0),
        ("Reverse the order of these words: red blue green", "snow rain wind", 0.0),
        ("Remove the repeated words: gold blue gold", "gold blue", 1.0),
        ("List the keywords of this post: anna went to the park with a tiny dog and ate cake .", "park dog", 2 / 3),
    ],
)
def test_quality_hand_cases(prompt, response, expected):
    assert quality(prompt, response) == pytest.approx(expected)


def test_quality_rejects_foreign_instructions():
    with pytest.raises(ValueError, match="not an instruction"):
        quality("Write a poem about the sea", "waves")


def test_every_family_round_trips_through_its_text():
    rng = random.Random(0)
    for family in FAMILIES:
        for _ in range(20):
            instance = make_instance(rng, family)
            parsed = parse(instance.prompt)
            assert (parsed.family, parsed.style, parsed.target) == (family, instance.style, instance.target)
            assert quality(instance.prompt, instance.target) == 1.0


def test_more_edits_mean_lower_quality_on_average():
    rng = random.Random(0)
    prompts = [make_instance(rng).prompt for _ in range(300)]
    means = [sum(quality(p, graded_response(p, level, rng)) for p in prompts) / len(prompts) for level in range(4)]
    assert means[0] == 1.0
    assert means[0] > means[1] > means[2] > means[3]


def test_gold_is_good_but_not_perfect():
    rng = random.Random(0)
    prompts = [make_instance(rng).prompt for _ in range(1000)]
    scores = [quality(p, gold(p, rng)) for p in prompts]
    perfect = sum(score == 1.0 for score in scores) / len(scores)
    assert 0.1 < perfect < 1 / 3  # fewer than a third ideal, as responses.py says
    world = [quality(p, world_response(p, rng)) for p in prompts]
    assert sum(scores) / len(scores) > sum(world) / len(world) + 0.07  # above the world's text
    assert min(scores) > 0.15  # at worst a swap and two habits wrong on a short answer


def test_world_text_follows_the_instruction_s_habits_unreliably():
    """The flaw an imitator learns and only preferences can remove: each habit is in a minority of world responses
    whatever the instruction thinks of it -- a wanted one less than half the time, a forbidden one now and then; the
    best of a pool pair is on average clearly better than one drawn at random."""
    rng = random.Random(0)
    prompts = [make_instance(rng).prompt for _ in range(4000)]
    responses = [world_response(p, rng) for p in prompts]
    rates = {"wanted": WANTED_RATE, "forbidden": FORBIDDEN_RATE, "neutral": HABIT_RATE}
    for habit in HABITS:
        for opinion, rate in rates.items():
            present = [habit in habits_in(r) for p, r in zip(prompts, responses, strict=True)
                       if habit in getattr(parse(p), opinion)]
            assert abs(sum(present) / len(present) - rate) < 0.1
    assert FORBIDDEN_RATE < HABIT_RATE < WANTED_RATE < 0.5
    splits = build_splits(Sizes(pretrain=0, pool=400, validation=0, test=0), seed=0)
    pairs = [(quality(r["prompt"], r["response_a"]), quality(r["prompt"], r["response_b"])) for r in splits["pool"]]
    one, best = sum(a for a, _ in pairs) / len(pairs), sum(max(pair) for pair in pairs) / len(pairs)
    assert best > one + 0.07
    # each habit differs between the two sides of only a minority of pairs
    for habit in HABITS:
        differs = [(habit in habits_in(r["response_a"])) != (habit in habits_in(r["response_b"]))
                   for r in splits["pool"]]
        assert sum(differs) / len(differs) < 0.5


def test_every_habit_is_right_for_some_instructions_and_wrong_for_others():
    styled = [(family, style) for family in FAMILIES for style in STYLES if style]
    for habit in HABITS:
        wanting = [key for key in styled if habit in PROFILES[key][0]]
        forbidding = [key for key in styled if habit in PROFILES[key][1]]
        # balanced, a minority of instructions each
        assert len(wanting) == len(forbidding) == len(styled) * WANTED_PER_STYLE // len(HABITS) < len(styled) / 2
        assert len({family for family, _ in wanting}) > 1  # not one family's habit
        # one wording of a request wants it where another forbids it
        assert wanting and forbidding and not set(wanting) & set(forbidding)
    for key in styled:
        wanted, forbidden = PROFILES[key]
        assert len(wanted) == len(forbidden) == WANTED_PER_STYLE and not wanted & forbidden
    assert all(PROFILES[family, ""] == (frozenset(), frozenset()) for family in FAMILIES)  # plain: no opinion
    # the style decides: the same in every family
    assert all(len({PROFILES[family, style] for family in FAMILIES}) == 1 for style in STYLES)


def test_a_habit_earns_quality_where_wanted_costs_it_where_forbidden_and_is_ignored_elsewhere():
    prompt = "Sort these words alphabetically for my boss: pear apple kiwi"
    instance = parse(prompt)
    assert instance.core == "apple kiwi pear" and len(instance.wanted) == WANTED_PER_STYLE
    assert quality(prompt, instance.target) == 1.0  # q is 1 exactly for the ideal answer
    assert quality(prompt, instance.core) < 1.0  # leaving the wanted habits out costs quality
    for habit in instance.forbidden:
        assert quality(prompt, f"{instance.target} {habit}") < 1.0
    for habit in instance.neutral:
        assert quality(prompt, f"{habit} {instance.target}") == 1.0
    plain = "Sort these words alphabetically: pear apple kiwi"
    assert quality(plain, "apple kiwi pear") == 1.0
    assert quality(plain, "sure apple kiwi pear thanks") == 1.0  # a plain instruction has no opinion on habits
    assert quality(plain, "sure apple pear thanks") < 1.0


def test_the_ideal_answer_and_its_indifferent_habits_are_the_only_ones_with_quality_one():
    rng = random.Random(1)
    for _ in range(500):
        instance = make_instance(rng)
        response = world_response(instance.prompt, rng)
        kept = [word for word in response.split() if word not in instance.neutral]
        assert (quality(instance.prompt, response) == 1.0) == (kept == instance.target.split())


def test_habits_sit_at_their_places_and_can_be_taken_out():
    prompt = "Reverse the order of these words for a friend: red blue green"
    response = graded_response(prompt, 0, random.Random(0), habits=set(HABITS))
    words = response.split()
    assert words[:len(PREFIXES)] == list(PREFIXES) and words[-len(SUFFIXES):] == list(SUFFIXES)
    assert habits_in(response) == list(HABITS)
    assert without_habit(response, "sure").split() == [w for w in words if w != "sure"]
    assert without_habit(" green blue red", "sure") == " green blue red"


def test_splits_are_disjoint_and_reproducible():
    sizes = Sizes(pretrain=50, pool=40, validation=20, test=30)
    splits = build_splits(sizes, seed=3)
    assert {name: len(rows) for name, rows in splits.items()} == {"pretrain": 50, "pool": 40, "validation": 20,
                                                                  "test": 30, "fresh": 0}
    assert set(splits["pretrain"][0]) == {"prompt", "response", "family"}
    prompts = [row["prompt"] for rows in splits.values() for row in rows]
    assert len(prompts) == len(set(prompts))
    assert build_splits(sizes, seed=3) == splits
    assert build_splits(sizes, seed=4) != splits


def test_a_larger_corpus_leaves_the_pool_and_evaluation_prompts_alone():
    small = build_splits(Sizes(pretrain=10, pool=20, validation=5, test=5), seed=1)
    large = build_splits(Sizes(pretrain=60, pool=20, validation=5, test=5), seed=1)
    assert all(small[name] == large[name] for name in ("pool", "validation", "test"))


def test_the_fresh_split_is_more_pool_rows_and_changes_no_other_split():
    without = build_splits(Sizes(pretrain=30, pool=20, validation=5, test=5), seed=1)
    with_fresh = build_splits(Sizes(pretrain=30, pool=20, validation=5, test=5, fresh=25), seed=1)
    assert all(without[name] == with_fresh[name] for name in ("pretrain", "pool", "validation", "test"))
    fresh = with_fresh["fresh"]
    assert len(fresh) == 25 and set(fresh[0]) == set(with_fresh["pool"][0])
    others = {row["prompt"] for name in ("pretrain", "pool", "validation", "test") for row in with_fresh[name]}
    assert not others & {row["prompt"] for row in fresh}
    assert len({row["prompt"] for row in fresh}) == 25
