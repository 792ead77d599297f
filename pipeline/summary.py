"""``python -m pipeline summary``: one table of every stage's figures, from the reports they left.

The last step of ``make demo``; useful after any run. A stage that has not run shows a dash.
Reports are read against their declarations (``pipeline.schemas``), so a renamed key fails
here instead of showing a wrong figure.
"""

from __future__ import annotations

import argparse
import os

from . import schemas
from .layout import Layout
from .remote import data_location
from .tables import read_report

HELP = "print a table of every stage's figures for DATA/SUBSET"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=data_location, default=data_location(os.environ.get("DATA", "data")))
    parser.add_argument("--subset", default=os.environ.get("SUBSET", "demo"))


def newest_run(layout: Layout) -> dict | None:
    """The newest finished baseline run's figures (its ``metrics.json``, read against its
    declaration rather than by importing the trainer) and ``path``, the file; None without one."""
    runs = layout.run_metrics()
    if not runs:
        return None
    return read_report(runs[-1], schemas.TRAIN_METRICS) | {"path": runs[-1]}


def _counts(counts: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items()) if counts else "none"


def _synsets(r: dict) -> str:
    return f"{r['num_synsets']} classes of WordNet {r['wordnet']['version']}"


def _candidates(r: dict) -> str:
    return f"{r['candidates']} from {r['source']}"


def _download(r: dict) -> str:
    failures = {k: v for k, v in r["statuses"].items() if k != "ok"}
    return f"{r['ok']} of {r['candidates']} ok ({r['ok_percent']}%); failures: {_counts(failures)}"


def _dedupe(r: dict) -> str:
    return f"{r['kept']} of {r['images']} kept; dropped: {_counts(r['dropped'])}; {len(r['conflicts'])} conflicts"


def _annotation(r: dict) -> str:
    return (
        f"{r['accepted']} accepted, {r['rejected']} rejected, {r['undecided']} undecided in {len(r['rounds'])} "
        f"rounds, {r['mean_votes_per_image']} votes per image, "
        f"{len(r['workers_excluded'])} of {r['workers']} workers excluded"
    )


def _boxes(r: dict) -> str:
    return (
        f"{r['accepted']} boxes on {r['images_complete']} of {r['images']} images fully boxed in "
        f"{len(r['rounds'])} rounds ({r['mean_boxes_per_image']} a boxed image), "
        f"{len(r['workers_excluded'])} of {r['workers']} workers excluded"
    )


def _manifests(r: dict) -> str:
    return f"{r['classes']} classes: {_counts(r['images'])}" + ("" if r["verified"] else " (UNVERIFIED labels)")


def _validate(r: dict) -> str:
    failed = [k for k, c in r["checks"].items() if not c["ok"]]
    return "FAILED: " + ", ".join(failed) if failed else "all checks ok"


# (row name, the stage whose report it reads, its declaration, what the row says of it)
REPORT_ROWS = (
    ("synsets", "synsets", schemas.SYNSETS_REPORT, _synsets),
    ("candidates", "candidates", schemas.CANDIDATES_REPORT, _candidates),
    ("download", "download", schemas.DOWNLOAD_REPORT, _download),
    ("dedupe", "dedupe", schemas.DEDUPE_REPORT, _dedupe),
    ("annotation", "annotate-import", schemas.ANNOTATE_IMPORT_REPORT, _annotation),
    ("boxes", "annotate-import-boxes", schemas.ANNOTATE_IMPORT_BOXES_REPORT, _boxes),
    ("manifests", "manifests", schemas.MANIFESTS_REPORT, _manifests),
    ("validate", "validate", schemas.VALIDATE_REPORT, _validate),
)


def rows(layout: Layout) -> list[tuple[str, str]]:
    table = []
    for name, stage, declaration, describe in REPORT_ROWS:
        report = read_report(layout.report(stage), declaration, missing_ok=True)
        table.append((name, describe(report) if report else "-"))
    run = newest_run(layout)
    table.append(("baseline", _baseline(run) if run else "-"))
    table.append(("dataset card", str(layout.card) if layout.card.exists() else "-"))
    return table


def _baseline(run: dict) -> str:
    """Top-1 and top-5 error, centre crop / 10-crop, of the latest run's test (else val) split."""
    split = "test" if run["test"] else "val"
    errors = run[split] or {}

    def centre_and_ten_crop(kind: str) -> str:
        value = errors.get(kind, {})
        return " / ".join(f"{100 * value[c]:.1f}%" for c in ("center", "ten_crop") if value.get(c) is not None) or "?"

    located = ""
    if errors.get("top1_loc_error") is not None:
        located = (
            f", localization top-1 error {100 * errors['top1_loc_error']:.1f}%"
            f" ({errors['images_with_boxes']} images with boxes)"
        )
    return (
        f"{split}: top-1 error {centre_and_ten_crop('top1_error')}, top-5 error {centre_and_ten_crop('top5_error')} "
        f"(centre / 10-crop; chance {100 * run['chance_top1_error']:.0f}%){located}, {run['arch']} in {run['path'].parent}"
    )


def run(args: argparse.Namespace) -> None:
    layout = Layout(args.data / args.subset)
    table = rows(layout)
    width = max(len(name) for name, _ in table)
    print(f"synsetforge: {layout.root}")
    for name, figures in table:
        print(f"  {name:<{width}}  {figures}")
