"""Each bad input gets one message naming file, line (or row) and field, and exit 2 from the CLI, no traceback."""

from __future__ import annotations

import gzip
import json

import pytest

from jpo.cli import main
from jpo.data import FORMATS, Table, load_preferences
from jpo.data.formats import COLUMNS, FORMATS_BY_NAME, TOOLS_HEADER
from jpo.data.load import convert_row, detect, formats_of, unused_columns
from jpo.errors import DataError

GOOD = {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green."}


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


CASES = {
    "broken-json-line": ("x.jsonl", jsonl(GOOD) + b'{"prompt": "a", "chosen": \n', "x.jsonl:2: broken JSON"),
    "missing-column": ("x.jsonl", jsonl(GOOD, {"prompt": "P", "chosen": "C"}),
                       "x.jsonl:2: field 'rejected': missing column"),
    "non-string-text": ("x.jsonl", jsonl(GOOD, {**GOOD, "chosen": 42}),
                        "x.jsonl:2: field 'chosen': expected text (a string or a list of chat messages), got int"),
    "null-text": ("x.jsonl", jsonl({**GOOD, "prompt": None}), "x.jsonl:1: field 'prompt': expected text"),
    "empty-prompt": ("x.jsonl", jsonl(GOOD, GOOD, {**GOOD, "prompt": "  "}), "x.jsonl:3: field 'prompt': empty text"),
    "invalid-utf8": ("x.jsonl", jsonl(GOOD) + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n',
                     "x.jsonl:2: invalid UTF-8"),
    "empty-file": ("x.jsonl", b"", "x.jsonl: file is empty"),
    "whitespace-file": ("x.json", b"  \n\n", "x.json: file is empty"),
    "object-not-rows": ("x.json", json.dumps({"prompt": "P", "chosen": "a", "rejected": "b"}).encode(),
                        "x.json: a JSON object where rows (an array or JSON Lines) are expected"),
    "array-of-non-objects": ("x.json", b'[{"prompt": "P", "chosen": "a", "rejected": "b"}, 3]',
                             "x.json: row 2: expected a JSON object, got int"),
    "json-array-row-field": ("x.json", json.dumps([GOOD, {**GOOD, "rejected": ["no"]}]).encode(),
                             "x.json: row 2: field 'rejected': message 0 is not a chat message"),
    "csv-empty-cell": ("x.csv", b"prompt,chosen,rejected\nSky?,Blue.,Green.\n,Blue.,Green.\n",
                       "x.csv:3: field 'prompt': empty text"),
    "gzip-broken-line": ("x.jsonl.gz", gzip.compress(jsonl(GOOD) + b"nope\n"), "x.jsonl.gz:2: broken JSON"),
    "unknown-role": ("x.jsonl", jsonl({"messages": [{"role": "user", "content": "Hi"},
                                                    {"role": "assistant", "content": "Hello"}]}, {"messages": [{"role": "wizard", "content": "Hi"},
                                                          {"role": "assistant", "content": "Hello"}]}),
                     "x.jsonl:2: field 'messages': message 0 has an unknown role 'wizard' (expected one of system, "
                     "developer, user, assistant, tool, function)"),
    "one-column-short": ("bi.jsonl", jsonl({"id": "1", "prompt_a": "P", "response_a": "a", "prompt_b": "Q"}),
                         "bi.jsonl:1: field 'response_b': missing column (layout items)"),
    "one-column-short-authors": ("x.jsonl", jsonl({"i_chosen": "P", "r_chosen": "a", "i_reject": "Q"}),
                                 "x.jsonl:1: field 'r_reject': missing column (layout jpo-authors)"),
    "unknown-columns": ("x.jsonl", jsonl({"question": "Q", "answer": "A"}), "x.jsonl:1: unrecognised columns"),
    "bad-label": ("x.jsonl", jsonl({"id": "1", "prompt": "P", "response_a": "a", "response_b": "b", "label": "A"}),
                  "x.jsonl:1: field 'label': unknown label 'A'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_message_names_file_line_and_field(tmp_path, case, capsys):
    name, content, expected = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    status = main(["data", "validate", str(path)])
    out = capsys.readouterr().out
    assert status == 2
    error_line = next(line for line in out.splitlines() if line.startswith("error:"))
    assert f"{tmp_path}/{expected}" in error_line, error_line
    assert "Traceback" not in out


@pytest.mark.parametrize("case", ["broken-json-line", "missing-column", "empty-file", "invalid-utf8", "unknown-role"])
def test_pairs_exits_2_with_the_same_message(tmp_path, case, capsys):
    name, content, expected = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    status = main(["pairs", "--input", str(path), "--output", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and f"{tmp_path}/{expected}" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert main(["data", "validate", str(missing)]) == 2
    assert f"error: {missing}: file not found" in capsys.readouterr().out
    assert main(["pairs", "--input", str(missing), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err


def test_duplicate_explicit_ids_are_an_error(tmp_path):
    path = tmp_path / "items.jsonl"
    row = {"id": "x", "prompt_a": "P", "response_a": "a", "prompt_b": "Q", "response_b": "b"}
    path.write_bytes(jsonl(row, row))
    from jpo.data import load_items

    with pytest.raises(DataError, match=r"items.jsonl:2: field 'id': duplicate id 'x' \(first at line 1\)"):
        load_items(path)


def test_validate_accepts_good_files_and_fails_if_any_is_bad(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(GOOD, GOOD))
    assert main(["data", "validate", str(good)]) == 0
    assert f"{good}: trl-preference (preference" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"")
    assert main(["data", "validate", str(good), str(bad)]) == 2
    out = capsys.readouterr().out
    assert "2 rows" in out and "1 of 2 files invalid" in out


def test_validate_exits_2_on_errors_and_0_on_counted_notes_as_the_readme_says(tmp_path, capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("jpo data validate prefs.jsonl sft.parquet"))
    assert "counted notes (exit 0); exit 2 on an unreadable file or row" in line
    noted = tmp_path / "noted.jsonl"
    noted.write_bytes(jsonl(GOOD, {**GOOD, "rejected": "Blue."}, {**GOOD, "chosen": " "}))
    assert main(["data", "validate", str(noted)]) == 0
    out = capsys.readouterr().out
    assert "1 with an empty response" in out and "1 identical pairs" in out
    assert "1 of 1 files valid (1 with notes: counts, not errors)" in out
    unreadable = tmp_path / "unreadable.jsonl"
    unreadable.write_bytes(jsonl(GOOD, {**GOOD, "chosen": 42}))
    assert main(["data", "validate", str(noted), str(unreadable)]) == 2
    assert "unreadable.jsonl:2: field 'chosen'" in capsys.readouterr().out


def test_library_raises_data_error_with_location(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl(GOOD, {**GOOD, "chosen": {"text": "x"}}))
    with pytest.raises(DataError) as error:
        load_preferences(path)
    assert (error.value.path, error.value.line, error.value.field) == (str(path), 2, "chosen")


def test_every_shared_data_file_validates_with_its_row_count(shared_data, capsys):
    expected = {
        ("jpo-authors", "tldr", "test.json"): 500,
        ("jpo-authors", "anthropic_helpful", "test.jsonl"): 500,
        ("jpo-authors", "anthropic_helpful", "val_sft.jsonl"): 500,
        ("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"): 363,
        ("jpo-authors", "outputs", "tldr_0.001.json"): 500,
        ("jpo-authors", "outputs", "helpful_0.001.json"): 500,
        ("jpo-authors", "verdicts", "master.json"): 500,
        ("jpo-authors", "verdicts", "master_helpful.json"): 500,
        ("alpaca_eval", "gpt4_1106_preview_model_outputs.json"): 805,
        ("alpaca_eval", "text_davinci_003_model_outputs.json"): 805,
        ("mt_bench", "question.jsonl"): 80,
        ("mt_bench", "reference_answer_gpt-4.jsonl"): 30,
        ("llama_factory", "dpo_en_demo.json"): 300,
        ("llama_factory", "kto_en_demo.json"): 300,
        ("ultrafeedback_sample", "train_clean.jsonl"): 1000,
        ("ultrafeedback_sample", "eval_clean.jsonl"): 200,
        ("hh-rlhf", "harmless-base", "test.jsonl.gz"): 2312,
    }
    paths = [str(shared_data(*parts)) for parts in expected]
    assert main(["data", "validate", *paths]) == 0
    *lines, summary = capsys.readouterr().out.splitlines()  # the last says that the notes are not errors
    assert summary.startswith(f"{len(paths)} of {len(paths)} files valid (") and summary.endswith("not errors)")
    for line, count in zip(lines, expected.values(), strict=True):
        assert f" {count} rows" in line or f" {count} entries" in line, line


def test_validate_names_a_column_the_format_does_not_read(tmp_path, capsys):
    """`prompt,chosen` reads as prompts; the lone `chosen` is most likely a preference file that lost `rejected`."""
    path = tmp_path / "lost.csv"
    path.write_text("prompt,chosen\nSky?,Blue.\n")
    assert main(["data", "validate", str(path)]) == 0
    line, _ = capsys.readouterr().out.strip().splitlines()  # and the summary: notes are not errors
    assert line.startswith(f"{path}: prompts (prompts") and ", 1 rows" in line
    assert line.endswith("columns the prompts layout does not read (passed through): chosen (trl-preference would also "
                         "need rejected)")


def _messages(*roles: str) -> list[dict[str, str]]:
    return [{"role": role, "content": f"{role} text"} for role in roles]


# One valid row per format with every column the format reads, optional ones included.
SAMPLES = {
    "joint": {"prompt_chosen": "P", "chosen": "a", "prompt_rejected": "Q", "rejected": "b"},
    "jpo-authors": {"i_chosen": "P", "r_chosen": "a", "i_reject": "Q", "r_reject": "b"},
    "sharegpt-preference": {"conversations": [{"from": "human", "value": "P"}], "chosen": {"from": "gpt", "value": "a"},
                            "rejected": {"from": "gpt", "value": "b"}},
    "alpaca-preference": {"instruction": "P", "input": "x", "chosen": "a", "rejected": "b"},
    "openai-preference": {"input": {"messages": _messages("user")}, "preferred_output": _messages("assistant"),
                          "non_preferred_output": [{"role": "assistant", "content": "b"}]},
    "trl-preference": {"prompt": "P", "chosen": "a", "rejected": "b"},
    "trl-implicit-preference": {"chosen": "The sky is blue.", "rejected": "The sky is green."},
    "tldr-comparisons": {"info": {"id": "t3", "post": "P"}, "summaries": [{"text": "a"}, {"text": "b"}], "choice": 1,
                         "worker": "w"},
    "trl-unpaired": {"prompt": "P", "completion": "a", "label": True},
    "llama-factory-kto": {"messages": _messages("user", "assistant"), "label": False},
    "llama-factory-kto-tag": {"messages": _messages("user", "assistant"), "kto_tag": False},
    "sharegpt-kto": {"conversations": [{"from": "human", "value": "P"}, {"from": "gpt", "value": "a"}],
                     "kto_tag": True},
    "alpaca-kto": {"instruction": "P", "input": "x", "output": "a", "kto_tag": True},
    "items": {"id": "1", "prompt_a": "P", "response_a": "a", "prompt_b": "Q", "response_b": "b", "label": "a"},
    "conditional-items": {"id": "1", "prompt": "P", "response_a": "a", "response_b": "b", "label": "tie"},
    "sft": {"prompt": "P", "response": "a"},
    "trl-prompt-completion": {"prompt": "P", "completion": "a"},
    "jpo-authors-sft": {"instruction": "P", "input": "x", "response": "a"},
    "jpo-authors-gold": {"instruction": "P", "input": "x", "gold_response": "a"},
    "alpaca": {"instruction": "P", "input": "x", "output": "a"},
    "tldr-posts": {"post": "P", "summary": "a"},
    "trl-messages": {"messages": _messages("user", "assistant")},
    "sharegpt": {"conversations": [{"from": "human", "value": "P"}, {"from": "gpt", "value": "a"}]},
    "prompts": {"id": "1", "prompt": "P", "reference": "a"},
    "instructions": {"instruction_id": "1", "instruction": "P"},
    "mt-bench-questions": {"question_id": 1, "turns": ["P"], "reference": ["a"]},
    "generations": {"id": "1", "prompt": "P", "response": "a"},
    "jpo-authors-outputs": {"id": "1", "instruction": "P", "outputs": "a"},
    "references": {"id": "1", "reference": "a"},
    "mt-bench-references": {"question_id": 1, "choices": [{"turns": ["a"]}]},
    "mt-bench-judge-prompts": {"name": "pair", "system_prompt": "S", "prompt_template": "T"},
}


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_format_declares_the_columns_it_reads(fmt):
    """A column beside those the format reads is reported as unread, and only that one: so `reads` is complete."""
    table = Table("x.jsonl", [{**SAMPLES[fmt.name], "zzz": 1}])
    assert detect(table, formats_of([fmt.kind])) is fmt
    convert_row(table, 0, fmt)  # a valid row
    assert unused_columns(table, fmt) == ("zzz",)


# Each optional column a layout defines, with a value that must change the converted row.
OPTIONAL_VALUES = {"system": "Answer in French.", "tools": [{"type": "function", "function": {"name": "f"}}],
                   "history": [["Hi", "Hello!"]], "input": "more", "id": "7", "label": "b", "reference": "gold",
                   "instruction_id": "i7", "worker": "w9", "chat_template_kwargs": {"enable_thinking": False}}


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.optional], ids=lambda f: f.name)
def test_every_column_a_format_defines_is_used(fmt):
    """Each optional column of a recognised layout changes what is trained on or kept (LLaMA-Factory's `system` was
    once passed through unread): the row converted with it differs from the row converted without it."""
    for column in sorted(fmt.optional):
        base = {k: v for k, v in SAMPLES[fmt.name].items() if k != column}
        value = OPTIONAL_VALUES[column]
        if fmt.name == "mt-bench-questions" and column == "reference":
            value = ["gold"]
        with_it = convert_row(Table("x.jsonl", [{**base, column: value}]), 0, fmt)
        without = convert_row(Table("x.jsonl", [base]), 0, fmt)
        assert with_it != without, (fmt.name, column)
        # consumed, not passed through (the chat template's own inputs stay on the row, as TRL gives them to it)
        if column not in COLUMNS[fmt.kind] and column not in ("id", "worker", "tools", "chat_template_kwargs"):
            assert column not in with_it, (fmt.name, column)


def test_sharegpt_system_and_tools_become_the_system_message(tmp_path):
    """LLaMA-Factory's sharegpt preferences with `system` and `tools`: both reach the prompt, and validate, train
    and pairs name nothing as unread."""
    tools = '[{"name": "search", "parameters": {}}]'
    row = {"conversations": [{"from": "human", "value": "Weather?"}], "chosen": {"from": "gpt", "value": "Sunny."},
           "rejected": {"from": "gpt", "value": "No."}, "system": "Be brief.", "tools": tools}
    converted = convert_row(Table("x.jsonl", [row]), 0, FORMATS_BY_NAME["sharegpt-preference"])
    assert converted["prompt_chosen"] == [{"role": "system", "content": f"Be brief.\n\n{TOOLS_HEADER}{tools}"},
                                          {"role": "user", "content": "Weather?"}]
    assert "system" not in converted and "tools" not in converted
    # a system turn inside the conversation wins over the column, as in LLaMA-Factory
    inside = {**row, "conversations": [{"from": "system", "value": "Inside."}, *row["conversations"]], "tools": ""}
    converted = convert_row(Table("x.jsonl", [inside]), 0, FORMATS_BY_NAME["sharegpt-preference"])
    assert converted["prompt_chosen"][0] == {"role": "system", "content": "Inside."}


def test_alpaca_history_and_system_make_a_conversation():
    row = {"instruction": "And now?", "input": "", "output": "Now this.", "system": "S", "history": [["Q1", "A1"]]}
    converted = convert_row(Table("x.jsonl", [row]), 0, FORMATS_BY_NAME["alpaca"])
    assert converted["prompt"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
                                   {"role": "assistant", "content": "A1"}, {"role": "user", "content": "And now?"}]
    assert converted["response"] == [{"role": "assistant", "content": "Now this."}]
    with pytest.raises(DataError, match=r"x.jsonl: row 1: field 'history': expected a list of \[instruction"):
        convert_row(Table("x.jsonl", [{**row, "history": ["Q1"]}]), 0, FORMATS_BY_NAME["alpaca"])


def test_alpaca_preferences_keep_their_instruction():
    """LLaMA-Factory's Alpaca ranking rows were read as implicit-prompt pairs (the instruction passed through)."""
    row = {"instruction": "Name a colour.", "input": "", "chosen": "Blue.", "rejected": "Blue, or green."}
    table = Table("x.jsonl", [row])
    fmt = detect(table, formats_of(["preference"]))
    assert fmt.name == "alpaca-preference" and unused_columns(table, fmt) == ()
    converted = convert_row(table, 0, fmt)
    assert (converted["prompt_chosen"], converted["chosen"]) == ("Name a colour.", "Blue.")


def test_openai_tool_calls_and_preference_rows():
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                                   "function": {"name": "f", "arguments": "{}"}}]}
    row = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, call,
                        {"role": "tool", "tool_call_id": "1", "content": "42"},
                        {"role": "assistant", "content": "It is 42."}],
           "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": False}
    table = Table("x.jsonl", [row])
    converted = convert_row(table, 0, FORMATS_BY_NAME["trl-messages"])
    # TRL and OpenAI give tools to the chat template (as TRL's trainers do): kept on the row, not folded into text
    assert converted["prompt"][0] == {"role": "system", "content": "S"} and call in converted["prompt"]
    assert converted["tools"] == row["tools"]
    assert unused_columns(table, FORMATS_BY_NAME["trl-messages"]) == ("parallel_tool_calls",)
    pref = {"input": {"messages": [{"role": "user", "content": "U"}], "tools": row["tools"]},
            "preferred_output": [{"role": "assistant", "content": "A"}],
            "non_preferred_output": [{"role": "assistant", "content": "B"}]}
    table = Table("x.jsonl", [pref])
    fmt = detect(table, formats_of(["preference"]))
    converted = convert_row(table, 0, fmt)
    assert fmt.name == "openai-preference" and converted["prompt_chosen"] == converted["prompt_rejected"]
    assert converted["prompt_chosen"] == [{"role": "user", "content": "U"}] and converted["tools"] == row["tools"]
    assert converted["rejected"][0]["content"] == "B"


def test_judge_names_the_one_column_an_item_lacks(tmp_path, capsys):
    path = tmp_path / "bi.jsonl"
    path.write_bytes(jsonl({"id": "1", "prompt_a": "P", "response_a": "a", "prompt_b": "Q"}))
    assert main(["judge", "--input", str(path), "--output", str(tmp_path / "out.jsonl"), "--judge", "oracle"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:1: field 'response_b': missing column (layout items)" in err


def test_pairs_error_names_the_file(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_bytes(jsonl({"prompt": "Same?", "response": "a"}, {"prompt": "Same?", "response": "b"}))
    assert main(["pairs", "--input", str(path), "--output", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{path}: 1 distinct instructions cannot give 1 distinct partner(s) each" in err


def test_output_that_is_a_directory_is_one_line_for_every_writer(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_bytes(jsonl(*({"prompt": f"P{i}", "response": "a"} for i in range(4))))
    taken = tmp_path / "taken"
    taken.mkdir()
    items = tmp_path / "items.jsonl"
    import random

    from jpo.tasks import graded_response, make_instance

    rng = random.Random(0)
    task = make_instance(rng).prompt  # the oracle judges the synthetic task
    items.write_bytes(jsonl({"id": "1", "prompt_a": task, "response_a": graded_response(task, 0, rng),
                             "prompt_b": task, "response_b": graded_response(task, 3, rng)}))
    for argv in (["pairs", "--input", str(path), "--output", str(taken)],
                 ["judge", "--input", str(items), "--output", str(taken), "--judge", "oracle"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{taken}: is a directory" in err and "Traceback" not in err
    assert list(taken.iterdir()) == []  # no temporary file left behind


def test_written_jsonl_gets_the_mode_a_plain_open_gives(tmp_path):
    import os
    import stat

    from jpo.data import write_jsonl

    old = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "a.jsonl", [GOOD])
        assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o644  # not NamedTemporaryFile's 0o600
        os.umask(0o077)
        write_jsonl(tmp_path / "b.jsonl", [GOOD])
        assert stat.S_IMODE((tmp_path / "b.jsonl").stat().st_mode) == 0o600
        (tmp_path / "a.jsonl").chmod(0o640)  # rewriting keeps an existing file's mode, as open("w") does
        write_jsonl(tmp_path / "a.jsonl", [GOOD, GOOD])
        assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o640
    finally:
        os.umask(old)


@pytest.mark.parametrize(("kind", "parts", "layout"), [
    ("sft", ("llama_factory", "dpo_en_demo.json"), "sharegpt-preference"),  # once read as its ShareGPT turns
    ("sft", ("ultrafeedback_sample", "eval_clean.jsonl"), "trl-preference"),
    ("sft", ("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"), "jpo-authors"),
    ("preference", ("jpo-authors", "anthropic_helpful", "val_sft.jsonl"), "jpo-authors-sft"),
])
def test_a_trainer_given_another_trainers_data_names_the_kind_it_is(shared_data, kind, parts, layout):
    """Real files of the other kind: one line naming the file, the kind and layout they are, and the kind expected."""
    from jpo.data.load import load

    path = shared_data(*parts)
    other = "preference" if kind == "sft" else "sft"
    with pytest.raises(DataError, match=rf"^{path}(:1|: row 1): these are {other} rows \(layout {layout}: .*\), "
                                        rf"not {kind} rows \(layouts .*\)$"):
        load(path, kind)
    assert load(path, other).rows  # and read as what they are
