"""Named sources read offline: the shared samples stand in for the hub, and the hub calls themselves are checked."""

from __future__ import annotations

import json

import pytest

from jpo.cli import main
from jpo.data import read_jsonl
from jpo.data import sources as src
from jpo.data.sources import AUTHORS_TEMPLATE, drop_overlap, load_source
from jpo.errors import DataError, JpoError
from jpo.modeling import apply_template


def test_tldr_prompts_with_the_authors_template_are_their_model_inputs(shared_data):
    """The paper's summary instruction + the authors' template reproduce all 500 of their generation prompts."""
    prompts = load_source("tldr", "test", kind="prompts", path=shared_data("jpo-authors")).rows
    outputs = read_jsonl(shared_data("jpo-authors", "outputs", "tldr_0.001.json"))
    assert len(prompts) == 500
    wrapped = apply_template(prompts, AUTHORS_TEMPLATE, "prompts")
    assert [p["prompt"] for p in wrapped] == [o["instruction"] for o in outputs]
    assert prompts[0]["id"] == "t3_1wbdsh" and prompts[0]["reference"].startswith("I really like this guy")
    assert all(o["outputs"].startswith(" ") for o in outputs)  # why responses get a leading space after the template
    sft = apply_template([{"prompt": "p", "response": "r"}], AUTHORS_TEMPLATE, "sft")[0]
    assert sft == {"prompt": "### Instructions: p\n\n### Response:", "response": " r"}


def test_tldr_comparisons_in_the_hub_layout(tmp_path, shared_data):
    posts = read_jsonl(shared_data("jpo-authors", "tldr", "test.json"))[:3]
    rows = [{"info": {"id": p["instruction_id"], "post": p["instruction"], "subreddit": p["subreddit"]},
             "summaries": [{"text": p["gold_response"]}, {"text": p["title"]}], "choice": i % 2, "worker": "w1"}
            for i, p in enumerate(posts)]
    rows.append(dict(rows[0]))  # an exact repeat
    rows.append({"info": {"id": "cnn", "post": None, "article": "news"}, "summaries": [{"text": "a"}, {"text": "b"}],
                 "choice": 0})
    path = tmp_path / "comparisons.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_source("tldr", "train", kind="preference", path=path)
    assert len(loaded) == 3
    assert loaded.report.duplicates == 1 and loaded.report.left_out["CNN/DM article, not a TL;DR post"] == 1
    first, second = loaded.rows[0], loaded.rows[1]
    assert first["prompt_chosen"] == src.tldr_instruction(posts[0]["instruction"]) == first["prompt_rejected"]
    assert first["chosen"] == posts[0]["gold_response"].strip() and second["chosen"] == posts[1]["title"]


def test_hh_helpful_keeps_single_turn_dialogues_and_counts_the_rest(shared_data):
    path = shared_data("hh-rlhf", "harmless-base", "test.jsonl.gz")  # same transcript layout as helpful-base
    loaded = load_source("hh-helpful", "test", kind="preference", path=path)
    assert loaded.report.read == 2312
    assert loaded.report.left_out["multi-turn dialogue"] == 1651
    assert len(loaded) + sum(loaded.report.left_out.values()) + loaded.report.duplicates == 2312
    for row in loaded.rows:
        assert isinstance(row["prompt_chosen"], str) and row["prompt_chosen"] == row["prompt_rejected"]
        assert "Human:" not in row["prompt_chosen"] and "Assistant:" not in row["chosen"]
    sft = load_source("hh-helpful", "test", kind="sft", path=path)
    assert sft.report.duplicates == 2  # two repeated instructions, merged and counted
    assert len({r["prompt"] for r in sft.rows}) == len(sft)


def test_ultrafeedback_sample_and_the_hub_message_layout(tmp_path, shared_data):
    loaded = load_source("ultrafeedback", "train", path=shared_data("ultrafeedback_sample"))
    assert (loaded.report.read, len(loaded)) == (1000, 886)
    assert loaded.report.left_out == {"tied scores": 111, "identical responses": 3}
    prompts = load_source("ultrafeedback", "test", kind="prompts", path=shared_data("ultrafeedback_sample"))
    assert loaded.report.origin.endswith("train_clean.jsonl") and prompts.report.origin.endswith("eval_clean.jsonl")
    assert len(prompts) == 200
    hub_row = {"chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
               "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "bad"}],
               "score_chosen": 8.0, "score_rejected": 3.0}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(hub_row) + "\n")
    row = load_source("ultrafeedback", "train", path=path).rows[0]
    assert row == {"prompt_chosen": "Q?", "chosen": "good", "prompt_rejected": "Q?", "rejected": "bad"}


def test_jpo_authors_files_by_task_and_split(shared_data):
    root = shared_data("jpo-authors")
    prefs = load_source("jpo-authors", "validation", task="anthropic_helpful", path=root)
    assert len(prefs) == 363 and all(r["prompt_chosen"] == r["prompt_rejected"] for r in prefs.rows)
    sft = load_source("jpo-authors", "validation", kind="sft", task="anthropic_helpful", path=root)
    assert len(sft) == 500 and sft.rows[0]["response"] == prefs.rows[0]["chosen"]
    tldr = load_source("jpo-authors", "test", kind="prompts", task="tldr", path=root).rows
    assert tldr[0]["prompt"].startswith("You are given a social media post, summarize it accordingly. \nPost: ")
    with pytest.raises(JpoError, match="unknown task"):
        load_source("jpo-authors", "test", kind="prompts", task="cnn", path=root)
    with pytest.raises(DataError, match="no file for split 'train'"):
        load_source("jpo-authors", "train", kind="prompts", task="tldr", path=root)


def test_alpaca_eval_805_instructions_by_env_var(shared_data, monkeypatch):
    monkeypatch.setenv("JPO_SOURCE_ALPACA_EVAL", str(shared_data("alpaca_eval")))
    loaded = load_source("alpaca-eval", "eval")
    assert len(loaded) == 805 and loaded.report.duplicates == 0
    assert len({r["id"] for r in loaded.rows}) == 805
    assert {r["reference_generator"] for r in loaded.rows} == {"gpt4_1106_preview"}


def test_repeated_instructions_are_merged_and_counted(tmp_path):
    path = tmp_path / "test.jsonl"
    rows = [{"instruction": "a", "gold_response": "1"}, {"instruction": "b", "gold_response": "2"},
            {"instruction": "a", "gold_response": "3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_source("hh-helpful", "test", kind="prompts", path=path, limit=1)
    assert loaded.report.duplicates == 1 and loaded.report.left_out["beyond limit 1"] == 1
    assert [r["reference"] for r in loaded.rows] == ["1"]
    assert "1 repeated instructions merged" in loaded.report.summary()


def test_training_rows_that_are_evaluation_prompts_are_left_out():
    rows = [{"prompt_chosen": "x", "chosen": "1", "prompt_rejected": "y", "rejected": "2"},
            {"prompt_chosen": "z", "chosen": "1", "prompt_rejected": "z", "rejected": "2"}]
    kept, dropped = drop_overlap(rows, [{"id": "1", "prompt": "y"}], "preference")
    assert dropped == 1 and kept == rows[1:]


@pytest.mark.parametrize(("name", "split", "kind", "expected"), [
    ("hh-helpful", "train", "preference", ("Anthropic/hh-rlhf", "train", {"data_dir": "helpful-base"})),
    ("tldr", "validation", "preference", ("openai/summarize_from_feedback", "validation", {"name": "comparisons"})),
    ("tldr", "train", "sft", ("vwxyzjn/summarize_from_feedback_tldr_3_filtered", "train", {})),
    ("ultrafeedback", "test", "preference", ("trl-lib/ultrafeedback_binarized", "test", {})),
    ("jpo-authors", "joint", "preference",
     ("jointpreferences/sft_and_pref_data", "joint", {"data_files": {"joint": "data/tldr/train_joint_pref.jsonl"}})),
])
def test_hub_locations(monkeypatch, name, split, kind, expected):
    """Without a local copy each source asks `datasets.load_dataset` for its real hub name, config and files (through
    the real `read_hub`: a config passed as `name=` once collided with read_hub's own first parameter)."""
    import datasets

    calls = []

    def fake_load_dataset(path, split=None, **kwargs):
        calls.append((path, split, kwargs))
        return datasets.Dataset.from_list([])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv(f"JPO_SOURCE_{name.upper().replace('-', '_')}", raising=False)
    loaded = load_source(name, split, kind=kind)
    assert calls == [expected] and len(loaded) == 0


def test_offline_hub_error_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(JpoError, match="Anthropic/hh-rlhf: cannot load dataset split 'train'"):
        load_source("hh-helpful", "train")


def test_unknown_names():
    with pytest.raises(JpoError, match="unknown source 'tldr2'"):
        load_source("tldr2")
    with pytest.raises(JpoError, match="has no sft data"):
        load_source("alpaca-eval", "eval", kind="sft")


def test_jpo_pairs_from_a_named_source(tmp_path, shared_data, monkeypatch, capsys):
    monkeypatch.setenv("JPO_SOURCE_JPO_AUTHORS", str(shared_data("jpo-authors")))
    out = tmp_path / "items.jsonl"
    assert main(["pairs", "--source", "jpo-authors:validation", "--source-task", "anthropic_helpful",
                 "--output", str(out)]) == 0
    items = read_jsonl(out)
    assert len(items) == 500 and all(i["prompt_a"] != i["prompt_b"] for i in items)
    assert "500 read, 500 kept" in capsys.readouterr().out


def test_every_row_a_source_reads_is_kept_merged_or_counted(shared_data):
    cases = [("hh-helpful", "test", kind, shared_data("hh-rlhf", "harmless-base", "test.jsonl.gz"), None)
             for kind in ("preference", "sft", "prompts")]
    cases += [("ultrafeedback", split, kind, shared_data("ultrafeedback_sample"), None)
              for split in ("train", "test") for kind in ("preference", "sft", "prompts")]
    cases += [("jpo-authors", "validation", kind, shared_data("jpo-authors"), "anthropic_helpful")
              for kind in ("preference", "sft")]
    cases += [("tldr", "test", "prompts", shared_data("jpo-authors"), None),
              ("alpaca-eval", "eval", "prompts", shared_data("alpaca_eval"), None)]
    for name, split, kind, path, task in cases:
        report = load_source(name, split, kind=kind, path=path, task=task).report
        assert report.kept + report.duplicates + sum(report.left_out.values()) == report.read, report.summary()


def test_hh_reads_the_authors_processed_preferences_too(shared_data):
    path = shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl")
    loaded = load_source("hh-helpful", "validation", kind="preference", path=path)
    assert len(loaded) == 363 and not loaded.report.left_out


def test_a_file_in_a_layout_the_source_does_not_read_is_an_error(shared_data):
    path = shared_data("jpo-authors", "anthropic_helpful", "val_sft.jsonl")
    with pytest.raises(DataError, match=r"val_sft.jsonl:1: unrecognised columns \['instruction', 'response'\]; "
                                        r"expected one of \[jpo-authors: "):
        load_source("jpo-authors", "train", kind="preference", path=path)


def test_rows_the_format_rejects_are_counted_under_its_message(tmp_path):
    rows = [{"post": "A post.", "summary": " A summary. "}, {"post": " ", "summary": "s"}, {"post": "B", "summary": None}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_source("tldr", "train", kind="sft", path=path)
    assert loaded.rows == [{"prompt": src.tldr_instruction("A post."), "response": "A summary."}]
    assert loaded.report.left_out == {"post: empty text": 1,
                                      "summary: expected text (a string or a list of chat messages), got null": 1}


def test_ultrafeedback_system_turns_are_kept(tmp_path):
    """Chat rows were cut to their last user turn (a system turn dropped silently); only single turns become plain
    text now, and the rest of the source follows the conversations' representation (counted)."""
    import json

    def side(answer, system=None):
        return ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": answer}]

    rows = [{"chosen": side("Blue.", "Answer in one word."), "rejected": side("Blue, I think.", "Answer in one word."),
             "score_chosen": 8.0, "score_rejected": 3.0},
            {"chosen": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}],
             "rejected": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "No."}],
             "score_chosen": 9.0, "score_rejected": 1.0}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_source("ultrafeedback", "train", kind="preference", path=path)
    assert loaded.rows[0]["prompt_chosen"] == [{"role": "system", "content": "Answer in one word."},
                                               {"role": "user", "content": "Name a colour."}]
    assert loaded.rows[1]["prompt_chosen"] == [{"role": "user", "content": "Say hi."}]
    assert loaded.report.made_chat == 1 and "1 plain-text rows made chat turns" in loaded.report.summary()
