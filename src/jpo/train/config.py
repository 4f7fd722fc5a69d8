"""Configuration: `transformers.TrainingArguments` plus our fields, under TRL's names where TRL has the notion.

The dataclass docstrings and `help` texts are the documentation of `jpo train --help` and `jpo sft --help`.
(No `from __future__ import annotations` here: `HfArgumentParser` reads the real types.)
"""

import json
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from jpo.errors import JpoError
from jpo.train.losses import F_DIVERGENCE_SHAPES, F_DIVERGENCES, OBJECTIVES, SHAPES
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
    chat_template_path: str | None = field(default=None, metadata={
        "help": "A Jinja chat template file (or a tokenizer folder/name whose template to use) for a base model "
                "trained on conversational data (TRL's name)."})
    max_length: int | None = field(default=1024, metadata={
        "help": "Longest tokenized prompt + response (TRL default 1024). Longer rows are truncated by "
                "--truncation_mode, never losing EOS; rows that cannot fit are counted and left out."})
    max_prompt_length: int | None = field(default=None, metadata={
        "help": "If set, prompts longer than this are shortened from the left (keeping BOS) before --max_length."})
    truncation_mode: str = field(default="keep_start", metadata={
        "help": "keep_start: cut the end of the response (then EOS); keep_end: cut the oldest prompt tokens first.",
        "choices": list(TRUNCATION_MODES)})
    pad_to_multiple_of: int | None = field(default=None, metadata={
        "help": "Pad each batch's length up to a multiple of this (TRL's 'auto' means none off Neuron)."})
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


# field -> (lowest, highest, whether the lowest is allowed (the highest never is), what the flag means): checked at
# construction, where TrainingArguments does not (it checks warmup_steps >= 0, in words that name no flag, and
# logging_steps != 0), so that a bad value is one line naming the flag, not a traceback from torch's optimizer or the
# tokenizer once training starts. A learning rate of 0 is allowed, as TRL and torch's optimizers allow it (a run
# that measures the reference's metrics without moving the policy).
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "learning_rate": (0, float("inf"), True, "non-negative"),
    "warmup_steps": (0, float("inf"), True, "non-negative"),
    "num_train_epochs": (0, float("inf"), False, "positive"),
    "per_device_train_batch_size": (1, float("inf"), True, "at least 1"),
    "per_device_eval_batch_size": (1, float("inf"), True, "at least 1"),
    "gradient_accumulation_steps": (1, float("inf"), True, "at least 1"),
    "weight_decay": (0, float("inf"), True, "non-negative"),
    "max_grad_norm": (0, float("inf"), True, "non-negative (0: no clipping)"),
    "adam_beta1": (0, 1, True, "in [0, 1)"),
    "adam_beta2": (0, 1, True, "in [0, 1)"),
    "adam_epsilon": (0, float("inf"), True, "non-negative"),
    "logging_steps": (0, float("inf"), True, "non-negative (a fraction of the steps below 1)"),
    "max_length": (1, float("inf"), True, "at least 1 (or unset)"),
    "max_prompt_length": (1, float("inf"), True, "at least 1 (or unset)"),
    "dataset_num_proc": (1, float("inf"), True, "at least 1 (or unset)"),
    "lora_r": (1, float("inf"), True, "at least 1"),
    "lora_alpha": (0, float("inf"), False, "positive"),
    "lora_dropout": (0, 1, True, "in [0, 1)"),
}


def _check_ranges(args) -> None:
    """JpoError naming the first flag whose value is out of its range (`_RANGES`; a None value is unset)."""
    for name, (low, high, closed, meaning) in _RANGES.items():
        value = getattr(args, name)
        if value is None:
            continue
        inside = low <= value < high if closed else low < value < high
        if not inside:
            raise JpoError(f"--{name} must be {meaning}, got {value}")
    if args.max_steps == 0 or args.max_steps < -1:
        raise JpoError(f"--max_steps must be positive, or -1 to train for --num_train_epochs, got {args.max_steps}")


def _finish_common(args) -> None:
    _check_ranges(args)
    if isinstance(args.pad_to_multiple_of, str):  # TRL's "auto" (no padding off Neuron) and CLI strings
        text = args.pad_to_multiple_of.lower()
        try:
            args.pad_to_multiple_of = None if text in ("auto", "none", "null") else int(text)
        except ValueError:
            raise JpoError(f"--pad_to_multiple_of must be a positive integer or auto, got {text!r}") from None
    if args.pad_to_multiple_of is not None and args.pad_to_multiple_of < 1:
        raise JpoError(f"--pad_to_multiple_of must be a positive integer, got {args.pad_to_multiple_of}")
    if isinstance(args.model_init_kwargs, str):
        args.model_init_kwargs = json.loads(args.model_init_kwargs)
    if args.bf16 is None:
        args.bf16 = _cuda_bf16()
    if args.group_by_length:
        args.train_sampling_strategy = "group_by_length"
    if args.load_in_4bit:
        args.use_peft = True
    args.remove_unused_columns = False


def _as_list(value, cast=str) -> list | None:
    """A TRL list field given as a list, a tuple, one value, or (CLI, recipe) a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    elif not isinstance(value, list | tuple):
        value = [value]
    return [cast(v) for v in value]


@dataclass
class JPOConfig(ModelArguments, TrainingArguments):
    """Preference training (`JPOTrainer`, `jpo train`): `TrainingArguments`, every field of TRL's `DPOConfig` with
    TRL's meaning and default, and `objective`. Every `TrainingArguments` field is accepted under its own name.

    `objective` picks the scope (jpo, jipo: joint; dpo, ipo, kto: response) and a default loss shape; `loss_type`
    (TRL's, a list) picks the shape(s) and composes with either scope, so `--objective jpo --loss_type hinge` is
    joint hinge and `--objective dpo --loss_type hinge` is TRL's hinge. Defaults follow TRL's `DPOConfig` (beta 0.1,
    learning rate 1e-6, max_length 1024, logging every 10 steps, EOS appended, keep_start truncation), except that
    bf16 is on only where a CUDA GPU supports it, and gradient checkpointing is off (TRL turns it on; it changes no
    number, only trades speed for memory). Invalid values fail here, at construction, with one line (a
    `JpoError`, which is a `ValueError`).
    """

    eval_dataset: list[str] = field(default_factory=list, metadata={
        "help": "Evaluation data file(s) for `jpo train` (any preference layout --dataset takes), evaluated at "
                "--eval_strategy as one set (metrics eval_loss, eval_rewards/...); in Python, pass eval_dataset= to "
                "JPOTrainer instead."})
    objective: str = field(default="jpo", metadata={
        "help": "jpo (joint, sigmoid), dpo (response, sigmoid), ipo (response, ipo), jipo (joint, ipo), kto. "
                "The scope stays; --loss_type replaces the shape.",
        "choices": list(OBJECTIVES)})
    loss_type: list[str] | None = field(default=None, metadata={
        "help": "TRL's loss type(s): " + ", ".join(SHAPES) + "; several (comma-separated) are summed with "
                "--loss_weights (MPO: sigmoid,bco_pair,sft). Default: the objective's shape (sigmoid for jpo/dpo)."})
    loss_weights: list[float] | None = field(default=None, metadata={
        "help": "Weights of the loss types, one each (default 1.0 each)."})
    beta: float = field(default=0.1, metadata={"help": "KL strength beta (IPO's tau)."})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "robust: probability a label is flipped, in [0, 0.5); exo_pair: EXO's epsilon (> 0, e.g. 1e-3); "
                "aot, aot_unpaired: label smoothing."})
    f_divergence_type: str = field(default="reverse_kl", metadata={
        "help": "f-DPO regulariser: reverse_kl (DPO), forward_kl, js_divergence, alpha_divergence; non-default only "
                "with " + ", ".join(F_DIVERGENCE_SHAPES) + ".", "choices": list(F_DIVERGENCES)})
    f_alpha_divergence_coef: float = field(default=0.5, metadata={
        "help": "alpha of --f_divergence_type alpha_divergence."})
    discopop_tau: float = field(default=0.05, metadata={"help": "DiscoPOP's temperature (loss_type discopop)."})
    use_weighting: bool = field(default=False, metadata={
        "help": "WPO: weight each pair by the policy's length-normalised probabilities of its two responses."})
    ld_alpha: float | None = field(default=None, metadata={
        "help": "LD-DPO: weight of response tokens beyond the shorter response's length, in [0, 1] (default: 1, "
                "no weighting)."})
    rpo_alpha: float | None = field(default=None, metadata={
        "help": "RPO: add rpo_alpha x the chosen responses' mean token NLL to the loss (older TRL's name; "
                "loss_type sft with a weight is the same term)."})
    sync_ref_model: bool = field(default=False, metadata={
        "help": "TR-DPO: every --ref_model_sync_steps steps set ref = alpha * policy + (1 - alpha) * ref."})
    ref_model_mixup_alpha: float = field(default=0.6, metadata={"help": "TR-DPO's alpha."})
    ref_model_sync_steps: int = field(default=512, metadata={"help": "TR-DPO's tau: steps between syncs."})
    router_aux_loss_coef: float | None = field(default=None, metadata={
        "help": "Mixture-of-Experts: weight of the router's load-balancing loss added to the loss (logged as "
                "aux_loss); default the model config's; 0 turns it off. An error with a model that has no router."})
    padding_free: bool | None = field(default=None, metadata={
        "help": "Pack the sequences of each batch end to end instead of padding them (TRL's name): with sdpa or eager "
                "attention into rows under a block-diagonal mask (equal-prompt pairs keeping their shared prompt, "
                "--share_prefix), the number and width of the rows (up to max_length x batch) chosen by a cost "
                "estimate; with flash-attention 2/3 into one row read through restarting position ids (no mask). "
                "Default (unset): on where the attention implementation takes it (on a GPU only flash-attention's "
                "varlen path: sdpa/eager packing measured slower there), else padded with one log line why; false: "
                "padded rows, as TRL; true: packed wherever the attention takes it (one log line where it cannot)."})
    pad_token: str | None = field(default=None, metadata={
        "help": "Padding token to set on the tokenizer (TRL: deprecated; default: the tokenizer's, else EOS)."})
    max_completion_length: int | None = field(default=None, metadata={
        "help": "If set, responses longer than this are shortened (keeping EOS) before --max_length."})
    activation_offloading: bool = field(default=False, metadata={
        "help": "Keep the activations saved for the backward pass in CPU memory (less GPU memory, slower)."})
    precompute_ref_log_probs: bool = field(default=False, metadata={
        "help": "Compute the reference log-probs once before training and cache them on disk, keyed by a fingerprint "
                "of model, data and tokenization; saves the reference forward pass at every step."})
    precompute_ref_batch_size: int | None = field(default=None, metadata={
        "help": "Batch size of the precomputation (default: per_device_train_batch_size for training data, "
                "per_device_eval_batch_size for evaluation data)."})
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
        if self.objective not in OBJECTIVES:
            raise JpoError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        base = OBJECTIVES[self.objective]
        self.loss_type = _as_list(self.loss_type) or [base.shape]
        self.loss_weights = _as_list(self.loss_weights, float)
        self._check_losses(base)
        if self.max_completion_length is not None and self.max_completion_length < 1:
            raise JpoError(f"--max_completion_length must be positive, got {self.max_completion_length}")
        if self.sync_ref_model and self.precompute_ref_log_probs:
            raise JpoError("--sync_ref_model updates the reference during training, so it cannot be precomputed: "
                           "drop --precompute_ref_log_probs or --sync_ref_model")
        if self.sync_ref_model and not 0.0 <= self.ref_model_mixup_alpha <= 1.0:
            raise JpoError(f"--ref_model_mixup_alpha must be in [0, 1], got {self.ref_model_mixup_alpha}")
        if self.sync_ref_model and self.ref_model_sync_steps < 1:
            raise JpoError(f"--ref_model_sync_steps must be positive, got {self.ref_model_sync_steps}")
        _finish_common(self)
        super().__post_init__()
        if self.beta <= 0:
            raise JpoError(f"--beta must be positive, got {self.beta}")

    def _check_losses(self, base) -> None:
        shapes = self.loss_type
        if "kto" in shapes:
            if shapes != ["kto"] or base.scope == "joint":
                raise JpoError("KTO is defined on unpaired responses: use --objective kto alone (no other loss type, "
                               "no joint scope)")
        elif base.shape == "kto":
            raise JpoError(f"--objective kto takes unpaired rows; --loss_type {','.join(shapes)} is pairwise: use "
                           "--objective dpo (response scope) or jpo (joint)")
        unknown = [s for s in shapes if s not in SHAPES and s != "kto"]
        if unknown:
            raise JpoError(f"unknown --loss_type {', '.join(unknown)}; expected one of {', '.join(SHAPES)}")
        if self.loss_weights is not None and len(self.loss_weights) != len(shapes):
            raise JpoError(f"--loss_weights has {len(self.loss_weights)} weight(s) for {len(shapes)} loss type(s) "
                           f"({', '.join(shapes)}): give one weight per loss type")
        if self.f_divergence_type not in F_DIVERGENCES:
            raise JpoError(f"--f_divergence_type must be one of {', '.join(F_DIVERGENCES)}, not "
                           f"{self.f_divergence_type!r}")
        if self.f_divergence_type != "reverse_kl" and not set(shapes) <= set(F_DIVERGENCE_SHAPES):
            raise JpoError(f"--f_divergence_type {self.f_divergence_type} is defined only for the loss types "
                           f"{', '.join(F_DIVERGENCE_SHAPES)} (f-DPO needs the chosen-rejected score difference), "
                           f"not {', '.join(shapes)}")
        smoothed = {"robust", "exo_pair", "aot", "aot_unpaired"}
        if self.label_smoothing and not set(shapes) & smoothed:
            # TRL before 0.20 applied it to sigmoid as cDPO; ignoring it silently would hide that it does nothing.
            raise JpoError(f"--label_smoothing {self.label_smoothing} has no effect on --loss_type "
                           f"{','.join(shapes)}: it is used only by {', '.join(sorted(smoothed))} (cDPO's noisy "
                           "labels: --loss_type robust)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise JpoError(f"--label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if "exo_pair" in shapes and not 0.0 < self.label_smoothing < 1.0:
            raise JpoError("--loss_type exo_pair needs --label_smoothing in (0, 1), EXO's epsilon (the paper "
                           "recommends 1e-3)")
        if "robust" in shapes and not 0.0 <= self.label_smoothing < 0.5:
            raise JpoError(f"--loss_type robust needs --label_smoothing in [0, 0.5) (a flip probability), got "
                           f"{self.label_smoothing}")
        if self.use_weighting and set(shapes) & {"aot", "aot_unpaired", "kto"}:
            raise JpoError("--use_weighting (WPO) is not defined for aot/aot_unpaired (they sort rows, which "
                           "misaligns per-pair weights) nor for kto")
        if self.ld_alpha is not None and not 0.0 <= self.ld_alpha <= 1.0:
            raise JpoError(f"--ld_alpha must be in [0, 1], got {self.ld_alpha}")
        if self.rpo_alpha is not None and self.rpo_alpha < 0:
            raise JpoError(f"--rpo_alpha must be non-negative, got {self.rpo_alpha}")

    @property
    def loss_options(self):
        from jpo.train.losses import LossOptions

        return LossOptions(label_smoothing=self.label_smoothing, f_divergence_type=self.f_divergence_type,
                           f_alpha_divergence_coef=self.f_alpha_divergence_coef, discopop_tau=self.discopop_tau)

    @property
    def weighted_loss_types(self) -> list[tuple[str, float]]:
        """(shape, weight) pairs, rpo_alpha as a weighted sft term (RPO is DPO + alpha x NLL of the chosen)."""
        weights = self.loss_weights or [1.0] * len(self.loss_type)
        pairs = list(zip(self.loss_type, weights, strict=True))
        if self.rpo_alpha:
            pairs.append(("sft", float(self.rpo_alpha)))
        return pairs

    @property
    def resolved_objective(self):
        """The `Objective` of the first loss type under the objective's scope (named as in `OBJECTIVES` where one
        is, else scope-shape, e.g. joint-hinge; several loss types are joined by +)."""
        from jpo.train.losses import Objective

        base = OBJECTIVES[self.objective]

        def named(shape: str) -> str:
            found = next((n for n, o in OBJECTIVES.items() if o.scope == base.scope and o.shape == shape), None)
            return found or f"{base.scope}-{shape}"

        name = "+".join(named(s) for s in self.loss_type)
        return Objective(name, base.scope, self.loss_type[0])


# The name `train_preferences`, the runner and recipes have used; the same class.
PreferenceConfig = JPOConfig


@dataclass
class SFTConfig(ModelArguments, TrainingArguments):
    """Supervised fine-tuning (`jpo sft`) on instruction-response rows, TRL `SFTConfig` names and defaults."""

    completion_only_loss: bool = field(default=True, metadata={
        "help": "Loss on the response tokens and EOS only (TRL's default for prompt-completion data); "
                "--no_completion_only_loss also trains on the prompt tokens."})
    padding_free: bool | None = field(default=None, metadata={
        "help": "Pack the rows of each batch end to end instead of padding them (TRL's name): with sdpa or eager "
                "attention into rows under a block-diagonal mask, their number and width (up to max_length x "
                "batch) chosen by a cost estimate; with flash-attention 2/3 into one row read through restarting "
                "position ids. Each row stays its own sequence (unlike TRL's --packing, which cuts the data into "
                "fixed-length blocks). Default (unset): on where the attention implementation takes it (on a GPU only "
                "flash-attention's varlen path: sdpa/eager packing measured slower there), else padded with one log "
                "line why; false: padded rows."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Initial AdamW learning rate (TRL SFT default)."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps (TRL default 10)."})
    bf16: bool | None = field(default=None, metadata={
        "help": "bf16 mixed precision; default: on when a CUDA GPU supports it, else off."})

    def __post_init__(self) -> None:
        _finish_common(self)
        super().__post_init__()
