"""Which images go to the crowd in a round, and how they are packed into HITs.

A HIT is one synset and a grid of images: ``per_hit`` candidates plus known positives and
known negatives (ImageNetV2: 42 + 3 + 3), shuffled together so a worker cannot tell the
controls from the rest. Packing is deterministic: the same items, controls and seed give the
same HITs.

Round 1 asks about every image the dedupe stage kept (and the conflicts it left for
annotators to settle); a random initial subset of each synset gets ``initial_votes`` votes
so that dynamic consensus can fit its table, the rest ``votes``. Later rounds ask again
about the images the last aggregation left undecided.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from pipeline import schemas, store
from pipeline.errors import InputError
from pipeline.layout import Layout
from pipeline.seeding import rng_for
from pipeline.tables import read_table

from .formats import read_listing

CANDIDATE, POSITIVE, NEGATIVE = "candidate", "positive", "negative"


@dataclass(frozen=True)
class Packing:
    per_hit: int = 42  # candidates per HIT
    positives: int = 3  # known positives per HIT
    negatives: int = 3  # known negatives per HIT
    votes: int = 3  # answers per HIT in round 1 (later rounds: votes_later)
    votes_later: int = 2  # answers per HIT for images asked again
    initial: int = 20  # images per synset in the initial subset (round 1)
    initial_votes: int = 10  # answers per HIT for the initial subset
    seed: int = 0


def image_items(layout: Layout) -> pd.DataFrame:
    """(image_id, wnid) of every image worth asking about: the store's images, less the
    copies dedupe dropped (its conflicts stay: annotators settle them)."""
    store.require_shards(layout.images, "run `make download` (and `make dedupe`) first")
    items = store.read_images(layout.images, ["image_id", "wnid"]).to_pandas()
    if layout.clusters.exists():
        table = read_table(layout.clusters, schemas.CLUSTERS, columns=["image_id", "keep", "reason"])
        wanted = table.filter(pc.or_(table.column("keep"), pc.equal(table.column("reason"), "conflict")))
        items = items[items.image_id.isin(set(wanted.column("image_id").to_pylist()))]
    return items.sort_values(["wnid", "image_id"]).reset_index(drop=True)


def read_labels(layout: Layout) -> pd.DataFrame | None:
    return read_table(layout.labels, schemas.LABELS).to_pandas() if layout.labels.exists() else None


def round_items(layout: Layout, round_: int, packing: Packing, known: set[tuple[str, str]]) -> pd.DataFrame:
    """(image_id, wnid, votes) asked in this round; ``known`` (image_id, wnid) pairs, the
    controls, are not asked."""
    if round_ == 1:
        items = image_items(layout)
        items = items[[pair not in known for pair in zip(items.image_id, items.wnid)]].reset_index(drop=True)
        items["votes"] = packing.votes
        for wnid, group in items.groupby("wnid"):
            chosen = rng_for(packing.seed, "initial", wnid).permutation(group.index.to_numpy())[: packing.initial]
            items.loc[chosen, "votes"] = packing.initial_votes
        return items
    labels = read_labels(layout)
    if labels is None:
        raise InputError(
            f"round {round_} asks again about undecided images, but no round has been imported yet",
            file=layout.labels,
        )
    items = labels.loc[~labels.decided, ["image_id", "wnid"]].reset_index(drop=True)
    items = items[[pair not in known for pair in zip(items.image_id, items.wnid)]].reset_index(drop=True)
    items["votes"] = packing.votes_later
    return items


def controls(layout: Layout, synsets: pd.DataFrame, seed_file: Path | None) -> pd.DataFrame:
    """(image_id, wnid, kind) of known positives and negatives: images the crowd already
    accepted (for their own class, and for unrelated classes as negatives), plus a seed list."""
    known = []
    labels = read_labels(layout)
    if labels is not None:
        accepted = labels[labels.accepted & labels.decided]
        known.append(accepted[["image_id", "wnid"]].assign(kind=POSITIVE))
    if seed_file is not None:
        known.append(read_seed(seed_file))
    if not known:
        return pd.DataFrame(columns=["image_id", "wnid", "kind"])
    known = pd.concat(known).drop_duplicates(["image_id", "wnid"])
    positives = known[known.kind == POSITIVE]
    parents = dict(zip(synsets.wnid, synsets.parents.map(set)))
    negatives = [known[known.kind == NEGATIVE]]
    for wnid in synsets.wnid:
        unrelated = positives.wnid.map(lambda other, wnid=wnid: not _related(wnid, other, parents))
        negatives.append(positives[unrelated].assign(wnid=wnid, kind=NEGATIVE))
    return pd.concat([positives, *negatives]).drop_duplicates(["image_id", "wnid"]).reset_index(drop=True)


def _related(a: str, b: str, parents: dict[str, set]) -> bool:
    """The same synset, parent and child, or siblings: too close to serve as a negative."""
    pa_, pb = parents.get(a, set()), parents.get(b, set())
    return a == b or a in pb or b in pa_ or bool(pa_ & pb)


def read_seed(path: Path) -> pd.DataFrame:
    """A seed list of controls: CSV or Parquet with image_id, wnid, kind (positive|negative)."""
    rows = []
    for where, record in read_listing(path, ("image_id", "wnid", "kind"), "controls"):
        if record["kind"] not in (POSITIVE, NEGATIVE):
            raise InputError(
                "kind must be positive or negative", file=path, **where, field="kind", value=record["kind"]
            )
        rows.append({k: str(v) for k, v in record.items()})
    return pd.DataFrame(rows, columns=["image_id", "wnid", "kind"])


def pack(items: pd.DataFrame, known: pd.DataFrame, round_: int, packing: Packing) -> pd.DataFrame:
    """The HITs table (schemas.HITS, without url) for ``items`` (image_id, wnid, votes)."""
    rows = []
    for (wnid, votes), group in items.groupby(["wnid", "votes"], sort=True):
        rng = rng_for(packing.seed, round_, wnid, votes)
        order = rng.permutation(group.image_id.to_numpy())
        positives = known[(known.wnid == wnid) & (known.kind == POSITIVE)].image_id.to_numpy()
        negatives = known[(known.wnid == wnid) & (known.kind == NEGATIVE)].image_id.to_numpy()
        negatives = np.setdiff1d(negatives, order)  # an image asked about here cannot also be its control
        for number, start in enumerate(range(0, len(order), packing.per_hit)):
            hit_id = f"r{round_}-{wnid}-v{votes}-{number:04d}"
            grid = [(i, CANDIDATE) for i in order[start : start + packing.per_hit]]
            grid += [(i, POSITIVE) for i in _some(rng, positives, packing.positives)]
            grid += [(i, NEGATIVE) for i in _some(rng, negatives, packing.negatives)]
            for position, k in enumerate(rng.permutation(len(grid))):
                image_id, kind = grid[k]
                rows.append((hit_id, round_, wnid, position, image_id, kind, int(votes)))
    return pd.DataFrame(rows, columns=["hit_id", "round", "wnid", "position", "image_id", "kind", "assignments"])


def _some(rng: np.random.Generator, pool: np.ndarray, n: int) -> list:
    return list(rng.choice(pool, min(n, len(pool)), replace=False)) if len(pool) and n else []


def image_url(base: str, image_id: str) -> str:
    return f"{base.rstrip('/')}/{quote(image_id, safe='')}.jpg"
