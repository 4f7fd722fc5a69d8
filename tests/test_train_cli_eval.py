"""`jpo train --eval_dataset`: evaluation data from the command line, and one line where evaluation is scheduled
without it or a model path is not there (an outside tester's reports)."""

from __future__ import annotations

import json

import pytest

from jpo.cli import main as jpo_main


@pytest.fixture
def files(shared_data, tmp_path):
    rows = shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(rows[:12]) + "\n")
    (tmp_path / "eval.jsonl").write_text("\n".join(rows[12:18]) + "\n")
    return tmp_path


def train_args(model, files, *extra):
    return ["train", "--model_name_or_path", str(model), "--dataset", str(files / "train.jsonl"), "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--max_length", "64", "--report_to", "none", "--logging_steps", "1",
            "--output_dir", str(files / "out"), "--use_cpu", "true", *extra]


def test_eval_dataset_is_evaluated_at_the_eval_strategy(tiny_model_path, files):
    jpo_main(train_args(tiny_model_path, files, "--eval_dataset", str(files / "eval.jsonl"), "--eval_strategy", "steps",
                        "--eval_steps", "1"))
    history = json.loads((files / "out" / "trainer_state.json").read_text())["log_history"]
    evals = [h for h in history if "eval_loss" in h]
    assert len(evals) == 2 and all("eval_rewards/accuracies" in h for h in evals)


def test_eval_strategy_without_eval_data_is_one_line(tiny_model_path, files, capsys):
    assert jpo_main(train_args(tiny_model_path, files, "--eval_strategy", "steps", "--eval_steps", "1")) == 2
    assert capsys.readouterr().err == ("jpo train: error: --eval_strategy steps needs evaluation data: pass "
                                       "--eval_dataset PATH [PATH ...] (jpo train), or eval_dataset= in Python\n")


def test_a_model_path_that_is_not_there_is_said_so(files, capsys):
    assert jpo_main(train_args(files / "no-such-model", files)) == 2
    assert capsys.readouterr().err == (f"jpo train: error: cannot load a tokenizer from '{files / 'no-such-model'}': "
                                       "no such file or folder\n")
