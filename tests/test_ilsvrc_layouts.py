"""The ilsvrc export's three trees, each read by what reads it: timm's folder reader and
torchvision's ImageFolder (class folders), a Kaggle-style loader (Kaggle's tree), the import
stage (every tree); and the devkit's numbering, ILSVRC2012_ID, checked against the devkit's
own table."""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import rows
from test_manifest_boxes import (
    UNBOXED,
    box_of,
    boxed,  # noqa: F401  (two classes with drawn boxes)
    exported_boxes,
    imported_boxes,
    manifest_rows,
)
from test_manifest_exports import (
    WNIDS,
    built,  # noqa: F401  (three ILSVRC-2012 classes, no boxes)
    content,
    where,
)

from manifests.ilsvrc_ids import TABLE, devkit_classes
from pipeline.layout import SPLITS, Layout

REPO = Path(__file__).resolve().parents[1]
SHARED_LIST = REPO.parent / "shared" / "data" / "synset-lists" / "imagenet_synsets.txt"
FOREIGN = "n09999999"  # a noun wnid that is no ILSVRC-2012 class
TIMM_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def export(pipeline, workdir: Path, *options: str) -> Path:
    done = pipeline("export", *where(workdir), "--format", "ilsvrc", *options)
    assert done.status == 0, done.err
    return Layout(workdir).export("ilsvrc")


def truth(workdir: Path, folder: Path, root: Path) -> dict[str, int]:
    """Each exported image file (absolute path) -> its manifest label, found through files.csv's
    image_id; each file is checked to hold its manifest image (the stored bytes, where not
    re-encoded)."""
    images = manifest_rows(workdir)
    found = {}
    for record in csv.DictReader(open(folder / "files.csv", newline="")):
        path = root / record["file"]
        row = images[record["image_id"]]
        if not record["converted"]:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
        assert record["file"].split("/")[0] == row["split"]
        found[os.path.realpath(path)] = row["label"]
    assert len(found) == len(images)
    return found


def test_the_shipped_devkit_table_is_the_1000_ilsvrc_2012_classes_numbered_once():
    table = devkit_classes()
    assert sorted(c.id for c in table.values()) == list(range(1, 1001))
    bundled = (REPO / "wordnet" / "data" / "ilsvrc1k.txt").read_text().split()
    assert sorted(table) == bundled
    if SHARED_LIST.exists():
        assert sorted(table) == sorted(SHARED_LIST.read_text().split())
    # The devkit's facts: ID 1 is kit fox (sorted label 278); ILSVRC2012_val_00000001 is a sea snake, 490.
    assert table["n02119789"] == ("n02119789", 1, "kit_fox") and sorted(table).index("n02119789") == 278
    assert table["n01751748"].id == 490
    assert "Classification2020" in TABLE.read_text().splitlines()[2]  # its source, named in its header


@pytest.mark.slow
def test_timm_and_imagefolder_give_every_image_its_manifest_label(built, pipeline):  # noqa: F811
    timm_data = pytest.importorskip("timm.data")
    folders = pytest.importorskip("torchvision.datasets")
    folder = export(pipeline, built)  # the default tree: class folders
    labels = truth(built, folder, folder)
    for split in SPLITS:
        assert sorted(p.name for p in (folder / split).iterdir()) == WNIDS  # a folder for every class
        dataset = timm_data.create_dataset("", root=str(folder), split=TIMM_SPLITS[split])
        got = {os.path.realpath(dataset.filename(i, absolute=True)): dataset[i][1] for i in range(len(dataset))}
        expected = {p: label for p, label in labels.items() if Path(p).relative_to(folder).parts[0] == split}
        assert got == expected and len(got) == len(rows(Layout(built).manifest(split)))
        image_folder = folders.ImageFolder(str(folder / split))
        assert image_folder.classes == WNIDS
        assert {os.path.realpath(p): label for p, label in image_folder.samples} == expected
    readme = (folder / "README.txt").read_text()
    assert "class_map='<this folder>/classes.txt'" in readme and "val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG" in readme


def test_the_devkit_files_hold_the_ilsvrc2012_ids_and_the_labels_files_the_labels(built, pipeline):  # noqa: F811
    folder = export(pipeline, built, "--tree", "flat", "--prefix", "TINY")
    ids = devkit_classes()
    assert [ids[w].id for w in WNIDS] == [449, 429, 545]  # not sorted order, nor label + 1
    for split, name in (("val", "validation"), ("test", "test")):
        held = sorted(rows(Layout(built).manifest(split)), key=lambda r: r["image_id"])  # file-name order
        assert sorted(p.name for p in (folder / split).iterdir()) == [
            f"TINY_{split}_{n:08d}.JPEG" for n in range(1, len(held) + 1)
        ]
        ground_truth = (folder / f"TINY_{name}_ground_truth.txt").read_text().split()
        assert ground_truth == [str(ids[r["wnid"]].id) for r in held]
        labels = (folder / f"TINY_{name}_labels.txt").read_text().split()
        assert labels == [str(r["label"]) for r in held]
    assert (folder / "classes.txt").read_text().split() == WNIDS
    assert (folder / "map_clsloc.txt").read_text().splitlines() == [
        "n02012849 429 crane_bird",
        "n01440764 449 tench",
        "n03126707 545 crane",
    ]
    readme = (folder / "README.txt").read_text()
    assert "one ILSVRC2012_ID per image in file-name order" in readme and "ID 1 is n02119789" in readme
    assert "3 of the 1000 ILSVRC-2012 classes" in readme and "a folder reader (ImageFolder, timm) cannot" in readme


def foreign_dataset(built: Path, pipeline, folder: Path, data: Path) -> Path:  # noqa: F811
    """The built dataset imported from an ImageFolder tree with its last class renamed to a wnid
    outside ILSVRC-2012 and its val images of the first class left out."""
    src = data / "src"
    shutil.copytree(folder, src, ignore=shutil.ignore_patterns("*.txt", "*.csv"))
    for split in SPLITS:
        (src / split / WNIDS[-1]).rename(src / split / FOREIGN)
    shutil.rmtree(src / "val" / WNIDS[0])
    done = pipeline("import", "--data", data, "--subset", "foreign", "--src", src, "--processes", "1")
    assert done.status == 0, done.err
    return data / "foreign"


@pytest.mark.slow
def test_a_class_outside_ilsvrc_gets_no_devkit_file_and_timm_keeps_the_labels_with_classes_txt(
    built,  # noqa: F811
    pipeline,
    tmp_path,
):
    timm_data = pytest.importorskip("timm.data")
    folders = pytest.importorskip("torchvision.datasets")
    workdir = foreign_dataset(built, pipeline, export(pipeline, built), tmp_path)
    folder = export(pipeline, workdir)
    wnids = [*WNIDS[:-1], FOREIGN]
    assert not list(folder.glob("*ground_truth*")) and not (folder / "map_clsloc.txt").exists()
    assert (folder / "classes.txt").read_text().split() == wnids
    val = sorted(rows(Layout(workdir).manifest("val")), key=lambda r: r["image_id"])
    assert (folder / "ILSVRC2012_validation_labels.txt").read_text().split() == [str(r["label"]) for r in val]
    readme = (folder / "README.txt").read_text()
    assert (
        f"No file has the devkit's name (ILSVRC2012_validation_ground_truth.txt): 1 of the classes\n(first {FOREIGN})"
        in readme
    )
    assert f"Classes with no val image (their val/ folder is empty): {WNIDS[0]}." in readme

    # The first class has no val image: timm numbers the folders it finds images in, unless
    # classes.txt is its class_map; ImageFolder numbers every folder.
    expected = {p: label for p, label in truth(workdir, folder, folder).items() if "/val/" in p}
    assert {label for label in expected.values()} == {1, 2}
    unmapped = timm_data.create_dataset("", root=str(folder), split="validation")
    assert sorted({unmapped[i][1] for i in range(len(unmapped))}) == [0, 1]  # shifted: why class_map is needed
    mapped = timm_data.create_dataset("", root=str(folder), split="validation", class_map=str(folder / "classes.txt"))
    got = {os.path.realpath(mapped.filename(i, absolute=True)): mapped[i][1] for i in range(len(mapped))}
    assert got == expected
    image_folder = folders.ImageFolder(str(folder / "val"), allow_empty=True)
    assert {os.path.realpath(p): label for p, label in image_folder.samples} == expected


def kaggle_loader(root: Path, split: str) -> dict[str, int]:
    """What a loader written against Kaggle's download reads (after the public ones): the class
    index is the line of LOC_synset_mapping.txt; train is labelled by its file names, val by the
    first wnid of LOC_val_solution.csv, test listed by LOC_sample_submission.csv (label -1)."""
    with open(root / "LOC_synset_mapping.txt") as f:
        classes = [line.strip().split(" ")[0] for line in f]
    data = root / "ILSVRC" / "Data" / "CLS-LOC" / split
    if split == "train":
        paths = glob.glob(str(data / "*" / "*"))
        return {os.path.realpath(p): classes.index(Path(p).name.split("_")[0]) for p in paths}
    table = pd.read_csv(root / ("LOC_val_solution.csv" if split == "val" else "LOC_sample_submission.csv"))
    first = table.PredictionString.map(lambda text: text.split(" ")[0])
    return {
        os.path.realpath(data / f"{image}.JPEG"): classes.index(w) if split == "val" else -1
        for image, w in zip(table.ImageId, first)
    }


def test_kaggle_tree_reads_as_kaggles_download_and_imports_back_with_its_boxes(boxed, pipeline, tmp_path):  # noqa: F811
    folder = export(pipeline, boxed, "--tree", "kaggle")
    root = folder / "ILSVRC" / "Data" / "CLS-LOC"
    labels = truth(boxed, folder, root)
    assert sorted(p.name for p in root.iterdir()) == sorted(SPLITS)
    for split in SPLITS:
        got = kaggle_loader(folder, split)
        in_split = {p: label for p, label in labels.items() if Path(p).relative_to(root).parts[0] == split}
        if split == "test":  # every test image listed, none labelled
            assert set(got) == set(in_split) and set(got.values()) == {-1}
        elif split == "train":
            assert got == in_split
        else:  # only the boxed val images are in LOC_val_solution.csv, each with its label
            stems = {r["file"]: r["image_id"] for r in csv.DictReader(open(folder / "files.csv"))}
            boxed_files = {os.path.realpath(root / f) for f, i in stems.items() if i not in UNBOXED}
            assert got == {p: label for p, label in in_split.items() if p in boxed_files}
            assert 0 < len(got) < len(in_split)
    for record in csv.DictReader(open(folder / "files.csv")):
        if record["image_id"] not in UNBOXED:
            split, *_, name = record["file"].split("/")
            below = f"train/{record['wnid']}" if split == "train" else split
            xml = folder / "ILSVRC" / "Annotations" / "CLS-LOC" / below / f"{Path(name).stem}.xml"
            assert xml.read_text().count("<object>") == len(box_of(record["image_id"]))
    assert not (folder / "train").exists() and not (folder / "Annotations").exists()
    readme = (folder / "README.txt").read_text()
    assert "LOC_val_solution.csv lists 3 of the 4 val images" in readme
    done = pipeline("import", "--data", tmp_path, "--subset", "back", "--src", folder, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    back = tmp_path / "back"
    assert {s: Counter(w for w, _ in c.elements()) for s, c in content(back).items()} == {
        s: Counter(w for w, _ in c.elements()) for s, c in content(boxed).items()
    }  # every image back in its split and class (the sideways one re-encoded upright)
    wanted = {f"ILSVRC/Data/CLS-LOC/{f}": b for f, b in exported_boxes(boxed, folder).items()}
    assert imported_boxes(back) == wanted and len(rows(Layout(back).box_manifest)) == 11


@pytest.mark.parametrize("tree", ["folders", "flat"])
def test_every_tree_imports_back_as_it_was(built, pipeline, tmp_path, tree):  # noqa: F811
    folder = export(pipeline, built, "--tree", tree)
    done = pipeline("import", "--data", tmp_path, "--subset", "back", "--src", folder, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    assert content(tmp_path / "back") == content(built)


def test_a_new_tree_hard_links_the_files_of_the_previous_one(built, pipeline):  # noqa: F811
    flat = export(pipeline, built, "--tree", "flat")
    first = flat / "val" / "ILSVRC2012_val_00000001.JPEG"
    inode = first.stat().st_ino
    linked = pipeline("export", *where(built), "--format", "ilsvrc", "--tree", "kaggle", "--link")
    assert linked.status == 0 and "21 hard-linked from the previous export" in linked.err, linked.err
    moved = Layout(built).export("ilsvrc") / "ILSVRC" / "Data" / "CLS-LOC" / "val" / first.name
    assert moved.stat().st_ino == inode


def test_tree_is_an_ilsvrc_setting(built, pipeline):  # noqa: F811
    done = pipeline("export", *where(built), "--format", "hf", "--tree", "flat")
    assert done.status == 2 and "--tree applies to --format ilsvrc" in done.err
