"""SFT: the loss covers the response tokens and EOS (TRL's completion-only default), and training lowers it."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.cli import main as jpo_main
from jpo.train import train_sft
from jpo.train.data import encode_sft
from jpo.train.sft import SFTCollator
from jpo.train.tokenize import Encoder


def test_labels_cover_response_and_eos_only(tiny_model_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    data, _ = encode_sft([{"prompt": "Tell me a story.", "response": " Once upon a time."},
                       {"prompt": "Hi", "response": " Hello there, friend."}], Encoder(tok, max_length=None))
    batch = SFTCollator(tok.pad_token_id)(list(data))
    for row, item in enumerate(data):
        labels = batch["labels"][row].tolist()
        p, n = item["prompt_len"], len(item["ids"])
        assert labels[:p] == [-100] * p and labels[p:n] == item["ids"][p:] and labels[n - 1] == tok.eos_token_id
        assert all(x == -100 for x in labels[n:])
    full = SFTCollator(tok.pad_token_id, completion_only=False)(list(data))
    assert full["labels"][0, 0] == -100 and (full["labels"][0, 1:len(data[0]["ids"])] != -100).all()


def test_pad_to_multiple_of_rounds_every_layout_and_leaves_the_loss(tiny_model_path, capsys):
    """`--pad_to_multiple_of` (TRL's SFTConfig field) widens padded and packed batches alike; the padding carries no
    label and, packed, attends only to itself, so the model's loss on the batch is unchanged."""
    import torch

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, attn_implementation="eager")
    data, _ = encode_sft([{"prompt": "Tell me a story.", "response": " Once upon a time."},
                          {"prompt": "Hi", "response": " Hello there, friend."}], Encoder(tok, max_length=None))
    for packing in (None, "block"):
        plain = SFTCollator(tok.pad_token_id, packing=packing, additive_dtype=torch.float32)(list(data))
        wide = SFTCollator(tok.pad_token_id, packing=packing, additive_dtype=torch.float32,
                           pad_to_multiple_of=16)(list(data))
        assert wide["input_ids"].shape[1] % 16 == 0 and wide["input_ids"].shape[1] > plain["input_ids"].shape[1]
        with torch.no_grad():
            assert model(**wide).loss.item() == pytest.approx(model(**plain).loss.item(), rel=1e-6), packing
    with pytest.raises(SystemExit):
        jpo_main(["sft", "--help"])
    assert "--pad_to_multiple_of" in capsys.readouterr().out


def test_sft_lowers_the_loss_and_saves(tiny_model_path, tmp_path):
    rows = [{"prompt": f"Story {i}:", "response": " Tom and Lily went to the park to play with the ball."}
            for i in range(16)]
    result = train_sft(dict(model_name_or_path=str(tiny_model_path), output_dir=str(tmp_path / "sft"),
                            per_device_train_batch_size=8, learning_rate=5e-3, max_steps=8, logging_steps=1,
                            max_length=64, seed=0, report_to="none", save_strategy="no", disable_tqdm=True), rows)
    loss = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(loss) == 8 and loss[-1] < 0.7 * loss[0]
    assert (tmp_path / "sft" / "trainer_state.json").exists()
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "sft") is not None


def test_sft_cli(tiny_model_path, shared_data, tmp_path):
    data = shared_data("jpo-authors", "anthropic_helpful", "val_sft.jsonl")
    code = jpo_main(["sft", "--model_name_or_path", str(tiny_model_path), "--dataset", str(data), "--output_dir",
                     str(tmp_path / "o"), "--max_steps", "2", "--max_length", "128", "--logging_steps", "1",
                     "--per_device_train_batch_size", "2", "--save_strategy", "no"])
    assert code == 0 and (tmp_path / "o" / "model.safetensors").exists()


def test_sft_reads_kto_files_as_kto_and_counts_undesirable_rows_before_length(tiny_model_path, shared_data,
                                                                                 tmp_path, capsys):
    """LLaMA-Factory's kto_en_demo.json: `jpo sft` names it as `jpo data validate` does (llama-factory-kto), its
    label read (not 'passed through'), and every undesirable row counted, whatever max_length drops."""
    import json

    from jpo.data.io import read_table

    source = shared_data("llama_factory", "kto_en_demo.json")
    undesirable = sum(row["label"] is False for row in read_table(source).rows)
    assert 0 < undesirable < 300
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}assistant: {% endif %}")
    reports = {}
    for max_length in (64, 100000):
        out = tmp_path / f"o{max_length}"
        assert jpo_main(["sft", "--model_name_or_path", str(tiny_model_path), "--dataset", str(source),
                         "--output_dir", str(out), "--max_steps", "1", "--max_length", str(max_length),
                         "--chat_template_path", str(template), "--per_device_train_batch_size", "2",
                         "--save_strategy", "no", "--report_to", "none"]) == 0
        printed = capsys.readouterr().out
        assert f"{source} (layout llama-factory-kto): 300 sft rows" in printed and "does not read" not in printed
        reports[max_length] = json.loads((out / "data_report.json").read_text())
    assert reports[64]["undesirable"] == reports[100000]["undesirable"] == undesirable
    assert reports[64]["dropped"] > reports[100000]["dropped"]  # length filtering did vary
