"""``python -m pipeline summary``: one table of every stage's figures, from the reports they left.

The last step of ``make demo``; useful after any run. A stage that has not run shows a dash.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .remote import data_location

HELP = "print a table of every stage's figures for DATA/SUBSET"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=data_location, default=data_location(os.environ.get("DATA", "data")))
    parser.add_argument("--subset", default=os.environ.get("SUBSET", "demo"))


def _report(workdir: Path, name: str) -> dict:
    try:
        return json.loads((workdir / name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _latest_run(workdir: Path) -> dict:
    runs = sorted((workdir / "runs").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(runs[-1].read_text()) | {"path": str(runs[-1].parent)} if runs else {}


def _counts(counts: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items()) if counts else "none"


def rows(workdir: Path) -> list[tuple[str, str]]:
    synsets = _report(workdir, "synsets_report.json")
    candidates = _report(workdir, "candidates_report.json")
    download = _report(workdir, "download_stats.json")
    dedupe = _report(workdir, "dedupe/report.json")
    annotation = _report(workdir, "annotation/report.json")
    manifests = _report(workdir, "manifests/report.json")
    validation = _report(workdir, "validation.json")
    run = _latest_run(workdir)
    table = [
        ("synsets", f"{synsets['num_synsets']} classes of WordNet {synsets['wordnet']['version']}" if synsets else "-"),
        ("candidates", f"{candidates['candidates']} from {candidates['source']}" if candidates else "-"),
        (
            "download",
            f"{download['ok']} of {download['candidates']} ok ({download['ok_percent']}%); failures: "
            + _counts({k: v for k, v in download["statuses"].items() if k != "ok"})
            if download
            else "-",
        ),
        (
            "dedupe",
            f"{dedupe['kept']} of {dedupe['images']} kept; dropped: {_counts(dedupe['dropped'])}; "
            f"{len(dedupe['conflicts'])} conflicts"
            if dedupe
            else "-",
        ),
        (
            "annotation",
            f"{annotation['accepted']} accepted, {annotation['rejected']} rejected, "
            f"{annotation['undecided']} undecided in {len(annotation['rounds'])} rounds, "
            f"{annotation['mean_votes_per_image']} votes per image, "
            f"{len(annotation['workers_excluded'])} of {annotation['workers']} workers excluded"
            if annotation
            else "-",
        ),
        (
            "manifests",
            f"{manifests['classes']} classes: "
            + _counts(manifests["images"])
            + ("" if manifests.get("verified") else " (UNVERIFIED labels)")
            if manifests
            else "-",
        ),
        (
            "validate",
            (
                "all checks ok"
                if all(c["ok"] for c in validation["checks"].values())
                else "FAILED: " + ", ".join(k for k, c in validation["checks"].items() if not c["ok"])
            )
            if validation
            else "-",
        ),
        ("baseline", _baseline(run) if run else "-"),
        ("dataset card", str(workdir / "DATASET_CARD.md") if (workdir / "DATASET_CARD.md").exists() else "-"),
    ]
    return table


def _baseline(run: dict) -> str:
    """Top-1 and top-5 error, centre crop / 10-crop, of the latest run's test (else val) split."""
    split = "test" if run.get("test") else "val"
    errors = run.get(split) or {}

    def pct(kind: str) -> str:
        value = errors.get(kind, {})
        return " / ".join(f"{100 * value[c]:.1f}%" for c in ("center", "ten_crop") if value.get(c) is not None) or "?"

    return (
        f"{split}: top-1 error {pct('top1_error')}, top-5 error {pct('top5_error')} (centre / 10-crop; "
        f"chance {100 * run.get('chance_top1_error', 0):.0f}%), {run.get('arch', '?')} in {run['path']}"
    )


def run(args: argparse.Namespace) -> None:
    workdir = args.data / args.subset
    table = rows(workdir)
    width = max(len(name) for name, _ in table)
    print(f"synsetforge: {workdir}")
    for name, figures in table:
        print(f"  {name:<{width}}  {figures}")
