"""Training data: identical pairs are dropped and counted, special tokens already in the text are not added twice,
and SFT on labelled (KTO) rows keeps the desirable ones, saying how many it left out."""

from __future__ import annotations

import json
import logging

import pytest
from transformers import AutoTokenizer

from jpo.cli import main as jpo_main
from jpo.evaluate.generate import encode_prompt
from jpo.train import train_preferences
from jpo.train.data import encode_pairs, encode_sft, encode_unpaired
from jpo.train.tokenize import Encoder

QUICK = dict(per_device_train_batch_size=4, learning_rate=1e-3, logging_steps=1, seed=0, max_steps=2,
             report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True, max_length=64)
LONG = " Tom and Lily went to the park to play with the ball and the dog ran after them all day long"


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    return AutoTokenizer.from_pretrained(tiny_model_path)


def degenerate_rows() -> list[dict]:
    return [
        {"prompt_chosen": "Tell a story.", "chosen": " A cat.", "prompt_rejected": "Tell a story.",
         "rejected": " A cat."},  # identical as text
        {"prompt_chosen": "Tell a story.", "chosen": LONG + " yes.", "prompt_rejected": "Tell a story.",
         "rejected": LONG + " no."},  # differ only past max_length: identical once truncated
        {"prompt_chosen": "Tell a story.", "chosen": " A cat.", "prompt_rejected": "Tell a tale.",
         "rejected": " A cat."},  # same response to different prompts: a joint pair, kept
        {"prompt_chosen": "Tell a story.", "chosen": " A cat.", "prompt_rejected": "Tell a story.",
         "rejected": " A dog."},
    ]


def test_identical_pairs_are_dropped_and_counted(tok):
    data, report = encode_pairs(degenerate_rows(), Encoder(tok, max_length=16))
    assert (report.rows, report.identical, report.identical_after_truncation, report.used) == (4, 2, 1, 2)
    assert report.identical_indices == [0, 1] and len(data) == 2
    assert all(item["chosen_ids"] != item["rejected_ids"] for item in data)
    assert "2 identical pairs dropped (chosen = rejected, 1 of them only after truncation)" in report.summary()
    _, untruncated = encode_pairs(degenerate_rows(), Encoder(tok, max_length=None))
    assert untruncated.identical == 1 and untruncated.identical_after_truncation == 0


def test_identical_pairs_are_not_unpaired_for_kto(tok):
    data, report = encode_unpaired(degenerate_rows(), Encoder(tok, max_length=16))
    assert report.identical == 2 and len(data) == 4  # two kept pairs, a desirable and an undesirable row each
    assert sorted(data["label"]) == [False, False, True, True]


def test_training_reports_identical_pairs(tiny_model_path, tmp_path, caplog):
    rows = degenerate_rows() * 2
    with caplog.at_level(logging.WARNING):
        result = train_preferences(dict(QUICK, model_name_or_path=str(tiny_model_path), max_length=16,
                                        output_dir=str(tmp_path)), rows)
    assert result.data.identical == 4 and "4 identical pairs dropped" in result.summary()
    assert any("4 identical pairs dropped" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "data_report.json").read_text())["identical"] == 4
    steps = [h for h in result.log_history if "loss" in h]
    assert steps[0]["rewards/accuracies"] == 0.0 and steps[1]["rewards/accuracies"] > 0  # no ln 2 rows left


def plain_and_with_specials(tok) -> tuple[dict, dict]:
    plain = {"prompt": "### Instruction: tell a story.\n### Response:", "response": " Once upon a time."}
    marked = {"prompt": tok.bos_token + plain["prompt"], "response": plain["response"] + tok.eos_token}
    return plain, marked


@pytest.mark.parametrize("split_special_tokens", [False, True])
def test_bos_and_eos_in_the_text_are_not_added_twice(tiny_model_path, split_special_tokens):
    """Whether or not the tokenizer parses "<s>" and "</s>" in text, the marked row encodes as the plain one: one
    BOS, one EOS, for SFT, preference pairs, KTO rows and generation prompts alike."""
    tok = AutoTokenizer.from_pretrained(tiny_model_path, split_special_tokens=split_special_tokens)
    plain, marked = plain_and_with_specials(tok)
    encoder = Encoder(tok, max_length=None)
    sft = [encode_sft([row], encoder)[0][0] for row in (plain, marked)]
    assert sft[0] == sft[1]
    ids = sft[0]["ids"]
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id and ids.count(tok.eos_token_id) == 1
    pairs = [encode_pairs([{"prompt": r["prompt"], "chosen": r["response"], "rejected": " No."}], encoder)[0][0]
             for r in (plain, marked)]
    assert pairs[0] == pairs[1]
    kto = [encode_unpaired([{"prompt": r["prompt"], "completion": r["response"], "label": True}], encoder)[0][0]
           for r in (plain, marked)]
    assert kto[0] == kto[1]
    assert encode_prompt(tok, marked["prompt"]) == encode_prompt(tok, plain["prompt"])
    assert encode_prompt(tok, marked["prompt"])[:2].count(tok.bos_token_id) == 1


def test_chat_template_rendering_bos_keeps_one(tiny_model_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant:{% endif %}")
    prompt = [{"role": "user", "content": "Tell a story."}]
    (enc,), _ = Encoder(tok, max_length=None).encode(prompt, [[{"role": "assistant",
                                                               "content": "Once." + tok.eos_token}]])
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids[1] != tok.bos_token_id
    assert enc.input_ids[-2:] != [tok.eos_token_id] * 2


def test_special_tokens_inside_the_text_are_named_once(tiny_model_path, tmp_path, caplog):
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    rows = [{"prompt_chosen": "Hi", "chosen": " a", "prompt_rejected": "Hi", "rejected": " b"},
            {"prompt_chosen": f"Human: hi{tok.eos_token}Assistant: hello{tok.eos_token}Human: more",
             "chosen": " yes", "prompt_rejected": "Human: hi", "rejected": " no"}] * 2
    _, report = encode_pairs(rows, Encoder(tok, max_length=None))
    assert report.special_token_rows == [1, 3]
    with caplog.at_level(logging.WARNING):
        train_preferences(dict(QUICK, model_name_or_path=str(tiny_model_path), output_dir=str(tmp_path)), rows)
    lines = [r.getMessage() for r in caplog.records if "BOS or EOS string" in r.getMessage()]
    assert len(lines) == 1 and "rows 2, 4" in lines[0]


def test_sft_on_a_kto_file_keeps_desirable_rows_and_says_so(tiny_model_path, tmp_path, capsys):
    path = tmp_path / "kto.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Story {i}:", "completion": " Tom ran.", "label": i % 3 == 0})
                            + "\n" for i in range(9)))
    code = jpo_main(["sft", "--model_name_or_path", str(tiny_model_path), "--dataset", str(path), "--output_dir",
                     str(tmp_path / "o"), "--max_steps", "1", "--max_length", "64", "--per_device_train_batch_size",
                     "2", "--save_strategy", "no", "--use_cpu", "true", "--report_to", "none"])
    assert code == 0
    report = json.loads((tmp_path / "o" / "data_report.json").read_text())
    assert (report["rows"], report["undesirable"]) == (9, 6)
    assert "6 undesirable rows (label false) left out of SFT" in capsys.readouterr().out


@pytest.mark.parametrize("max_length", [2000, None])
def test_max_length_beyond_the_context_is_capped_with_one_line(tiny_model_path, tmp_path, caplog, max_length):
    """stories260K takes 512 positions: a longer --max_length (or none) is capped there, saying so once, and a
    700-token row is truncated to fit instead of running positions the model never had."""
    from jpo.train import train_sft

    long_prompt = " ".join(["Tom saw a big red ball in the park."] * 60)
    pairs = [{"prompt_chosen": long_prompt, "chosen": " yes", "prompt_rejected": long_prompt, "rejected": " no"},
             {"prompt_chosen": "Hi", "chosen": " yes", "prompt_rejected": "Hi", "rejected": " no"}]
    with caplog.at_level(logging.WARNING):
        result = train_preferences(dict(QUICK, model_name_or_path=str(tiny_model_path), max_length=max_length,
                                        truncation_mode="keep_end", max_steps=1, output_dir=str(tmp_path / "p")),
                                   pairs)
        sft = train_sft(dict(QUICK, model_name_or_path=str(tiny_model_path), max_length=max_length,
                             truncation_mode="keep_end", max_steps=1, output_dir=str(tmp_path / "s")),
                        [{"prompt": long_prompt, "response": " yes"}, {"prompt": "Hi", "response": " no"}])
    lines = [r.getMessage() for r in caplog.records if "beyond the model's context" in r.getMessage()]
    assert len(lines) == 2 and all("capped at 512" in line for line in lines)
    assert result.data.truncated == 1 and result.data.used == 2 and sft.data.truncated == 1
