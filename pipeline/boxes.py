"""Object boxes: the one coordinate convention every table holds, the conversions at the
edges where other tools' conventions meet it, and intersection over union.

**Our convention** (``schemas.BOXES``, ``schemas.BOX_MANIFEST`` and every table with box
columns): integer pixel edges of the *stored* image, 0-based, the far edges exclusive::

    0 <= xmin < xmax <= width        0 <= ymin < ymax <= height

so the box covers pixel columns ``xmin .. xmax-1`` and rows ``ymin .. ymax-1``, its width is
``xmax - xmin`` and a box of the whole image is ``(0, 0, width, height)``. This is the
convention of torchvision's ``box_iou`` and of Pillow's ``crop`` box, so a box crops with
``image.crop((xmin, ymin, xmax, ymax))``.

**Other conventions**, converted only here:

- PASCAL VOC, ILSVRC's ``Annotations/CLS-LOC`` XML and Kaggle's ``LOC_*_solution.csv``:
  1-based, both edges inclusive (a whole 500x375 image is ``1 1 500 375``); the ILSVRC devkit
  scores them with ``iw = min(xmax) - max(xmin) + 1``. ``to_voc``/``from_voc`` (``from_voc``
  also takes the 0 some ImageNet files hold for a box at the left or top edge).
- Tiny ImageNet's ``<wnid>_boxes.txt`` and ``val_annotations.txt``: 0-based, inclusive
  (``0 0 63 63`` is the whole 64x64 image). ``from_inclusive``.
- Label Studio's ``rectanglelabels``: x, y, width, height in percent of the image. ``from_percent``.
- MTurk's ``crowd-bounding-box``: left, top, width, height in pixels of the image as loaded
  (its natural size, the stored image's). ``from_ltwh``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

COLUMNS = ("xmin", "ymin", "xmax", "ymax")


class Box(NamedTuple):
    """A box in our convention (see the module docstring)."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    @property
    def area(self) -> int:
        return max(self.xmax - self.xmin, 0) * max(self.ymax - self.ymin, 0)


def problem(box: tuple, width: int, height: int) -> str | None:
    """Why ``box`` (ours) is not a box of a ``width`` x ``height`` image, or None: a coordinate
    that is not an integer, outside the image, or a box of no area."""
    if len(box) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box):
        return "coordinates must be four integers"
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    if xmin >= xmax or ymin >= ymax:
        return f"no area: xmin {xmin} must be below xmax {xmax} and ymin {ymin} below ymax {ymax}"
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        return f"outside the {width}x{height} image: ({xmin}, {ymin}, {xmax}, {ymax})"
    return None


def bad_edge(box: tuple, width: int, height: int) -> str:
    """The first of xmin, ymin, xmax, ymax that makes ``box`` (ours, four integers) no box of a
    ``width`` x ``height`` image: the field an error names (``problem`` says why)."""
    xmin, ymin, xmax, ymax = box
    wrong = {
        "xmin": xmin < 0,
        "ymin": ymin < 0,
        "xmax": xmax > width or xmax <= xmin,
        "ymax": ymax > height or ymax <= ymin,
    }
    return next((edge for edge, bad in wrong.items() if bad), "xmin")


def to_voc(box: tuple) -> tuple[int, int, int, int]:
    """Ours -> PASCAL VOC / ILSVRC / Kaggle LOC (1-based, inclusive)."""
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    return xmin + 1, ymin + 1, xmax, ymax


def from_voc(xmin: int, ymin: int, xmax: int, ymax: int) -> Box:
    """PASCAL VOC / ILSVRC / Kaggle LOC (1-based, inclusive) -> ours; a 0 (some ImageNet files
    start boxes there) reads as the first pixel, as 1 does."""
    return Box(max(int(xmin) - 1, 0), max(int(ymin) - 1, 0), int(xmax), int(ymax))


def from_inclusive(x0: int, y0: int, x1: int, y1: int) -> Box:
    """0-based, inclusive (Tiny ImageNet) -> ours."""
    return Box(int(x0), int(y0), int(x1) + 1, int(y1) + 1)


def from_ltwh(left: float, top: float, width: float, height: float) -> Box:
    """Pixels as left, top, width, height (MTurk's crowd-bounding-box) -> ours, rounded."""
    return Box(round(left), round(top), round(left + width), round(top + height))


def from_percent(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    """Percent of a ``width`` x ``height`` image (Label Studio) -> ours, rounded."""
    return Box(
        round(x * width / 100), round(y * height / 100), round((x + w) * width / 100), round((y + h) * height / 100)
    )


def to_ltwh(box: tuple) -> tuple[int, int, int, int]:
    """Ours -> left, top, width, height in pixels (crowd-bounding-box's ``initial-value``)."""
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    return xmin, ymin, xmax - xmin, ymax - ymin


def to_percent(box: tuple, width: int, height: int) -> tuple[float, float, float, float]:
    """Ours -> x, y, width, height in percent of a ``width`` x ``height`` image (Label Studio's
    pre-annotations); ``from_percent`` reads it back to the same box."""
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    return (
        100 * xmin / width,
        100 * ymin / height,
        100 * (xmax - xmin) / width,
        100 * (ymax - ymin) / height,
    )


def clip(box: tuple, width: int, height: int) -> Box:
    """``box`` cut to the image (a drawing tool may let a corner stray past the edge)."""
    xmin, ymin, xmax, ymax = box
    return Box(
        min(max(int(xmin), 0), width),
        min(max(int(ymin), 0), height),
        min(max(int(xmax), 0), width),
        min(max(int(ymax), 0), height),
    )


def iou_matrix(a, b, *, inclusive: bool = False) -> np.ndarray:
    """IoU of every box of ``a`` (n x 4) with every box of ``b`` (m x 4): an n x m array.

    ``inclusive``: the boxes are VOC-style inclusive pixel indices and areas count ``+ 1`` on
    each side, as the ILSVRC devkit's ``eval_localization`` does; otherwise our edges."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return iou_pairs(a[:, None], b[None, :], inclusive=inclusive)


def iou_pairs(a, b, *, inclusive: bool = False) -> np.ndarray:
    """IoU of the boxes ``a[..., i, :]`` and ``b[..., i, :]`` pair by pair, their leading axes
    broadcast as numpy does: IoU of many (guess, true box) pairs at once, where ``iou_matrix``
    would compute every pair of all of them. ``inclusive``: as ``iou_matrix``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    one = 1.0 if inclusive else 0.0
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    union = union + (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def iou(a: tuple, b: tuple, *, inclusive: bool = False) -> float:
    """IoU of two boxes (see ``iou_matrix``)."""
    return float(iou_matrix([a], [b], inclusive=inclusive)[0, 0])
