"""Every named source and every recipe's data stage through the real `datasets.load_dataset` calls, offline.

The repositories are the real ones the sources name (openai/summarize_from_feedback with its `comparisons` config,
Anthropic/hh-rlhf with `data_dir=helpful-base`, the authors' repo with `data_files`, ...), laid out as the Hub lays
them and filled from ../shared (tests/hub_cache.py). No call is faked: `load_dataset` reads the datasets cache
offline, exactly as on a machine that ran once online.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_cache import HubOffline, build_offline_hub, first_split, source_parts

from jpo.data.io import read_table
from jpo.data.sources import SOURCES, load_source
from jpo.runner.data import prepare_data
from jpo.runner.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
# every recipe that reads a hub source (the demo and the recipes extending it read the synthetic task)
RECIPES = sorted(p.name for p in (ROOT / "configs").glob("*.yaml") if load_recipe(p).data.eval.source != "synthetic")
PARTS = source_parts()


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> HubOffline:
    from conftest import shared_path

    return build_offline_hub(tmp_path_factory.mktemp("hub"), shared_path("data"),
                             [ROOT / "configs" / r for r in RECIPES])


@pytest.fixture
def offline(hub, monkeypatch):
    for name in SOURCES:  # a local copy in the environment would bypass the hub
        monkeypatch.delenv("JPO_SOURCE_" + name.upper().replace("-", "_"), raising=False)
    hub.calls.clear()
    with hub.active():
        yield hub


@pytest.mark.parametrize(("name", "kind", "task"), PARTS)
def test_every_source_part_loads_from_its_hub_repo(offline, name, kind, task):
    loaded = load_source(name, first_split(name, kind), kind=kind, task=task)
    assert len(loaded) > 0, loaded.report.summary()
    hub = SOURCES[name].parts[kind].hub
    if hub.files is None:  # a dataset repo read by load_dataset with its real name, config and files
        assert [call[0] for call in offline.calls] == [hub.name]
        assert offline.calls[0][1]["name"] == hub.config
        assert offline.calls[0][1]["data_dir"] == hub.data_dir
    else:  # a repo of plain files (a loading script): the file from the hub cache
        assert offline.calls == [] and loaded.report.origin.startswith(hub.name)


def test_tldr_comparisons_config_leaves_out_cnn_articles(offline):
    """The recipe's TL;DR preference part is the `comparisons` config; its CNN/DM rows are counted, not kept."""
    loaded = load_source("tldr", "train", kind="preference")
    assert offline.calls[0][:1] == ("openai/summarize_from_feedback",)
    assert offline.calls[0][1]["name"] == "comparisons"
    assert loaded.report.left_out == {"CNN/DM article, not a TL;DR post": 1}
    assert all(row["prompt_chosen"].startswith("You are given a social media post") for row in loaded.rows)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_data_stage_runs_offline(offline, tmp_path, recipe):
    parsed = load_recipe(ROOT / "configs" / recipe)
    result = prepare_data(parsed, tmp_path, {})
    assert read_table(tmp_path / "eval.jsonl").rows
    parts = {name: getattr(parsed.data, name) for name in ("sft", "conditional", "joint", "eval")}
    expected = {SOURCES[p.source].parts[p.kind or ("prompts" if n == "eval" else "preference" if n != "sft" else "sft")]
                .hub.name for n, p in parts.items() if p is not None}
    asked = {call[0] for call in offline.calls}
    assert asked == expected - {"tatsu-lab/alpaca_eval"}, (asked, expected)
    assert result["conditional"]["kept"] > 0 and (tmp_path / "pool.jsonl").exists()
