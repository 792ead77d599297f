"""Which synsets a dataset has: a bundled list, a wnid file, or a WordNet subtree, then filters.

Bundled lists (``wordnet/data/``): ``ilsvrc1k`` (the 1000 ILSVRC-2012 classes),
``imagenet21k`` (the 21,841 synsets of ImageNet's fall 2011 release) and ``demo`` (the
Imagenette ten). A subtree is every hyponym of ``root`` (instances too), and by default only
what lies under physical entity: abstractions have no pictures.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError
from pipeline.schemas import WNID_RE
from pipeline.text import BOM, read_lines

from .hierarchy import PHYSICAL_ENTITY, WordNet, wnid_of

DATA = Path(__file__).with_name("data")
BUNDLED = {
    "ilsvrc1k": DATA / "ilsvrc1k.txt",
    "imagenet21k": DATA / "imagenet21k.txt",
    "demo": DATA / "demo.txt",
}
SUBSET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHOWN_CHARS = 40  # of a value that is not a wnid, in an error line
_POS_NAMES = {"v": "a verb", "a": "an adjective", "s": "an adjective satellite", "r": "an adverb"}


@dataclass(frozen=True)
class Selection:
    subset: str
    wnids_file: Path | None = None
    root: str | None = None
    depth: int | None = None
    leaves: bool = False
    exclude: tuple[str, ...] = ()
    physical_only: bool = True

    def list_file(self) -> Path | None:
        """The wnid list this selection reads, if it reads one."""
        if self.wnids_file is not None:
            return self.wnids_file
        return None if self.root else BUNDLED[self.subset]


def check_selection(sel: Selection) -> None:
    """Reject contradictory or unknown settings before anything is read."""
    if not SUBSET_NAME_RE.match(sel.subset):
        raise InputError(
            "a subset name is a folder name: letters, digits, '.', '_' and '-'", field="SUBSET", value=sel.subset
        )
    if sel.root and sel.wnids_file:
        raise InputError("give ROOT or WNIDS, not both", field="ROOT", value=sel.root)
    if sel.root or sel.wnids_file:
        if sel.subset in BUNDLED:
            raise InputError(
                f"{sel.subset} is a bundled subset; name the new one, e.g. SUBSET=dogs ROOT=n02084071",
                field="SUBSET",
                value=sel.subset,
            )
    elif sel.subset not in BUNDLED:
        raise InputError(
            f"unknown subset; choose {', '.join(sorted(BUNDLED))}, or name a new one with ROOT=<wnid> or WNIDS=<file>",
            field="SUBSET",
            value=sel.subset,
        )
    if sel.wnids_file and not sel.wnids_file.is_file():
        raise InputError("no such wnid list", file=sel.wnids_file)
    if (sel.depth is not None or sel.leaves) and not sel.root:
        raise InputError("DEPTH and LEAVES apply to a subtree: give ROOT=<wnid>", field="ROOT")


def resolve(wordnet: WordNet, wnid: str, **where):
    """The noun synset named by ``wnid``; an InputError saying why not, located by ``where``."""
    if not WNID_RE.match(wnid):
        shown = wnid if len(wnid) <= SHOWN_CHARS else wnid[:SHOWN_CHARS] + "..."
        raise InputError("expected a wnid: 'n' and 8 digits, such as n01440764", value=shown, **where)
    if wnid[0] != "n":
        raise InputError(
            f"is {_POS_NAMES[wnid[0]]} synset; ImageNet classes are noun synsets (n...)", value=wnid, **where
        )
    synset = wordnet.synset(wnid)
    if synset is None:
        raise InputError("no noun synset at that offset in WordNet 3.0 data.noun", value=wnid, **where)
    return synset


def wnid_items(text: str) -> tuple[str, ...]:
    """The wnids of a comma-separated setting (EXCLUDE), sorted, without blanks or byte order marks."""
    return tuple(sorted({w.replace(BOM, "").strip() for w in text.split(",")} - {""}))


def read_wnid_list(wordnet: WordNet, path: Path) -> list:
    """Synsets of a list file: a wnid first on each line (words.txt-style text after it is fine),
    blank lines and ``#`` comments skipped, no wnid twice."""
    seen: dict[str, int] = {}
    synsets = []
    for number, text in enumerate(read_lines(path), 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        wnid = text.split()[0]
        where = {"file": path, "line": number, "field": "wnid"}
        synset = resolve(wordnet, wnid, **where)
        if wnid in seen:
            raise InputError(f"listed twice (first on line {seen[wnid]})", value=wnid, **where)
        seen[wnid] = number
        synsets.append(synset)
    if not synsets:
        raise InputError("the list holds no wnid", file=path)
    return synsets


def subtree(wordnet: WordNet, root, max_depth: int | None) -> list:
    """``root`` and its hyponyms, breadth first, down to ``max_depth`` levels below it."""
    found = {wnid_of(root): root}
    queue = deque([(root, 0)])
    while queue:
        synset, level = queue.popleft()
        if max_depth is not None and level >= max_depth:
            continue
        for child in wordnet.children(synset):
            if wnid_of(child) not in found:
                found[wnid_of(child)] = child
                queue.append((child, level + 1))
    return list(found.values())


def select(wordnet: WordNet, sel: Selection) -> list:
    """The selected synsets in sorted-wnid order (the order of ``class_index``)."""
    check_selection(sel)
    excluded = {wnid: resolve(wordnet, wnid, field="EXCLUDE") for wnid in sel.exclude}
    if sel.root:
        synsets = subtree(wordnet, resolve(wordnet, sel.root, field="ROOT"), sel.depth)
        if sel.leaves:
            synsets = [s for s in synsets if not wordnet.children(s)]
        if sel.physical_only:
            synsets = [s for s in synsets if wnid_of(s) == PHYSICAL_ENTITY or PHYSICAL_ENTITY in wordnet.ancestors(s)]
    else:
        synsets = read_wnid_list(wordnet, sel.list_file())
    if excluded:
        synsets = [s for s in synsets if wnid_of(s) not in excluded and not excluded.keys() & wordnet.ancestors(s)]
    if not synsets:
        raise InputError(
            "no synset is left after the filters (physical entities only unless ALL_NOUNS=1; EXCLUDE; LEAVES; DEPTH)",
            field="SUBSET",
            value=sel.subset,
        )
    return sorted(synsets, key=wnid_of)
