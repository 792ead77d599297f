"""Manifests: splits from kept and accepted images, ILSVRC's label order, the split rules and
the split guard, and the validate command catching what a broken dataset has."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import jpeg, rows, write_images, write_synsets
from PIL import Image

from manifests.splits import guard_splits
from manifests.validate import dedupe_settings
from pipeline import schemas
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import SPLITS, Layout
from pipeline.nearcopies import DedupeSettings
from pipeline.tables import read_report, write_table

A, B, C = "n01440764", "n02102040", "n02979186"


@pytest.fixture
def built(tmp_path, pipeline):
    """Three classes of 30 pictures; two near copies (one within a class, one across classes)."""
    workdir = tmp_path / "set"
    write_synsets(workdir, [A, B, C])
    images = [(f"{w}-{n:02d}", w, picture_jpeg(w, n, 120, 90)) for w in (A, B, C) for n in range(30)]
    copy = Image.open(io.BytesIO(picture_jpeg(A, 0, 120, 90))).resize((100, 75))
    images += [(f"{A}-copy", A, jpeg(copy)), (f"{B}-stolen", B, picture_jpeg(C, 5, 120, 90))]
    write_images(workdir, images)
    assert pipeline("dedupe", "--data", tmp_path, "--subset", "set").status == 0
    labels = {
        "image_id": [],
        "wnid": [],
        "accepted": [],
        "decided": [],
        "confidence": [],
        "votes_yes": [],
        "votes_total": [],
        "selection_frequency": [],
        "method": [],
        "round": [],
    }
    for k, (image_id, wnid, _) in enumerate(images):
        rejected = k % 10 == 9
        confidence = 0.5 + (k % 30) / 60
        for name, value in zip(labels, (image_id, wnid, not rejected, True, confidence, 3, 4, 0.75, "dynamic", 1)):
            labels[name].append(value)
    write_table(labels, Layout(workdir).labels, schemas.LABELS)
    return workdir


def manifests(pipeline, workdir: Path, *args):
    return pipeline(
        "manifests",
        "--data",
        workdir.parent,
        "--subset",
        workdir.name,
        "--val-n",
        "3",
        "--test-n",
        "4",
        "--min-train",
        "20",
        *args,
    )


def test_splits_hold_kept_accepted_images_with_sorted_wnid_labels(pipeline, built):
    outcome = manifests(pipeline, built)
    assert outcome.status == 0, outcome.err
    layout = Layout(built)
    split = {s: pd.DataFrame(rows(layout.manifest(s))) for s in SPLITS}
    classes = pd.DataFrame(rows(layout.classes))
    assert list(classes.wnid) == [A, B, C] and list(classes.label) == [0, 1, 2]
    every = pd.concat(split.values())
    assert every.image_id.is_unique
    assert f"{A}-copy" not in set(every.image_id) and f"{A}-00" in set(every.image_id)  # the larger copy stays
    assert not {f"{B}-stolen", f"{C}-05"} & set(every.image_id)  # a conflict: dropped from both classes
    assert not {f"{w}-{n:02d}" for w in (A, B, C) for n in (9, 19, 29)} & set(every.image_id)  # rejected
    for frame in split.values():
        assert (frame.label == frame.wnid.map({A: 0, B: 1, C: 2})).all()
        assert frame.location.eq("images/shard-00000.parquet").all() and frame.votes.eq(4).all()
    assert split["val"].groupby("wnid").size().tolist() == [3, 3, 3]
    assert split["test"].groupby("wnid").size().tolist() == [4, 4, 4]
    # val and test take the most confident first
    for wnid, group in pd.concat([split["val"], split["test"]]).groupby("wnid"):
        assert group.confidence.min() >= split["train"][split["train"].wnid == wnid].confidence.max()
    assert classes[["train", "val", "test"]].sum().tolist() == [len(split["train"]), 9, 12]
    metadata = pq.read_schema(layout.manifest("train")).metadata
    assert metadata[b"synsetforge.verified"] == b"yes" and metadata[b"synsetforge.dataset"] == b"set"
    report = read_report(layout.report("manifests"), schemas.MANIFESTS_REPORT)
    assert report["classes_below_min_train"] == [C]  # 19 training images: its image 05 was a conflict
    assert report["settings"]["val_n"] == 3 and report["settings"]["unverified"] is False
    again = manifests(pipeline, built)
    assert "up to date" in again.err


def test_the_seed_and_the_sampling_rule_choose_the_held_out_images(pipeline, built):
    def held_out(*args):
        assert manifests(pipeline, built, *args).status == 0
        return {r["image_id"] for s in ("val", "test") for r in rows(Layout(built).manifest(s))}

    first = held_out("--sampling", "matched")
    assert held_out("--sampling", "matched") == first
    assert held_out("--sampling", "matched", "--seed", "3") != first
    assert held_out("--sampling", "threshold", "--threshold", "0.9") == set()  # no image reaches 0.9


def test_the_splits_do_not_depend_on_the_order_downloads_stored_the_images(pipeline, built):
    def splits():  # drawn at random: no ranking by confidence to hide the order
        assert manifests(pipeline, built, "--sampling", "threshold", "--train-max", "5").status == 0
        return {s: [r["image_id"] for r in rows(Layout(built).manifest(s))] for s in SPLITS}

    first = splits()
    shard = Layout(built).images / "shard-00000.parquet"
    table = pq.read_table(shard)
    write_table(table.take(list(reversed(range(table.num_rows)))), shard, schemas.IMAGES)
    assert pipeline("dedupe", "--data", built.parent, "--subset", built.name).status == 0
    assert splits() == first


def test_unverified_builds_say_so_and_missing_labels_are_a_clear_error(pipeline, built):
    layout = Layout(built)
    layout.labels.unlink()
    missing = manifests(pipeline, built)
    assert missing.status == 2 and "labels.parquet" in missing.err and "UNVERIFIED=1" in missing.err
    assert manifests(pipeline, built, "--unverified", "--drop-small", "--min-train", "23").status == 0
    classes = rows(layout.classes)
    assert [c["wnid"] for c in classes] == [A, B]  # C: 22 training images, below 23, dropped
    assert manifests(pipeline, built, "--unverified").status == 0
    train = pd.DataFrame(rows(layout.manifest("train")))
    assert (
        train.confidence.isna().all()
        and pq.read_schema(layout.manifest("train")).metadata[b"synsetforge.verified"] == b"no"
    )
    assert read_report(layout.report("manifests"), schemas.MANIFESTS_REPORT)["verified"] is False


def test_the_split_guard_keeps_each_cluster_in_one_split():
    cluster_id = [0, 0, 0, 1, 1, 2, 3, 3]
    image_id = ["a", "b", "c", "d", "e", "f", "g", "h"]
    representative = ["b", "b", "b", "d", "d", "f", "g", "g"]
    wanted = ["train", "val", "test", "train", "val", "val", None, "test"]
    splits = guard_splits(cluster_id, representative, image_id, wanted).tolist()
    assert splits == ["val", "val", "val", "train", "train", "val", "test", "test"]
    for c in set(cluster_id):
        assert len({s for s, k in zip(splits, cluster_id) if k == c}) == 1


def test_validate_passes_a_good_build_and_names_what_is_wrong_in_a_bad_one(pipeline, built):
    assert manifests(pipeline, built).status == 0
    layout = Layout(built)
    where = ("--data", built.parent, "--subset", built.name)
    good = pipeline("validate", *where)
    assert good.status == 0, good.err
    checks = read_report(layout.report("validate"), schemas.VALIDATE_REPORT)["checks"]
    assert all(c["ok"] for c in checks.values())
    assert "radius 10, verify 10, from reports/dedupe.json" in checks["no_copies_across_splits"]["summary"]

    split = {s: pd.DataFrame(rows(layout.manifest(s))) for s in SPLITS}
    home = next(s for s, frame in split.items() if f"{A}-00" in set(frame.image_id))
    elsewhere = "test" if home != "test" else "val"
    copy = split[home][split[home].image_id == f"{A}-00"].assign(image_id=f"{A}-copy", sha256="0" * 64)
    split[elsewhere] = pd.concat([split[elsewhere], copy], ignore_index=True)  # dedupe's dropped copy, in another split
    wrong = split["train"].image_id != f"{A}-00"
    first = split["train"].index[wrong][0]
    split["train"].loc[first, "label"] = 2
    for name, frame in split.items():
        write_table(
            {c: frame[c].tolist() for c in schemas.MANIFEST.names},
            layout.manifest(name),
            schemas.MANIFEST,
        )
    bad = pipeline("validate", *where)
    assert bad.status == 1
    assert "FAIL labels" in bad.err and "label 2 but class" in bad.err
    assert "FAIL no_copies_across_splits" in bad.err and f"{A}-copy" in bad.err
    assert "FAIL counts" in bad.err

    data = layout.manifest("val").read_bytes()
    layout.manifest("val").write_bytes(data[: len(data) // 2])
    truncated = pipeline("validate", *where)
    assert truncated.status == 2 and "val.parquet" in truncated.err and "Traceback" not in truncated.err


def test_validate_searches_copies_at_the_radius_dedupe_ran_with(pipeline, built):
    """Validate rechecks the splits at the radius and verify of dedupe's report; without one (an
    imported dataset) it falls back to dedupe's defaults and says so."""
    where = ("--data", built.parent, "--subset", built.name)
    assert pipeline("dedupe", *where, "--radius", "20", "--verify", "20").status == 0
    assert dedupe_settings(built) == (DedupeSettings(20, 20), "from reports/dedupe.json")
    assert manifests(pipeline, built).status == 0
    assert pipeline("validate", *where, "--no-decode").status == 0
    layout = Layout(built)
    summary = read_report(layout.report("validate"), schemas.VALIDATE_REPORT)["checks"]["no_copies_across_splits"]
    assert "radius 20, verify 20" in summary["summary"]

    layout.report("dedupe").unlink()
    assert dedupe_settings(built) == (DedupeSettings(), "dedupe's defaults: no reports/dedupe.json")
