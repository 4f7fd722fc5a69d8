"""The closed vocabulary the synthetic task draws from.

Small on purpose: the demo's tokenizer learns every word whole, so prompts stay a few dozen tokens long and a
model of about half a million parameters can learn the task on two CPU cores in minutes. (Eight words per slot: with
twelve, the demo's model got the content of fewer than one answer in five right after its pretraining.)
"""

from __future__ import annotations

# Words the list families (sort / reverse / deduplicate) operate on.
LIST_WORDS: tuple[str, ...] = (
    "apple", "banana", "cherry", "grape", "lemon", "pear", "plum", "kiwi",
    "red", "blue", "green", "amber", "silver", "black", "white", "gold",
    "river", "stone", "cloud", "leaf", "sand", "wind", "rain", "snow",
)

NAMES: tuple[str, ...] = ("anna", "ben", "carla", "dev", "emma", "finn", "gita", "hugo")
PLACES: tuple[str, ...] = ("park", "beach", "market", "library", "garden", "station", "school", "lake")
ANIMALS: tuple[str, ...] = ("dog", "cat", "horse", "rabbit", "duck", "goat", "fox", "owl")
FOODS: tuple[str, ...] = ("bread", "soup", "cake", "rice", "cheese", "pie", "tea", "jam")
ADJECTIVES: tuple[str, ...] = ("tiny", "happy", "sleepy", "noisy", "brave", "lazy", "clever", "shy")
FEELINGS: tuple[str, ...] = ("glad", "tired", "surprised", "calm", "excited", "proud")

# The keywords of a post are its place, animal and food words, in order of appearance.
KEYWORDS: frozenset[str] = frozenset(PLACES + ANIMALS + FOODS)
