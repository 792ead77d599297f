"""Search phrases for a synset, as ImageNet built them.

Every lemma is a query. Because a bare lemma is often ambiguous ("whippet", "crane"),
ImageNet also appended words of the parent synsets that occur in the synset's gloss:
whippet's gloss "small slender dog of greyhound type..." gives "whippet dog" and
"whippet greyhound". We take the words of every ancestor below WordNet's top levels
(entity, physical entity, object, whole, abstraction...), which are in glosses often and
help a search never.
"""

from __future__ import annotations

import re
from functools import cache

from .hierarchy import WordNet

TOP_LEVELS = 3  # ancestors at depth 0..3 are too general to narrow a search


@cache
def _word(phrase: str) -> re.Pattern:
    return re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", re.IGNORECASE)


def _occurs(phrase: str, text: str) -> bool:
    return _word(phrase).search(text) is not None


def expand(wordnet: WordNet, synset, gloss: str) -> list[str]:
    """The synset's lemmas, then "lemma ancestor-word" for each ancestor word in the gloss."""
    lemmas = wordnet.lemmas(synset)
    ancestors = [wordnet.synset(wnid) for wnid in wordnet.ancestors(synset)]
    ancestors.sort(key=lambda a: (-wordnet.depth(a), a.offset()))  # nearest first
    words = [w for a in ancestors if wordnet.depth(a) > TOP_LEVELS for w in wordnet.lemmas(a) if _occurs(w, gloss)]
    queries = list(lemmas)
    for lemma in lemmas:
        queries += [f"{lemma} {w}" for w in words if not _occurs(w, lemma)]
    unique, seen = [], set()
    for query in queries:
        if query.casefold() not in seen:
            seen.add(query.casefold())
            unique.append(query)
    return unique
