"""Every format alias, read from the real samples in ../shared/data and from small hand-made files."""

from __future__ import annotations

import gzip
import json

import pytest

from jpo.data import (
    inspect,
    items_to_preferences,
    load_generations,
    load_items,
    load_preferences,
    load_prompts,
    load_references,
    load_sft,
    load_unpaired,
    preferences_to_items,
    read_hub,
    unpair,
    write_jsonl,
)


def write(path, rows):
    write_jsonl(path, rows)
    return path


def test_authors_conditional_preferences_are_joint_rows_with_equal_prompts(shared_data):
    rows = load_preferences(shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))
    assert len(rows) == 363
    assert all(r["prompt_chosen"] == r["prompt_rejected"] for r in rows)
    assert rows[0]["chosen"].startswith("Mmm, some options")


def test_authors_sft_and_gold_and_tldr_json_lines(shared_data):
    assert len(load_sft(shared_data("jpo-authors", "anthropic_helpful", "val_sft.jsonl"))) == 500
    gold = load_prompts(shared_data("jpo-authors", "anthropic_helpful", "test.jsonl"))
    assert len(gold) == 500 and gold[0]["reference"].startswith("It seems likely")
    tldr = load_prompts(shared_data("jpo-authors", "tldr", "test.json"))  # JSON Lines despite the name
    assert len(tldr) == 500
    assert tldr[0]["id"] == "t3_1wbdsh" and "subreddit" in tldr[0] and "reference" in tldr[0]


def test_alpaca_eval_reads_as_prompts_with_reference_and_as_generations(shared_data):
    path = shared_data("alpaca_eval", "gpt4_1106_preview_model_outputs.json")
    prompts = load_prompts(path)
    assert len(prompts) == 805 and prompts[0]["dataset"] == "helpful_base"
    assert len({p["id"] for p in prompts}) == 805
    generations = load_generations(path)
    assert generations[0]["response"] == prompts[0]["reference"]


def test_llama_factory_sharegpt_preferences_keep_multi_turn_as_messages(shared_data):
    rows = load_preferences(shared_data("llama_factory", "dpo_en_demo.json"))
    assert len(rows) == 300
    multi = next(r for r in rows if len(r["prompt_chosen"]) > 2)
    roles = [m["role"] for m in multi["prompt_chosen"]]
    assert "assistant" in roles and roles[-1] == "user" and set(roles) <= {"system", "user", "assistant"}
    assert multi["chosen"][0]["role"] == "assistant"


def test_llama_factory_kto_is_unpaired(shared_data):
    rows = load_unpaired(shared_data("llama_factory", "kto_en_demo.json"))
    assert len(rows) == 300 and isinstance(rows[0]["label"], bool)
    assert rows[0]["completion"][0]["role"] == "assistant"


def test_hh_transcripts_split_at_the_shared_prefix_as_chat_messages(shared_data):
    rows = load_preferences(shared_data("hh-rlhf", "harmless-base", "test.jsonl.gz"))
    assert len(rows) == 2312
    row = rows[0]
    assert row["prompt_chosen"] == row["prompt_rejected"]
    assert row["prompt_chosen"][0]["role"] == "user" and row["prompt_chosen"][-1]["role"] == "user"
    assert row["chosen"][0]["role"] == "assistant" and row["chosen"] != row["rejected"]


def test_ultrafeedback_trl_format_keeps_extra_columns(shared_data):
    rows = load_preferences(shared_data("ultrafeedback_sample", "eval_clean.jsonl"))
    assert len(rows) == 200 and "source_index" in rows[0] and rows[0]["metadata"]["score_chosen"] >= 0


def test_mt_bench_questions_and_references(shared_data):
    questions = load_prompts(shared_data("mt_bench", "question.jsonl"))
    references = load_references(shared_data("mt_bench", "reference_answer_gpt-4.jsonl"))
    assert len(questions) == 80 and len(references) == 30
    assert {r["id"] for r in references} <= {q["id"] for q in questions}


def test_trl_standard_conversational_and_implicit_forms(tmp_path):
    standard = write(tmp_path / "s.jsonl", [{"prompt": "Sky?", "chosen": " Blue.", "rejected": " Green."}])
    assert load_preferences(standard) == [
        {"prompt_chosen": "Sky?", "chosen": " Blue.", "prompt_rejected": "Sky?", "rejected": " Green."}
    ]
    conversational = write(tmp_path / "c.jsonl", [{
        "prompt": [{"role": "user", "content": "Sky?"}],
        "chosen": [{"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    }])
    row = load_preferences(conversational)[0]
    assert row["prompt_chosen"] == row["prompt_rejected"] == [{"role": "user", "content": "Sky?"}]
    implicit = write(tmp_path / "i.jsonl", [{"chosen": "The sky is blue.", "rejected": "The sky is green."}])
    row = load_preferences(implicit)[0]
    assert (row["prompt_chosen"], row["chosen"], row["rejected"]) == ("The sky is ", "blue.", "green.")
    implicit_chat = write(tmp_path / "ic.jsonl", [{
        "chosen": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Green."}],
    }])
    row = load_preferences(implicit_chat)[0]
    assert row["prompt_chosen"] == [{"role": "user", "content": "Sky?"}]
    assert row["rejected"] == [{"role": "assistant", "content": "Green."}]


def test_joint_rows_and_items_round_trip(tmp_path):
    joint = [{"prompt_chosen": "Sort: b a", "chosen": "a b", "prompt_rejected": "Reverse: x y", "rejected": "x y"}]
    path = write(tmp_path / "joint.jsonl", joint)
    assert load_preferences(path) == joint
    items = preferences_to_items(load_preferences(path))
    assert items[0]["prompt_a"] == "Sort: b a" and items[0]["preference"] == "a"
    assert load_items(path)[0]["id"] == items[0]["id"]
    labelled = [{**items[0], "label": "b"}, {**items[0], "id": "t", "label": "tie"}]
    rows, counts = items_to_preferences(labelled)
    assert rows[0]["chosen"] == "x y" and rows[0]["prompt_chosen"] == "Reverse: x y"
    assert counts == {"a": 0, "b": 1, "tie": 1, "invalid": 0}


def test_conditional_items_and_unpairing(tmp_path):
    path = write(tmp_path / "ci.jsonl", [{"id": 7, "prompt": "P", "response_a": "A", "response_b": "B", "label": "a"}])
    item = load_items(path)[0]
    assert (item["id"], item["prompt_a"], item["prompt_b"], item["label"]) == ("7", "P", "P", "a")
    pair = {"prompt_chosen": "P", "chosen": "good", "prompt_rejected": "Q", "rejected": "bad"}
    assert unpair([pair]) == [
        {"prompt": "P", "completion": "good", "label": True},
        {"prompt": "Q", "completion": "bad", "label": False},
    ]


def test_sft_aliases(tmp_path):
    alpaca = write(tmp_path / "a.jsonl", [{"instruction": "Add", "input": "1 2", "output": "3"}])
    assert load_sft(alpaca)[0]["prompt"] == "Add\n\n1 2"
    completion = write(tmp_path / "pc.jsonl", [{"prompt": "Hi", "completion": "Hello"}])
    assert load_sft(completion)[0] == {"prompt": "Hi", "response": "Hello"}
    messages = write(tmp_path / "m.jsonl", [{"messages": [{"role": "user", "content": "Hi"},
                                                          {"role": "assistant", "content": "Hello"}]}])
    assert load_sft(messages)[0]["response"] == [{"role": "assistant", "content": "Hello"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ".json.gz", ".csv.gz"])
def test_every_file_type_reads_the_same_rows(tmp_path, suffix):
    rows = [{"prompt": "Sky?", "response": "Blue."}, {"prompt": "Grass?", "response": "Green, mostly."}]
    path = tmp_path / f"data{suffix}"
    base = suffix.removesuffix(".gz")
    if base == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        if base == ".jsonl":
            text = "".join(json.dumps(r) + "\n" for r in rows)
        elif base == ".json":
            text = json.dumps(rows)
        else:
            text = 'prompt,response\nSky?,Blue.\nGrass?,"Green, mostly."\n'
        data = text.encode()
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert load_sft(path) == rows


def test_saved_dataset_folder_and_hub_loading_code_offline(tmp_path, monkeypatch):
    import datasets

    rows = [{"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green."}] * 3
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(tmp_path / "saved")
    assert len(load_preferences(tmp_path / "saved")) == 3
    # A hub-style repository folder goes through the same `datasets.load_dataset` call as a hub name.
    repo = tmp_path / "org" / "prefs"
    repo.mkdir(parents=True)
    write(repo / "train.jsonl", rows)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert len(read_hub(str(repo), "train").rows) == 3


def test_inspect_reports_kind_and_empty_responses(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"prompt": "P", "chosen": "", "rejected": "no"}])
    loaded = inspect(path)
    assert (loaded.kind, loaded.format.name, len(loaded), loaded.empty_responses) == ("preference", "trl-preference", 1, 1)


# --- what validate counts, repeated by train and pairs; plain-text and conversational files together ---------------

CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}" \
                "{% if add_generation_prompt %}assistant: {% endif %}"


@pytest.fixture(scope="module")
def chat_model(tiny_model_path, tmp_path_factory):
    """stories260K with a chat template (its own has none), for conversational data."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("chat-model")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(tiny_model_path).save_pretrained(folder)
    return folder


def plain_and_chat_files(tmp_path):
    """A TRL standard (plain-text) file with an unread column, an empty response and an identical pair, and a
    LLaMA-Factory sharegpt file with a system prompt."""
    plain = tmp_path / "plain.jsonl"
    write(plain, [{"prompt": "Once upon a time", "chosen": " there was a cat.", "rejected": " a dog.", "score": 1},
                  {"prompt": "The sun", "chosen": " was warm.", "rejected": "", "score": 2},
                  {"prompt": "Lily liked", "chosen": " to play.", "rejected": " to play.", "score": 3},
                  {"prompt": "Tom had", "chosen": " a red ball.", "rejected": " a ball.", "score": 4}])
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"conversations": [{"from": "human", "value": f"Tell story {i}."}],
                                 "chosen": {"from": "gpt", "value": "Once there was a bird."},
                                 "rejected": {"from": "gpt", "value": "No."}, "system": "You tell stories."}
                                for i in range(4)]))
    return plain, chat


def test_train_mixes_plain_and_chat_files_and_repeats_what_validate_counts(tmp_path, chat_model, capsys):
    """`jpo train --dataset plain.jsonl chat.json` once failed with a pyarrow traceback; and its summary did not say
    what validate counts. Now the plain rows become chat turns, and each file's line carries validate's notes."""
    from jpo.cli import main

    plain, chat = plain_and_chat_files(tmp_path)
    assert main(["data", "validate", str(plain), str(chat)]) == 0
    validated = capsys.readouterr().out.splitlines()
    code = main(["train", "--objective", "dpo", "--model_name_or_path", str(chat_model), "--dataset", str(plain),
                 str(chat), "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--max_length", "64",
                 "--per_device_train_batch_size", "8", "--report_to", "none", "--save_strategy", "no"])
    out = capsys.readouterr().out
    assert code == 0, out
    for notes in (validated[0].split("; ")[1:], validated[1].split("; ")[1:]):  # every note validate prints
        for note in notes:
            assert out.count(note) == 2, (note, out)  # printed before training and repeated in the summary
    assert "1 with an empty response" in out and "1 identical pairs" in out
    assert "columns the trl-preference layout does not read (passed through): score" in out
    assert f"data: {plain} (layout trl-preference): 4 preference rows" in out
    assert "4 rows of plain text made chat turns" in out
    assert f"data: {chat} (layout sharegpt-preference): 4 preference rows\n" in out  # system read: nothing unread


def test_train_on_mixed_files_without_a_chat_template_is_one_line(tmp_path, tiny_model_path, capsys):
    from jpo.cli import main

    plain, chat = plain_and_chat_files(tmp_path)
    code = main(["train", "--objective", "dpo", "--model_name_or_path", str(tiny_model_path), "--dataset",
                 str(plain), str(chat), "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
                 "--report_to", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err  # progress bars aside, one error line
    assert "conversational data needs a tokenizer with a chat template" in err.splitlines()[-1]


def test_load_many_makes_one_representation():
    from jpo.data.load import Loaded, unify_text

    plain = [{"prompt": "P", "response": "R"}]
    chat = [{"prompt": [{"role": "user", "content": "Q"}], "response": [{"role": "assistant", "content": "S"}]}]
    assert unify_text([plain, chat]) == [1, 0]
    assert plain == [{"prompt": [{"role": "user", "content": "P"}], "response": [{"role": "assistant", "content": "R"}]}]
    assert unify_text([[{"prompt": "P", "response": "R"}]]) == [0]  # one representation: left as it is
    assert Loaded.__dataclass_fields__["made_chat"].default == 0


def test_pairs_summary_repeats_what_validate_counts(tmp_path, capsys):
    from jpo.cli import main

    prefs = tmp_path / "prefs.jsonl"
    write(prefs, [{"prompt": f"Q{i}", "chosen": "same" if i == 0 else f"a{i}", "rejected": "same" if i == 0 else "",
                   "score": i} for i in range(6)])
    assert main(["data", "validate", str(prefs)]) == 0
    notes = capsys.readouterr().out.splitlines()[0].split("; ")[1:]  # the file's line, not the summary
    assert main(["pairs", "--input", str(prefs), "--output", str(tmp_path / "items.jsonl")]) == 0
    out = capsys.readouterr().out
    assert notes and all(note in out for note in notes), (notes, out)
    assert "5 with an empty response" in out and "1 identical pairs" in out and "passed through): score" in out


def test_trainer_takes_a_list_mixing_plain_and_chat_rows(tmp_path, chat_model):
    """The drop-in path (`JPOTrainer(train_dataset=[...])`) with plain-text and conversational rows in one list: once
    a pyarrow error, now one representation (the caller's rows are not changed)."""
    from jpo import JPOConfig, JPOTrainer

    rows = [{"prompt": "Once upon a time", "chosen": " a cat sat.", "rejected": " no."},
            {"prompt": [{"role": "user", "content": "Tell a story."}],
             "chosen": [{"role": "assistant", "content": "Once there was a bird."}],
             "rejected": [{"role": "assistant", "content": "No."}]}]
    args = JPOConfig(output_dir=str(tmp_path / "out"), objective="dpo", max_steps=1, per_device_train_batch_size=2,
                     max_length=64, report_to="none", save_strategy="no")
    trainer = JPOTrainer(str(chat_model), args=args, train_dataset=rows)
    assert trainer.train().training_loss > 0
    assert rows[0]["prompt"] == "Once upon a time"
