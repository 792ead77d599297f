"""The splits to train on: the manifests stage's tables, or a packed export (``packed``).

``<data>/<subset>/manifests/{train,val,test}.parquet`` (or ``--manifests DIR``) hold the
MANIFEST columns image_id, label, wnid, location; ``location`` names the shard holding the
bytes relative to the dataset folder (an image-store shard, ``image: binary``, or a packed
shard), where the row is found by ``image_id`` (or by the stem of ``image.path``).
``classes.parquet`` beside them gives the class count and names; ``boxes.parquet``, where
the dataset has object boxes (BOX_MANIFEST: one row per box), gives each split's boxes.

The trainer takes the splits as the manifests stage made them: with no manifests it stops
and says to run that stage (``make manifests``, ``make manifests UNVERIFIED=1`` before any
annotation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schemas, store
from pipeline.boxes import COLUMNS as BOX_EDGES
from pipeline.boxes import problem
from pipeline.errors import InputError
from pipeline.layout import SPLITS, Layout
from pipeline.tables import read_table

from .dataset import BadRows, Classes, DataSet, Shard, Split, SplitBoxes, read_classes
from .packed import read_packed

MANIFEST_COLUMNS = [
    "image_id",
    "label",
    "wnid",
    "location",
    "width",
    "height",
]  # of schemas.MANIFEST, what the trainer reads
BOX_COLUMNS = ["image_id", "split", "label", *BOX_EDGES, "width", "height"]  # of schemas.BOX_MANIFEST
NO_MANIFESTS = "no train manifest: run make manifests (make manifests UNVERIFIED=1 without annotation)"


def load_dataset(
    root: Path, *, manifests: Path | None = None, packed: Path | None = None, skip_bad: bool = False
) -> DataSet:
    """The dataset ``root``'s splits: from ``packed`` when given, else from the manifests in
    ``manifests`` (default ``root/manifests``). Bad rows raise, or are counted with ``skip_bad``."""
    bad = BadRows(skip_bad)
    if packed is not None:
        return read_packed(Path(packed), bad)
    root = Path(root)
    layout = Layout(root)
    folder = Path(manifests) if manifests is not None else layout.manifests

    def in_folder(path: Path) -> Path:  # a manifests file, under the name it has in manifests/
        return folder / path.relative_to(layout.manifests)

    tables = {}
    for name in SPLITS:
        path = in_folder(layout.manifest(name))
        if path.exists():
            tables[name] = (_read_manifest(path), path)
    if "train" not in tables:
        raise InputError(NO_MANIFESTS, file=in_folder(layout.manifest("train")))
    classes_file = in_folder(layout.classes)
    classes = (
        read_classes(classes_file)
        if classes_file.exists()
        else _classes_from_manifests({n: t for n, (t, _) in tables.items()}, folder)
    )
    boxes_file = in_folder(layout.box_manifest)
    boxes = _split_boxes(boxes_file, tables) if boxes_file.exists() else {}
    shards: list[Shard] = []
    splits = {
        name: _resolve(name, table, path, root, classes, shards, bad, boxes.get(name))
        for name, (table, path) in tables.items()
    }
    return DataSet(root, classes, shards, splits, "manifests")


def _read_manifest(path: Path) -> pa.Table:
    """The columns the trainer reads, checked against ``schemas.MANIFEST``: errors name the file
    and the field (and the row of a null)."""
    return read_table(path, schemas.MANIFEST, columns=MANIFEST_COLUMNS)


def _classes_from_manifests(tables: dict[str, pa.Table], folder: Path) -> Classes:
    wnid_of: dict[int, str] = {}
    for table in tables.values():
        for label, wnid in zip(table.column("label").to_pylist(), table.column("wnid").to_pylist()):
            if label >= 0:
                wnid_of.setdefault(label, wnid or str(label))
    count = max(wnid_of) + 1 if wnid_of else 0
    wnids = [wnid_of.get(i, str(i)) for i in range(count)]
    return Classes(wnids, wnids, f"the labels of {folder} (no classes.parquet)")


def _split_boxes(path: Path, tables: dict[str, tuple[pa.Table, Path]]) -> dict[str, SplitBoxes]:
    """``boxes.parquet`` as each split's boxes, in manifest row order (none without a box row).
    A box of an image its split's manifest lacks, or of another label or image size, or
    outside its image, is an error naming the row: a box that silently moved would teach the
    network wrong places."""
    table = read_table(path, schemas.BOX_MANIFEST, columns=BOX_COLUMNS).to_pydict()
    found: dict[str, list[list[tuple]]] = {name: [[] for _ in range(t.num_rows)] for name, (t, _) in tables.items()}
    rows = {name: {i: r for r, i in enumerate(t.column("image_id").to_pylist())} for name, (t, _) in tables.items()}
    sizes = {
        name: np.stack([t.column("width").to_numpy(), t.column("height").to_numpy()], 1).astype(np.int64)
        for name, (t, _) in tables.items()
    }
    labels = {name: t.column("label").to_numpy() for name, (t, _) in tables.items()}
    for r, (split, image_id) in enumerate(zip(table["split"], table["image_id"])):
        at = rows.get(split, {}).get(image_id)
        if at is None:
            raise InputError(
                f"not an image of the {split} manifest", file=path, row=r, field="image_id", value=image_id
            )
        if table["label"][r] != labels[split][at]:
            raise InputError(
                f"the {split} manifest labels the image {labels[split][at]}",
                file=path,
                row=r,
                field="label",
                value=table["label"][r],
            )
        width, height = sizes[split][at]
        if (table["width"][r], table["height"][r]) != (width, height):
            raise InputError(
                f"the {split} manifest gives the image as {width}x{height}",
                file=path,
                row=r,
                field="width",
                value=f"{table['width'][r]}x{table['height'][r]}",
            )
        box = tuple(table[c][r] for c in BOX_EDGES)
        why = problem(box, int(width), int(height))
        if why is not None:
            raise InputError(why, file=path, row=r, field="xmin", value=box)
        found[split][at].append(box)
    return {
        name: SplitBoxes.of(sizes[name], [np.asarray(b, np.int64).reshape(-1, 4) for b in found[name]])
        for name in tables
    }


def _resolve(
    name: str,
    table: pa.Table,
    path: Path,
    root: Path,
    classes: Classes,
    shards: list[Shard],
    bad: BadRows,
    boxes: SplitBoxes | None = None,
) -> Split:
    """Find each manifest row's bytes (shard and row) and check its label; errors name the row."""
    n = table.num_rows
    image_ids = table.column("image_id").to_pylist()
    labels = table.column("label").to_numpy().astype(np.int64)
    wnids = table.column("wnid").to_pylist()
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
        elif wnids[row] != classes.wnids[label]:
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
        name, labels, shard_of, shard_row, [path], np.zeros(n, dtype=np.int64), np.arange(n), image_ids, counts, boxes
    )
    return split.subset(keep) if not keep.all() else split


def _shard_ids(shard: Shard) -> dict[str, int]:
    """image_id -> row of a shard: an image-store shard's image_id column; a packed shard's
    image_id column, or else the stems of its image.path."""
    if not shard.nested:
        with store.open_shard(shard.path, ["image_id"]) as file:
            ids = file.read(columns=["image_id"]).column(0).to_pylist()
    elif "image_id" in pq.read_schema(shard.path).names:
        ids = pq.read_table(shard.path, columns=["image_id"]).column(0).to_pylist()
    else:
        ids = [
            Path(p).stem if p else None for p in pq.read_table(shard.path, columns=["image.path"]).column(0).to_pylist()
        ]
    out: dict[str, int] = {}
    for row, image_id in enumerate(ids):
        out.setdefault(image_id, row)
    return out
