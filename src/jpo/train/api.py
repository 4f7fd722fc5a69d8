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
from jpo.train.tokenize import EncodeReport


@dataclass
class TrainResult:
    output_dir: str
    log_history: list[dict[str, Any]]
    data: EncodeReport
    train_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        loss = "n/a" if self.train_loss is None else f"{self.train_loss:.4f}"
        sources = "".join(f"\n  data: {line}" for line in self.extra.get("sources", ()))
        layout = f"; {self.extra['batches']}" if "batches" in self.extra else ""
        return (f"trained on {self.data.summary()}{layout}; mean train loss {loss}; saved to {self.output_dir}"
                f"{sources}")


def _as_config(config, cls):
    if isinstance(config, cls):
        return config
    if isinstance(config, dict):
        check_keys(cls.__name__, config, (f.name for f in dataclasses.fields(cls)))
        return cls(**config)
    raise JpoError(f"config must be a {cls.__name__} or a dict, not {type(config).__name__}")


def _read_files(files: list[str], kind: str, what: str = "data") -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of `files` concatenated, and one summary line per file (printed as `what: ...`)."""
    from jpo.data.load import SFT_READS_LABELLED, load_many

    loaded = load_many(files, kind, SFT_READS_LABELLED if kind == "sft" else ())
    lines = [one.summary() for one in loaded]
    for line in lines:
        print(f"{what}: {line}", flush=True)
    return [row for one in loaded for row in one.rows], lines


def _rows(config, rows: list[dict[str, Any]] | None, kind: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The canonical rows to train on (with a conversation's ``tools`` and ``chat_template_kwargs``), without the columns that travel with them (ids, labels, scores): files
    concatenated in D_C ∪ D_H fashion may carry different ones, which one Arrow table cannot hold. Plain-text and
    conversational sources are made one representation (`jpo.data.load.unify_text`). Also one summary line per
    file with what `jpo data validate` counts (printed before training starts, and repeated in the result)."""
    from jpo.data.load import unify_text

    lines: list[str] = []
    if rows is None:
        if not config.dataset:
            raise JpoError("no training data: pass --dataset PATH [PATH ...]")
        rows, lines = _read_files(config.dataset, kind)
    fields = ("prompt_chosen", "chosen", "prompt_rejected", "rejected", "prompt", "completion", "label", "response",
              "tools", "chat_template_kwargs")  # the last two go to the chat template, as in TRL
    rows = [{k: row[k] for k in fields if k in row} for row in rows]
    unify_text([rows])  # rows given directly may mix the two representations too
    return rows, lines


def _finish(trainer, output_dir: str, report: EncodeReport, train_output) -> TrainResult:
    """Save model/adapter + tokenizer and the whole log history, whatever the save strategy was."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(Path(output_dir) / "trainer_state.json"))
        (Path(output_dir) / "data_report.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))
    return TrainResult(output_dir=output_dir, log_history=list(trainer.state.log_history), data=report,
                       train_loss=getattr(train_output, "training_loss", None))


def train_preferences(config: PreferenceConfig | dict, dataset_rows: list[dict[str, Any]] | None = None,
                      *, model=None, tokenizer=None, ref_model=None,
                      resume_from_checkpoint: str | bool | None = None) -> TrainResult:
    """Train with `config.objective` on joint preference rows (or `config.dataset` files) and save the result.

    `dataset_rows`: rows ``{prompt_chosen, chosen, prompt_rejected, rejected}`` (KTO also takes unpaired
    ``{prompt, completion, label}``). `model`/`tokenizer` skip loading from `config.model_name_or_path`.
    """
    from jpo.train.trainer import JPOTrainer

    config = _as_config(config, PreferenceConfig)
    kind = "unpaired" if config.resolved_objective.shape == "kto" else "preference"
    if config.eval_strategy != "no" and not config.eval_dataset:  # transformers would raise mid-setup
        raise JpoError(f"--eval_strategy {config.eval_strategy.value} needs evaluation data: pass --eval_dataset "
                       "PATH [PATH ...] (jpo train), or eval_dataset= in Python")
    rows, lines = _rows(config, dataset_rows, kind)
    eval_rows = None
    if config.eval_dataset:
        eval_rows, _ = _rows(config, _read_files(config.eval_dataset, kind, "eval data")[0], kind)
    trainer = JPOTrainer(model if model is not None else config.model_name_or_path, ref_model=ref_model,
                         args=config, train_dataset=rows, eval_dataset=eval_rows, processing_class=tokenizer)
    output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    result = _finish(trainer, config.output_dir, trainer.data_report, output)
    result.extra.update(objective=trainer.objective.name, sources=lines, batches=trainer.batch_layout)
    return result


def train_sft(config: SFTConfig | dict, dataset_rows: list[dict[str, Any]] | None = None, *, model=None,
              tokenizer=None, resume_from_checkpoint: str | bool | None = None) -> TrainResult:
    """Supervised fine-tuning on ``{prompt, response}`` rows (or `config.dataset` files); saves model + tokenizer."""
    from jpo.train.sft import SFTTrainer

    config = _as_config(config, SFTConfig)
    if config.eval_strategy != "no":
        raise JpoError("jpo sft does not evaluate: leave --eval_strategy at no")
    rows, lines = _rows(config, dataset_rows, "sft")
    trainer = SFTTrainer(model if model is not None else config.model_name_or_path, args=config,
                         train_dataset=rows, processing_class=tokenizer)
    output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    result = _finish(trainer, config.output_dir, trainer.data_report, output)
    result.extra.update(sources=lines, batches=trainer.batch_layout)
    return result
