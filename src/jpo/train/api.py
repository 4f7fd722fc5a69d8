"""The Python entry points behind `jpo train` and `jpo sft`, for callers that do not go through the CLI."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.config import check_keys
from jpo.errors import JpoError
from jpo.train.config import PreferenceConfig, SFTConfig
from jpo.train.tokenize import Encoder, EncodeReport


@dataclass
class TrainResult:
    output_dir: str
    log_history: list[dict[str, Any]]
    data: EncodeReport
    train_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        loss = "n/a" if self.train_loss is None else f"{self.train_loss:.4f}"
        return f"trained on {self.data.summary()}; mean train loss {loss}; saved to {self.output_dir}"


def _as_config(config, cls):
    if isinstance(config, cls):
        return config
    if isinstance(config, dict):
        check_keys(cls.__name__, config, (f.name for f in dataclasses.fields(cls)))
        return cls(**config)
    raise JpoError(f"config must be a {cls.__name__} or a dict, not {type(config).__name__}")


def _rows(config, rows: list[dict[str, Any]] | None, loader) -> list[dict[str, Any]]:
    if rows is not None:
        return list(rows)
    if not config.dataset:
        raise JpoError("no training data: pass --dataset PATH [PATH ...]")
    out = []
    for source in config.dataset:
        out.extend(loader(source))
    return out


def _load_policy(config):
    from jpo.train.modeling import add_lora, load_model, load_tokenizer

    tokenizer = load_tokenizer(config.model_name_or_path, config.trust_remote_code)
    model = load_model(config)
    if config.use_peft:
        model = add_lora(model, config)
    return model, tokenizer


def _finish(trainer, output_dir: str, report: EncodeReport, train_output) -> TrainResult:
    """Save model/adapter + tokenizer and the whole log history, whatever the save strategy was."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(Path(output_dir) / "trainer_state.json"))
        (Path(output_dir) / "data_report.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))
    return TrainResult(output_dir=output_dir, log_history=list(trainer.state.log_history), data=report,
                       train_loss=getattr(train_output, "training_loss", None))


def _encoder(config, tokenizer) -> Encoder:
    return Encoder(tokenizer, max_length=config.max_length, max_prompt_length=config.max_prompt_length,
                   truncation_mode=config.truncation_mode)


def _check_nonempty(dataset, report: EncodeReport) -> None:
    if len(dataset) == 0:
        raise JpoError(f"nothing to train on: {report.summary()}")


def train_preferences(config: PreferenceConfig | dict, dataset_rows: list[dict[str, Any]] | None = None,
                      *, model=None, tokenizer=None, ref_model=None,
                      resume_from_checkpoint: str | bool | None = None) -> TrainResult:
    """Train with `config.objective` on joint preference rows (or `config.dataset` files) and save the result.

    `dataset_rows`: rows ``{prompt_chosen, chosen, prompt_rejected, rejected}`` (KTO also takes unpaired
    ``{prompt, completion, label}``). `model`/`tokenizer` skip loading from `config.model_name_or_path`.
    """
    from jpo.data import load_preferences
    from jpo.train.data import encode_pairs, encode_unpaired, unpair
    from jpo.train.trainer import PreferenceTrainer

    config = _as_config(config, PreferenceConfig)
    objective = config.resolved_objective
    loader = load_preferences
    if objective.shape == "kto":
        from jpo.data import load_unpaired
        loader = load_unpaired
    rows = _rows(config, dataset_rows, loader)
    if model is None or tokenizer is None:
        model, tokenizer = _load_policy(config)
    encoder = _encoder(config, tokenizer)
    dataset = encode_unpaired(unpair(rows), encoder) if objective.shape == "kto" else encode_pairs(rows, encoder)
    _check_nonempty(dataset, dataset.report)
    trainer = PreferenceTrainer(model=model, args=config, train_dataset=dataset, encoder=encoder,
                                ref_model=ref_model)
    output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    result = _finish(trainer, config.output_dir, dataset.report, output)
    result.extra["objective"] = objective.name
    return result


def train_sft(config: SFTConfig | dict, dataset_rows: list[dict[str, Any]] | None = None, *, model=None,
              tokenizer=None, resume_from_checkpoint: str | bool | None = None) -> TrainResult:
    """Supervised fine-tuning on ``{prompt, response}`` rows (or `config.dataset` files); saves model + tokenizer."""
    from jpo.data import load_sft
    from jpo.train.sft import SFTCollator, encode_sft, make_sft_trainer

    config = _as_config(config, SFTConfig)
    rows = _rows(config, dataset_rows, load_sft)
    if model is None or tokenizer is None:
        model, tokenizer = _load_policy(config)
    encoder = _encoder(config, tokenizer)
    dataset = encode_sft(rows, encoder)
    _check_nonempty(dataset, dataset.report)
    collator = SFTCollator(tokenizer.pad_token_id, completion_only=config.completion_only_loss)
    trainer = make_sft_trainer(model, config, dataset, collator, tokenizer)
    output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return _finish(trainer, config.output_dir, dataset.report, output)
