"""`JPOTrainer`: JPO / DPO / IPO / joint IPO / KTO as a `transformers.Trainer`, constructed as TRL's DPOTrainer is.

One training step, read top to bottom in `compute_loss`: sequence log-probs of the policy (prompt and response parts),
the same for the reference (live, adapters disabled, or precomputed dataset columns), the objective's loss on them
(losses.py), and the metrics under TRL's names. Being a `Trainer`, it runs wherever transformers does (accelerate,
DDP, DeepSpeed, FSDP), checkpoints and resumes the usual way.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import Trainer

from jpo.errors import JpoError
from jpo.modeling import fit_max_length, load_tokenizer, tokenizer_source
from jpo.train import reference
from jpo.train.config import JPOConfig
from jpo.train.data import (
    REF_COLUMNS,
    PairCollator,
    UnpairedCollator,
    encode_pairs,
    encode_unpaired,
    layer_token_cost,
    no_batch_dispatch,
)
from jpo.train.logprobs import batch_logps
from jpo.train.losses import SequenceLogps, kto_kl, kto_loss, preference_loss
from jpo.train.policy import adapter_reference, disable_dropout, is_peft, load_policy
from jpo.train.tokenize import Encoder

logger = logging.getLogger(__name__)

# Attention implementations that take a custom boolean (sdpa) or additive (eager) 4D mask as given.
BLOCK_MASK_ATTENTION = ("sdpa", "eager")


def _model_name(model) -> str:
    return model if isinstance(model, str) else getattr(model.config, "_name_or_path", "") or "model"


def supports_block_mask(model) -> bool:
    base = model.get_base_model() if is_peft(model) else model
    return getattr(base.config, "_attn_implementation", None) in BLOCK_MASK_ATTENTION


class JPOTrainer(Trainer):
    """Preference training on raw text datasets, with TRL DPOTrainer's constructor.

    `model`: a causal LM or its name (loaded with `args.model_init_kwargs`); `ref_model`: the frozen reference
    (default: a copy of the policy, or the policy with adapters disabled under PEFT, or none once
    `precompute_ref_log_probs` has turned it into dataset columns). `train_dataset` / `eval_dataset`: a
    `datasets.Dataset`, `IterableDataset` or list of row dicts in any preference layout jpo reads (KTO also takes
    unpaired ``{prompt, completion, label}`` rows). `processing_class`: the tokenizer (default: the model's).
    `peft_config`: a `peft` config to train an adapter with.
    """

    def __init__(self, model, ref_model=None, args: JPOConfig | None = None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None, compute_metrics=None,
                 callbacks=None, optimizers=(None, None), peft_config=None, **kwargs: Any) -> None:
        from transformers import set_seed

        if args is None:
            args = JPOConfig(output_dir=f"{_model_name(model).rstrip('/').split('/')[-1]}-JPO")
        if train_dataset is None:
            raise JpoError("JPOTrainer needs a train_dataset")
        self.objective = args.resolved_objective
        self.kto = self.objective.shape == "kto"
        if self.kto and args.per_device_train_batch_size < 2:
            raise JpoError("KTO needs --per_device_train_batch_size >= 2: its KL reference point pairs each prompt "
                           "with another row's completion in the batch")
        if self.kto and args.precompute_ref_log_probs:
            raise JpoError("--precompute_ref_log_probs is not supported with --objective kto: the KL pairs "
                           "(prompt i, completion i-1) change with every shuffled batch")
        set_seed(args.seed)  # a new adapter's initial weights depend on it, as in TRL
        if processing_class is None:
            processing_class = load_tokenizer(tokenizer_source(_model_name(model)), args.trust_remote_code)
        if isinstance(model, str):
            if ref_model is None:
                ref_model = adapter_reference(args, model)  # continuing an SFT adapter: the SFT model
            model = load_policy(args, model)
        elif args.disable_dropout:
            disable_dropout(model)
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        if isinstance(ref_model, str):
            ref_model = load_policy(args, ref_model)
        args.max_length = fit_max_length(args.max_length, model)  # never beyond the model's context
        self.encoder = Encoder(processing_class, max_length=args.max_length, max_prompt_length=args.max_prompt_length,
                               truncation_mode=args.truncation_mode)
        train_dataset, self.data_report = self._prepare(train_dataset, args, "train")
        if eval_dataset is not None:
            eval_dataset, self.eval_report = self._prepare(eval_dataset, args, "eval")
        if data_collator is None:
            data_collator = self._collator(model, args)
        no_batch_dispatch(args)  # a streamed dataset's batches are drawn whole, as a map-style dataset's are
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         data_collator=data_collator, processing_class=processing_class,
                         compute_metrics=compute_metrics, callbacks=callbacks, optimizers=optimizers, **kwargs)
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: Trainer divides it for accumulation
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.ref_model = None
        if args.precompute_ref_log_probs:
            self._precompute_reference(ref_model)
        elif ref_model is not None or not is_peft(self.model):
            ref = ref_model if ref_model is not None else copy.deepcopy(self.model)
            ref.requires_grad_(False)
            self.ref_model = self.accelerator.prepare_model(ref.eval(), evaluation_mode=True)

    # --- data ------------------------------------------------------------------------------------------------------
    def _prepare(self, dataset, args: JPOConfig, name: str):
        encode = encode_unpaired if self.kto else encode_pairs
        prepared, report = encode(dataset, self.encoder, num_proc=args.dataset_num_proc, name=name)
        for line in report.warnings(name):  # rows left out, by reason; special tokens inside the text
            logger.warning(line)
        if hasattr(prepared, "__len__") and len(prepared) == 0:
            raise JpoError(f"nothing to train on: {report.summary()}")
        return prepared, report

    def _collator(self, model, args: JPOConfig):
        pad_id = self.encoder.tokenizer.pad_token_id
        if self.kto:
            return UnpairedCollator(pad_id, self.encoder)
        share = args.share_prefix and supports_block_mask(model)
        base = model.get_base_model() if is_peft(model) else model
        if args.share_prefix and not share:
            logger.warning("prefix sharing off: attention implementation %r takes no 4D mask; each pair runs as two "
                           "sequences", getattr(base.config, "_attn_implementation", None))
        return PairCollator(pad_id, count_prompt=self.objective.scope == "joint",
                            skip_equal_prompts=args.skip_equal_prompt_terms, share_prefix=share,
                            token_cost=layer_token_cost(base.config))

    # --- log-probs -------------------------------------------------------------------------------------------------
    def _logps(self, model, inputs: dict, count: int, prefix: str = "") -> SequenceLogps:
        unwrapped = self.accelerator.unwrap_model(model)
        head_model = unwrapped.get_base_model() if is_peft(unwrapped) else unwrapped
        return batch_logps(model, head_model, inputs, count, prefix, chunk_size=self.args.logprob_chunk_size)

    @torch.no_grad()
    def _reference_logps(self, inputs: dict, count: int, prefix: str = "") -> SequenceLogps:
        if self.ref_model is not None:
            return self._logps(self.ref_model, inputs, count, prefix)
        unwrapped = self.accelerator.unwrap_model(self.model)
        if not is_peft(unwrapped):
            raise JpoError("no reference model: pass ref_model, use --use_peft, or --precompute_ref_log_probs")
        with unwrapped.disable_adapter():
            return self._logps(self.model, inputs, count, prefix)

    def _precompute_reference(self, ref_model) -> None:
        """Reference log-probs of the training (and evaluation) pairs as dataset columns, from disk when this model
        and data were seen before."""
        import datasets

        ref = ref_model if ref_model is not None else self.model
        # Full fine-tuning: the policy before its first step is the reference. PEFT: the base, adapters disabled.
        self.ref_model = None if ref_model is None and is_peft(self.model) else ref
        was_training = ref.training
        ref.eval()
        ref.to(self.args.device)
        for name in ("train", "eval"):
            dataset = getattr(self, f"{name}_dataset")
            if dataset is None:
                continue
            if not isinstance(dataset, datasets.Dataset):
                raise JpoError("--precompute_ref_log_probs needs a map-style datasets.Dataset, not a stream")
            table = self._reference_table(ref, dataset)
            for column in REF_COLUMNS:
                dataset = dataset.add_column(column, table[column].tolist())
            setattr(self, f"{name}_dataset", dataset)
        ref.train(was_training)
        self.ref_model = None  # never needed again: the columns replace it

    def _reference_table(self, ref, dataset) -> dict[str, torch.Tensor]:
        collator = self.data_collator
        settings = {**self.encoder.settings, "count_prompt": collator.count_prompt,
                    "skip_equal": collator.skip_equal_prompts}
        path = reference.cache_path(self.args.ref_cache_dir, reference.model_fingerprint(ref),
                                    reference.data_fingerprint(dataset, settings))
        table = reference.load_cached(path)
        if table is not None:
            return table
        table = {part: torch.zeros(len(dataset), dtype=torch.float64) for part in REF_COLUMNS}
        # Longest first: each batch holds rows of similar length (little padding), and an out-of-memory shows at once.
        lengths = dataset["length"]
        order = sorted(range(len(dataset)), key=lambda i: -lengths[i])
        batch_size = self.args.precompute_ref_batch_size or self.args.per_device_train_batch_size
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collator)
        device = self.args.device
        for rows, batch in zip(batches, tqdm(loader, desc="reference log-probs",
                                             disable=not self.is_local_process_zero()), strict=True):
            batch = {k: v.to(device) for k, v in batch.items()}
            with self.accelerator.autocast():
                logps = self._reference_logps(batch, 2 * len(rows))
            parts = (*logps.prompt.chunk(2), *logps.response.chunk(2))
            idx = torch.tensor(rows)
            for column, values in zip(("ref_chosen_prompt", "ref_rejected_prompt", "ref_chosen_response",
                                       "ref_rejected_response"), parts, strict=True):
                table[column][idx] = values.double().cpu()
        if self.is_world_process_zero():
            reference.save_cached(path, table)
        return table

    # --- the step --------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        loss = self._kto_loss(model, inputs, mode) if self.kto else self._pair_loss(model, inputs, mode)
        return (loss, {}) if return_outputs else loss

    def _pair_loss(self, model, inputs: dict, mode: str) -> torch.Tensor:
        count = 2 * len(inputs["same_prompt"])
        policy = self._logps(model, inputs, count)
        if REF_COLUMNS[0] in inputs:
            ref = SequenceLogps(prompt=torch.cat([inputs["ref_chosen_prompt"], inputs["ref_rejected_prompt"]]),
                                response=torch.cat([inputs["ref_chosen_response"], inputs["ref_rejected_response"]]),
                                prompt_tokens=policy.prompt_tokens, response_tokens=policy.response_tokens)
        else:
            ref = self._reference_logps(inputs, count)
        halves = [_split(policy), _split(ref)]
        out = preference_loss(halves[0][0], halves[0][1], halves[1][0], halves[1][1], self.objective, self.args.beta)
        gather = self.accelerator.gather
        chosen, rejected = gather(out.chosen_rewards), gather(out.rejected_rewards)
        m = self._metrics[mode]
        m["rewards/chosen"].append(chosen.mean().item())
        m["rewards/rejected"].append(rejected.mean().item())
        # The margin as the loss sees it (prompt part + response part), not chosen - rejected: on equal prompts the
        # prompt part is exactly 0, so JPO's margins and accuracies are DPO's to the bit (Lemma D.1).
        margins = gather(out.margin_prompt + out.margin_response)
        m["rewards/accuracies"].append((margins > 0).float().mean().item())
        m["rewards/margins"].append(margins.mean().item())
        m["logps/chosen"].append(gather(halves[0][0].response.detach()).mean().item())
        m["logps/rejected"].append(gather(halves[0][1].response.detach()).mean().item())
        if self.objective.scope == "joint":
            m["rewards/margins_prompt"].append(gather(out.margin_prompt).mean().item())
            m["rewards/margins_response"].append(gather(out.margin_response).mean().item())
        return out.losses.mean()

    def _kto_loss(self, model, inputs: dict, mode: str) -> torch.Tensor:
        count = len(inputs["label"])
        with torch.no_grad():
            kl_policy = self._logps(model, inputs, count, "kl_").response
        kl_ref = self._reference_logps(inputs, count, "kl_").response
        kl = self.accelerator.gather(kto_kl(kl_policy, kl_ref).unsqueeze(0)).mean()
        policy = self._logps(model, inputs, count).response
        ref = self._reference_logps(inputs, count).response
        out = kto_loss(policy, ref, inputs["label"], kl, self.args.beta, self.args.desirable_weight,
                       self.args.undesirable_weight)
        gather = self.accelerator.gather
        labels, rewards, logps = gather(inputs["label"].bool()), gather(out.rewards), gather(policy.detach())
        m = self._metrics[mode]
        m["kl"].append(out.kl.item())
        if labels.any():
            m["rewards/chosen"].append(rewards[labels].mean().item())
            m["logps/chosen"].append(logps[labels].mean().item())
        if (~labels).any():
            m["rewards/rejected"].append(rewards[~labels].mean().item())
            m["logps/rejected"].append(logps[~labels].mean().item())
        if labels.any() and (~labels).any():
            m["rewards/margins"].append(m["rewards/chosen"][-1] - m["rewards/rejected"][-1])
        return out.losses.mean()

    # --- Trainer plumbing ------------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """As `Trainer.evaluate`; a raw dataset passed here is tokenized first, as at construction."""
        if eval_dataset is not None and not isinstance(eval_dataset, str):
            if self.args.precompute_ref_log_probs:
                raise JpoError("with --precompute_ref_log_probs, pass the evaluation set as eval_dataset when "
                               "constructing the trainer (the reference is gone once training starts)")
            eval_dataset, _ = self._prepare(eval_dataset, self.args, "eval")
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys,
                                metric_key_prefix=metric_key_prefix)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        if mode == "eval":
            metrics = {f"eval_{k}": v for k, v in metrics.items()}
        logs.update(metrics)
        super().log(logs, start_time)
        self._metrics[mode].clear()

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


def _split(logps: SequenceLogps) -> tuple[SequenceLogps, SequenceLogps]:
    """[chosen; rejected] stacked sequences -> (chosen, rejected)."""
    parts = [t.chunk(2) for t in (logps.prompt, logps.response, logps.prompt_tokens, logps.response_tokens)]
    return SequenceLogps(*(p[0] for p in parts)), SequenceLogps(*(p[1] for p in parts))
