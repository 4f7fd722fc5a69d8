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
from jpo.modeling import pad
from jpo.train.logprobs import PROMPT, RESPONSE, SHARED_PROMPT, SKIP, segments_for, targets_from_segments
from jpo.train.packing import Unit, choose_bins, layout_cost, pack, units_cost
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
    """Have every process draw its own batches (accelerate's ``dispatch_batches=False``) for the collators below
    and SFT's packed rows (whose unit table is not batch-first either).

    accelerate dispatches the batches of an iterable dataset by default: one process draws a batch and every
    process takes its slice of every tensor's first dimension, the batch size. These collators' tensors are not all
    [batch, ...]: ``input_ids`` has both sides of each pair (2B rows, or one row per prefix-shared pair) and the
    ``target_*`` tensors one entry per counted token, so a slice of B would cut most targets away (a streamed dataset
    then trains on almost nothing). Map-style datasets are not dispatched anyway; this makes streamed ones behave
    the same. Raises JpoError where the configuration asks for dispatching explicitly."""
    config = args.accelerator_config
    if getattr(config, "dispatch_batches", None):
        raise JpoError("accelerator_config.dispatch_batches=True cannot split preference or packed batches (their "
                       "tensors are not batch-first); leave it unset or false")
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


def _targets(ids: list[int], prompt_len: int, code: int, seq: int) -> list[tuple[int, int, int, int]]:
    """The counted tokens of one sequence as `packing.Unit` targets (position in the unit that predicts, token,
    sequence number, part): the response and EOS, and the prompt tokens after BOS where `code` is not SKIP."""
    return [(t - 1, ids[t], seq, part) for t, part in enumerate(segments_for(len(ids), prompt_len, True, code))
            if t and part != SKIP]


def _plain_unit(ids: list[int], prompt_len: int, code: int, seq: int) -> Unit:
    return Unit(list(ids), prefix=len(ids), targets=_targets(ids, prompt_len, code, seq))


def _shared_unit(item: dict, seq: int, size: int, count_prompt: bool) -> Unit:
    """``[prompt, chosen, rejected]`` of an equal-prompt pair: the rejected branch sees the prompt, not the chosen
    response; its first token is predicted from the last prompt position, as in its own sequence. The prompt terms
    are computed once and counted for both sides (SHARED_PROMPT) where `count_prompt`."""
    p = item["chosen_prompt_len"]
    chosen, rejected = item["chosen_ids"], item["rejected_ids"][p:]
    c = len(chosen) - p
    targets = _targets(chosen, p, SHARED_PROMPT if count_prompt else SKIP, seq)
    sources = [p - 1] + list(range(p + c, p + c + len(rejected) - 1))
    targets += [(source, token, size + seq, RESPONSE) for source, token in zip(sources, rejected, strict=True)]
    return Unit(chosen + rejected, prefix=p, branch=c, targets=targets)


def layer_token_cost(config) -> float | None:
    """Multiply-adds per token of a decoder layer's projections and MLP, over those of one attention position
    (2 * hidden + 1.5 * intermediate for a gated MLP); None where the config does not say."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, inner = getattr(config, "hidden_size", None), getattr(config, "intermediate_size", None)
    return None if hidden is None or inner is None else 2.0 * hidden + 1.5 * inner


# How a collator lays a batch out: padded rows (TRL's layout), packed rows under a block mask (eager), one packed
# row attended unit by unit (sdpa), or one packed row read through its position ids (flash-attention's varlen path).
# See packing.py.
PADDED, BLOCK, UNITS, VARLEN = None, "block", "units", "varlen"


@dataclass
class PairCollator:
    """Batches of preference pairs.

    Input: rows with `PAIR_COLUMNS` (and `REF_COLUMNS` once the reference is precomputed).
    Output, for B pairs: ``same_prompt`` [B]; ``input_ids`` and ``attention_mask``; the counted tokens
    ``target_pos``, ``target_seq``, ``target_part`` (and ``target_ids`` where the rows are not TRL's), where
    sequence i is the chosen side of pair i and B + i its rejected side (see `logprobs.batch_logps`); and the
    reference columns as [B] tensors. Layouts:

    - padded (`packing` None, no sharing): rows [chosen_0..chosen_B, rejected_0..rejected_B] (as TRL), 2D mask;
    - `share_prefix` without packing: each equal-prompt pair one row ``[prompt, chosen, rejected]``, the others two
      rows, under a boolean [rows, 1, L, L] block mask with ``position_ids`` restarting after the prompt;
    - `packing="block"`: those units (shared pairs where `share_prefix`, single sequences) packed end to end into as
      few rows as the cost estimate finds cheapest (`packing.choose_bins`), under a block-diagonal mask;
    - `packing="units"`: the same units end to end in one unpadded row, no mask, with their table ``units``
      (start, prefix, branch, length) for `packing.unit_attention` (sdpa), sharing where `packing.units_cost` says
      it pays;
    - `packing="varlen"`: every sequence end to end in one row, no mask, ``position_ids`` restarting at 0 for each
      (flash-attention; no prefix sharing there).

    `count_prompt` says whether prompt tokens are targets (joint scope); `skip_equal_prompts` leaves them out for
    pairs whose prompts are equal, where they cancel. Where they are counted on such a pair, they are computed once
    (from the chosen row, or the shared row) and counted for both sides (SHARED_PROMPT): the two prompt terms are
    then one number and cancel exactly, on any machine, as Lemma D.1 says they do. The layout depends on lengths
    only, never on which tokens count, so every objective runs the same forward on the same batch.

    Sharing saves the second pass over each prompt but makes units longer, and attention under a dense mask grows
    with the square of the row width: with short prompts and long responses it can cost more than it saves. With
    `token_cost` (the model's per-token cost of its linear layers in units of one attention position: see
    `layer_token_cost`) each layout is costed as rows x width x (token_cost + width) and the cheapest is used.
    """

    pad_token_id: int
    count_prompt: bool
    skip_equal_prompts: bool = True
    share_prefix: bool = False
    token_cost: float | None = None
    pad_to_multiple_of: int | None = None
    plain_ids: bool = False  # also ``plain_input_ids`` / ``plain_attention_mask``: TRL's [chosen; rejected] rows
    packing: str | None = PADDED

    def _worth_sharing(self, items: list[dict[str, Any]], same: list[bool]) -> bool:
        if self.token_cost is None:
            return True
        plain_width = max(len(it[f"{side}_ids"]) for it in items for side in ("chosen", "rejected"))
        shared_width = max(len(it["chosen_ids"]) + len(it["rejected_ids"]) - it["rejected_prompt_len"] if s
                           else plain_width for it, s in zip(items, same, strict=True))
        shared_rows = len(items) + sum(not s for s in same)
        return (layout_cost(shared_rows, shared_width, self.token_cost)
                < layout_cost(2 * len(items), plain_width, self.token_cost))

    def _prompt_code(self, item: dict[str, Any], side: str) -> int:
        """How a row's prompt tokens count. Equal prompts: not at all when skipped; else once, from the chosen row,
        for both sides (SHARED_PROMPT), so the two prompt terms are one number and cancel exactly, as they do
        under prefix sharing (two rows of one float batch need not round alike)."""
        if not self.count_prompt or (item["same_prompt"] and self.skip_equal_prompts):
            return SKIP
        if item["same_prompt"]:
            return SHARED_PROMPT if side == "chosen" else SKIP
        return PROMPT

    def units(self, items: list[dict[str, Any]], share: bool) -> list[Unit]:
        """The batch's attention blocks: with `share`, one ``[prompt, chosen, rejected]`` unit per equal-prompt pair
        (first) and the two sequences of every other pair (chosen sides, then rejected); without, every side alone,
        chosen sides first (TRL's row order)."""
        size = len(items)
        count_shared = self.count_prompt and not self.skip_equal_prompts
        shared = [i for i, it in enumerate(items) if share and it["same_prompt"]]
        out = [_shared_unit(items[i], i, size, count_shared) for i in shared]
        for offset, side in ((0, "chosen"), (size, "rejected")):
            out += [_plain_unit(it[f"{side}_ids"], it[f"{side}_prompt_len"], self._prompt_code(it, side), offset + i)
                    for i, it in enumerate(items) if i not in shared]
        return out

    def _layout(self, items: list[dict[str, Any]], same: list[bool]) -> dict[str, torch.Tensor]:
        multiple = self.pad_to_multiple_of
        if self.packing == VARLEN:
            units = self.units(items, share=False)
            return pack(units, [list(range(len(units)))], self.pad_token_id, mask=False, multiple_of=multiple)
        if self.packing == UNITS:
            options = [self.units(items, share) for share in ([False, True] if self.share_prefix and any(same)
                                                              else [False])]
            units = min(options, key=lambda u: units_cost(u, self.token_cost))
            return pack(units, [list(range(len(units)))], self.pad_token_id, mask=False, table=True,
                        multiple_of=multiple)
        if self.packing == BLOCK:
            options = [False, True] if self.share_prefix and any(same) else [False]
            best = None
            for share in options:  # the cheaper of sharing or not, each at its cheapest packing
                units = self.units(items, share)
                bins, cost = choose_bins([len(u.ids) for u in units], self.token_cost, multiple)
                if best is None or cost < best[2]:
                    best = (units, bins, cost)
            units, bins, _ = best
            return pack(units, bins, self.pad_token_id, multiple_of=multiple)
        if self.share_prefix and any(same) and self._worth_sharing(items, same):
            units = self.units(items, share=True)
            return pack(units, [[i] for i in range(len(units))], self.pad_token_id, multiple_of=multiple)
        seqs = [(it[f"{side}_ids"], it[f"{side}_prompt_len"], self._prompt_code(it, side))
                for side in ("chosen", "rejected") for it in items]
        return _padded_batch(seqs, self.pad_token_id, multiple_of=multiple)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        same = [bool(it["same_prompt"]) for it in items]
        batch = self._layout(items, same)
        if self.plain_ids:  # what TRL's compute_metrics sees: prompt + response rows, chosen first, right-padded
            rows = [it[f"{side}_ids"] for side in ("chosen", "rejected") for it in items]
            batch["plain_input_ids"] = pad(rows, self.pad_token_id, multiple_of=self.pad_to_multiple_of)
            batch["plain_attention_mask"] = pad([[1] * len(r) for r in rows], 0, multiple_of=self.pad_to_multiple_of)
        batch["same_prompt"] = torch.tensor(same)
        if REF_COLUMNS[0] in items[0]:
            batch.update({k: torch.tensor([it[k] for it in items], dtype=torch.float32) for k in REF_COLUMNS})
        return batch


def pack_sequences(seqs: list[tuple[list[int], int]], pad_token_id: int, packing: str, token_cost: float | None,
                   multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Sequences (ids, prompt length) packed (`packing` BLOCK, UNITS or VARLEN), their responses and EOS counted as
    sequence i, as `_padded_batch` counts them."""
    units = [_plain_unit(ids, p, SKIP, i) for i, (ids, p) in enumerate(seqs)]
    if packing in (VARLEN, UNITS):
        return pack(units, [list(range(len(units)))], pad_token_id, mask=False, table=packing == UNITS,
                    multiple_of=multiple_of)
    bins, _ = choose_bins([len(u.ids) for u in units], token_cost, multiple_of)
    return pack(units, bins, pad_token_id, multiple_of=multiple_of)


@dataclass
class UnpairedCollator:
    """Batches of unpaired (KTO) rows.

    Input: rows with `UNPAIRED_COLUMNS`. Output, for B rows: ``label`` [B]; ``input_ids``, ``attention_mask`` and
    the counted response tokens (``target_pos``, ``target_seq``, ``target_part``) of the rows; and the same under
    ``kl_`` for the mismatched sequences of KTO's reference point: prompt i with completion i-1 within the batch
    (TRL's rotation), truncated by the same rule. With `packing` (see `PairCollator`) each of the two is packed.
    """

    pad_token_id: int
    encoder: Encoder
    pad_to_multiple_of: int | None = None
    packing: str | None = PADDED
    token_cost: float | None = None

    def _batch(self, seqs: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        if self.packing is not PADDED:
            return pack_sequences(seqs, self.pad_token_id, self.packing, self.token_cost, self.pad_to_multiple_of)
        return _padded_batch([(ids, p, SKIP) for ids, p in seqs], self.pad_token_id,
                             multiple_of=self.pad_to_multiple_of)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self._batch([(it["ids"], it["prompt_len"]) for it in items])
        batch["label"] = torch.tensor([bool(it["label"]) for it in items])
        kl = [self._kl_sequence(items[i], items[i - 1]) for i in range(len(items))]
        batch.update({f"kl_{k}": v for k, v in self._batch(kl).items()})
        return batch

    def _kl_sequence(self, own: dict, other: dict) -> tuple[list[int], int]:
        prompt = own["ids"][: own["prompt_len"]]
        ids = prompt + other["ids"][other["prompt_len"]:]
        enc = self.encoder
        fitted = truncate(ids, len(prompt), max_length=enc.max_length, max_prompt_length=None,
                          truncation_mode="keep_start", has_bos=enc.has_bos)
        return (ids, len(prompt)) if fitted is None else (fitted.input_ids, fitted.prompt_len)
