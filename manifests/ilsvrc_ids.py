"""The devkit's numbering of the 1000 ILSVRC-2012 classes, ILSVRC2012_ID: the IDs of its
``meta.mat`` and of ``ILSVRC2012_validation_ground_truth.txt``. Its order is not sorted-wnid order
(ID 1 is n02119789, kit fox, label 278 in sorted order), so a file in the devkit's format must
hold these IDs: pairing one that holds sorted labels with the real ``meta.mat`` mislabels nearly
every image. The table is the devkit's ``data/map_clsloc.txt`` (``n02119789 1 kit_fox``), shipped
as ``data/map_clsloc.txt`` with its source in its ``#`` header."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

TABLE = Path(__file__).parent / "data" / "map_clsloc.txt"


class DevkitClass(NamedTuple):
    """A line of map_clsloc.txt."""

    wnid: str
    id: int  # ILSVRC2012_ID, 1..1000
    name: str


@functools.cache
def devkit_classes() -> dict[str, DevkitClass]:
    """wnid -> its line of the devkit's table, in ID order."""
    lines = (line.split() for line in TABLE.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    return {wnid: DevkitClass(wnid, int(number), name) for wnid, number, name in lines}


def devkit_ids(wnids: Iterable[str]) -> dict[str, int] | None:
    """Each wnid's ILSVRC2012_ID when every one is an ILSVRC-2012 class; None when one is not,
    since the devkit's numbering has no ID for it."""
    table = devkit_classes()
    wnids = list(wnids)
    if not all(w in table for w in wnids):
        return None
    return {w: table[w].id for w in wnids}


def map_clsloc(wnids: Iterable[str]) -> str:
    """The devkit table's lines of these ILSVRC-2012 classes, in ID order."""
    table = devkit_classes()
    chosen = sorted((table[w] for w in wnids), key=lambda c: c.id)
    return "".join(f"{c.wnid} {c.id} {c.name}\n" for c in chosen)
