"""pipeline.boxes: the one box convention, each foreign convention's conversion, and IoU
against torchvision's (a test oracle here) and the ILSVRC devkit's formula."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline import boxes
from pipeline.boxes import Box


def test_a_box_of_ours_crops_exactly_its_pixels_with_pillow():
    image = Image.new("L", (50, 40))
    image.paste(255, (10, 5, 30, 25))  # Pillow's box: the same edges as ours
    box = Box(10, 5, 30, 25)
    crop = np.asarray(image.crop(box))
    assert crop.shape == (20, 20) and crop.min() == 255
    assert box.area == 400
    assert np.asarray(image).sum() == 255 * box.area


def test_voc_is_one_based_and_inclusive_and_round_trips():
    whole = Box(0, 0, 500, 375)
    assert boxes.to_voc(whole) == (1, 1, 500, 375)
    assert boxes.from_voc(1, 1, 500, 375) == whole
    assert boxes.from_voc(0, 0, 500, 375) == whole  # some ImageNet files start at 0
    box = Box(17, 3, 240, 99)
    assert boxes.from_voc(*boxes.to_voc(box)) == box


def test_tiny_imagenet_boxes_are_zero_based_and_inclusive():
    assert boxes.from_inclusive(0, 0, 63, 63) == Box(0, 0, 64, 64)
    assert boxes.from_inclusive(5, 6, 7, 8).area == 3 * 3


def test_label_studio_percent_and_crowd_bounding_box_pixels():
    assert boxes.from_percent(10, 20, 50, 40, 500, 375) == Box(50, 75, 300, 225)
    assert boxes.from_ltwh(12.4, 7.6, 100.2, 50) == Box(12, 8, 113, 58)


@pytest.mark.parametrize(
    "box, reason",
    [
        ((0, 0, 500, 375), None),
        ((10, 10, 10, 20), "no area"),
        ((30, 10, 20, 20), "no area"),
        ((-1, 0, 20, 20), "outside"),
        ((0, 0, 501, 375), "outside"),
        ((0, 0, 20, 376), "outside"),
        ((0.5, 0, 20, 20), "four integers"),
        ((True, 0, 20, 20), "four integers"),
        ((0, 0, 20), "four integers"),
    ],
)
def test_problem_names_what_is_wrong(box, reason):
    found = boxes.problem(box, 500, 375)
    assert (found is None) if reason is None else (reason in found)


def test_clip_keeps_a_box_inside_its_image():
    assert boxes.clip((-3, 5, 510, 380), 500, 375) == Box(0, 5, 500, 375)


def test_iou_agrees_with_torchvision_on_random_boxes():
    ops = pytest.importorskip("torchvision.ops", reason="torchvision (dev extra) is the IoU oracle")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 200, (2, 300, 2, 2))
    a = np.concatenate([corners[0].min(1), corners[0].max(1) + 1], axis=1)
    b = np.concatenate([corners[1].min(1), corners[1].max(1) + 1], axis=1)
    expected = ops.box_iou(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(boxes.iou_matrix(a, b), expected, rtol=1e-12)


def test_inclusive_iou_is_the_devkits_formula_and_equals_ours_after_conversion():
    a, b = Box(10, 10, 60, 40), Box(30, 20, 80, 70)
    va, vb = boxes.to_voc(a), boxes.to_voc(b)
    iw = min(va[2], vb[2]) - max(va[0], vb[0]) + 1
    ih = min(va[3], vb[3]) - max(va[1], vb[1]) + 1
    union = (va[2] - va[0] + 1) * (va[3] - va[1] + 1) + (vb[2] - vb[0] + 1) * (vb[3] - vb[1] + 1) - iw * ih
    assert boxes.iou(va, vb, inclusive=True) == pytest.approx(iw * ih / union)
    assert boxes.iou(a, b) == pytest.approx(boxes.iou(va, vb, inclusive=True))
    assert boxes.iou(a, a) == 1.0
    assert boxes.iou(Box(0, 0, 10, 10), Box(10, 0, 20, 10)) == 0.0  # touching edges share no pixel
