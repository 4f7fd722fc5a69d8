"""The candidate pool of joint comparisons, streamed as index arrays so that it is never held in memory.

A candidate is a pair of instance indices (a, b) with different instructions (instances are one per instruction).
`all` is every unordered pair: n(n-1)/2 candidates, visited row by row (a < b). `K` (an integer) is K random
partners per instance, the paper's derangement pairing widened: one seeded permutation, then position i against
position i + s for s = 1..K, one shift per chunk. Either way a chunk is at most `chunk_size` candidates and the
pool's order is fixed by the seed, so a streamed selection is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from jpo.errors import JpoError

Chunk = tuple[np.ndarray, np.ndarray]


def pool_size(n: int, pool: str | int) -> int:
    return n * (n - 1) // 2 if pool == "all" else n * int(pool)


def parse_pool(value: str | int) -> str | int:
    """`all` or a number of partners per instance (`--pool 8`)."""
    if value == "all":
        return "all"
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise JpoError(f"--pool must be 'all' or a number of partners per instance, got {value!r}") from None
    if k < 1:
        raise JpoError(f"--pool {k}: need at least one partner per instance")
    return k


def candidate_chunks(n: int, pool: str | int, *, seed: int = 0, chunk_size: int = 1 << 18) -> Iterator[Chunk]:
    """(a, b) index arrays covering the pool once, each at most `chunk_size` long (one shift for a K-partner pool)."""
    if n < 2:
        raise JpoError(f"{n} distinct instruction(s): a joint comparison needs two")
    if pool == "all":
        yield from _all_pairs(n, chunk_size)
        return
    k = int(pool)
    if 2 * k >= n:
        raise JpoError(f"{n} distinct instructions cannot give {k} distinct partner(s) each (need more than {2 * k})")
    order = np.random.default_rng(seed).permutation(n)
    for shift in range(1, k + 1):
        partner = np.roll(order, -shift)
        for start in range(0, n, chunk_size):
            yield order[start:start + chunk_size], partner[start:start + chunk_size]


def _all_pairs(n: int, chunk_size: int) -> Iterator[Chunk]:
    a_parts: list[np.ndarray] = []
    b_parts: list[np.ndarray] = []
    held = 0
    for a in range(n - 1):
        b = np.arange(a + 1, n)
        for start in range(0, b.size, chunk_size):
            part = b[start:start + chunk_size]
            if held + part.size > chunk_size:
                yield np.concatenate(a_parts), np.concatenate(b_parts)
                a_parts, b_parts, held = [], [], 0
            a_parts.append(np.full(part.size, a))
            b_parts.append(part)
            held += part.size
    if held:
        yield np.concatenate(a_parts), np.concatenate(b_parts)
