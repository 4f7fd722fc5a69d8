"""A streamed `IterableDataset` trains exactly as the same rows in a map-style `Dataset` (accelerate would otherwise
dispatch its batches and cut every tensor to the batch size, targets included)."""

from __future__ import annotations

import pytest

from jpo import JPOConfig, JPOTrainer
from jpo.errors import JpoError

datasets = pytest.importorskip("datasets")

SETTINGS = dict(per_device_train_batch_size=4, max_steps=3, logging_steps=1, learning_rate=1e-3, max_length=128,
                report_to="none", save_strategy="no", disable_tqdm=True, train_sampling_strategy="sequential",
                use_cpu=True, seed=0)


@pytest.fixture(scope="module")
def trl_rows(tiny_model_path):
    from conftest import shared_path

    from jpo.data import load_preferences

    rows = load_preferences(shared_path("data", "jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))
    return [{"prompt": r["prompt_chosen"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows[:24]]


def history(trainer) -> list[dict]:
    """The log without timings and the epoch (a stream's length is unknown, so its epoch counts differently)."""
    return [{k: v for k, v in h.items() if k not in ("train_runtime", "train_samples_per_second",
                                                     "train_steps_per_second", "epoch")}
            for h in trainer.state.log_history]


@pytest.mark.parametrize("objective", ["jpo", "dpo", "kto"])
def test_streamed_dataset_trains_as_map_style(tiny_model_path, trl_rows, tmp_path, objective):
    runs = {}
    for name in ("map", "stream"):
        args = JPOConfig(output_dir=str(tmp_path / name), objective=objective, **SETTINGS)
        data = datasets.Dataset.from_list(trl_rows)
        trainer = JPOTrainer(str(tiny_model_path), args=args,
                             train_dataset=data if name == "map" else data.to_iterable_dataset())
        trainer.train()
        runs[name] = history(trainer)
    steps = [h for h in runs["map"] if "loss" in h]
    assert len(steps) == 3 and all(h["logps/chosen"] < -1 for h in steps)
    assert runs["stream"] == runs["map"]


def test_dispatching_batches_explicitly_is_refused(tiny_model_path, trl_rows, tmp_path):
    args = JPOConfig(output_dir=str(tmp_path), accelerator_config={"dispatch_batches": True}, **SETTINGS)
    with pytest.raises(JpoError, match="dispatch_batches"):
        JPOTrainer(str(tiny_model_path), args=args, train_dataset=datasets.Dataset.from_list(trl_rows))


def test_streamed_sft_trains_as_map_style(tiny_model_path, tmp_path):
    from jpo.train.config import SFTConfig
    from jpo.train.sft import SFTTrainer

    rows = [{"prompt": f"Story {i}:", "response": " Tom and Lily went to the park."} for i in range(12)]
    runs = {}
    for name in ("map", "stream"):
        data = datasets.Dataset.from_list(rows)
        trainer = SFTTrainer(str(tiny_model_path), args=SFTConfig(output_dir=str(tmp_path / name), **SETTINGS),
                             train_dataset=data if name == "map" else data.to_iterable_dataset())
        trainer.train()
        runs[name] = history(trainer)
    assert len([h for h in runs["map"] if "loss" in h]) == 3 and runs["stream"] == runs["map"]
