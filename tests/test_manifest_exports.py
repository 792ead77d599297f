"""The export stage (Hugging Face Parquet, ILSVRC folders, WebDataset tars) and the import stage
(ImageFolder and ILSVRC/Kaggle trees), on a tiny dataset built by the real manifests stage."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import rows, run_cli, write_images, write_synsets

from pipeline import cli, schemas, store
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import SPLITS, Layout
from pipeline.tables import read_report, write_table

WNIDS = ["n01440764", "n02012849", "n03126707"]
LEMMAS = [["tench", "Tinca tinca"], ["crane"], ["crane"]]  # two classes share a name, as in ILSVRC
PER_CLASS = 7
PLAN = ["--unverified", "--val-n", "2", "--test-n", "1", "--min-train", "1"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """data/tiny: 3 classes of 7 pictures in two store shards, manifests of 4/2/1 per class."""
    workdir = tmp_path_factory.mktemp("data") / "tiny"
    write_synsets(workdir, WNIDS)
    synsets = pq.read_table(Layout(workdir).synsets)
    synsets = synsets.set_column(
        synsets.schema.get_field_index("lemmas"), "lemmas", pa.array(LEMMAS, pa.list_(pa.string()))
    )
    write_table(synsets, Layout(workdir).synsets, schemas.SYNSETS)
    write_store(workdir, WNIDS, PER_CLASS, 96, 72)
    assert cli.main(["manifests", "--data", str(workdir.parent), "--subset", "tiny", *PLAN]) == 0
    return workdir


def write_store(workdir: Path, wnids: list[str], per_class: int, width: int, height: int) -> None:
    """``per_class`` drawn pictures of each class in two store shards, and dedupe's clusters
    keeping every one: what the manifests stage reads."""
    images = [
        (hashlib.sha256(f"{w}{n}".encode()).hexdigest()[:16], w, picture_jpeg(w, n, width, height))
        for w in wnids
        for n in range(per_class)
    ]
    write_images(workdir, images[::2], shard=0)
    write_images(workdir, images[1::2], shard=1)
    ids = [i for i, _, _ in images]
    write_table(
        {
            "image_id": ids,
            "wnid": [w for _, w, _ in images],
            "cluster_id": list(range(len(ids))),
            "representative": ids,
            "distance": [0] * len(ids),
            "reason": ["unique"] * len(ids),
            "keep": [True] * len(ids),
        },
        Layout(workdir).clusters,
        schemas.CLUSTERS,
    )


def where(workdir: Path) -> list[str]:
    return ["--data", str(workdir.parent), "--subset", workdir.name]


def manifest(workdir: Path, split: str) -> list[dict]:
    return rows(Layout(workdir).manifest(split))


def store_bytes(workdir: Path) -> dict[str, bytes]:
    table = store.read_images(Layout(workdir).images, ["image_id", "image"])
    return dict(zip(table.column("image_id").to_pylist(), table.column("image").to_pylist()))


def content(workdir: Path) -> dict[str, Counter]:
    """Per split, the (wnid, sha256) of every image: what an export and import must keep."""
    return {s: Counter((r["wnid"], r["sha256"]) for r in manifest(workdir, s)) for s in SPLITS}


def test_hf_export_is_the_imagenet_1k_layout_and_datasets_loads_it(built, pipeline, tmp_path):
    datasets = pytest.importorskip("datasets")
    done = pipeline("export", *where(built), "--format", "hf", "--shard-mb", "0.01")
    assert done.status == 0, done.err
    folder = Layout(built).export("hf")
    shards = sorted(p.name for p in (folder / "data").iterdir())
    train = [name for name in shards if name.startswith("train-")]
    assert len(train) > 1 and train == [f"train-{i:05d}-of-{len(train):05d}.parquet" for i in range(len(train))]
    assert {n.split("-")[0] for n in shards} == {"train", "validation", "test"}
    first = pq.ParquetFile(folder / "data" / shards[0])
    assert first.schema_arrow.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert first.schema_arrow.field("label").type == pa.int64()
    features = json.loads(first.schema_arrow.metadata[b"huggingface"])["info"]["features"]
    names = ["tench, Tinca tinca", "crane (n02012849)", "crane (n03126707)"]
    assert features == {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}

    files = {s: str(folder / "data" / f"{s}-*.parquet") for s in ("train", "validation", "test")}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert loaded["train"].features["label"].names == names
    for split, hf_split in zip(SPLITS, ("train", "validation", "test")):
        expected = sorted(manifest(built, split), key=lambda r: r["image_id"])
        got = loaded[hf_split]
        assert got["label"] == [r["label"] for r in expected]  # image_id order, as wds
        for row in got:
            row["image"].load()
            assert row["image"].size == (96, 72)
    train_bytes = [r["image"]["bytes"] for r in rows_of(folder, "train")]
    by_id = sorted(manifest(built, "train"), key=lambda r: r["image_id"])
    assert [hashlib.sha256(b).hexdigest() for b in train_bytes] == [r["sha256"] for r in by_id]
    assert rows_of(folder, "val")[0]["image"]["path"].startswith("ILSVRC2012_val_000000")
    by_folder = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf2"))
    assert {s: len(d) for s, d in by_folder.items()} == {"train": 12, "validation": 6, "test": 3}

    again = pipeline("export", *where(built), "--format", "hf", "--shard-mb", "0.01")
    assert again.status == 0 and "up to date" in again.err


def rows_of(folder: Path, split: str) -> list[dict]:
    name = {"val": "validation"}.get(split, split)
    return [r for path in sorted((folder / "data").glob(f"{name}-*.parquet")) for r in rows(path)]


@pytest.mark.parametrize("library", ["pandas", "polars", "duckdb", "datasets"])
def test_the_manifests_load_with_common_libraries(built, library, tmp_path):
    module = pytest.importorskip(library)
    path = str(Layout(built).manifest("train"))
    if library == "pandas":
        frame = module.read_parquet(path)
        got = (len(frame), int(frame.label.max()))
    elif library == "polars":
        frame = module.read_parquet(path)
        got = (frame.height, frame["label"].max())
    elif library == "duckdb":
        got = module.sql(f"select count(*), max(label) from read_parquet('{path}')").fetchall()[0]
    else:
        frame = module.load_dataset("parquet", data_files=path, cache_dir=str(tmp_path))["train"]
        got = (len(frame), max(frame["label"]))
    assert tuple(got) == (12, 2)


def test_ilsvrc_export_has_the_ilsvrc_names_and_label_files(built, pipeline):
    done = pipeline("export", *where(built), "--format", "ilsvrc", "--prefix", "TINY", "--tree", "flat")
    assert done.status == 0, done.err
    folder = Layout(built).export("ilsvrc")
    by_id = store_bytes(built)
    # ImageFolder sorts the folder names: that order must be the label order.
    classes = rows(Layout(built).classes)
    assert sorted(p.name for p in (folder / "train").iterdir()) == [c["wnid"] for c in classes]
    for c in classes:
        assert sorted(p.name for p in (folder / "train" / c["wnid"]).iterdir()) == [
            f"{c['wnid']}_{n}.JPEG" for n in range(1, 5)
        ]
    for row, n in zip(manifest(built, "train"), [1, 2, 3, 4] * 3):
        assert (folder / "train" / row["wnid"] / f"{row['wnid']}_{n}.JPEG").read_bytes() == by_id[row["image_id"]]

    assert (folder / "LOC_synset_mapping.txt").read_text().splitlines() == [
        "n01440764 tench, Tinca tinca",
        "n02012849 crane",
        "n03126707 crane",
    ]
    val = sorted(manifest(built, "val"), key=lambda r: r["image_id"])  # numbered in image_id order
    names = [f"TINY_val_{i:08d}" for i in range(1, 7)]
    assert sorted(p.name for p in (folder / "val").iterdir()) == [f"{n}.JPEG" for n in names]
    for name, row in zip(names, val):
        assert (folder / "val" / f"{name}.JPEG").read_bytes() == by_id[row["image_id"]]
    # No boxes in this dataset: no invented whole-image box, no LOC solution file, no XML.
    assert not list(folder.glob("LOC_*_solution.csv")) and not (folder / "Annotations").exists()
    labels = (folder / "TINY_validation_labels.txt").read_text().split()
    assert labels == [str(r["label"]) for r in val]
    assert len((folder / "TINY_test_ground_truth.txt").read_text().split()) == 3  # ILSVRC2012_IDs: test_ilsvrc_layouts
    readme = (folder / "README.txt").read_text()
    assert "one ILSVRC2012_ID per image" in readme and "NOT the 0-based labels" in readme
    assert "This dataset has no object boxes" in readme and "whole-image" not in readme
    index = (folder / "files.csv").read_text().splitlines()
    assert index[0] == "file,image_id,label,wnid,sha256,converted" and len(index) == 22

    first = folder / "val" / "TINY_val_00000001.JPEG"
    inode = first.stat().st_ino
    linked = pipeline(
        "export", *where(built), "--format", "ilsvrc", "--prefix", "TINY", "--tree", "flat", "--link", "--force"
    )
    assert linked.status == 0, linked.err
    assert "21 hard-linked from the previous export" in linked.err
    assert first.stat().st_ino == inode and first.read_bytes() == by_id[val[0]["image_id"]]


def test_wds_export_writes_webdataset_tars_in_image_id_order(built, pipeline):
    done = pipeline("export", *where(built), "--format", "wds", "--shard-mb", "0.02")
    assert done.status == 0, done.err
    folder = Layout(built).export("wds")
    tars = sorted(p.name for p in folder.glob("*.tar"))
    assert tars[0] == "test-000000.tar" and "train-000001.tar" in tars and "val-000000.tar" in tars
    samples = {}
    for name in tars:
        if name.startswith("train-"):
            with tarfile.open(folder / name) as tar:
                for member in tar.getmembers():
                    key, extension = member.name.split(".", 1)
                    samples.setdefault(key, {})[extension] = tar.extractfile(member).read()
    train = manifest(built, "train")
    assert len(samples) == len(train) and all(set(s) == {"jpg", "cls", "json"} for s in samples.values())
    metas = [json.loads(s["json"]) for s in samples.values()]
    assert [m["image_id"] for m in metas] == sorted(r["image_id"] for r in train)
    by_id = {r["image_id"]: r for r in train}
    for sample, meta in zip(samples.values(), metas):
        assert int(sample["cls"]) == meta["label"] == by_id[meta["image_id"]]["label"]
        assert hashlib.sha256(sample["jpg"]).hexdigest() == by_id[meta["image_id"]]["sha256"]


def imagefolder_tree(built: Path, src: Path) -> None:
    """The built dataset as train/<wnid>/, val/<wnid>/, test/<wnid>/ files, plus a folder that is
    no wnid, an unreadable image, an empty class, a non-image file and a words.txt."""
    by_id = store_bytes(built)
    for split in SPLITS:
        for row in manifest(built, split):
            path = src / split / row["wnid"] / f"{row['image_id']}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(by_id[row["image_id"]])
    (src / "train" / "cats").mkdir()
    (src / "train" / "cats" / "cat.jpg").write_bytes(by_id[manifest(built, "train")[0]["image_id"]])
    (src / "train" / WNIDS[0] / "broken.jpg").write_bytes(b"not an image")
    (src / "train" / "n09999999").mkdir()
    (src / "train" / WNIDS[1] / "notes.txt").write_text("not an image")
    (src / "words.txt").write_text("".join(f"{w}\t{', '.join(ls)}\n" for w, ls in zip(WNIDS, LEMMAS)))


def test_import_of_an_imagefolder_tree_round_trips_and_reports_what_it_skips(built, pipeline, tmp_path):
    src = tmp_path / "src"
    imagefolder_tree(built, src)
    done = pipeline("import", "--data", tmp_path / "data", "--subset", "mine", "--src", src)
    assert done.status == 0, done.err
    workdir = tmp_path / "data" / "mine"
    assert content(workdir) == content(built)
    classes = rows(Layout(workdir).classes)
    assert [(c["label"], c["wnid"], c["name"], c["train"], c["val"], c["test"]) for c in classes] == [
        (0, WNIDS[0], "tench", 4, 2, 1),
        (1, WNIDS[1], "crane", 4, 2, 1),
        (2, WNIDS[2], "crane", 4, 2, 1),
    ]
    assert all(r["label"] == WNIDS.index(r["wnid"]) and r["source"] == "import" for r in manifest(workdir, "train"))
    assert pq.read_schema(Layout(workdir).manifest("val")).metadata[b"synsetforge.verified"] == b"imported"
    synsets = rows(Layout(workdir).synsets)
    assert [s["wnid"] for s in synsets] == [*WNIDS, "n09999999"]
    assert synsets[0]["lemmas"] == ["tench", "Tinca tinca"] and synsets[3]["name"] == "n09999999"

    report = read_report(Layout(workdir).report("import"), schemas.IMPORT_REPORT)
    assert report["settings"]["layout"] == "imagefolder"
    manifests_report = read_report(Layout(workdir).report("manifests"), schemas.MANIFESTS_REPORT)
    assert manifests_report["verified"] == "imported" and manifests_report["plan"] is None
    assert manifests_report["classes_dropped"] == ["n09999999"] and manifests_report["images"] == {
        "train": 12,
        "val": 6,
        "test": 3,
    }
    assert report["unknown_wnids"] == [{"where": "train/cats", "files": 1}]
    assert [f["file"] for f in report["unreadable"]] == [f"train/{WNIDS[0]}/broken.jpg"]
    assert report["empty_classes"] == ["n09999999"]
    assert report["ignored_files"] == [f"train/{WNIDS[1]}/notes.txt"]
    assert "train/cats" in done.err and "broken.jpg" in done.err and "n09999999" in done.err

    # The stages after download read it unchanged.
    deduped = pipeline("dedupe", "--data", tmp_path / "data", "--subset", "mine")
    assert deduped.status == 0, deduped.err
    again = pipeline("import", "--data", tmp_path / "data", "--subset", "mine", "--src", src)
    assert again.status == 0 and "up to date" in again.err


def test_an_ilsvrc_export_and_a_kaggle_tree_import_back(built, pipeline, tmp_path):
    assert pipeline("export", *where(built), "--format", "ilsvrc", "--tree", "flat").status == 0
    exported = Layout(built).export("ilsvrc")
    done = pipeline("import", "--data", tmp_path, "--subset", "back", "--src", exported, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    assert content(tmp_path / "back") == content(built)
    assert rows(Layout(tmp_path / "back").synsets)[0]["lemmas"] == ["tench", "Tinca tinca"]

    kaggle = tmp_path / "kaggle"
    for split in SPLITS:
        shutil.copytree(exported / split, kaggle / "ILSVRC" / "Data" / "CLS-LOC" / split)
    shutil.copy(exported / "LOC_synset_mapping.txt", kaggle)
    # No boxes, so no LOC solution files: files.csv labels val; Kaggle's test has no labels.
    index = (exported / "files.csv").read_text().splitlines(keepends=True)
    (kaggle / "files.csv").write_text("".join(line for line in index if not line.startswith("test/")))
    done = pipeline("import", "--data", tmp_path, "--subset", "kaggle", "--src", kaggle, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    got = content(tmp_path / "kaggle")
    assert got["train"] == content(built)["train"] and got["val"] == content(built)["val"] and not got["test"]
    report = read_report(Layout(tmp_path / "kaggle").report("import"), schemas.IMPORT_REPORT)
    assert len(report["unlabelled"]) == 3 and report["unlabelled"][0].startswith("ILSVRC/Data/CLS-LOC/test/")


def test_an_export_from_before_boxes_imports_its_whole_image_stand_ins_as_labels_not_boxes(built, pipeline, tmp_path):
    """Such an export's LOC files held one whole-image box per image (its README.txt said so):
    they still label val and test, and no box is made of them."""
    from manifests.dataset_import import STAND_IN

    assert pipeline("export", *where(built), "--format", "ilsvrc").status == 0
    old = tmp_path / "old"
    shutil.copytree(Layout(built).export("ilsvrc"), old)
    index = pd.read_csv(old / "files.csv")
    (old / "files.csv").unlink()
    sizes = {r["image_id"]: (r["width"], r["height"]) for split in SPLITS for r in manifest(built, split)}
    for split in ("val", "test"):
        held = index[index.file.str.startswith(f"{split}/")]
        lines = [
            f"{Path(f).stem},{w} 0 0 {sizes[i][0] - 1} {sizes[i][1] - 1}\n"
            for f, w, i in zip(held.file, held.wnid, held.image_id)
        ]
        (old / f"LOC_{split}_solution.csv").write_text("ImageId,PredictionString\n" + "".join(lines))
    (old / "README.txt").write_text(f"An export of before.\n{STAND_IN}.\n")
    done = pipeline("import", "--data", tmp_path, "--subset", "back", "--src", old, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    assert content(tmp_path / "back") == content(built)
    assert not Layout(tmp_path / "back").boxes.exists() and not Layout(tmp_path / "back").box_manifest.exists()


def test_the_import_pool_reads_images_in_order(tmp_path):
    from manifests.dataset_import import decode_files

    paths = []
    for n in range(40):
        paths.append(tmp_path / f"{n}.jpg")
        paths[-1].write_bytes(picture_jpeg(WNIDS[0], n, 64, 48) if n % 13 else b"broken")
    results = list(decode_files(paths, 2))
    assert [isinstance(r, str) for r in results] == [n % 13 == 0 for n in range(40)]
    assert all(r[0] == p.read_bytes() and r[1] == "JPEG" for r, p in zip(results, paths) if not isinstance(r, str))


def test_bad_inputs_are_clear_errors(built, pipeline, tmp_path):
    write_synsets(tmp_path / "empty", WNIDS)
    missing = pipeline("export", "--data", tmp_path, "--subset", "empty", "--format", "hf")
    assert missing.status == 2 and "no manifests to export" in missing.err and "train.parquet" in missing.err
    link = pipeline("export", *where(built), "--format", "wds", "--link")
    assert link.status == 2 and "--link applies to --format ilsvrc" in link.err
    nowhere = pipeline("import", "--data", tmp_path, "--subset", "x", "--src", tmp_path / "absent")
    assert nowhere.status == 2 and "no such folder" in nowhere.err
    (tmp_path / "flat" / WNIDS[0]).mkdir(parents=True)
    flat = pipeline("import", "--data", tmp_path, "--subset", "y", "--src", tmp_path / "flat")
    assert flat.status == 2 and "no train/ folder" in flat.err
    assert not (tmp_path / "y").exists()
    copy = tmp_path / "copy"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("export", ".stages"))
    classes = pq.read_table(Layout(copy).classes)
    swapped = classes.set_column(1, "wnid", pa.array(WNIDS[1::-1] + WNIDS[2:]))
    write_table(swapped, Layout(copy).classes, schemas.CLASSES)
    disagree = pipeline("export", *where(copy), "--format", "hf")
    assert disagree.status == 2 and "disagree with classes.parquet" in disagree.err and "row 0" in disagree.err
    src = tmp_path / "src"
    imagefolder_tree(built, src)
    over = pipeline("import", *where(built), "--src", src)
    assert over.status == 2 and "that no import wrote" in over.err


def test_the_command_line_lists_both_stages():
    for stage, option in (("export", "--format"), ("import", "--layout")):
        shown = run_cli(stage, "--help")
        assert shown.returncode == 0 and option in shown.stdout


def one_line_error(done, *named: str) -> str:
    """The single stderr line of a failed run, which must name ``named``."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error: " in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert all(name in lines[0] for name in named), lines[0]
    return lines[0]


def damaged_copy(built: Path, folder: Path, offset: int) -> Path:
    """A copy of the built dataset whose first store shard has 16 bytes inverted at ``offset``."""
    copy = folder / "tiny"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("export", ".stages"))
    shard = store.shard_path(Layout(copy).images, 0)
    data = bytearray(shard.read_bytes())
    data[offset : offset + 16] = bytes(b ^ 0xFF for b in data[offset : offset + 16])
    shard.write_bytes(bytes(data))
    return copy


READERS = (  # every stage that reads the store, as a user runs it
    ("validate",),
    ("export", "--format", "hf"),
    ("export", "--format", "ilsvrc"),
    ("export", "--format", "wds"),
    ("card",),
    ("manifests", *PLAN, "--force"),
    ("dedupe",),
)


@pytest.mark.slow
def test_a_damaged_page_of_a_store_shard_is_one_line_naming_the_shard(built, tmp_path):
    first = pq.ParquetFile(store.shard_path(Layout(built).images, 0)).metadata.row_group(0).column(0)
    assert first.path_in_schema == "image_id"  # the column every reader reads
    copy = damaged_copy(built, tmp_path, first.dictionary_page_offset or first.data_page_offset)
    shard = str(store.shard_path(Layout(copy).images, 0))
    for stage in READERS:
        done = run_cli(*stage, *where(copy))
        assert done.returncode == 2, (stage, done.stderr)
        assert "the image store shard is damaged" in one_line_error(done, shard, "row group 0")


@pytest.mark.slow
@pytest.mark.parametrize("checksums", [True, False], ids=["page-checksums", "no-checksums"])
def test_flipped_bytes_inside_stored_images_are_caught_by_every_reader_of_the_bytes(built, tmp_path, checksums):
    """Damage in the middle of a shard's image pages: the page checksum the store is written
    with gives it away; in a shard written without checksums the pages are not compressed
    and read back as other bytes, which the sha256 recorded with them gives away."""
    path = store.shard_path(Layout(built).images, 0)
    if not checksums:  # a store written before page checksums, or by another writer
        rewritten = tmp_path / "rewritten"
        shutil.copytree(built, rewritten, ignore=shutil.ignore_patterns("export", ".stages"))
        rows_per_group = pq.ParquetFile(path).metadata.row_group(0).num_rows
        path = store.shard_path(Layout(rewritten).images, 0)
        pq.write_table(pq.read_table(path), path, row_group_size=rows_per_group, compression="none")
        built = rewritten
    middle = path.stat().st_size // 2
    image = pq.ParquetFile(path).metadata.row_group(0).column(2)
    start = image.dictionary_page_offset or image.data_page_offset
    assert image.path_in_schema == "image" and start + 100 < middle < start + image.total_compressed_size - 100
    copy = damaged_copy(built, tmp_path, middle)
    shard = str(store.shard_path(Layout(copy).images, 0))
    for stage in READERS:
        done = run_cli(*stage, *where(copy))
        if stage[0] in ("manifests", "dedupe"):  # they read the store's hashes and sizes, not its bytes
            assert done.returncode == 0, (stage, done.stderr)
        elif checksums:
            assert done.returncode == 2, (stage, done.stderr)
            assert "CRC checksum verification failed" in one_line_error(done, shard, "row group 0")
        elif stage[0] == "validate":  # a failed check, named in its list of problems
            assert done.returncode == 1 and "FAIL images_decode" in done.stderr, done.stderr
            assert "images/shard-00000.parquet: its bytes do not match the manifest's sha256" in done.stderr
        else:
            assert done.returncode == 2, (stage, done.stderr)
            assert "bytes do not match their sha256" in one_line_error(done, shard, "row group 0")


def test_import_names_a_link_that_leads_nowhere_and_reports_a_loop_of_folders(built, tmp_path):
    src = tmp_path / "src"
    imagefolder_tree(built, src)
    dangling = src / "train" / WNIDS[0] / "gone.jpg"
    dangling.symlink_to("nowhere.jpg")
    done = run_cli("import", "--data", tmp_path / "data", "--subset", "links", "--src", src)
    assert done.returncode == 2 and "which does not exist" in one_line_error(done, str(dangling))
    dangling.unlink()
    looped = src / "train" / WNIDS[0] / "loop.jpg"
    looped.symlink_to("loop.jpg")
    done = run_cli("import", "--data", tmp_path / "data", "--subset", "links", "--src", src)
    assert done.returncode == 2 and "a loop of symbolic links" in one_line_error(done, str(looped))
    assert not (tmp_path / "data" / "links").exists()
    looped.unlink()

    (src / "train" / WNIDS[1] / "again").symlink_to(".")  # a folder linked into itself: walked once
    (src / "train" / WNIDS[2] / "more").symlink_to(src / "test" / WNIDS[2])  # followed, as ImageFolder does
    done = run_cli("import", "--data", tmp_path / "data", "--subset", "links", "--src", src)
    assert done.returncode == 0, done.stderr
    workdir = tmp_path / "data" / "links"
    assert rows(Layout(workdir).classes)[2]["train"] == 4 + 1  # the test image under the linked folder
    report = read_report(Layout(workdir).report("import"), schemas.IMPORT_REPORT)
    loops = [u for u in report["unreadable"] if "already walked" in u["error"]]
    assert [u["file"] for u in loops] == [f"train/{WNIDS[1]}/again"]
    assert f"train/{WNIDS[1]}/again" in done.stderr


def with_bom(path: Path) -> None:
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


def test_import_reads_text_files_with_a_byte_order_mark_and_names_a_line_that_is_not_utf8(built, pipeline, tmp_path):
    assert pipeline("export", *where(built), "--format", "ilsvrc").status == 0
    src = tmp_path / "src"
    shutil.copytree(Layout(built).export("ilsvrc"), src)
    for name in ("files.csv", "LOC_synset_mapping.txt"):
        with_bom(src / name)
    wnids = tmp_path / "wnids.txt"
    wnids.write_text("".join(f"{w}\n" for w in WNIDS))
    with_bom(wnids)
    done = pipeline(
        "import", "--data", tmp_path, "--subset", "bom", "--src", src, "--layout", "ilsvrc", "--wnids", wnids
    )
    assert done.status == 0, done.err
    assert content(tmp_path / "bom") == content(built)  # every val image labelled, the first too
    assert rows(Layout(tmp_path / "bom").synsets)[0]["lemmas"] == ["tench", "Tinca tinca"]

    solution = src / "files.csv"
    lines = solution.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b",", b"\xe9,", 1)  # a Latin-1 byte on line 3
    solution.write_bytes(b"\n".join(lines))
    done = run_cli("import", "--data", tmp_path, "--subset", "latin", "--src", src, "--layout", "ilsvrc")
    assert done.returncode == 2
    column = lines[2].index(b"\xe9") + 1
    assert f"not UTF-8 text (byte 0xe9 at column {column}): save it as UTF-8" in one_line_error(done, f"{solution}:3:")
    assert not (tmp_path / "latin").exists()


def test_numeric_options_out_of_range_are_one_line_and_run_nothing(built, pipeline, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("export", ".stages"))
    assert pipeline("export", *where(copy), "--format", "hf").status == 0
    before = sorted((p.name, p.stat().st_mtime_ns) for p in Layout(copy).export("hf").rglob("*"))
    for value in ("0", "-1", "nan"):
        done = run_cli("export", *where(copy), "--format", "hf", "--shard-mb", value, "--force")
        assert done.returncode == 2 and "--shard-mb" in one_line_error(done), done.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in Layout(copy).export("hf").rglob("*")) == before
    src = tmp_path / "src"
    imagefolder_tree(built, src)
    done = run_cli("import", "--data", tmp_path, "--subset", "none", "--src", src, "--processes", "0")
    assert done.returncode == 2 and "--processes" in one_line_error(done)
    assert not (tmp_path / "none").exists()
