"""Composition (Gebru et al., "Datasheets for Datasets"): what an instance is, the
labels, the splits and their sizes per class, the classes, the object boxes, what a user checks
before training (image sizes, copies across splits, the WordNet make-up) and sample thumbnails."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.layout import SPLITS

from ..facts import Facts
from .markdown import SHOWN, code, embed, pct, settings_text, table, text

LISTED_CLASSES = 50  # above this, the card lists the smallest and largest classes only


def _class_rows(classes: pd.DataFrame) -> list[list]:
    return [[c.label, code(c.wnid), text(c.name), c.train, c.val, c.test] for c in classes.itertuples()]


def section_composition(facts: Facts, figures) -> list[str]:
    classes = facts.classes.sort_values("label")
    lines = [
        "## Composition",
        "",
        f"Each instance is one image (RGB, in the image store `{facts.name(facts.layout.images)}/`) with one class "
        "label. Labels are "
        f"0-based and number the {len(classes):,} kept classes in sorted-wnid order (as torchvision, Kaggle "
        f"and Hugging Face number ILSVRC), so label 0 is {code(classes.wnid.iloc[0] if len(classes) else '-')}; "
        f"`{facts.name(facts.layout.classes)}` maps label, wnid, name and gloss.",
        "",
    ]
    split_rows = []
    for s in SPLITS:
        per_class = classes[s]
        split_rows.append(
            [
                s,
                len(facts.splits[s]),
                int((per_class > 0).sum()),
                int(per_class.min()) if len(per_class) else 0,
                f"{per_class.median():g}" if len(per_class) else 0,
                int(per_class.max()) if len(per_class) else 0,
            ]
        )
    lines += table(["split", "images", "classes with images", "min per class", "median", "max"], split_rows) + [""]
    lines += embed(figures, "splits", "images per class and split")
    report = facts.manifests_report
    plan = report["plan"] if report else None
    if plan:
        lines += [
            f"Split rules: {settings_text(plan)}. Val and test take their images first, then train takes up to "
            "`train_max` of the rest; every cluster of near copies lies in one split.",
            "",
        ]
    small, dropped = (report["classes_below_min_train"], report["classes_dropped"]) if report else ([], [])
    if small:
        lines += [
            f"{len(small):,} classes have fewer than {plan['min_train']} training images "
            f"(ILSVRC-2012's smallest class has 732): {', '.join(code(w) for w in small[:SHOWN])}"
            f"{' ...' if len(small) > SHOWN else ''}.",
            "",
        ]
    if dropped:
        lines += [
            f"{len(dropped):,} chosen synsets are not in the dataset (no eligible images, or dropped as too "
            f"small): {', '.join(code(w) for w in dropped[:SHOWN])}{' ...' if len(dropped) > SHOWN else ''}.",
            "",
        ]
    if len(classes) <= LISTED_CLASSES:
        lines += [
            "### Classes",
            "",
            *table(["label", "wnid", "name", "train", "val", "test"], _class_rows(classes)),
            "",
        ]
    else:
        by_train = classes.sort_values(["train", "label"])
        lines += [
            f"### Smallest and largest classes (by training images; all {len(classes):,} in `{facts.name(facts.layout.classes)}`)",
            "",
            *table(
                ["label", "wnid", "name", "train", "val", "test"],
                _class_rows(by_train.head(SHOWN)) + [["...", "", "", "", "", ""]] + _class_rows(by_train.tail(SHOWN)),
            ),
            "",
        ]
    lines += _box_lines(facts)
    lines += _composition_facts(facts)
    lines += [
        "### Samples",
        "",
        "Thumbnails per class, the first images of each class in sha256 order (a fixed, arbitrary draw from "
        "all splits)"
        + (f", for {facts.sampled} classes spread over the labels" if len(classes) > facts.sampled else "")
        + ":",
        "",
    ]
    if facts.store is None and "samples" in figures:
        lines += [
            f"The image store `{facts.name(facts.layout.images)}/` is absent: the thumbnails are placeholders.",
            "",
        ]
    lines += (
        embed(figures, "samples", "sample images per class") if "samples" in figures else ["_No samples drawn._", ""]
    )
    return lines


BOX_CONVENTION = (
    "integer pixel edges of the stored (upright) image, 0-based, xmax and ymax exclusive "
    "(`0 <= xmin < xmax <= width`); the ilsvrc export writes them as ILSVRC's 1-based, inclusive VOC coordinates"
)


def _box_lines(facts: Facts) -> list[str]:
    """How many images of each split have object boxes, boxes per image, where they came from."""
    lines = ["### Object boxes", ""]
    boxes = facts.boxes
    if boxes is None or boxes.empty:
        return lines + ["This dataset has no object boxes: its images carry class labels only.", ""]
    per_image = boxes.groupby("image_id").size()
    rows = []
    for s in SPLITS:
        in_split = boxes[boxes.split == s]
        images = len(facts.splits[s])
        boxed = in_split.image_id.nunique()
        rows.append([s, images, boxed, pct(boxed, images), len(in_split)])
    lines += [
        f"`{facts.name(facts.layout.box_manifest)}` holds one row per box of a manifest image, with its split "
        f"and label. Coordinates: {BOX_CONVENTION}.",
        "",
        *table(["split", "images", "images with boxes", "share", "boxes"], rows),
        "",
        f"- Boxes per boxed image: median {per_image.median():g}, mean {per_image.mean():.2f}, "
        f"max {per_image.max():,}.",
        f"- Sources: {', '.join(f'{text(k)} {v:,}' for k, v in boxes.source.value_counts().items())} boxes.",
    ]
    crowd = facts.box_sources
    if crowd is not None:
        crowd = crowd[(crowd.source == "crowd") & crowd.image_id.isin(boxes.image_id)]
    if crowd is not None and len(crowd):
        lines.append(
            f"- Crowd boxes (drawn, judged and merged after Su, Deng and Fei-Fei, HCOMP 2012): each the "
            f"consensus of a median {crowd.drawn_by.median():g} drawn boxes (from {crowd.drawn_by.min()} to "
            f"{crowd.drawn_by.max()}), approved by a median {crowd.approved_by.median():g} workers "
            f"(from {crowd.approved_by.min()} to {crowd.approved_by.max()})."
        )
    if (boxes.source == "imported").any():
        lines.append("- Imported boxes came with the dataset's own files (ILSVRC XML or Kaggle LOC solution files).")
    return lines + [""]


def _composition_facts(facts: Facts) -> list[str]:
    """Sizes, copies across splits and the WordNet make-up: what a user checks before training."""
    rows = facts.rows
    lines = []
    if len(rows):
        longer = np.maximum(rows.width, rows.height)
        lines.append(
            f"- Stored image size: longer side {longer.min():,} to {longer.max():,} px (median "
            f"{longer.median():g}); shorter side from {np.minimum(rows.width, rows.height).min():,} px."
        )
        shared = rows.groupby("sha256").split.nunique()
        near = rows.groupby("phash").split.nunique()
        lines.append(
            f"- Copies across splits, checked from the manifests: {int((shared > 1).sum()):,} identical files "
            f"(sha256) and {int((near > 1).sum()):,} identical pHashes appear in more than one split."
        )
        several = rows.groupby("image_id").wnid.nunique()
        lines.append(f"- Images under more than one class: {int((several > 1).sum()):,}.")
    report = facts.synsets_report
    if report:
        lexnames = ", ".join(f"{text(k)} {v:,}" for k, v in sorted(report["lexnames"].items(), key=lambda kv: -kv[1]))
        lines.append(f"- WordNet lexicographer files of the chosen synsets: {lexnames}.")
        pairs = report["num_ancestor_pairs"]
        lines.append(
            f"- Pairs of classes where one is an ancestor of the other: {pairs:,}"
            + (" (an image of the child is also an image of the parent: labels overlap)." if pairs else ".")
        )
        names = report["duplicate_names"]
        if names:
            shown = "; ".join(f"{text(n)} ({', '.join(map(code, ws))})" for n, ws in list(names.items())[:SHOWN])
            lines.append(f"- Class names that several classes share (tell them apart by wnid): {shown}.")
    else:
        absent = facts.name(facts.layout.report("synsets"))
        lines.append(f"- WordNet make-up of the classes: unknown (`{absent}` is absent).")
    if facts.synsets is not None:
        kept = facts.synsets[facts.synsets.wnid.isin(facts.classes.wnid)]
        people = int((kept.lexname == "noun.person").sum())
        lines.append(
            f"- Classes of people (`noun.person`): {people:,}"
            + (". Their images show identifiable people: see Uses and the licences." if people else ".")
        )
    return lines + [""]
