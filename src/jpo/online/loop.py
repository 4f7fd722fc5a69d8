"""Online JPO: preference training on the policy's own samples, judged while it trains.

Online AI feedback (Guo et al. 2024; TRL's online DPO) samples two responses per prompt from the current policy and
asks an annotator which is better. A joint comparison needs one sample per prompt: two prompts' samples are compared
with each other. `train_online` runs either, or both in one round, for `rounds` rounds:

1. the round's `prompts_per_round` pool prompts (a seeded order of the pool, walked in turn, wrapping around);
2. `samples_per_prompt` samples per prompt from the current policy (transformers, or vLLM with the policy's weights
   loaded into the engine before each round, as TRL's online DPO does);
3. comparisons: joint (mode jpo or mix) pair sample j of a prompt with sample j of other prompts by a `jpo pairs`
   strategy; conditional (mode dpo or mix) compare samples 2i and 2i+1 of one prompt;
4. judged in both orders with a flip as a tie (`jpo.feedback.runner`, the same protocol as `jpo judge`), each
   verdict kept in a SQLite store;
5. one `JPOTrainer` run on the decisive labels of the round (`train_on: round`) or of every round so far (`all`),
   against the model the loop started from (`ref_model: sft`) or the policy at the round's start (`previous`).

Files under `output_dir`: `loop.json` (the settings a resumed run must share), `rounds/round-NNN/` holds `samples.jsonl` (+ `generation.json`), `labeled.jsonl` (+
`judging.json`), `preferences.jsonl` (the decisive rows), `model/` (the policy after the round) and `round.json`
(the round's cost entry, written last: a round is finished when it exists). `online_log.jsonl` is one line per
finished round; `verdicts.sqlite` the verdict store; the final policy and tokenizer are saved in `output_dir`.

Resuming: a rerun with the same `output_dir` loads the policy of the last finished round and starts at the next one;
a finished round's samples and verdicts are read, never regenerated or re-judged; a round killed half-way reuses
whichever of its samples and labels were written (and the store answers verdicts already received).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.data import item_id, items_to_preferences, read_jsonl, write_jsonl
from jpo.data.pairs import PairReport, build_pairs
from jpo.errors import JpoError
from jpo.feedback.base import Judge, JudgeOptions
from jpo.online.config import OnlineJPOConfig

logger = logging.getLogger(__name__)

LOG = "online_log.jsonl"


@dataclass
class OnlineResult:
    """What `train_online` did: the log entries of every finished round (those of earlier runs included), which
    rounds this call ran and which it found finished, the prompt pool's size, and the final policy."""

    output_dir: str
    rounds: list[dict[str, Any]]
    ran: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    pool: dict[str, int] = field(default_factory=dict)  # distinct prompts, and repeats left out of the pool
    model: Any = None

    def summary(self) -> str:
        last = self.rounds[-1]["cumulative"] if self.rounds else {}
        return (f"{len(self.rounds)} rounds ({len(self.resumed)} finished earlier): {last.get('samples', 0)} samples, "
                f"{last.get('judge_questions', 0)} judge questions, {last.get('decisive', 0)} decisive labels; "
                f"saved to {self.output_dir}")


# --- prompts -----------------------------------------------------------------------------------------------------


def prompt_pool(prompts: Any) -> tuple[list[dict[str, Any]], int]:
    """Rows `{prompt, ...}` from strings, row dicts or a `datasets.Dataset` with a `prompt` column, one per distinct
    prompt; returns (rows, repeats left out)."""
    rows, seen, repeats = [], set(), 0
    for index, prompt in enumerate(prompts):
        row = {"prompt": prompt} if isinstance(prompt, str | list) else dict(prompt)
        if "prompt" not in row:
            raise JpoError(f"prompt {index + 1}: expected a string or a row with a 'prompt' field, got keys "
                           f"{sorted(row)}")
        key = json.dumps(row["prompt"], sort_keys=True)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        rows.append(row)
    if not rows:
        raise JpoError("the online loop needs prompts: the pool is empty")
    return rows, repeats


def round_prompts(pool: list[dict[str, Any]], size: int, round_no: int, seed: int) -> list[dict[str, Any]]:
    """Round `round_no` (from 1)'s prompts: the pool in one seeded order, `size` at a time, wrapping around; the
    same for a given pool and seed, so a resumed loop takes the prompts it would have taken."""
    if size > len(pool):
        raise JpoError(f"prompts_per_round {size} exceeds the pool's {len(pool)} distinct prompts")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    start = (round_no - 1) * size
    return [pool[order[(start + i) % len(pool)]] for i in range(size)]


def _templated(prompt: Any, template: str | None) -> Any:
    from jpo.modeling import apply_template

    return apply_template([{"prompt": prompt}], template, "prompts")[0]["prompt"]


# --- sampling ----------------------------------------------------------------------------------------------------


def sample_transformers(model, tokenizer, prompts: Sequence[Any], n: int, *, max_new_tokens: int, temperature: float,
                        top_p: float, batch_size: int, seed: int) -> list[list[dict[str, Any]]]:
    """`n` samples per prompt with `model.generate`: per prompt, a list of `{response, tokens, eos, prompt_truncated}`
    where `tokens` counts the generated tokens up to and including EOS, `eos` says whether EOS came before
    `max_new_tokens`, and `prompt_truncated` whether the prompt was left-truncated to fit the model's context.
    Prompts are tokenized as `jpo generate` tokenizes them; temperature <= 0 is greedy."""
    import torch

    from jpo.evaluate.generate import context_length, encode_prompt, fit_prompts
    from jpo.modeling import ensure_pad_token, pad

    ensure_pad_token(tokenizer)
    full = [encode_prompt(tokenizer, p) for p in prompts]
    encoded, _ = fit_prompts(full, context_length(model), max_new_tokens)
    flat = [(i, j) for i in range(len(prompts)) for j in range(n)]
    order = sorted(range(len(flat)), key=lambda k: len(encoded[flat[k][0]]))
    eos, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(model.parameters()).device
    sampling = {"do_sample": True, "temperature": float(temperature), "top_p": top_p} if temperature > 0 \
        else {"do_sample": False}
    out: list[list[dict[str, Any] | None]] = [[None] * n for _ in prompts]
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    try:
        for start in range(0, len(order), batch_size):
            batch = [flat[k] for k in order[start:start + batch_size]]
            ids = pad([encoded[i] for i, _ in batch], pad_id, side="left")
            mask = pad([[1] * len(encoded[i]) for i, _ in batch], 0, side="left")
            with torch.no_grad():
                result = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                        max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos,
                                        **sampling)
            for row, (i, j) in enumerate(batch):
                new = result[row, ids.shape[1]:].tolist()
                ended = eos is not None and eos in new
                new = new[:new.index(eos) + 1] if ended else new
                out[i][j] = {"response": tokenizer.decode(new, skip_special_tokens=True), "tokens": len(new),
                             "eos": ended, "prompt_truncated": len(encoded[i]) < len(full[i])}
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


class VLLMSampler:
    """Sampling with vLLM on a CUDA GPU, the engine's weights replaced by the policy's before each round (TRL's
    `_move_model_to_vllm` for a plain, unsharded model: `load_weights` on the engine's model, then
    `reset_prefix_cache`). Untested here: vLLM is not installed on the machines this was written on."""

    def __init__(self, model_path: str, config: OnlineJPOConfig) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise JpoError("generation_backend vllm needs the vllm package and a CUDA GPU (pip install vllm); use "
                           "generation_backend transformers") from None
        self.params = SamplingParams
        self.llm = LLM(model=model_path, seed=config.seed, trust_remote_code=config.trust_remote_code,
                       gpu_memory_utilization=config.vllm_gpu_memory_utilization)
        self.config = config

    def sync(self, model) -> None:
        engine = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        engine.load_weights((name, param.data) for name, param in model.named_parameters())
        self.llm.reset_prefix_cache()

    def sample(self, model, tokenizer, prompts: Sequence[Any], n: int, seed: int) -> list[list[dict[str, Any]]]:
        from jpo.evaluate.generate import encode_prompt, fit_prompts

        self.sync(model)
        c = self.config
        limit = self.llm.llm_engine.model_config.max_model_len
        full = [encode_prompt(tokenizer, p) for p in prompts]
        encoded, _ = fit_prompts(full, limit, c.max_new_tokens)
        params = self.params(n=n, temperature=max(0.0, c.temperature), top_p=c.top_p, max_tokens=c.max_new_tokens,
                             seed=seed)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False)
        return [[{"response": o.text, "tokens": len(o.token_ids), "eos": o.finish_reason == "stop",
                  "prompt_truncated": len(ids) < len(whole)} for o in output.outputs]
                for output, ids, whole in zip(outputs, encoded, full, strict=True)]


# --- comparisons -------------------------------------------------------------------------------------------------


def comparisons(samples: list[dict[str, Any]], config: OnlineJPOConfig, seed: int,
                choose=None) -> tuple[list[dict[str, Any]], PairReport]:
    """The round's comparison items from its sample rows `{prompt, sample, response, eos, ...}`: joint items
    (`kind` joint) pairing sample j across prompts by `config.pairing_strategy` (or `choose(instances, seed)`, a
    selector's choice), and conditional items (`kind` conditional) comparing samples 2i and 2i+1 of a prompt. Each
    side's `eos` travels as `eos_a` / `eos_b`."""
    report = PairReport()
    items: list[dict[str, Any]] = []
    eos = {(json.dumps(s["prompt"], sort_keys=True), s["response"]): s["eos"] for s in samples}
    if config.joint:
        for j in range(config.samples_per_prompt):
            instances = [{k: v for k, v in s.items() if k not in ("sample", "tokens", "eos")}
                         for s in samples if s["sample"] == j]
            part = PairReport()
            if choose is None:
                built = build_pairs(instances, kind="sft", strategy=config.pairing_strategy,
                                    pairs_per_instance=config.pairs_per_instance, seed=seed + j,
                                    group=config.group_field, report=part)
            else:
                built, summary = choose(instances, seed + j)
                part.items, part.notes = len(built), [summary]
            items += [{**item, "kind": "joint"} for item in built]
            report.items += part.items
            report.notes += part.notes
    if config.conditional:
        by_prompt: dict[str, list[dict[str, Any]]] = {}
        for s in samples:
            by_prompt.setdefault(json.dumps(s["prompt"], sort_keys=True), []).append(s)
        for group in by_prompt.values():
            group.sort(key=lambda s: s["sample"])
            for first, second in zip(group[0::2], group[1::2], strict=True):
                prompt = first["prompt"]
                items.append({"id": item_id(prompt, first["response"], second["response"]), "prompt_a": prompt,
                              "response_a": first["response"], "prompt_b": prompt,
                              "response_b": second["response"], "kind": "conditional"})
                report.items += 1
    for item in items:
        item["eos_a"] = eos[json.dumps(item["prompt_a"], sort_keys=True), item["response_a"]]
        item["eos_b"] = eos[json.dumps(item["prompt_b"], sort_keys=True), item["response_b"]]
    return items, report


def _selector(config: OnlineJPOConfig, policy, ref_model, tokenizer, earlier: list[dict[str, Any]],
              judge_options: JudgeOptions | None):
    """`choose(instances, seed) -> (items, summary)`: `config.selector` picking `selection_budget` joint comparisons
    (default: one per instance) out of `selection_pool` over the round's instances of one sample index.

    Margin selectors score each instance with `jpo.selection.scores.joint_logps`: JPO's implicit reward
    beta * (log pi - log pi_ref) once the policy has trained away from the reference, SimPO's length-normalised
    log-likelihood while they are one model (round 1, or `ref_model: previous`), as the active loop does."""
    import numpy as np

    from jpo.feedback import make_judge
    from jpo.selection import select
    from jpo.selection.scores import joint_logps

    judges = [make_judge(spec, judge_options) for spec in config.selection_judges]
    same_model = config.ref_model == "previous" or not any(e["train_steps"] for e in earlier)

    def choose(instances: list[dict[str, Any]], seed: int) -> tuple[list[dict[str, Any]], str]:
        rewards = None
        if config.selector in ("uncertainty", "certainty"):
            own, tokens = joint_logps(policy, tokenizer, instances, max_length=config.max_length)
            if same_model:
                with np.errstate(invalid="ignore", divide="ignore"):
                    rewards = own / tokens
            else:
                ref, _ = joint_logps(ref_model, tokenizer, instances, max_length=config.max_length)
                rewards = config.beta * (own - ref)
        budget = config.selection_budget or len(instances)
        items, report = select(instances, config.selector, budget, pool=config.selection_pool, seed=seed,
                               rewards=rewards, judges=judges, group=config.group_field)
        return items, report.summary()

    return choose


def judge_round(items: list[dict[str, Any]], judge: Judge, store, config: OnlineJPOConfig) -> tuple[
        list[dict[str, Any]], dict[str, Any]]:
    """Items with labels: decided by `missing_eos_penalty` where exactly one side lacks EOS (when set), else by the
    judge in both orders (flip = tie). Returns (labelled items, the judging account)."""
    from jpo.feedback.runner import judge_items, labeled_rows

    labelled: list[dict[str, Any] | None] = [None] * len(items)
    asked: list[int] = []
    for index, item in enumerate(items):
        if config.missing_eos_penalty is not None and item["eos_a"] != item["eos_b"]:
            labelled[index] = {**item, "label": "a" if item["eos_a"] else "b", "decided_by": "missing_eos_penalty"}
        else:
            asked.append(index)
    stats: dict[str, Any] = {"judge": judge.id, "judge_asked": 0, "judge_reused": 0,
                             "eos_decided": len(items) - len(asked)}
    if asked:
        questions = [items[i] for i in asked]
        run = judge_items(questions, judge, store=store, progress=False, description="judging samples")
        run.require_valid("online comparisons")
        for index, row in zip(asked, labeled_rows(questions, run), strict=True):
            labelled[index] = row
        stats.update(judge_asked=run.asked, judge_reused=run.reused)
    return labelled, stats  # type: ignore[return-value]


# --- the loop ----------------------------------------------------------------------------------------------------


def _round_args(config: OnlineJPOConfig, folder: Path, round_no: int):
    """The round's `JPOConfig`: every training field of `config`, seeded per round (data order), saving nothing
    itself (the loop saves the policy once the round is trained)."""
    import dataclasses

    from jpo.train.config import JPOConfig

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(JPOConfig) if f.init}
    values.update(output_dir=str(folder / "train"), seed=config.seed + round_no - 1, save_strategy="no")
    return JPOConfig(**values)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# What a finished round's samples and verdicts depend on; a resumed loop must have the same, or it would mix rounds
# of two different experiments in one log. `rounds` may grow; training settings may change between rounds.
LOOP_SETTINGS = ("mode", "samples_per_prompt", "prompts_per_round", "pairing_strategy", "pairs_per_instance",
                 "group_field", "selector", "selection_budget", "selection_pool", "selection_judges", "max_new_tokens",
                 "temperature", "top_p", "missing_eos_penalty", "prompt_template", "seed", "train_on", "ref_model")


def _check_settings(out: Path, config: OnlineJPOConfig, pool: list[dict[str, Any]], judge: Judge,
                    resuming: bool) -> None:
    """Write `loop.json` (the loop settings, the judge and a hash of the pool) on a fresh start; on resume, raise
    JpoError naming what differs from the run being resumed."""
    import hashlib

    settings = {name: getattr(config, name) for name in LOOP_SETTINGS}
    settings["judge"] = judge.id
    settings["pool"] = hashlib.sha256(json.dumps([r["prompt"] for r in pool], sort_keys=True).encode()).hexdigest()
    settings = json.loads(json.dumps(settings))  # as it reads back
    path = out / "loop.json"
    if resuming and path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            shown = ", ".join(f"{k}: {before.get(k)!r} -> {settings[k]!r}" for k in changed)
            raise JpoError(f"{out}: resuming a loop run with other settings ({shown}); use another output_dir")
    else:
        _write_json(path, settings)


def _finished_rounds(rounds_dir: Path) -> list[dict[str, Any]]:
    entries = []
    number = 1
    while (rounds_dir / f"round-{number:03d}" / "round.json").exists():
        entries.append(json.loads((rounds_dir / f"round-{number:03d}" / "round.json").read_text(encoding="utf-8")))
        number += 1
    return entries


def train_online(config: OnlineJPOConfig | dict, prompts: Any, judge: str | Judge, *, model=None, tokenizer=None,
                 ref_model=None, judge_options: JudgeOptions | None = None) -> OnlineResult:
    """Run (or resume) the online loop of the module doc and save the final policy to `config.output_dir`.

    `prompts`: the pool (strings, rows `{prompt, ...}` or a dataset with a `prompt` column); extra fields (a task
    `family`) travel with the samples. `judge`: a `--judge` spec (`oracle`, `openai:gpt-4o-mini`, ...) or a `Judge`.
    `model` / `tokenizer` skip loading `config.model_name_or_path`; `ref_model` replaces the `sft` reference.
    Errors: JpoError (one line) for bad settings, an empty or too small pool, a judge with no valid verdict.
    """
    from jpo.feedback import make_judge
    from jpo.feedback.store import VerdictStore
    from jpo.modeling import load_tokenizer
    from jpo.train.api import _as_config
    from jpo.train.policy import disable_dropout, load_policy

    config = _as_config(config, OnlineJPOConfig)
    pool, repeats = prompt_pool(prompts)
    if isinstance(judge, str):
        judge = make_judge(judge, judge_options)
    out = Path(config.output_dir)
    rounds_dir = out / "rounds"
    rounds_dir.mkdir(parents=True, exist_ok=True)
    source = model if model is not None else config.model_name_or_path
    if source is None:
        raise JpoError("train_online needs a model: pass model= or set model_name_or_path")
    if tokenizer is None:
        name = source if isinstance(source, str) else getattr(source, "name_or_path", "")
        if not name:
            raise JpoError("train_online: pass tokenizer= (processing_class) with a model object that has no path")
        tokenizer = load_tokenizer(name, config.trust_remote_code)
    policy = load_policy(config, source) if isinstance(source, str) else source
    if not isinstance(source, str) and config.disable_dropout:
        disable_dropout(policy)
    if isinstance(ref_model, str):
        ref_model = load_policy(config, ref_model)
    if config.ref_model == "sft" and ref_model is None:
        ref_model = copy.deepcopy(policy).requires_grad_(False)  # the starting model, before any round trains it
    done = _finished_rounds(rounds_dir)
    _check_settings(out, config, pool, judge, resuming=bool(done))
    if len(done) > config.rounds:
        raise JpoError(f"{out}: {len(done)} rounds are finished already; rounds is {config.rounds}")
    if done:  # resume from the policy of the last finished round
        policy = load_policy(config, str(rounds_dir / f"round-{len(done):03d}" / "model"))
    sampler = None
    if config.generation_backend == "vllm":
        path = source if isinstance(source, str) else str(rounds_dir / "initial")
        if not isinstance(source, str):
            policy.save_pretrained(path)
            tokenizer.save_pretrained(path)
        sampler = VLLMSampler(path, config)
    result = OnlineResult(str(out), list(done), resumed=[e["round"] for e in done],
                          pool={"prompts": len(pool), "repeated_prompts_left_out": repeats})
    store = VerdictStore(out / "verdicts.sqlite")
    try:
        for round_no in range(len(done) + 1, config.rounds + 1):
            entry = _run_round(round_no, config, pool, policy, ref_model, tokenizer, judge, store, sampler,
                               rounds_dir, result.rounds, judge_options)
            result.rounds.append(entry)
            result.ran.append(round_no)
            _write_log(out, result.rounds)
    finally:
        store.close()
    _write_log(out, result.rounds)
    policy.save_pretrained(out)
    tokenizer.save_pretrained(out)
    result.model = policy
    return result


def _write_log(out: Path, entries: list[dict[str, Any]]) -> None:
    write_jsonl(out / LOG, entries)


def _run_round(round_no: int, config: OnlineJPOConfig, pool, policy, ref_model, tokenizer, judge, store, sampler,
               rounds_dir: Path, earlier: list[dict[str, Any]], judge_options: JudgeOptions | None) -> dict[str, Any]:
    """One round (module doc, steps 1-5), reusing whatever of it a killed run wrote; returns its log entry."""
    from jpo.train.trainer import JPOTrainer

    folder = rounds_dir / f"round-{round_no:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    seed = config.seed * 1000 + round_no
    started = time.perf_counter()
    # 1-2. samples (read back when a killed run wrote them)
    if (folder / "generation.json").exists():
        samples = read_jsonl(folder / "samples.jsonl")
        generation = json.loads((folder / "generation.json").read_text(encoding="utf-8"))
    else:
        chosen = round_prompts(pool, config.prompts_per_round, round_no, config.seed)
        inputs = [_templated(row["prompt"], config.prompt_template) for row in chosen]
        clock = time.perf_counter()
        if sampler is None:
            drawn = sample_transformers(policy, tokenizer, inputs, config.samples_per_prompt,
                                        max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                                        top_p=config.top_p, batch_size=config.generation_batch_size, seed=seed)
        else:
            drawn = sampler.sample(policy, tokenizer, inputs, config.samples_per_prompt, seed)
        samples = [{**row, "sample": j, **s} for row, per_prompt in zip(chosen, drawn, strict=True)
                   for j, s in enumerate(per_prompt)]
        generation = {"prompts": len(chosen), "samples": len(samples),
                      "tokens_generated": sum(s["tokens"] for s in samples),
                      "missing_eos": sum(not s["eos"] for s in samples),
                      "prompts_truncated": sum(per_prompt[0]["prompt_truncated"] for per_prompt in drawn if per_prompt),
                      "backend": config.generation_backend,
                      "seconds": round(time.perf_counter() - clock, 3)}
        write_jsonl(folder / "samples.jsonl", samples)
        _write_json(folder / "generation.json", generation)
    # 3-4. comparisons and verdicts
    if (folder / "judging.json").exists():
        labelled = read_jsonl(folder / "labeled.jsonl")
        judging = json.loads((folder / "judging.json").read_text(encoding="utf-8"))
    else:
        clock = time.perf_counter()
        choose = None if config.selector is None else _selector(config, policy, ref_model, tokenizer, earlier,
                                                                  judge_options)
        items, report = comparisons(samples, config, seed, choose)
        labelled, judging = judge_round(items, judge, store, config)
        kinds = {kind: sum(i["kind"] == kind for i in items) for kind in ("joint", "conditional")}
        judging.update(comparisons=kinds, pairing=report.summary(), seconds=round(time.perf_counter() - clock, 3))
        write_jsonl(folder / "labeled.jsonl", labelled)
        _write_json(folder / "judging.json", judging)
    rows, counts = items_to_preferences(labelled)
    write_jsonl(folder / "preferences.jsonl", rows)
    # 5. training
    train_rows = list(rows)
    if config.train_on == "all":
        files = [rounds_dir / f"round-{n:03d}" / "preferences.jsonl" for n in range(1, round_no)]
        train_rows = [r for path in files if path.stat().st_size for r in read_jsonl(path)] + train_rows
    clock = time.perf_counter()
    steps, loss = 0, None
    if train_rows:
        args = _round_args(config, folder, round_no)
        reference = ref_model if config.ref_model == "sft" else None  # None: JPOTrainer copies the policy
        fields = ("prompt_chosen", "chosen", "prompt_rejected", "rejected")
        data = [{k: r[k] for k in fields} for r in _templated_rows(train_rows, config.prompt_template)]
        trainer = JPOTrainer(policy, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer)
        output = trainer.train()
        steps, loss = trainer.state.global_step, output.training_loss
        del trainer
    else:  # every comparison a tie or invalid: the round's policy is the one it started with
        logger.warning("online round %d: no decisive label among %d comparisons (%s); nothing trained this round",
                       round_no, sum(judging["comparisons"].values()), counts)
    policy.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    training = {"rows": len(train_rows), "steps": steps, "loss": loss,
                "seconds": round(time.perf_counter() - clock, 3)}
    previous = earlier[-1]["cumulative"] if earlier else {}
    judge_questions = judging["judge_asked"] + judging["judge_reused"]
    entry = {
        "round": round_no, "mode": config.mode, "reference": config.ref_model, "train_on": config.train_on,
        "prompts": generation["prompts"], "samples": generation["samples"],
        "tokens_generated": generation["tokens_generated"], "missing_eos": generation["missing_eos"],
        "prompts_truncated": generation.get("prompts_truncated", 0),  # absent from rounds written before the count
        "comparisons": judging["comparisons"], "judge_questions": judge_questions,
        "judge_asked": judging["judge_asked"], "judge_reused": judging["judge_reused"],
        "eos_decided": judging["eos_decided"], "labels": counts, "decisive": len(rows),
        "train_rows": training["rows"], "train_steps": steps, "train_loss": loss,
        "seconds": {"generation": generation["seconds"], "judging": judging["seconds"],
                    "training": training["seconds"],
                    "total": round(generation["seconds"] + judging["seconds"] + training["seconds"], 3)},
        "wall_seconds_this_run": round(time.perf_counter() - started, 3),
    }
    entry["cumulative"] = {key: previous.get(key, 0) + entry[key]
                           for key in ("samples", "tokens_generated", "judge_questions", "decisive", "train_steps")}
    _write_json(folder / "round.json", entry)
    return entry


def _templated_rows(rows: list[dict[str, Any]], template: str | None) -> list[dict[str, Any]]:
    from jpo.modeling import apply_template

    return apply_template(rows, template, "preference")


class OnlineJPOTrainer:
    """The online loop with TRL `OnlineDPOTrainer`'s constructor: `OnlineJPOTrainer(model, ref_model=None,
    args=OnlineJPOConfig(...), train_dataset=prompts, judge="oracle", processing_class=tokenizer).train()`.

    Not a `transformers.Trainer` itself: each round trains one `JPOTrainer` on that round's labels. `judge` takes
    a `--judge` spec or a `jpo.feedback.Judge` (TRL's judges are not accepted: jpo asks both orders itself).
    `train()` returns the `OnlineResult`; `model` is the policy after it, `log_history` the per-round log.
    """

    def __init__(self, model, ref_model=None, args: OnlineJPOConfig | None = None, train_dataset=None,
                 judge: str | Judge | None = None, processing_class=None,
                 judge_options: JudgeOptions | None = None) -> None:
        if train_dataset is None:
            raise JpoError("OnlineJPOTrainer needs train_dataset: the prompts to sample from")
        if judge is None:
            raise JpoError("OnlineJPOTrainer needs a judge: a --judge spec such as 'oracle' or a jpo Judge")
        if args is None:
            name = model if isinstance(model, str) else getattr(model, "name_or_path", "model")
            args = OnlineJPOConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-OnlineJPO")
        self.model, self.ref_model, self.args = model, ref_model, args
        self.train_dataset, self.judge, self.processing_class = train_dataset, judge, processing_class
        self.judge_options = judge_options
        self.log_history: list[dict[str, Any]] = []

    def train(self) -> OnlineResult:
        result = train_online(self.args, self.train_dataset, self.judge, model=self.model,
                              tokenizer=self.processing_class, ref_model=self.ref_model,
                              judge_options=self.judge_options)
        self.model, self.log_history = result.model, result.rounds
        return result

    def save_model(self, output_dir: str | None = None) -> None:
        """The policy (and tokenizer, when given) saved to `output_dir` (default `args.output_dir`)."""
        target = output_dir or self.args.output_dir
        self.model.save_pretrained(target)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(target)
