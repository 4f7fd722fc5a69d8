"""`OnlineJPOConfig`: `JPOConfig` plus the online loop's settings, under TRL `OnlineDPOConfig`'s names where TRL has
the notion (`max_new_tokens`, `temperature`, `top_p`, `missing_eos_penalty`, `vllm_gpu_memory_utilization`).

(No `from __future__ import annotations` here: `HfArgumentParser` reads the real types.)
"""

from dataclasses import dataclass, field

from jpo.data.pairs import LABELLED, STRATEGIES
from jpo.errors import JpoError
from jpo.selection.selectors import SELECTORS
from jpo.train.config import JPOConfig

MODES = ("jpo", "dpo", "mix")
TRAIN_ON = ("round", "all")
REFERENCES = ("sft", "previous")
BACKENDS = ("transformers", "vllm")
PAIRING = tuple(s for s in STRATEGIES if s not in LABELLED)


@dataclass
class OnlineJPOConfig(JPOConfig):
    """Online preference training (`OnlineJPOTrainer`, `jpo.online.loop.train_online`): every `JPOConfig` field
    (each round's training uses them: objective, beta, learning rate, epochs or max_steps per round, ...) plus the
    loop's. Sampling defaults follow TRL's `OnlineDPOConfig` (64 new tokens, temperature 0.9, top_p 1.0).
    """

    mode: str = field(default="jpo", metadata={
        "help": "jpo: one sample per prompt, joint comparisons across prompts; dpo: two samples per prompt compared "
                "conditionally (online AI feedback, Guo et al. 2024); mix: both kinds in one round.",
        "choices": list(MODES)})
    samples_per_prompt: int | None = field(default=None, metadata={
        "help": "Responses sampled per prompt and round (default 1 for jpo, 2 for dpo and mix). Joint comparisons "
                "pair sample j of one prompt with sample j of others; conditional ones compare samples 2i and 2i+1."})
    rounds: int = field(default=2, metadata={"help": "Rounds of sample -> judge -> train."})
    prompts_per_round: int = field(default=64, metadata={
        "help": "Pool prompts per round, taken in a seeded order of the pool, wrapping around."})
    train_on: str = field(default="round", metadata={
        "help": "round: train on this round's decisive labels; all: on every round's so far.",
        "choices": list(TRAIN_ON)})
    ref_model: str = field(default="sft", metadata={
        "help": "The reference: sft (the model the loop started from) or previous (the policy at the start of each "
                "round, as iterative DPO).", "choices": list(REFERENCES)})
    generation_backend: str = field(default="transformers", metadata={
        "help": "transformers (any device) or vllm (a CUDA GPU; the policy's weights are loaded into the engine "
                "before each round, as TRL's online DPO does).", "choices": list(BACKENDS)})
    max_new_tokens: int = field(default=64, metadata={"help": "Most tokens generated per sample (TRL default 64)."})
    temperature: float = field(default=0.9, metadata={
        "help": "Sampling temperature (TRL default 0.9); 0 is greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    missing_eos_penalty: float | None = field(default=None, metadata={
        "help": "TRL's penalty for a sample without EOS. Verdicts have no scale to subtract it from, so any value "
                "means: a comparison where exactly one side ended without EOS is decided for the other side, without "
                "asking the judge (counted as eos_decided)."})
    generation_batch_size: int = field(default=16, metadata={"help": "Sequences per generate call (transformers)."})
    pairing_strategy: str = field(default="random", metadata={
        "help": "How joint comparisons pair prompts (`jpo pairs --strategy`).", "choices": list(PAIRING)})
    pairs_per_instance: int = field(default=1, metadata={
        "help": "Joint comparisons per sample (`jpo pairs --pairs-per-instance`)."})
    group_field: str | None = field(default=None, metadata={
        "help": "The prompts' task field for pairing_strategy cross-task (and the coverage selector's families)."})
    selector: str | None = field(default=None, metadata={
        "help": "Choose the joint comparisons with a `jpo select` selector instead of pairing_strategy: "
                "selection_budget of them per sample index out of selection_pool. The margin selectors score "
                "instances with the current policy against the reference (SimPO's reward while they are one model).",
        "choices": list(SELECTORS)})
    selection_budget: int | None = field(default=None, metadata={
        "help": "Joint comparisons the selector chooses per round and sample index (default: one per prompt)."})
    selection_pool: str = field(default="all", metadata={
        "help": "The selector's candidates: all pairs of the round's prompts, or K random partners each."})
    selection_judges: list[str] = field(default_factory=list, metadata={
        "help": "The disagreement selector's two cheap judges (judge specs)."})
    prompt_template: str | None = field(default=None, metadata={
        "help": "Wraps each prompt for the policy ({prompt} placeholder, or chat); judges see the bare prompt."})
    vllm_gpu_memory_utilization: float = field(default=0.55, metadata={
        "help": "Share of GPU memory vLLM may take (TRL default 0.55)."})

    def __post_init__(self) -> None:
        for name, valid in (("mode", MODES), ("train_on", TRAIN_ON), ("ref_model", REFERENCES),
                            ("generation_backend", BACKENDS), ("pairing_strategy", PAIRING)):
            if getattr(self, name) not in valid:
                raise JpoError(f"--{name} must be one of {', '.join(valid)}, not {getattr(self, name)!r}")
        if self.samples_per_prompt is None:
            self.samples_per_prompt = 1 if self.mode == "jpo" else 2
        if self.samples_per_prompt < 1 or (self.mode != "jpo" and self.samples_per_prompt % 2):
            raise JpoError(f"--samples_per_prompt {self.samples_per_prompt}: mode {self.mode} needs "
                           + ("at least 1" if self.mode == "jpo" else "an even number (samples 2i and 2i+1 are "
                                                                        "compared)"))
        for name in ("rounds", "prompts_per_round", "pairs_per_instance", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise JpoError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.missing_eos_penalty is not None and self.missing_eos_penalty <= 0:
            raise JpoError(f"--missing_eos_penalty must be positive (TRL's rule), got {self.missing_eos_penalty}")
        if self.selector is not None:
            from jpo.selection import parse_pool

            if self.selector not in SELECTORS:
                raise JpoError(f"--selector must be one of {', '.join(SELECTORS)}, not {self.selector!r}")
            if self.mode == "dpo":
                raise JpoError("--selector chooses joint comparisons: use it with mode jpo or mix")
            if self.selector == "disagreement" and len(self.selection_judges) != 2:
                raise JpoError("the disagreement selector needs two --selection_judges")
            self.selection_pool = parse_pool(self.selection_pool)
            if self.selection_budget is not None and self.selection_budget < 1:
                raise JpoError(f"--selection_budget must be at least 1, got {self.selection_budget}")
        if self.use_peft or self.load_in_4bit:
            raise JpoError("the online loop trains full weights; --use_peft / --load_in_4bit are not supported yet")
        super().__post_init__()

    @property
    def joint(self) -> bool:
        return self.mode in ("jpo", "mix")

    @property
    def conditional(self) -> bool:
        return self.mode in ("dpo", "mix")
