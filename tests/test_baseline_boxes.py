"""The baseline's box head: boxes follow the crops exactly, and a run with boxes writes Kaggle
submissions that pipeline.evaluation scores, localization figures and boxes.png."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install -e '.[train]'): baseline tests skipped"
)

from conftest import write_images  # noqa: E402
from PIL import Image  # noqa: E402

from baseline.__main__ import main  # noqa: E402
from baseline.config import Config  # noqa: E402
from baseline.localize import box_loss, class_boxes, to_pixels  # noqa: E402
from baseline.manifests import load_dataset  # noqa: E402
from baseline.train import train  # noqa: E402
from baseline.transforms import View, box_from_crop, box_to_crop, crop, in_crop, placements  # noqa: E402
from pipeline import evaluation, schemas, store  # noqa: E402
from pipeline.errors import InputError  # noqa: E402
from pipeline.layout import Layout  # noqa: E402
from pipeline.tables import read_table, write_table  # noqa: E402

WNIDS = ["n01440764", "n02102040", "n02979186"]
COLOURS = [(230, 40, 40), (40, 220, 40), (50, 60, 240)]  # a bright rectangle of the class's colour


def rectangle_png(colour, box, width: int, height: int) -> bytes:
    """A dark image with a rectangle covering exactly ``box`` (our convention). PNG: no JPEG ringing."""
    pixels = np.full((height, width, 3), 20, np.uint8)
    xmin, ymin, xmax, ymax = box
    pixels[ymin:ymax, xmin:xmax] = colour
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


# --------------------------------------------------------------------------- the geometry


def test_a_box_through_crop_and_flip_lands_where_computed_by_hand():
    crop_box = np.array([4.0, 8.0, 60.0, 64.0])  # a 56 px square of the source image
    box = np.array([10.0, 20.0, 40.0, 50.0])
    assert box_to_crop(box, crop_box, np.bool_(False)) * 56 == pytest.approx([6, 12, 36, 42])
    # mirrored: the left edge comes from the right one, 56 - 36 = 20, and 56 - 6 = 50
    assert box_to_crop(box, crop_box, np.bool_(True)) * 56 == pytest.approx([20, 12, 50, 42])
    for flip in (False, True):
        fractions = box_to_crop(box, crop_box, np.bool_(flip))
        assert box_from_crop(fractions, crop_box, np.bool_(flip)) == pytest.approx(box)
    # an object larger than the crop goes on past its edges; one beside the crop is not in it
    assert box_to_crop(np.array([0.0, 0, 64, 72]), crop_box, np.bool_(False)) * 56 == pytest.approx([-4, -8, 60, 64])
    assert not in_crop(box_to_crop(np.array([60.0, 0, 64, 8]), crop_box, np.bool_(False)))


@pytest.mark.parametrize("mode", ["train", "center", "tencrop"])
def test_boxes_follow_the_pixels_of_every_crop(mode):
    """The rectangle's edges in the decoded, cropped, scaled (and mirrored) pixels are where
    box_to_crop puts them, within a pixel of bilinear blur."""
    width, height, box = 96, 72, (30, 14, 70, 50)
    data = rectangle_png((255, 255, 255), box, width, height)
    view = View(mode, 64, 73, seed=3, epoch=1, lighting=False)
    flipped = set()
    for index in range(8 if mode == "train" else 1):
        pieces, _ = crop(data, view, index)
        crops, flips = placements(view, np.array([[width, height]] * (index + 1)), [index])
        flipped.add(bool(flips[0]))
        for k, piece in enumerate(pieces):
            expected = box_to_crop(np.array(box, float), crops[0, k], flips[0]) * 64
            columns = np.flatnonzero(piece.mean(axis=(0, 2)) > 128)
            rows = np.flatnonzero(piece.mean(axis=(1, 2)) > 128)
            found = [columns[0], rows[0], columns[-1] + 1, rows[-1] + 1]
            assert found == pytest.approx(np.clip(expected, 0, 64), abs=1.0), (index, k)
    if mode == "train":
        assert flipped == {False, True}


def test_predicted_boxes_become_whole_pixels_inside_the_image():
    assert to_pixels(np.array([-3.2, 4.6, 70.4, 40.2]), 64, 48) == (0, 5, 64, 40)
    assert to_pixels(np.array([70.0, 50.0, 71.0, 52.0]), 64, 48) == (63, 47, 64, 48)  # at least one pixel


def test_class_specific_boxes_take_each_class_own_four():
    boxes = torch.arange(2 * 12, dtype=torch.float32).view(2, 12)  # 3 classes x 4
    assert class_boxes(boxes, torch.tensor([[2], [0]])).tolist() == [[[8, 9, 10, 11]], [[12, 13, 14, 15]]]
    agnostic = torch.arange(8, dtype=torch.float32).view(2, 4)
    assert class_boxes(agnostic, torch.tensor([[2, 0], [1, 1]])).shape == (2, 2, 4)
    out = torch.zeros(2, 12, requires_grad=True)
    loss = box_loss(out, torch.tensor([0, 1]), torch.ones(2, 4), torch.tensor([False, False]))
    loss.backward()  # no image with a box in its crop: no loss, the head still in the graph
    assert loss.item() == 0 and out.grad is not None


# --------------------------------------------------------------------------- a dataset with boxes


def make_boxed_dataset(root: Path, per_class: int = 10, val_per_class: int = 3, boxes: bool = True) -> Path:
    """<root>/boxed: rectangles of three colours at random places; their boxes in boxes.parquet."""
    folder = root / "boxed"
    layout = Layout(folder)
    rng = np.random.default_rng(0)
    images, rows = [], {"train": [], "val": []}
    box_rows = {name: [] for name in schemas.BOX_MANIFEST.names}
    width, height = 80, 64
    for label, wnid in enumerate(WNIDS):
        for n in range(per_class + val_per_class):
            image_id = f"{wnid}-{n:03d}"
            w, h = int(rng.integers(16, 60)), int(rng.integers(16, 50))
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            box = (x, y, x + w, y + h)
            images.append((image_id, wnid, rectangle_png(COLOURS[label], box, width, height)))
            split = "train" if n < per_class else "val"
            rows[split].append(
                {
                    "image_id": image_id,
                    "label": label,
                    "wnid": wnid,
                    "location": store.location(store.shard_path(layout.images, 0)),
                    "width": width,
                    "height": height,
                    "sha256": "0" * 64,
                    "phash": 0,
                    "source": "demo",
                    "source_url": f"http://images.example/{image_id}.png",
                    "license": None,
                    "confidence": None,
                    "votes": None,
                }
            )
            if n % 4 != 3:  # every fourth image has no box: it trains the classifier alone
                values = dict(zip(("xmin", "ymin", "xmax", "ymax"), box))
                row = {"image_id": image_id, "split": split, "label": label, "wnid": wnid, **values}
                for name, value in {**row, "width": width, "height": height, "source": "imported"}.items():
                    box_rows[name].append(value)
    write_images(folder, images)
    for split, members in rows.items():
        columns = {name: [r[name] for r in members] for name in schemas.MANIFEST.names}
        write_table(columns, layout.manifest(split), schemas.MANIFEST)
    write_table(
        {
            "label": [0, 1, 2],
            "wnid": WNIDS,
            "name": ["red", "green", "blue"],
            "gloss": [""] * 3,
            "train": [per_class] * 3,
            "val": [val_per_class] * 3,
            "test": [0] * 3,
        },
        layout.classes,
        schemas.CLASSES,
    )
    if boxes:
        write_table(box_rows, layout.box_manifest, schemas.BOX_MANIFEST)
    return folder


def settings(root: Path, **kw) -> Config:
    values = dict(
        data=root,
        subset="boxed",
        size=64,
        epochs=2,
        batch=10,
        lr=0.01,
        workers=0,
        device="cpu",
        progress=False,
        seed=1,
    )
    values.update(kw)
    return Config(**values)


def test_the_box_table_is_read_in_manifest_order(tmp_path):
    make_boxed_dataset(tmp_path)
    data = load_dataset(tmp_path / "boxed")
    train_split = data.splits["train"]
    assert train_split.boxes.with_boxes == 24 and len(train_split.boxes.boxes[3]) == 0
    assert np.isnan(train_split.boxes.targets[3]).all() and not np.isnan(train_split.boxes.targets[4]).any()
    assert (train_split.boxes.sizes == [80, 64]).all()


@pytest.mark.parametrize(
    "change, field",
    [({"xmax": 81}, "xmin"), ({"image_id": "nope"}, "image_id"), ({"label": 2}, "label"), ({"width": 40}, "width")],
)
def test_a_bad_box_row_is_an_error_naming_it(tmp_path, change, field):
    folder = make_boxed_dataset(tmp_path)
    path = Layout(folder).box_manifest
    table = read_table(path, schemas.BOX_MANIFEST).to_pydict()
    for name, value in change.items():
        table[name][3] = value
    write_table(table, path, schemas.BOX_MANIFEST)
    with pytest.raises(InputError) as error:
        load_dataset(folder)
    assert (error.value.file, error.value.row, error.value.field) == (str(path), 3, field)


@pytest.mark.slow
def test_a_run_with_boxes_writes_scored_submissions_and_a_picture(tmp_path):
    folder = make_boxed_dataset(tmp_path)
    result = train(settings(tmp_path, name="boxes"), log=lambda message: None)
    run = folder / "runs" / "boxes"
    metrics = json.loads((run / "metrics.json").read_text())
    val = metrics["val"]
    assert val["images_with_boxes"] == 6 and val["submission"] == "submission-val.csv"
    for key in ("top1_loc_error", "top5_loc_error", "box_iou_50", "whole_image_iou_50"):
        assert 0 <= val[key] <= 1, key
    # the evaluator reads what the trainer wrote, and agrees with metrics.json
    again = evaluation.score(folder, "val", run / "submission-val.csv")
    assert again["top1_loc_error"] == val["top1_loc_error"] and again["images"] == 9
    assert again["top1_error"] == pytest.approx(val["top1_error"]["ten_crop"])
    lines = (run / "submission-val.csv").read_text().splitlines()
    assert lines[0] == "ImageId,PredictionString" and len(lines) == 10
    guesses = lines[1].split(",")[1].split()
    assert len(guesses) == 3 * 5 and guesses[0] in WNIDS  # three classes, each with its box
    with Image.open(run / "boxes.png") as picture:
        assert picture.format == "PNG" and picture.width > 200
    assert metrics["box_head"] == "class" and metrics["boxes_plot"] == "boxes.png"
    assert "train_box_loss" in result["history"][0]
    saved = torch.load(run / "model.pt", weights_only=False)
    assert saved["box_head"] == "class" and saved["state_dict"]["boxes.4.weight"].shape == (12, 1024)
    # the evaluate command rebuilds the box head from the checkpoint, and scores it alike
    assert main(["evaluate", "--data", str(tmp_path), "--subset", "boxed", "--name", "boxes", "--device", "cpu"]) == 0
    evaluated = json.loads((run / "evaluate.json").read_text())["val"]
    assert evaluated["top1_loc_error"] == val["top1_loc_error"] and evaluated["box_iou_50"] == val["box_iou_50"]


@pytest.mark.slow
def test_without_a_box_table_nothing_changes(tmp_path):
    folder = make_boxed_dataset(tmp_path, boxes=False)
    result = train(settings(tmp_path, name="plain", epochs=1), log=lambda message: None)
    run = folder / "runs" / "plain"
    assert "top1_loc_error" not in result["val"] and "box_head" not in result
    assert "train_box_loss" not in result["history"][0]
    assert not list(run.glob("submission-*")) and not (run / "boxes.png").exists()
    saved = torch.load(run / "model.pt", weights_only=False)
    assert saved["box_head"] is None and not any(k.startswith("boxes.") for k in saved["state_dict"])


@pytest.mark.slow
def test_a_skipped_image_is_a_submission_row_without_guesses(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = make_boxed_dataset(tmp_path)
    shard = folder / "images" / "shard-00000.parquet"
    table = pq.read_table(shard)
    blobs = table.column("image").to_pylist()
    blobs[10] = b"\x89PNG not a PNG after all"  # val row 0: n01440764-010, which has a box
    column = table.schema.get_field_index("image")
    pq.write_table(table.set_column(column, "image", pa.array(blobs, pa.binary())), shard)
    result = train(settings(tmp_path, name="skip", epochs=1, skip_bad=True), log=lambda message: None)
    lines = (folder / "runs" / "skip" / "submission-val.csv").read_text().splitlines()
    assert "n01440764-010," in lines and len(lines) == 10  # every image of the manifest, once
    assert result["skipped"] == {"unreadable image": 1}
    assert result["val"]["images_with_boxes"] == 6  # the evaluator counts it, as wrong
