"""``annotate-import``: crowd answers in, verified labels out.

Each import adds the votes of one results file to ``annotation/votes.parquet`` (a file already
imported is skipped, and an assignment or answer already held is not counted twice), then recomputes from
all votes: ``workers.parquet`` (accuracy on the controls; workers below
``MIN_WORKER_ACCURACY`` are excluded), ``labels.parquet`` (the chosen aggregation over the
candidates' votes of the workers kept) and the report ``reports/annotate-import.json``
(schemas.ANNOTATE_IMPORT_REPORT, with the crowd's agreement: ``annotation.agreement``).
Files are replaced whole, votes first, and only once the import has succeeded: a failed
import loses nothing. The file is recorded as imported (``annotation/imports.json``) last, so
an import killed before that step is redone in full, and its assignments, already among the
votes, are not counted again. The whole read-modify-write holds the stage's lock: two imports
at once would each add their votes to the same old table and one file's votes would be lost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

from pipeline import runner, schemas
from pipeline.errors import InputError
from pipeline.files import atomic_write_json
from pipeline.layout import Layout
from pipeline.remote import data_location, is_url, local_copy
from pipeline.settings import integer, number
from pipeline.tables import read_report, read_table, write_report, write_table

from . import aggregate
from .agreement import agreement
from .results import read_results
from .tasks import CANDIDATE

HELP = "import crowd answers (MTurk CSV, Label Studio JSON, our JSONL) and aggregate them: annotation/labels.parquet"
METHODS = ("dynamic", "majority", "dawid_skene")
STAGE = schemas.ANNOTATE_IMPORT_REPORT.stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=data_location,
        required=True,
        metavar="FILE",
        help="a results file, or its URL (make: RESULTS)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="dynamic",
        help="how votes become labels: ImageNet's dynamic consensus, majority vote or Dawid-Skene (make: METHOD)",
    )
    parser.add_argument(
        "--confidence",
        type=number(0.5, 1, above=True),
        default=aggregate.CONFIDENCE,
        help="dynamic: decide an image once P(shows the synset) reaches this (above 0.5, at most 1), "
        "or falls to 1 minus it "
        f"(make: CONFIDENCE, default {aggregate.CONFIDENCE}; 0.95 measured 98.9-99.4%% precision)",
    )
    parser.add_argument(
        "--max-votes",
        type=integer(1),
        default=aggregate.MAX_VOTES,
        help=f"dynamic: an image with this many votes is decided anyway (make: MAX_VOTES, default {aggregate.MAX_VOTES})",
    )
    parser.add_argument(
        "--min-worker-accuracy",
        type=number(0, 1),
        default=aggregate.MIN_WORKER_ACCURACY,
        help="workers below this accuracy on the controls (0 to 1) are not counted "
        f"(make: MIN_WORKER_ACCURACY, default {aggregate.MIN_WORKER_ACCURACY})",
    )


def all_hits(layout: Layout) -> pd.DataFrame:
    """Every exported round's HITs, in round order."""
    rounds = layout.hit_tables()
    if not rounds:
        raise InputError("no exported rounds: run `make annotate-export` first", file=layout.annotation)
    return pd.concat([read_table(p, schemas.HITS).to_pandas() for p in rounds], ignore_index=True)


def run(args: argparse.Namespace) -> None:
    if is_url(args.results):
        args.results = local_copy(args.results)
    layout = Layout(args.workdir)
    hits = all_hits(layout)  # before the lock, which would create a folder that has none
    with runner.lock(layout.root, STAGE):
        import_file(layout, hits, args)


def import_file(layout: Layout, hits: pd.DataFrame, args: argparse.Namespace) -> None:
    """Add ``args.results``'s votes and aggregate all of them (the caller holds the lock)."""
    report_path = layout.report(STAGE)
    digest = hashlib.sha256(args.results.read_bytes()).hexdigest() if args.results.is_file() else None
    imports = json.loads(layout.imports.read_text()) if layout.imports.exists() else []
    settings = {
        "method": args.method,
        "confidence": args.confidence,
        "max_votes": args.max_votes,
        "min_worker_accuracy": args.min_worker_accuracy,
    }
    if (
        not args.force
        and any(i["sha256"] == digest for i in imports)
        and layout.labels.exists()
        and last_settings(report_path) == settings
    ):
        print(f"annotate-import: {args.results} was imported already; skipped, --force redoes it", file=sys.stderr)
        return
    old = read_table(layout.votes, schemas.VOTES).to_pandas() if layout.votes.exists() else None
    new, skipped = read_results(args.results, hits, imported=old)
    votes = merge_votes(old, new, hits)
    workers, labels, report = aggregate_votes(votes, hits, settings)
    report["last_import"] = {
        "file": str(args.results),
        "votes": len(new),
        **skipped,
        "new_votes": len(votes) - (0 if old is None else len(old)),
    }
    write_table({c: votes[c].tolist() for c in schemas.VOTES.names}, layout.votes, schemas.VOTES)
    write_table({c: workers[c].tolist() for c in schemas.WORKERS.names}, layout.workers, schemas.WORKERS)
    write_table({c: labels[c].tolist() for c in schemas.LABELS.names}, layout.labels, schemas.LABELS)
    write_report(report_path, schemas.ANNOTATE_IMPORT_REPORT, {"settings": settings, **report})
    if digest not in [i["sha256"] for i in imports]:
        imports.append({"file": str(args.results), "sha256": digest})
    atomic_write_json(layout.imports, imports)  # last: only once its votes are in
    print_report(report)


def last_settings(report_path: Path) -> dict | None:
    """The settings of the last import, from its report (None before the first)."""
    report = read_report(report_path, schemas.ANNOTATE_IMPORT_REPORT, missing_ok=True)
    return None if report is None else report["settings"]


def merge_votes(old: pd.DataFrame | None, new: pd.DataFrame, hits: pd.DataFrame) -> pd.DataFrame:
    """All votes so far, each (worker, HIT, image) once, with the HIT's round, wnid and kind."""
    new = new.merge(hits[["hit_id", "image_id", "round", "wnid", "kind"]], on=["hit_id", "image_id"], how="left")
    votes = new if old is None else old if new.empty else pd.concat([old, new], ignore_index=True)
    votes = votes.drop_duplicates(["worker_id", "hit_id", "image_id"], keep="first")
    return votes[list(schemas.VOTES.names)].reset_index(drop=True)


def aggregate_votes(votes: pd.DataFrame, hits: pd.DataFrame, settings: dict):
    """The workers and labels tables from every vote so far, and the report's figures."""
    controls = votes[votes.kind != CANDIDATE]
    workers = aggregate.worker_quality(controls, settings["min_worker_accuracy"], all_votes=votes)
    excluded = set(workers.worker_id[workers.excluded])
    counted = aggregate.counted_votes(votes, workers)
    if settings["method"] == "dynamic":
        first = hits[(hits["round"] == 1) & (hits.kind == CANDIDATE) & (hits.assignments >= aggregate.INITIAL_VOTES)]
        initial = first[["image_id", "wnid"]].drop_duplicates()
        voted = counted.set_index(["image_id", "wnid"]).index
        if voted.isin(pd.MultiIndex.from_frame(initial)).any():
            labels = aggregate.dynamic_consensus(
                counted, confidence=settings["confidence"], max_votes=settings["max_votes"], initial=initial
            )
        else:  # nothing to fit the table on yet: every image waits
            labels = aggregate.majority(counted).assign(accepted=False, decided=False)
    else:
        labels = getattr(aggregate, settings["method"])(counted)
    labels["method"] = settings["method"]
    labels["round"] = int(votes["round"].max())
    asked = hits[hits.kind == CANDIDATE][["image_id", "wnid"]].drop_duplicates()
    report = {
        "rounds": sorted(int(r) for r in votes["round"].unique()),
        "votes": len(votes),
        "candidate_votes_counted": len(counted),
        "workers": len(workers),
        "workers_excluded": sorted(excluded),
        "images_asked": len(asked),
        "images_with_votes": len(labels),
        "accepted": int((labels.accepted & labels.decided).sum()),
        "rejected": int((~labels.accepted & labels.decided).sum()),
        "undecided": int((~labels.decided).sum()),
        "mean_votes_per_image": round(float(labels.votes_total.mean()), 2) if len(labels) else 0.0,
        "agreement": agreement(votes, workers),
        "per_class": {
            w: {
                "accepted": int((g.accepted & g.decided).sum()),
                "rejected": int((~g.accepted & g.decided).sum()),
                "undecided": int((~g.decided).sum()),
            }
            for w, g in labels.groupby("wnid")
        },
    }
    return workers, labels, report


def print_report(report: dict) -> None:
    print(
        f"annotate-import: {report['accepted']} accepted, {report['rejected']} rejected, {report['undecided']} "
        f"undecided of {report['images_with_votes']} images ({report['mean_votes_per_image']} votes each on average); "
        f"{report['workers']} workers, {len(report['workers_excluded'])} excluded",
        file=sys.stderr,
    )
    if report["undecided"]:
        print(
            "annotate-import: `make annotate-export ROUND=<next>` asks again about the undecided images",
            file=sys.stderr,
        )
