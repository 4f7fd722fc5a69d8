"""Which joint comparisons to label under a budget: selectors over a streamed candidate pool, and the active loop."""

from jpo.selection.active import ActiveResult, select_active
from jpo.selection.candidates import candidate_chunks, parse_pool, pool_size
from jpo.selection.selectors import SELECTORS, SelectionReport, select, select_indices

__all__ = [
    "SELECTORS", "ActiveResult", "SelectionReport", "candidate_chunks", "parse_pool", "pool_size", "select",
    "select_active", "select_indices",
]
