"""What the trainer prints: a line per epoch, a line per scored split, the progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.progress import progress


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    """The log of a rank other than 0: rank 0 alone prints."""


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def epoch_line(row: dict, epochs: int) -> str:
    line = (
        f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.3f}, top-1 error {pct(row['train_top1_error'])}, "
        f"lr {row['lr']:.3g}, {row['images_per_s'] or 0:.0f} img/s, waiting for data {pct(row['data_wait_share'])}"
    )
    if "val_top1_error" in row:
        line += (
            f"; val loss {row['val_loss']:.3f}, top-1 error {pct(row['val_top1_error'])}, "
            f"top-5 error {pct(row['val_top5_error'])}"
        )
    if "val_box_iou_50" in row:
        line += f", box IoU >= 0.5 {pct(row['val_box_iou_50'])}"
    return line


def split_line(name: str, scores: dict, chance: float | None = None) -> str:
    """A split's top-1 and top-5 error on centre crops and 10-crops (``evaluate.score_splits``)."""
    top1, top5 = scores["top1_error"], scores["top5_error"]
    return (
        f"{name} ({scores['images']} images): top-1 error {pct(top1['center'])} centre, "
        f"{pct(top1['ten_crop'])} 10-crop; top-5 error {pct(top5['center'])} centre, {pct(top5['ten_crop'])} 10-crop"
        + (f" (chance {pct(chance)})" if chance is not None else "")
    )


def box_line(name: str, scores: dict) -> str:
    """A split's localization: ILSVRC's errors (a guess counts when its class is right and its
    box overlaps a true box by half) and how often the first guess's box, or the whole image, does."""
    return (
        f"{name} localization ({scores['images_with_boxes']} images with boxes): top-1 error "
        f"{pct(scores['top1_loc_error'])}, top-5 error {pct(scores['top5_loc_error'])}; box IoU >= 0.5 "
        f"{pct(scores['box_iou_50'])} (the whole image {pct(scores['whole_image_iou_50'])})"
    )


def _class(entry: dict) -> str:
    return entry["wnid"] if entry["name"] == entry["wnid"] else f"{entry['wnid']} {entry['name']}"


def worst_line(worst: dict, split: str) -> str:
    """The class with the lowest top-1 accuracy (``metrics.per_class``): its share of images
    guessed right, said as such beside the error figures, and the class it is most taken for."""
    other = worst["most_confused_with"]
    right = round(worst["accuracy"] * worst["images"])
    return (
        f"worst class on {split} (top-1, 10-crop): {_class(worst)}, {pct(worst['accuracy'])} correct "
        f"({right} of {worst['images']} images)"
        + (f", most often taken for {_class(other)} ({other['images']} images)" if other else "")
    )


def final_lines(result: dict, run: Path) -> str:
    lines = [split_line(name, result[name], result["chance_top1_error"]) for name in ("val", "test") if result[name]]
    lines += [box_line(name, result[name]) for name in ("val", "test") if (result[name] or {}).get("images_with_boxes")]
    if result.get("worst_classes"):
        lines.append(worst_line(result["worst_classes"][0], result.get("per_class_split", "val")))
    if result["skipped_rows"]:
        lines.append(f"skipped {result['skipped_rows']} bad rows: {result['skipped']}")
    lines.append(f"wrote {run}/metrics.json")
    return "\n".join(lines)


def progress_bar(total: int, description: str, enabled: bool):
    """A bar of images (lines now and then in a log: ``pipeline.progress``), or None when
    disabled: the epoch line says it all."""
    if not enabled:
        return None
    return progress(total=total, desc=description, unit="img", leave=False, smoothing=0.1)
