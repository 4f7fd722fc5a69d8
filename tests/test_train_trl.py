"""Peer parity with TRL's DPOTrainer and KTOTrainer (TRL is a test-time peer only, from the dev extra).

Both sides use the issue's settings. TRL's defaults that change numbers on CPU are set explicitly on the TRL side:
bf16=False (TRL defaults to bf16 even on CPU; ours only on a GPU that supports it) and gradient_checkpointing=False
(TRL's default; it changes speed, not numbers).

Rows are restricted to those whose chosen and rejected sequences fit in max_length: on longer rows the two
trainers differ by design, since TRL's keep_start truncation cuts the sequence at max_length, EOS included, while
ours keeps EOS (the response is shortened by one more token). Everything else (tokenization, EOS appended, padding,
data order, loss, optimizer) is shared, so the losses must agree to float32 rounding.
"""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.data.load import unpair
from jpo.train import train_preferences
from jpo.train.data import encode_pairs
from jpo.train.tokenize import Encoder

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

SETTINGS = dict(per_device_train_batch_size=8, learning_rate=1e-3, beta=0.1, max_length=256, logging_steps=1,
                seed=0, report_to="none", save_strategy="no", disable_tqdm=True)
TRL_ONLY = dict(bf16=False, gradient_checkpointing=False)


def losses(history) -> list[float]:
    return [h["loss"] for h in history if "loss" in h]


@pytest.fixture(scope="module")
def fitting_rows(tiny_model_path):
    from conftest import shared_path

    from jpo.data import load_preferences

    rows = load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    data, _ = encode_pairs(rows, Encoder(tok, max_length=None))
    fits = [max(len(it["chosen_ids"]), len(it["rejected_ids"])) <= 256 for it in data]
    return [row for row, ok in zip(rows, fits, strict=True) if ok]


@pytest.fixture(scope="module")
def trl_dpo(tiny_model_path, fitting_rows, tmp_path_factory):
    ds = datasets.Dataset.from_list([{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]}
                                     for r in fitting_rows])
    args = trl.DPOConfig(output_dir=str(tmp_path_factory.mktemp("trl_dpo")), max_steps=10, **SETTINGS, **TRL_ONLY)
    trainer = trl.DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), args=args, train_dataset=ds,
                             processing_class=AutoTokenizer.from_pretrained(tiny_model_path))
    trainer.train()
    return trainer


def test_tokenization_matches_trl_dpo(trl_dpo, fitting_rows, tiny_model_path):
    ours, _ = encode_pairs(fitting_rows, Encoder(AutoTokenizer.from_pretrained(tiny_model_path), max_length=256))
    theirs = trl_dpo.train_dataset
    assert len(ours) == len(theirs) == len(fitting_rows)
    for mine, row in zip(ours, theirs, strict=True):
        prompt = row["prompt_ids"]
        assert mine["chosen_ids"] == prompt + row["chosen_ids"]
        assert mine["rejected_ids"] == prompt + row["rejected_ids"]
        assert mine["chosen_prompt_len"] == mine["rejected_prompt_len"] == len(prompt)


def test_dpo_follows_trl_dpotrainer_per_step(trl_dpo, fitting_rows, tiny_model_path, tmp_path):
    ours = train_preferences(dict(SETTINGS, model_name_or_path=str(tiny_model_path), objective="dpo", max_steps=10,
                                  output_dir=str(tmp_path)), fitting_rows)
    a, b = losses(ours.log_history), losses(trl_dpo.state.log_history)
    assert len(a) == len(b) == 10
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-4
    for key in ("rewards/margins", "rewards/accuracies", "logps/chosen"):
        assert [h[key] for h in ours.log_history[:10]] == pytest.approx(
            [h[key] for h in trl_dpo.state.log_history[:10]], abs=1e-3), key


@pytest.mark.parametrize(("loss_type", "objective", "beta"), [("ipo", "dpo", 0.5), ("hinge", "dpo", 0.1),
                                                           ("apo_zero", "dpo", 0.1), ("hinge", "jpo", 0.1)])
def test_loss_types_follow_trl_dpotrainer_per_step(fitting_rows, tiny_model_path, tmp_path, loss_type, objective,
                                                   beta):
    """TRL's loss_type on both sides, 10 steps: the response scope is TRL's; the joint scope (jpo) on TRL-format
    pairs, whose prompts are equal, is the same loss (Lemma D.1). IPO at beta 0.5 keeps its loss of order 1, as the
    other shapes' (at 0.1 it starts at (1 / 0.2)^2 = 25, where the same float32 rounding is 25 times larger)."""
    ds = datasets.Dataset.from_list([{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]}
                                     for r in fitting_rows])
    settings = dict(SETTINGS, beta=beta)
    args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), max_steps=10, loss_type=[loss_type], **settings,
                         **TRL_ONLY)
    theirs = trl.DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), args=args, train_dataset=ds,
                            processing_class=AutoTokenizer.from_pretrained(tiny_model_path))
    theirs.train()
    ours = train_preferences(dict(settings, model_name_or_path=str(tiny_model_path), objective=objective,
                                  loss_type=loss_type, max_steps=10, output_dir=str(tmp_path / "ours")), fitting_rows)
    a, b = losses(ours.log_history), losses(theirs.state.log_history)
    assert len(a) == len(b) == 10
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-4, (a, b)


def test_kto_follows_trl_ktotrainer_first_steps(fitting_rows, tiny_model_path, tmp_path):
    """TRL builds KTO's KL pairs once over the dataset in order and therefore needs sequential sampling; ours pairs
    within each batch as it is drawn. With train_sampling_strategy='sequential' on our side too, both see the same
    batches and the same (prompt i, completion i-1) KL pairs, so the losses can be compared step by step."""
    rows = unpair(fitting_rows)
    ds = datasets.Dataset.from_list(rows)
    args = trl.KTOConfig(output_dir=str(tmp_path / "trl"), max_steps=5, **SETTINGS, **TRL_ONLY)
    theirs = trl.KTOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), args=args, train_dataset=ds,
                            processing_class=AutoTokenizer.from_pretrained(tiny_model_path))
    theirs.train()
    ours = train_preferences(dict(SETTINGS, model_name_or_path=str(tiny_model_path), objective="kto", max_steps=5,
                                  train_sampling_strategy="sequential", output_dir=str(tmp_path / "ours")), rows)
    a, b = losses(ours.log_history), losses(theirs.state.log_history)
    assert len(a) == len(b) == 5
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-3
    assert [h["kl"] for h in ours.log_history[:5]] == pytest.approx([h["kl"] for h in theirs.state.log_history[:5]],
                                                                     abs=1e-3)


# A TRL DPOTrainer script as TRL's documentation writes it (CPU: bf16 and gradient checkpointing set explicitly).
TRL_SCRIPT = """
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

model = AutoModelForCausalLM.from_pretrained(MODEL)
tokenizer = AutoTokenizer.from_pretrained(MODEL)
train_dataset = Dataset.from_list(ROWS)
eval_dataset = Dataset.from_list(EVAL_ROWS)
training_args = DPOConfig(output_dir=OUTPUT_DIR, per_device_train_batch_size=8, learning_rate=1e-3, beta=0.1,
                          max_length=256, logging_steps=1, max_steps=10, seed=0, report_to="none",
                          save_strategy="no", disable_tqdm=True, bf16=False, gradient_checkpointing=False)
trainer = DPOTrainer(model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                     processing_class=tokenizer)
trainer.train()
metrics = trainer.evaluate()
"""


def _run_script(source: str, tiny_model_path, rows, out) -> dict:
    trl_rows = [{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    namespace = {"MODEL": str(tiny_model_path), "ROWS": trl_rows[16:], "EVAL_ROWS": trl_rows[:16],
                 "OUTPUT_DIR": str(out)}
    exec(compile(source, "script.py", "exec"), namespace)  # noqa: S102 - the test's own script
    return namespace


def test_a_trl_script_with_the_names_changed_follows_trl(fitting_rows, tiny_model_path, tmp_path):
    """Only the import and the two class names change; JPO on TRL-format pairs (equal prompts) is DPO (Lemma D.1)
    and, with padding-free packing and prefix sharing on by default, follows TRL step for step; evaluation logs TRL's metrics under eval_."""
    ours_script = TRL_SCRIPT.replace("from trl import DPOConfig, DPOTrainer", "from jpo import JPOConfig, JPOTrainer")
    ours_script = ours_script.replace("DPOConfig(", "JPOConfig(").replace("DPOTrainer(", "JPOTrainer(")
    theirs = _run_script(TRL_SCRIPT, tiny_model_path, fitting_rows, tmp_path / "trl")
    ours = _run_script(ours_script, tiny_model_path, fitting_rows, tmp_path / "jpo")
    assert ours["trainer"].data_collator.share_prefix and ours["trainer"].data_collator.packing == "units"
    a, b = losses(ours["trainer"].state.log_history), losses(theirs["trainer"].state.log_history)
    assert len(a) == len(b) == 10
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-4
    keys = {f"eval_{k}" for k in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                                  "rewards/margins", "logps/chosen", "logps/rejected")}
    assert keys <= set(ours["metrics"]) and keys <= set(theirs["metrics"])
    for key in keys:
        assert ours["metrics"][key] == pytest.approx(theirs["metrics"][key], abs=1e-3), key


def test_every_preference_layout_tokenizes_alike(tiny_model_path):
    """TRL standard, implicit prompt and joint rows of the same pair give the same token ids."""
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    encoder = Encoder(tok, max_length=None)
    prompt, chosen, rejected = "Once upon a time\n", "Yes, there was a cat.", "No dog."
    layouts = [{"prompt": prompt, "chosen": chosen, "rejected": rejected},
               {"chosen": prompt + chosen, "rejected": prompt + rejected},
               {"prompt_chosen": prompt, "chosen": chosen, "prompt_rejected": prompt, "rejected": rejected}]
    encoded = [encode_pairs(datasets.Dataset.from_list([row]), encoder)[0][0] for row in layouts]
    assert encoded[0] == encoded[1] == encoded[2] and encoded[0]["same_prompt"]
    streamed, report = encode_pairs(datasets.Dataset.from_list([layouts[0]]).to_iterable_dataset(), encoder)
    assert list(streamed) == [encoded[0]] and report.rows == 1


def test_every_dpoconfig_field_has_trls_default(tmp_path):
    """Every field of TRL's DPOConfig is a JPOConfig field with the same value by default, except the documented
    ones: bf16 (set here, TRL's default needs a GPU on this machine), gradient checkpointing (off; it changes speed,
    not numbers), remove_unused_columns (the trainer's own columns must reach the collator) and padding_free (unset:
    packing on where the attention implementation takes it; it changes speed, not numbers)."""
    import dataclasses

    from jpo import JPOConfig

    theirs = trl.DPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False)
    ours = JPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False)
    names = {f.name for f in dataclasses.fields(JPOConfig)}
    expected = {"gradient_checkpointing", "activation_checkpointing", "remove_unused_columns", "padding_free"}
    differ = set()
    for f in dataclasses.fields(trl.DPOConfig):
        assert f.name in names, f.name
        if getattr(theirs, f.name) != getattr(ours, f.name):
            differ.add(f.name)
    assert differ <= expected, differ - expected

