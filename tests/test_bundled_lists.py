"""The bundled class lists are the public ones (checked against ../shared when it is there)."""

from __future__ import annotations

import pytest
from conftest import REPO

LISTS = REPO / "wordnet" / "data"


def test_the_bundled_lists_equal_the_timm_lists(shared):
    lists = shared / "data" / "synset-lists"
    assert (LISTS / "ilsvrc1k.txt").read_text().split() == (lists / "imagenet_synsets.txt").read_text().split()
    assert (LISTS / "imagenet21k.txt").read_text().split() == (lists / "imagenet22k_synsets.txt").read_text().split()


@pytest.mark.slow
def test_our_glosses_and_lemmas_match_imagenets_own(shared, tmp_path):
    """ImageNet's published definitions and lemmas for its 21,844 synsets, ours to the letter."""
    from wordnet.hierarchy import load

    wordnet = load()
    lists = shared / "data" / "synset-lists"
    for name, ours in (("definition", wordnet.gloss), ("lemma", lambda s: ", ".join(wordnet.lemmas(s)))):
        for line in (lists / f"imagenet_synset_to_{name}.txt").read_text().splitlines():
            wnid, theirs = line.split("\t", 1)
            assert ours(wordnet.synset(wnid)) == theirs, (wnid, name)
