"""What the trainer knows of a dataset: its classes, and for each split where every sample's
bytes are (a Parquet shard and a row in it) and its label.

``manifests.load_dataset`` builds a ``DataSet`` from the manifests stage's tables or from a
packed export; ``Blobs`` then reads a split's encoded images into memory when they fit, and
``row_groups`` groups a split by the Parquet row groups that hold its bytes, for streaming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schemas, store
from pipeline.errors import InputError
from pipeline.tables import read_table


@dataclass
class Classes:
    wnids: list[str]
    names: list[str]
    source: str  # where they came from, for messages

    def __len__(self) -> int:
        return len(self.wnids)


def read_classes(path: Path) -> Classes:
    """The manifests stage's ``classes.parquet`` (``schemas.CLASSES``: label, wnid, name), labels 0..N-1."""
    table = read_table(path, schemas.CLASSES, columns=["label", "wnid", "name"]).sort_by("label")
    labels = table.column("label").to_pylist()
    if labels != list(range(len(labels))):
        row = next(i for i, v in enumerate(labels) if v != i)
        raise InputError("labels must run 0, 1, ... N-1", file=path, row=row, field="label", value=labels[row])
    return Classes(table.column("wnid").to_pylist(), table.column("name").to_pylist(), str(path))


STORE_COLUMNS = ["image", "image_id"]  # of an image-store shard, what the trainer reads
PACKED = "packed export shard"


def _is_packed(path: Path) -> bool:
    """Whether ``path`` is a packed shard (``image: struct<bytes, path>``, the Hugging Face
    layout) rather than an image-store shard; a file that is no Parquet is left to the store's
    reader to name."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return False
    return "image" in schema.names and pa.types.is_struct(schema.field("image").type)


@dataclass
class Shard:
    """One Parquet file holding image bytes: an image-store shard or a packed shard."""

    path: Path
    nested: bool  # a packed shard, image struct<bytes, path>, rather than an image-store one, image binary
    group_starts: np.ndarray  # first row of each row group, plus the row count at the end
    group_bytes: np.ndarray  # uncompressed size of the image column per row group

    @classmethod
    def open(cls, path: Path) -> Shard:
        nested = _is_packed(path)
        # a packed shard as it is (the Hugging Face layout is not our store); an image-store
        # shard through pipeline.store, its columns checked against schemas.IMAGES; either read
        # as store.ShardFile, so that a damaged page is an error naming the file
        with store.ShardFile(path, PACKED) if nested else store.open_shard(path, STORE_COLUMNS) as file:
            meta = file.metadata
        counts = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        sizes = []
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            sizes.append(
                sum(
                    group.column(c).total_uncompressed_size
                    for c in range(group.num_columns)
                    if group.column(c).path_in_schema in ("image", "image.bytes")
                )
            )
        return cls(
            Path(path),
            nested,
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            np.asarray(sizes, dtype=np.int64),
        )

    @property
    def column(self) -> str:
        return "image.bytes" if self.nested else "image"

    def groups_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.group_starts, rows, side="right") - 1

    def read_groups(self, groups: list[int]) -> pa.Array:
        if self.nested:
            with store.ShardFile(self.path, PACKED) as file:
                table = file.read_row_groups(groups, columns=[self.column])
        else:  # checked by Shard.open
            table = store.read_row_groups(self.path, groups, [self.column])
        column = table.column(0).combine_chunks()
        return column.field("bytes") if self.nested else column


@dataclass
class SplitBoxes:
    """A split's object boxes (``manifests/boxes.parquet``, our convention: stored-image pixels,
    far edges exclusive): each sample's stored size, all its boxes (none for an image without
    any), and the one box the network regresses, the largest (NaN where there is none). The
    largest rather than the union: ILSVRC scores a guess against each true box in turn, and
    the union of two instances apart can overlap neither by half."""

    sizes: np.ndarray  # (n, 2) int64: width, height of the stored image
    boxes: list[np.ndarray]  # per sample, (k, 4) int64, k >= 0
    targets: np.ndarray  # (n, 4) float64: the largest box, NaN without one

    @classmethod
    def of(cls, sizes: np.ndarray, boxes: list[np.ndarray]) -> SplitBoxes:
        targets = np.full((len(boxes), 4), np.nan)
        for i, found in enumerate(boxes):
            if len(found):
                areas = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
                targets[i] = found[int(np.argmax(areas))]
        return cls(sizes, boxes, targets)

    @property
    def with_boxes(self) -> int:
        return int(sum(len(b) > 0 for b in self.boxes))

    def subset(self, keep: np.ndarray) -> SplitBoxes:
        return SplitBoxes(self.sizes[keep], [self.boxes[i] for i in np.flatnonzero(keep)], self.targets[keep])


@dataclass
class Split:
    """The samples of one split: labels, where their bytes are, and which input row each came
    from; their boxes where the manifests have a box table."""

    name: str
    labels: np.ndarray  # int64
    shard: np.ndarray  # index into DataSet.shards
    shard_row: np.ndarray  # row in that shard
    sources: list[Path]  # manifest or packed files the rows came from
    source: np.ndarray  # index into sources
    source_row: np.ndarray  # row in that file
    image_ids: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    boxes: SplitBoxes | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def where(self, i: int) -> tuple[Path, int]:
        return self.sources[self.source[i]], int(self.source_row[i])

    def subset(self, keep: np.ndarray) -> Split:
        ids = [self.image_ids[i] for i in np.flatnonzero(keep)]
        return Split(
            self.name,
            self.labels[keep],
            self.shard[keep],
            self.shard_row[keep],
            self.sources,
            self.source[keep],
            self.source_row[keep],
            ids,
            dict(self.skipped),
            self.boxes.subset(keep) if self.boxes is not None else None,
        )


@dataclass
class DataSet:
    root: Path
    classes: Classes
    shards: list[Shard]
    splits: dict[str, Split]
    origin: str  # "manifests" or "packed"

    @property
    def skipped(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for split in self.splits.values():
            for reason, n in split.skipped.items():
                total[reason] = total.get(reason, 0) + n
        return total


class BadRows:
    """Collects bad rows: raises at the first unless skipping, when it counts them by reason."""

    def __init__(self, skip: bool):
        self.skip = skip

    def __call__(self, counts: dict[str, int], reason: str, error: InputError) -> None:
        if not self.skip:
            raise error
        counts[reason] = counts.get(reason, 0) + 1


class Blobs:
    """The encoded images of one split in split order, held in memory (one Arrow buffer that
    forked workers share), or None per split when the split is streamed instead."""

    def __init__(self, array: pa.Array):
        self.array = array

    def __getitem__(self, i: int) -> bytes:
        return self.array[i].as_py()

    @classmethod
    def load(cls, data: DataSet, split: Split) -> Blobs:
        parts, order = [], []
        for s in np.unique(split.shard):
            members = np.flatnonzero(split.shard == s)
            shard = data.shards[s]
            groups = np.unique(shard.groups_of(split.shard_row[members]))
            array = shard.read_groups([int(g) for g in groups])
            # rows of the groups read, in file order: map shard rows to positions in `array`
            starts = shard.group_starts[groups]
            lengths = shard.group_starts[groups + 1] - starts
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            g = np.searchsorted(groups, shard.groups_of(split.shard_row[members]))
            positions = offsets[g] + split.shard_row[members] - starts[g]
            parts.append(array.take(pa.array(positions)))
            order.append(members)
        if not parts:
            return cls(pa.array([], pa.binary()))
        array = pa.concat_arrays([p.cast(pa.large_binary()) for p in parts])
        inverse = np.empty(len(split), dtype=np.int64)
        inverse[np.concatenate(order)] = np.arange(len(split))
        return cls(array.take(pa.array(inverse)))


def split_bytes(data: DataSet, split: Split) -> int:
    """Roughly how many bytes the split's row groups hold (what reading it into memory costs)."""
    total = 0
    for s in np.unique(split.shard):
        shard = data.shards[s]
        rows = split.shard_row[split.shard == s]
        total += int(shard.group_bytes[np.unique(shard.groups_of(rows))].sum())
    return total


def row_groups(data: DataSet, split: Split) -> list[tuple[tuple[int, int], list[int]]]:
    """The split's rows by the row group holding their bytes: ((shard, group), split indices)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for s in np.unique(split.shard):
        members = np.flatnonzero(split.shard == s)
        for g, i in zip(data.shards[s].groups_of(split.shard_row[members]), members):
            groups.setdefault((int(s), int(g)), []).append(int(i))
    return list(groups.items())
