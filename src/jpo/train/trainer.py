"""`JPOTrainer`: JPO / DPO / IPO / joint IPO / KTO, and each of TRL's loss types under either scope, as a
`transformers.Trainer` constructed as TRL's DPOTrainer is.

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
from transformers import Trainer, TrainerCallback

from jpo.errors import JpoError
from jpo.modeling import (
    check_attention_trains,
    fit_max_length,
    load_tokenizer,
    set_chat_template,
    tokenizer_source,
)
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
from jpo.train.losses import Objective, SequenceLogps, kto_kl, kto_loss, preference_loss, wpo_weights
from jpo.train.packing import batch_layout, packing_mode
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


def _is_stream(dataset) -> bool:
    import datasets

    return isinstance(dataset, datasets.IterableDataset)


def _streams(dataset) -> bool:
    """Whether `dataset` (or any set of a dict of evaluation sets) is streamed."""
    return any(_streams(d) for d in dataset.values()) if isinstance(dataset, dict) else _is_stream(dataset)


NO_STREAM_PRECOMPUTE = ("`precompute_ref_log_probs=True` is not supported with IterableDataset: streamed rows have no "
                        "index to attach reference log-probs to; use a map-style Dataset or drop "
                        "--precompute_ref_log_probs")


class SyncReference(TrainerCallback):
    """TR-DPO (Gorbatovski et al. 2024): every `steps` optimizer steps, ref <- alpha * policy + (1 - alpha) * ref."""

    def __init__(self, trainer: JPOTrainer, alpha: float, steps: int) -> None:
        self.trainer, self.alpha, self.steps = trainer, alpha, steps

    @torch.no_grad()
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.steps == 0:
            unwrap = self.trainer.accelerator.unwrap_model
            policy = dict(unwrap(self.trainer.model).named_parameters())
            for name, ref in unwrap(self.trainer.ref_model).named_parameters():
                ref.mul_(1 - self.alpha).add_(policy[name].to(ref.dtype), alpha=self.alpha)


class JPOTrainer(Trainer):
    """Preference training on raw text datasets, with TRL DPOTrainer's constructor.

    `model`: a causal LM or its name (loaded with `args.model_init_kwargs`: float32 unless they say otherwise, as
    TRL, or bf16 weights under `args.bf16`); `ref_model`: the frozen reference (default: a copy of the policy, or the policy with adapters disabled
    under PEFT, or none once `precompute_ref_log_probs` has turned it into dataset columns). `train_dataset`: a
    `datasets.Dataset`, `IterableDataset` or list of row dicts in any preference layout jpo reads (KTO also takes
    unpaired ``{prompt, completion, label}`` rows; conversational rows may carry ``tools`` and
    ``chat_template_kwargs``). `eval_dataset`: the same, or a dict / `DatasetDict` of them, evaluated one by one
    with the name in the metric keys (``eval_<name>_loss``). `processing_class`: the tokenizer (default: the
    model's). `compute_metrics`: called with TRL's `EvalPrediction` (logits of the [chosen; rejected] rows, their
    input ids as labels). `peft_config`: a `peft` config to train an adapter with.
    """

    def __init__(self, model, ref_model=None, args: JPOConfig | None = None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None, compute_metrics=None,
                 callbacks=None, optimizers=(None, None), peft_config=None, **kwargs: Any) -> None:
        from transformers import set_seed

        if args is None:
            args = JPOConfig(output_dir=f"{_model_name(model).rstrip('/').split('/')[-1]}-JPO")
        if train_dataset is None:
            raise JpoError("`train_dataset` is required: JPOTrainer needs data to train on")
        if args.precompute_ref_log_probs and (_is_stream(train_dataset)
                                              or (eval_dataset is not None and _streams(eval_dataset))):
            raise JpoError(NO_STREAM_PRECOMPUTE)
        if ref_model is not None and ref_model is model:
            raise JpoError("`model` and `ref_model` cannot be the same object: omit ref_model for a frozen copy")
        self.objective = args.resolved_objective
        self.kto = self.objective.shape == "kto"
        if self.kto and args.per_device_train_batch_size < 2:
            raise JpoError("KTO needs --per_device_train_batch_size >= 2: its KL reference point pairs each prompt "
                           "with another row's completion in the batch")
        if self.kto and args.precompute_ref_log_probs:
            raise JpoError("--precompute_ref_log_probs is not supported with --objective kto: the KL pairs "
                           "(prompt i, completion i-1) change with every shuffled batch")
        if self.kto and (args.ld_alpha is not None or args.use_weighting or args.rpo_alpha):
            raise JpoError("--ld_alpha, --use_weighting and --rpo_alpha are pairwise options; --objective kto "
                           "takes none of them")
        set_seed(args.seed)  # a new adapter's initial weights depend on it, as in TRL
        if processing_class is None:
            processing_class = load_tokenizer(tokenizer_source(_model_name(model)), args.trust_remote_code)
        if args.pad_token is not None:
            processing_class.pad_token = args.pad_token
        set_chat_template(processing_class, args.chat_template_path)
        if isinstance(model, str):
            if ref_model is None:
                ref_model = adapter_reference(args, model)  # continuing an SFT adapter: the SFT model
            model = load_policy(args, model)
        elif args.disable_dropout:
            disable_dropout(model)
        if peft_config is not None:
            from peft import get_peft_model

            if is_peft(model):
                raise JpoError("a PeftModel was passed together with a peft_config: merge the existing adapter "
                               "first, or pass the base model with the peft_config")
            model = get_peft_model(model, peft_config)
        if isinstance(ref_model, str):
            ref_model = load_policy(args, ref_model)
        args.max_length = fit_max_length(args.max_length, model)  # never beyond the model's context
        if args.sync_ref_model and is_peft(model):
            raise JpoError("--sync_ref_model needs a separate reference model; under PEFT the reference is the base "
                           "model with adapters disabled, so there is nothing to sync (train all weights instead)")
        self._init_aux_loss(model, args)
        self.encoder = Encoder(processing_class, max_length=args.max_length, max_prompt_length=args.max_prompt_length,
                               truncation_mode=args.truncation_mode, max_completion_length=args.max_completion_length)
        train_dataset, self.data_report = self._prepare(train_dataset, args, "train")
        self.eval_report = None
        if eval_dataset is not None:
            eval_dataset, self.eval_report = self._prepare_eval(eval_dataset, args)
        self._metrics_wanted = compute_metrics is not None
        if data_collator is None:
            data_collator = self._collator(model, args)
        no_batch_dispatch(args)  # a streamed dataset's batches are drawn whole, as a map-style dataset's are
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         data_collator=data_collator, processing_class=processing_class,
                         compute_metrics=compute_metrics, callbacks=callbacks, optimizers=optimizers, **kwargs)
        # The loss is normalised by the rows of the whole accumulated batch (`num_items_in_batch`, see
        # `_get_num_items_in_batch`), so Trainer must not divide it by the accumulation steps again.
        self.model_accepts_loss_kwargs = True
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(["jpo"])
        self.ref_model = None
        if ref_model is not None or not (is_peft(self.model) or args.precompute_ref_log_probs):
            ref = ref_model if ref_model is not None else copy.deepcopy(self.accelerator.unwrap_model(self.model))
            ref.requires_grad_(False)
            if args.disable_dropout:
                disable_dropout(ref)
            self.ref_model = self.accelerator.prepare_model(ref.eval(), evaluation_mode=True)
        if args.sync_ref_model:
            self.add_callback(SyncReference(self, args.ref_model_mixup_alpha, args.ref_model_sync_steps))
        if args.precompute_ref_log_probs:
            self.train_dataset = self._with_reference(self.train_dataset, "train")
            if self.eval_dataset is not None:
                self.eval_dataset = self._with_reference(self.eval_dataset, "eval")

    def _init_aux_loss(self, model, args: JPOConfig) -> None:
        """TRL's rule: a model whose config has `output_router_logits` is a Mixture of Experts; its router loss is
        added with `router_aux_loss_coef` (default the config's own, 0 when it declares none)."""
        base = model.get_base_model() if is_peft(model) else model
        text_config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
        coef = args.router_aux_loss_coef
        moe = hasattr(text_config, "output_router_logits")
        if coef and not moe:
            raise JpoError(f"--router_aux_loss_coef {coef} is set but {type(base).__name__} is not a "
                           "Mixture-of-Experts model that returns router logits: there is no auxiliary loss to weight")
        self.router_aux_loss_coef = float(getattr(text_config, "router_aux_loss_coef", 0.0) or 0.0
                                          if coef is None else coef)
        self.aux_loss_enabled = moe and self.router_aux_loss_coef != 0.0 and not self.kto

    # --- data ------------------------------------------------------------------------------------------------------
    def _prepare(self, dataset, args: JPOConfig, name: str):
        encode = encode_unpaired if self.kto else encode_pairs
        prepared, report = encode(dataset, self.encoder, num_proc=args.dataset_num_proc, name=name)
        for line in report.warnings(name):  # rows left out, by reason; special tokens inside the text
            logger.warning(line)
        if hasattr(prepared, "__len__") and len(prepared) == 0:
            raise JpoError(f"nothing to {'train' if name == 'train' else 'evaluate'} on in the {name} data: "
                           f"{report.summary()}")
        return prepared, report

    def _prepare_eval(self, dataset, args: JPOConfig):
        """An evaluation set, or a dict / DatasetDict of them (each prepared on its own, reports keyed alike)."""
        if isinstance(dataset, dict):
            pairs = {name: self._prepare(d, args, name) for name, d in dataset.items()}
            return {n: p for n, (p, _) in pairs.items()}, {n: r for n, (_, r) in pairs.items()}
        return self._prepare(dataset, args, "eval")

    def _collator(self, model, args: JPOConfig):
        pad_id = self.encoder.tokenizer.pad_token_id
        base = model.get_base_model() if is_peft(model) else model
        token_cost = layer_token_cost(base.config)
        check_attention_trains(model, args.device)
        packing, why = packing_mode(model, args.padding_free, args.max_length,
                                    "the router load-balancing loss takes a 2D padding mask"
                                    if self.aux_loss_enabled else None, args.gradient_checkpointing, args.device)
        self.batch_layout = batch_layout(packing, why)
        if self.kto:
            return UnpairedCollator(pad_id, self.encoder, pad_to_multiple_of=args.pad_to_multiple_of, packing=packing,
                                    token_cost=token_cost)
        share = args.share_prefix and supports_block_mask(model) and not self.aux_loss_enabled
        if args.share_prefix and not share and packing is None:
            why = ("the router load-balancing loss takes a 2D padding mask" if self.aux_loss_enabled else
                   f"attention implementation {getattr(base.config, '_attn_implementation', None)!r} takes no 4D "
                   "mask")
            logger.warning("prefix sharing off: %s; each pair runs as two sequences", why)
        return PairCollator(pad_id, count_prompt=self.objective.scope == "joint",
                            skip_equal_prompts=args.skip_equal_prompt_terms, share_prefix=share,
                            token_cost=token_cost, pad_to_multiple_of=args.pad_to_multiple_of,
                            plain_ids=self._metrics_wanted, packing=packing)

    # --- log-probs -------------------------------------------------------------------------------------------------
    def _logps(self, model, inputs: dict, count: int, prefix: str = "", policy: bool = False) -> SequenceLogps:
        unwrapped = self.accelerator.unwrap_model(model)
        head_model = unwrapped.get_base_model() if is_peft(unwrapped) else unwrapped
        pairs = not self.kto
        return batch_logps(model, head_model, inputs, count, prefix, chunk_size=self.args.logprob_chunk_size,
                           ld_alpha=self.args.ld_alpha if pairs else None,
                           wpo=policy and pairs and self.args.use_weighting,
                           router_aux=policy and self.aux_loss_enabled)

    def _reference_available(self) -> bool:
        return (self.ref_model is not None or is_peft(self.accelerator.unwrap_model(self.model))
                or self.state.global_step == 0)

    @torch.no_grad()
    def _reference_logps(self, inputs: dict, count: int, prefix: str = "") -> SequenceLogps:
        if self.ref_model is not None:
            return self._logps(self.ref_model, inputs, count, prefix)
        unwrapped = self.accelerator.unwrap_model(self.model)
        if is_peft(unwrapped):
            with unwrapped.disable_adapter():
                return self._logps(self.model, inputs, count, prefix)
        if self.args.precompute_ref_log_probs and self.state.global_step == 0:
            return self._logps(self.model, inputs, count, prefix)  # not trained yet: the policy is the reference
        raise JpoError("Cannot compute reference log-probs for a dataset passed to `evaluate()` after training has "
                       "started: with --precompute_ref_log_probs and no ref_model (full fine-tuning) the reference "
                       "is not kept; pass this set as eval_dataset at construction, or pass a ref_model")

    def _with_reference(self, dataset, name: str):
        """`dataset` (or each set of a dict) with the reference log-prob columns, from disk when this model and data
        were seen before."""
        if isinstance(dataset, dict):
            return {key: self._with_reference(d, key) for key, d in dataset.items()}
        import datasets

        if not isinstance(dataset, datasets.Dataset):
            raise JpoError(NO_STREAM_PRECOMPUTE)
        if REF_COLUMNS[0] in dataset.column_names:
            return dataset
        if not self._reference_available():
            self._reference_logps({}, 0)  # raises the one-line reason
        batch_size = self.args.precompute_ref_batch_size or (
            self.args.per_device_train_batch_size if name == "train" else self.args.per_device_eval_batch_size)
        models = [self.ref_model, self.model]
        modes = [m.training for m in models if m is not None]
        for m in models:
            if m is not None:
                m.eval()
        try:
            table = self._reference_table(dataset, batch_size)
        finally:
            for m, mode in zip([m for m in models if m is not None], modes, strict=True):
                m.train(mode)
        for column in REF_COLUMNS:
            dataset = dataset.add_column(column, table[column].tolist())
        return dataset

    def _reference_model_for_key(self):
        if self.ref_model is not None:
            return self.accelerator.unwrap_model(self.ref_model)
        unwrapped = self.accelerator.unwrap_model(self.model)
        return unwrapped.get_base_model() if is_peft(unwrapped) else unwrapped

    def _reference_table(self, dataset, batch_size: int) -> dict[str, torch.Tensor]:
        collator = self.data_collator
        settings = {**self.encoder.settings, "count_prompt": collator.count_prompt,
                    "skip_equal": collator.skip_equal_prompts, "ld_alpha": self.args.ld_alpha,
                    "peft_base": self.ref_model is None and is_peft(self.accelerator.unwrap_model(self.model))}
        path = reference.cache_path(self.args.ref_cache_dir, reference.model_fingerprint(
            self._reference_model_for_key()), reference.data_fingerprint(dataset, settings))
        table = reference.load_cached(path)
        if table is not None:
            return table
        table = {part: torch.zeros(len(dataset), dtype=torch.float64) for part in REF_COLUMNS}
        # Longest first: each batch holds rows of similar length (little padding), and an out-of-memory shows at once.
        lengths = dataset["length"]
        order = sorted(range(len(dataset)), key=lambda i: -lengths[i])
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
    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Rows (pairs, or unpaired rows for KTO) in the whole accumulated batch, over all processes: the loss is
        their mean, so a short last micro-batch weighs what its rows weigh, not 1 / accumulation steps."""
        if not batch_samples:
            return None
        key = "label" if self.kto else "same_prompt"
        count = torch.tensor(sum(len(b[key]) for b in batch_samples), device=device)
        if self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The mean loss over the accumulated batch's rows: this micro-batch's row losses summed and divided by
        `num_items_in_batch` (times the processes, whose gradients are averaged), or their mean without it."""
        mode = "train" if model.training else "eval"
        losses, aux = self._kto_loss(model, inputs, mode) if self.kto else self._pair_loss(model, inputs, mode)
        if num_items_in_batch is None:
            loss = losses.mean()
            if aux is not None:
                loss = loss + self.router_aux_loss_coef * aux
        else:
            total = losses.sum()
            if aux is not None:  # one value per forward: weighted by the rows it was computed on
                total = total + self.router_aux_loss_coef * aux * losses.numel()
            loss = total / num_items_in_batch * self.accelerator.num_processes
        return (loss, {}) if return_outputs else loss

    def _pair_loss(self, model, inputs: dict, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        count = 2 * len(inputs["same_prompt"])
        policy = self._logps(model, inputs, count, policy=True)
        if REF_COLUMNS[0] in inputs:
            ref = SequenceLogps(prompt=torch.cat([inputs["ref_chosen_prompt"], inputs["ref_rejected_prompt"]]),
                                response=torch.cat([inputs["ref_chosen_response"], inputs["ref_rejected_response"]]),
                                prompt_tokens=policy.prompt_tokens, response_tokens=policy.response_tokens)
        else:
            ref = self._reference_logps(inputs, count)
        (pc, pr), (rc, rr) = _split(policy), _split(ref)
        losses, out = None, None
        for shape, weight in self.args.weighted_loss_types:
            objective = Objective(self.objective.name, self.objective.scope, shape)
            part = preference_loss(pc, pr, rc, rr, objective, self.args.beta, self.args.loss_options)
            out = out or part
            if self.args.use_weighting:
                part.losses = part.losses * wpo_weights(pc, pr)
            losses = weight * part.losses if losses is None else losses + weight * part.losses
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
        m["logps/chosen"].append(gather(pc.response.detach()).mean().item())
        m["logps/rejected"].append(gather(pr.response.detach()).mean().item())
        if self.objective.scope == "joint":
            m["rewards/margins_prompt"].append(gather(out.margin_prompt).mean().item())
            m["rewards/margins_response"].append(gather(out.margin_response).mean().item())
        aux = policy.aux_loss
        if aux is not None:
            m["aux_loss"].append(gather(aux.detach().reshape(1)).mean().item())
        return losses, aux

    def _kto_loss(self, model, inputs: dict, mode: str) -> tuple[torch.Tensor, None]:
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
        return out.losses, None

    def training_step(self, *args, **kwargs):
        if not self.args.activation_offloading:
            return super().training_step(*args, **kwargs)
        # Activations saved for the backward pass live in CPU memory until it needs them.
        with torch.autograd.graph.save_on_cpu(pin_memory=torch.cuda.is_available()):
            return super().training_step(*args, **kwargs)

    # --- Trainer plumbing ------------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """As `Trainer.evaluate`; a raw dataset (or a dict / DatasetDict of them) passed here is tokenized first,
        and under --precompute_ref_log_probs given its reference log-probs, as at construction."""
        if eval_dataset is None or isinstance(eval_dataset, str):
            return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys,
                                    metric_key_prefix=metric_key_prefix)
        if self.args.precompute_ref_log_probs:
            if _streams(eval_dataset):
                raise JpoError(NO_STREAM_PRECOMPUTE)
            if not self._reference_available():
                self._reference_logps({}, 0)  # raises the one-line reason
        prepared, _ = self._prepare_eval(eval_dataset, self.args)
        if self.args.precompute_ref_log_probs:
            prepared = self._with_reference(prepared, "eval")
        if not isinstance(prepared, dict):
            return super().evaluate(eval_dataset=prepared, ignore_keys=ignore_keys,
                                    metric_key_prefix=metric_key_prefix)
        metrics = {}
        for name, dataset in prepared.items():
            metrics.update(super().evaluate(eval_dataset=dataset, ignore_keys=ignore_keys,
                                            metric_key_prefix=f"{metric_key_prefix}_{name}"))
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        if mode == "eval":
            metrics = {f"eval_{k}": v for k, v in metrics.items()}
        logs.update(metrics)
        super().log(logs, start_time)
        self._metrics[mode].clear()

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """The loss; with `compute_metrics`, also TRL's predictions: the logits of the [chosen; rejected] rows, with
        their input ids as labels."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
            if prediction_loss_only or "plain_input_ids" not in inputs:
                return loss.detach(), None, None
            logits = model(input_ids=inputs["plain_input_ids"], attention_mask=inputs["plain_attention_mask"],
                           use_cache=False).logits
        return loss.detach(), logits, inputs["plain_input_ids"]


def _split(logps: SequenceLogps) -> tuple[SequenceLogps, SequenceLogps]:
    """[chosen; rejected] stacked sequences -> (chosen, rejected) (the forward's aux_loss stays with neither)."""
    fields = (logps.prompt, logps.response, logps.prompt_tokens, logps.response_tokens, logps.wpo)
    parts = [(None, None) if t is None else t.chunk(2) for t in fields]
    return SequenceLogps(*(p[0] for p in parts)), SequenceLogps(*(p[1] for p in parts))
