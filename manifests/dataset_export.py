"""The export stage: the manifests' images in the layouts other tools read, under ``export/<format>/``.

- ``hf``: ``data/{train,validation,test}-NNNNN-of-MMMMM.parquet``, the layout of the Hugging Face
  imagenet-1k dataset: ``image`` (struct of ``bytes`` and ``path``) and ``label`` (int64), the
  features (Image, ClassLabel named by the classes' lemmas) in the ``huggingface`` schema
  metadata, 100 images per row group as ``datasets`` writes image datasets. Rows are in the
  order wds writes (``export_order``: image_id order, a fixed shuffle), so shards and streams mix
  the classes. Unlike imagenet-1k (label -1), test rows keep their labels. A dataset with
  object boxes adds ``objects``, the ``datasets`` detection convention
  (``{"bbox": [[xmin, ymin, xmax, ymax], ...], "category": [label, ...]}``, ``BOX_FORMAT``).
  Beside the shards, a stage of its own (``run_hf_card``): ``README.md``, the dataset card
  (``manifests.card``) with the Hub's front matter merged with the ``configs`` and
  ``dataset_info`` that ``load_dataset("export/hf")`` reads, its figures ``card/*.png`` and
  ``LICENSE.md``: the folder is a Hub dataset repository as it stands.
- ``ilsvrc``: ``train/<wnid>/<wnid>_<n>.JPEG``, ``val/<wnid>/<PREFIX>_val_%08d.JPEG``,
  ``test/<wnid>/<PREFIX>_test_%08d.JPEG`` by default (``--tree folders``: the class folders
  ``valprep.sh`` makes, which torchvision's ImageFolder and timm's folder reader label; a flat
  ``val/`` is one unlabelled class to them); ``--tree flat``: val and test flat, as ILSVRC-2012's
  tarballs; ``--tree kaggle``: Kaggle's download, the images under ``ILSVRC/Data/CLS-LOC/``, the
  XML under ``ILSVRC/Annotations/``, and ``LOC_sample_submission.csv``. Beside them Kaggle's
  ``LOC_synset_mapping.txt``, ``classes.txt`` (a wnid a line: timm's ``class_map``),
  ``<PREFIX>_{validation,test}_labels.txt`` (0-based labels), the devkit's
  ``<PREFIX>_{validation,test}_ground_truth.txt`` only where every class has an ILSVRC2012_ID
  (``manifests.ilsvrc_ids``), holding those IDs, with the devkit's ``map_clsloc.txt``;
  ``files.csv`` (each file's image_id, label, wnid, sha256) and a ``README.txt`` that says all
  this. The object boxes, where the dataset has them, as ILSVRC and Kaggle ship them
  (``manifests.boxes_files``): ``Annotations/CLS-LOC/...xml`` and ``LOC_<split>_solution.csv``,
  for the boxed images only (no box is invented for an image without one).
- ``wds``: WebDataset tars ``{split}-NNNNNN.tar`` of ``<key>.jpg`` (the stored format's
  extension), ``<key>.cls`` (the label) and ``<key>.json`` (with ``boxes`` in ``BOX_FORMAT``
  where the dataset has boxes, and the class's ``class_name``), in image_id order: ids are
  hashes, so every shard mixes the classes, as webdataset's own ImageNet recipe shuffles before
  writing. ``_info.json`` lists each split's shards and sample counts in the form timm's
  ``ReaderWds`` reads (``create_dataset("wds/...", root=..., split="validation")``; split names
  as Hugging Face's), and ``classes.json`` gives every label's wnid and name.

Boxes are pixel edges of the stored image, which is upright (its width and height are the
upright size), so they fit every exported file unchanged: a file re-encoded upright has those
pixels, and ``datasets`` turns the stored bytes upright as it opens them.

Each layout's files are what its readers expect (``Rule``), and every image reads upright at the
manifest's size (which is the upright size). ILSVRC's readers (torchvision's ImageFolder, timm)
take every ``.JPEG`` for a JPEG and open it with Pillow without applying the EXIF orientation,
so there every file is an upright JPEG: a PNG, GIF, WebP, BMP or TIFF, and a JPEG whose EXIF
orientation turns it, is re-encoded from its upright RGB pixels (``pixels.decode``) at quality
``QUALITY``; ``files.csv`` says which. ``datasets``' Image feature opens the bytes whatever the
name and applies the EXIF orientation, so hf keeps the stored bytes and names each by its real
format (``.png``, ...; a JPEG keeps imagenet-1k's ``.JPEG``). webdataset's Pillow decoders do not
apply it, so wds keeps the stored format (the member's extension) but re-encodes an image the
EXIF orientation turns. Everything else is written byte for byte as the store holds it, checked
against the manifest's sha256 (the store's image pages are uncompressed: damage inside them
would otherwise be exported as it is). Each store shard is read once, front to back, and only
its row groups that hold wanted images. A class's images lie in every store shard, so hf and
wds put the bytes in their order through bucket files on disk (``Spill``).

``--link`` (ilsvrc): store images live inside Parquet, so a first export has no file to link to
and writes every file. A later export (the manifests changed, or ``--force``) hard-links each
file whose image (image_id and sha256, from the previous ``files.csv``) the previous export
already wrote, instead of writing it again; where the filesystem refuses, it writes the file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import tarfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import __version__, pixels, runner, schemas, store
from pipeline.errors import InputError
from pipeline.layout import CARD_FIGURES, EXPORT, SPLITS, Layout
from pipeline.progress import progress
from pipeline.settings import number
from pipeline.tables import read_table

from . import card
from .boxes_files import HEADER, Labelled, annotation_name, loc_csv, voc_xml
from .dataset_import import KAGGLE_ROOT, kaggle_root
from .ilsvrc_ids import devkit_classes, devkit_ids, map_clsloc

HELP = "the manifests' images as Hugging Face Parquet, an ILSVRC folder tree or WebDataset tars: export/<format>/"
FORMATS = ("hf", "ilsvrc", "wds")
COLUMNS = ["image_id", "label", "wnid", "location", "width", "height", "sha256"]
PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # Hugging Face's split names
HF_ROW_GROUP = 100  # images per row group: datasets' own setting for image datasets
DEVKIT_SPLITS = {"val": "validation", "test": "test"}  # <PREFIX>_<name>_ground_truth.txt, _labels.txt
TREES = ("folders", "flat", "kaggle")  # ilsvrc: val and test in class folders, flat, or Kaggle's tree
SAMPLE_SUBMISSION = "LOC_sample_submission.csv"  # Kaggle's: the test ImageIds, for a script to fill in
TAR_OVERHEAD = 3 * 1024  # headers and padding of a sample's three members, for cutting shards
BUCKET_BYTES = 128 * 2**20  # a spill bucket: what the reordering holds in memory at a time
OPEN_BUCKETS = 64  # spill files kept open while the store is read
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
QUALITY = 95  # JPEG quality of the images a layout needs re-encoded
BOX_FORMAT = "[xmin, ymin, xmax, ymax] in pixels of the image, 0-based, xmax and ymax exclusive"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="hf: Hugging Face Parquet shards; ilsvrc: ILSVRC-2012 / Kaggle folders; wds: WebDataset tars (make: FORMAT)",
    )
    parser.add_argument(
        "--link",
        action="store_true",
        help="ilsvrc: hard-link files the previous export already wrote instead of writing them again (make: LINK=1)",
    )
    parser.add_argument(
        "--prefix",
        default="ILSVRC2012",
        help="val and test file names: <PREFIX>_val_00000001.JPEG (make: PREFIX, default ILSVRC2012)",
    )
    parser.add_argument(
        "--tree",
        choices=TREES,
        help="ilsvrc: folders: val/ and test/ in class folders as train/ (what ImageFolder and timm read); "
        "flat: val/ and test/ flat, as ILSVRC-2012's tarballs; kaggle: Kaggle's ILSVRC/Data/CLS-LOC tree "
        "(make: TREE, default folders)",
    )
    parser.add_argument(
        "--shard-mb",
        type=number(0, above=True),
        default=500,
        help="hf and wds: megabytes of images per shard at most (make: SHARD_MB, default 500)",
    )


def run(args: argparse.Namespace) -> None:
    if not PREFIX_RE.fullmatch(args.prefix):
        raise InputError("a file name prefix: letters, digits, '_', '.' and '-'", field="PREFIX", value=args.prefix)
    if args.link and args.format != "ilsvrc":
        raise InputError("--link applies to --format ilsvrc, whose images are files", field="LINK")
    if args.tree is not None and args.format != "ilsvrc":
        raise InputError("--tree applies to --format ilsvrc, whose images are files", field="TREE", value=args.tree)
    workdir = args.workdir
    layout = Layout(workdir)
    for path in (*(layout.manifest(s) for s in SPLITS), layout.classes):
        if not path.exists():
            raise InputError("no manifests to export: run `make manifests` (or `make import`) first", file=path)
    output = f"{EXPORT}/{args.format}" + ("/data" if args.format == "hf" else "")
    settings = {"format": args.format, "prefix": args.prefix, "shard_mb": args.shard_mb}
    tree = args.tree or TREES[0]
    if args.format == "ilsvrc":  # the other layouts' exports stay up to date
        settings["tree"] = tree
    stage = runner.Stage(
        name=f"export-{args.format}",
        workdir=workdir,
        outputs=(output,),
        inputs=(layout.manifests, layout.synsets, layout.images),
        settings=settings,
        # 2: files upright and named (or re-encoded) by their real format; 3: object boxes; 4: hf rows in
        # image_id order, wds _info.json, classes.json and class names
        version=4,
    )
    shard_bytes = int(args.shard_mb * 1e6)

    def build(out: Path) -> str:
        data = read_dataset(workdir, args.prefix)
        target = out / output
        if args.format == "hf":
            return write_hf(data, target, out / ".spill", shard_bytes)
        if args.format == "wds":
            return write_wds(data, target, out / ".spill", shard_bytes)
        return write_ilsvrc(data, target, args.prefix, layout.export(args.format) if args.link else None, tree)

    runner.run(stage, build, force=args.force)
    if args.format == "hf":
        run_hf_card(layout, args.force)


@dataclass
class Dataset:
    workdir: Path
    classes: pd.DataFrame  # label, wnid, name, lemmas (", "-joined, LOC_synset_mapping's text)
    rows: pd.DataFrame  # every split's manifest rows in manifest order, with split and file
    boxes: dict[str, list[list[int]]]  # image_id -> its boxes (BOX_FORMAT), in box manifest order; {}: none

    def boxes_of(self, image_ids) -> list[list[list[int]]]:
        return [self.boxes.get(i, []) for i in image_ids]


def read_boxes(layout: Layout) -> dict[str, list[list[int]]]:
    """The box manifest as image_id -> [[xmin, ymin, xmax, ymax], ...]; {} without one."""
    if not layout.box_manifest.exists():
        return {}
    table = read_table(layout.box_manifest, schemas.BOX_MANIFEST, columns=["image_id", "xmin", "ymin", "xmax", "ymax"])
    found: dict[str, list[list[int]]] = {}
    for image_id, *box in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        found.setdefault(image_id, []).append(box)
    return found


def read_dataset(workdir: Path, prefix: str) -> Dataset:
    layout = Layout(workdir)
    classes = read_table(layout.classes, schemas.CLASSES, columns=["label", "wnid", "name"]).to_pandas()
    synsets = read_table(layout.synsets, schemas.SYNSETS, columns=["wnid", "lemmas"]).to_pandas()
    lemmas = {w: list(ls) for w, ls in zip(synsets.wnid, synsets.lemmas)}
    classes["lemmas"] = [", ".join(lemmas.get(w) or [n]) for w, n in zip(classes.wnid, classes.name)]
    parts = []
    for split in SPLITS:
        path = layout.manifest(split)
        rows = read_table(path, schemas.MANIFEST, columns=COLUMNS).to_pandas()
        bad = rows.label.map(dict(zip(classes.label, classes.wnid))) != rows.wnid
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"label and wnid {rows.wnid.iloc[row]} disagree with classes.parquet",
                file=path,
                row=row,
                field="label",
                value=int(rows.label.iloc[row]),
            )
        parts.append(rows.assign(split=split, file=file_names(split, rows, prefix)))
    return Dataset(workdir, classes, pd.concat(parts, ignore_index=True), read_boxes(layout))


def file_names(split: str, rows: pd.DataFrame, prefix: str) -> list[str]:
    """ILSVRC's names below the split's folder. Train: ``<wnid>/<wnid>_<n>.JPEG``, n from 1 within
    the class in manifest order. Val and test: numbered from 1 in image_id order; ids are hashes,
    so the classes mix as in ILSVRC's val."""
    if split == "train":
        n = rows.groupby("wnid", sort=False).cumcount() + 1
        return [f"{w}/{w}_{i}.JPEG" for w, i in zip(rows.wnid, n)]
    n = np.empty(len(rows), np.int64)
    n[np.argsort(rows.image_id.to_numpy(), kind="stable")] = np.arange(1, len(rows) + 1)
    return [f"{prefix}_{split}_{i:08d}.JPEG" for i in n]


STORE_COLUMNS = ["image_id", "image", "format"]


def scan_store(workdir: Path, rows: pd.DataFrame, desc: str) -> Iterator[tuple[np.ndarray, pa.Array, pa.Array]]:
    """(positions in ``rows``, their bytes, their formats) in store order, a row group at a time,
    the bytes checked against the manifest's sha256. Each shard's ids are read first, so only
    row groups holding wanted images are read."""
    sha256, image_ids = rows.sha256.to_numpy(), rows.image_id.to_numpy()
    bar = progress(total=len(rows), desc=desc, unit="img")
    try:
        for location, group in rows.groupby("location", sort=True):
            path = workdir / location
            shard = store.open_shard(path, STORE_COLUMNS)
            wanted = pd.Index(group.image_id.to_numpy())
            if not wanted.is_unique:
                raise InputError(
                    "an image is listed twice in the manifests",
                    file=path,
                    field="image_id",
                    value=wanted[wanted.duplicated()][0],
                )
            ids = shard.read(columns=["image_id"]).column(0).to_numpy(zero_copy_only=False)
            hit = wanted.get_indexer(ids)
            if (hit >= 0).sum() < len(wanted):
                missing = wanted.difference(pd.Index(ids))[0]
                raise InputError(
                    "an image of the manifests is not in its store shard", file=path, field="image_id", value=missing
                )
            positions, start = group.index.to_numpy(), 0
            for number in range(shard.num_row_groups):
                size = shard.metadata.row_group(number).num_rows
                keep = np.flatnonzero(hit[start : start + size] >= 0)
                if len(keep):
                    table = shard.read_row_group(number, columns=["image", "format"])
                    take = pa.array(keep)
                    found = positions[hit[start + keep]]
                    images = table.column("image").take(take).combine_chunks()
                    for position, view in zip(found.tolist(), _views(images)):
                        store.check_bytes(path, number, image_ids[position], view, sha256[position])
                    yield found, images, table.column("format").take(take).combine_chunks()
                    bar.update(len(keep))
                start += size
    finally:
        bar.close()


@dataclass(frozen=True)
class Rule:
    """Which stored images a layout re-encodes as upright JPEGs, for its readers' sake."""

    formats: tuple[str, ...] | None  # stored formats written as they are; None: any format
    turned: bool  # whether an image its EXIF orientation turns is re-encoded upright


RULES = {"ilsvrc": Rule(("JPEG",), turned=True), "hf": Rule(None, turned=False), "wds": Rule(None, turned=True)}


def exported(data: memoryview, stored_format: str, rule: Rule, image_id: str) -> tuple[bytes | memoryview, str, str]:
    """What a layout writes for a stored image: the bytes, their format, and why they were
    re-encoded (the stored format, or the EXIF orientation; '' for the stored bytes)."""
    try:
        if rule.formats is not None and stored_format not in rule.formats:
            why = stored_format
        else:
            turn = pixels.orientation(pixels.open_bytes(data)) if rule.turned else 1
            if turn == 1:
                return data, stored_format, ""
            why = f"EXIF orientation {turn}"
        return pixels.as_jpeg(pixels.decode(bytes(data)), QUALITY), "JPEG", why
    except pixels.DECODE_ERRORS as e:
        raise InputError(
            f"cannot be re-encoded as an upright JPEG ({type(e).__name__}: {e})", field="image_id", value=image_id
        ) from None


def _views(images: pa.Array) -> Iterator[memoryview]:
    """Each value of a binary array, without copying."""
    offsets = np.frombuffer(images.buffers()[1], np.int32)[images.offset : images.offset + len(images) + 1]
    data = memoryview(images.buffers()[2] or b"")
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        yield data[start:end]


class Spill:
    """Bytes arriving in store order, handed back in export order. Positions are cut into runs
    of about BUCKET_BYTES and each run's bytes go to a file of its own, so reading positions in
    order holds one run in memory at a time, and each file is read once and removed."""

    def __init__(self, folder: Path, count: int, mean_bytes: float):
        self.folder = folder
        folder.mkdir(parents=True)
        self.per = max(1, int(BUCKET_BYTES // max(mean_bytes, 1)))
        self.offset = np.zeros(count, np.int64)
        self.length = np.zeros(count, np.int64)
        self.formats = np.empty(count, object)
        self.written: dict[int, int] = {}
        self.open: OrderedDict[int, BinaryIO] = OrderedDict()
        self.loaded, self.data = -1, memoryview(b"")

    def _file(self, bucket: int) -> BinaryIO:
        f = self.open.pop(bucket, None)
        if f is None:
            if len(self.open) >= OPEN_BUCKETS:
                self.open.popitem(last=False)[1].close()
            f = open(self.folder / str(bucket), "ab")
        self.open[bucket] = f
        return f

    def add(self, positions: np.ndarray, images: pa.Array, formats: pa.Array) -> None:
        self.formats[positions] = formats.to_numpy(zero_copy_only=False)
        for position, view in zip(positions.tolist(), _views(images)):
            bucket = position // self.per
            self.offset[position] = self.written.get(bucket, 0)
            self.length[position] = len(view)
            self.written[bucket] = self.offset[position] + len(view)
            self._file(bucket).write(view)

    def close(self) -> None:
        while self.open:
            self.open.popitem()[1].close()

    def get(self, position: int) -> memoryview:
        """The bytes at ``position``; positions must be asked in increasing order."""
        bucket = position // self.per
        if bucket < self.loaded:
            raise RuntimeError(f"spill bucket {bucket} asked after {self.loaded}: positions must increase")
        if bucket != self.loaded:
            path = self.folder / str(bucket)
            self.data = memoryview(path.read_bytes() if path.exists() else b"")
            path.unlink(missing_ok=True)
            self.loaded = bucket
        start = int(self.offset[position])
        return self.data[start : start + int(self.length[position])]


def spill(data: Dataset, rows: pd.DataFrame, folder: Path) -> Spill:
    """Every image of ``rows`` (in export order) read from the store into a Spill."""
    shards = {data.workdir / loc for loc in rows.location.unique()}
    sizes = [
        (f.metadata, f.schema_arrow.get_field_index("image"))
        for f in (store.open_shard(p, STORE_COLUMNS) for p in shards)
    ]
    stored = sum(m.row_group(g).column(c).total_compressed_size for m, c in sizes for g in range(m.num_row_groups))
    count = sum(m.num_rows for m, _ in sizes)
    result = Spill(folder, len(rows), stored / max(count, 1))
    try:
        for positions, images, formats in scan_store(data.workdir, rows, "read store"):
            result.add(positions, images, formats)
    finally:
        result.close()
    return result


def cut(sizes: np.ndarray, limit: int) -> np.ndarray:
    """Shard number of each row: a shard takes rows while its bytes stay within ``limit`` (a row
    larger than ``limit`` gets a shard of its own)."""
    shard = np.empty(len(sizes), np.int64)
    number = total = 0
    for i, size in enumerate(sizes.tolist()):
        if total and total + size > limit:
            number, total = number + 1, 0
        total += size
        shard[i] = number
    return shard


def binary(views: list[memoryview]) -> pa.Array:
    """One binary array of a row group's images, from one joined buffer."""
    offsets = np.zeros(len(views) + 1, np.int32)
    np.cumsum([len(v) for v in views], out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(views), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(views))])


def class_names(classes: pd.DataFrame) -> list[str]:
    """ClassLabel names: the lemmas, with the wnid added where two classes share them (crane the
    bird and the machine), since ClassLabel names must be unique."""
    shared = classes.lemmas.duplicated(keep=False)
    return [f"{text} ({w})" if twice else text for text, w, twice in zip(classes.lemmas, classes.wnid, shared)]


OBJECTS = pa.struct([pa.field("bbox", pa.list_(pa.list_(pa.float32(), 4))), pa.field("category", pa.list_(pa.int64()))])


def hf_schema(classes: pd.DataFrame, boxed: bool) -> pa.Schema:
    """imagenet-1k's features, and ``objects`` where the dataset has boxes: a Sequence of
    {bbox: 4 float32, category: ClassLabel}, the form of ``datasets``' detection datasets."""
    names = class_names(classes)
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    fields = [
        pa.field("image", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
        pa.field("label", pa.int64()),
    ]
    if boxed:
        bbox = {"feature": {"dtype": "float32", "_type": "Value"}, "length": 4, "_type": "Sequence"}
        category = {"names": names, "_type": "ClassLabel"}
        features["objects"] = {"feature": {"bbox": bbox, "category": category}, "_type": "Sequence"}
        fields.append(pa.field("objects", OBJECTS))
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})


def hf_objects(boxes: list[list[list[int]]], labels: np.ndarray) -> pa.Array:
    """Each row's boxes as ``objects``; every box is of the image's class."""
    return pa.array(
        [{"bbox": b, "category": [int(label)] * len(b)} for b, label in zip(boxes, labels.tolist())], OBJECTS
    )


def write_hf(data: Dataset, out: Path, spill_folder: Path, shard_bytes: int) -> str:
    """The shards, under ``out`` (``export/hf/data``); the card beside them is ``run_hf_card``'s."""
    boxed = bool(data.boxes)
    schema = hf_schema(data.classes, boxed)
    rows = export_order(data.rows)
    labels = rows.label.to_numpy()
    spilled = spill(data, rows, spill_folder)
    names = np.array([hf_name(f, kind) for f, kind in zip(rows.file, spilled.formats)], object)
    out.mkdir(parents=True)
    bar = progress(total=len(rows), desc="write hf", unit="img")
    files = 0
    for split in SPLITS:
        part = rows.index[rows.split == split].to_numpy()
        if not len(part):
            continue
        shard_of = cut(spilled.length[part], shard_bytes)
        count = int(shard_of[-1]) + 1
        for shard in range(count):
            path = out / f"{HF_SPLITS[split]}-{shard:05d}-of-{count:05d}.parquet"
            members = part[shard_of == shard]
            with pq.ParquetWriter(
                path,
                schema,
                compression={"image.bytes": "none", "image.path": "snappy", "label": "snappy"},
                use_dictionary=["label"],
                write_statistics=["label"],
            ) as writer:
                for start in range(0, len(members), HF_ROW_GROUP):
                    chunk = members[start : start + HF_ROW_GROUP]
                    image = pa.StructArray.from_arrays(
                        [binary([spilled.get(p) for p in chunk]), pa.array(names[chunk], pa.string())],
                        fields=list(schema.field("image").type),
                    )
                    columns = [image, pa.array(labels[chunk])]
                    if boxed:
                        columns.append(hf_objects(data.boxes_of(rows.image_id.to_numpy()[chunk]), labels[chunk]))
                    writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                    bar.update(len(chunk))
        files += count
    bar.close()
    shutil.rmtree(spill_folder)
    return _summary("hf", rows, int(spilled.length.sum()), files)


def hf_name(file: str, stored_format: str) -> str:
    """An image's ``path`` in the hf layout: imagenet-1k's ``.JPEG`` name for a JPEG, the real
    format's extension for anything else (hf keeps the stored bytes)."""
    name = file.rsplit("/", 1)[-1]
    if stored_format == "JPEG":
        return name
    return f"{name.rsplit('.', 1)[0]}.{EXTENSIONS.get(stored_format, stored_format.lower())}"


def export_order(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows hf and wds write: split by split, each in image_id order, numbered from 0. Image
    ids are hashes (16 hex digits of sha256), so this is a fixed shuffle that mixes the classes
    in every shard and every run of rows, as webdataset's ImageNet recipe shuffles before
    writing: a streamed or unshuffled reader does not see one class at a time."""
    rank = rows.split.map(SPLITS.index)
    ordered = rows.assign(rank=rank).sort_values(["rank", "image_id"], kind="stable")
    return ordered.drop(columns="rank").reset_index(drop=True)


HF_FOLDER = f"{EXPORT}/hf"
HF_README, HF_LICENSE = "README.md", "LICENSE.md"  # the card, and the licences an ``other`` licence links


def run_hf_card(layout: Layout, force: bool) -> None:
    """The hf export's ``README.md``: the dataset card (``manifests.card``) with the Hub's front
    matter, the ``configs`` and ``dataset_info`` that ``datasets`` reads, and a section on this
    layout; its figures in ``card/`` and ``LICENSE.md`` beside it, so the folder pushed to the
    Hub shows them. A stage of its own, so that a new baseline run or report rewrites the card,
    not the shards."""
    shards = layout.export("hf") / "data"
    stage = runner.Stage(
        name="export-hf-card",
        workdir=layout.root,
        outputs=tuple(f"{HF_FOLDER}/{name}" for name in (HF_README, CARD_FIGURES, HF_LICENSE)),
        inputs=(shards, *card.manifest_tables(layout), *card.optional_inputs(layout)),
        settings={"samples_per_class": card.SAMPLES_PER_CLASS, "sample_classes": card.SAMPLE_CLASSES},
    )

    def build(out: Path) -> str:
        target = out / HF_FOLDER
        target.mkdir(parents=True)
        facts = card.load_facts(layout)
        metadata = hf_metadata(shards)
        return card.write_card(
            facts, target, HF_README, metadata=metadata, usage=hf_usage(facts), license_file=HF_LICENSE
        )

    runner.run(stage, build, force=force)


def hf_metadata(shards: Path) -> dict:
    """The front matter ``datasets`` reads: ``configs`` (which files hold which split, so that
    ``load_dataset(<folder>)`` finds them) and ``dataset_info`` (the features, in the YAML form
    of ``datasets`` 2.x, which later releases read alike; each split's examples and the shards'
    bytes, from the shards themselves)."""
    files: dict[str, list[Path]] = {}
    for path in sorted(shards.glob("*.parquet")):
        files.setdefault(path.name.split("-", 1)[0], []).append(path)
    splits = [s for s in HF_SPLITS.values() if s in files]
    features = json.loads(pq.read_schema(files[splits[0]][0]).metadata[b"huggingface"])["info"]["features"]
    return {
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}],
        "dataset_info": {
            "features": hf_yaml_features(features),
            "splits": [
                {"name": s, "num_examples": sum(pq.read_metadata(p).num_rows for p in files[s])} for s in splits
            ],
            "download_size": sum(p.stat().st_size for group in files.values() for p in group),
        },
    }


def hf_yaml_features(features: dict) -> list[dict]:
    """``hf_schema``'s features as the card's ``dataset_info.features`` list."""

    def label(names: list[str]) -> dict:
        return {"class_label": {"names": {str(i): n for i, n in enumerate(names)}}}

    found = [{"name": "image", "dtype": "image"}, {"name": "label", "dtype": label(features["label"]["names"])}]
    if "objects" in features:
        category = features["objects"]["feature"]["category"]["names"]
        found.append(
            {
                "name": "objects",
                "sequence": [
                    {"name": "bbox", "sequence": "float32", "length": 4},
                    {"name": "category", "dtype": label(category)},
                ],
            }
        )
    return found


def hf_usage(facts: card.Facts) -> list[str]:
    """The card's section on this layout: its columns, numbering and order, and how to load it."""
    boxed = facts.rows.image_id.isin(facts.boxes.image_id) if facts.boxes is not None else None
    return [
        "## This export",
        "",
        f"Exported by synsetforge {__version__} in the layout of the Hugging Face imagenet-1k dataset: "
        "`data/{train,validation,test}-NNNNN-of-MMMMM.parquet` with `image` (bytes and file name) and `label`, "
        f"a ClassLabel over {len(facts.classes):,} classes in sorted-wnid order (the 0-based numbering of "
        "torchvision, Kaggle and imagenet-1k). Class names are the WordNet lemmas, the wnid added where two "
        "classes share them. Unlike imagenet-1k, whose test labels are -1, the test split keeps its labels. "
        "Rows are in image_id order, a fixed shuffle: every shard mixes the classes. Each image keeps its own "
        "licence and owner; the shards do not carry them: the dataset's manifests do (`manifests/<split>.parquet`, "
        f"`source_url` and `license`), and `{HF_LICENSE}` counts the licences.",
        "",
        hf_boxes_text(int(boxed.sum()) if boxed is not None else 0, len(facts.rows)),
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("<this folder, or its Hub repository>")',
        "```",
        "",
    ]


def hf_boxes_text(boxed: int, images: int) -> str:
    if not boxed:
        return "This dataset has no object boxes: there is no `objects` column."
    return (
        f"Object boxes: `objects` holds each image's boxes, `bbox` = {BOX_FORMAT} (not COCO's [x, y, width, "
        "height]), and `category`, the ClassLabel of the boxed object, which is the image's class. "
        f"{boxed:,} of {images:,} images have boxes; the others have empty lists. "
        "The boxes are in the upright image: the stored bytes keep their EXIF orientation, which "
        "`datasets` 2.19 and later apply as they decode (with an older release, or Pillow on "
        "`image['bytes']`, apply `PIL.ImageOps.exif_transpose` first)."
    )


WDS_INFO = "_info.json"  # timm's ReaderWds: each split's shards and sample counts
WDS_CLASSES = "classes.json"  # label, wnid and name of every class


def write_wds(data: Dataset, out: Path, spill_folder: Path, shard_bytes: int) -> str:
    rows = export_order(data.rows)
    keys = [f.rsplit("/", 1)[-1].rsplit(".", 1)[0] for f in rows.file]
    names = class_names(data.classes)
    columns = {c: rows[c].tolist() for c in ("image_id", "wnid", "label", "width", "height")}
    columns["class_name"] = [names[label] for label in columns["label"]]
    if data.boxes:
        columns["boxes"] = data.boxes_of(rows.image_id)
    spilled = spill(data, rows, spill_folder)
    out.mkdir(parents=True)
    bar = progress(total=len(rows), desc="write wds", unit="img")
    files = written = 0
    info = {"name": data.workdir.name, "num_classes": len(names), "splits": {}}
    for split in SPLITS:
        part = rows.index[rows.split == split].to_numpy()
        shard_of = cut(spilled.length[part] + TAR_OVERHEAD, shard_bytes)
        shards = np.unique(shard_of).tolist()
        if shards:
            info["splits"][HF_SPLITS[split]] = {
                "name": HF_SPLITS[split],
                "num_samples": len(part),
                "filenames": [f"{split}-{shard:06d}.tar" for shard in shards],
                "shard_lengths": [int((shard_of == shard).sum()) for shard in shards],
            }
        for shard in shards:
            with tarfile.open(out / f"{split}-{shard:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
                tar.copybufsize = 2**20
                for p in part[shard_of == shard].tolist():
                    meta = {c: values[p] for c, values in columns.items()}
                    if data.boxes:
                        meta["box_format"] = BOX_FORMAT
                    image, kind, _ = exported(spilled.get(p), spilled.formats[p], RULES["wds"], meta["image_id"])
                    _add(tar, f"{keys[p]}.{EXTENSIONS.get(kind, kind.lower())}", image)
                    written += len(image)
                    _add(tar, f"{keys[p]}.cls", str(meta["label"]).encode())
                    _add(tar, f"{keys[p]}.json", json.dumps(meta).encode())
                    bar.update()
            files += 1
    bar.close()
    shutil.rmtree(spill_folder)
    (out / WDS_INFO).write_text(json.dumps(info, indent=1) + "\n")
    classes = [{"label": int(i), "wnid": w, "name": n} for i, w, n in zip(data.classes.label, data.classes.wnid, names)]
    (out / WDS_CLASSES).write_text(json.dumps(classes, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return _summary("wds", rows, written, files)


def _add(tar: tarfile.TarFile, name: str, data: bytes | memoryview) -> None:
    """A member with fixed owner and time, so the same images give the same tar."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def write_ilsvrc(data: Dataset, out: Path, prefix: str, previous: Path | None, tree: str = TREES[0]) -> str:
    root = out / KAGGLE_ROOT if tree == "kaggle" else out
    rows = data.rows.assign(path=ilsvrc_paths(data.rows, tree))
    for split in SPLITS:
        (root / split).mkdir(parents=True)
    # An empty class keeps its folder: ImageFolder's indices must not shift.
    for split in SPLITS if tree == "folders" else ("train",):
        for wnid in data.classes.wnid:
            (root / split / wnid).mkdir()
    converted = np.full(len(rows), "", object)  # why each file was re-encoded, '' where not
    linked = np.zeros(len(rows), bool)
    if previous is not None:
        linked = link_previous(rows, previous, root, converted)
    todo = rows[~linked].reset_index(drop=True)
    paths, ids, where = todo.path.to_numpy(), todo.image_id.to_numpy(), np.flatnonzero(~linked)
    written = 0
    for positions, images, kinds in scan_store(data.workdir, todo, "write ilsvrc"):
        for position, view, kind in zip(positions.tolist(), _views(images), kinds.to_pylist()):
            image, _, converted[where[position]] = exported(view, kind, RULES["ilsvrc"], ids[position])
            (root / paths[position]).write_bytes(image)
            written += len(image)
    write_ilsvrc_metadata(data, rows.assign(converted=converted), out, prefix, tree)
    summary = _summary("ilsvrc", rows, written, len(rows)) + f", {tree} tree"
    return summary + (f", {int(linked.sum())} hard-linked from the previous export" if previous is not None else "")


def ilsvrc_paths(rows: pd.DataFrame, tree: str) -> pd.Series:
    """Each file's path below the split folders' parent (``files.csv``'s ``file``): train's in
    class folders; val's and test's in class folders too for ``folders``, else flat."""
    flat = rows.split + "/" + rows.file
    if tree != "folders":
        return flat
    return flat.where(rows.split == "train", rows.split + "/" + rows.wnid + "/" + rows.file)


def link_previous(rows: pd.DataFrame, previous: Path, root: Path, converted: np.ndarray) -> np.ndarray:
    """Hard-link the files of the previous export holding the same image (image_id and sha256),
    whatever its tree, into ``root``; True where linked, and ``converted`` set to what the
    previous export said of them. An export whose files.csv has no ``converted`` column wrote the
    stored bytes under every name: nothing of it is linked."""
    index = previous / "files.csv"
    linked = np.zeros(len(rows), bool)
    if not index.exists():
        return linked
    before = pd.read_csv(index, dtype=str, keep_default_na=False)
    if "converted" not in before.columns:
        return linked
    before = before.set_index(["image_id", "sha256"])
    before = before[~before.index.duplicated()]
    found = before.reindex(pd.MultiIndex.from_arrays([rows.image_id, rows.sha256]))
    source = kaggle_root(previous)  # files.csv names files below the split folders' parent
    for i, (old, why, new) in enumerate(zip(found.file, found.converted, rows.path.to_numpy())):
        if isinstance(old, str):
            try:
                os.link(source / old, root / new)
                linked[i], converted[i] = True, why
            except OSError:  # gone, another filesystem, or no hard links here: write it
                pass
    return linked


def write_ilsvrc_metadata(data: Dataset, rows: pd.DataFrame, out: Path, prefix: str, tree: str) -> None:
    classes = data.classes
    (out / "LOC_synset_mapping.txt").write_text("".join(f"{w} {t}\n" for w, t in zip(classes.wnid, classes.lemmas)))
    (out / "classes.txt").write_text("".join(f"{w}\n" for w in classes.wnid))
    ids = devkit_ids(classes.wnid)
    for split, name in DEVKIT_SPLITS.items():
        held = rows[rows.split == split].sort_values("file")
        (out / f"{prefix}_{name}_labels.txt").write_text("".join(f"{label}\n" for label in held.label))
        if ids is not None:  # the devkit's name only with the devkit's numbering
            (out / f"{prefix}_{name}_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in held.wnid))
    if ids is not None:
        (out / "map_clsloc.txt").write_text(map_clsloc(classes.wnid))
    if tree == "kaggle":
        (out / SAMPLE_SUBMISSION).write_text(sample_submission(data, rows))
    write_ilsvrc_boxes(data, rows, out, out / "ILSVRC" if tree == "kaggle" else out)
    rows[["path", "image_id", "label", "wnid", "sha256", "converted"]].rename(columns={"path": "file"}).to_csv(
        out / "files.csv", index=False
    )
    (out / "README.txt").write_text(ilsvrc_readme(data, rows, prefix, tree, ids))


def sample_submission(data: Dataset, rows: pd.DataFrame) -> str:
    """Kaggle's ``LOC_sample_submission.csv``, where its scripts find the test ImageIds (and
    fill in their predictions): every test file's stem in file-name order, with a placeholder
    prediction, the first class alone (a classification answer: no box is made up)."""
    stems = sorted(Path(f).stem for f in rows.file[rows.split == "test"])
    first = data.classes.wnid.iloc[0]
    return ",".join(HEADER) + "\n" + "".join(f"{stem},{first}\n" for stem in stems)


def write_ilsvrc_boxes(data: Dataset, rows: pd.DataFrame, out: Path, base: Path) -> None:
    """The boxed images' ``Annotations/CLS-LOC`` XML (below ``base``) and ``LOC_<split>_solution.csv``
    rows (in ``out``), in file-name order; a split without a boxed image gets no solution file."""
    boxed = rows[rows.image_id.isin(data.boxes.keys())]
    for split in SPLITS:
        held = boxed[boxed.split == split]
        held = held.assign(stem=held.file.map(lambda f: Path(f).stem)).sort_values("stem")
        solution = []
        for stem, wnid, width, height, image_id in zip(held.stem, held.wnid, held.width, held.height, held.image_id):
            labelled = [Labelled(wnid, tuple(box)) for box in data.boxes[image_id]]
            xml = base / annotation_name(split, wnid, stem)
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_bytes(voc_xml(wnid if split == "train" else split, stem, int(width), int(height), labelled))
            solution.append((stem, labelled))
        if solution:
            (out / f"LOC_{split}_solution.csv").write_text(loc_csv(solution))


TREE_TEXT = {
    "folders": "the ILSVRC-2012 layout with val/ and test/ in class folders as train/ is (the layout valprep.sh makes)",
    "flat": "the ILSVRC-2012 layout, val/ and test/ flat as in its tarballs",
    "kaggle": "the tree of Kaggle's ImageNet Object Localization Challenge download",
}


def ilsvrc_readme(data: Dataset, rows: pd.DataFrame, prefix: str, tree: str, ids: dict[str, int] | None) -> str:
    counts = rows.split.value_counts()
    root = f"{KAGGLE_ROOT.as_posix()}/" if tree == "kaggle" else ""
    nested = "<wnid>/" if tree == "folders" else ""
    lines = [
        f"{data.workdir.name}: {len(data.classes)} classes, exported by synsetforge {__version__} in {TREE_TEXT[tree]}.",
        "",
        f"{root}train/<wnid>/<wnid>_<n>.JPEG  {counts.get('train', 0)} images; n from 1 within the class",
        f"{root}val/{nested}{prefix}_val_<8 digits>.JPEG  {counts.get('val', 0)} images; numbered from 1 in image_id "
        "order, which mixes the classes",
        f"{root}test/{nested}{prefix}_test_<8 digits>.JPEG  {counts.get('test', 0)} images; numbered likewise",
        "",
        *ilsvrc_tree_text(data, rows, prefix, tree),
        "",
        "Label numbering: line i (from 0) of LOC_synset_mapping.txt (wnid, then its lemmas) and of classes.txt",
        "(the wnid alone) is label i. Labels are 0-based in sorted-wnid order: the numbering of torchvision's",
        "ImageFolder and timm on train/ (they sort the folder names), Kaggle and Hugging Face.",
        f"{prefix}_validation_labels.txt and {prefix}_test_labels.txt: one label per image, 0-based, in file-name order.",
        "",
        *devkit_text(data, prefix, ids),
        "",
        *ilsvrc_boxes_text(data, rows, "ILSVRC/" if tree == "kaggle" else ""),
        f"files.csv gives each file (its path below {root or 'this folder'}), its image_id, label, wnid and",
        "sha256 (of the stored image), to find its row in the manifests, and why the file was re-encoded",
        "(empty where it holds the stored bytes).",
        "",
        "Every file is a JPEG and upright (readers such as torchvision's ImageFolder ignore EXIF",
        "orientation). Files hold the image store's bytes as they are, except images stored in another",
        f"format or turned by their EXIF orientation, re-encoded from their upright pixels at quality {QUALITY}.",
    ]
    reasons = rows.converted[rows.converted != ""].value_counts()
    if len(reasons):
        shown = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        lines.append(f"Re-encoded: {shown}.")
    for split in SPLITS if tree == "folders" else ("train",):
        missing = sorted(set(data.classes.wnid) - set(rows.wnid[rows.split == split]))
        if missing:
            lines.append(f"Classes with no {split} image (their {split}/ folder is empty): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


def ilsvrc_tree_text(data: Dataset, rows: pd.DataFrame, prefix: str, tree: str) -> list[str]:
    """How the tree's readers label val and test."""
    if tree == "folders":
        return [
            "Every split is in class folders, so folder readers label every image: torchvision's",
            "ImageFolder('<this folder>/val') and timm's create_dataset('', root='<this folder>', split='validation').",
            "Every class has a folder in every split, an empty one where it has no image there: ImageFolder",
            "numbers them all (give it allow_empty=True where one is empty); timm numbers only the folders",
            "holding images, so give it class_map='<this folder>/classes.txt' to keep these labels in every case.",
        ]
    if tree == "flat":
        return [
            "val/ and test/ are flat, as in ILSVRC-2012's tarballs: a folder reader (ImageFolder, timm) cannot",
            f"label them. Their labels: {prefix}_validation_labels.txt (below), files.csv, or export with TREE=folders.",
        ]
    boxed = rows.image_id.isin(data.boxes.keys())
    val = rows.split == "val"
    lines = [
        "Kaggle's tree: the images under ILSVRC/Data/CLS-LOC/ (val/ and test/ flat), the boxes' XML under",
        "ILSVRC/Annotations/CLS-LOC/, and beside ILSVRC/ LOC_synset_mapping.txt (line i is class i, the index",
        "Kaggle scripts use), LOC_<split>_solution.csv (the boxed images) and LOC_sample_submission.csv",
        "(every test ImageId with a placeholder prediction, the first class, for a script to fill in).",
    ]
    labelled = f"{prefix}_validation_labels.txt and files.csv label every file"
    if not (val & boxed).any():
        lines.append(f"No val image has boxes, so there is no LOC_val_solution.csv to label val by; {labelled}.")
    elif (val & ~boxed).any():
        lines += [
            f"LOC_val_solution.csv lists {int((val & boxed).sum())} of the {int(val.sum())} val images, those with boxes",
            "(Kaggle's lists them all: every ILSVRC val image has boxes), so a script that labels val from it",
            f"sees only those; {labelled}.",
        ]
    return lines


def devkit_text(data: Dataset, prefix: str, ids: dict[str, int] | None) -> list[str]:
    """What the devkit-format files hold, or why there are none."""
    if ids is None:
        foreign = [w for w in data.classes.wnid if w not in devkit_classes()]
        return [
            f"No file has the devkit's name ({prefix}_validation_ground_truth.txt): {len(foreign)} of the classes",
            f"(first {foreign[0]}) are not ILSVRC-2012 classes, so the devkit's numbering (ILSVRC2012_ID, meta.mat)",
            f"has no ID for them. Use {prefix}_validation_labels.txt with classes.txt.",
        ]
    lines = [
        f"{prefix}_validation_ground_truth.txt and {prefix}_test_ground_truth.txt are in the devkit's format and",
        "numbering: one ILSVRC2012_ID per image in file-name order, the IDs of the devkit's meta.mat and of",
        "map_clsloc.txt (beside, the devkit's table: wnid, ID, name), NOT the 0-based labels above: the ID",
        "order is not sorted-wnid order (ID 1 is n02119789, kit fox). The real devkit has no test file.",
    ]
    if len(ids) < len(devkit_classes()):
        lines.append(
            f"This dataset has {len(ids)} of the {len(devkit_classes())} ILSVRC-2012 classes: they keep their "
            "devkit IDs (so the IDs have gaps), and map_clsloc.txt lists those."
        )
    return lines


def ilsvrc_boxes_text(data: Dataset, rows: pd.DataFrame, base: str = "") -> list[str]:
    if not data.boxes:
        return [
            "This dataset has no object boxes: there is no Annotations/ folder and no LOC_<split>_solution.csv.",
            "files.csv labels every file (its wnid column), val and test included.",
        ]
    boxed = rows[rows.image_id.isin(data.boxes.keys())]
    counts = ", ".join(f"{s} {int((boxed.split == s).sum())} of {int((rows.split == s).sum())}" for s in SPLITS)
    return [
        f"Object boxes of the images that have them ({counts} images), as ILSVRC-2012 and Kaggle ship them:",
        f"{base}Annotations/CLS-LOC/train/<wnid>/<file name>.xml and {base}Annotations/CLS-LOC/<val|test>/<file name>.xml",
        "(PASCAL VOC XML), and LOC_<split>_solution.csv (ImageId,PredictionString: 'wnid xmin ymin xmax ymax '",
        "per box). Both hold VOC coordinates: pixels of the file, 1-based, xmax and ymax inclusive. An image",
        "without boxes has no XML and no LOC row: no box is invented; files.csv labels every file.",
    ]


def _summary(name: str, rows: pd.DataFrame, size: int, files: int) -> str:
    counts = rows.split.value_counts()
    return (
        f"{name}: train {counts.get('train', 0)}, val {counts.get('val', 0)}, test {counts.get('test', 0)} images, "
        f"{size / 1e6:.1f} MB in {files} files"
    )
