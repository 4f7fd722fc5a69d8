"""Per-instance scores from a model: what the margin selectors compare.

A joint comparison's implicit-reward margin decomposes into per-instance terms, r(I_a, R_a) - r(I_b, R_b), so the n
instances are scored once and a pool of n*k (or n^2/2) candidates costs only a subtraction per candidate.

Two rewards, both over the joint scope (every token of template(I) + R + EOS after BOS, as JPO counts them):
- with a trained `policy` and its `reference`: JPO's implicit reward beta * (log pi(I, R) - log pi_ref(I, R))
  (DPO's, on the joint sequence; what the active loop uses after its first round);
- with the reference alone (round 0, before any preference label): the length-normalised log-likelihood
  log pi_ref(I, R) / |I, R|, SimPO's reference-free implicit reward. Under the reference itself DPO's implicit
  reward is identically zero, so it cannot rank anything; SimPO's says which sequences the SFT model finds likely,
  which is what it would prefer if asked.
Log-probs come from `jpo.train` (the same tokenization, truncation and chunked LM head as training).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jpo.modeling import ensure_pad_token, fit_max_length, pad
from jpo.progress import progress_bar
from jpo.train.logprobs import SKIP, segments_for, sequence_logps
from jpo.train.tokenize import Encoder


@torch.no_grad()
def joint_logps(model, tokenizer, instances: Sequence[dict[str, Any]], *, max_length: int | None = 1024,
                batch_size: int = 64, progress: bool = False, description: str = "scoring instances",
                stats: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Summed joint-scope log p(I, R) of each instance and its token count; NaN (and 0 tokens) where the
    instance cannot fit `max_length` (capped at the model's context, `modeling.fit_max_length`). Batches are formed
    longest first, as the trainer's reference pass does. `progress` shows a bar over the instances scored
    (`jpo.progress`). `stats`, when given, receives `truncated` (instances scored on fewer tokens than they have)
    and `unscorable` (instances that cannot fit at all, NaN)."""
    encoder = Encoder(tokenizer, max_length=fit_max_length(max_length, model))
    encoded, truncated = [], 0
    for row in instances:
        (enc,), cut = encoder.encode(row["prompt"], [row["response"]])
        encoded.append(enc)
        truncated += bool(cut and enc is not None)
    if stats is not None:
        stats["truncated"] = truncated
        stats["unscorable"] = sum(enc is None for enc in encoded)
    logps = np.full(len(instances), np.nan)
    tokens = np.zeros(len(instances))
    fits = sorted((i for i, enc in enumerate(encoded) if enc is not None), key=lambda i: -len(encoded[i].input_ids))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    bar = progress_bar(len(fits), desc=description, unit="instance", enabled=progress)
    for start in range(0, len(fits), batch_size):
        rows = fits[start:start + batch_size]
        seqs = [encoded[i] for i in rows]
        ids = pad([e.input_ids for e in seqs], tokenizer.pad_token_id)
        mask = pad([[1] * len(e.input_ids) for e in seqs], 0)
        segments = pad([segments_for(len(e.input_ids), e.prompt_len, True) for e in seqs], SKIP)
        out = sequence_logps(model, model, ids.to(device), mask.to(device), segments.to(device))
        logps[rows] = (out.prompt + out.response).double().cpu().numpy()
        tokens[rows] = (out.prompt_tokens + out.response_tokens).double().cpu().numpy()
        bar.update(len(rows))
    bar.close()
    model.train(was_training)
    return logps, tokens


def instance_rewards(instances: Sequence[dict[str, Any]], reference: str, policy: str | None = None, *,
                     beta: float = 0.1, max_length: int | None = 1024, batch_size: int = 64,
                     device: str | None = None, progress: bool = False,
                     stats: dict[str, int] | None = None) -> np.ndarray:
    """One reward per instance (see the module doc): SimPO's with `reference` alone, JPO's implicit reward with a
    `policy` trained from it. Paths are model folders (or PEFT adapters), loaded with `jpo.evaluate`'s loader.
    `stats` (see `joint_logps`) counts, over the models scored, instances truncated or unscorable (NaN reward)."""
    from jpo.evaluate.generate import load_model_and_tokenizer

    def logps_of(path: str) -> tuple[np.ndarray, np.ndarray]:
        model, tokenizer = load_model_and_tokenizer(path, device=device)
        ensure_pad_token(tokenizer)
        counts: dict[str, int] = {}
        out = joint_logps(model, tokenizer, instances, max_length=max_length, batch_size=batch_size,
                          progress=progress, description=f"scoring instances with {Path(path).name}", stats=counts)
        if stats is not None:  # two models may have different contexts: the larger count is what the reward lost
            for key, value in counts.items():
                stats[key] = max(stats.get(key, 0), value)
        return out

    ref_logps, tokens = logps_of(reference)
    if policy is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            return ref_logps / tokens
    policy_logps, _ = logps_of(policy)
    return beta * (policy_logps - ref_logps)
