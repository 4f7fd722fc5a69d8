"""Padding-free packing: the sequences of a batch laid end to end in one or a few rows, computed once each.

A *unit* is what one attention block holds: one sequence (a pair's side with its own prompt, an unpaired KTO row, an
SFT row), or a prefix-shared pair ``[prompt, chosen, rejected]`` whose rejected tokens see the prompt but not the
chosen ones. Units are packed into rows ("bins") with position ids restarting at 0 in each unit (after the prompt,
for the rejected branch of a shared pair), and either

- a boolean block-diagonal causal mask [rows, 1, W, W] (True = may attend), which sdpa takes as given and eager as
  an additive mask (`logprobs.additive_mask`): each token sees only earlier tokens of its own unit; a padding
  position sees itself only (never read, keeps the softmax finite); or
- no mask at all, one row, for flash-attention 2/3: transformers reads the restarting position ids as a varlen batch
  (`modeling_flash_attention_utils._is_packed_sequence`), which has no notion of a shared prefix, so units are then
  single sequences; or
- no mask, one unpadded row and a table of its units, for sdpa: attention runs unit by unit (`unit_attention`, an
  attention function registered with transformers and swapped in for the forward by `units_attention`), each unit
  causal with sdpa's own causal kernel and a shared pair's second branch against the prompt and itself, so no
  padding, no mask tensor and no attention between units is ever computed: the varlen idea without flash-attention.

A dense mask makes attention cost W^2 per row however sparse the blocks are, so packing many long units into one wide
row can cost more than the padding it saves. The width is therefore chosen by a cost estimate (`choose_bins`):
rows x W x (token_cost + W), token_cost being the per-token cost of a layer's projections and MLP in units of one
attention position (`data.layer_token_cost`), over bins filled first-fit decreasing with capacities from the longest
unit up to all of them in one row (`max_length` x batch at most). Without a cost (unknown config) the smallest
capacity that holds the longest unit is used. The flash and unit-by-unit paths cost each unit's own attention
whatever the layout and are one row (`units_cost` decides whether sharing prompts pays there).

Exactness: packing changes which numbers meet in one matrix product, not what is computed: each target is still
predicted from the same earlier tokens at the same positions, so log-probs agree with the padded forward to float
rounding (tests/test_packing.py checks 1e-5 in float64), and the layout depends only on the lengths, never on which
tokens are counted, so JPO and DPO on equal prompts run the same forward (Lemma D.1 to the bit).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from jpo.modeling import padded_width

logger = logging.getLogger(__name__)

# Branch codes of a unit's tokens: the prompt (or the whole of a plain sequence), the chosen and the rejected branch.
TRUNK, FIRST, SECOND = 0, 1, 2


@dataclass
class Unit:
    """One attention block: `ids` laid out as trunk (`prefix` tokens) + first branch (`branch` tokens) + second
    branch (the rest), the second branch seeing the trunk but not the first (`branch` = 0: a plain causal
    sequence). Targets are (position whose hidden state predicts, token, sequence number, part code)."""

    ids: list[int]
    prefix: int
    branch: int = 0
    targets: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def positions(self) -> list[int]:
        first = self.prefix + self.branch
        return list(range(first)) + list(range(self.prefix, self.prefix + len(self.ids) - first))

    @property
    def codes(self) -> list[int]:
        first = self.prefix + self.branch
        rest = len(self.ids) - first
        return [TRUNK] * self.prefix + [FIRST] * self.branch + [SECOND] * (rest if self.branch else 0) + \
            [TRUNK] * (0 if self.branch else rest)


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` in bins of total length <= `capacity` (a longer item gets a bin of its own), longest
    first into the first bin that takes it. Deterministic: ties keep index order."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


def layout_cost(rows: int, width: int, token_cost: float | None) -> float:
    """Estimated cost of a forward over `rows` rows of `width` under a dense mask (see the module docstring)."""
    return rows * width * ((token_cost or 0.0) + width)


def choose_bins(lengths: list[int], token_cost: float | None, multiple_of: int | None = None
                ) -> tuple[list[list[int]], float]:
    """(bins, estimated cost) of the cheapest first-fit-decreasing packing of units of `lengths` into rows, over
    capacities from the longest unit to their sum. Without `token_cost` the smallest capacity wins (fewest padded
    tokens at the narrowest width)."""
    longest, total = max(lengths), sum(lengths)
    capacities = sorted({longest, total, *(int(longest * f) for f in (1.25, 1.5, 2, 3, 4, 6, 8, 12, 16)
                                           if longest * f < total)})
    if token_cost is None:
        capacities = capacities[:1]
    best: tuple[list[list[int]], float] | None = None
    for capacity in capacities:
        bins = first_fit_decreasing(lengths, capacity)
        width = padded_width(max(sum(lengths[i] for i in b) for b in bins), multiple_of)
        cost = layout_cost(len(bins), width, token_cost)
        if best is None or cost < best[1]:
            best = (bins, cost)
    return best


def units_cost(units: list[Unit], token_cost: float | None) -> float:
    """Estimated cost of attending unit by unit (see the module docstring): each unit's linear layers and its own
    causal attention, a second branch against the prompt and itself."""
    total = 0.0
    for unit in units:
        n, first = len(unit.ids), unit.prefix + unit.branch
        second = n - first if unit.branch else 0
        total += n * (token_cost or 0.0) + (n - second) ** 2 / 2 + second * (unit.prefix + second / 2)
    return total


def pack(units: list[Unit], bins: list[list[int]], pad_token_id: int, mask: bool = True,
         multiple_of: int | None = None, table: bool = False) -> dict[str, torch.Tensor]:
    """One forward's tensors for `units` laid out in `bins` (lists of unit indices, one row each): ``input_ids``
    and ``position_ids`` [rows, W], the ``target_*`` entries `logprobs.batch_logps` reads (``target_pos`` a flat index
    into [rows, W]) and, with `mask`, the boolean block mask ``attention_mask`` [rows, 1, W, W]. Without `mask` there
    must be one bin: flash-attention's varlen row (plain units only), or with `table` the unit-by-unit row, whose
    ``units`` [U, 4] are (start, prefix, branch, length) for `unit_attention`; it is unpadded unless `multiple_of`
    asks for padding, which is then one more unit (no targets)."""
    if not mask and (len(bins) != 1 or (not table and any(u.branch for u in units))):
        raise ValueError("a packed batch without a mask is one row; only a unit table lets units share a prefix")
    fill = [sum(len(units[i].ids) for i in b) for b in bins]
    width = padded_width(max(fill), multiple_of)
    if not mask and width > fill[0]:  # the one row's padding: a unit of its own, attended within itself only
        units = [*units, Unit([pad_token_id] * (width - fill[0]), prefix=width - fill[0])]
        bins = [[*bins[0], len(units) - 1]]
    # Rows built as Python lists and converted once: a tensor per unit and field costs more than the copying.
    ids, positions, owner, branch = [], [], [], []
    pos, tok, seq, part, rows = [], [], [], [], []
    for r, b in enumerate(bins):
        row_ids, row_positions, row_owner, row_branch = [], [], [], []
        for u in b:
            unit = units[u]
            start, n = len(row_ids), len(unit.ids)
            row_ids += unit.ids
            row_positions += unit.positions
            if mask:  # which unit each position belongs to, and its branch, to build the mask from
                row_owner += [u] * n
                row_branch += unit.codes
            rows.append((start, unit.prefix, unit.branch, n))
            if unit.targets:
                offset = r * width + start
                sources, tokens, sequences, parts = zip(*unit.targets, strict=True)
                pos += [offset + p for p in sources]
                tok += tokens
                seq += sequences
                part += parts
        padding = width - len(row_ids)
        ids.append(row_ids + [pad_token_id] * padding)
        positions.append(row_positions + [0] * padding)
        # padding: each position a block of its own (owner numbers past every unit's)
        owner.append(row_owner + list(range(len(units) + len(row_ids), len(units) + width)))
        branch.append(row_branch + [TRUNK] * padding)
    batch = {"input_ids": torch.tensor(ids, dtype=torch.long), "position_ids": torch.tensor(positions, dtype=torch.long),
             "target_pos": torch.tensor(pos, dtype=torch.long), "target_ids": torch.tensor(tok, dtype=torch.long),
             "target_seq": torch.tensor(seq, dtype=torch.long), "target_part": torch.tensor(part, dtype=torch.long)}
    if mask:
        owners, branches = torch.tensor(owner, dtype=torch.long), torch.tensor(branch, dtype=torch.long)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        same = owners[:, :, None] == owners[:, None, :]
        crossed = (branches[:, :, None] == SECOND) & (branches[:, None, :] == FIRST)
        batch["attention_mask"] = (same & causal & ~crossed).unsqueeze(1)
    elif table:
        batch["units"] = torch.tensor(rows, dtype=torch.long)
    return batch


UNITS_ATTENTION = "jpo_units"


class UnitTable:
    """A packed row's unit table as `unit_attention` reads it, built once per forward and shared by its layers:
    the rows (start, prefix, branch, length), the lengths of the pieces the row splits into (each unit's trunk and
    first branch, then its second branch, if any) and each second branch's mask, made on first use."""

    def __init__(self, rows: list[list[int]] | torch.Tensor) -> None:
        self.rows = [tuple(r) for r in (rows.tolist() if isinstance(rows, torch.Tensor) else rows)]
        self.sizes = [size for _, prefix, branch, length in self.rows
                      for size in ((prefix + branch, length - prefix - branch) if branch else (length,))]
        self._masks: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def branch_mask(self, unit: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """[second, prefix + second] additive mask of `unit`'s second branch: 0 where it may attend (every trunk key
        and, causally, its own: key j <= query i + prefix), -inf elsewhere. A float mask in the query's dtype is what
        sdpa turns a boolean one into on every call, forward and backward alike: made once, the layers share it."""
        key = (unit, dtype, device)
        if key not in self._masks:
            _, prefix, branch, length = self.rows[unit]
            second = length - prefix - branch
            allowed = torch.ones(second, prefix + second, dtype=torch.bool, device=device).tril(prefix)
            self._masks[key] = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, -torch.inf)
        return self._masks[key]


def unit_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask, scaling=None,
                   dropout: float = 0.0, jpo_units: UnitTable | list[list[int]] | None = None, **kwargs):
    """Attention of one packed row, unit by unit (transformers' attention-function interface): `query` [1, H, T, D],
    `key` / `value` [1, H_kv, T, D], `jpo_units` the row's `UnitTable` (or its rows (start, prefix, branch,
    length)). Each unit's trunk and first branch attend causally (sdpa's causal kernel); a second branch attends to
    the trunk and causally to itself. Returns ([1, T, H, D], None). `attention_mask` is unused (None: there is no
    mask to build)."""
    import torch.nn.functional as F

    if jpo_units is None:
        raise ValueError("unit_attention needs the row's unit table (jpo_units); see jpo.train.packing")
    table = jpo_units if isinstance(jpo_units, UnitTable) else UnitTable(jpo_units)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads (index_select:
        # the cheapest repeat here, forward and backward)
        heads = torch.arange(query.shape[1], device=key.device) // groups
        key, value = key.index_select(1, heads), value.index_select(1, heads)
    dropout = dropout if module.training else 0.0
    # One split per tensor into the units' pieces: its backward is one concatenation, where a slice per piece would
    # each write its gradient into a zero tensor of the whole row.
    queries, keys, values = (x.split(table.sizes, dim=2) for x in (query, key, value))
    outs, piece = [], 0
    for unit, (_, prefix, branch, length) in enumerate(table.rows):
        q, k, v = queries[piece], keys[piece], values[piece]
        outs.append(F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scaling))
        if branch and length > prefix + branch:
            keys2 = torch.cat([k[:, :, :prefix], keys[piece + 1]], dim=2)
            values2 = torch.cat([v[:, :, :prefix], values[piece + 1]], dim=2)
            outs.append(F.scaled_dot_product_attention(queries[piece + 1], keys2, values2,
                                                       attn_mask=table.branch_mask(unit, query.dtype, query.device),
                                                       dropout_p=dropout, scale=scaling))
        piece += 2 if branch else 1
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


@contextmanager
def units_attention(model):
    """Within the block, `model`'s attention layers run `unit_attention` (registered with transformers on first use)
    instead of their own implementation; restored on exit. Only the forward reads the setting: the backward pass
    follows the autograd graph the forward built, so it may run after the block."""
    from transformers import AttentionInterface

    if UNITS_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(UNITS_ATTENTION, unit_attention)
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    before = {key: config._attn_implementation for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = UNITS_ATTENTION
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = before[key]


def computed_tokens(batch: dict[str, torch.Tensor], prefix: str = "") -> tuple[int, int]:
    """(positions the forward computes, those holding a real token) of a collated batch: rows x width, and the
    non-padding positions (a 2D mask's ones; under a block mask, the positions that see or are seen by another one:
    every unit has at least two tokens, BOS and EOS, while a padding position sees only itself)."""
    ids = batch[f"{prefix}input_ids"]
    mask = batch.get(f"{prefix}attention_mask")
    if mask is None:
        return ids.numel(), ids.numel()
    if mask.dim() == 2:
        return ids.numel(), int(mask.sum())
    m = mask.squeeze(1)
    return ids.numel(), int(((m.sum(-1) > 1) | (m.sum(-2) > 1)).sum())


def packing_mode(model, padding_free: bool | None, max_length: int | None, blocker: str | None = None,
                 gradient_checkpointing: bool = False, device: object = "cpu") -> tuple[str | None, str | None]:
    """(layout, why not): "units" for sdpa, "block" for eager, "varlen" for flash-attention 2/3, None (padded) where
    `padding_free` is False or packing cannot be used, with the reason in one line (None where not asked about).
    `blocker` is a caller's own reason not to pack (e.g. a router loss that reads a 2D padding mask). Under
    `gradient_checkpointing` sdpa takes "block": the backward pass recomputes each layer's forward after
    `units_attention` has restored the model's own attention, which must then find the mask in its inputs.

    On a GPU (`device`, the training device, not "cpu") the default (`padding_free` None) packs only through
    flash-attention's varlen path: there sdpa's unit-by-unit attention launches a few small kernels per unit and
    layer, and a dense block mask leaves sdpa's fused kernels, both slower than padded rows (an H200, Qwen2.5-0.5B
    architecture, bf16: unit by unit 0.18x, block mask 0.72x padded tokens/s; benchmarks/results/gpu-h200-2026-11-30).
    `padding_free` True packs there too.

    Sliding-window layers are refused where a sequence can be longer than the window: a custom mask or a varlen
    row replaces the window the model would otherwise apply."""
    if padding_free is False:
        return None, None
    base = model.get_base_model() if hasattr(model, "get_base_model") and hasattr(model, "peft_config") else model
    config = base.config
    attention = getattr(config, "_attn_implementation", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None)
    sliding = window is not None and (max_length is None or max_length > window) and \
        (any("sliding" in str(t) for t in getattr(text, "layer_types", None) or []) or
         getattr(text, "use_sliding_window", True))
    if blocker:
        return None, blocker
    if sliding:
        return None, f"the model's sliding-window attention ({window} positions) would not apply to packed rows"
    # transformers 5.x's name first: reading the older one warns that it is deprecated
    name = "is_activation_checkpointing" if hasattr(type(base), "is_activation_checkpointing") else \
        "is_gradient_checkpointing"
    gradient_checkpointing = gradient_checkpointing or bool(getattr(base, name, False))
    if attention in ("sdpa", "eager") and padding_free is None and not str(device).startswith("cpu"):
        return None, (f"on a GPU {attention} packing runs slower than padded rows (measured with sdpa: unit by unit "
                      "0.18x, block mask 0.72x the padded tokens/s); attn_implementation='flash_attention_2' packs "
                      "without a mask, --padding_free true packs anyway")
    if attention == "sdpa" and not gradient_checkpointing:
        return "units", None
    if attention in ("sdpa", "eager"):
        return "block", None
    if attention and "flash" in attention:  # flash_attention_2/3 and hub kernels of it: transformers' varlen path
        return "varlen", None
    return None, f"attention implementation {attention!r} takes neither a 4D mask nor packed position ids"


LAYOUTS = {"units": "sdpa, attention unit by unit", "block": "one block-diagonal causal mask per row",
           "varlen": "flash-attention varlen rows"}


def batch_layout(layout: str | None, why: str | None) -> str:
    """One line saying how the batches are laid out (`packing_mode`'s answer), for the run's summary; where packing
    was asked for but cannot be used, the reason is also logged as a warning, once, before training."""
    if why:
        logger.warning("padding-free packing off: %s; the batches are padded", why)
        return f"padded batches ({why})"
    return f"padding-free batches ({LAYOUTS[layout]})" if layout else "padded batches (--padding_free false)"
