"""Tables are written with, and checked against, the one schema of pipeline.schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_images

from pipeline import schemas, store
from pipeline.errors import InputError, PipelineError
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import Layout
from pipeline.tables import _array, read_report, read_table, write_report, write_table

ROW = {
    "wnid": ["n01440764"],
    "class_index": [0],
    "name": ["tench"],
    "lemmas": [["tench", "Tinca tinca"]],
    "gloss": ["a fish"],
    "lexname": ["noun.animal"],
    "depth": [16],
    "parents": [["n01439121"]],
    "num_hyponyms": [0],
    "is_leaf": [True],
    "queries": [["tench", "tench fish"]],
}


def test_round_trip_keeps_schema_and_metadata(tmp_path):
    path = tmp_path / "synsets.parquet"
    write_table(ROW, path, schemas.SYNSETS, metadata={"subset": "demo"})
    schema = pq.read_schema(path)
    assert schema.metadata[b"synsetforge.table"] == b"synsets" and schema.metadata[b"subset"] == b"demo"
    assert schema.field("class_index").type == pa.int32() and not schema.field("wnid").nullable
    assert read_table(path, schemas.SYNSETS).to_pylist()[0]["lemmas"] == ["tench", "Tinca tinca"]


def good_table(n: int = 1) -> pa.Table:
    return pa.table({k: v * n for k, v in ROW.items()}, schema=schemas.SYNSETS)


def test_a_missing_column_is_named(tmp_path):
    path = tmp_path / "synsets.parquet"
    pq.write_table(good_table().drop_columns(["gloss"]), path)
    with pytest.raises(InputError, match=r"synsets.parquet: gloss: column missing"):
        read_table(path, schemas.SYNSETS)


def test_a_wrong_type_is_named(tmp_path):
    path = tmp_path / "synsets.parquet"
    table = good_table()
    at = table.schema.get_field_index("depth")
    pq.write_table(table.set_column(at, pa.field("depth", pa.string()), pa.array(["deep"])), path)
    with pytest.raises(InputError, match=r"depth: column has type string, expected int32"):
        read_table(path, schemas.SYNSETS)


def test_a_null_in_a_required_column_names_the_row(tmp_path):
    path = tmp_path / "synsets.parquet"
    table = good_table(3)
    at = table.schema.get_field_index("name")
    pq.write_table(table.set_column(at, pa.field("name", pa.string()), pa.array(["a", None, "c"])), path)
    with pytest.raises(InputError, match=r"synsets.parquet: row 1: name: null in a required column"):
        read_table(path, schemas.SYNSETS)


def test_not_parquet_at_all(tmp_path):
    path = tmp_path / "synsets.parquet"
    path.write_bytes(b"PK\x03\x04 this is a zip, not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_table(path, schemas.SYNSETS)


def test_a_folder_or_a_corrupted_page_where_a_table_should_be_is_one_line(tmp_path):
    folder = tmp_path / "synsets.parquet"
    folder.mkdir()
    with pytest.raises(InputError, match="not a readable Parquet file") as e:
        read_table(folder, schemas.SYNSETS)
    assert str(e.value).startswith(str(folder)) and "\n" not in str(e.value)

    path = tmp_path / "big.parquet"
    rows = {k: v * 2000 for k, v in ROW.items()}
    write_table(rows, path, schemas.SYNSETS)
    data = bytearray(path.read_bytes())
    data[64:128] = b"\xff" * 64  # the first data page, not the footer: the schema still reads
    path.write_bytes(bytes(data))
    pq.read_schema(path)
    with pytest.raises(InputError, match="not a readable Parquet file") as e:
        read_table(path, schemas.SYNSETS)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_bytes_flipped_inside_a_page_that_still_decodes_are_caught_by_its_checksum(tmp_path):
    """Image pages are stored uncompressed: flipped bytes there decode into other bytes without
    any error, so only the page checksum every table is written with gives them away."""
    images = [(f"img{n}", "n01440764", picture_jpeg("n01440764", n, 200, 150)) for n in range(4)]
    path = write_images(tmp_path, images)
    read_table(path, schemas.IMAGES)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))
    assert pq.ParquetFile(path).read(columns=["image"]).num_rows == 4  # unverified, it reads
    with pytest.raises(InputError, match="CRC checksum verification failed") as e:
        read_table(path, schemas.IMAGES, columns=["image"])
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_ledger_and_image_columns_are_built_as_pa_array_builds_them_without_pandas(tmp_path):
    """Text, bytes and integers (the download workers' columns) skip pa.array, which imports
    pandas; the values, nulls and errors are pa.array's."""
    script = """
import sys
import pyarrow as pa
from pipeline import schemas
from pipeline.tables import read_table, write_table
rows = {"candidate_id": ["a", "b"], "wnid": ["n1", "n2"], "url": ["http://x/ü", "http://y/"], "host": ["x", "y"],
        "status": ["ok", "timeout"], "http_status": [200, None], "error": [None, "no answer"],
        "bytes": [2**40, 0], "attempts": [1, 3], "elapsed_ms": [5, 10000]}
write_table(rows, sys.argv[1], schemas.LEDGER)
assert "pandas" not in sys.modules
assert read_table(sys.argv[1], schemas.LEDGER).to_pydict() == rows
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ledger.parquet")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for values, type_ in (
        (["a", None, "ü"], pa.string()),
        ([b"\xff", None, b""], pa.binary()),
        ([], pa.string()),
        ([1, None, -3], pa.int16()),
        ([None, None], pa.int64()),
        ([], pa.int32()),
    ):
        assert _array(values, type_).equals(pa.array(values, type=type_))
    for values, type_ in (([40000], pa.int16()), (["x"], pa.int64()), ([True], pa.int32()), ([1], pa.string())):
        with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
            _array(values, type_)


def test_a_report_is_written_and_read_through_its_declaration(tmp_path):
    path = tmp_path / "reports" / "validate.json"
    doc = {"settings": {}, "dataset": "data/x", "images": {"train": 3}, "classes": 2, "checks": {}, "extra": [1]}
    write_report(path, schemas.VALIDATE_REPORT, doc)
    assert read_report(path, schemas.VALIDATE_REPORT) == doc
    assert read_report(tmp_path / "absent.json", schemas.VALIDATE_REPORT, missing_ok=True) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [({"classes": None}, "classes"), ({"classes": True}, "classes"), ({"checks": []}, "checks")],
)
def test_a_report_with_a_missing_or_mistyped_key_is_refused_by_writer_and_reader(tmp_path, change, field):
    good = {"settings": {}, "dataset": "data/x", "images": {}, "classes": 2, "checks": {}}
    bad = {k: v for k, v in {**good, **change}.items() if v is not None}
    with pytest.raises(PipelineError, match=field):
        write_report(tmp_path / "r.json", schemas.VALIDATE_REPORT, bad)
    path = tmp_path / "hand-written.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError) as error:
        read_report(path, schemas.VALIDATE_REPORT)
    assert error.value.field == field and error.value.file == str(path)


def test_every_report_declaration_names_a_distinct_stage():
    assert len(schemas.REPORTS) == len({r.stage for r in schemas.REPORTS.values()})
    assert Layout(Path("d")).report("dedupe") == Path("d/reports/dedupe.json")


def test_the_image_store_is_written_and_read_with_its_locations(tmp_path):
    images = Layout(tmp_path).images
    for number, count in enumerate((store.ROW_GROUP + 3, 0, 2)):
        writer = store.ShardWriter(store.shard_path(images, number))
        for i in range(count):
            writer.add(
                {**{f.name: 0 for f in schemas.IMAGES}, **STORE_TEXT, "image": b"x", "image_id": f"{number}-{i}"}
            )
        writer.close()
    assert [p.name for p in store.shards(images)] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]
    assert pq.ParquetFile(store.shard_path(images, 0)).metadata.num_row_groups == 2
    table = store.read_images(images, ["image_id"], with_location=True)
    assert table.num_rows == store.ROW_GROUP + 5
    assert table.column("location").to_pylist()[-1] == "images/shard-00002.parquet"
    assert store.read_images(tmp_path / "none", ["image_id", "wnid"]).column_names == ["image_id", "wnid"]
    with pytest.raises(InputError, match="run the download"):
        store.require_shards(tmp_path / "none", "run the download")


STORE_TEXT = {f.name: "" for f in schemas.IMAGES if pa.types.is_string(f.type) and f.name not in ("license",)} | {
    "license": None
}


def test_the_bytes_of_a_few_images_are_read_from_their_row_groups(tmp_path):
    from conftest import write_images

    from pipeline.imagehost.pictures import picture_jpeg

    images = [(f"i{k:03d}", "n01440764", picture_jpeg("n01440764", k, 40, 30)) for k in range(300)]
    shard = write_images(tmp_path, images)  # three row groups
    wanted = {"i001", "i250", "absent"}
    assert store.image_bytes(shard, wanted) == {i: data for i, _, data in images if i in wanted}
    with pytest.raises(InputError, match="missing"):
        store.image_bytes(tmp_path / "images" / "shard-00009.parquet", wanted)


def test_the_store_index_reads_one_image_from_its_row_group(tmp_path, monkeypatch):
    from conftest import write_images

    from pipeline.imagehost.pictures import picture_jpeg

    images = [(f"i{k:03d}", "n01440764", picture_jpeg("n01440764", k, 40, 30)) for k in range(300)]
    shard = write_images(tmp_path, images)  # three row groups
    index = store.StoreIndex(store.shards(tmp_path / "images"), {"i001", "i250", "absent"})
    assert index.where == {"i001": (shard, 0), "i250": (shard, 1)}
    assert "i250" in index and "absent" not in index
    reads = []
    read_row_groups = store.read_row_groups
    monkeypatch.setattr(
        store,
        "read_row_groups",
        lambda path, groups, columns: reads.append(groups) or read_row_groups(path, groups, columns),
    )
    assert index.bytes_of("i250") == images[250][2]
    assert reads == [[1]]
    with pytest.raises(KeyError):
        index.bytes_of("absent")
    assert len(store.StoreIndex([shard]).where) == 300  # without wanted: every image
