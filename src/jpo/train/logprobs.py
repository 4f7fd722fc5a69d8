"""Sequence log-probabilities, summed per row and split into a prompt part and a response part.

For ``BOS + template(prompt) + response + EOS`` each position t >= 1 is a target predicted from positions < t.
The collator marks every position with a segment code: `PROMPT` (a prompt token after BOS: template and instruction,
counted only under the joint scope), `RESPONSE` (the response tokens and EOS, counted under both scopes), or `SKIP`
(BOS, padding, and prompt tokens a row does not need: all of them under the response scope, and under the joint scope
those of rows whose two prompts are equal, since their terms cancel). Sums, not means: log p of a sequence.

Prefix sharing: a pair whose two prompts are equal can be one row ``[prompt, chosen, rejected]`` whose attention
mask keeps the rejected tokens from seeing the chosen ones and whose position ids restart after the prompt, so the
prompt is computed once instead of twice; the first token of each response is then predicted from the same (last
prompt) position. Every counted token is therefore given by where its predicting hidden state is (`target_pos`),
which sequence it belongs to and which part, rather than by a per-position code (`batch_logps`).

Memory: the model is asked for its final hidden states instead of its logits (``logits_to_keep=1``), and the LM head
is applied only to the positions that count, a chunk of positions at a time, taking ``target logit - logsumexp`` per
chunk. A float32 [batch, length, vocab] tensor is therefore never built; with more than one chunk each chunk is
recomputed in the backward pass (activation checkpointing), so at most one chunk of logits is alive at a time. Under
the response scope the prompt positions never reach the LM head at all.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from jpo.train.losses import SequenceLogps
from jpo.train.packing import UnitTable, units_attention

SKIP, PROMPT, RESPONSE = 0, 1, 2
# A prompt token of a prefix-shared pair, computed once and counted for both sides: sequence s and s + n / 2.
# Its two terms then cancel in the margin exactly, gradients included (Lemma D.1 to the last bit).
SHARED_PROMPT = 3
# Logits kept alive at once, in float32 elements (64 MiB): a chunk holds this many / vocab positions.
CHUNK_ELEMENTS = 1 << 24


def segments_for(length: int, prompt_len: int, count_prompt: bool, prompt_code: int = PROMPT) -> list[int]:
    """Segment codes of one unpadded sequence (see the module docstring); its prompt tokens get `prompt_code`
    (SHARED_PROMPT: counted for both sides of a pair) where `count_prompt`, else SKIP."""
    code = prompt_code if count_prompt else SKIP
    return [SKIP] + [code] * (prompt_len - 1) + [RESPONSE] * (length - prompt_len)


def _head_transform(config) -> tuple[float | None, float]:
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    scale = getattr(cfg, "logit_scale", None)
    return getattr(cfg, "final_logit_softcapping", None), 1.0 if scale is None else float(scale)


def token_logps(hidden: torch.Tensor, targets: torch.Tensor, head: nn.Module, *,
                softcap: float | None = None, scale: float = 1.0, chunk_size: int | None = None,
                aligned: bool = False) -> torch.Tensor:
    """log p(target) for each row of `hidden` [N, H], `chunk_size` rows of logits at a time.

    With `aligned`, a [2, N] tensor: log p(target) and, detached, WPO's aligned log-prob log p - log sum_v p_v^2."""
    vocab = head.weight.shape[0]
    chunk_size = chunk_size or max(1, CHUNK_ELEMENTS // vocab)

    def one_chunk(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Under --bf16 on a GPU, accelerate returns the forward's outputs in float32 (its convert_to_fp32 wrapper)
        # while the head's weights stay bfloat16: the hidden states go back to the weights' dtype, exactly (they
        # were bfloat16 before the upcast).
        logits = head(h.to(head.weight.dtype))
        logits = logits if logits.dtype == torch.float64 else logits.float()  # float32 at least, never less
        if scale != 1.0:
            logits = logits * scale
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        norm = torch.logsumexp(logits, dim=-1)
        logp = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - norm
        if not aligned:
            return logp
        with torch.no_grad():  # log sum_v p_v^2 = logsumexp(2 logits) - 2 logsumexp(logits)
            sum_sq = torch.logsumexp(2 * logits, dim=-1) - 2 * norm
        return torch.stack([logp, logp.detach() - sum_sq])

    if hidden.shape[0] <= chunk_size:
        return one_chunk(hidden, targets)
    recompute = torch.is_grad_enabled()
    parts = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[start:start + chunk_size], targets[start:start + chunk_size]
        parts.append(checkpoint(one_chunk, h, t, use_reentrant=False) if recompute else one_chunk(h, t))
    return torch.cat(parts, dim=-1)


def _accepts_logits_to_keep(model: nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def targets_from_segments(segments: torch.Tensor, first_seq: int = 0) -> dict[str, torch.Tensor]:
    """The counted tokens of right-padded rows in the flat form `batch_logps` reads: each position t >= 1 whose code
    is not SKIP is a target predicted from position t - 1 of the same row, summed into sequence `first_seq + row`."""
    rows, cols = (segments[:, 1:] != SKIP).nonzero(as_tuple=True)
    cols = cols + 1
    return {"target_pos": rows * segments.shape[1] + cols - 1, "target_seq": rows + first_seq,
            "target_part": segments[rows, cols]}


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean 4D mask (True = may attend) as the additive float mask eager attention adds to its scores."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def response_tail(seq: torch.Tensor, num_sequences: int) -> torch.Tensor:
    """For the response targets of a pair batch (sequence s and its other side s +/- n/2), in position order within
    each sequence: whether each lies beyond the shorter of the pair's two responses (LD-DPO's verbose tail). [T]"""
    counts = torch.bincount(seq, minlength=num_sequences)
    half = num_sequences // 2
    shared = torch.minimum(counts[:half], counts[half:]).repeat(2)
    order = torch.argsort(seq, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(seq)
    rank[order] = torch.arange(seq.numel(), device=seq.device) - starts[seq[order]]
    return rank >= shared[seq]


def batch_logps(model: nn.Module, head_model: nn.Module, batch: dict[str, torch.Tensor], num_sequences: int,
                prefix: str = "", chunk_size: int | None = None, *, ld_alpha: float | None = None,
                wpo: bool = False, router_aux: bool = False) -> SequenceLogps:
    """Prompt and response log-prob sums of `num_sequences` sequences laid out in one forward.

    The batch holds ``input_ids`` and ``attention_mask`` (2D padding mask, or a boolean 4D mask with ``position_ids``
    for prefix-shared or packed rows, or no mask and ``position_ids`` for one packed row under flash-attention's
    varlen path, or no mask, ``position_ids`` and the ``units`` table of a row attended unit by unit: see packing.py)
    and one entry per counted token: ``target_pos`` (flat index of the position whose hidden
    state predicts it), ``target_seq`` (the sequence it belongs to) and ``target_part`` (PROMPT or RESPONSE); the
    token itself is read from ``input_ids`` one position later, or from ``target_ids`` where given. A SHARED_PROMPT
    token counts for sequence s and s + num_sequences / 2 (the two sides of a pair).

    `model` is what the forward goes through (possibly DDP/PEFT-wrapped, so hooks and gradient sync work);
    `head_model` is the unwrapped causal LM whose output embeddings (LM head) project the hidden states.

    Options for pair batches (sequence s and s + n/2 the two sides): `ld_alpha` weights each response token beyond
    the shorter response of its pair by ld_alpha (LD-DPO, as TRL); `wpo` also returns WPO's aligned log-prob sums;
    `router_aux` asks a Mixture-of-Experts model for its router load-balancing loss (`SequenceLogps.aux_loss`).
    """
    input_ids = batch[f"{prefix}input_ids"]
    mask = batch.get(f"{prefix}attention_mask")
    kwargs = {"use_cache": False, "output_hidden_states": True}
    if _accepts_logits_to_keep(head_model):
        kwargs["logits_to_keep"] = 1
    if mask is None or mask.dim() == 4:  # packed or prefix-shared rows: positions restart within a row
        kwargs["position_ids"] = batch[f"{prefix}position_ids"]
    if mask is not None and mask.dim() == 4 and head_model.config._attn_implementation == "eager":
        mask = additive_mask(mask, head_model.get_output_embeddings().weight.dtype)
    if router_aux:
        kwargs["output_router_logits"] = True
    table = batch.get(f"{prefix}units")
    if table is None:
        outputs = model(input_ids=input_ids, attention_mask=mask, **kwargs)
    else:  # one packed row attended unit by unit (packing.unit_attention)
        with units_attention(head_model):
            outputs = model(input_ids=input_ids, jpo_units=UnitTable(table), **kwargs)
    hidden = outputs.hidden_states[-1].flatten(0, 1)
    pos = batch[f"{prefix}target_pos"]
    targets = batch.get(f"{prefix}target_ids")
    if targets is None:
        targets = input_ids.flatten()[pos + 1]
    softcap, scale = _head_transform(head_model.config)
    seq, part = batch[f"{prefix}target_seq"], batch[f"{prefix}target_part"]
    # The response targets through the LM head in one call of their own, the prompt targets in another: the
    # response log-probs are then the very same computation whether prompt terms are counted or not (JPO on equal
    # prompts is DPO to the bit, not to float rounding that depends on how many rows one matrix product has).
    # With `wpo`, WPO's aligned log-probs come out of the same calls (`aligned`).
    response = part == RESPONSE
    logps = aligned = None
    for keep in (response, ~response):
        if keep.any():
            values = token_logps(hidden[pos[keep]], targets[keep], head_model.get_output_embeddings(),
                                 softcap=softcap, scale=scale, chunk_size=chunk_size, aligned=wpo)
            values, extra = (values[0], values[1]) if wpo else (values, None)
            where = (keep.nonzero(as_tuple=True)[0],)
            logps = (values.new_zeros(pos.shape[0]) if logps is None else logps).index_put(where, values)
            if wpo:
                aligned = (extra.new_zeros(pos.shape[0]) if aligned is None else aligned).index_put(where, extra)
    if logps is None:
        logps = hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
        aligned = logps.detach() if wpo else None
    zeros = torch.zeros(num_sequences, dtype=logps.dtype, device=logps.device)

    def total(code: int, values: torch.Tensor) -> torch.Tensor:
        keep = part == code
        return zeros.index_add(0, seq[keep], values[keep])

    def prompt_total(values: torch.Tensor) -> torch.Tensor:
        both = part == SHARED_PROMPT
        out = total(PROMPT, values)
        if both.any():
            out = out.index_add(0, seq[both], values[both]).index_add(0, seq[both] + num_sequences // 2, values[both])
        return out

    ones = torch.ones_like(logps)
    response_logps = logps
    if ld_alpha is not None:
        is_response = part == RESPONSE
        tail = torch.zeros_like(is_response)
        tail[is_response] = response_tail(seq[is_response], num_sequences)
        response_logps = torch.where(tail, ld_alpha * logps, logps)
    return SequenceLogps(prompt=prompt_total(logps), response=total(RESPONSE, response_logps),
                         prompt_tokens=prompt_total(ones).detach(), response_tokens=total(RESPONSE, ones).detach(),
                         wpo=None if aligned is None else total(RESPONSE, aligned).detach(),
                         aux_loss=getattr(outputs, "aux_loss", None) if router_aux else None)


def sequence_logps(model: nn.Module, head_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   segments: torch.Tensor, chunk_size: int | None = None) -> SequenceLogps:
    """Per-row prompt and response log-prob sums of `model` on a right-padded batch marked with segment codes."""
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, **targets_from_segments(segments)}
    return batch_logps(model, head_model, batch, input_ids.shape[0], chunk_size=chunk_size)
