"""The evaluator (pipeline/evaluation.py): ILSVRC's classification and localization errors of a
Kaggle submission, on datasets written here table by table, through the command line."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import jpeg, write_images, write_synsets
from PIL import Image
from wordnet_facts import REPO

from pipeline import evaluation, schemas
from pipeline.boxes import iou_matrix, to_voc
from pipeline.errors import InputError
from pipeline.layout import Layout
from pipeline.tables import read_report, write_table

WNIDS = [f"n0100000{i}" for i in range(1, 7)]  # six: the true class can be a fifth guess behind four others
# (image_id, label, width, height, true boxes in our convention)
VAL = [
    ("v1", 0, 100, 80, [(10, 10, 50, 50)]),
    ("v2", 1, 100, 100, [(0, 0, 40, 40)]),
    ("v3", 2, 100, 100, [(20, 20, 80, 80)]),
    ("v4", 3, 120, 90, [(5, 5, 60, 60)]),
    ("v5", 4, 200, 100, [(0, 0, 50, 50), (100, 20, 200, 100)]),
    ("v6", 5, 50, 50, []),
    ("v7", 0, 64, 64, [(0, 0, 64, 64)]),
    ("v8", 1, 64, 64, [(0, 0, 64, 64)]),
]
TEST = [("t1", 0, 60, 40, []), ("t2", 3, 40, 60, [])]
TRAIN = [(f"r{label}", label, 48, 48, [(0, 0, 10, 10)] if label == 0 else []) for label in range(6)]

# One guess list per val image, as a model would write it (VOC pixel indices, 1-based inclusive):
HAND_WRITTEN = {
    "v1": "n01000001 11 11 50 50",  # right class, the true box exactly
    "v2": "n01000002 61 61 100 100",  # right class, wrong box
    "v3": "n01000004 21 21 80 80",  # the true box, wrong class
    "v4": " ".join(f"{w} 6 6 60 60" for w in ("n01000001", "n01000002", "n01000003", "n01000005", "n01000004")),
    "v5": "n01000005 101 21 200 100",  # hits the second of two true boxes
    "v6": "n01000006 1 1 50 50",  # no true box: counts for classification only
    "v7": "n01000001 1 1 32 64",  # half the true box: IoU exactly 0.5, right
    "v8": "n01000002 1 1 31 64",  # IoU 31/64: wrong (0.49 without the devkit's +1 on VOC indices, too)
}


def build(root: Path, name: str = "tiny", *, val=VAL, test=TEST, train=TRAIN, images: bool = True) -> Path:
    """A dataset folder as the manifests stage leaves it: manifests, classes, box manifest, and
    (``images``) the stored JPEGs and synsets the ILSVRC export reads."""
    workdir = root / name
    layout = Layout(workdir)
    splits = {"train": train, "val": val, "test": test}
    data = {
        image_id: jpeg(Image.new("RGB", (w, h), (40 * label, 90, 120)))
        for s in splits.values()
        for image_id, label, w, h, _ in s
    }
    if images:
        write_synsets(workdir, WNIDS)
        write_images(workdir, [(i, WNIDS[label], data[i]) for s in splits.values() for i, label, *_ in s])
    for split, rows in splits.items():
        write_table(
            {
                "image_id": [r[0] for r in rows],
                "label": [r[1] for r in rows],
                "wnid": [WNIDS[r[1]] for r in rows],
                "location": ["images/shard-00000.parquet"] * len(rows),
                "width": [r[2] for r in rows],
                "height": [r[3] for r in rows],
                "sha256": [hashlib.sha256(data[r[0]]).hexdigest() for r in rows],
                "phash": list(range(len(rows))),
                "source": ["urllist"] * len(rows),
                "source_url": [f"http://images.example/{r[0]}.jpg" for r in rows],
                "license": [None] * len(rows),
                "confidence": [None] * len(rows),
                "votes": [None] * len(rows),
            },
            layout.manifest(split),
            schemas.MANIFEST,
        )
    write_table(
        {
            "label": list(range(len(WNIDS))),
            "wnid": WNIDS,
            "name": [f"class {w}" for w in WNIDS],
            "gloss": ["a test class"] * len(WNIDS),
            **{s: [sum(r[1] == c for r in rows) for c in range(len(WNIDS))] for s, rows in splits.items()},
        },
        layout.classes,
        schemas.CLASSES,
    )
    boxes = [(split, r, box) for split, rows in splits.items() for r in rows for box in r[4]]
    write_box_manifest(layout, boxes)
    return workdir


def write_box_manifest(layout: Layout, boxes: list) -> None:
    write_table(
        {
            "image_id": [r[0] for _, r, _ in boxes],
            "split": [s for s, _, _ in boxes],
            "label": [r[1] for _, r, _ in boxes],
            "wnid": [WNIDS[r[1]] for _, r, _ in boxes],
            **{c: [b[i] for _, _, b in boxes] for i, c in enumerate(("xmin", "ymin", "xmax", "ymax"))},
            "width": [r[2] for _, r, _ in boxes],
            "height": [r[3] for _, r, _ in boxes],
            "source": ["imported"] * len(boxes),
        },
        layout.box_manifest,
        schemas.BOX_MANIFEST,
    )


def submission(path: Path, rows: dict[str, str], header: str = "ImageId,PredictionString") -> Path:
    path.write_text(header + "\n" + "".join(f"{k},{v}\n" for k, v in rows.items()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("data"))


@pytest.fixture
def data(tiny, tmp_path) -> Path:
    """A fresh copy of the tiny dataset's root, for a test that writes into it."""
    shutil.copytree(tiny, tmp_path / "data" / "tiny")
    return tmp_path / "data"


def evaluate(pipeline, root: Path, path: Path, split: str = "val"):
    return pipeline("evaluate", "--data", root, "--subset", "tiny", "--submission", path, "--split", split)


def test_a_hand_written_submission_scores_as_ilsvrc_does(pipeline, data, tmp_path):
    out = evaluate(pipeline, data, submission(tmp_path / "mine.csv", HAND_WRITTEN))
    assert out.status == 0, out.err
    report_path = Layout(data / "tiny").evaluation("val", "mine")
    assert out.err.strip().splitlines()[-1] == (
        "evaluate: val 8 images: top-1 error 25.0%, top-5 12.5%, localization top-1 57.1%, top-5 42.9% "
        f"(7 images with boxes) -> {report_path}"
    )
    report = read_report(report_path, schemas.EVALUATE_REPORT)
    assert report["top1_error"] == 2 / 8 and report["top5_error"] == 1 / 8
    assert report["top1_loc_error"] == 4 / 7 and report["top5_loc_error"] == 3 / 7
    assert report["images"] == 8 and report["images_with_boxes"] == 7 and report["localized"] is True
    table = pd.read_csv(report_path.with_suffix(".csv")).set_index("wnid")
    assert table.images.to_dict() == {w: n for w, n in zip(WNIDS, [2, 2, 1, 1, 1, 1])}
    assert table.top1_error.tolist() == [0, 0, 1, 1, 0, 0]
    assert table.top5_error.tolist() == [0, 0, 1, 0, 0, 0]
    assert table.images_with_boxes.tolist() == [2, 2, 1, 1, 1, 0]
    assert table.top1_loc_error.tolist()[:5] == [0, 1, 1, 1, 0] and np.isnan(table.top1_loc_error.iloc[5])
    assert table.top5_loc_error.tolist()[:5] == [0, 1, 1, 0, 0] and np.isnan(table.top5_loc_error.iloc[5])
    assert report["per_class"]["n01000004"] == {
        "label": 3,
        "name": "class n01000004",
        "images": 1,
        "top1_error": 1.0,
        "top5_error": 0.0,
        "images_with_boxes": 1,
        "top1_loc_error": 1.0,
        "top5_loc_error": 0.0,
    }
    assert report["submission_sha256"] == hashlib.sha256((tmp_path / "mine.csv").read_bytes()).hexdigest()


def test_score_is_the_api_the_baseline_calls_and_writes_nothing(tiny, tmp_path):
    before = sorted(p.relative_to(tiny) for p in tiny.rglob("*"))
    result = evaluation.score(tiny, "val", submission(tmp_path / "s.csv", HAND_WRITTEN))
    assert sorted(p.relative_to(tiny) for p in tiny.rglob("*")) == before
    assert {
        "split",
        "images",
        "images_with_boxes",
        "top1_error",
        "top5_error",
        "top1_loc_error",
        "top5_loc_error",
    } <= set(result)
    assert set(result["per_class"]) == set(WNIDS)


def test_bare_wnids_are_a_classification_submission_without_localization(pipeline, data, tmp_path):
    bare = {k: " ".join(t for t in v.split() if t.startswith("n")) for k, v in HAND_WRITTEN.items()}
    out = evaluate(pipeline, data, submission(tmp_path / "cls.csv", bare))
    assert out.status == 0, out.err
    assert "top-1 error 25.0%, top-5 12.5%, no localization: the submission gives no boxes" in out.err
    report = read_report(Layout(data / "tiny").evaluation("val", "cls"), schemas.EVALUATE_REPORT)
    assert report["localized"] is False and report["top1_loc_error"] is None and report["top5_loc_error"] is None
    assert all(c["top1_loc_error"] is None for c in report["per_class"].values())


def truth_rows(split_rows, whole: bool = False):
    """A perfect submission's rows: the true class with its first true box (the whole image where
    it has none, or with ``whole``), in our convention."""
    for image_id, label, w, h, boxes in split_rows:
        yield image_id, [(WNIDS[label], (0, 0, w, h) if whole or not boxes else boxes[0])]


@pytest.mark.parametrize("split, rows", [("val", VAL), ("test", TEST)])
def test_a_perfect_submission_scores_zero(pipeline, data, tmp_path, split, rows):
    path = tmp_path / "perfect.csv"
    evaluation.write_submission(path, truth_rows(rows))
    out = evaluate(pipeline, data, path, split)
    assert out.status == 0, out.err
    report = read_report(Layout(data / "tiny").evaluation(split, "perfect"), schemas.EVALUATE_REPORT)
    assert report["top1_error"] == report["top5_error"] == 0
    if split == "val":
        assert report["top1_loc_error"] == report["top5_loc_error"] == 0
    else:
        assert report["top1_loc_error"] is None and "no localization: the test split has no boxes" in out.err


def test_write_submission_writes_kaggles_format(tmp_path):
    path = tmp_path / "sub.csv"
    evaluation.write_submission(
        path,
        [
            ("a", [("n01000001", (0, 0, 10, 20)), ("n01000002", (np.int64(5), 6, 7, 8))]),
            ("b", [("n01000003", None)]),
            ("c", []),
        ],
    )
    assert path.read_text() == "ImageId,PredictionString\na,n01000001 1 1 10 20 n01000002 6 7 7 8\nb,n01000003\nc,\n"
    with pytest.raises(ValueError, match="6 guesses"):
        evaluation.write_submission(tmp_path / "x.csv", [("a", [("n01000001", None)] * 6)])
    with pytest.raises(ValueError, match=r"box \(5, 5, 5, 9\): not integer edges"):
        evaluation.write_submission(tmp_path / "x.csv", [("a", [("n01000001", (5, 5, 5, 9))])])
    with pytest.raises(ValueError, match="not integer edges"):
        evaluation.write_submission(tmp_path / "x.csv", [("a", [("n01000001", (0.5, 5, 7, 9))])])
    assert not (tmp_path / "x.csv").exists()


def test_iou_on_voc_indices_equals_torchvisions_box_iou_on_our_boxes():
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(0)

    def boxes(n):
        x = np.sort(rng.integers(0, 300, size=(n, 2)), axis=1)
        y = np.sort(rng.integers(0, 300, size=(n, 2)), axis=1)
        x[:, 1] += 1  # at least a pixel wide
        y[:, 1] += 1
        return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)

    a, b = boxes(200), boxes(150)
    ours = iou_matrix([to_voc(x) for x in a], [to_voc(x) for x in b], inclusive=True)
    reference = ops.box_iou(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
    assert ((ours >= 0.5) == (reference >= 0.5)).all() and (ours > 0).mean() > 0.2


def test_whole_image_boxes_miss_the_images_whose_boxes_are_small(tmp_path):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(1)
    val = []
    for n in range(300):
        w, h = (int(v) for v in rng.integers(20, 200, size=2))
        boxes = []
        for _ in range(int(rng.integers(0, 4))):
            bw, bh = max(1, round(w * rng.uniform(0.3, 1))), max(1, round(h * rng.uniform(0.3, 1)))
            x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
            boxes.append((x0, y0, x0 + bw, y0 + bh))
        val.append((f"i{n:03d}", n % len(WNIDS), w, h, boxes))
    workdir = build(tmp_path, val=val, images=False)
    path = tmp_path / "whole.csv"
    evaluation.write_submission(path, truth_rows(val, whole=True))
    result = evaluation.score(workdir, "val", path)
    boxed = [(w, h, b) for _, _, w, h, b in val if b]
    missed = [
        bool(
            ops.box_iou(torch.tensor([[0, 0, w, h]], dtype=torch.float64), torch.tensor(b, dtype=torch.float64)).max()
            < 0.5
        )
        for w, h, b in boxed
    ]
    assert result["images_with_boxes"] == len(boxed) and 0.2 < sum(missed) / len(boxed) < 0.8
    assert result["top1_loc_error"] == result["top5_loc_error"] == pytest.approx(sum(missed) / len(boxed), abs=0)
    assert result["top1_error"] == 0


def test_the_ilsvrc_exports_file_stems_name_the_images(pipeline, data, tmp_path):
    out = pipeline("export", "--data", data, "--subset", "tiny", "--format", "ilsvrc")
    assert out.status == 0, out.err
    files = pd.read_csv(Layout(data / "tiny").export("ilsvrc") / "files.csv")
    stem = {i: Path(f).stem for f, i in zip(files.file, files.image_id)}
    assert stem["v1"].startswith("ILSVRC2012_val_")
    by_stem = {stem[k]: v for k, v in HAND_WRITTEN.items()}
    assert evaluate(pipeline, data, submission(tmp_path / "stems.csv", by_stem)).status == 0
    assert evaluate(pipeline, data, submission(tmp_path / "ids.csv", HAND_WRITTEN)).status == 0
    stems, ids = (
        read_report(Layout(data / "tiny").evaluation("val", n), schemas.EVALUATE_REPORT) for n in ("stems", "ids")
    )
    named = {"submission", "submission_sha256", "per_class_csv"}
    assert {k: v for k, v in stems.items() if k not in named} == {k: v for k, v in ids.items() if k not in named}

    # the export's own Kaggle solution file (boxed images only), answered for v6 too, is perfect
    solution = (Layout(data / "tiny").export("ilsvrc") / "LOC_val_solution.csv").read_text()
    answers = tmp_path / "solution.csv"
    answers.write_text(solution + f"{stem['v6']},n01000006 1 1 50 50\n")
    assert evaluate(pipeline, data, answers).status == 0
    perfect = read_report(Layout(data / "tiny").evaluation("val", "solution"), schemas.EVALUATE_REPORT)
    assert perfect["top1_error"] == perfect["top1_loc_error"] == perfect["top5_loc_error"] == 0

    out = evaluate(pipeline, data, submission(tmp_path / "t.csv", {stem["t1"]: "n01000001"}))
    assert out.status == 2 and f"ImageId '{stem['t1']}': is a file of the ILSVRC export's test/, not of val/" in out.err

    files.loc[files.image_id == "v3", "image_id"] = "gone"  # an export older than the manifests
    files.to_csv(Layout(data / "tiny").export("ilsvrc") / "files.csv", index=False)
    out = evaluate(pipeline, data, submission(tmp_path / "stale.csv", by_stem))
    assert out.status == 2
    assert "files.csv: lists other val images than manifests/val.parquet (2 differ)" in out.err
    assert evaluate(pipeline, data, submission(tmp_path / "ids.csv", HAND_WRITTEN)).status == 0  # ids need no export


def with_rows(**changes: str | None) -> dict[str, str]:
    """The hand-written submission with some rows changed (None: left out)."""
    return {k: v for k, v in {**HAND_WRITTEN, **changes}.items() if v is not None}


BAD = [
    # (name, rows, header, expected text naming the line and field)
    ("unknown id", {**HAND_WRITTEN, "v9": "n01000001"}, None, ":10: ImageId 'v9': not an image of the val split"),
    (
        "other split",
        {"t2": "n01000001", **HAND_WRITTEN},
        None,
        ":2: ImageId 't2': is an image of the test split, not of val",
    ),
    (
        "unknown wnid",
        with_rows(v3="n09999999 1 1 5 5"),
        None,
        ":4: PredictionString 'n09999999': a wnid that is not one of the dataset's 6 classes",
    ),
    (
        "not a wnid",
        with_rows(v3="dog"),
        None,
        ":4: PredictionString 'dog': neither one of the dataset's 6 classes (a wnid) nor a coordinate",
    ),
    (
        "six guesses",
        with_rows(v4=HAND_WRITTEN["v4"] + " n01000006 1 1 2 2"),
        None,
        ":5: PredictionString: 6 guesses; ILSVRC scores at most 5",
    ),
    (
        "xmax < xmin",
        with_rows(v2="n01000002 50 1 40 10"),
        None,
        ":3: PredictionString '50 1 40 10': a box that ends before it starts",
    ),
    (
        "ymax < ymin",
        with_rows(v2="n01000002 1 50 40 10"),
        None,
        ":3: PredictionString '1 50 40 10': a box that ends before it starts",
    ),
    (
        "non-integer",
        with_rows(v2="n01000002 1 1 40.5 10"),
        None,
        ":3: PredictionString '40.5': a coordinate that is not an integer",
    ),
    (
        "two numbers",
        with_rows(v2="n01000002 1 1"),
        None,
        ":3: PredictionString '1 1': n01000002 is followed by 2 numbers; a box is four",
    ),
    (
        "five numbers",
        with_rows(v2="n01000002 1 1 5 5 6"),
        None,
        ":3: PredictionString '1 1 5 5 6': n01000002 is followed by 5 numbers",
    ),
    ("number first", with_rows(v2="1 1 5 5 n01000002"), None, ":3: PredictionString '1': starts with a number"),
    (
        "mixed in a row",
        with_rows(v4="n01000001 1 1 5 5 n01000004"),
        None,
        ":5: PredictionString: guesses with and without boxes",
    ),
    (
        "mixed in a file",
        with_rows(v3="n01000003"),
        None,
        ":4: PredictionString: guesses without boxes where line 2's have them",
    ),
    ("missing", with_rows(v5=None, v7=None), None, "mine.csv: 2 of the 8 val images have no row; the first: v5"),
    (
        "header",
        HAND_WRITTEN,
        "ImageId,Prediction",
        ":1: 'ImageId,Prediction': expected the header ImageId,PredictionString",
    ),
    ("fields", with_rows(v2="n01000002,extra"), None, ":3: 3 fields; a row is ImageId,PredictionString"),
]


@pytest.mark.parametrize("name, rows, header, expected", BAD, ids=[b[0] for b in BAD])
def test_a_bad_submission_is_one_line_naming_its_line_and_field_and_writes_nothing(
    pipeline, data, tmp_path, name, rows, header, expected
):
    path = submission(tmp_path / "mine.csv", rows, header or "ImageId,PredictionString")
    out = evaluate(pipeline, data, path)
    assert out.status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and expected in lines[0], out.err
    assert not (data / "tiny" / "evaluations").exists()


def test_the_same_image_twice_names_both_lines(pipeline, data, tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(
        "ImageId,PredictionString\n" + "".join(f"{k},{v}\n" for k, v in HAND_WRITTEN.items()) + "v2,n01000002 1 1 5 5\n"
    )
    out = evaluate(pipeline, data, path)
    assert out.status == 2 and f"{path}:10: ImageId 'v2': the same image again: line 3 gave it" in out.err


def test_a_byte_order_mark_and_windows_line_ends_change_nothing(tiny, tmp_path):
    path = tmp_path / "excel.csv"
    text = "ImageId,PredictionString\r\n" + "".join(f"{k},{v}\r\n" for k, v in HAND_WRITTEN.items())
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    plain = submission(tmp_path / "plain.csv", HAND_WRITTEN)
    assert evaluation.score(tiny, "val", path) == evaluation.score(tiny, "val", plain)


def test_a_submission_that_is_not_utf8_is_refused_at_its_line(pipeline, data, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("ImageId,PredictionString\nv1,n01000001 caf\xe9\n".encode("latin-1"))
    out = evaluate(pipeline, data, path)
    assert out.status == 2 and f"{path}:2: not UTF-8 text (byte 0xe9 at column 17)" in out.err


def test_a_stale_box_manifest_is_refused_naming_its_row(tmp_path):
    workdir = build(tmp_path, images=False)
    write_box_manifest(Layout(workdir), [("val", VAL[0], (1, 1, 5, 5)), ("val", TEST[0], (1, 1, 5, 5))])
    with pytest.raises(
        InputError, match=r"boxes.parquet: row 1: image_id 't1': says split val, manifests/val.parquet does not hold"
    ):
        evaluation.score(workdir, "val", submission(tmp_path / "s.csv", HAND_WRITTEN))
    write_box_manifest(Layout(workdir), [("val", (*VAL[0][:1], 2, *VAL[0][2:]), (1, 1, 5, 5))])
    with pytest.raises(InputError, match=r"row 0: wnid 'n01000003': the image is of class n01000001"):
        evaluation.score(workdir, "val", submission(tmp_path / "s.csv", HAND_WRITTEN))


def test_a_dataset_without_a_box_manifest_scores_classification(tmp_path):
    workdir = build(tmp_path, images=False)
    Layout(workdir).box_manifest.unlink()
    result = evaluation.score(workdir, "val", submission(tmp_path / "s.csv", HAND_WRITTEN))
    assert result["top1_error"] == 0.25 and result["top1_loc_error"] is None and result["images_with_boxes"] == 0


@pytest.mark.slow
def test_make_evaluate(data, tmp_path):
    path = submission(tmp_path / "made.csv", HAND_WRITTEN)
    run = [
        "make",
        "--no-print-directory",
        "-C",
        str(REPO),
        "evaluate",
        f"VENV={REPO / '.venv'}",
        f"DATA={data}",
        "SUBSET=tiny",
    ]
    done = subprocess.run([*run, f"SUBMISSION={path}", "SPLIT=val"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = Layout(data / "tiny").evaluation("val", "made")
    assert f"localization top-1 57.1%, top-5 42.9% (7 images with boxes) -> {report}" in done.stderr
    assert json.loads(report.read_text())["top5_loc_error"] == 3 / 7
    done = subprocess.run(run, capture_output=True, text=True)
    assert done.returncode == 2 and "make evaluate needs SUBMISSION=<csv>" in done.stdout
