"""Every table's pyarrow schema, defined once; stages and tests import them from here.

Each schema carries ``synsetforge.table`` in its metadata so a reader can tell which
table a Parquet file holds.
"""
from __future__ import annotations

import pyarrow as pa


def _table(name: str, *fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields), metadata={"synsetforge.table": name})


def _required(name: str, type_: pa.DataType, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=False, metadata={"doc": doc})


SYNSETS = _table(
    "synsets",
    _required("wnid", pa.string(), "'n' + 8-digit offset of the synset in WordNet 3.0 data.noun"),
    _required("class_index", pa.int32(), "0-based position in sorted-wnid order"),
    _required("name", pa.string(), "first lemma, underscores as spaces"),
    _required("lemmas", pa.list_(pa.string()), "all lemmas in WordNet order, underscores as spaces"),
    _required("gloss", pa.string(), "the definition part of the WordNet gloss, as ImageNet shows it"),
    _required("lexname", pa.string(), "lexicographer file, e.g. noun.animal"),
    _required("depth", pa.int32(), "shortest is-a path to entity n00001740"),
    _required("parents", pa.list_(pa.string()), "wnids of the direct hypernyms and instance hypernyms"),
    _required("num_hyponyms", pa.int32(), "direct hyponyms and instance hyponyms in WordNet"),
    _required("is_leaf", pa.bool_(), "no hyponyms in WordNet"),
    _required("queries", pa.list_(pa.string()), "search phrases for candidate collection"),
)
