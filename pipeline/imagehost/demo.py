"""The offline demo's candidates: which image-host paths stand in for image-search results.

The host lists them at ``POST /demo/catalogue`` (``{"wnids": [...], "per_class": N, "seed": S}``
-> ``{"candidates": [DemoItem.listing(), ...]}``), which the candidates stage's ``demo`` source
asks, as it asks a search API.

Each class gets ``per_class`` candidates, shuffled, the same for the same wnids and seed:

============================  =====  ==========================================================
kind                          share  path, and what the pipeline should make of it
============================  =====  ==========================================================
``true``                      55 %   ``/picture/{wnid}/{n}.jpg``: a picture of the class; kept
``other_class``               30 %   ``/picture/{other}/{n}.jpg``, ``other`` another wnid of the
                                     list: the search returned the wrong thing; annotation
                                     rejects it
``near_copy``                  7 %   ``/picture/{wnid}/{m}.jpg?copy=k``, ``m`` one of this
                                     class's true pictures: dedupe clusters it with ``m``
``cross_class_copy``           3 %   ``/picture/{A}/{m}.jpg?copy=k``, ``m`` a true picture of
                                     another class A (listed under A): dedupe finds the pair
                                     across classes; annotation rejects it here
``fault``                      5 %   a fault or odd-format route (404, flaky, ratelimit,
                                     truncated, html, empty, reset, tiny, a redirect to a
                                     private address, a redirect chain too long): the download
                                     fails or rejects it, except flaky and ratelimit, which
                                     succeed on retry with a picture of no class
============================  =====  ==========================================================

The shares are split by largest remainder, so a class's counts add up to ``per_class``
(a lone wnid has no other class to confuse it with: its shares go to the other kinds).
Every ``true`` and ``other_class`` picture has a variant number used nowhere else in the
catalogue, so a wrong-class candidate is never also a true candidate of its own class.
Paths are unique within a class.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SHARES = {"true": 0.55, "other_class": 0.30, "near_copy": 0.07, "cross_class_copy": 0.03, "fault": 0.05}

FAULTS = (
    "/fault/404/{token}",
    "/fault/flaky/{token}",
    "/fault/ratelimit/{token}?after=1",
    "/fault/truncated/{token}",
    "/fault/html/{token}",
    "/fault/empty/{token}",
    "/fault/reset/{token}",
    "/format/tiny/{token}",
    "/fault/private/{token}",
    "/fault/redirect/7/{token}",
)
COPIES = 3  # near copies use ?copy=1..COPIES
MAX_PER_CLASS = 10_000
CREATOR = "synsetforge demo host"
LICENSE = "cc0 1.0"  # generated pictures: no rights reserved


@dataclass(frozen=True)
class DemoItem:
    wnid: str  # the class the candidate was found for
    path: str  # the path on the image host
    kind: str  # a key of SHARES

    def listing(self) -> dict:
        """The item as the host's ``/demo/catalogue`` lists it: a search result's fields."""
        return {
            "wnid": self.wnid,
            "path": self.path,
            "kind": self.kind,
            "title": f"generated picture ({self.kind})",
            "creator": CREATOR,
            "license": LICENSE,
        }


def split(per_class: int, kinds: dict[str, float]) -> dict[str, int]:
    """``per_class`` divided in the given shares, rounded by largest remainder."""
    total = sum(kinds.values())
    exact = {kind: per_class * share / total for kind, share in kinds.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    by_remainder = sorted(kinds, key=lambda kind: counts[kind] - exact[kind])
    for kind in by_remainder[: per_class - sum(counts.values())]:
        counts[kind] += 1
    return counts


def catalogue(wnids: list[str], per_class: int = 60, seed: int = 0) -> list[DemoItem]:
    """``per_class`` candidates for each wnid, class by class in the order given."""
    if len(set(wnids)) != len(wnids):
        raise ValueError("catalogue: a wnid is listed twice")
    kinds = dict(SHARES)
    if len(wnids) < 2:  # nothing to confuse a lone class with
        del kinds["other_class"], kinds["cross_class_copy"]
    counts = dict.fromkeys(SHARES, 0) | split(per_class, kinds)
    rng = random.Random(seed)
    pictures_per_class = counts["true"] + counts["other_class"]
    fresh = iter(rng.sample(range(max(10**6, 10 * per_class * len(wnids))), pictures_per_class * len(wnids)))
    true_variants = {wnid: [next(fresh) for _ in range(counts["true"])] for wnid in wnids}

    items = []
    for wnid in wnids:
        others = [w for w in wnids if w != wnid]
        found = [(f"/picture/{wnid}/{n}.jpg", "true") for n in true_variants[wnid]]
        found += [
            (f"/picture/{rng.choice(others)}/{next(fresh)}.jpg", "other_class") for _ in range(counts["other_class"])
        ]
        found += [
            (f"/picture/{wnid}/{m}.jpg?copy={rng.randint(1, COPIES)}", "near_copy")
            for m in rng.sample(true_variants[wnid], counts["near_copy"])
        ]
        borrowed = [(other, m) for other in others for m in true_variants[other]]
        found += [
            (f"/picture/{other}/{m}.jpg?copy={rng.randint(1, COPIES)}", "cross_class_copy")
            for other, m in rng.sample(borrowed, counts["cross_class_copy"])
        ]
        found += [(rng.choice(FAULTS).format(token=f"demo-{seed}-{wnid}-{i}"), "fault") for i in range(counts["fault"])]
        rng.shuffle(found)
        items += [DemoItem(wnid, path, kind) for path, kind in found]
    return items
