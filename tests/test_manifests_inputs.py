"""The manifests stage on inputs a hurried or hostile user leaves: tables that are folders,
a synsets table that lists none of the images' classes, labels accepting an image twice,
settings out of range. Each is one line, exit 2, and the previous manifests stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rows, write_images, write_labels, write_synsets

from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import Layout

A, B, C = "n01440764", "n02102040", "n02979186"
SMALL_PLAN = ("--val-n", "1", "--test-n", "1", "--min-train", "1")


@pytest.fixture
def deduped(tmp_path, pipeline) -> Path:
    """Two classes of six pictures each in the store, deduped."""
    workdir = tmp_path / "set"
    write_synsets(workdir, [A, B])
    write_images(workdir, [(f"{w}-{n}", w, picture_jpeg(w, n, 80, 60)) for w in (A, B) for n in range(6)])
    assert pipeline("dedupe", "--data", tmp_path, "--subset", "set").status == 0
    return workdir


def manifests(pipeline, workdir: Path, *args: str):
    return pipeline("manifests", "--data", workdir.parent, "--subset", workdir.name, *SMALL_PLAN, *args)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("table", ["synsets", "labels"])
def test_a_table_that_is_a_folder_is_one_line_naming_it(pipeline, deduped, table):
    path = getattr(Layout(deduped), table)
    if path.exists():
        path.unlink()
    path.mkdir(parents=True)
    out = manifests(pipeline, deduped, *(() if table == "labels" else ("--unverified",)))
    assert out.status == 2
    assert one_error_line(out.err).startswith(f"error: {path}: not a readable Parquet file (")
    assert not Layout(deduped).manifests.exists()


def test_a_synsets_table_listing_none_of_the_images_classes_is_an_error_not_an_empty_dataset(pipeline, deduped):
    write_synsets(deduped, [C])
    out = manifests(pipeline, deduped, "--unverified")
    assert out.status == 2
    line = [line for line in out.err.splitlines() if line.startswith("error: ")]
    assert line == [
        f"error: {Layout(deduped).synsets}: no class is left for the manifests: 1 of its 1 classes have no eligible image"
    ]
    assert "12 eligible images of 2 wnids that synsets.parquet does not list are left out" in out.err
    assert "Traceback" not in out.err and not Layout(deduped).manifests.exists()


def test_images_of_classes_the_synsets_do_not_list_are_left_out_aloud(pipeline, deduped):
    write_synsets(deduped, [A])
    out = manifests(pipeline, deduped, "--unverified")
    assert out.status == 0, out.err
    assert f"6 eligible images of 1 wnids that synsets.parquet does not list are left out, e.g. {B}" in out.err
    assert {r["wnid"] for r in rows(Layout(deduped).classes)} == {A}


def test_labels_accepting_an_image_twice_for_its_class_are_one_line_naming_the_row(pipeline, deduped):
    accepted = [(f"{w}-{n}", w) for w in (A, B) for n in range(6)]
    write_labels(deduped, [*accepted, accepted[4]])
    out = manifests(pipeline, deduped)
    assert out.status == 2
    assert one_error_line(out.err) == (
        f"error: {Layout(deduped).labels}: row 12: image_id '{A}-4': "
        "this image is accepted twice for its class: it would enter the manifests twice"
    )
    assert not Layout(deduped).manifests.exists()


@pytest.mark.parametrize(
    "option, value, wanted",
    [
        ("--val-n", "-1", "an integer of at least 0"),
        ("--test-n", "1.5", "an integer of at least 0"),
        ("--train-max", "-5", "an integer of at least 0"),
        ("--min-train", "-1", "an integer of at least 0"),
        ("--threshold", "1.5", "a number from 0 to 1"),
        ("--threshold", "nan", "a number from 0 to 1"),
        ("--seed", "-1", "an integer of at least 0"),
    ],
)
def test_a_setting_out_of_range_is_refused_and_the_previous_manifests_stay(pipeline, deduped, option, value, wanted):
    assert manifests(pipeline, deduped, "--unverified").status == 0
    before = {p: p.read_bytes() for p in sorted(deduped.rglob("*")) if p.is_file()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "manifests", "--data", deduped.parent, "--subset", deduped.name]
        + ["--unverified", option, value],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m pipeline manifests: error: argument {option}: ")
    assert wanted in lines[0]
    assert {p: p.read_bytes() for p in sorted(deduped.rglob("*")) if p.is_file()} == before
