"""Sampling responses to evaluation prompts at several temperatures and seeds.

Prompts are tokenized exactly as training tokenizes them (`jpo.modeling.encode_text`): plain text with the tokenizer's
special tokens (BOS), conversations through the chat template with the generation prompt -- a model evaluated on a
prompt format it was not trained on is evaluated on the wrong task. Batches are left-padded (decoder-only models
continue from the last position), sorted by length so padding stays small, and pad falls back to EOS for
tokenizers without one (stories260K, Llama). Every (temperature, seed) pass reseeds torch, so a run is repeatable.

vLLM is used when installed and a GPU is present (`backend="auto"`), fed the same token ids.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jpo.errors import JpoError
from jpo.modeling import (
    encode_text,
    ensure_pad_token,
    load_model,
    load_tokenizer,
    pad,
    pick_device,
    set_chat_template,
    tokenizer_source,
)
from jpo.progress import progress_bar


def prompt_rows(prompts: Sequence[dict[str, Any] | str]) -> list[dict[str, Any]]:
    from jpo.data import item_id

    return [{"id": item_id(p), "prompt": p} if isinstance(p, str) else p for p in prompts]


def encode_prompt(tokenizer, prompt: Any) -> list[int]:
    return encode_text(tokenizer, prompt, generation_prompt=True)


def context_length(model) -> int | None:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_prompts(encoded: list[list[int]], limit: int | None, max_new_tokens: int) -> tuple[list[list[int]], int]:
    """Left-truncate prompts that leave no room for `max_new_tokens` (keeping the first token, usually BOS)."""
    if limit is None:
        return encoded, 0
    room = limit - max_new_tokens
    if room < 2:
        raise JpoError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's {limit} positions")
    fitted, truncated = [], 0
    for ids in encoded:
        if len(ids) > room:
            ids = ids[:1] + ids[len(ids) - room + 1:]
            truncated += 1
        fitted.append(ids)
    return fitted, truncated


def _rows(row: dict[str, Any], response: str, temperature: float, seed: int, generator: str) -> dict[str, Any]:
    extra = {k: v for k, v in row.items() if k != "reference"}
    return {**extra, "id": row["id"], "prompt": row["prompt"], "response": response, "temperature": temperature,
            "seed": seed, "generator": generator}


def generate(
    model,
    tokenizer,
    prompts: Sequence[dict[str, Any] | str],
    temperatures: Sequence[float] = (0.001, 0.5, 1.0),
    seeds: Sequence[int] = (0,),
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    top_p: float = 1.0,
    generator: str = "model",
    progress: bool = True,
    stats: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """One row `{id, prompt, response, temperature, seed, generator}` per prompt x temperature x seed (HF generate).

    `prompts` are rows `{id, prompt, ...}` (as `jpo.data.load_prompts` gives) or strings. Temperature <= 0 is greedy.
    Rows keep the prompt rows' extra fields but never their `reference`. A prompt longer than the model's context
    (less `max_new_tokens`) is left-truncated; `stats["prompts_truncated"]` (when `stats` is given) counts them."""
    import torch

    rows = prompt_rows(prompts)
    ensure_pad_token(tokenizer)
    encoded, truncated = fit_prompts([encode_prompt(tokenizer, r["prompt"]) for r in rows], context_length(model),
                                     max_new_tokens)
    if stats is not None:
        stats["prompts_truncated"] = truncated
    order = sorted(range(len(rows)), key=lambda i: len(encoded[i]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    out: dict[tuple[int, int, int], str] = {}
    bar = progress_bar(len(batches) * len(temperatures) * len(seeds), desc="generating", unit="batch",
                       enabled=progress)
    try:
        for t_index, temperature in enumerate(temperatures):
            for s_index, seed in enumerate(seeds):
                torch.manual_seed(seed)
                for batch in batches:
                    ids = pad([encoded[i] for i in batch], pad_id, side="left")
                    mask = pad([[1] * len(encoded[i]) for i in batch], 0, side="left")
                    width = ids.shape[1]
                    sampling = {"do_sample": True, "temperature": float(temperature), "top_p": top_p} \
                        if temperature > 0 else {"do_sample": False}
                    with torch.no_grad():
                        result = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                                max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos,
                                                **sampling)
                    for row, i in enumerate(batch):
                        new = result[row, width:].tolist()
                        if eos is not None and eos in new:
                            new = new[:new.index(eos)]
                        out[(t_index, s_index, i)] = tokenizer.decode(new, skip_special_tokens=True)
                    bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return [_rows(rows[i], out[(t, s, i)], temperature, seed, generator)
            for t, temperature in enumerate(temperatures) for s, seed in enumerate(seeds) for i in range(len(rows))]


def vllm_available() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def generate_vllm(
    model_path: str,
    tokenizer,
    prompts: Sequence[dict[str, Any] | str],
    temperatures: Sequence[float] = (0.001, 0.5, 1.0),
    seeds: Sequence[int] = (0,),
    *,
    max_new_tokens: int = 128,
    top_p: float = 1.0,
    generator: str = "model",
    stats: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """As `generate`, with vLLM on the same prompt token ids (a GPU and `pip install vllm` needed)."""
    from vllm import LLM, SamplingParams

    rows = prompt_rows(prompts)
    llm = LLM(model=model_path, seed=int(seeds[0]) if seeds else 0)
    limit = llm.llm_engine.model_config.max_model_len
    encoded, truncated = fit_prompts([encode_prompt(tokenizer, r["prompt"]) for r in rows], limit, max_new_tokens)
    if stats is not None:
        stats["prompts_truncated"] = truncated
    inputs = [{"prompt_token_ids": ids} for ids in encoded]
    results = []
    for temperature in temperatures:
        for seed in seeds:
            params = SamplingParams(temperature=max(0.0, float(temperature)), top_p=top_p if temperature > 0 else 1.0,
                                    max_tokens=max_new_tokens, seed=int(seed))
            outputs = llm.generate(inputs, params)
            results += [_rows(row, output.outputs[0].text, temperature, seed, generator)
                        for row, output in zip(rows, outputs, strict=True)]
    return results


def load_model_and_tokenizer(path: str, device: str | None = None, dtype: str | None = None):
    """A causal LM folder, or a PEFT adapter folder (its base model found through adapter_config.json)."""
    import torch

    folder = Path(path)
    if not folder.exists():
        raise JpoError(f"{path}: model folder not found")
    kwargs: dict[str, Any] = {}
    if dtype:
        kwargs["dtype"] = getattr(torch, dtype)
    auto_class = None
    if (folder / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM as auto_class
    model = load_model(path, auto_class, **kwargs)
    tokenizer = load_tokenizer(tokenizer_source(path))
    return model.to(pick_device(device)), tokenizer


@dataclass
class GenerateOptions:
    """How responses are sampled: the `jpo generate` flags and a recipe's `generate` section, declared here once."""

    temperatures: list[float] = field(default_factory=lambda: [0.001, 0.5, 1.0], metadata={
        "help": "comma-separated, e.g. 0.001,0.5,1.0 (0 is greedy)"})
    max_new_tokens: int = 128
    batch_size: int = 16
    top_p: float = 1.0
    backend: Literal["auto", "hf", "vllm"] = field(default="auto", metadata={
        "help": "auto: vLLM when installed and a GPU is present, else transformers"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available, else cpu)"})
    dtype: Literal["float32", "bfloat16", "float16"] | None = field(default=None, metadata={"help": "model dtype"})

    def __post_init__(self) -> None:
        """JpoError naming the option whose value no sampler takes (a negative temperature, an empty list...)."""
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise JpoError(f"temperatures must be one or more values >= 0 (0 is greedy), got {self.temperatures}")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise JpoError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.top_p <= 1.0:
            raise JpoError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.device is not None:
            import torch

            try:  # torch's own parser: the names it knows (cpu, cuda, cuda:1, mps, ...), not a list kept here
                torch.device(self.device)
            except RuntimeError as error:
                raise JpoError(f"device: {' '.join(str(error).split())}") from None


def generate_from(model_path: str, prompts: Sequence[dict[str, Any]], seeds: Sequence[int],
                  options: GenerateOptions | None = None, *, generator: str = "model", progress: bool = True,
                  chat_template_path: str | None = None, chat: bool = False,
                  stats: dict[str, int] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Generations of a saved model (what `jpo generate` and `jpo run` call) and the backend used: vLLM when asked,
    or with `auto` when it is installed and a GPU is present; else transformers.

    `chat_template_path` gives the tokenizer a chat template (TRL's name); `chat` sends each plain-text prompt as one
    user message through the chat template (conversational prompts always go through it) and writes it as given.
    `stats`, when given, receives `prompts_truncated` (prompts left-truncated to fit the model's context)."""
    options = options or GenerateOptions()
    if chat:  # the rows written keep each prompt as given
        originals = prompts
        prompts = [{**p, "prompt": [{"role": "user", "content": p["prompt"]}]} if isinstance(p["prompt"], str) else p
                   for p in prompts]
        rows, backend = generate_from(model_path, prompts, seeds, options, generator=generator, progress=progress,
                                      chat_template_path=chat_template_path, stats=stats)
        by_id = {p["id"]: p["prompt"] for p in originals}
        return [{**r, "prompt": by_id.get(r["id"], r["prompt"])} for r in rows], backend
    temperatures, max_new_tokens, top_p, backend = (options.temperatures, options.max_new_tokens, options.top_p,
                                                    options.backend)
    use_vllm = backend == "vllm" or (backend == "auto" and vllm_available())
    if backend == "vllm" and not vllm_available():
        raise JpoError("--backend vllm needs the vllm package and a CUDA GPU")
    if use_vllm:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        set_chat_template(tokenizer, chat_template_path)
        rows = generate_vllm(model_path, tokenizer, prompts, temperatures, seeds, max_new_tokens=max_new_tokens,
                             top_p=top_p, generator=generator, stats=stats)
        return rows, "vllm"
    model, tokenizer = load_model_and_tokenizer(model_path, options.device, options.dtype)
    set_chat_template(tokenizer, chat_template_path)
    rows = generate(model, tokenizer, prompts, temperatures, seeds, max_new_tokens=max_new_tokens,
                    batch_size=options.batch_size, top_p=top_p, generator=generator, progress=progress, stats=stats)
    return rows, "transformers"


def to_alpaca_eval(rows: Sequence[dict[str, Any]], temperature: float | None = None, seed: int | None = None,
                   dataset: str = "jpo") -> list[dict[str, Any]]:
    """AlpacaEval's `model_outputs.json` records `{instruction, output, generator, dataset}`: one per prompt, so one
    temperature and seed are chosen (default: the first present)."""
    if not rows:
        return []
    temperature = rows[0]["temperature"] if temperature is None else temperature
    seed = rows[0]["seed"] if seed is None else seed
    chosen = [r for r in rows if r["temperature"] == temperature and r["seed"] == seed]
    if not chosen:
        raise JpoError(f"no generations at temperature {temperature} and seed {seed}")
    records = []
    for row in chosen:
        prompt = row["prompt"]
        instruction = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        records.append({"instruction": instruction, "output": row["response"], "generator": row["generator"],
                        "dataset": row.get("dataset", dataset)})
    return records


def write_alpaca_eval(path: str | Path, rows: Sequence[dict[str, Any]],
                      temperature: float | None = None) -> list[dict[str, Any]]:
    """AlpacaEval's model_outputs.json (`to_alpaca_eval`) written to `path` (folders made); returns the records.
    What `jpo generate --alpaca_eval` and a recipe's `generate: {alpaca_eval: true}` write."""
    import json

    records = to_alpaca_eval(rows, temperature)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return records
