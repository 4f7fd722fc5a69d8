"""End-to-end preference training on stories260K and the JPO authors' data (10 steps each, seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import perturbed, ulps
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.cli import main as jpo_main
from jpo.errors import JpoError
from jpo.train import train_preferences
from jpo.train.data import PairCollator, encode_pairs
from jpo.train.logprobs import batch_logps
from jpo.train.losses import OBJECTIVES, preference_loss
from jpo.train.tokenize import Encoder

# On the CPU wherever the tests run: the exactness checks below compare runs to the bit, and CUDA's atomic
# additions sum in no fixed order.
ISSUE_SETTINGS = dict(per_device_train_batch_size=8, learning_rate=1e-3, beta=0.1, max_length=256, logging_steps=1,
                      seed=0, max_steps=10, report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True)
LN2_FLOAT32 = pytest.approx(math.log(2), rel=ulps(1))  # ln 2 rounded to float32
# The remaining tests check mechanisms, not the issue's numbers: shorter sequences and fewer steps keep them fast.
QUICK = dict(ISSUE_SETTINGS, max_length=128, max_steps=3)


def losses(result) -> list[float]:
    return [h["loss"] for h in result.log_history if "loss" in h]


@pytest.fixture(scope="module")
def authors_rows(tiny_model_path):
    from conftest import shared_path

    from jpo.data import load_preferences

    return load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))


@pytest.fixture(scope="module")
def runs(tiny_model_path, authors_rows, tmp_path_factory):
    """The issue's settings, once per objective, shared by the tests below."""
    out = {}
    for name, extra in {"jpo": {}, "dpo": {}, "jpo_full": {"skip_equal_prompt_terms": False}}.items():
        config = dict(ISSUE_SETTINGS, model_name_or_path=str(tiny_model_path), objective=name.split("_")[0],
                      output_dir=str(tmp_path_factory.mktemp(name)), **extra)
        out[name] = train_preferences(config, authors_rows)
    return out


def test_lemma_d1_jpo_equals_dpo_on_equal_prompts(runs):
    """To the bit over 10 steps, prompt terms skipped or counted: counted, the prompt of an equal-prompt pair is
    computed once for both sides, so its two terms are one number (test_lemma_d1.py checks every option)."""
    dpo = losses(runs["dpo"])
    assert len(dpo) == 10
    assert losses(runs["jpo"]) == dpo
    assert losses(runs["jpo_full"]) == dpo
    assert all(h["rewards/margins_prompt"] == 0.0 for run in ("jpo", "jpo_full")
               for h in runs[run].log_history if "loss" in h)


def test_first_step_loss_is_ln2_when_policy_is_reference(runs):
    for run in runs.values():
        assert losses(run)[0] == LN2_FLOAT32
        assert run.log_history[0]["rewards/margins"] == 0.0


def test_metrics_use_trl_names_at_every_step(runs):
    keys = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
            "logps/rejected"}
    steps = [h for h in runs["jpo"].log_history if "loss" in h]
    assert len(steps) == 10 and all(keys | {"rewards/margins_prompt", "rewards/margins_response"} <= set(h)
                                    for h in steps)
    assert all(keys <= set(h) for h in runs["dpo"].log_history if "loss" in h)
    assert runs["dpo"].data.rows == 363 and runs["dpo"].data.dropped == 0


def test_jpo_minus_dpo_margin_is_the_prompt_log_ratio(tiny_model_path, authors_rows):
    """Different prompts: the extra margin of JPO is beta * (prompt log-ratio chosen - rejected), where the prompt
    log-probs are computed separately, from prompt-only sequences and a full log-softmax."""
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    policy = perturbed(tiny_model_path)
    rows = [{"prompt_chosen": a["prompt_chosen"], "chosen": a["chosen"], "prompt_rejected": b["prompt_rejected"],
             "rejected": b["rejected"]} for a, b in zip(authors_rows[:6], authors_rows[1:7], strict=True)]
    data, _ = encode_pairs(rows, Encoder(tok, max_length=256))
    margins = {}
    for name in ("jpo", "dpo"):
        objective = OBJECTIVES[name]
        batch = PairCollator(tok.pad_token_id, count_prompt=objective.scope == "joint")(list(data))
        with torch.no_grad():
            p, r = (batch_logps(m, m, batch, 2 * len(data)) for m in (policy, ref))
        from jpo.train.trainer import _split

        (pc, pr), (rc, rr) = _split(p), _split(r)
        out = preference_loss(pc, pr, rc, rr, objective, beta=0.1)
        margins[name] = out.chosen_rewards - out.rejected_rewards

    def prompt_logp(model, ids):
        x = torch.tensor([ids])
        with torch.no_grad():
            logp = model(input_ids=x).logits[0, :-1].log_softmax(-1)
        return logp.gather(-1, x[0, 1:, None]).sum().item()

    expected, scale = [], 0.0
    for item in data:
        terms = []
        for side in ("chosen", "rejected"):
            ids = item[f"{side}_ids"][: item[f"{side}_prompt_len"]]
            logps = prompt_logp(policy, ids), prompt_logp(ref, ids)
            scale = max(scale, *map(abs, logps))
            terms.append(logps[0] - logps[1])
        expected.append(0.1 * (terms[0] - terms[1]))
    # Batched vs one-sequence forwards: beta times four float32 sums of log-probs, each rounded differently.
    assert torch.allclose(margins["jpo"] - margins["dpo"], torch.tensor(expected), rtol=0,
                          atol=0.1 * 4 * ulps(64, scale))
    assert (margins["jpo"] - margins["dpo"]).abs().max() > 1e-3  # the prompts do contribute here


def test_precomputed_reference_equals_live(tiny_model_path, authors_rows, tmp_path):
    rows = authors_rows[:48]
    base = dict(QUICK, model_name_or_path=str(tiny_model_path), objective="jpo", skip_equal_prompt_terms=False)
    live = train_preferences(dict(base, output_dir=str(tmp_path / "live")), rows)
    config = dict(base, output_dir=str(tmp_path / "pre"), precompute_ref_log_probs=True,
                  ref_cache_dir=str(tmp_path / "cache"))
    first = train_preferences(config, rows)
    # The precomputed reference runs in other batches (longest first), so its log-probs round differently; that
    # rounding, compounded over 3 steps, is the only difference.
    assert losses(first) == pytest.approx(losses(live), rel=ulps(128))
    cached = list((tmp_path / "cache").glob("*.pt"))
    assert len(cached) == 1
    again = train_preferences(dict(config, output_dir=str(tmp_path / "again"), max_steps=1), rows)
    assert list((tmp_path / "cache").glob("*.pt")) == cached  # same model + data: the cache is reused
    assert losses(again)[0] == losses(first)[0]  # the same cached numbers
    train_preferences(dict(config, output_dir=str(tmp_path / "other"), max_steps=1), rows[:40])
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # other data: a new entry, never a stale one


def test_resume_from_checkpoint_continues_the_same_trajectory(tiny_model_path, authors_rows, tmp_path):
    config = dict(QUICK, model_name_or_path=str(tiny_model_path), objective="dpo", max_steps=4,
                  save_strategy="steps", save_steps=2, output_dir=str(tmp_path / "full"))
    full = losses(train_preferences(config, authors_rows))
    resumed = train_preferences(config, authors_rows, resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))
    tail = [h["loss"] for h in resumed.log_history if "loss" in h and h["step"] > 2]
    assert len(tail) == 2 and tail == pytest.approx(full[2:], rel=ulps(128))


def test_lora_changes_only_adapter_weights_and_saves_an_adapter(tiny_model_path, authors_rows, tmp_path):
    from peft import PeftModel

    from jpo.modeling import load_tokenizer
    from jpo.train.config import PreferenceConfig
    from jpo.train.policy import load_policy

    config = PreferenceConfig(**dict(QUICK, model_name_or_path=str(tiny_model_path), objective="jpo",
                                     max_steps=2, use_peft=True, lora_r=4, lora_alpha=8,
                                     output_dir=str(tmp_path / "lora")))
    model, tok = load_policy(config), load_tokenizer(config.model_name_or_path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_preferences(config, authors_rows[:32], model=model, tokenizer=tok)
    assert losses(result)[0] == LN2_FLOAT32  # reference = base with adapters disabled
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_A" in n for n in changed)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    loaded = PeftModel.from_pretrained(base, tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter_config.json").exists() and loaded is not None


def test_loss_falls_and_accuracy_rises_on_a_separable_set(tiny_model_path, tmp_path):
    prompts = ["Tom had a ball.", "The sun was hot.", "Lily saw a cat.", "A dog ran fast.", "Mom made soup.",
               "The tree was big.", "Ben had a red car.", "It was a rainy day."]
    rows = [{"prompt_chosen": p, "chosen": " They were happy and they played all day.", "prompt_rejected": p,
             "rejected": " Zzz qx vv kk."} for p in prompts * 4]
    config = dict(QUICK, model_name_or_path=str(tiny_model_path), objective="jpo", max_steps=12,
                  learning_rate=3e-3, output_dir=str(tmp_path / "sep"))
    steps = [h for h in train_preferences(config, rows).log_history if "loss" in h]
    first, last = steps[:3], steps[-3:]
    mean = lambda hs, k: sum(h[k] for h in hs) / len(hs)  # noqa: E731
    assert mean(last, "loss") < 0.5 * mean(first, "loss")
    assert mean(last, "rewards/accuracies") == 1.0 > mean(first, "rewards/accuracies")


def test_ipo_and_jipo_agree_on_equal_prompts(tiny_model_path, authors_rows, tmp_path):
    base = dict(QUICK, model_name_or_path=str(tiny_model_path), max_steps=2)
    ipo = losses(train_preferences(dict(base, objective="ipo", output_dir=str(tmp_path / "i")), authors_rows[:32]))
    jipo = losses(train_preferences(dict(base, objective="jpo", loss_type="ipo", output_dir=str(tmp_path / "j"),
                                         skip_equal_prompt_terms=False), authors_rows[:32]))
    assert jipo == ipo  # to the bit: equal prompts' terms are one number on both sides (was 3.8e-6 off elsewhere)
    assert ipo[0] == (1 / (2 * 0.1)) ** 2  # (0 - 1/(2 beta))^2 = 25 at the start, exactly


def test_cli_train_with_yaml_config_saves_history_and_model(tiny_model_path, shared_data, tmp_path):
    data = shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl")
    (tmp_path / "c.yaml").write_text(f"model_name_or_path: {tiny_model_path}\nobjective: dpo\nmax_steps: 50\n"
                                     f"max_length: 128\nper_device_train_batch_size: 4\nlogging_steps: 1\n")
    out = tmp_path / "out"
    code = jpo_main(["train", "--config", str(tmp_path / "c.yaml"), "--dataset", str(data), str(data),
                     "--objective", "jpo", "--max_steps", "2", "--output_dir", str(out), "--save_strategy", "no",
                     "--learning_rate", "1e-3"])
    assert code == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2]
    assert "rewards/margins_prompt" in state["log_history"][0]  # --objective jpo overrode the file's dpo
    report = json.loads((out / "data_report.json").read_text())
    assert report["rows"] == 2 * 363  # both --dataset files, concatenated
    assert AutoModelForCausalLM.from_pretrained(out) is not None and AutoTokenizer.from_pretrained(out).pad_token


def test_cli_errors_are_one_line(tmp_path, capsys, tiny_model_path):
    assert jpo_main(["train", "--output_dir", str(tmp_path), "--model_name_or_path", str(tiny_model_path)]) == 2
    assert "--dataset" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("no_such_option: 1\n")
    assert jpo_main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "no_such_option" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "text", "expected"), [
    ("train", "learning_rate: fast\n", "x.yaml: learning_rate: expected a number, got 'fast'"),
    ("sft", "max_length: twenty\n", "x.yaml: max_length: expected an integer or nothing (null), got 'twenty'"),
    ("train", "use_peft: maybe\n", "x.yaml: use_peft: expected true or false, got 'maybe'"),
    ("train", "lr_scheduler_type: cosinus\n", "x.yaml: lr_scheduler_type: expected one of linear, cosine"),
    ("sft", "dataset: [a.jsonl, 3]\n", "x.yaml: dataset: expected a list of texts, got ['a.jsonl', 3]"),
    ("train", "beta: -1\n", "--beta must be positive, got -1"),
    ("train", "learning_rate: -1\n", "--learning_rate must be non-negative, got -1"),
])
def test_cli_config_file_values_are_typed_before_anything_loads(command, text, expected, tmp_path, capsys):
    """Issue 23 item 7: a `--config` file's values are typed as a recipe's are, one line naming the file and the
    key; the model and data named do not exist, so the error comes before either is read."""
    (tmp_path / "x.yaml").write_text(text)
    argv = [command, "--config", str(tmp_path / "x.yaml"), "--dataset", str(tmp_path / "none.jsonl"),
            "--model_name_or_path", str(tmp_path / "no-model"), "--output_dir", str(tmp_path / "out")]
    assert jpo_main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"jpo {command}: error: ") and error.count("\n") == 1, error
    assert expected.replace("x.yaml", str(tmp_path / "x.yaml")) in error


@pytest.mark.parametrize(("command", "flag", "value", "expected"), [
    ("train", "--learning_rate", "-1", "--learning_rate must be non-negative, got -1.0"),
    ("sft", "--learning-rate", "-0.5", "--learning_rate must be non-negative, got -0.5"),
    ("sft", "--warmup_steps", "-3", "--warmup_steps must be non-negative, got -3.0"),
    ("train", "--max_steps", "0", "--max_steps must be positive, or -1 to train for --num_train_epochs, got 0"),
    ("train", "--max_length", "0", "--max_length must be at least 1 (or unset), got 0"),
    ("sft", "--per_device_train_batch_size", "0", "--per_device_train_batch_size must be at least 1, got 0"),
    ("train", "--gradient_accumulation_steps", "-2", "--gradient_accumulation_steps must be at least 1, got -2"),
    ("train", "--num_train_epochs", "0", "--num_train_epochs must be positive, got 0.0"),
    ("train", "--adam_beta2", "1", "--adam_beta2 must be in [0, 1), got 1.0"),
    ("sft", "--lora_dropout", "1.5", "--lora_dropout must be in [0, 1), got 1.5"),
])
def test_cli_values_out_of_range_are_one_line(command, flag, value, expected, tmp_path, capsys):
    """A value torch's optimizer or the tokenizer would refuse with a traceback once training starts is refused
    when the config is built, naming the flag."""
    argv = [command, flag, value, "--dataset", str(tmp_path / "none.jsonl"), "--model_name_or_path",
            str(tmp_path / "no-model"), "--output_dir", str(tmp_path / "out")]
    assert jpo_main(argv) == 2
    assert capsys.readouterr().err == f"jpo {command}: error: {expected}\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_load_in_4bit_without_gpu_is_a_clear_error(tiny_model_path, tmp_path):
    config = dict(QUICK, model_name_or_path=str(tiny_model_path), load_in_4bit=True,
                  output_dir=str(tmp_path))
    with pytest.raises(JpoError, match="4bit"):
        train_preferences(config, [{"prompt_chosen": "a", "chosen": "b", "prompt_rejected": "a", "rejected": "c"}])


def test_kto_logs_the_clamped_kl_estimate_of_each_step(tiny_model_path, authors_rows, tmp_path, monkeypatch):
    """With the model as its own reference and a high learning rate, KTO's estimate on mismatched pairs goes
    strongly negative (those completions lose probability) and is logged as 0, as TRL logs it. A noised reference
    makes it positive, so this checks that the logged value is the clamped estimate of that step, not a constant."""
    import jpo.train.trainer as trainer_module

    raw, estimate_kl = [], trainer_module.kto_kl

    def spy(policy_kl_logps, ref_kl_logps):
        estimate = estimate_kl(policy_kl_logps, ref_kl_logps)
        raw.append(estimate.item())
        return estimate

    monkeypatch.setattr(trainer_module, "kto_kl", spy)
    ref = perturbed(tiny_model_path, scale=0.05)
    config = dict(QUICK, model_name_or_path=str(tiny_model_path), objective="kto", output_dir=str(tmp_path))
    result = train_preferences(config, authors_rows[:48], ref_model=ref)
    logged = [h["kl"] for h in result.log_history if "kl" in h]
    assert len(logged) == len(raw) == QUICK["max_steps"]
    assert logged == [max(r, 0.0) for r in raw]  # the clamped estimate itself
    assert max(logged) > 0


def test_trainer_evaluates_with_precomputed_reference_columns(tiny_model_path, authors_rows, tmp_path):
    """Raw TRL-format datasets in, reference log-probs as dataset columns, evaluation metrics under eval_."""
    import datasets

    from jpo import JPOConfig, JPOTrainer

    trl_rows = [{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]}
                for r in authors_rows[:24]]
    args = JPOConfig(**dict(QUICK, max_steps=1, output_dir=str(tmp_path), precompute_ref_log_probs=True,
                            ref_cache_dir=str(tmp_path / "cache")))
    trainer = JPOTrainer(str(tiny_model_path), args=args, train_dataset=datasets.Dataset.from_list(trl_rows[8:]),
                         eval_dataset=datasets.Dataset.from_list(trl_rows[:8]))
    assert {"ref_chosen_response", "ref_rejected_response"} <= set(trainer.train_dataset.column_names)
    assert {"ref_chosen_response", "ref_rejected_response"} <= set(trainer.eval_dataset.column_names)
    assert trainer.ref_model is None
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == LN2_FLOAT32  # untrained policy = reference
    assert metrics["eval_rewards/margins"] == 0.0 and "eval_logps/chosen" in metrics
