"""Reading and writing the pipeline's Parquet tables and JSON reports against their declarations
(``pipeline.schemas``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError, PipelineError
from .files import atomic_path, atomic_write_json, publish, temporary_beside
from .schemas import Report


def table_name(schema: pa.Schema) -> str:
    return schema.metadata[b"synsetforge.table"].decode()


def write_table(
    rows: Mapping[str, list] | pa.Table,
    path: Path,
    schema: pa.Schema,
    metadata: Mapping[str, str] | None = None,
    row_group_size: int | None = None,
) -> pa.Table:
    """Write ``rows`` (columns by name, or a table) as ``path`` with exactly ``schema``.

    Extra ``metadata`` (dataset name, settings...) is added to the schema's own. The file is
    written under a temporary name in the same folder and renamed, so no reader (or rerun
    after a kill) ever sees a partial file. Every page carries a CRC32 (Parquet's page
    checksum), so a reader that verifies them finds a damaged page instead of reading it.
    """
    schema = _with_metadata(schema, metadata)
    table = rows.select(schema.names).cast(schema) if isinstance(rows, pa.Table) else _columns(rows, schema)
    with atomic_path(path) as tmp:
        pq.write_table(
            table, tmp, row_group_size=row_group_size, compression=_compression(schema), write_page_checksum=True
        )
    return table


class TableWriter:
    """A table written a row group at a time, for tables too large to hold in memory; like
    ``write_table`` the file appears under its name only when ``close`` has written it all."""

    def __init__(self, path: Path, schema: pa.Schema, metadata: Mapping[str, str] | None = None):
        self.path = Path(path)
        self.schema = _with_metadata(schema, metadata)
        self.tmp = temporary_beside(self.path)
        self.writer = pq.ParquetWriter(
            self.tmp, self.schema, compression=_compression(schema), write_page_checksum=True
        )
        self.rows = 0

    def write(self, rows: Mapping[str, list]) -> None:
        table = _columns(rows, self.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self.writer.close()
        publish(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def _with_metadata(schema: pa.Schema, metadata: Mapping[str, str] | None) -> pa.Schema:
    if not metadata:
        return schema
    return schema.with_metadata({**schema.metadata, **{k.encode(): v.encode() for k, v in metadata.items()}})


def _columns(rows: Mapping[str, list], schema: pa.Schema) -> pa.Table:
    return pa.table({f.name: _array(rows[f.name], f.type) for f in schema}, schema=schema)


def _compression(schema: pa.Schema) -> dict[str, str]:
    """Binary columns hold encoded images: compressing them again costs time and saves nothing."""
    return {f.name: "none" if pa.types.is_binary(f.type) else "snappy" for f in schema}


_INTEGERS = {pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64}


def _array(values: list, type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type=type_)``, with text, bytes and integers built from buffers:
    ten times faster for a shard of images, and ``pa.array`` imports pandas (0.2 s of CPU, in
    every download worker) to ask whether a list is a pandas object. Other types, and values
    that do not fit, go to ``pa.array`` and its errors."""
    if pa.types.is_binary(type_) or pa.types.is_string(type_):
        array = _variable_width(values, type_)
    elif type_ in _INTEGERS:
        array = _integers(values, type_)
    else:
        array = None
    return pa.array(values, type=type_) if array is None else array


def _validity(values: list) -> tuple[pa.Buffer | None, list[bool]]:
    """Arrow's validity bitmap of ``values`` (None where none is null) and which are null."""
    nulls = [v is None for v in values]
    if not any(nulls):
        return None, nulls
    return pa.py_buffer(np.packbits(~np.array(nulls), bitorder="little")), nulls


def _variable_width(values: list, type_: pa.DataType) -> pa.Array | None:
    validity, nulls = _validity(values)
    try:
        if pa.types.is_string(type_):
            items = [b"" if null else v.encode() for v, null in zip(values, nulls)]
        else:
            items = [b"" if null else v for v, null in zip(values, nulls)]
            if not all(type(v) is bytes for v in items):
                return None
    except (AttributeError, UnicodeEncodeError):  # not a str
        return None
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in items], out=offsets[1:])
    if offsets[-1] >= 2**31:
        return None
    return pa.Array.from_buffers(
        type_, len(items), [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(items))]
    )


def _integers(values: list, type_: pa.DataType) -> pa.Array | None:
    dtype = _INTEGERS[type_]
    validity, nulls = _validity(values)
    if validity is not None:
        values = [0 if null else v for v, null in zip(values, nulls)]
    if not values:
        return pa.Array.from_buffers(type_, 0, [None, pa.py_buffer(np.zeros(0, dtype))])
    array = np.array(values)
    limits = np.iinfo(dtype)
    if array.dtype.kind not in "iu" or array.min() < limits.min or array.max() > limits.max:
        return None  # floats, bools, strings, overflow: pa.array says what is wrong
    return pa.Array.from_buffers(type_, len(array), [validity, pa.py_buffer(array.astype(dtype))])


def unreadable(path: Path, error: Exception) -> InputError:
    """A Parquet file that cannot be read (not Parquet, truncated, a corrupted page, a folder),
    as one line: Arrow's messages can run over several."""
    reason = " ".join(str(error).split()) or type(error).__name__
    return InputError(f"not a readable Parquet file ({reason})", file=path)


def check_schema(path: Path, schema: pa.Schema, columns: list[str] | None = None) -> None:
    """Every wanted column of ``schema`` is in the file at ``path``, with its type; reads no data."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such {table_name(schema)} table", file=path)
    try:
        file_schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise unreadable(path, e) from None
    for name in columns or schema.names:
        expected = schema.field(name)
        if name not in file_schema.names:
            raise InputError(f"column missing from the {table_name(schema)} table", file=path, field=name)
        got = file_schema.field(name).type
        if got != expected.type:
            raise InputError(f"column has type {got}, expected {expected.type}", file=path, field=name)


def read_table(path: Path, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """Read ``path`` and check it against ``schema``: every wanted column present, with its type,
    and no nulls where the schema forbids them. Errors name the file, field and row; the pages'
    checksums are verified where the writer stored them (``write_table`` does)."""
    check_schema(path, schema, columns)
    wanted = columns or schema.names
    # ParquetFile, not pq.read_table: that one imports pyarrow.dataset and with it pandas,
    # a quarter of a second of CPU in every process that reads one table (download workers).
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as file:
            table = file.read(columns=wanted)
    except (pa.ArrowException, OSError) as e:
        raise unreadable(path, e) from None
    for name in wanted:
        column = table.column(name)
        if not schema.field(name).nullable and column.null_count:
            row = next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
            raise InputError("null in a required column", file=path, row=row, field=name)
    return table


def _report_problem(doc: object, report: Report) -> tuple[str, str | None]:
    """What is wrong with ``doc`` as ``report`` (the message and the key), or ("", None)."""
    if not isinstance(doc, dict):
        return "a report must be a JSON object", None
    for key, kinds in report.fields.items():
        if key not in doc:
            return f"key missing from the {report.stage} report", key
        allowed = kinds if isinstance(kinds, tuple) else (kinds,)
        value = doc[key]
        if value is None and None in allowed:
            continue
        types = tuple(t for t in allowed if t is not None)
        if float in types:
            types += (int,)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join("null" if t is None else t.__name__ for t in allowed)
            return f"is {type(value).__name__}, the {report.stage} report declares {names}", key
    return "", None


def write_report(path: Path, report: Report, doc: Mapping) -> None:
    """Write ``doc`` as the JSON report ``path``, refusing one that lacks a declared key (a
    renamed key fails here, in the writer's tests, instead of showing as "0" in a reader)."""
    problem, key = _report_problem(dict(doc), report)
    if problem:
        raise PipelineError(f"{path}: {key}: {problem}")
    atomic_write_json(path, doc)


def read_report(path: Path, report: Report, *, missing_ok: bool = False) -> dict | None:
    """The JSON report at ``path``, checked against ``report``; None when absent and ``missing_ok``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return None
        raise InputError(f"no {report.stage} report: run that stage first", file=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not a readable JSON report ({e})", file=path) from None
    problem, key = _report_problem(doc, report)
    if problem:
        raise InputError(problem, file=path, field=key)
    return doc
