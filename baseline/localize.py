"""Object boxes in training and scoring: ILSVRC's classification with localization.

Where the manifests have boxes (``manifests/boxes.parquet``), AlexNet regresses the box of
an image's class beside classifying it (``model``'s box head), as the 2012 localization
entries did. Training: the target is the image's largest box (``dataset.SplitBoxes``) placed
in the random crop exactly as the pixels were (``transforms.box_to_crop``: cut with the crop,
mirrored with a flip, fractions of the crop whatever it is scaled to), the loss smooth L1 on
those fractions, counted only for images whose box shows in their crop; the images without
boxes train the classifier alone. Class-specific heads are trained on the true class's four
numbers. Scoring: each crop's box for each of the five best classes is mapped back to the
stored image's pixels and the crops' boxes are averaged (10-crop: the four corners, the
centre and their mirrors), then written as a Kaggle submission and scored by
``pipeline.evaluation``, the evaluator any model's submission gets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline import evaluation, pixels, schemas
from pipeline.boxes import Box, clip, iou_matrix
from pipeline.tables import read_table

from .dataset import Blobs, DataSet, Split
from .plot import boxes_figure
from .transforms import View, box_from_crop, box_to_crop, in_crop, placements

BOX_WEIGHT = 4.0  # the box loss beside the cross-entropy (on Tiny ImageNet-10 at 64 px: 1 gave 68.4% of val boxes at IoU >= 0.5, 4 gave 72.2%, 8 with 40 epochs 71.0%)
BETA = 0.1  # smooth L1: quadratic within a tenth of the crop's side, linear beyond (Fast R-CNN's loss)
TOP = 5  # guesses per image, each with its box (ILSVRC's five)
FIGURE_IMAGES = 16


def has_boxes(data: DataSet) -> bool:
    """Whether the training split has any box to learn from (else no box head)."""
    boxes = data.splits["train"].boxes
    return boxes is not None and boxes.with_boxes > 0


def targets(split: Split, view: View, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch's box targets in its crops' fractions (B, 4), and which images have one
    that shows in their crop (B,)."""
    at = indices.numpy()
    crops, flips = placements(view, split.boxes.sizes, at)
    fractions = box_to_crop(split.boxes.targets[at], crops[:, 0], flips)
    with np.errstate(invalid="ignore"):
        shown = ~np.isnan(fractions).any(1) & in_crop(fractions)
    return torch.from_numpy(np.nan_to_num(fractions)).float(), torch.from_numpy(shown)


def class_boxes(boxes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The head's boxes (..., outputs) for ``classes`` (..., T): (..., T, 4); a class-agnostic
    head gives its one box for every class."""
    per_class = boxes.unflatten(-1, (-1, 4))
    shape = (*classes.shape, 4)
    if per_class.shape[-2] == 1:
        return per_class.expand(shape)
    return per_class.gather(-2, classes.unsqueeze(-1).expand(shape))


def box_loss(boxes: torch.Tensor, labels: torch.Tensor, target: torch.Tensor, shown: torch.Tensor) -> torch.Tensor:
    """Smooth L1 over the four fractions of the true class's box, averaged over the images with
    a box in their crop (zero, with the head still in the graph, when none has)."""
    predicted = class_boxes(boxes, labels[:, None])[:, 0]
    per_image = F.smooth_l1_loss(predicted, target, beta=BETA, reduction="none").sum(1)
    return (per_image * shown).sum() / shown.sum().clamp_min(1)


def placed(boxes: torch.Tensor, top: torch.Tensor, view: View, split: Split, indices: torch.Tensor) -> np.ndarray:
    """An evaluation batch's boxes (B, k crops, outputs) for its guesses ``top`` (B, T) in the
    stored images' pixels, averaged over the crops: (B, T, 4) floats. The batch holds the view's
    crops, then (10-crop) their mirrors."""
    b, k = boxes.shape[:2]
    chosen = class_boxes(boxes, top[:, None, :].expand(b, k, top.shape[1])).float().cpu().numpy()
    crops, _ = placements(view, split.boxes.sizes, indices.numpy())
    flips = np.arange(k) >= crops.shape[1]
    crops = np.concatenate([crops] * (k // crops.shape[1]), 1)
    return box_from_crop(chosen, crops[:, :, None, :], flips[None, :, None]).mean(1)


def to_pixels(box: np.ndarray, width: int, height: int) -> Box:
    """A predicted box (floats, stored pixels) as our convention: rounded, clipped to the
    image, at least one pixel each way."""
    xmin, ymin, xmax, ymax = clip(tuple(int(v) for v in np.round(box)), width, height)
    xmin, ymin = min(xmin, width - 1), min(ymin, height - 1)
    return Box(xmin, ymin, max(xmax, xmin + 1), max(ymax, ymin + 1))


def report(run: Path, workdir: Path, data: DataSet, name: str, scored: dict) -> dict:
    """Write split ``name``'s guesses with their boxes (an evaluation's 10-crop results) as
    ``submission-<name>.csv``, score it with ``pipeline.evaluation``, and measure how often the
    first guess's box, and the whole image, overlap a true box by half (IoU >= 0.5). An image
    of the manifest that was not scored (a bad row skipped) has a row without guesses, which
    the evaluator counts as wrong."""
    split = data.splits[name]
    sizes, wnids = split.boxes.sizes, data.classes.wnids
    rows = {
        image_id: []
        for image_id in read_table(split.sources[0], schemas.MANIFEST, ["image_id"])["image_id"].to_pylist()
    }
    for i, top, boxes in zip(scored["indices"], scored["top"], scored["boxes"]):
        width, height = (int(v) for v in sizes[i])
        rows[split.image_ids[i]] = [(wnids[c], to_pixels(box, width, height)) for c, box in zip(top, boxes)]
    submission = run / f"submission-{name}.csv"
    evaluation.write_submission(submission, rows.items())
    scores = evaluation.score(workdir, name, submission)
    whole = [(0, 0, int(sizes[i, 0]), int(sizes[i, 1])) for i in scored["indices"]]
    return {
        "images_with_boxes": scores["images_with_boxes"],
        "top1_loc_error": scores["top1_loc_error"],
        "top5_loc_error": scores["top5_loc_error"],
        "box_iou_50": overlap(split, scored["indices"], first_boxes(split, scored)),
        "whole_image_iou_50": overlap(split, scored["indices"], whole),
        "submission": submission.name,
    }


def overlap(split: Split, indices: np.ndarray, boxes: list) -> float | None:
    """The share of the images with boxes where ``boxes`` (one each, whole pixels, by ``indices``)
    overlaps one of the image's true boxes by half (IoU >= 0.5, whatever the class guessed)."""
    hits = [
        iou_matrix([box], split.boxes.boxes[i]).max() >= 0.5
        for i, box in zip(indices, boxes)
        if len(split.boxes.boxes[i])
    ]
    return float(np.mean(hits)) if hits else None


def first_boxes(split: Split, scored: dict) -> list[Box]:
    """The first guess's box of each scored image, in whole pixels."""
    sizes = split.boxes.sizes
    return [
        to_pixels(boxes[0], int(sizes[i, 0]), int(sizes[i, 1])) for i, boxes in zip(scored["indices"], scored["boxes"])
    ]


def figure(path: Path, data: DataSet, name: str, scored: dict) -> str | None:
    """A grid of the split's first images with boxes: their true boxes and the first guess's
    predicted box, captioned with the guess. None when the split has no boxes."""
    split = data.splits[name]
    order = {int(i): k for k, i in enumerate(scored["indices"])}
    chosen = [i for i in range(len(split)) if len(split.boxes.boxes[i]) and i in order][:FIGURE_IMAGES]
    if not chosen:
        return None
    keep = np.zeros(len(split), dtype=bool)
    keep[chosen] = True
    blobs = Blobs.load(data, split.subset(keep))
    panels = []
    for n, i in enumerate(chosen):  # subset keeps the split's order
        k = order[i]
        guess = int(scored["top"][k][0])
        width, height = (int(v) for v in split.boxes.sizes[i])
        panels.append(
            (
                pixels.decode(blobs[n]),
                split.boxes.boxes[i].tolist(),
                tuple(to_pixels(scored["boxes"][k][0], width, height)),
                data.classes.names[guess] + ("" if guess == split.labels[i] else " (wrong)"),
            )
        )
    boxes_figure(panels, path)
    return path.name
