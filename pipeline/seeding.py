"""Seeded random choices that are the same in every process and on every machine."""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator for ``seed`` and ``keys`` (a wnid, a round...): a digest, not ``hash()``,
    which Python salts per process."""
    digest = hashlib.sha256(":".join(map(str, (seed, *keys))).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))
