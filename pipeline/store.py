"""The image store, ``images/shard-N.parquet`` (``schemas.IMAGES``): its one reader and one writer.

The download stage writes one store shard per candidates part, the importer one per
``SHARD_SIZE`` files; every other stage reads the store through ``read_images`` or
``iter_shards``, selecting the columns it needs (the ``image`` column holds the bytes: leave
it out unless you decode), or the bytes of a few images through ``StoreIndex`` and
``image_bytes``, which read only the row groups holding them. A manifest row points at its
image with a ``location``, the shard's path relative to the dataset folder
(``images/shard-00003.parquet``).

A damaged shard is bad input, never a traceback: whatever pyarrow fails to read (a corrupted
page header, compressed data that no longer decompresses, text that is not UTF-8, a page
checksum that does not match) is an ``InputError`` naming the shard and, where known, the row
group. Image bytes are stored uncompressed, so a flipped bit inside them reads back without
complaint; the readers that hand out bytes (``StoreIndex``, the exports) check them against the
row's sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import schemas
from .errors import InputError
from .layout import IMAGES, SHARD, SHARDS
from .tables import TableWriter, check_schema, read_table

ROW_GROUP = 128  # images per Parquet row group: readers can stream a shard, writers flush it
SHARD_SIZE = 1000  # images per shard where the store is cut by count (the importer), as candidates parts are
READ_ERRORS = (pa.ArrowException, OSError)  # what pyarrow raises for a damaged file
ERROR_CHARS = 160  # of pyarrow's message, in ours: it may quote garbage bytes


def damaged(path: Path, error: Exception, group: int | None = None, what: str = "image store shard") -> InputError:
    """The error for a file pyarrow could not read: one line naming it and the row group."""
    said = "".join(c if c.isprintable() else "?" for c in " ".join(str(error).split()))[:ERROR_CHARS]
    return InputError(
        f"the {what} is damaged ({type(error).__name__}: {said}): restore it, or write it again with the "
        "stage that wrote it (FORCE=1)",
        file=path,
        field=None if group is None else "row group",
        value=group,
    )


class ShardFile(pq.ParquetFile):
    """A store shard (or another Parquet file of images, ``what``: a packed export's shard) open
    for reading, whose reads fail with ``damaged``'s error: page checksums are verified where the
    writer stored them, and every table or batch read is validated in full (the UTF-8 of its text
    columns), so that garbage from a corrupted page stops here."""

    def __init__(self, path: Path, what: str = "image store shard"):
        self.path, self.what = Path(path), what
        try:
            super().__init__(self.path, page_checksum_verification=True)
        except READ_ERRORS as e:
            raise damaged(self.path, e, what=what) from None

    def read(self, columns=None, **options) -> pa.Table:
        return self.read_row_groups(range(self.num_row_groups), columns, **options)

    def read_row_group(self, i, columns=None, **options) -> pa.Table:
        return self.read_row_groups([i], columns, **options)

    def read_row_groups(self, row_groups, columns=None, **options) -> pa.Table:
        groups = list(row_groups)
        try:
            table = super().read_row_groups(groups, columns=columns, **options)
            table.validate(full=True)
        except READ_ERRORS as e:
            raise damaged(self.path, e, self.first_damaged(groups, columns), self.what) from None
        return table

    def iter_batches(self, batch_size=65536, row_groups=None, columns=None, **options) -> Iterator[pa.RecordBatch]:
        groups = list(range(self.num_row_groups) if row_groups is None else row_groups)
        done = 0
        try:
            for batch in super().iter_batches(batch_size, groups, columns, **options):
                batch.validate(full=True)
                done += batch.num_rows
                yield batch
        except READ_ERRORS as e:
            counts = np.cumsum([self.metadata.row_group(g).num_rows for g in groups])
            at = int(np.searchsorted(counts, done, side="right"))
            raise damaged(self.path, e, groups[at] if at < len(groups) else None, self.what) from None

    def first_damaged(self, groups: list[int], columns) -> int | None:
        """Which of ``groups`` fails to read (read one by one: only once a read has failed)."""
        for group in groups:
            try:
                super().read_row_group(group, columns=columns).validate(full=True)
            except READ_ERRORS:
                return group
        return None


def shards(folder: Path) -> list[Path]:
    """The store's shards in ``folder`` (a dataset's ``images/``), in shard order."""
    return sorted(Path(folder).glob(SHARDS))


def shard_path(folder: Path, number: int) -> Path:
    return Path(folder) / SHARD.format(number=number)


def location(shard: Path) -> str:
    """How a manifest names ``shard``: relative to the dataset folder."""
    return f"{IMAGES}/{Path(shard).name}"


def require_shards(folder: Path, hint: str) -> list[Path]:
    """The store's shards, or an error naming the folder and what to run (``hint``)."""
    found = shards(folder)
    if not found:
        raise InputError(f"no image shards ({SHARDS}): {hint}", file=folder)
    return found


def iter_shards(folder: Path, columns: list[str] | None = None) -> Iterator[tuple[Path, pa.Table]]:
    """Each shard's path and its ``columns``, checked against ``schemas.IMAGES``."""
    for path in shards(folder):
        yield path, read_shard(path, columns)


def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One whole shard's ``columns``, checked against ``schemas.IMAGES``; a damaged one is an
    error naming it and its first unreadable row group."""
    try:
        table = read_table(path, schemas.IMAGES, columns=columns)
        table.validate(full=True)  # the UTF-8 of text columns: a damaged page may decompress to garbage
    except (InputError, *READ_ERRORS) as e:
        where = _first_damaged_group(path, columns)
        if where is None and isinstance(e, InputError):
            raise  # not damage: a missing column, a null where none may be
        raise where or damaged(path, e) from None
    return table


def _first_damaged_group(path: Path, columns: list[str] | None) -> InputError | None:
    """``damaged``'s error for the first row group of the shard that fails to read (as
    ``ShardFile`` finds it), or None when the shard reads."""
    if not Path(path).is_file():
        return None
    try:
        with ShardFile(path) as shard:
            shard.read(columns)
    except InputError as e:
        return e
    return None


def read_images(folder: Path, columns: list[str] | None = None, *, with_location: bool = False) -> pa.Table:
    """The whole store's ``columns`` as one table, in shard order; ``with_location`` adds each
    row's ``location`` (its shard, as manifests name it)."""
    wanted = columns or schemas.IMAGES.names
    tables = []
    for path, table in iter_shards(folder, wanted):
        if with_location:
            table = table.append_column("location", pa.array([location(path)] * table.num_rows, pa.string()))
        tables.append(table)
    if not tables:
        fields = [schemas.IMAGES.field(name) for name in wanted]
        if with_location:
            fields.append(pa.field("location", pa.string()))
        return pa.schema(fields).empty_table()
    return pa.concat_tables(tables)


def open_shard(path: Path, columns: list[str]) -> ShardFile:
    """One shard, opened to stream ``columns`` batch by batch or row group by row group (the
    image bytes of a whole store do not fit in memory); a shard that is missing, unreadable or
    lacks a column is an error naming it, and so is a damaged page met while reading."""
    path = Path(path)
    if not path.exists():
        raise InputError("an image store shard named by the manifests is missing", file=path)
    check_schema(path, schemas.IMAGES, columns)
    return ShardFile(path)


def read_row_groups(path: Path, groups: list[int], columns: list[str]) -> pa.Table:
    """Row groups ``groups`` of shard ``path``, whose ``columns`` ``open_shard`` has checked: a
    reader that comes back to a shard for row group after row group (the labelling page, a
    training loader) checks it once, not at every read."""
    with ShardFile(path) as shard:
        return shard.read_row_groups(groups, columns=columns)


def check_bytes(path: Path, group: int, image_id: str, data: bytes, sha256: str) -> None:
    """Stored bytes against the sha256 recorded with them: an image column's pages are not
    compressed, so damage inside them reads back as other bytes rather than as an error."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(
            f"image {image_id}: its bytes do not match their sha256: the image store shard is damaged; "
            "restore it, or rebuild the store with the stage that wrote it (FORCE=1)",
            file=path,
            field="row group",
            value=group,
        )


class StoreIndex:
    """Where images of the store are: each one's shard and the row group holding it, found from
    the shards' image_id columns alone, so that reading one image costs one row group's bytes
    (a labelling page serves an image per request without reading whole shards). ``wanted``
    limits the index to those images; without it the index holds every image."""

    def __init__(self, shards: Iterable[Path], wanted: Collection[str] | None = None):
        keep = None if wanted is None else set(wanted)
        self.where: dict[str, tuple[Path, int]] = {}
        for path in shards:
            path = Path(path)
            with open_shard(path, ["image_id", "image", "sha256"]) as shard:
                ids = shard.read(columns=["image_id"]).column("image_id").to_pylist()
                counts = [shard.metadata.row_group(g).num_rows for g in range(shard.num_row_groups)]
            groups = np.repeat(np.arange(len(counts)), counts).tolist()
            self.where.update((i, (path, g)) for i, g in zip(ids, groups) if keep is None or i in keep)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.where

    def read(self, image_ids: Collection[str]) -> dict[str, bytes]:
        """The stored bytes of those of ``image_ids`` the index holds, reading only the row
        groups that hold them, each checked against its sha256 (``check_bytes``)."""
        wanted = {i for i in image_ids if i in self.where}
        groups: dict[Path, set[int]] = {}
        for image_id in wanted:
            path, group = self.where[image_id]
            groups.setdefault(path, set()).add(group)
        found: dict[str, bytes] = {}
        for path, numbers in groups.items():
            table = read_row_groups(path, sorted(numbers), ["image_id", "image", "sha256"])
            images, sha256 = table.column("image"), table.column("sha256")
            for row, image_id in enumerate(table.column("image_id").to_pylist()):
                if image_id in wanted:
                    data = images[row].as_py()
                    check_bytes(path, self.where[image_id][1], image_id, data, sha256[row].as_py())
                    found[image_id] = data
        return found

    def bytes_of(self, image_id: str) -> bytes:
        """One image's stored bytes (KeyError when the index does not hold it)."""
        if image_id not in self.where:
            raise KeyError(image_id)
        return self.read([image_id])[image_id]


def image_bytes(path: Path, image_ids: Collection[str]) -> dict[str, bytes]:
    """The stored bytes of those of ``image_ids`` that shard ``path`` holds, reading only the
    row groups that hold them (a few sample images must not cost a whole shard's bytes)."""
    return StoreIndex([path], image_ids).read(image_ids)


def empty_rows() -> dict[str, list]:
    """Columns of image rows in the making, one list per ``schemas.IMAGES`` column."""
    return {name: [] for name in schemas.IMAGES.names}


class ShardWriter:
    """One store shard written ``ROW_GROUP`` images at a time; like every table of the pipeline
    it appears under its name only when ``close`` has written it all (``abort`` drops it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows = empty_rows()
        self.writer: TableWriter | None = None
        self.written = 0

    def add(self, row: Mapping[str, object]) -> None:
        for name, values in self.rows.items():
            values.append(row[name])
        if len(self.rows["image_id"]) >= ROW_GROUP:
            self.flush()

    def write(self, rows: Mapping[str, list]) -> None:
        """A whole row group at once (columns by name)."""
        if self.writer is None:
            self.writer = TableWriter(self.path, schemas.IMAGES)
        self.writer.write(rows)
        self.written += len(rows["image_id"])

    def flush(self) -> None:
        if self.rows["image_id"]:
            rows, self.rows = self.rows, empty_rows()
            self.write(rows)

    def close(self) -> None:
        """Publish the shard; one with no image is still written (an empty table), so a finished
        shard is told from one never started."""
        self.flush()
        if self.writer is None:
            self.writer = TableWriter(self.path, schemas.IMAGES)
        self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
