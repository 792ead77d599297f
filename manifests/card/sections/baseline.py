"""The baseline's results: what the bundled AlexNet reached on this dataset, from the newest
finished run's ``metrics.json`` (read as a report, never by importing the trainer), so a
reader of the card knows what a first model gets before training one. ILSVRC's measures:
top-1 and top-5 classification error, and with boxes its localization error (the guessed class
right and its box at IoU >= 0.5 with a true box; Russakovsky et al., IJCV 2015)."""

from __future__ import annotations

from pathlib import Path

from ..facts import Facts
from .markdown import code, table, text


def section_baseline(facts: Facts, figures) -> list[str]:
    lines = ["## Baseline results", ""]
    run = facts.run
    if run is None:
        return lines + [
            f"No finished baseline run in `{facts.name(facts.layout.runs)}/`: `make train` trains the bundled "
            "AlexNet, and the card made after it reports the run's figures here.",
            "",
        ]
    settings = run["settings"]
    lines += [
        f"The bundled {code(run['arch'])} trained on the train split ({code(facts.name(run['path'].parent) + '/')}): "
        f"{run['epochs_done']} epochs on {text(run['device'])}, {settings.get('size', '?')} px crops, "
        f"{run['classes']:,} classes (chance top-1 error {_pct(run['chance_top1_error'])}). Errors on the "
        "centre crop, and averaged over ten crops as AlexNet reported them.",
        "",
    ]
    if _stale(facts):
        lines += [
            "> **Note: this run trained on an earlier version of the manifests**; train again "
            "(`make train`) for figures of the splits above.",
            "",
        ]
    scored = [(s, run[s]) for s in ("val", "test") if run.get(s)]
    lines += table(
        ["split", "images", "top-1 error", "top-5 error", "top-1 error, 10 crops", "top-5 error, 10 crops"],
        [
            [
                s,
                r["images"],
                *(_pct(r[k][crop]) for crop in ("center", "ten_crop") for k in ("top1_error", "top5_error")),
            ]
            for s, r in scored
        ],
    )
    lines.append("")
    boxed = [(s, r) for s, r in scored if r.get("top1_loc_error") is not None]
    if boxed:
        lines += [
            "Localization, over the images with boxes: the first guess's box right (IoU >= 0.5), against the "
            "whole image as the box.",
            "",
            *table(
                ["split", "images with boxes", "top-1 loc. error", "top-5 loc. error", "box IoU >= 0.5", "whole image"],
                [[s, r["images_with_boxes"], *(_pct(r[k]) for k in LOCALIZATION)] for s, r in boxed],
            ),
            "",
        ]
    reference = run.get("reference_alexnet_ilsvrc2012")
    if reference:
        lines += [
            f"For scale: AlexNet on ILSVRC-2012's 1,000 classes, {_pct(reference['top1_error'])} top-1 and "
            f"{_pct(reference['top5_error'])} top-5 error (Krizhevsky et al., 2012).",
            "",
        ]
    return lines


LOCALIZATION = ("top1_loc_error", "top5_loc_error", "box_iou_50", "whole_image_iou_50")


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def _stale(facts: Facts) -> bool:
    """Whether the run read manifests other than these (by name, size and modification time,
    as the trainer records its inputs)."""
    if facts.run.get("origin", "manifests") != "manifests":
        return False
    current = {p.name: p for p in facts.layout.manifests.glob("*.parquet")}
    for name, size, mtime in facts.run["inputs"]:
        now = current.get(Path(name).name)
        if now is not None and Path(name).parent.name == now.parent.name:
            st = now.stat()
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                return True
    return False
