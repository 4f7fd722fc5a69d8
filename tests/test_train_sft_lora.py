"""SFT with LoRA, then preference training from the SFT folder: the policy starts as the SFT model (base + adapter)
and the reference is the SFT model, with --use_peft (the SFT adapter trains on) and without (merged, all weights)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.cli import main as jpo_main

STORY = " Tom and Lily went to the park to play with the ball."
COMMON = ["--max_length", "64", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
          "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0"]


@pytest.fixture(scope="module")
def sft_adapter(tiny_model_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sft_lora")
    (folder / "sft.jsonl").write_text("".join(json.dumps({"prompt": f"Story {i}:", "response": STORY}) + "\n"
                                              for i in range(16)))
    (folder / "prefs.jsonl").write_text("".join(json.dumps({"prompt": f"Story {i}:", "chosen": STORY,
                                                            "rejected": " Zzz qx vv kk."}) + "\n"
                                                for i in range(8)))
    code = jpo_main(["sft", "--model_name_or_path", str(tiny_model_path), "--dataset", str(folder / "sft.jsonl"),
                     "--output_dir", str(folder / "sft"), "--use_peft", "--lora_r", "4", "--learning_rate", "1e-2",
                     "--max_steps", "8", "--per_device_train_batch_size", "8", *COMMON])
    assert code == 0 and (folder / "sft" / "adapter_config.json").exists()
    return folder


def chosen_logps(model, tok, prompts: list[str]) -> float:
    """Mean log p(chosen response + EOS | prompt) under `model`, from a full log-softmax."""
    total = []
    for prompt in prompts:
        p = tok(prompt).input_ids
        ids = tok(prompt + STORY + tok.eos_token).input_ids
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        total.append(logp.gather(-1, torch.tensor(ids[1:])[:, None])[len(p) - 1:].sum().item())
    return sum(total) / len(total)


@pytest.mark.parametrize("use_peft", [True, False])
def test_preference_training_continues_from_the_sft_adapter(tiny_model_path, sft_adapter, use_peft):
    from peft import PeftModel

    sft, out = sft_adapter / "sft", sft_adapter / f"pref_{use_peft}"
    code = jpo_main(["train", "--model_name_or_path", str(sft), "--dataset", str(sft_adapter / "prefs.jsonl"),
                     "--output_dir", str(out), "--objective", "dpo", "--learning_rate", "1e-3", "--max_steps", "2",
                     "--per_device_train_batch_size", "8", *COMMON, *(["--use_peft"] if use_peft else [])])
    assert code == 0
    history = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(history) == 2
    # The reference is the SFT model, which the policy starts as: margin 0 and ln 2 at the first step, exactly.
    assert history[0]["rewards/margins"] == 0.0 and history[0]["loss"] == pytest.approx(0.6931471805599453,
                                                                                        rel=torch.finfo().eps)
    assert history[1]["loss"] < history[0]["loss"]
    tok = AutoTokenizer.from_pretrained(sft)
    prompts = [f"Story {i}:" for i in range(8)]
    sft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), sft)
    base_logps = chosen_logps(AutoModelForCausalLM.from_pretrained(tiny_model_path), tok, prompts)
    sft_logps = chosen_logps(sft_model, tok, prompts)
    assert sft_logps > base_logps + 5  # SFT taught the story: the policy of step 1 must be that model
    assert history[0]["logps/chosen"] == pytest.approx(sft_logps, rel=1e-4)
    if use_peft:  # one adapter, on the original base, carrying SFT and preference training
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(tiny_model_path)
        trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), out)
    else:
        assert not (out / "adapter_config.json").exists()
        trained = AutoModelForCausalLM.from_pretrained(out)
    trained_logps = chosen_logps(trained, tok, prompts)
    assert trained_logps != pytest.approx(sft_logps, rel=1e-4)  # trained on from SFT ...
    assert trained_logps == pytest.approx(sft_logps, abs=2.0)  # ... not from the raw base
