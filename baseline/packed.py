"""A packed export as the trainer's splits: ``--packed DIR``.

The Hugging Face layout: Parquet shards named ``<split>-*.parquet`` (in DIR, DIR/data or
DIR/<split>/) with ``image: struct<bytes, path>`` and ``label: int64``; split ``validation``
is read as val. The class names come from the manifests' ``classes.parquet`` found beside
the export or above it, else from the shards' ClassLabel names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline import store
from pipeline.errors import InputError
from pipeline.layout import Layout

from .dataset import PACKED, BadRows, Classes, DataSet, Shard, Split, read_classes

PACKED_SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid"), "test": ("test",)}


def read_packed(folder: Path, bad: BadRows) -> DataSet:
    if not folder.is_dir():
        raise InputError("no such packed export folder", file=folder)
    shards: list[Shard] = []
    splits: dict[str, Split] = {}
    names: list[str] | None = None
    for split_name, aliases in PACKED_SPLIT_NAMES.items():
        files = _packed_files(folder, aliases)
        if not files:
            continue
        labels, shard_of, shard_row, source, source_row, ids = [], [], [], [], [], []
        for k, file in enumerate(files):
            shard = Shard.open(file)
            names = names or _hf_label_names(file)
            if "label" not in pq.read_schema(file).names:
                raise InputError("column missing from the packed shard", file=file, field="label")
            with store.ShardFile(file, PACKED) as parquet:
                column = parquet.read(columns=["label"]).column(0)
            if column.null_count:
                row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                raise InputError("null label", file=file, row=row, field="label")
            values = column.to_numpy().astype(np.int64)
            shards.append(shard)
            labels.append(values)
            shard_of.append(np.full(len(values), len(shards) - 1))
            shard_row.append(np.arange(len(values)))
            source.append(np.full(len(values), k))
            source_row.append(np.arange(len(values)))
            ids.extend(f"{file.name}:{r}" for r in range(len(values)))
        split = Split(
            split_name,
            np.concatenate(labels),
            np.concatenate(shard_of),
            np.concatenate(shard_row),
            files,
            np.concatenate(source),
            np.concatenate(source_row),
            ids,
        )
        if split_name == "test" and (split.labels < 0).all():
            continue  # an unlabelled test split, as Hugging Face exports of ILSVRC have
        splits[split_name] = split
    if "train" not in splits:
        raise InputError("no train-*.parquet shards in the packed export", file=folder)
    classes = _classes(folder, names, splits)
    for name, split in list(splits.items()):
        counts: dict[str, int] = {}
        out = (split.labels < 0) | (split.labels >= len(classes))
        for i in np.flatnonzero(out):
            file, row = split.where(i)
            bad(
                counts,
                "bad label",
                InputError(
                    f"outside the {len(classes)} classes of {classes.source}",
                    file=file,
                    row=row,
                    field="label",
                    value=int(split.labels[i]),
                ),
            )
        if out.any():
            splits[name] = split.subset(~out)
        splits[name].skipped = counts
    return DataSet(folder, classes, shards, splits, "packed")


def _classes(folder: Path, names: list[str] | None, splits: dict[str, Split]) -> Classes:
    """The manifests' classes.parquet (wnids and names), found beside the export or above it
    (<subset>/export/hf -> <subset>/manifests), else the ClassLabel names of the shards, else
    the labels themselves."""
    candidates = [folder / Layout(folder).classes.name] + [
        Layout(up).classes for up in (folder, *list(folder.resolve().parents)[:3])
    ]
    classes_file = next((p for p in candidates if p.exists()), None)
    if classes_file is not None:
        classes = read_classes(classes_file)
        if names and len(names) != len(classes):
            raise InputError(f"{len(classes)} classes, but the packed shards name {len(names)}", file=classes_file)
        return classes
    if names:
        return Classes(list(names), list(names), f"the ClassLabel names of {folder}")
    count = int(max(s.labels.max() for s in splits.values())) + 1
    return Classes([str(i) for i in range(count)], [str(i) for i in range(count)], f"the labels of {folder}")


def _packed_files(folder: Path, aliases: tuple[str, ...]) -> list[Path]:
    for alias in aliases:
        for base in (folder, folder / "data"):
            files = sorted(base.glob(f"{alias}-*.parquet")) + sorted((base / alias).glob("*.parquet"))
            if files:
                return files
    return []


def _hf_label_names(file: Path) -> list[str] | None:
    meta = pq.read_schema(file).metadata or {}
    try:
        features = json.loads(meta[b"huggingface"])["info"]["features"]
        return list(features["label"]["names"])
    except (KeyError, ValueError, TypeError):
        return None
