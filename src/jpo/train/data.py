"""Training data: raw rows in any layout jpo reads, tokenized through `datasets.map`, and one collator per shape.

A `datasets.Dataset` (or `IterableDataset`) of raw text -- TRL's standard or conversational ``{prompt, chosen,
rejected}``, implicit-prompt ``{chosen, rejected}``, the joint ``{prompt_chosen, chosen, prompt_rejected,
rejected}``, or any other preference layout of `jpo.data.formats` -- is converted row by row to the joint record,
tokenized (tokenize.py) and given token-id columns. `map` fingerprints the function and its arguments (tokenizer
and limits included), so a dataset saved on disk is tokenized once. Rows left out are counted in the `EncodeReport`
by reason and filtered out, never dropped silently: rows that cannot fit `max_length`; pairs whose chosen and
rejected are the same token sequence (as text, or once truncated), whose margin is 0 whatever the model; and, for
SFT on labelled (KTO) rows, the rows labelled undesirable.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from jpo.errors import JpoError
from jpo.modeling import pad, padded_width
from jpo.train.logprobs import PROMPT, RESPONSE, SHARED_PROMPT, SKIP, segments_for, targets_from_segments
from jpo.train.tokenize import (
    IDENTICAL,
    IDENTICAL_TRUNCATED,
    LENGTH,
    UNDESIRABLE,
    Encoder,
    EncodeReport,
    truncate,
)

# `prompt_ids` (the chosen side's prompt tokens, the pair's shared prompt where the two are equal) is TRL's column,
# kept for scripts that read it; the collator reads the prompt from `chosen_ids[:chosen_prompt_len]`.
PAIR_COLUMNS = ("same_prompt", "chosen_ids", "chosen_prompt_len", "rejected_ids", "rejected_prompt_len", "length",
                "prompt_ids")
UNPAIRED_COLUMNS = ("ids", "prompt_len", "label", "length")
SFT_COLUMNS = ("ids", "prompt_len", "length")
# Reference log-probs of a pair, as dataset columns once precomputed.
REF_COLUMNS = ("ref_chosen_prompt", "ref_chosen_response", "ref_rejected_prompt", "ref_rejected_response")


def as_dataset(data: Any):
    """A list of row dicts as a `datasets.Dataset`; datasets pass through."""
    import datasets

    if isinstance(data, datasets.Dataset | datasets.IterableDataset):
        return data
    if isinstance(data, list):
        if not data:
            raise JpoError("nothing to train on: the dataset has no rows")
        from jpo.data.load import unify_text

        rows = [dict(row) for row in data]  # one Arrow table holds one representation: plain rows become chat turns
        unify_text([rows])  # where others are conversations (the caller's list is left as it is)
        return datasets.Dataset.from_list(rows)
    raise JpoError(f"a dataset must be a datasets.Dataset, an IterableDataset or a list of dicts, not "
                   f"{type(data).__name__}")


def _converter(dataset, kinds: tuple[str, ...], name: str) -> Callable[[dict, int], dict]:
    """The row converter of the dataset's layout, detected from its first row as for files."""
    from jpo.data.io import Table
    from jpo.data.load import convert_row, detect, formats_of

    fmt = detect(Table(name, [next(iter(dataset))]), formats_of(kinds))

    def convert(row: dict, index: int) -> dict:
        return convert_row(Table(name, [row], lines=[index + 1]), 0, fmt)  # an error shows the row as name:N

    return convert


def _count(report: EncodeReport, index: int, row: dict) -> bool:
    """Add one encoded row to `report`; whether it is trained on."""
    skip = row["skip"]
    report.rows += 1
    report.truncated += bool(row["truncated"]) and not skip
    if row["special"]:
        report.special_token_rows.append(index)
    if skip == LENGTH:
        report.dropped += 1
        report.dropped_indices.append(index)
    elif skip in (IDENTICAL, IDENTICAL_TRUNCATED):
        report.identical += 1
        report.identical_after_truncation += skip == IDENTICAL_TRUNCATED
        report.identical_indices.append(index)
    elif skip == UNDESIRABLE:
        report.undesirable += 1
    return not skip


def _finish(mapped, columns: tuple[str, ...], report: EncodeReport, num_proc: int | None):
    """Count what is left out and leave it out (map-style datasets are counted now; streamed ones as they pass)."""
    import datasets

    if isinstance(mapped, datasets.Dataset):
        flags = mapped.select_columns(["skip", "truncated", "special"]).to_dict()
        rows = [dict(zip(flags, values, strict=True)) for values in zip(*flags.values(), strict=True)]
        keep = [_count(report, i, row) for i, row in enumerate(rows)]
        if not all(keep):
            mapped = mapped.filter(lambda skip: not skip, input_columns="skip", num_proc=num_proc)
        return mapped.select_columns(list(columns))

    counter = itertools.count()
    return mapped.filter(lambda row: _count(report, next(counter), row)).select_columns(list(columns))


def _map_kwargs(dataset, num_proc: int | None, desc: str) -> dict[str, Any]:
    import datasets

    return {"num_proc": num_proc, "desc": desc} if isinstance(dataset, datasets.Dataset) else {}


def template_kwargs(row: dict) -> dict[str, Any]:
    """What a raw row gives the chat template, as TRL passes it: ``tools`` (a list, or JSON text) and the row's
    ``chat_template_kwargs``."""
    tools = row.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return {**({"tools": tools} if tools else {}), **(row.get("chat_template_kwargs") or {})}


def _encode_pair(row: dict, index: int, convert, encoder: Encoder) -> dict[str, Any]:
    extra = template_kwargs(row)
    row = convert(row, index)
    if row["prompt_chosen"] == row["prompt_rejected"]:  # one prompt, truncated alike on both sides
        (chosen, rejected), truncated = encoder.encode(row["prompt_chosen"], [row["chosen"], row["rejected"]], extra)
    else:
        (chosen,), t1 = encoder.encode(row["prompt_chosen"], [row["chosen"]], extra)
        (rejected,), t2 = encoder.encode(row["prompt_rejected"], [row["rejected"]], extra)
        truncated = t1 or t2
    fits = chosen is not None and rejected is not None
    # Equal as the model sees them: the prompt tokens, after truncation.
    same = fits and chosen.input_ids[:chosen.prompt_len] == rejected.input_ids[:rejected.prompt_len]
    skip = "" if fits else LENGTH
    if same and chosen.input_ids == rejected.input_ids:
        as_text = row["prompt_chosen"] == row["prompt_rejected"] and row["chosen"] == row["rejected"]
        skip = IDENTICAL if as_text else IDENTICAL_TRUNCATED
    return {"same_prompt": same, "skip": skip, "truncated": truncated,
            "special": encoder.special_inside(row["prompt_chosen"], row["chosen"], row["prompt_rejected"],
                                              row["rejected"]),
            "chosen_ids": chosen.input_ids if fits else [], "chosen_prompt_len": chosen.prompt_len if fits else 0,
            "rejected_ids": rejected.input_ids if fits else [],
            "rejected_prompt_len": rejected.prompt_len if fits else 0,
            "length": max(len(chosen.input_ids), len(rejected.input_ids)) if fits else 0,
            "prompt_ids": chosen.input_ids[:chosen.prompt_len] if fits else []}


def _encode(data: Any, encoder: Encoder, function: Callable, kinds: tuple[str, ...], columns: tuple[str, ...],
            num_proc: int | None, name: str, batched: bool = False):
    """(tokenized dataset, report); a dataset that already has the token columns passes through."""
    dataset = as_dataset(data)
    if columns[1] in (dataset.column_names or []):
        return dataset, EncodeReport(rows=len(dataset))
    convert = _converter(dataset, kinds, name)
    mapped = dataset.map(function, batched=batched, with_indices=True, remove_columns=dataset.column_names,
                         fn_kwargs={"convert": convert, "encoder": encoder},
                         **_map_kwargs(dataset, num_proc, f"tokenizing {name} data"))
    report = EncodeReport()
    return _finish(mapped, columns, report, num_proc), report


def encode_pairs(data: Any, encoder: Encoder, num_proc: int | None = None, name: str = "train"):
    """Preference rows -> (dataset with `PAIR_COLUMNS`, report). Equal prompts share one prompt boundary, exactly as
    TRL tokenizes them."""
    return _encode(data, encoder, _encode_pair, ("preference",), PAIR_COLUMNS, num_proc, name)


def _encode_single(prompt: Any, response: Any, encoder: Encoder) -> dict[str, Any]:
    (enc,), truncated = encoder.encode(prompt, [response])
    return {"skip": "" if enc is not None else LENGTH, "truncated": truncated,
            "special": encoder.special_inside(prompt, response), "ids": enc.input_ids if enc else [],
            "prompt_len": enc.prompt_len if enc else 0, "length": len(enc.input_ids) if enc else 0}


def _encode_unpaired(rows: dict[str, list], indices: list[int], convert, encoder: Encoder) -> dict[str, list]:
    """A batch of rows -> one output row per unpaired row; a preference row gives two (chosen desirable, rejected
    undesirable), through `jpo.data.load.unpair`, or one row marked identical (left out) where both sides are the
    same sequence: the same completion labelled both ways."""
    from jpo.data.load import unpair

    out: dict[str, list] = {k: [] for k in ("skip", "truncated", "special", "ids", "prompt_len", "label", "length")}
    columns = list(rows)
    for n, index in enumerate(indices):
        row = convert({c: rows[c][n] for c in columns}, index)
        singles = [row] if "label" in row else unpair([row])
        encoded = [_encode_single(single["prompt"], single["completion"], encoder) for single in singles]
        if len(encoded) == 2 and not encoded[0]["skip"] and encoded[0]["ids"] == encoded[1]["ids"] \
                and encoded[0]["prompt_len"] == encoded[1]["prompt_len"]:
            as_text = row["prompt_chosen"] == row["prompt_rejected"] and row["chosen"] == row["rejected"]
            encoded = [{**encoded[0], "skip": IDENTICAL if as_text else IDENTICAL_TRUNCATED}]
        for single, values in zip(singles, encoded, strict=False):
            for key, value in values.items():
                out[key].append(value)
            out["label"].append(bool(single["label"]))
    return out


def encode_unpaired(data: Any, encoder: Encoder, num_proc: int | None = None, name: str = "train"):
    """KTO rows ``{prompt, completion, label}`` (or preference rows, unpaired) -> (dataset, report)."""
    return _encode(data, encoder, _encode_unpaired, ("unpaired", "preference"), UNPAIRED_COLUMNS, num_proc, name,
                   batched=True)


def _encode_sft(row: dict, index: int, convert, encoder: Encoder) -> dict[str, Any]:
    label = row.get("label")  # rows `jpo sft` loaded: {prompt, response, label}, read as the plain SFT layout
    row = convert(row, index)
    if row.get("label", label) is False:  # a KTO row: SFT learns the desirable completions only. Counted before
        # any length filter, so the count is that of the rows read, whatever max_length is
        return {"skip": UNDESIRABLE, "truncated": False, "special": False, "ids": [], "prompt_len": 0, "length": 0}
    return _encode_single(row["prompt"], row.get("response", row.get("completion")), encoder)


def encode_sft(data: Any, encoder: Encoder, num_proc: int | None = None, name: str = "train"):
    """Instruction-response rows in any SFT layout -> (dataset with `SFT_COLUMNS`, report). Labelled (KTO) rows
    ``{prompt, completion, label}`` are read as SFT rows too; those labelled undesirable are left out and counted
    (`EncodeReport.undesirable`)."""
    from jpo.data.load import SFT_READS_LABELLED

    return _encode(data, encoder, _encode_sft, ("sft", *SFT_READS_LABELLED), SFT_COLUMNS, num_proc, name)


def no_batch_dispatch(args) -> None:
    """Have every process draw its own batches (accelerate's ``dispatch_batches=False``) for the collators below.

    accelerate dispatches the batches of an iterable dataset by default: one process draws a batch and every
    process takes its slice of every tensor's first dimension, the batch size. These collators' tensors are not all
    [batch, ...]: ``input_ids`` has both sides of each pair (2B rows, or one row per prefix-shared pair) and the
    ``target_*`` tensors one entry per counted token, so a slice of B would cut most targets away (a streamed dataset
    then trains on almost nothing). Map-style datasets are not dispatched anyway; this makes streamed ones behave
    the same. Raises JpoError where the configuration asks for dispatching explicitly."""
    config = args.accelerator_config
    if getattr(config, "dispatch_batches", None):
        raise JpoError("accelerator_config.dispatch_batches=True cannot split preference batches (their tensors are "
                       "not batch-first); leave it unset or false")
    if config is not None:
        config.dispatch_batches = False


def _padded_batch(seqs: list[tuple[list[int], int, int]], pad_token_id: int, first_seq: int = 0,
                  multiple_of: int | None = None) -> dict:
    """Right-padded rows of (ids, prompt length, segment code of the prompt tokens after BOS), the width rounded
    up to `multiple_of` where given."""
    segments = pad([segments_for(len(ids), p, True, code) for ids, p, code in seqs], SKIP, multiple_of=multiple_of)
    return {"input_ids": pad([ids for ids, _, _ in seqs], pad_token_id, multiple_of=multiple_of),
            "attention_mask": pad([[1] * len(ids) for ids, _, _ in seqs], 0, multiple_of=multiple_of),
            **targets_from_segments(segments, first_seq)}


def _shared_rows(items: list[dict], shared: list[int], plain: list[int], count_shared: bool, count_plain: bool,
                 pad_token_id: int, multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Rows for one forward with prefix sharing: ``[prompt, chosen, rejected]`` per equal-prompt pair, and the two
    sequences of every other pair as ordinary causal rows; all with boolean 4D masks and explicit position ids.

    Sequence numbers: the chosen side of item i is sequence i, the rejected side B + i (B = len(items))."""
    size = len(items)
    rows: list[list[int]] = []
    positions: list[list[int]] = []
    blocks: list[tuple[int, int, int]] = []  # (prompt length, chosen response length, rejected response length)
    pos, ids, seq, part = [], [], [], []

    def add_targets(row: int, sources: list[int], tokens: list[int], number: int, code: int) -> None:
        pos.extend(row * width + s for s in sources)
        ids.extend(tokens)
        seq.extend([number] * len(sources))
        part.extend([code] * len(sources))

    for i in shared:
        item = items[i]
        p = item["chosen_prompt_len"]
        chosen, rejected = item["chosen_ids"][p:], item["rejected_ids"][p:]
        rows.append(item["chosen_ids"] + rejected)
        positions.append(list(range(p + len(chosen))) + list(range(p, p + len(rejected))))
        blocks.append((p, len(chosen), len(rejected)))
    for side in ("chosen", "rejected"):
        for i in plain:
            ids_ = items[i][f"{side}_ids"]
            rows.append(ids_)
            positions.append(list(range(len(ids_))))
            blocks.append((len(ids_), 0, 0))
    width = padded_width(max(len(r) for r in rows), multiple_of)
    mask = torch.zeros(len(rows), 1, width, width, dtype=torch.bool)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    for r, (p, c, j) in enumerate(blocks):
        n = p + c + j
        mask[r, 0, :n, :n] = causal[:n, :n]
        mask[r, 0, p + c:n, p:p + c] = False  # rejected tokens do not see the chosen ones
        idx = torch.arange(n, width)
        mask[r, 0, idx, idx] = True  # padding attends to itself only (never read; keeps softmax finite)
    for r, i in enumerate(shared):
        p, c, _ = blocks[r]
        row = rows[r]
        if count_shared:  # the prompt is computed once; its terms count for both sides
            add_targets(r, list(range(p - 1)), row[1:p], i, SHARED_PROMPT)
        add_targets(r, list(range(p - 1, p + c - 1)), row[p:p + c], i, RESPONSE)
        add_targets(r, [p - 1] + list(range(p + c, len(row) - 1)), row[p + c:], size + i, RESPONSE)
    for k, (side_offset, side) in enumerate(((0, "chosen"), (size, "rejected"))):
        for n, i in enumerate(plain):
            r = len(shared) + k * len(plain) + n
            item = items[i]
            row, p = rows[r], item[f"{side}_prompt_len"]
            codes = segments_for(len(row), p, count_plain)
            for t in range(1, len(row)):
                if codes[t] != SKIP:
                    add_targets(r, [t - 1], [row[t]], side_offset + i, codes[t])
    return {"input_ids": pad(rows, pad_token_id, multiple_of=multiple_of), "attention_mask": mask,
            "position_ids": pad(positions, 0, multiple_of=multiple_of),
            "target_pos": torch.tensor(pos, dtype=torch.long), "target_ids": torch.tensor(ids, dtype=torch.long),
            "target_seq": torch.tensor(seq, dtype=torch.long), "target_part": torch.tensor(part, dtype=torch.long)}


def layer_token_cost(config) -> float | None:
    """Multiply-adds per token of a decoder layer's projections and MLP, over those of one attention position
    (2 * hidden + 1.5 * intermediate for a gated MLP); None where the config does not say."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, inner = getattr(config, "hidden_size", None), getattr(config, "intermediate_size", None)
    return None if hidden is None or inner is None else 2.0 * hidden + 1.5 * inner


@dataclass
class PairCollator:
    """Batches of preference pairs.

    Input: rows with `PAIR_COLUMNS` (and `REF_COLUMNS` once the reference is precomputed).
    Output, for B pairs: ``same_prompt`` [B]; ``input_ids`` and ``attention_mask``; the counted tokens
    ``target_pos``, ``target_seq``, ``target_part`` (and ``target_ids`` with prefix sharing), where sequence i is
    the chosen side of pair i and B + i its rejected side (see `logprobs.batch_logps`); and the reference columns
    as [B] tensors. Without prefix sharing the rows are [chosen_0..chosen_B, rejected_0..rejected_B] (as TRL) with
    a 2D padding mask. With `share_prefix`, each equal-prompt pair is one row ``[prompt, chosen, rejected]`` and
    the mask is a boolean [rows, 1, L, L] block mask with ``position_ids`` restarting after the prompt.

    `count_prompt` says whether prompt tokens are targets (joint scope); `skip_equal_prompts` leaves them out for
    pairs whose prompts are equal, where they cancel. Where they are counted on such a pair, they are computed once
    (from the chosen row, or the shared row) and counted for both sides (SHARED_PROMPT): the two prompt terms are
    then one number and cancel exactly, on any machine, as Lemma D.1 says they do.

    Sharing saves the second pass over each prompt but makes rows longer, and attention grows with the square of
    the row length: with short prompts and long responses it can cost more than it saves. With `token_cost` (the
    model's per-token cost of its linear layers in units of one attention position: see `layer_token_cost`) a
    batch is shared only where rows x width x (token_cost + width) is smaller than without sharing.
    """

    pad_token_id: int
    count_prompt: bool
    skip_equal_prompts: bool = True
    share_prefix: bool = False
    token_cost: float | None = None
    pad_to_multiple_of: int | None = None
    plain_ids: bool = False  # also ``plain_input_ids`` / ``plain_attention_mask``: TRL's [chosen; rejected] rows

    def _worth_sharing(self, items: list[dict[str, Any]], same: list[bool]) -> bool:
        if self.token_cost is None:
            return True
        plain_width = max(len(it[f"{side}_ids"]) for it in items for side in ("chosen", "rejected"))
        shared_width = max(len(it["chosen_ids"]) + len(it["rejected_ids"]) - it["rejected_prompt_len"] if s
                           else plain_width for it, s in zip(items, same, strict=True))
        shared_rows = len(items) + sum(not s for s in same)
        return (shared_rows * shared_width * (self.token_cost + shared_width)
                < 2 * len(items) * plain_width * (self.token_cost + plain_width))

    def _prompt_code(self, item: dict[str, Any], side: str) -> int:
        """How a row's prompt tokens count. Equal prompts: not at all when skipped; else once, from the chosen row,
        for both sides (SHARED_PROMPT), so the two prompt terms are one number and cancel exactly, as they do
        under prefix sharing (two rows of one float batch need not round alike)."""
        if not self.count_prompt or (item["same_prompt"] and self.skip_equal_prompts):
            return SKIP
        if item["same_prompt"]:
            return SHARED_PROMPT if side == "chosen" else SKIP
        return PROMPT

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        same = [bool(it["same_prompt"]) for it in items]
        if self.share_prefix and any(same) and self._worth_sharing(items, same):
            shared = [i for i, s in enumerate(same) if s]
            plain = [i for i, s in enumerate(same) if not s]
            batch = _shared_rows(items, shared, plain, self.count_prompt and not self.skip_equal_prompts,
                                 self.count_prompt, self.pad_token_id, self.pad_to_multiple_of)
        else:
            seqs = []
            for side in ("chosen", "rejected"):
                for it in items:
                    seqs.append((it[f"{side}_ids"], it[f"{side}_prompt_len"], self._prompt_code(it, side)))
            batch = _padded_batch(seqs, self.pad_token_id, multiple_of=self.pad_to_multiple_of)
        if self.plain_ids:  # what TRL's compute_metrics sees: prompt + response rows, chosen first, right-padded
            rows = [it[f"{side}_ids"] for side in ("chosen", "rejected") for it in items]
            batch["plain_input_ids"] = pad(rows, self.pad_token_id, multiple_of=self.pad_to_multiple_of)
            batch["plain_attention_mask"] = pad([[1] * len(r) for r in rows], 0, multiple_of=self.pad_to_multiple_of)
        batch["same_prompt"] = torch.tensor(same)
        if REF_COLUMNS[0] in items[0]:
            batch.update({k: torch.tensor([it[k] for it in items], dtype=torch.float32) for k in REF_COLUMNS})
        return batch


@dataclass
class UnpairedCollator:
    """Batches of unpaired (KTO) rows.

    Input: rows with `UNPAIRED_COLUMNS`. Output, for B rows: ``label`` [B]; ``input_ids``, ``attention_mask`` and
    the counted response tokens (``target_pos``, ``target_seq``, ``target_part``) of the rows; and the same under
    ``kl_`` for the mismatched sequences of KTO's reference point: prompt i with completion i-1 within the batch
    (TRL's rotation), truncated by the same rule.
    """

    pad_token_id: int
    encoder: Encoder
    pad_to_multiple_of: int | None = None

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = _padded_batch([(it["ids"], it["prompt_len"], SKIP) for it in items], self.pad_token_id,
                              multiple_of=self.pad_to_multiple_of)
        batch["label"] = torch.tensor([bool(it["label"]) for it in items])
        kl = [self._kl_sequence(items[i], items[i - 1]) for i in range(len(items))]
        kl_batch = _padded_batch([(ids, p, SKIP) for ids, p in kl], self.pad_token_id,
                                 multiple_of=self.pad_to_multiple_of)
        batch.update({f"kl_{k}": v for k, v in kl_batch.items()})
        return batch

    def _kl_sequence(self, own: dict, other: dict) -> tuple[list[int], int]:
        prompt = own["ids"][: own["prompt_len"]]
        ids = prompt + other["ids"][other["prompt_len"]:]
        enc = self.encoder
        fitted = truncate(ids, len(prompt), max_length=enc.max_length, max_prompt_length=None,
                          truncation_mode="keep_start", has_bos=enc.has_bos)
        return (ids, len(prompt)) if fitted is None else (fitted.input_ids, fitted.prompt_len)
