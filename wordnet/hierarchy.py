"""WordNet 3.0 nouns addressed by wnid, over nltk's WordNet reader.

ImageNet names a synset by its wnid, ``n`` + the 8-digit byte offset of its line in
``data.noun``. Everything here speaks wnids; is-a means hypernym *or* instance hypernym
(as in nltk's ``min_depth``), so that every synset, instances included, reaches entity.
"""

from __future__ import annotations

import re
import sys
import warnings
from functools import cache

from pipeline.errors import PipelineError
from pipeline.schemas import NOUN_WNID_RE

from . import provision

PHYSICAL_ENTITY = "n00001930"
_EXAMPLE_START = re.compile(r'[;:] "')


def wnid_of(synset) -> str:
    return f"{synset.pos()}{synset.offset():08d}"


def definition(gloss: str) -> str:
    """The definition part of a raw WordNet gloss, as ImageNet's gloss files show it: the text
    before the first quoted example (nltk's ``definition()`` leaves stray ``;`` and ``:``)."""
    return _EXAMPLE_START.split(gloss, 1)[0].strip().rstrip(";").strip()


class WordNet:
    def __init__(self, reader, copy: provision.WordNetCopy, data_noun: bytes):
        self.reader = reader
        self.copy = copy  # the files read, and where they came from
        self._data_noun = data_noun
        self._synsets: dict[str, object] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        self._depths: dict[str, int] = {}

    @property
    def version(self) -> str:
        return self.reader.get_version()

    def noun_count(self) -> int:
        """Synsets in data.noun: its lines, less the licence header (lines that start with spaces)."""
        return sum(1 for line in self._data_noun.splitlines() if line and not line.startswith(b"  "))

    def synset(self, wnid: str):
        """The noun synset of ``wnid``, or None where no synset starts at that offset."""
        if wnid in self._synsets:
            return self._synsets[wnid]
        if not NOUN_WNID_RE.match(wnid):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns, then returns None, for an unknown offset
            synset = self.reader.synset_from_pos_and_offset("n", int(wnid[1:]))
        if synset is not None:
            self._synsets[wnid] = synset
        return synset

    def gloss(self, synset) -> str:
        start = synset.offset()
        line = self._data_noun[start : self._data_noun.index(b"\n", start)].decode("utf-8")
        return definition(line.split(" | ", 1)[1])

    @staticmethod
    def lemmas(synset) -> list[str]:
        return [name.replace("_", " ") for name in synset.lemma_names()]

    @staticmethod
    def parents(synset) -> list:
        return synset.hypernyms() + synset.instance_hypernyms()

    @staticmethod
    def children(synset) -> list:
        return synset.hyponyms() + synset.instance_hyponyms()

    def depth(self, synset) -> int:
        """Shortest is-a path to entity (nltk's ``min_depth``, remembered: nltk recomputes it)."""
        wnid = wnid_of(synset)
        if wnid not in self._depths:
            parents = self.parents(synset)
            self._depths[wnid] = 1 + min(map(self.depth, parents)) if parents else 0
        return self._depths[wnid]

    def ancestors(self, synset) -> frozenset[str]:
        """Every wnid above ``synset`` on any is-a path, up to entity."""
        wnid = wnid_of(synset)
        if wnid not in self._ancestors:
            found = set()
            for parent in self.parents(synset):
                found.add(wnid_of(parent))
                found |= self.ancestors(parent)
            self._ancestors[wnid] = frozenset(found)
        return self._ancestors[wnid]


@cache
def load() -> WordNet:
    """Locate WordNet 3.0 (see ``provision``), open it with nltk and verify it is 3.0 in full."""
    notes: list[str] = []
    copy = provision.locate(notes=notes)
    for note in notes:
        print(f"wordnet: {note}", file=sys.stderr)
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if str(copy.data_root) not in nltk.data.path:
        nltk.data.path.insert(0, str(copy.data_root))
    if copy.is_zip:
        root = nltk.data.find(copy.corpus, paths=[str(copy.data_root)])
    else:
        root = nltk.data.FileSystemPathPointer(copy.path)

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            """Only the multilingual (OMW) functions use this map, and building it reads
            index.sense twice, which is half of nltk's start-up: we need none of them."""
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": see above
        reader = Reader(root, None)
    with root.join("data.noun").open() as f:
        data_noun = f.read()
    wordnet = WordNet(reader, copy, data_noun)
    if wordnet.version != provision.VERSION:
        raise PipelineError(f"{copy.path} is WordNet {wordnet.version}, not {provision.VERSION}")
    count = wordnet.noun_count()
    if count != provision.NOUN_SYNSETS:
        raise PipelineError(
            f"{copy.path} has {count} noun synsets; WordNet {provision.VERSION} has "
            f"{provision.NOUN_SYNSETS}: the copy is damaged or not the original"
        )
    return wordnet
