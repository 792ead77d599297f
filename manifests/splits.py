"""Which images a class puts in train, val and test.

Eligible images: those dedupe kept (one per cluster of copies; its conflicts only where
annotation settled them) and annotators accepted for their class, or, with ``unverified``,
every image dedupe kept. Per class, test takes ``test_n`` and val ``val_n`` images first, by
``sampling``, then train takes up to ``train_max`` of the rest at random; all choices are
seeded. Finally ``guard_splits`` puts every cluster of copies (dedupe's clusters.parquet) in one split.

Sampling for val and test (ImageNetV2's rules on selection frequency, the share of workers
who ticked an image):

- ``confidence`` (default): the most confident labels first;
- ``top``: the highest selection frequency first;
- ``threshold``: only images with selection frequency >= ``threshold`` (0.7), at random;
- ``matched``: at random, matching the class's histogram of selection frequency over the
  bins 0, .2, .4, .6, .8, 1, so held-out images are as hard as the class's images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.seeding import rng_for

SAMPLINGS = ("confidence", "top", "threshold", "matched")
BINS = np.array([0, 0.2, 0.4, 0.6, 0.8, 1.0 + 1e-9])


@dataclass(frozen=True)
class Plan:
    train_max: int = 1300
    val_n: int = 50
    test_n: int = 100
    sampling: str = "confidence"
    threshold: float = 0.7
    min_train: int = 732  # ILSVRC-2012's smallest class
    drop_small: bool = False
    seed: int = 0


def held_out_order(group: pd.DataFrame, plan: Plan, rng: np.random.Generator) -> np.ndarray:
    """Row positions of ``group`` in the order val and test take them (only the eligible ones)."""
    noise = rng.random(len(group))
    if plan.sampling == "confidence":
        return np.lexsort((noise, -group.confidence.fillna(0).to_numpy()))
    frequency = group.selection_frequency.fillna(0).to_numpy()
    if plan.sampling == "top":
        return np.lexsort((noise, -frequency))
    if plan.sampling == "threshold":
        eligible = np.flatnonzero(frequency >= plan.threshold)
        return eligible[np.argsort(noise[eligible])]
    # matched: draw bin by bin in proportion to the class's histogram, round robin by deficit.
    bins = np.digitize(frequency, BINS) - 1
    shares = np.bincount(bins, minlength=len(BINS) - 1) / max(len(bins), 1)
    queues = {b: list(np.flatnonzero(bins == b)[np.argsort(noise[bins == b])]) for b in range(len(BINS) - 1)}
    order, taken = [], np.zeros(len(BINS) - 1)
    while any(queues.values()):
        wanted = shares * (len(order) + 1) - taken
        b = max((b for b in queues if queues[b]), key=lambda b: (wanted[b], -b))
        order.append(queues[b].pop(0))
        taken[b] += 1
    return np.array(order, dtype=int)


def guard_splits(cluster_id, representative, image_id, split) -> np.ndarray:
    """The split of each image such that no cluster spans two splits: every member takes the
    split of its cluster's representative (or, where the representative has none, of the
    cluster's first member that has one). ``split`` holds None for images not yet placed."""
    cluster_id = np.asarray(cluster_id)
    image_id = np.asarray(image_id, dtype=object)
    split = np.asarray(split, dtype=object)
    chosen: dict[int, object] = {}
    is_representative = image_id == np.asarray(representative, dtype=object)
    for c, s in zip(cluster_id[is_representative].tolist(), split[is_representative].tolist()):
        if s is not None:
            chosen[c] = s
    for c, s in zip(cluster_id.tolist(), split.tolist()):
        if s is not None:
            chosen.setdefault(c, s)
    return np.array([chosen.get(c) for c in cluster_id.tolist()], dtype=object)


def assign(images: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """``images`` (image_id, wnid, confidence, selection_frequency, cluster_id, representative)
    with a ``split`` column: train, val, test, or None (not used)."""
    split = np.full(len(images), None, dtype=object)
    for wnid, group in images.groupby("wnid", sort=True):
        rng = rng_for(plan.seed, "split", wnid)
        rows = group.index.to_numpy()
        order = held_out_order(group, plan, rng)
        test = rows[order[: plan.test_n]]
        val = rows[order[plan.test_n : plan.test_n + plan.val_n]]
        rest = np.setdiff1d(rows, np.concatenate([test, val]))
        train = rng.permutation(rest)[: plan.train_max]
        split[images.index.get_indexer(test)] = "test"
        split[images.index.get_indexer(val)] = "val"
        split[images.index.get_indexer(train)] = "train"
    guarded = guard_splits(
        images.cluster_id.to_numpy(), images.representative.to_numpy(), images.image_id.to_numpy(), split
    )
    return images.assign(split=guarded)
