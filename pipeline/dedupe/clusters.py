"""From hashes to clusters of copies: which image each class keeps, and why the others go.

1. Exact copies: equal sha256 (one ``np.unique``). Only one image of each goes on.
2. Near copies: pairs of images whose pHash views are within ``radius`` bits, verified by
   the dHash of the same views (within ``verify`` bits): ``pipeline.nearcopies.find_pairs``.
3. Clusters: connected components of those pairs (what union-find computes). Each cluster
   keeps one representative: the largest pixel area, then the best source rank, then the
   smallest image_id, so the choice never depends on the order of the input.
4. A cluster whose images carry two classes is a ``conflict``: dropped from both, listed for
   review, unless annotators accepted its image in exactly one of them (``labels``).
5. A cluster near a ``reference`` set of hashes (an existing test set) is dropped.

Reasons in ``clusters.parquet``: ``unique`` (no copy), ``representative`` (kept for its
cluster), ``exact`` (same bytes), ``near`` (the whole images match: re-encoded, resized,
recoloured), ``mirror`` (a flipped copy), ``crop`` (the inner parts match: cropped or
slightly rotated), ``conflict`` and ``reference`` (dropped with every copy).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline import schemas
from pipeline.nearcopies import (
    CROP,
    MATCH_REASONS,
    MATCHES,
    MIRROR,
    NEAR,
    DedupeSettings,
    VerifiedPairs,
    find_pairs,
    hamming,
    hash_columns,
    near_pairs,
)

UNIQUE, REPRESENTATIVE, EXACT, CONFLICT, REFERENCE = "unique", "representative", "exact", "conflict", "reference"
REASONS = (UNIQUE, REPRESENTATIVE, EXACT, NEAR, MIRROR, CROP, CONFLICT, REFERENCE)
DROPPED = (EXACT, NEAR, MIRROR, CROP, CONFLICT, REFERENCE)
MEANING = {
    UNIQUE: "no copy found; kept",
    REPRESENTATIVE: "kept for its cluster: the largest copy, then the best source rank",
    EXACT: "the same bytes as the representative",
    NEAR: "the whole image matches the representative: re-encoded, resized or recoloured",
    MIRROR: "a mirror image of the representative",
    CROP: "the inner parts match: cropped or slightly rotated",
    CONFLICT: "the cluster spans two classes: dropped from both, for review",
    REFERENCE: "near an image of the reference set (e.g. an existing test set)",
}


def reference_rows(hashes: pa.Table, reference: pa.Table, settings: DedupeSettings) -> np.ndarray:
    """Rows of ``hashes`` within the radius of any image of ``reference`` (a hashes table, or
    any table with a ``phash`` column; its views and dHashes are used where it has them)."""
    ours, theirs = hash_columns(hashes), hash_columns(reference)
    near = np.zeros(hashes.num_rows, dtype=bool)
    for match in MATCHES:
        for mine, other in ((match.left, match.right), (match.right, match.left)):
            if "phash" + other not in theirs:
                continue
            pairs = near_pairs(ours["phash" + mine], settings.radius, theirs["phash" + other])
            left, right = pairs.left, pairs.right
            if "dhash" + other in theirs:
                keep = hamming(ours["dhash" + mine][left], theirs["dhash" + other][right]) <= settings.verify
                left = left[keep]
            near[left] = True
    return np.flatnonzero(near)


class Clustering(NamedTuple):
    """What ``cluster`` found."""

    table: pa.Table  # schemas.CLUSTERS, in the order of the hashes table
    counts: dict  # for the report
    pairs: VerifiedPairs  # the verified pairs between rows of the hashes table


def cluster(
    hashes: pa.Table,
    settings: DedupeSettings | None = None,
    *,
    reference: pa.Table | None = None,
    accepted: set[tuple[str, str]] | None = None,
) -> Clustering:
    """The clusters of ``hashes`` (a ``schemas.HASHES`` table). ``accepted``: (image_id, wnid)
    pairs annotators accepted, which settle conflicts."""
    settings = settings or DedupeSettings()
    n = hashes.num_rows
    sha = hashes.column("sha256").to_numpy(zero_copy_only=False)
    _, first_of_sha, sha_group = np.unique(sha, return_index=True, return_inverse=True)
    unique_rows = np.sort(first_of_sha)
    pairs = find_pairs(hashes, settings, unique_rows)
    exact = np.flatnonzero(first_of_sha[sha_group] != np.arange(n))
    edges_left = np.concatenate([exact, pairs.left])
    edges_right = np.concatenate([first_of_sha[sha_group[exact]], pairs.right])
    graph = coo_matrix((np.ones(len(edges_left), dtype=np.int8), (edges_left, edges_right)), shape=(n, n))
    _, component = connected_components(graph, directed=False)

    image_id = np.asarray(hashes.column("image_id").to_pylist(), dtype=object)
    wnid = np.asarray(hashes.column("wnid").to_pylist(), dtype=object)
    area = hashes.column("width").to_numpy().astype(np.int64) * hashes.column("height").to_numpy()
    rank = hashes.column("rank").to_numpy()
    # Representative: the first row of its component in (largest area, best rank, image_id) order.
    order = np.lexsort((image_id, rank, -area, component))
    leaders = order[np.r_[True, component[order][1:] != component[order][:-1]]]
    representative_of = np.empty(component.max() + 1, dtype=np.int64)
    representative_of[component[leaders]] = leaders
    representative = representative_of[component]
    sizes = np.bincount(component)

    reason, distance = _member_reasons(hashes, representative, sha)
    reason[representative == np.arange(n)] = REASONS.index(REPRESENTATIVE)
    reason[sizes[component] == 1] = REASONS.index(UNIQUE)
    keep = representative == np.arange(n)

    groups = _groups(component, sizes)
    conflicts = [c for c, members in groups.items() if len(set(wnid[members])) > 1]
    settled = _settle(conflicts, groups, image_id, wnid, area, rank, accepted) if accepted else {}
    for c in conflicts:
        dropped = settled[c][1] if c in settled else groups[c]
        reason[dropped] = REASONS.index(CONFLICT)
        keep[dropped] = False
    for c, (kept, _) in settled.items():
        representative[groups[c]] = kept
        reason[kept] = REASONS.index(REPRESENTATIVE)
        keep[kept] = True
    if reference is not None:
        near_reference = np.isin(component, component[reference_rows(hashes, reference, settings)])
        reason[near_reference] = REASONS.index(REFERENCE)
        keep[near_reference] = False

    table = pa.Table.from_pydict(
        {
            "image_id": image_id.tolist(),
            "wnid": wnid.tolist(),
            "cluster_id": component.astype(np.int64),
            "representative": image_id[representative].tolist(),
            "distance": distance.astype(np.int16),
            "reason": [REASONS[r] for r in reason.tolist()],
            "keep": keep,
        },
        schema=schemas.CLUSTERS,
    )
    counts = {
        "images": n,
        "kept": int(keep.sum()),
        "clusters_with_copies": int((sizes > 1).sum()),
        "largest_cluster": int(sizes.max(initial=0)),
        "pairs": {r: int((pairs.reason == MATCH_REASONS.index(r)).sum()) for r in MATCH_REASONS},
        "conflicts": [
            {
                "cluster_id": int(c),
                "wnids": sorted(set(wnid[groups[c]])),
                "image_ids": sorted(image_id[groups[c]]),
                "settled_in": wnid[settled[c][0]] if c in settled else None,
            }
            for c in conflicts
        ],
    }
    return Clustering(table, counts, pairs)


def _member_reasons(hashes: pa.Table, representative: np.ndarray, sha: np.ndarray):
    """How each image matches its representative directly: the reason and pHash distance of
    the closest match (a member joined through another member may sit beyond the radius)."""
    column = hash_columns(hashes)
    best = np.full(len(representative), 64, dtype=np.int64)
    reason = np.full(len(representative), REASONS.index(NEAR), dtype=np.int8)
    for match in MATCHES:
        for a, b in ((match.left, match.right), (match.right, match.left)):
            d = hamming(column["phash" + a], column["phash" + b][representative]).astype(np.int64)
            closer = d < best
            best[closer] = d[closer]
            reason[closer] = REASONS.index(match.reason)
    same = sha == sha[representative]
    best[same] = 0
    reason[same] = REASONS.index(EXACT)
    return reason, best


def _groups(component: np.ndarray, sizes: np.ndarray) -> dict[int, np.ndarray]:
    """The rows of every component with more than one image."""
    order = np.argsort(component, kind="stable")
    starts = np.r_[0, np.cumsum(sizes)]
    return {int(c): order[starts[c] : starts[c + 1]] for c in np.flatnonzero(sizes > 1)}


def _settle(conflicts, groups, image_id, wnid, area, rank, accepted) -> dict:
    """Conflicts the annotators settled: exactly one class has an accepted image. Returns
    {component: (row kept, rows dropped)}."""
    settled = {}
    for c in conflicts:
        members = groups[c]
        winners = [m for m in members if (image_id[m], wnid[m]) in accepted]
        if len({wnid[m] for m in winners}) != 1:
            continue
        kept = min(winners, key=lambda m: (-area[m], rank[m], image_id[m]))
        settled[c] = (kept, members[members != kept])
    return settled
