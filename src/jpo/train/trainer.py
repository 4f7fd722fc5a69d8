"""`PreferenceTrainer`: DPO / IPO / JPO / joint IPO / KTO as a `transformers.Trainer`.

One training step, read top to bottom in `compute_loss`: sequence log-probs of the policy (prompt and response parts),
the same for the reference (live, adapters disabled, or precomputed), the objective's loss on them (losses.py), and
the metrics under TRL's names. Being a `Trainer`, it runs wherever transformers does (accelerate, DDP, DeepSpeed,
FSDP), checkpoints and resumes the usual way.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import Trainer

from jpo.errors import JpoError
from jpo.train import reference
from jpo.train.config import PreferenceConfig
from jpo.train.data import EncodedDataset, LengthGrouping, PreferenceCollator
from jpo.train.logprobs import sequence_logps
from jpo.train.losses import SequenceLogps, kto_kl, kto_loss, preference_loss
from jpo.train.modeling import is_peft
from jpo.train.tokenize import Encoder

PAIR_PARTS = ("chosen_prompt", "chosen_response", "rejected_prompt", "rejected_response")
KTO_PARTS = ("response",)


class PreferenceTrainer(LengthGrouping, Trainer):
    def __init__(self, model, args: PreferenceConfig, train_dataset: EncodedDataset, encoder: Encoder,
                 ref_model=None, eval_dataset: EncodedDataset | None = None, **kwargs) -> None:
        self.objective = args.resolved_objective
        self.kto = self.objective.shape == "kto"
        if self.kto and args.per_device_train_batch_size < 2:
            raise JpoError("KTO needs --per_device_train_batch_size >= 2: its KL reference point pairs each prompt "
                           "with another row's completion in the batch")
        if args.precompute_ref_log_probs and eval_dataset is not None:
            raise JpoError("--precompute_ref_log_probs covers the training set only; evaluate with a live reference")
        if self.kto and args.precompute_ref_log_probs:
            raise JpoError("--precompute_ref_log_probs is not supported with --objective kto: the KL pairs "
                           "(prompt i, completion i-1) change with every shuffled batch")
        collator = PreferenceCollator(pad_token_id=encoder.tokenizer.pad_token_id,
                                      count_prompt=self.objective.scope == "joint",
                                      skip_equal_prompts=args.skip_equal_prompt_terms, kto=self.kto, encoder=encoder)
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         data_collator=collator, processing_class=encoder.tokenizer, **kwargs)
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: Trainer divides it for accumulation
        self.encoder = encoder
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.ref_model = None
        if args.precompute_ref_log_probs:
            self._precompute_reference(ref_model)
        elif ref_model is not None or not is_peft(self.model):
            ref = ref_model if ref_model is not None else copy.deepcopy(self.model)
            ref.requires_grad_(False)
            self.ref_model = self.accelerator.prepare_model(ref.eval(), evaluation_mode=True)

    # --- log-probs -------------------------------------------------------------------------------------------
    def _logps(self, model, inputs: dict, prefix: str = "") -> SequenceLogps:
        unwrapped = self.accelerator.unwrap_model(model)
        head_model = unwrapped.get_base_model() if is_peft(unwrapped) else unwrapped
        return sequence_logps(model, head_model, inputs[f"{prefix}input_ids"], inputs[f"{prefix}attention_mask"],
                              inputs[f"{prefix}segments"], chunk_size=self.args.logprob_chunk_size)

    @torch.no_grad()
    def _reference_logps(self, inputs: dict, prefix: str = "") -> SequenceLogps:
        if self.ref_model is not None:
            return self._logps(self.ref_model, inputs, prefix)
        unwrapped = self.accelerator.unwrap_model(self.model)
        if not is_peft(unwrapped):
            raise JpoError("no reference model: pass ref_model, use --use_peft, or --precompute_ref_log_probs")
        with unwrapped.disable_adapter():
            return self._logps(self.model, inputs, prefix)

    def _precompute_reference(self, ref_model) -> None:
        """Reference log-probs of the whole training set, from disk when this model + data were seen before."""
        ref = ref_model if ref_model is not None else self.model
        # Full fine-tuning: the policy before its first step is the reference. PEFT: the base, adapters disabled.
        self.ref_model = None if ref_model is None and is_peft(self.model) else ref
        collator = self.data_collator
        settings = {**self.encoder.settings, "count_prompt": collator.count_prompt,
                    "skip_equal": collator.skip_equal_prompts}
        dataset = self.train_dataset
        path = reference.cache_path(self.args.ref_cache_dir, reference.model_fingerprint(ref),
                                    reference.data_fingerprint(dataset.items, settings))
        table = reference.load_cached(path)
        if table is None:
            table = {part: torch.zeros(len(dataset), dtype=torch.float64) for part in PAIR_PARTS}
            # Longest first: each batch holds rows of similar length (little padding), and an out-of-memory shows at once.
            lengths = dataset.lengths
            by_length = sorted(range(len(dataset)), key=lambda i: -lengths[i])
            loader = DataLoader(dataset, batch_size=self.args.precompute_ref_batch_size
                                or self.args.per_device_train_batch_size, collate_fn=collator, sampler=by_length)
            was_training = ref.training
            ref.eval()
            device = self.args.device
            ref.to(device)
            for batch in tqdm(loader, desc="reference log-probs", disable=not self.is_local_process_zero()):
                batch = {k: v.to(device) for k, v in batch.items()}
                with self.accelerator.autocast():
                    logps = self._reference_logps(batch)
                chosen_prompt, rejected_prompt = logps.prompt.chunk(2)
                chosen_response, rejected_response = logps.response.chunk(2)
                idx = batch["index"].cpu()
                for part, values in zip(PAIR_PARTS, (chosen_prompt, chosen_response, rejected_prompt,
                                                     rejected_response), strict=True):
                    table[part][idx] = values.double().cpu()
            ref.train(was_training)
            if self.is_world_process_zero():
                reference.save_cached(path, table)
        self.ref_model = None  # never needed again: the table replaces it
        self.ref_cache_file = path
        collator.ref_table = {k: v.float() for k, v in table.items()}

    # --- the step ------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        loss = self._kto_loss(model, inputs, mode) if self.kto else self._pair_loss(model, inputs, mode)
        return (loss, {}) if return_outputs else loss

    def _pair_loss(self, model, inputs: dict, mode: str) -> torch.Tensor:
        policy = self._logps(model, inputs)
        if "ref_chosen_response" in inputs:
            ref = SequenceLogps(prompt=torch.cat([inputs["ref_chosen_prompt"], inputs["ref_rejected_prompt"]]),
                                response=torch.cat([inputs["ref_chosen_response"], inputs["ref_rejected_response"]]),
                                prompt_tokens=policy.prompt_tokens, response_tokens=policy.response_tokens)
        else:
            ref = self._reference_logps(inputs)
        halves = [_split(policy), _split(ref)]
        out = preference_loss(halves[0][0], halves[0][1], halves[1][0], halves[1][1], self.objective, self.args.beta)
        gather = self.accelerator.gather
        chosen, rejected = gather(out.chosen_rewards), gather(out.rejected_rewards)
        m = self._metrics[mode]
        m["rewards/chosen"].append(chosen.mean().item())
        m["rewards/rejected"].append(rejected.mean().item())
        m["rewards/accuracies"].append((chosen > rejected).float().mean().item())
        m["rewards/margins"].append((chosen - rejected).mean().item())
        m["logps/chosen"].append(gather(halves[0][0].response.detach()).mean().item())
        m["logps/rejected"].append(gather(halves[0][1].response.detach()).mean().item())
        if self.objective.scope == "joint":
            m["rewards/margins_prompt"].append(gather(out.margin_prompt).mean().item())
            m["rewards/margins_response"].append(gather(out.margin_response).mean().item())
        return out.losses.mean()

    def _kto_loss(self, model, inputs: dict, mode: str) -> torch.Tensor:
        with torch.no_grad():
            kl_policy = self._logps(model, inputs, "kl_").response
        kl_ref = self._reference_logps(inputs, "kl_").response
        kl = self.accelerator.gather(kto_kl(kl_policy, kl_ref).unsqueeze(0)).mean()
        policy = self._logps(model, inputs).response
        ref = self._reference_logps(inputs).response
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

    # --- Trainer plumbing ----------------------------------------------------------------------------------------
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
    """[chosen; rejected] stacked rows -> (chosen, rejected)."""
    parts = [t.chunk(2) for t in (logps.prompt, logps.response, logps.prompt_tokens, logps.response_tokens)]
    return SequenceLogps(*(p[0] for p in parts)), SequenceLogps(*(p[1] for p in parts))
