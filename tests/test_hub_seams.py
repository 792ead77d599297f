"""The hf and wds exports read by the field's own tools: ``datasets`` sees mixed classes in
every shard and the dataset card (with the Hub's front matter) as the export's README.md,
``huggingface_hub`` reads that card's metadata, timm reads the wds export by split name, and
webdataset users find each class's name."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import rows, write_synsets
from PIL import Image
from test_card import run_card, write_manifests
from test_manifest_exports import write_store

from manifests.card.hub import hub_license, size_category, yaml_block
from pipeline import cli, schemas
from pipeline.layout import SPLITS, Layout
from pipeline.tables import read_table, write_report, write_table

WNIDS = ["n01440764", "n02012849", "n02102040", "n03126707"]
PER_CLASS = 12
PLAN = ["--unverified", "--val-n", "2", "--test-n", "2", "--min-train", "1"]
HF_SPLIT = {"train": "train", "val": "validation", "test": "test"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """data/tiny: 4 classes of 12 pictures in two store shards, manifests of 8/2/2 per class."""
    workdir = tmp_path_factory.mktemp("data") / "tiny"
    write_synsets(workdir, WNIDS)
    write_store(workdir, WNIDS, PER_CLASS, 64, 48)
    assert cli.main(["manifests", *where(workdir), *PLAN]) == 0
    return workdir


def where(workdir: Path) -> list[str]:
    return ["--data", str(workdir.parent), "--subset", workdir.name]


def manifest_by_sha(workdir: Path) -> dict[str, dict]:
    """Every manifest row (with its split) by its image's sha256."""
    return {r["sha256"]: r | {"split": s} for s in SPLITS for r in rows(Layout(workdir).manifest(s))}


def pixels_key(image: Image.Image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


@pytest.mark.slow  # runs the export stage, loads datasets or timm (torch)
def test_hf_rows_mix_the_classes_and_each_keeps_its_manifest_label(built, pipeline, tmp_path):
    datasets = pytest.importorskip("datasets")
    done = pipeline("export", *where(built), "--format", "hf", "--shard-mb", "0.02")
    assert done.status == 0, done.err
    folder = Layout(built).export("hf")
    by_sha = manifest_by_sha(built)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))
    for split in SPLITS:
        part = loaded[HF_SPLIT[split]].cast_column("image", datasets.Image(decode=False))
        found = [by_sha[hashlib.sha256(r["image"]["bytes"]).hexdigest()] for r in part]
        assert all(r["split"] == split for r in found)
        assert part["label"] == [r["label"] for r in found]  # every row is labelled as its manifest row
        assert len(found) == len(rows(Layout(built).manifest(split)))
        ids = [r["image_id"] for r in found]
        assert ids == sorted(ids)  # the wds export's order: image_id, which mixes the classes
    train_shards = sorted((folder / "data").glob("train-*.parquet"))
    assert len(train_shards) > 2
    for shard in train_shards:  # every shard holds several classes, not three or four of a thousand
        assert len(set(pq.read_table(shard, columns=["label"]).column(0).to_pylist())) > 1
    first = list(loaded["train"].to_iterable_dataset().take(8))
    assert len({r["label"] for r in first}) > 2  # a stream's first batch, unshuffled


@pytest.mark.slow  # runs the export stage, loads datasets or timm (torch)
def test_hf_readme_is_the_dataset_card_hub_and_datasets_both_read(built, pipeline, tmp_path):
    datasets = pytest.importorskip("datasets")
    hub = pytest.importorskip("huggingface_hub")
    assert pipeline("export", *where(built), "--format", "hf", "--shard-mb", "0.02").status == 0
    folder = Layout(built).export("hf")
    readme = folder / "README.md"
    data = hub.DatasetCard.load(readme).data
    assert data.pretty_name == "tiny"
    assert data.license == "unknown"  # write_images stores no licence
    assert data.task_categories == ["image-classification"]  # no boxes
    assert data.size_categories == ["n<1K"] and data.language == ["en"] and "wordnet" in data.tags
    assert hub.DatasetCardData(**data.to_dict()).to_dict() == data.to_dict()
    # the configs and features datasets reads, merged into the same front matter
    infos = datasets.info.DatasetInfosDict.from_dataset_card_data(data)["default"]
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))
    shard = pq.read_schema(next((folder / "data").glob("train-*.parquet")))
    in_shards = datasets.Features.from_dict(json.loads(shard.metadata[b"huggingface"])["info"]["features"])
    assert infos.features == in_shards == loaded["train"].features
    counts = {s: len(rows(Layout(built).manifest(s))) for s in SPLITS}
    assert {n: s.num_examples for n, s in infos.splits.items()} == {HF_SPLIT[s]: n for s, n in counts.items()}
    assert {n: len(d) for n, d in loaded.items()} == {HF_SPLIT[s]: n for s, n in counts.items()}
    # the card's sections and figures, as the Hub will show them from this folder
    text = readme.read_text()
    for heading in ("## At a glance", "## This export", "## Composition", "## Baseline results", "## Licences"):
        assert heading in text
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert figures and all((folder / f).is_file() for f in figures)
    assert "No finished baseline run" in text and (folder / "LICENSE.md").is_file()

    # a finished run: the card reports it, and only the card is written again
    shards_before = {p.name: p.stat().st_mtime_ns for p in (folder / "data").iterdir()}
    write_run(built)
    again = pipeline("export", *where(built), "--format", "hf", "--shard-mb", "0.02")
    assert again.status == 0, again.err
    assert "export-hf: up to date" in again.err and "export-hf-card: up to date" not in again.err
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "data").iterdir()} == shards_before
    text = readme.read_text()
    assert "| val | 8 | 37.5% | 12.5% | 25.0% | 0.0% |" in text
    assert "trained on an earlier version of the manifests" not in text
    assert hub.DatasetCard.load(readme).data.license == "unknown"
    assert pipeline("export", *where(built), "--format", "hf", "--shard-mb", "0.02").err.count("up to date") == 2


def write_run(workdir: Path) -> Path:
    """A finished baseline run's metrics.json as the trainer writes it (its declared keys)."""
    layout = Layout(workdir)
    inputs = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(layout.manifests.glob("*.parquet"))]

    def scores(top1: float, top5: float) -> dict:
        return {
            "images": 8,
            "top1_error": {"center": top1, "ten_crop": top1 - 0.125},
            "top5_error": {"center": top5, "ten_crop": 0.0},
            "loss": {"center": 1.0, "ten_crop": 1.0},
        }

    path = layout.runs / "alexnet" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(
        path,
        schemas.TRAIN_METRICS,
        {
            "dataset": str(workdir),
            "inputs": inputs,
            "arch": "alexnet",
            "classes": len(WNIDS),
            "settings": {"size": 64, "epochs": 2},
            "device": "cpu",
            "epochs_done": 2,
            "images": {"train": 32, "val": 8, "test": 8},
            "chance_top1_error": 0.75,
            "val": scores(0.375, 0.125),
            "test": scores(0.5, 0.25),
            "history": [],
        },
    )
    return path


@pytest.mark.parametrize(
    "name, hub_id",
    [
        ("CC BY-SA 4.0", "cc-by-sa-4.0"),  # Commons' LicenseShortName, Flickr's names
        ("by-nc-sa 2.0", "cc-by-nc-sa-2.0"),  # Openverse: code and version
        ("cc0 1.0", "cc0-1.0"),
        ("CC0", "cc0-1.0"),
        ("cc-by 4.0", "cc-by-4.0"),
        ("CC BY 2.5", "cc-by-2.5"),
        ("CC BY-SA 2.0", None),  # not on the Hub's list: no id is made up
        ("pdm 1.0", None),  # a public domain mark is not a licence the Hub lists
        ("Public domain", None),
        ("GFDL", None),
        (None, None),
    ],
)
def test_image_licences_map_to_the_hubs_identifiers_only_where_it_lists_them(name, hub_id):
    assert hub_license(name) == hub_id


def test_size_categories_are_the_hubs_buckets():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 1_281_167, 14_197_122)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "1M<n<10M",
        "10M<n<100M",
    ]


@pytest.mark.parametrize(
    "licence, every, expected",
    [
        ("CC BY-SA 4.0", True, {"license": "cc-by-sa-4.0"}),
        ("CC BY-SA 4.0", False, {"license": "other", "license_name": "mixed-per-image"}),
        ("pdm 1.0", True, {"license": "other", "license_name": "pdm-1.0"}),
    ],
)
def test_dataset_card_md_has_the_hubs_front_matter(tmp_path, licence, every, expected):
    hub = pytest.importorskip("huggingface_hub")
    workdir = tmp_path / "data" / "cards"
    write_manifests(workdir, licence=licence)
    if every:  # write_manifests leaves every fourth image without a licence
        for split in SPLITS:
            path = Layout(workdir).manifest(split)
            table = read_table(path, schemas.MANIFEST)
            column = pa.array([licence] * len(table), pa.string())
            table = table.set_column(table.schema.get_field_index("license"), "license", column)
            meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items() if k.startswith(b"synsetforge.")}
            write_table(table, path, schemas.MANIFEST, metadata=meta)
    run_card(workdir)
    data = hub.DatasetCard.load(Layout(workdir).card).data.to_dict()
    assert {k: data[k] for k in ("license", "license_name") if k in data} == expected
    assert data["pretty_name"] == "cards" and data["annotations_creators"] == ["crowdsourced"]
    assert data["task_categories"] == ["image-classification"] and data["size_categories"] == ["n<1K"]
    assert "license_link" not in data  # DATASET_CARD.md has no LICENSE.md beside it


def test_a_dataset_with_boxes_is_also_an_object_detection_dataset(tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    workdir = tmp_path / "data" / "boxed"
    written = write_manifests(workdir)
    image_id, wnid = written[0]
    row = {"image_id": image_id, "split": "train", "label": 0, "wnid": wnid, "width": 120, "height": 90}
    box = {"xmin": 10, "ymin": 5, "xmax": 60, "ymax": 50, "source": "imported"}
    write_table({k: [v] for k, v in (row | box).items()}, Layout(workdir).box_manifest, schemas.BOX_MANIFEST)
    run_card(workdir)
    data = hub.DatasetCard.load(Layout(workdir).card).data
    assert data.task_categories == ["image-classification", "object-detection"]


@pytest.mark.slow  # runs the export stage, loads datasets or timm (torch)
def test_timm_reads_each_wds_split_by_name_with_its_labels(built, pipeline):
    timm_data = pytest.importorskip("timm.data")
    pytest.importorskip("webdataset")
    done = pipeline("export", *where(built), "--format", "wds", "--shard-mb", "0.02")
    assert done.status == 0, done.err
    folder = Layout(built).export("wds")
    info = json.loads((folder / "_info.json").read_text())
    assert set(info["splits"]) == {"train", "validation", "test"}
    label_of = {}  # decoded pixels -> (split, label), from the store's bytes of each manifest row
    store = {r["image_id"]: r for r in store_rows(built)}
    for split in SPLITS:
        for r in rows(Layout(built).manifest(split)):
            label_of[pixels_key(Image.open(io.BytesIO(store[r["image_id"]]["image"])))] = (split, r["label"])
    for split in SPLITS:
        dataset = timm_data.create_dataset("wds/tiny", root=str(folder), split=HF_SPLIT[split])
        read = [(pixels_key(image), target) for image, target in dataset]
        assert len(read) == len(dataset) == len(rows(Layout(built).manifest(split)))
        assert sorted(label_of[key] for key, _ in read) == sorted((split, t) for _, t in read)
        assert all(label_of[key] == (split, target) for key, target in read)


def store_rows(workdir: Path) -> list[dict]:
    return [r for path in sorted(Layout(workdir).images.glob("*.parquet")) for r in rows(path)]


def test_webdataset_samples_name_their_class_as_classes_json_does(built, pipeline):
    wds = pytest.importorskip("webdataset")
    assert pipeline("export", *where(built), "--format", "wds", "--shard-mb", "0.02").status == 0
    folder = Layout(built).export("wds")
    classes = json.loads((folder / "classes.json").read_text())
    table = rows(Layout(built).classes)
    assert [(c["label"], c["wnid"]) for c in classes] == [(r["label"], r["wnid"]) for r in table]
    assert [c["name"] for c in classes] == [f"class {w}" for w in WNIDS]
    urls = [str(p) for p in sorted(folder.glob("train-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == len(rows(Layout(built).manifest("train")))
    for sample in samples:
        meta = sample["json"]
        assert sample["cls"] == meta["label"] and classes[meta["label"]]["wnid"] == meta["wnid"]
        assert meta["class_name"] == classes[meta["label"]]["name"]


def test_the_card_reports_the_newest_run_and_says_when_its_manifests_changed(tmp_path):
    workdir = tmp_path / "data" / "runs"
    write_manifests(workdir)
    metrics = write_run(workdir)
    doc = json.loads(metrics.read_text())
    doc["val"] |= {
        "images_with_boxes": 6,
        "top1_loc_error": 0.5,
        "top5_loc_error": 0.25,
        "box_iou_50": 0.625,
        "whole_image_iou_50": 0.125,
        "submission": "submission-val.csv",
    }
    write_report(metrics, schemas.TRAIN_METRICS, doc)
    run_card(workdir)
    text = Layout(workdir).card.read_text()
    assert (
        "| val | 8 | 37.5% | 12.5% | 25.0% | 0.0% |" in text and "| test | 8 | 50.0% | 25.0% | 37.5% | 0.0% |" in text
    )
    assert "| val | 6 | 50.0% | 25.0% | 62.5% | 12.5% |" in text  # localization, val only: test has no boxes
    assert "earlier version of the manifests" not in text
    write_manifests(workdir)  # the manifests again, newer than the run
    run_card(workdir)
    assert "earlier version of the manifests" in Layout(workdir).card.read_text()


def test_front_matter_from_the_data_reads_back_as_it_was(tmp_path):
    """Names and licences come from files a user imported: no character of theirs may end the
    YAML block, start a comment or a line, or be read back as another."""
    hub = pytest.importorskip("huggingface_hub")
    tricky = 'a: b # c\n---\n"quoted" \\ \x85 \u2028 \ufeff \x7f \U0001f600 é'
    card = hub.DatasetCard("\n".join([*yaml_block({"pretty_name": tricky, "tags": [tricky]}), "# body", ""]))
    assert card.data.pretty_name == tricky and card.data.tags == [tricky]
    assert card.text.strip() == "# body"
