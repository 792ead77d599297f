"""A dataset for the baseline: manifest rows (or a packed export) -> image bytes -> uint8 crops.

Sources, in the order ``load_dataset`` looks for them:

- ``--packed DIR``: a packed export in the Hugging Face layout, Parquet shards named
  ``<split>-*.parquet`` (in DIR, DIR/data or DIR/<split>/) with ``image: struct<bytes, path>``
  and ``label: int64``; split ``validation`` is read as val.
- ``<data>/<subset>/manifests/{train,val,test}.parquet`` (or ``--manifests DIR``): the
  MANIFEST columns image_id, label, wnid, location; ``location`` names the shard holding the
  bytes relative to the dataset folder (an image-store shard, ``image: binary``, or a packed
  shard), where the row is found by ``image_id`` (or by the stem of ``image.path``).
  ``classes.parquet`` beside them gives the class count and names.
- neither: a provisional split of the image store (``images/``), keeping the images the
  annotation accepted (``annotation/labels.parquet``) and dedupe kept, until the manifests
  stage has run.

Images are read into memory once when they fit (``--cache-gb``), and a map-style dataset
decodes them in DataLoader workers; larger datasets are streamed a Parquet row group at a
time, each worker reading its own share of row groups, shuffled within a window of them.

Every random choice of a training sample (crop, flip, colour lighting) comes from a generator
seeded by (seed, epoch, sample index): the same crops in every run, whatever the number of
workers, and after a resume.

Under torchrun each process (rank) trains on its own part of each epoch (``rank_rows``): the
split's row groups in an order drawn from (seed, epoch), the same on every rank, their rows
one after another, cut into as many equal runs as there are ranks.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from pipeline import schemas  # pyarrow alone: the MANIFEST columns, defined once
from pipeline.errors import InputError

SPLITS = ("train", "val", "test")
PACKED_SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid"), "test": ("test",)}
MANIFEST_COLUMNS = ("image_id", "label", "location")  # of schemas.MANIFEST; wnid is checked when present

# ImageNet's statistics on [0, 1] pixels (torchvision), and the PCA of its RGB covariance
# used for AlexNet's colour lighting (fb.resnet.torch: eigenvalues, eigenvectors as columns).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
LIGHTING_STD = 0.1
WINDOW = 8  # row groups shuffled together when streaming


# --------------------------------------------------------------------------- classes and splits


@dataclass
class Classes:
    wnids: list[str]
    names: list[str]
    source: str  # where they came from, for messages

    def __len__(self) -> int:
        return len(self.wnids)


@dataclass
class Shard:
    """One Parquet file holding image bytes (image-store shard or packed shard)."""

    path: Path
    nested: bool  # image is struct<bytes, path> (packed) rather than binary (image store)
    group_starts: np.ndarray  # first row of each row group, plus the row count at the end
    group_bytes: np.ndarray  # uncompressed size of the image column per row group

    @classmethod
    def open(cls, path: Path) -> Shard:
        meta = pq.ParquetFile(path).metadata
        schema = meta.schema.to_arrow_schema()
        if "image" not in schema.names:
            raise InputError("no image column", file=path)
        nested = pa.types.is_struct(schema.field("image").type)
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
        table = pq.ParquetFile(self.path).read_row_groups(groups, columns=[self.column])
        column = table.column(0).combine_chunks()
        return column.field("bytes") if self.nested else column


@dataclass
class Split:
    """The samples of one split: labels, where their bytes are, and which input row each came from."""

    name: str
    labels: np.ndarray  # int64
    shard: np.ndarray  # index into Dataset.shards
    shard_row: np.ndarray  # row in that shard
    sources: list[Path]  # manifest or packed files the rows came from
    source: np.ndarray  # index into sources
    source_row: np.ndarray  # row in that file
    image_ids: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

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
        )


@dataclass
class DataSet:
    root: Path
    classes: Classes
    shards: list[Shard]
    splits: dict[str, Split]
    origin: str  # "manifests", "packed" or "provisional"

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


def load_dataset(
    root: Path, *, manifests: Path | None = None, packed: Path | None = None, skip_bad: bool = False, log=print
) -> DataSet:
    root = Path(root)
    bad = BadRows(skip_bad)
    if packed is not None:
        return _load_packed(Path(packed), bad)
    folder = Path(manifests) if manifests is not None else root / "manifests"
    if manifests is None and not folder.exists():
        if (root / "images").is_dir():
            log(
                f"note: {folder} does not exist yet (make manifests): training on a provisional split "
                "of the image store (accepted and kept images, 80% train / 20% val per class)"
            )
            return _load_provisional(root, bad)
        raise InputError("no manifests (make manifests) and no image store: nothing to train on", file=folder)
    tables = {}
    for name in SPLITS:
        path = folder / f"{name}.parquet"
        if path.exists():
            tables[name] = (_read_manifest(path), path)
    if "train" not in tables:
        raise InputError("no train.parquet manifest", file=folder)
    classes = (
        _read_classes(folder / "classes.parquet")
        if (folder / "classes.parquet").exists()
        else _classes_from_manifests({n: t for n, (t, _) in tables.items()}, folder)
    )
    shards: list[Shard] = []
    splits = {name: _resolve(name, table, path, root, classes, shards, bad) for name, (table, path) in tables.items()}
    return DataSet(root, classes, shards, splits, "manifests")


def _read_manifest(path: Path) -> pa.Table:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"not a readable Parquet file ({e})", file=path) from None
    for name in MANIFEST_COLUMNS:
        if name not in names:
            doc = schemas.MANIFEST.field(name).metadata[b"doc"].decode()
            raise InputError(f"column missing from the manifest ({doc})", file=path, field=name)
    table = pq.read_table(path, columns=[c for c in (*MANIFEST_COLUMNS, "wnid") if c in names])
    if not pa.types.is_integer(table.schema.field("label").type):
        raise InputError(f"labels must be integers, not {table.schema.field('label').type}", file=path, field="label")
    for name in table.column_names:
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError("null in a required column", file=path, row=row, field=name)
    return table


def _read_classes(path: Path) -> Classes:
    table = pq.read_table(path)
    for name in ("label", "wnid"):
        if name not in table.column_names:
            raise InputError("column missing from the classes table", file=path, field=name)
    table = table.sort_by("label")
    labels = table.column("label").to_pylist()
    if labels != list(range(len(labels))):
        row = next(i for i, v in enumerate(labels) if v != i)
        raise InputError("labels must run 0, 1, ... N-1", file=path, row=row, field="label", value=labels[row])
    wnids = table.column("wnid").to_pylist()
    names = table.column("name").to_pylist() if "name" in table.column_names else wnids
    return Classes(wnids, names, str(path))


def _classes_from_manifests(tables: dict[str, pa.Table], folder: Path) -> Classes:
    wnid_of: dict[int, str] = {}
    for table in tables.values():
        labels = table.column("label").to_pylist()
        wnids = table.column("wnid").to_pylist() if "wnid" in table.column_names else [None] * len(labels)
        for label, wnid in zip(labels, wnids):
            if label >= 0:
                wnid_of.setdefault(label, wnid or str(label))
    count = max(wnid_of) + 1 if wnid_of else 0
    wnids = [wnid_of.get(i, str(i)) for i in range(count)]
    return Classes(wnids, wnids, f"the labels of {folder} (no classes.parquet)")


def _resolve(
    name: str, table: pa.Table, path: Path, root: Path, classes: Classes, shards: list[Shard], bad: BadRows
) -> Split:
    """Find each manifest row's bytes (shard and row) and check its label; errors name the row."""
    n = table.num_rows
    image_ids = table.column("image_id").to_pylist()
    labels = table.column("label").to_numpy().astype(np.int64)
    wnids = table.column("wnid").to_pylist() if "wnid" in table.column_names else None
    locations = table.column("location").to_pylist()
    shard_of = np.full(n, -1, dtype=np.int64)
    shard_row = np.full(n, -1, dtype=np.int64)
    counts: dict[str, int] = {}
    keep = np.ones(n, dtype=bool)
    index = {s.path: i for i, s in enumerate(shards)}
    by_location: dict[str, list[int]] = {}
    for row, location in enumerate(locations):
        by_location.setdefault(location, []).append(row)
    for location, rows in by_location.items():
        file = root / location
        if not file.is_file():
            for row in rows:
                bad(
                    counts,
                    "missing shard",
                    InputError(f"no such image shard: {file}", file=path, row=row, field="location", value=location),
                )
                keep[row] = False
            continue
        if file not in index:
            index[file] = len(shards)
            shards.append(Shard.open(file))
        shard = shards[index[file]]
        ids = _shard_ids(shard)
        for row in rows:
            at = ids.get(image_ids[row])
            if at is None:
                bad(
                    counts,
                    "missing image",
                    InputError(
                        f"not in its shard {location}", file=path, row=row, field="image_id", value=image_ids[row]
                    ),
                )
                keep[row] = False
                continue
            shard_of[row], shard_row[row] = index[file], at
    for row in range(n):
        label = int(labels[row])
        if not 0 <= label < len(classes):
            bad(
                counts,
                "bad label",
                InputError(
                    f"outside the {len(classes)} classes of {classes.source}",
                    file=path,
                    row=row,
                    field="label",
                    value=label,
                ),
            )
            keep[row] = False
        elif wnids is not None and wnids[row] != classes.wnids[label]:
            bad(
                counts,
                "bad label",
                InputError(
                    f"label {label} is {classes.wnids[label]} in {classes.source}",
                    file=path,
                    row=row,
                    field="wnid",
                    value=wnids[row],
                ),
            )
            keep[row] = False
    split = Split(
        name, labels, shard_of, shard_row, [path], np.zeros(n, dtype=np.int64), np.arange(n), image_ids, counts
    )
    return split.subset(keep) if not keep.all() else split


def _shard_ids(shard: Shard) -> dict[str, int]:
    """image_id -> row of a shard: its image_id column, or the stems of image.path (packed)."""
    names = pq.read_schema(shard.path).names
    if "image_id" in names:
        ids = pq.read_table(shard.path, columns=["image_id"]).column(0).to_pylist()
    elif shard.nested:
        ids = [
            Path(p).stem if p else None for p in pq.read_table(shard.path, columns=["image.path"]).column(0).to_pylist()
        ]
    else:
        raise InputError("shard has neither an image_id column nor image.path to find rows by", file=shard.path)
    out: dict[str, int] = {}
    for row, image_id in enumerate(ids):
        out.setdefault(image_id, row)
    return out


def _load_packed(folder: Path, bad: BadRows) -> DataSet:
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
            meta_names = _hf_label_names(file)
            names = names or meta_names
            if "label" not in pq.read_schema(file).names:
                raise InputError("column missing from the packed shard", file=file, field="label")
            column = pq.read_table(file, columns=["label"]).column(0)
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
    # the manifests' classes.parquet (wnids and names), found beside the export or above it
    # (<subset>/export/hf -> <subset>/manifests), else the ClassLabel names of the shards
    candidates = [folder / "classes.parquet"] + [
        up / "manifests" / "classes.parquet" for up in (folder, *list(folder.resolve().parents)[:3])
    ]
    classes_file = next((p for p in candidates if p.exists()), None)
    if classes_file is not None:
        classes = _read_classes(classes_file)
        if names and len(names) != len(classes):
            raise InputError(f"{len(classes)} classes, but the packed shards name {len(names)}", file=classes_file)
    elif names:
        classes = Classes(list(names), list(names), f"the ClassLabel names of {folder}")
    else:
        count = int(max(s.labels.max() for s in splits.values())) + 1
        classes = Classes([str(i) for i in range(count)], [str(i) for i in range(count)], f"the labels of {folder}")
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


def _packed_files(folder: Path, aliases: tuple[str, ...]) -> list[Path]:
    for alias in aliases:
        for base in (folder, folder / "data"):
            files = sorted(base.glob(f"{alias}-*.parquet")) + sorted((base / alias).glob("*.parquet"))
            if files:
                return files
    return []


def _hf_label_names(file: Path) -> list[str] | None:
    import json

    meta = pq.read_schema(file).metadata or {}
    try:
        features = json.loads(meta[b"huggingface"])["info"]["features"]
        return list(features["label"]["names"])
    except (KeyError, ValueError, TypeError):
        return None


def _load_provisional(root: Path, bad: BadRows) -> DataSet:
    """Until the manifests stage exists: accepted, kept images of the store, 80/20 per class."""
    shards = [Shard.open(p) for p in sorted((root / "images").glob("shard-*.parquet"))]
    if not shards:
        raise InputError("no image shards", file=root / "images")
    accepted = _id_set(root / "annotation" / "labels.parquet", "accepted")
    kept = _id_set(root / "dedupe" / "clusters.parquet", "keep")
    rows = []
    for s, shard in enumerate(shards):
        table = pq.read_table(shard.path, columns=["image_id", "wnid"])
        for r, (image_id, wnid) in enumerate(zip(table.column(0).to_pylist(), table.column(1).to_pylist())):
            if (accepted is None or image_id in accepted) and (kept is None or image_id in kept):
                rows.append((image_id, wnid, s, r))
    wnids = sorted({w for _, w, _, _ in rows})
    label_of = {w: i for i, w in enumerate(wnids)}
    order: dict[str, list] = {}
    for row in sorted(rows, key=lambda x: hashlib.sha256(x[0].encode()).hexdigest()):
        order.setdefault(row[1], []).append(row)
    parts: dict[str, list] = {"train": [], "val": []}
    for members in order.values():
        cut = max(1, round(len(members) * 0.2))
        parts["val"] += members[:cut]
        parts["train"] += members[cut:]
    splits = {}
    for name, members in parts.items():
        members.sort(key=lambda x: (x[2], x[3]))
        splits[name] = Split(
            name,
            np.array([label_of[m[1]] for m in members], dtype=np.int64),
            np.array([m[2] for m in members], dtype=np.int64),
            np.array([m[3] for m in members], dtype=np.int64),
            [s.path for s in shards],
            np.array([m[2] for m in members], dtype=np.int64),
            np.array([m[3] for m in members], dtype=np.int64),
            [m[0] for m in members],
        )
    return DataSet(root, Classes(wnids, _names(root, wnids), str(root / "images")), shards, splits, "provisional")


def _id_set(path: Path, flag: str) -> set[str] | None:
    if not path.exists():
        return None
    table = pq.read_table(path, columns=["image_id", flag])
    return {i for i, ok in zip(table.column(0).to_pylist(), table.column(1).to_pylist()) if ok}


def _names(root: Path, wnids: list[str]) -> list[str]:
    path = root / "synsets.parquet"
    if not path.exists():
        return list(wnids)
    table = pq.read_table(path, columns=["wnid", "name"])
    name_of = dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist()))
    return [name_of.get(w, w) for w in wnids]


# --------------------------------------------------------------------------- image bytes


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


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class View:
    """How a sample becomes pixels: ``train`` (random crop, flip, lighting alpha), ``center``
    or ``tencrop`` (four corners and centre; the flips are made on the batch)."""

    mode: str
    size: int  # crop side
    resize: int  # short side the image is scaled to before cropping
    seed: int = 0
    epoch: int = 0
    lighting: bool = True

    def boxes(self, width: int, height: int, index: int) -> tuple[list[tuple[int, int, int, int]], bool, np.ndarray]:
        """Crop boxes in whole source pixels (what scaling the image to ``resize`` and cutting
        ``size`` would take), whether to flip, and the lighting alphas. Whole pixels let the
        GPU path cut exactly the same squares as Pillow."""
        scale = self.resize / min(width, height)
        side = max(1, min(round(self.size / scale), width, height))  # the crop's side in source pixels
        free_x, free_y = width - side, height - side
        if self.mode == "train":
            rng = np.random.default_rng((self.seed, self.epoch, index))
            # a position on the scaled image's pixel grid, as AlexNet's crops were
            x = rng.integers(0, int(free_x * scale) + 1) / scale
            y = rng.integers(0, int(free_y * scale) + 1) / scale
            flip = bool(rng.integers(0, 2))
            alpha = rng.normal(0, LIGHTING_STD, 3).astype(np.float32) if self.lighting else np.zeros(3, np.float32)
            corners = [(x, y)]
        else:
            flip, alpha = False, np.zeros(3, np.float32)
            centre = (free_x / 2, free_y / 2)
            corners = (
                [centre] if self.mode == "center" else [(0, 0), (free_x, 0), (0, free_y), (free_x, free_y), centre]
            )
        boxes = []
        for x, y in corners:
            left, top = min(round(x), free_x), min(round(y), free_y)
            boxes.append((left, top, left + side, top + side))
        return boxes, flip, alpha


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.size  # noqa: B018  header read: raises for what is no image at all
    return image


def crop(data: bytes, view: View, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode with Pillow (reduced-size JPEG decoding when the crop allows) and cut the view's
    crops: uint8 (k, size, size, 3), and the lighting alphas."""
    image = open_image(data)
    width, height = image.size
    boxes, flip, alpha = view.boxes(width, height, index)
    if image.format == "JPEG":
        scale = view.resize / min(width, height)
        image.draft("RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
    fx, fy = image.size[0] / width, image.size[1] / height
    image = image.convert("RGB")
    out = np.empty((len(boxes), view.size, view.size, 3), dtype=np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        piece = image.resize((view.size, view.size), Image.BILINEAR, box=(x0 * fx, y0 * fy, x1 * fx, y1 * fy))
        if flip:
            piece = piece.transpose(Image.FLIP_LEFT_RIGHT)
        out[k] = np.asarray(piece)
    return out, alpha


class CropDataset(Dataset):
    """Map-style: blobs in memory, decoded and cropped in the worker."""

    def __init__(self, split: Split, blobs: Blobs, view: View):
        self.split, self.blobs, self.view = split, blobs, view

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return sample(self.blobs[i], self.split, self.view, i)


def row_groups(data: DataSet, split: Split) -> list[tuple[tuple[int, int], list[int]]]:
    """The split's rows by the row group holding their bytes: ((shard, group), split indices)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for s in np.unique(split.shard):
        members = np.flatnonzero(split.shard == s)
        for g, i in zip(data.shards[s].groups_of(split.shard_row[members]), members):
            groups.setdefault((int(s), int(g)), []).append(int(i))
    return list(groups.items())


def group_order(count: int, view: View) -> np.ndarray:
    """The order an epoch reads row groups in when training: drawn from (seed, epoch) alone."""
    return np.random.default_rng((view.seed, view.epoch, 7919)).permutation(count)


def rank_part(count: int, rank: int, world: int) -> np.ndarray:
    """The positions 0..count-1 of an epoch's order that ``rank`` of ``world`` takes: the order
    padded to a multiple of world by wrapping round (as torch's DistributedSampler pads), cut
    into world equal runs. Every rank gets as many rows, hence as many steps; the runs are
    disjoint but for the world - 1 padding rows at most, and together cover the order."""
    per = -(-count // world)
    return np.resize(np.arange(count), per * world)[rank * per : (rank + 1) * per]


def rank_rows(groups: list[tuple[tuple[int, int], list[int]]], view: View, rank: int, world: int) -> np.ndarray:
    """The split indices ``rank`` trains on in the view's epoch (``groups`` from row_groups):
    the row groups in the epoch's order, the same on every rank, their rows one after another,
    and the rank's run of them (rank_part). A run of whole row groups, but for the two at its
    ends: a streaming rank reads only its own."""
    order = group_order(len(groups), view)
    rows = np.concatenate([np.asarray(groups[g][1], dtype=np.int64) for g in order])
    return rows[rank_part(len(rows), rank, world)]


class StreamDataset(IterableDataset):
    """Streamed: each worker reads its share of the split's row groups, WINDOW at a time, and
    yields their samples shuffled (train) or in file order (evaluation). Under torchrun
    (``part`` = (rank, world) for training) the rank's rows (rank_rows) are cut into one run
    per worker, of equal sizes on every rank, so that every rank makes as many steps."""

    def __init__(
        self, data: DataSet, split: Split, view: View, shuffle: bool, raw: bool = False, part: tuple[int, int] = (0, 1)
    ):
        self.data, self.split, self.view, self.shuffle, self.raw = data, split, view, shuffle, raw
        self.groups = row_groups(data, split)
        self.rank, self.world = part

    def __len__(self) -> int:
        return -(-len(self.split) // self.world)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        groups, order = self.groups, np.arange(len(self.groups))
        if self.shuffle:
            order = group_order(len(self.groups), self.view)
        mine, salt = order[worker::workers], ()
        if self.world > 1:  # this rank's rows, this worker's run of them, by row group
            groups = self.pieces(
                np.array_split(rank_rows(self.groups, self.view, self.rank, self.world), workers)[worker]
            )
            mine, salt = np.arange(len(groups)), (self.rank, worker)
        for w in range(0, len(mine), WINDOW):
            window = [groups[g] for g in mine[w : w + WINDOW]]
            arrays = {}
            for (s, g), _ in window:
                arrays[(s, g)] = self.data.shards[s].read_groups([g])
            members = [(key, i) for key, indices in window for i in indices]
            if self.shuffle:
                rng = np.random.default_rng((self.view.seed, self.view.epoch, int(mine[w]), *salt))
                members = [members[k] for k in rng.permutation(len(members))]
            for (s, g), i in members:
                shard = self.data.shards[s]
                blob = arrays[(s, g)][int(self.split.shard_row[i] - shard.group_starts[g])].as_py()
                yield raw_sample(blob, self.split, self.view, i) if self.raw else sample(blob, self.split, self.view, i)

    def pieces(self, rows: np.ndarray) -> list[tuple[tuple[int, int], list[int]]]:
        """Consecutive rows as ((shard, group), indices), one piece per run of rows in one group."""
        group_of = np.empty(len(self.split), dtype=np.int64)
        for g, (_, members) in enumerate(self.groups):
            group_of[members] = g
        of = group_of[rows]
        starts = np.flatnonzero(np.r_[True, of[1:] != of[:-1]]) if len(rows) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(rows)]
        return [(self.groups[of[a]][0], rows[a:b].tolist()) for a, b in zip(starts, ends)]


def sample(blob: bytes, split: Split, view: View, i: int):
    """(uint8 crops (k, 3, S, S), label, index, lighting alphas, error text or '')."""
    try:
        pixels, alpha = crop(blob, view, i)
        error = ""
    except Exception as e:  # noqa: BLE001  any decoder failure is the row's problem, reported by the trainer
        k = 1 if view.mode != "tencrop" else 5
        pixels, alpha, error = np.zeros((k, view.size, view.size, 3), np.uint8), np.zeros(3, np.float32), _describe(e)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2), int(split.labels[i]), i, torch.from_numpy(alpha), error


def _describe(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return (
        f"unreadable image ({type(e).__name__}: {text})"
        if type(e).__name__ not in text
        else f"unreadable image ({text})"
    )


# --------------------------------------------------------------------------- GPU decoding


class RawDataset(CropDataset):
    """For GPU decoding: the worker only reads the header, to place the crops; the bytes go to
    the GPU whole."""

    def __getitem__(self, i: int):
        return raw_sample(self.blobs[i], self.split, self.view, i)


def raw_sample(blob: bytes, split: Split, view: View, i: int):
    try:
        image = open_image(blob)
        boxes, flip, alpha = view.boxes(*image.size, i)
        error = "" if image.format == "JPEG" and image.mode in ("RGB", "L") else "cpu"
    except Exception as e:  # noqa: BLE001
        boxes, flip, alpha, error = (
            [(0.0, 0.0, 1.0, 1.0)] * (5 if view.mode == "tencrop" else 1),
            False,
            np.zeros(3, np.float32),
            _describe(e),
        )
    return (
        torch.frombuffer(bytearray(blob), dtype=torch.uint8),
        torch.tensor(boxes, dtype=torch.float32),
        flip,
        int(split.labels[i]),
        i,
        torch.from_numpy(alpha),
        error,
    )


def raw_collate(batch):
    blobs, boxes, flips, labels, indices, alphas, errors = zip(*batch)
    return (
        list(blobs),
        torch.stack(boxes),
        torch.tensor(flips),
        torch.tensor(labels),
        torch.tensor(indices),
        torch.stack(alphas),
        list(errors),
    )


def gpu_decoder():
    """torchvision's batched nvJPEG decoder, or None when torchvision (or CUDA) is missing."""
    if not torch.cuda.is_available():
        return None
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None

    def decode(blobs: list[torch.Tensor], device) -> list[torch.Tensor]:
        return decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)

    return decode


def pillow_decoder(blobs: list[torch.Tensor], device) -> list[torch.Tensor]:
    """Whole images as CHW uint8 tensors: the fallback for what nvJPEG refuses (PNG, CMYK)."""
    out = []
    for blob in blobs:
        image = open_image(blob.numpy().tobytes()).convert("RGB")
        out.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).to(device))
    return out


def crops_on_device(images: list[torch.Tensor], boxes: torch.Tensor, flips: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each image's boxes and scale them to size x size (antialiased bilinear): uint8 (B, k, 3, S, S)."""
    out = torch.empty((len(images), boxes.shape[1], 3, size, size), dtype=torch.uint8, device=images[0].device)
    for b, image in enumerate(images):
        for k, (left, top, right, bottom) in enumerate(boxes[b].round().long().tolist()):
            piece = image[None, :, top:bottom, left:right].float()
            piece = torch.nn.functional.interpolate(
                piece, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            piece = piece.round_().clamp_(0, 255).to(torch.uint8)[0]
            out[b, k] = piece.flip(-1) if flips[b] else piece
    return out


def decode_batch(blobs, boxes, flips, errors, size: int, device, decode) -> tuple[torch.Tensor, list[str]]:
    """The GPU path of a batch: nvJPEG for the JPEGs, Pillow for the rest (and for any JPEG the
    batched decoder refuses); errors updated for the images nothing could decode."""
    images: list[torch.Tensor | None] = [None] * len(blobs)
    errors = list(errors)
    jpeg = [b for b, e in enumerate(errors) if e == ""]
    if jpeg:
        try:
            for b, image in zip(jpeg, decode([blobs[b] for b in jpeg], device)):
                images[b] = image
        except RuntimeError:
            pass  # one bad JPEG fails the batch: fall back to one at a time below
    for b, error in enumerate(errors):
        if images[b] is not None or (error and error != "cpu"):
            continue
        try:
            images[b] = decode([blobs[b]], device)[0] if error == "" else pillow_decoder([blobs[b]], device)[0]
        except Exception:  # noqa: BLE001
            try:
                images[b] = pillow_decoder([blobs[b]], device)[0]
            except Exception as e:  # noqa: BLE001
                errors[b] = _describe(e)
        if errors[b] == "cpu":
            errors[b] = ""
    blank = torch.zeros((3, 2, 2), dtype=torch.uint8, device=device)
    return crops_on_device([i if i is not None else blank for i in images], boxes, flips, size), errors


# --------------------------------------------------------------------------- statistics


@dataclass
class Stats:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eigval: tuple[float, float, float]
    eigvec: tuple[tuple[float, float, float], ...]
    source: str

    def as_dict(self) -> dict:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "eigval": list(self.eigval),
            "eigvec": [list(r) for r in self.eigvec],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Stats:
        return cls(
            tuple(d["mean"]), tuple(d["std"]), tuple(d["eigval"]), tuple(tuple(r) for r in d["eigvec"]), d["source"]
        )


IMAGENET_STATS = Stats(IMAGENET_MEAN, IMAGENET_STD, IMAGENET_EIGVAL, IMAGENET_EIGVEC, "imagenet")


def training_stats(data: DataSet, split: Split, limit: int = 512, side: int = 64) -> Stats:
    """Mean, std and the RGB PCA (AlexNet's lighting) of up to ``limit`` training images,
    decoded small, read from row groups spread over the split (cheap also when streaming)."""
    groups: list[tuple[int, int, list[int]]] = []
    for s in np.unique(split.shard):
        members = np.flatnonzero(split.shard == s)
        g_of = data.shards[s].groups_of(split.shard_row[members])
        for g in np.unique(g_of):
            groups.append((int(s), int(g), [int(i) for i in members[g_of == g]]))
    per_group = max(1, math.ceil(len(split) / max(1, len(groups))))
    wanted = max(1, math.ceil(limit / per_group))  # row groups to read, spread over the split
    take = groups[:: max(1, len(groups) // wanted)][:wanted]
    pixels = []
    n = 0
    for s, g, indices in take:
        shard = data.shards[s]
        array = shard.read_groups([g])
        for i in indices[: max(1, limit // max(1, len(take)))]:
            try:
                image = open_image(array[int(split.shard_row[i] - shard.group_starts[g])].as_py())
                image.draft("RGB", (side, side))
                image = image.convert("RGB")
                image.thumbnail((side, side))
            except Exception:  # noqa: BLE001  bad images are reported when training reaches them
                continue
            pixels.append(np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255)
            n += 1
    if not pixels:
        return IMAGENET_STATS
    values = np.concatenate(pixels)
    mean, std = values.mean(0), values.std(0) + 1e-6
    eigval, eigvec = np.linalg.eigh(np.cov(values, rowvar=False))
    order = np.argsort(eigval)[::-1]
    return Stats(
        tuple(map(float, mean)),
        tuple(map(float, std)),
        tuple(float(max(v, 0)) for v in eigval[order]),
        tuple(tuple(map(float, row)) for row in eigvec[:, order]),
        f"train ({n} images)",
    )


def default_workers(processes: int = 1) -> int:
    """DataLoader workers for one of ``processes`` training processes sharing this machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpus = max(1, cpus // processes)
    return min(12, max(1, cpus // 2)) if torch.cuda.is_available() else (1 if cpus <= 4 else min(4, cpus // 2))
