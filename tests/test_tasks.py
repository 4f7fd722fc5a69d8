"""The synthetic task: ideal answers, the quality score on hand cases, graded responses and the splits."""

from __future__ import annotations

import random

import pytest

from jpo.tasks import (
    FAMILIES,
    Sizes,
    build_splits,
    gold,
    graded_response,
    make_instance,
    parse,
    quality,
    world_response,
)
from jpo.tasks.responses import FILLER_RATE
from jpo.tasks.vocab import FILLER


def test_ideal_answers_by_family():
    assert parse("Sort these words alphabetically: pear apple kiwi").target == "apple kiwi pear"
    assert parse("Reverse the order of these words: red blue green").target == "green blue red"
    assert parse("Remove the repeated words: gold blue gold snow blue").target == "gold blue snow"
    post = "anna went to the park with a tiny dog and ate cake ."
    assert parse(f"List the keywords of this post: {post}").target == "park dog cake"
    assert parse(f"Summarize this post in a few words: {post}").target == "anna met a dog at the park"


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
            assert (parsed.family, parsed.target) == (family, instance.target)
            assert quality(instance.prompt, instance.target) == 1.0


def test_more_edits_mean_lower_quality_on_average():
    rng = random.Random(0)
    prompts = [make_instance(rng).prompt for _ in range(300)]
    means = [sum(quality(p, graded_response(p, level, rng)) for p in prompts) / len(prompts) for level in range(4)]
    assert means[0] == 1.0
    assert means[0] > means[1] > means[2] > means[3]


def test_gold_is_good_but_not_perfect():
    rng = random.Random(0)
    prompts = [make_instance(rng).prompt for _ in range(400)]
    scores = [quality(p, gold(p, rng)) for p in prompts]
    perfect = sum(score == 1.0 for score in scores) / len(scores)
    assert 0.5 < perfect < 0.7
    assert min(scores) > 0.0


def test_world_text_has_the_filler_habit_and_the_pool_shows_better():
    """The systematic flaw an imitator learns and only preferences can remove: most world responses end with the
    filler, which costs quality, and the best of a pool pair is on average clearly better than one drawn at random."""
    rng = random.Random(0)
    prompts = [make_instance(rng).prompt for _ in range(1000)]
    responses = [world_response(p, rng) for p in prompts]
    with_filler = [r.split()[-len(FILLER):] == list(FILLER) for r in responses]
    assert abs(sum(with_filler) / len(responses) - FILLER_RATE) < 0.05
    assert not any(set(FILLER) & set(gold(p, rng).split()) for p in prompts[:200])
    splits = build_splits(Sizes(pretrain=0, pool=400, validation=0, test=0), seed=0)
    pairs = [(quality(r["prompt"], r["response_a"]), quality(r["prompt"], r["response_b"])) for r in splits["pool"]]
    one, best = sum(a for a, _ in pairs) / len(pairs), sum(max(pair) for pair in pairs) / len(pairs)
    assert best > one + 0.1


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
