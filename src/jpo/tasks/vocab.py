"""The closed vocabulary the synthetic task draws from.

Small on purpose: the demo's tokenizer learns every word whole, so prompts stay a few dozen tokens long and a
model of about a million parameters can learn the task on two CPU cores in minutes.
"""

from __future__ import annotations

# Words the list families (sort / reverse / deduplicate) operate on.
LIST_WORDS: tuple[str, ...] = (
    "apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "olive", "peach", "pear", "plum", "kiwi",
    "red", "blue", "green", "amber", "silver", "violet", "black", "white", "gold", "pink", "brown", "gray",
    "river", "stone", "cloud", "flame", "storm", "frost", "leaf", "shell", "sand", "wind", "rain", "snow",
)

NAMES: tuple[str, ...] = ("anna", "ben", "carla", "dev", "emma", "finn", "gita", "hugo", "ivy", "jon", "kai", "lena")
PLACES: tuple[str, ...] = ("park", "beach", "market", "library", "garden", "station", "museum", "harbor", "forest",
                           "school", "bakery", "lake")
ANIMALS: tuple[str, ...] = ("dog", "cat", "horse", "rabbit", "duck", "goat", "fox", "owl", "frog", "turtle", "bee",
                            "deer")
FOODS: tuple[str, ...] = ("bread", "soup", "cake", "rice", "cheese", "pie", "noodles", "salad", "cookies", "tea",
                          "honey", "jam")
ADJECTIVES: tuple[str, ...] = ("tiny", "happy", "sleepy", "noisy", "brave", "lazy", "clever", "shy")
FEELINGS: tuple[str, ...] = ("glad", "tired", "surprised", "calm", "excited", "proud")

# The keywords of a post are its place, animal and food words, in order of appearance.
KEYWORDS: frozenset[str] = frozenset(PLACES + ANIMALS + FOODS)
