"""Preference data: read every common layout, validate it with located errors, convert between record kinds,
and build joint comparison pairs."""

from jpo.data.formats import FORMATS, KINDS, Text, as_messages, item_id, text_of
from jpo.data.io import Table, read_hub, read_jsonl, read_table, write_jsonl
from jpo.data.load import (
    Loaded,
    inspect,
    items_to_preferences,
    load,
    load_generations,
    load_items,
    load_preferences,
    load_prompts,
    load_references,
    load_sft,
    load_unpaired,
    preferences_to_items,
    unpair,
)
from jpo.data.sources import SOURCES, SourceRows, load_source

__all__ = [
    "FORMATS", "KINDS", "Loaded", "Table", "Text", "as_messages", "inspect", "item_id", "items_to_preferences",
    "load", "load_generations", "load_items", "load_preferences", "load_prompts", "load_references", "load_sft",
    "load_unpaired", "preferences_to_items", "read_hub", "read_jsonl", "read_table", "text_of", "unpair",
    "write_jsonl", "SOURCES", "SourceRows", "load_source",
]
