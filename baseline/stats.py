"""The pixel statistics a run normalises with: mean, std and the RGB principal components
that AlexNet's colour lighting moves along (Krizhevsky et al. 2012, section 4.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline import pixels

from .dataset import DataSet, Split


@dataclass
class Stats:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eigval: tuple[float, float, float]
    eigvec: tuple[tuple[float, float, float], ...]  # eigenvectors as columns
    source: str

    def as_dict(self) -> dict:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "eigval": list(self.eigval),
            "eigvec": [list(r) for r in self.eigvec],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Stats:
        return cls(
            tuple(d["mean"]), tuple(d["std"]), tuple(d["eigval"]), tuple(tuple(r) for r in d["eigvec"]), d["source"]
        )


# ImageNet's statistics on [0, 1] pixels (torchvision), and the PCA of its RGB covariance
# (fb.resnet.torch: eigenvalues, eigenvectors as columns).
IMAGENET_STATS = Stats(
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    eigval=(0.2175, 0.0188, 0.0045),
    eigvec=((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203)),
    source="imagenet",
)


def training_stats(data: DataSet, split: Split, limit: int = 512, side: int = 64) -> Stats:
    """Mean, std and the RGB PCA of up to ``limit`` training images, decoded small by the
    pipeline's rule (``pixels.decode``), read from row groups spread over the split (cheap also
    when streaming)."""
    groups: list[tuple[int, int, list[int]]] = []
    for s in np.unique(split.shard):
        members = np.flatnonzero(split.shard == s)
        g_of = data.shards[s].groups_of(split.shard_row[members])
        for g in np.unique(g_of):
            groups.append((int(s), int(g), [int(i) for i in members[g_of == g]]))
    per_group = max(1, math.ceil(len(split) / max(1, len(groups))))
    wanted = max(1, math.ceil(limit / per_group))  # row groups to read, spread over the split
    take = groups[:: max(1, len(groups) // wanted)][:wanted]
    samples = []
    for s, g, indices in take:
        shard = data.shards[s]
        array = shard.read_groups([g])
        for i in indices[: max(1, limit // max(1, len(take)))]:
            try:
                blob = array[int(split.shard_row[i] - shard.group_starts[g])].as_py()
                image = pixels.decode(blob, at_least=(side, side))
                image.thumbnail((side, side))
            except Exception:  # noqa: BLE001  bad images are reported when training reaches them
                continue
            samples.append(np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255)
    if not samples:
        return IMAGENET_STATS
    values = np.concatenate(samples)
    mean, std = values.mean(0), values.std(0) + 1e-6
    eigval, eigvec = np.linalg.eigh(np.cov(values, rowvar=False))
    order = np.argsort(eigval)[::-1]
    return Stats(
        tuple(map(float, mean)),
        tuple(map(float, std)),
        tuple(float(max(v, 0)) for v in eigval[order]),
        tuple(tuple(map(float, row)) for row in eigvec[:, order]),
        f"train ({len(samples)} images)",
    )
