"""Configuration: `transformers.TrainingArguments` plus our fields, under TRL's names where TRL has the notion.

The dataclass docstrings and `help` texts are the documentation of `jpo train --help` and `jpo sft --help`.
(No `from __future__ import annotations` here: `HfArgumentParser` reads the real types.)
"""

import json
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from jpo.errors import JpoError
from jpo.train.losses import OBJECTIVES
from jpo.train.tokenize import TRUNCATION_MODES


def _cuda_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class ModelArguments:
    """Model loading and LoRA, shared by preference training and SFT (TRL's `ModelConfig` names)."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Local folder or hub name of a causal LM."})
    model_init_kwargs: dict | str | None = field(default=None, metadata={
        "help": "Keyword arguments (a JSON object) for AutoModelForCausalLM.from_pretrained when the model is given by "
                "name."})
    dataset_num_proc: int | None = field(default=None, metadata={"help": "Processes for tokenizing the dataset."})
    dataset: list[str] = field(default_factory=list, metadata={
        "help": "Training data file(s) or hub dataset name(s); several are concatenated in order (e.g. D_C and D_H)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code shipped with the checkpoint."})
    max_length: int | None = field(default=1024, metadata={
        "help": "Longest tokenized prompt + response (TRL default 1024). Longer rows are truncated by "
                "--truncation_mode, never losing EOS; rows that cannot fit are counted and left out."})
    max_prompt_length: int | None = field(default=None, metadata={
        "help": "If set, prompts longer than this are shortened from the left (keeping BOS) before --max_length."})
    truncation_mode: str = field(default="keep_start", metadata={
        "help": "keep_start: cut the end of the response (then EOS); keep_end: cut the oldest prompt tokens first.",
        "choices": list(TRUNCATION_MODES)})
    disable_dropout: bool = field(default=True, metadata={"help": "Zero every dropout in the model (TRL default)."})
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "Module names to adapt. Default: the attention and MLP projections of Llama/Mistral/Qwen-style "
                "models (q,k,v,o,gate,up,down_proj) where present, else every linear layer but the LM head."})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "Load the base model in 4-bit NF4 (QLoRA; needs bitsandbytes and a CUDA GPU). Implies --use_peft."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batch rows of similar length together (less padding); same as --train_sampling_strategy "
                "group_by_length."})


def _finish_common(args) -> None:
    if isinstance(args.model_init_kwargs, str):
        args.model_init_kwargs = json.loads(args.model_init_kwargs)
    if args.bf16 is None:
        args.bf16 = _cuda_bf16()
    if args.group_by_length:
        args.train_sampling_strategy = "group_by_length"
    if args.load_in_4bit:
        args.use_peft = True
    args.remove_unused_columns = False


@dataclass
class JPOConfig(ModelArguments, TrainingArguments):
    """Preference training (`JPOTrainer`, `jpo train`): `TrainingArguments` plus TRL's `DPOConfig` names and
    `objective`. Every `TrainingArguments` field is accepted under its own name.

    Defaults follow TRL's `DPOConfig` (beta 0.1, learning rate 1e-6, max_length 1024, logging every 10 steps, EOS
    appended, keep_start truncation), except that bf16 is on only where a CUDA GPU supports it, and gradient
    checkpointing is off (TRL turns it on; it changes no number, only trades speed for memory).
    """

    objective: str = field(default="jpo", metadata={
        "help": "jpo (joint, sigmoid), dpo (response, sigmoid), ipo (response, ipo), jipo (joint, ipo), kto.",
        "choices": list(OBJECTIVES)})
    loss_type: str | None = field(default=None, metadata={
        "help": "TRL's name for the loss shape (sigmoid, ipo, kto); overrides the shape of --objective, "
                "e.g. --objective jpo --loss_type ipo is jipo.", "choices": ["sigmoid", "ipo", "kto"]})
    beta: float = field(default=0.1, metadata={"help": "KL strength beta (IPO's tau)."})
    precompute_ref_log_probs: bool = field(default=False, metadata={
        "help": "Compute the reference log-probs once before training and cache them on disk, keyed by a fingerprint "
                "of model, data and tokenization; saves the reference forward pass at every step."})
    precompute_ref_batch_size: int | None = field(default=None, metadata={
        "help": "Batch size of the precomputation (default: per_device_train_batch_size)."})
    ref_cache_dir: str | None = field(default=None, metadata={
        "help": "Where cached reference log-probs live (default: $JPO_CACHE or ~/.cache/jpo)/ref_logps."})
    share_prefix: bool = field(default=True, metadata={
        "help": "Run each pair whose two prompts are equal as one sequence [prompt, chosen, rejected] with a block "
                "attention mask (the same log-probs, the prompt computed once); off by itself, with one log line, "
                "where the attention implementation takes no 4D mask."})
    skip_equal_prompt_terms: bool = field(default=True, metadata={
        "help": "Under the joint scope, skip the prompt tokens of rows whose two prompts are equal: their terms "
                "cancel (Lemma D.1), so the loss is the same and JPO costs what DPO costs on such rows."})
    logprob_chunk_size: int | None = field(default=None, metadata={
        "help": "Positions per LM-head chunk when computing log-probs (default: 2^24 / vocabulary size)."})
    desirable_weight: float = field(default=1.0, metadata={"help": "KTO: weight of desirable rows."})
    undesirable_weight: float = field(default=1.0, metadata={"help": "KTO: weight of undesirable rows."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Initial AdamW learning rate (TRL default 1e-6)."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps (TRL default 10)."})
    bf16: bool | None = field(default=None, metadata={
        "help": "bf16 mixed precision; default: on when a CUDA GPU supports it, else off."})

    def __post_init__(self) -> None:
        if isinstance(self.loss_type, list | tuple):  # TRL takes a list of loss types; one is supported here
            if len(self.loss_type) != 1:
                raise JpoError(f"--loss_type takes one loss shape, not {self.loss_type}")
            self.loss_type = self.loss_type[0]
        if self.loss_type not in (None, "sigmoid", "ipo", "kto"):
            raise JpoError(f"--loss_type must be sigmoid, ipo or kto, not {self.loss_type!r}")
        _finish_common(self)
        super().__post_init__()
        if self.beta <= 0:
            raise JpoError(f"--beta must be positive, got {self.beta}")

    @property
    def resolved_objective(self):
        from jpo.train.losses import Objective

        base = OBJECTIVES[self.objective]
        shape = self.loss_type or base.shape
        if shape == "kto" and base.scope == "joint":
            raise JpoError("KTO is defined on responses: use --objective kto (joint-scope KTO is not supported)")
        if shape == base.shape:
            return base
        name = next((n for n, o in OBJECTIVES.items() if o.scope == base.scope and o.shape == shape), None)
        return OBJECTIVES[name] if name else Objective(f"{base.scope}-{shape}", base.scope, shape)


# The name `train_preferences`, the runner and recipes have used; the same class.
PreferenceConfig = JPOConfig


@dataclass
class SFTConfig(ModelArguments, TrainingArguments):
    """Supervised fine-tuning (`jpo sft`) on instruction-response rows, TRL `SFTConfig` names and defaults."""

    completion_only_loss: bool = field(default=True, metadata={
        "help": "Loss on the response tokens and EOS only (TRL's default for prompt-completion data); "
                "--no_completion_only_loss also trains on the prompt tokens."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Initial AdamW learning rate (TRL SFT default)."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps (TRL default 10)."})
    bf16: bool | None = field(default=None, metadata={
        "help": "bf16 mixed precision; default: on when a CUDA GPU supports it, else off."})

    def __post_init__(self) -> None:
        _finish_common(self)
        super().__post_init__()
