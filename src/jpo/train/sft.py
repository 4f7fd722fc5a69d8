"""Supervised fine-tuning on instruction-response rows.

Tokenized exactly like the preference data (same template, EOS appended, same truncation). The loss is the mean
cross-entropy over the response tokens and EOS (TRL's completion-only default for prompt-completion data): the
instructions are given, not something the model should learn to write, and it keeps SFT consistent with DPO's
response scope. `completion_only_loss=False` trains on every token after BOS instead. The model's own loss is used
(labels with -100 elsewhere), so the Trainer normalises by the token count across gradient accumulation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Trainer, set_seed

from jpo.errors import JpoError
from jpo.modeling import (
    check_attention_trains,
    fit_max_length,
    load_tokenizer,
    pad,
    set_chat_template,
    tokenizer_source,
)
from jpo.train.config import SFTConfig
from jpo.train.data import encode_sft, layer_token_cost, no_batch_dispatch
from jpo.train.logprobs import additive_mask
from jpo.train.packing import Unit, UnitTable, batch_layout, choose_bins, pack, packing_mode, units_attention
from jpo.train.policy import load_policy
from jpo.train.tokenize import Encoder

logger = logging.getLogger(__name__)


@dataclass
class SFTCollator:
    """Batches of SFT rows. Input: rows with `SFT_COLUMNS`. Output: ``input_ids``, ``attention_mask`` and ``labels``
    (-100 where no loss is taken: BOS, the prompt under `completion_only`, padding). With `packing` "block" the rows
    are packed end to end (`jpo.train.packing`) under a block-diagonal 4D mask (boolean; additive in
    `additive_dtype` for eager attention) with restarting ``position_ids``; with "varlen" into one unpadded row with
    ``position_ids`` and no mask (flash-attention); with "units" into one unpadded row attended unit by unit
    (sdpa; ``jpo_units`` is the row's unit table, see `jpo.train.packing.unit_attention`). Packed batches also
    say ``use_cache=False``. Each row's first label is -100 (BOS, or the prompt's first
    token), so no loss crosses from one packed row into the next."""

    pad_token_id: int
    completion_only: bool = True
    packing: str | None = None
    token_cost: float | None = None
    additive_dtype: torch.dtype | None = None
    pad_to_multiple_of: int | None = None  # rows' width rounded up to a multiple of this (padded and packed alike)

    def __call__(self, items: list[dict[str, Any]]) -> dict:
        ids = [it["ids"] for it in items]
        start = [it["prompt_len"] if self.completion_only else 1 for it in items]
        labels = [[-100] * s + seq[s:] for seq, s in zip(ids, start, strict=True)]
        if self.packing is None:
            multiple = self.pad_to_multiple_of
            return {"input_ids": pad(ids, self.pad_token_id, multiple_of=multiple),
                    "attention_mask": pad([[1] * len(s) for s in ids], 0, multiple_of=multiple),
                    "labels": pad(labels, -100, multiple_of=multiple)}
        units = [Unit(list(seq), prefix=len(seq)) for seq in ids]
        if self.packing in ("varlen", "units"):
            bins = [list(range(len(units)))]
        else:
            bins, _ = choose_bins([len(seq) for seq in ids], self.token_cost)
        packed = pack(units, bins, self.pad_token_id, mask=self.packing == "block", table=self.packing == "units",
                      multiple_of=self.pad_to_multiple_of)
        # use_cache=False: with a cache, transformers does not read restarting position ids as packed sequences
        # (`masking_utils._preprocess_mask_arguments`), and training needs none.
        batch = {"input_ids": packed["input_ids"], "position_ids": packed["position_ids"],
                 "labels": torch.full_like(packed["input_ids"], -100), "use_cache": False}
        for r, b in enumerate(bins):
            row = [label for u in b for label in labels[u]]
            batch["labels"][r, :len(row)] = torch.tensor(row)
        if "units" in packed:
            batch["jpo_units"] = packed["units"]
        if "attention_mask" in packed:
            mask = packed["attention_mask"]
            batch["attention_mask"] = mask if self.additive_dtype is None else additive_mask(mask, self.additive_dtype)
        return batch


class SFTTrainer(Trainer):
    """`Trainer` on raw instruction-response rows (any SFT layout jpo reads), constructed as TRL's SFTTrainer."""

    def __init__(self, model, args: SFTConfig, train_dataset=None, processing_class=None, **kwargs: Any) -> None:
        name = model if isinstance(model, str) else model.config._name_or_path
        if processing_class is None:
            processing_class = load_tokenizer(tokenizer_source(name), args.trust_remote_code)
        set_chat_template(processing_class, args.chat_template_path)
        if isinstance(model, str):
            set_seed(args.seed)  # a new adapter's initial weights depend on it, as in TRL (and JPOTrainer)
            model = load_policy(args, model)
        args.max_length = fit_max_length(args.max_length, model)  # never beyond the model's context
        encoder = Encoder(processing_class, max_length=args.max_length, max_prompt_length=args.max_prompt_length,
                          truncation_mode=args.truncation_mode)
        train_dataset, self.data_report = encode_sft(train_dataset, encoder, num_proc=args.dataset_num_proc)
        for line in self.data_report.warnings("train"):  # rows left out, by reason; special tokens inside the text
            logger.warning(line)
        if hasattr(train_dataset, "__len__") and len(train_dataset) == 0:  # a stream is counted as it passes
            raise JpoError(f"nothing to train on: {self.data_report.summary()}")
        check_attention_trains(model, args.device)
        packing, why = packing_mode(model, args.padding_free, args.max_length,
                                    gradient_checkpointing=args.gradient_checkpointing, device=args.device)
        self.batch_layout = batch_layout(packing, why)
        eager = getattr(model.config, "_attn_implementation", None) == "eager"
        collator = SFTCollator(processing_class.pad_token_id, completion_only=args.completion_only_loss,
                               packing=packing, token_cost=layer_token_cost(model.config),
                               additive_dtype=next(model.parameters()).dtype if eager else None,
                               pad_to_multiple_of=args.pad_to_multiple_of)
        no_batch_dispatch(args)  # packed rows are not batch-first: a streamed batch is drawn whole, never sliced
        super().__init__(model=model, args=args, train_dataset=train_dataset, data_collator=collator,
                         processing_class=processing_class, **kwargs)

    def compute_loss(self, model, inputs, *args, **kwargs):
        """Trainer's loss; a batch packed unit by unit runs its forward under `units_attention`."""
        table = inputs.pop("jpo_units", None)
        if table is None:
            return super().compute_loss(model, inputs, *args, **kwargs)
        inputs["jpo_units"] = UnitTable(table)
        with units_attention(self.accelerator.unwrap_model(model)):
            return super().compute_loss(model, inputs, *args, **kwargs)
