"""Near copies among images, found from their hashes (``pipeline.hashing.Hashes``).

``find_pairs`` is the pair search the dedupe stage clusters and the validate command rechecks
across splits: two images are near copies when one of the ``MATCHES`` (a pair of hash views,
e.g. the mirror image of one against the other) is within ``radius`` pHash bits and the
dHashes of the same views agree within ``verify`` bits, a second, independent measure that
keeps a wide radius precise.

Under it, ``near_pairs`` finds every pair of 64-bit hashes within Hamming distance ``radius``
without comparing all pairs. Multi-index hashing (Norouzi, Punjani and Fleet, "Fast search in
Hamming space with multi-index hashing", CVPR 2012): cut the 64 bits into ``m`` blocks. Two
hashes within ``r = m*s + a`` bits of each other are within ``s`` bits in one of the first
``a + 1`` blocks or within ``s - 1`` bits in one of the others (pigeonhole). So for each block
we sort the indexed hashes by that block's value and, for every bit pattern ``p`` of at most
``s`` (or ``s - 1``) ones, look up the hashes whose block equals the query's block XOR ``p``;
each candidate is then checked on all 64 bits. All of it is numpy over whole arrays, one
vectorised pass per pattern. ``m`` is chosen by a cost model (lookups plus candidates), which
lands near Norouzi's 64 / log2(n).

A pair found in several blocks is kept only in the first block where it qualifies, so every
pair comes out exactly once. Identical values are collapsed first (``np.unique``), so a
thousand copies of one hash cost one lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pyarrow as pa

BITS = 64
MAX_BLOCK_BITS = 24  # the per-block offset table has 2**bits entries
BRUTE_FORCE_PAIRS = 4_000_000  # below this many pairs, comparing all of them is faster
CHUNK = 1 << 20  # queries per vectorised pass: bounds the memory of one pass


class Pairs(NamedTuple):
    """Hashes within the radius, as parallel arrays: ``left[k]`` is within ``distance[k]`` bits
    of ``right[k]`` (positions in the searched arrays)."""

    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.left)

    def as_set(self) -> set[tuple[int, int]]:
        return set(zip(self.left.tolist(), self.right.tolist()))


def as_uint64(hashes) -> np.ndarray:
    """Hashes given as signed int64 (our Parquet columns), uint64 or Python ints, as uint64."""
    array = np.asarray(hashes)
    if array.dtype == np.int64:
        return array.view(np.uint64)
    if array.dtype == np.uint64:
        return array
    return np.array([int(h) & (2**BITS - 1) for h in array.ravel()], dtype=np.uint64)


def hamming(a, b) -> np.ndarray:
    return np.bitwise_count(as_uint64(a) ^ as_uint64(b)).astype(np.uint8)


def near_pairs(
    hashes, radius: int, others=None, *, method: str = "auto", progress: Callable[[float], None] | None = None
) -> Pairs:
    """Every pair within ``radius`` bits. With ``others`` None: pairs ``i < j`` of ``hashes``
    (a self-join). Otherwise: pairs ``(i, j)`` of ``hashes[i]`` and ``others[j]``.
    ``method``: ``index`` (multi-index hashing), ``brute`` (all pairs, for tests) or ``auto``.
    ``progress(fraction)`` is told the share of the search done so far, now and then."""
    if not 0 <= radius < BITS:
        raise ValueError(f"radius must be in 0..{BITS - 1}, got {radius}")
    queries = as_uint64(hashes)
    index = queries if others is None else as_uint64(others)
    q_values, q_inverse = np.unique(queries, return_inverse=True)
    i_values, i_inverse = (q_values, q_inverse) if others is None else np.unique(index, return_inverse=True)
    self_join = others is None
    if method == "auto":
        method = "brute" if len(q_values) * len(i_values) <= BRUTE_FORCE_PAIRS else "index"
    find = {"brute": _brute_force, "index": _multi_index}[method]
    vq, vi, d = find(q_values, i_values, radius, self_join, progress or (lambda fraction: None))
    return _expand(vq, vi, d, q_inverse, i_inverse, self_join)


def _brute_force(q: np.ndarray, idx: np.ndarray, radius: int, self_join: bool, progress):
    found = []
    step = max(1, BRUTE_FORCE_PAIRS // max(len(idx), 1))
    for start in range(0, len(q), step):
        progress(start / len(q))
        d = np.bitwise_count(q[start : start + step, None] ^ idx[None, :])
        keep = d <= radius
        if self_join:
            keep &= np.arange(start, start + len(d))[:, None] < np.arange(len(idx))[None, :]
        qi, ii = np.nonzero(keep)
        found.append((qi + start, ii, d[qi, ii]))
    return _concat(found)


class _Block(NamedTuple):
    shift: int
    bits: int
    radius: int


def plan_blocks(n_queries: int, n_index: int, radius: int) -> list[_Block]:
    """The cheapest cut of 64 bits into blocks, with each block's search radius."""
    best = None
    for m in range(1, BITS + 1):
        widths = [BITS // m + (1 if b < BITS % m else 0) for b in range(m)]
        if max(widths) > MAX_BLOCK_BITS:
            continue
        s, a = divmod(radius, m)
        radii = [s if b <= a else s - 1 for b in range(m)]
        cost = 0.0
        for w, r in zip(widths, radii):
            if r >= 0:
                patterns = _volume(w, r)
                cost += patterns * (n_queries + 1.5 * n_queries * n_index / 2**w)
        if best is None or cost < best[0]:
            best = (cost, widths, radii)
        if m > radius + 1:  # more blocks only shrink them: the cost grows from here
            break
    _, widths, radii = best
    shifts = np.cumsum([0] + widths[:-1])
    return [_Block(int(BITS - sh - w), w, r) for sh, w, r in zip(shifts, widths, radii) if r >= 0]


def _volume(bits: int, radius: int) -> int:
    from math import comb

    return sum(comb(bits, k) for k in range(radius + 1))


def _patterns(bits: int, radius: int) -> np.ndarray:
    out = [0]
    for k in range(1, radius + 1):
        out += [sum(1 << b for b in combo) for combo in combinations(range(bits), k)]
    return np.array(out, dtype=np.uint64)


def _multi_index(q: np.ndarray, idx: np.ndarray, radius: int, self_join: bool, progress):
    blocks = plan_blocks(len(q), len(idx), radius)
    steps = sum(_volume(b.bits, b.radius) for b in blocks) * -(-len(q) // CHUNK)
    done = 0
    found = []
    for number, block in enumerate(blocks):
        table = _BlockTable(block, idx)
        # Queries in block order too: lookups and gathers then walk memory nearly in order.
        q_order, q_keys = table.sort(q)
        q_sorted = q[q_order]
        patterns = _patterns(block.bits, block.radius).astype(np.int64)
        for start in range(0, len(q), CHUNK):
            part = slice(start, start + CHUNK)
            for pattern in patterns:
                done += 1
                if done % 64 == 0:
                    progress(done / steps)
                qi, ii, d = table.match(q_sorted[part], q_keys[part] ^ pattern, radius, blocks[:number])
                qi = q_order[qi + start]
                ii = table.order[ii]
                keep = qi < ii if self_join else slice(None)
                found.append((qi[keep], ii[keep], d[keep]))
    return _concat(found)


class _BlockTable:
    """The indexed hashes sorted by one block's value, with where each value's run starts."""

    def __init__(self, block: _Block, idx: np.ndarray):
        self.block = block
        self.order, keys = self.sort(idx)
        self.sorted = idx[self.order]
        counts = np.bincount(keys, minlength=1 << block.bits)
        self.counts = counts.astype(np.int32)
        self.starts = (np.cumsum(counts) - counts).astype(np.int64)

    def sort(self, hashes: np.ndarray):
        keys = self.key(hashes)
        order = np.argsort(keys, kind="stable")
        return order, keys[order]

    def key(self, hashes: np.ndarray) -> np.ndarray:
        b = self.block
        return ((hashes >> np.uint64(b.shift)) & np.uint64((1 << b.bits) - 1)).astype(np.int64)

    def match(self, queries: np.ndarray, lookup: np.ndarray, radius: int, earlier: list[_Block]):
        """(query row, sorted position, distance) of the hashes whose key is ``lookup[row]``,
        within ``radius``, and not already found in an ``earlier`` block."""
        counts = self.counts[lookup]
        hit = np.flatnonzero(counts)
        qi, pos = _ranges(hit, self.starts[lookup[hit]], counts[hit])
        xor = queries[qi] ^ self.sorted[pos]
        d = np.bitwise_count(xor)
        keep = d <= radius
        for other in earlier:
            keep &= np.bitwise_count((xor >> np.uint64(other.shift)) & np.uint64((1 << other.bits) - 1)) > other.radius
        return qi[keep], pos[keep], d[keep]


def _ranges(rows: np.ndarray, starts: np.ndarray, counts: np.ndarray):
    """``(row, position)`` for each position in ``starts[k] .. starts[k] + counts[k]``."""
    if (counts == 1).all():
        return rows, starts
    total = int(counts.sum())
    row = np.repeat(rows, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    position = np.repeat(starts, counts) + (np.arange(total) - first)
    return row, position


def _concat(found):
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint8)
    return (
        np.concatenate([f[0] for f in found]).astype(np.int64),
        np.concatenate([f[1] for f in found]).astype(np.int64),
        np.concatenate([f[2] for f in found]).astype(np.uint8),
    )


def _expand(vq, vi, d, q_inverse, i_inverse, self_join: bool) -> Pairs:
    """Pairs of values -> pairs of the items holding them (and, in a self-join, the pairs of
    items that hold the same value)."""
    q_items = _members(q_inverse)
    i_items = q_items if self_join else _members(i_inverse)
    left, right, dist = [], [], []
    if len(vq):
        q_sizes = np.diff(q_items[1])[vq]
        i_sizes = np.diff(i_items[1])[vi]
        if (q_sizes == 1).all() and (i_sizes == 1).all():
            left.append(q_items[0][q_items[1][vq]])
            right.append(i_items[0][i_items[1][vi]])
            dist.append(d)
        else:
            for a, b, dd in zip(vq.tolist(), vi.tolist(), d.tolist()):
                qa = _group(q_items, a)
                ib = _group(i_items, b)
                left.append(np.repeat(qa, len(ib)))
                right.append(np.tile(ib, len(qa)))
                dist.append(np.full(len(qa) * len(ib), dd, dtype=np.uint8))
    if self_join:
        members, starts = q_items
        for g in np.flatnonzero(np.diff(starts) > 1).tolist():
            group = members[starts[g] : starts[g + 1]]
            a, b = np.triu_indices(len(group), 1)
            left.append(group[a])
            right.append(group[b])
            dist.append(np.zeros(len(a), dtype=np.uint8))
    if not left:
        return Pairs(*_concat([]))
    left, right, dist = np.concatenate(left), np.concatenate(right), np.concatenate(dist)
    if self_join:
        left, right = np.minimum(left, right), np.maximum(left, right)
    return Pairs(left.astype(np.int64), right.astype(np.int64), dist.astype(np.uint8))


def _members(inverse: np.ndarray):
    """Items grouped by value: (items sorted by value, start of each value's group)."""
    items = np.argsort(inverse, kind="stable")
    starts = np.zeros(int(inverse.max(initial=-1)) + 2, dtype=np.int64)
    np.cumsum(np.bincount(inverse, minlength=len(starts) - 1), out=starts[1:])
    return items, starts


def _group(grouped, value: int) -> np.ndarray:
    items, starts = grouped
    return items[starts[value] : starts[value + 1]]


# The near copies the view matches tell apart; the dedupe stage records them as the reason an
# image is dropped (schemas.CLUSTERS).
NEAR, MIRROR, CROP = "near", "mirror", "crop"
MATCH_REASONS = (NEAR, MIRROR, CROP)


class Match(NamedTuple):
    """Compare view ``left`` of one image with view ``right`` of another; a hit means ``reason``."""

    left: str
    right: str
    reason: str


# Views are column suffixes of pipeline.hashing.Hashes. A copy that is both mirrored and
# cropped is not looked for: rare, and each extra match adds false pairs at a given radius.
MATCHES = (
    Match("", "", NEAR),
    Match("_mirror", "", MIRROR),
    Match("", "_inner", CROP),
    Match("_inner", "_inner", CROP),
)


class DedupeSettings(NamedTuple):
    """How close two images' hashes must be for them to be copies: what the dedupe stage runs
    with (``--radius``, ``--verify``) and records in its report, for validate to search alike.

    Defaults chosen from bench/dedupe_quality.py on 200 real photos, their six copies and
    5,500 Tiny ImageNet distractors: at radius 10 and verify 10, recall 0.997 (rotations 0.98,
    all else 1.0) and no false pair. Verify 12 adds two false mirror pairs (small round
    objects on plain ground); radius 8 loses rotations (0.93)."""

    radius: int = 10  # pHash bits between matched views
    verify: int = 10  # dHash bits between the same views; 64 turns verification off


class VerifiedPairs(NamedTuple):
    """Near copies among the rows of a hashes table, each pair once."""

    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray  # pHash bits between the matched views
    reason: np.ndarray  # index into MATCH_REASONS


def hash_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The table's hash columns (phash*, dhash*) as uint64 arrays, by column name."""
    return {
        name: as_uint64(table.column(name).to_numpy())
        for name in table.column_names
        if name.startswith(("phash", "dhash"))
    }


def find_pairs(
    hashes: pa.Table,
    settings: DedupeSettings,
    rows: np.ndarray | None = None,
    matches: tuple[Match, ...] = MATCHES,
) -> VerifiedPairs:
    """Verified near-copy pairs among ``rows`` of ``hashes`` (a table with the six hash columns;
    all rows when None), each pair once with the reason of its closest match."""
    rows = np.arange(hashes.num_rows) if rows is None else rows
    columns = {name: values[rows] for name, values in hash_columns(hashes).items()}
    found = []
    for match in matches:
        self_join = match.left == match.right
        pairs = near_pairs(
            columns["phash" + match.left], settings.radius, None if self_join else columns["phash" + match.right]
        )
        left, right = pairs.left, pairs.right
        verified = (
            hamming(columns["dhash" + match.left][left], columns["dhash" + match.right][right]) <= settings.verify
        )
        verified &= left != right  # an image near its own mirror image is symmetric, not a copy
        left, right, distance = left[verified], right[verified], pairs.distance[verified]
        found.append(
            (
                np.minimum(left, right),
                np.maximum(left, right),
                distance,
                np.full(len(left), MATCH_REASONS.index(match.reason), dtype=np.int8),
            )
        )
    left, right, distance, reason = (np.concatenate(parts) for parts in zip(*found))
    # One row per pair: the closest match, the earlier MATCHES entry on a tie.
    order = np.lexsort((reason, distance, right, left))
    left, right, distance, reason = left[order], right[order], distance[order], reason[order]
    first = np.ones(len(left), dtype=bool)
    first[1:] = (left[1:] != left[:-1]) | (right[1:] != right[:-1])
    return VerifiedPairs(rows[left[first]], rows[right[first]], distance[first], reason[first])
