"""An independent reading of WordNet 3.0's data.noun, for checking the code under test.

It uses neither nltk nor the project's WordNet code: it parses the file format of
wndb(5WN) directly, so facts checked against it are not the code checking itself.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HYPERNYM = {"@", "@i"}
HYPONYM = {"~", "~i"}


def data_noun_path() -> Path:
    """Debian's data.noun, else the copy the project assembled, else WORDNET_DIR's."""
    for candidate in (
        Path("/usr/share/wordnet/data.noun"),
        REPO / ".nltk_data" / "corpora" / "wordnet" / "data.noun",
        Path(os.environ.get("WORDNET_DIR", "/nonexistent")) / "data.noun",
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("no WordNet data.noun on this machine: run make setup")


@dataclass
class Entry:
    wnid: str
    lex_filenum: int
    words: list[str]
    pointers: list[tuple[str, str]]  # (symbol, target wnid), noun targets only
    gloss: str

    def targets(self, symbols: set[str]) -> list[str]:
        return [wnid for symbol, wnid in self.pointers if symbol in symbols]


class Facts:
    def __init__(self, path: Path):
        self.path = path
        self.header = b""
        self.entries: dict[str, Entry] = {}
        with open(path, "rb") as f:
            for raw in f:
                if raw.startswith(b"  "):
                    self.header += raw
                    continue
                self._parse(raw.decode("utf-8"))

    def _parse(self, line: str) -> None:
        fields, gloss = line.split(" | ", 1)
        tokens = fields.split()
        offset, lex_filenum, _ss_type, w_cnt = tokens[:4]
        n_words = int(w_cnt, 16)
        words = [tokens[4 + 2 * i] for i in range(n_words)]
        at = 4 + 2 * n_words
        p_cnt = int(tokens[at])
        pointers = []
        for i in range(p_cnt):
            symbol, target, pos, _source_target = tokens[at + 1 + 4 * i : at + 5 + 4 * i]
            if pos == "n":
                pointers.append((symbol, "n" + target))
        self.entries["n" + offset] = Entry("n" + offset, int(lex_filenum), words, pointers, gloss.strip())

    def parents(self, wnid: str) -> list[str]:
        return self.entries[wnid].targets(HYPERNYM)

    def children(self, wnid: str) -> list[str]:
        return self.entries[wnid].targets(HYPONYM)

    def depth(self, wnid: str) -> int:
        """Shortest is-a path to a synset with no hypernym (entity), by breadth-first search."""
        queue, seen = deque([(wnid, 0)]), {wnid}
        while queue:
            node, distance = queue.popleft()
            if not self.parents(node):
                return distance
            for parent in self.parents(node):
                if parent not in seen:
                    seen.add(parent)
                    queue.append((parent, distance + 1))
        raise AssertionError(f"{wnid} reaches no root")

    @staticmethod
    def _reach(wnid: str, step) -> set[str]:
        """Every synset reachable from ``wnid`` by repeated ``step`` (parents or children)."""
        found, stack = set(), [wnid]
        while stack:
            for nxt in step(stack.pop()):
                if nxt not in found:
                    found.add(nxt)
                    stack.append(nxt)
        return found

    def ancestors(self, wnid: str) -> set[str]:
        return self._reach(wnid, self.parents)

    def descendants(self, wnid: str) -> set[str]:
        """``wnid`` and everything below it."""
        return self._reach(wnid, self.children) | {wnid}
