"""JPOTrainer as a drop-in for TRL's DPOTrainer: TRL's options on stories260K, each checked for what it does.

(TRL's own test file for DPOTrainer runs against JPOTrainer in ../shared/peer-tests/trl-dpo; these are the
project's guards for the same features, with numbers.)
"""

from __future__ import annotations

import json
import math

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo import JPOConfig, JPOTrainer
from jpo.errors import JpoError
from jpo.train.logprobs import response_tail

BASE = dict(per_device_train_batch_size=4, learning_rate=1e-2, beta=0.1, max_length=96, logging_steps=1, seed=0,
            report_to="none", save_strategy="no", disable_tqdm=True)


@pytest.fixture(scope="module")
def rows(tiny_model_path):
    from conftest import shared_path

    from jpo.data import load_preferences

    data = load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))
    return [{"prompt": r["prompt_chosen"][-120:], "chosen": r["chosen"][:80], "rejected": r["rejected"][:80]}
            for r in data[:12]]


def _args(tmp_path, **kw) -> JPOConfig:
    return JPOConfig(**{**BASE, "output_dir": str(tmp_path), **kw})


def _model(path, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


# --- configuration ---------------------------------------------------------------------------------------------------

def test_bad_options_fail_at_construction_with_one_line_value_errors(tmp_path):
    cases = [({"objective": "simpo"}, "--objective must be one of"),
             ({"loss_type": "simpo"}, "unknown --loss_type simpo"),
             ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}, "one weight per loss type"),
             ({"loss_type": "exo_pair"}, "needs --label_smoothing"),
             ({"loss_type": "robust", "label_smoothing": 2.0}, r"--label_smoothing must be in \[0, 1\), got 2"),
             ({"loss_type": "aot", "label_smoothing": -0.1}, r"--label_smoothing must be in \[0, 1\)"),
             ({"label_smoothing": 0.1}, "has no effect on --loss_type sigmoid"),
             ({"loss_type": "bco_pair", "f_divergence_type": "forward_kl"}, "defined only for the loss types"),
             ({"loss_type": "aot", "use_weighting": True}, "WPO"),
             ({"objective": "kto", "loss_type": "hinge"}, "--objective kto takes unpaired rows"),
             ({"sync_ref_model": True, "precompute_ref_log_probs": True}, "cannot be precomputed")]
    for options, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            _args(tmp_path, **options)
        assert isinstance(caught.value, JpoError) and "\n" not in str(caught.value), options


def test_trl_defaults_and_list_fields(tmp_path):
    args = _args(tmp_path)
    assert args.loss_type == ["sigmoid"] and args.label_smoothing == 0.0 and args.f_divergence_type == "reverse_kl"
    assert args.ref_model_sync_steps == 512 and args.ref_model_mixup_alpha == 0.6 and args.pad_to_multiple_of is None
    mpo = _args(tmp_path, loss_type="sigmoid,bco_pair,sft", loss_weights=[0.8, 0.2, 1.0], rpo_alpha=0.5)
    assert mpo.weighted_loss_types == [("sigmoid", 0.8), ("bco_pair", 0.2), ("sft", 1.0), ("sft", 0.5)]
    assert mpo.resolved_objective.name == "jpo+joint-bco_pair+joint-sft"
    assert _args(tmp_path, objective="dpo", loss_type="hinge").resolved_objective.name == "response-hinge"
    assert _args(tmp_path, pad_to_multiple_of="auto").pad_to_multiple_of is None


def test_a_model_given_by_name_loads_in_float32_unless_told(tiny_model_path, rows, tmp_path):
    bf16_copy = tmp_path / "bf16"
    _model(tiny_model_path, torch.bfloat16).save_pretrained(bf16_copy)
    AutoTokenizer.from_pretrained(tiny_model_path).save_pretrained(bf16_copy)
    trainer = JPOTrainer(str(bf16_copy), args=_args(tmp_path / "a"), train_dataset=rows)
    assert trainer.model.dtype == torch.float32
    told = JPOTrainer(str(bf16_copy), args=_args(tmp_path / "b", model_init_kwargs={"dtype": "bfloat16"}),
                      train_dataset=rows)
    assert told.model.dtype == torch.bfloat16


def test_pad_token_and_padding_free_are_accepted(tiny_model_path, rows, tmp_path):
    """TRL's flags: the pad token is set; padding_free=True packs (as jpo does by default under sdpa)."""
    trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path, pad_token="<unk>", padding_free=True),
                         train_dataset=rows)
    assert trainer.processing_class.pad_token == "<unk>"
    assert trainer.data_collator.pad_token_id == trainer.processing_class.convert_tokens_to_ids("<unk>")
    assert trainer.data_collator.packing == "units"


# --- gradient accumulation (issue 23, item 5) ------------------------------------------------------------------------

def _one_step_update(path, rows, tmp_path, **kw) -> dict[str, torch.Tensor]:
    model = _model(path).double()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = _args(tmp_path, optim="sgd", lr_scheduler_type="constant", max_steps=1, objective="dpo", **kw)
    trainer = JPOTrainer(model, args=args, train_dataset=rows, processing_class=AutoTokenizer.from_pretrained(path))
    trainer.train()
    return {n: p.detach() - before[n] for n, p in trainer.model.named_parameters()}


def test_accumulated_update_equals_the_full_batch_update(tiny_model_path, rows, tmp_path):
    """3 pairs as micro-batches of 2 and 1 (gradient_accumulation_steps 2) give the update of one batch of 3: each
    row weighs 1/3 (before: the lone row weighed 1/2, the update 26% off). float64, so only summation order differs."""
    three = rows[:3]
    full = _one_step_update(tiny_model_path, three, tmp_path / "full", per_device_train_batch_size=3)
    accumulated = _one_step_update(tiny_model_path, three, tmp_path / "acc", per_device_train_batch_size=2,
                                   gradient_accumulation_steps=2)
    norm = math.sqrt(sum(float((u * u).sum()) for u in full.values()))
    assert norm > 0
    diff = math.sqrt(sum(float(((full[n] - accumulated[n]) ** 2).sum()) for n in full))
    assert diff <= 1e-12 * norm


# --- loss shapes in training -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss_type", ["hinge", "bco_pair", "apo_zero", "discopop", "sigmoid_norm"])
def test_joint_shapes_equal_response_shapes_on_equal_prompts_in_training(tiny_model_path, rows, tmp_path, loss_type):
    """Lemma D.1 through the whole trainer: JPO with TRL's loss type on TRL-format pairs is TRL's loss type."""
    runs = {}
    for objective in ("jpo", "dpo"):
        trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path / objective, objective=objective,
                                                              loss_type=loss_type, max_steps=2), train_dataset=rows)
        trainer.train()
        runs[objective] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert runs["jpo"] == runs["dpo"] and len(runs["jpo"]) == 2


def test_mpo_list_of_losses_is_the_weighted_sum(tiny_model_path, rows, tmp_path):
    losses = {}
    for name, kw in {"sigmoid": {"loss_type": "sigmoid"}, "sft": {"loss_type": "sft"},
                     "mix": {"loss_type": ["sigmoid", "sft"], "loss_weights": [0.75, 0.5]},
                     "rpo": {"loss_type": "sigmoid", "rpo_alpha": 0.5}}.items():
        trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path / name, max_steps=1, **kw),
                             train_dataset=rows)
        trainer.train()
        losses[name] = trainer.state.log_history[0]["loss"]
    assert losses["mix"] == pytest.approx(0.75 * losses["sigmoid"] + 0.5 * losses["sft"], rel=1e-5)
    assert losses["rpo"] == pytest.approx(losses["sigmoid"] + 0.5 * losses["sft"], rel=1e-5)


def test_ld_alpha_tail_is_beyond_the_shorter_response():
    # sequences 0,1 chosen; 2,3 rejected: pair 0 has 3 vs 1 response tokens, pair 1 has 2 vs 4
    seq = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    assert response_tail(seq, 4).tolist() == [False, True, True, False, False, False, False, False, True, True]


def test_wpo_and_ld_alpha_change_the_loss_and_train(tiny_model_path, rows, tmp_path):
    first = {}
    for name, kw in {"plain": {}, "wpo": {"use_weighting": True}, "ld": {"ld_alpha": 0.5}}.items():
        trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path / name, max_steps=2, **kw), train_dataset=rows)
        trainer.train()
        first[name] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert first["plain"][0] == pytest.approx(math.log(2), abs=1e-6) == first["ld"][0]  # policy = reference
    assert first["wpo"][0] < first["plain"][0] / 10  # WPO weights are products of probabilities: far below 1
    assert first["ld"][1] != first["plain"][1]


# --- reference model: TR-DPO -----------------------------------------------------------------------------------------

def test_sync_ref_model_mixes_the_policy_into_the_reference(tiny_model_path, rows, tmp_path):
    args = _args(tmp_path, max_steps=2, sync_ref_model=True, ref_model_sync_steps=2, ref_model_mixup_alpha=0.25)
    trainer = JPOTrainer(str(tiny_model_path), args=args, train_dataset=rows)
    before = {n: p.detach().clone() for n, p in trainer.ref_model.named_parameters()}
    trainer.train()
    policy = dict(trainer.model.named_parameters())
    for name, ref in trainer.ref_model.named_parameters():
        assert torch.allclose(ref, 0.75 * before[name] + 0.25 * policy[name], atol=1e-7), name
    assert any(not torch.equal(ref, before[n]) for n, ref in trainer.ref_model.named_parameters())


# --- evaluation --------------------------------------------------------------------------------------------------------

def test_eval_dict_compute_metrics_and_precomputed_reference(tiny_model_path, rows, tmp_path):
    """A dict of eval sets: metrics per set under eval_<name>_; compute_metrics gets TRL's EvalPrediction (logits of
    the [chosen; rejected] rows, input ids as labels); a set passed to evaluate() gets reference log-probs too."""
    seen = []

    def metrics(prediction):
        seen.append((prediction.predictions.shape, prediction.label_ids.shape))
        return {"rows": float(prediction.label_ids.shape[0])}

    ds = datasets.Dataset.from_list(rows)
    args = _args(tmp_path, max_steps=1, precompute_ref_log_probs=True, ref_cache_dir=str(tmp_path / "cache"),
                 per_device_eval_batch_size=4)
    trainer = JPOTrainer(str(tiny_model_path), args=args, train_dataset=ds,
                         eval_dataset=datasets.DatasetDict({"a": ds.select(range(4)), "b": ds.select(range(4, 10))}),
                         compute_metrics=metrics)
    assert all("ref_chosen_response" in d.column_names for d in trainer.eval_dataset.values())
    before = trainer.evaluate()
    assert before["eval_a_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert before["eval_a_rows"] == 2 * len(trainer.eval_dataset["a"])  # two rows (chosen, rejected) per pair
    assert seen[0][0][0] == seen[0][1][0] == 8 and seen[0][0][2] == len(trainer.processing_class)
    fresh = trainer.evaluate(eval_dataset={"c": ds.select(range(2))})
    assert fresh["eval_c_loss"] == pytest.approx(math.log(2), abs=1e-6)
    trainer.train()
    assert trainer.evaluate()["eval_b_loss"] != before["eval_b_loss"]
    with pytest.raises(ValueError, match="Cannot compute reference log-probs for a dataset passed to"):
        trainer.evaluate(eval_dataset=ds.select(range(2)))
    with pytest.raises(ValueError, match="not supported with IterableDataset"):
        JPOTrainer(str(tiny_model_path), args=args, train_dataset=ds, eval_dataset={"s": ds.to_iterable_dataset()})


# --- data: padding, completion length, conversations -------------------------------------------------------------------

def test_pad_to_multiple_of_and_offloading_change_no_loss(tiny_model_path, rows, tmp_path):
    out = {}
    for name, kw in {"plain": {}, "padded": {"pad_to_multiple_of": 64}, "offload": {"activation_offloading": True},
                     "unshared": {"pad_to_multiple_of": 64, "share_prefix": False}}.items():
        trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path / name, max_steps=3, learning_rate=1e-3, **kw),
                             train_dataset=rows)
        if name != "plain" and name != "offload":
            batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
            assert batch["input_ids"].shape[1] % 64 == 0
        trainer.train()
        out[name] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    for name in ("padded", "offload", "unshared"):
        assert out[name] == pytest.approx(out["plain"], rel=1e-5), name  # float rounding of other matmul shapes


def test_max_completion_length_keeps_eos(tiny_model_path, rows, tmp_path):
    trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path, max_completion_length=5), train_dataset=rows)
    eos = trainer.processing_class.eos_token_id
    for row in trainer.train_dataset:
        for side in ("chosen", "rejected"):
            ids = row[f"{side}_ids"]
            assert len(ids) - row[f"{side}_prompt_len"] <= 5 and ids[-1] == eos
    assert trainer.data_report.truncated > 0


TEMPLATE = ("{% if tools %}[{{ tools[0]['function']['name'] }}]\n{% endif %}"
            "{% for m in messages %}{{ ('USER' if loud else m['role']) if m['role'] == 'user' else m['role'] }}: "
            "{% if m.get('tool_calls') %}{{ m['tool_calls'][0]['function']['name'] }}(){% else %}{{ m['content'] }}"
            "{% endif %}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")


def test_tool_calls_and_per_row_chat_template_kwargs(tiny_model_path, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text(TEMPLATE)
    tool = {"type": "function", "function": {"name": "timer", "description": "a timer",
                                             "parameters": {"type": "object", "properties": {}}}}
    call = {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "timer", "arguments": {}}}]}
    row = {"prompt": [{"role": "user", "content": "Set a timer."}],
           "chosen": [call, {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "Done."}],
           "rejected": [{"role": "assistant", "content": "No."}]}
    data = datasets.Dataset.from_list([
        {**row, "tools": json.dumps([tool]), "chat_template_kwargs": {"loud": False}},
        {**row, "tools": json.dumps([tool]), "chat_template_kwargs": {"loud": True}}])
    trainer = JPOTrainer(str(tiny_model_path), args=_args(tmp_path / "run", max_steps=1,
                                                          chat_template_path=str(template)), train_dataset=data)
    tok = trainer.processing_class
    assert tok.chat_template == TEMPLATE
    quiet, loud = (tok.decode(r["prompt_ids"]) for r in trainer.train_dataset)
    assert "user: Set a timer." in quiet and "USER: Set a timer." in loud and "[timer]" in quiet
    assert "timer()" in tok.decode(trainer.train_dataset[0]["chosen_ids"])
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] > 0


def test_jpo_train_keeps_tools_and_chat_template_kwargs():
    from jpo.train.api import _rows

    row = {"prompt_chosen": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
           "prompt_rejected": [{"role": "user", "content": "hi"}], "rejected": [{"role": "assistant", "content": "b"}],
           "tools": [{"type": "function", "function": {"name": "x"}}], "chat_template_kwargs": {"loud": True},
           "id": "r1"}
    kept = _rows(None, [row], "preference")[0][0]
    assert kept["tools"] == row["tools"] and kept["chat_template_kwargs"] == {"loud": True} and "id" not in kept


# --- Mixture of Experts --------------------------------------------------------------------------------------------------

def _tiny_moe(tiny_model_path):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    torch.manual_seed(0)
    vocab = len(AutoTokenizer.from_pretrained(tiny_model_path))
    config = Qwen3MoeConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, moe_intermediate_size=8,
                            num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                            num_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.01)
    return Qwen3MoeForCausalLM(config)


def test_moe_router_loss_is_added_and_logged(tiny_model_path, rows, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    logged = {}
    for name, coef in {"default": None, "off": 0.0}.items():
        trainer = JPOTrainer(_tiny_moe(tiny_model_path), args=_args(tmp_path / name, max_steps=1,
                                                                     router_aux_loss_coef=coef),
                             train_dataset=rows, processing_class=tok)
        trainer.train()
        logged[name] = trainer.state.log_history[0]
    assert logged["default"]["aux_loss"] > 0 and "aux_loss" not in logged["off"]
    assert logged["default"]["loss"] == pytest.approx(logged["off"]["loss"] + 0.01 * logged["default"]["aux_loss"],
                                                      rel=1e-5)
    with pytest.raises(ValueError, match="not a Mixture-of-Experts"):
        JPOTrainer(str(tiny_model_path), args=_args(tmp_path / "dense", router_aux_loss_coef=0.1), train_dataset=rows)


# --- the CLI: TRL's flag names --------------------------------------------------------------------------------------

def test_chat_template_path_for_sft_train_and_generate(tiny_model_path, tmp_path, capsys):
    """A base model without a chat template trains on conversational data with --chat_template_path (jpo sft,
    jpo train), keeps the template in the saved tokenizer, and jpo generate --chat sends plain prompts through it;
    TRL's list and loss flags parse (--loss_type sigmoid bco_pair --loss_weights ...)."""
    from jpo.cli import main as jpo_main

    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}assistant:{% endif %}")
    user = [{"role": "user", "content": "Tell me a story."}]
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": user, "chosen": [{"role": "assistant", "content": c}],
                                         "rejected": [{"role": "assistant", "content": r}]}) + "\n"
                             for c, r in [("Once upon a time.", "No."), ("A cat sat.", "Dog."), ("Hi.", "Bye.")]))
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": user, "response": [{"role": "assistant", "content": "Once."}]}) + "\n")
    common = ["--max_steps", "1", "--save_strategy", "no", "--report_to", "none", "--per_device_train_batch_size", "2"]
    assert jpo_main(["train", "--model_name_or_path", str(tiny_model_path), "--dataset", str(prefs),
                     "--output_dir", str(tmp_path / "no_template"), *common]) == 2
    assert "--chat_template_path" in capsys.readouterr().err
    assert jpo_main(["sft", "--model_name_or_path", str(tiny_model_path), "--dataset", str(sft), "--chat_template_path",
                     str(template), "--output_dir", str(tmp_path / "sft"), *common]) == 0
    assert jpo_main(["train", "--model_name_or_path", str(tiny_model_path), "--dataset", str(prefs),
                     "--chat_template_path", str(template), "--loss_type", "sigmoid", "bco_pair",
                     "--loss_weights", "0.8", "0.2", "--output_dir", str(tmp_path / "jpo"), *common]) == 0
    assert AutoTokenizer.from_pretrained(tmp_path / "jpo").chat_template == template.read_text()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "prompt": "Tell me a story."}) + "\n")
    assert jpo_main(["generate", "--model", str(tiny_model_path), "--prompts", str(prompts), "--chat",
                     "--chat_template_path", str(template), "--temperatures", "0", "--max_new_tokens", "4",
                     "--output", str(tmp_path / "gen.jsonl"), "--no_progress", "--backend", "hf"]) == 0
    generated = json.loads((tmp_path / "gen.jsonl").read_text().splitlines()[0])
    assert generated["prompt"] == "Tell me a story." and generated["id"] == "p1"
    from jpo.evaluate.generate import encode_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    plain = encode_prompt(tok, "Tell me a story.")
    tok.chat_template = template.read_text()
    assert encode_prompt(tok, [{"role": "user", "content": "Tell me a story."}]) != plain
