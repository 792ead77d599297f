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

from . import aggregate, box_consensus
from .agreement import agreement
from .box_results import is_box_results, read_box_results
from .box_tasks import BoxPlan
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
    parser.add_argument(
        "--box-method",
        choices=box_consensus.METHODS,
        default=box_consensus.METHODS[0],
        help="box answers: how quality and coverage votes decide (make: BOX_METHOD, default majority: "
        "5 votes a box are too few for dynamic consensus's table)",
    )
    parser.add_argument(
        "--min-gold-answers",
        type=integer(1),
        default=box_consensus.MIN_GOLD_ANSWERS,
        help="box answers: a worker is excluded for low accuracy only with at least this many gold answers "
        f"(default {box_consensus.MIN_GOLD_ANSWERS})",
    )
    parser.add_argument(
        "--max-box-rounds",
        type=integer(1),
        default=BoxPlan.max_rounds,
        help=f"box answers: draws per image at most, for the report's capped images (make: BOX_MAX_ROUNDS, "
        f"default {BoxPlan.max_rounds})",
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
    if is_box_results(args.results):
        tasks = all_box_tasks(layout)
        with runner.lock(layout.root, STAGE):
            import_box_file(layout, tasks, args)
        return
    hits = all_hits(layout)  # before the lock, which would create a folder that has none
    with runner.lock(layout.root, STAGE):
        import_file(layout, hits, args)


def imported_already(
    layout: Layout, args: argparse.Namespace, output: Path, report: schemas.Report, settings: dict
) -> tuple[str | None, list]:
    """The results file's digest and the files imported so far; the digest is None when the
    file was imported already with these settings and ``output`` stands (then said, skipped)."""
    digest = hashlib.sha256(args.results.read_bytes()).hexdigest() if args.results.is_file() else None
    imports = json.loads(layout.imports.read_text()) if layout.imports.exists() else []
    if (
        not args.force
        and any(i["sha256"] == digest for i in imports)
        and output.exists()
        and last_settings(layout.report(report.stage), report) == settings
    ):
        print(f"annotate-import: {args.results} was imported already; skipped, --force redoes it", file=sys.stderr)
        return None, imports
    return digest or "", imports


def record_import(layout: Layout, imports: list, path: Path, digest: str) -> None:
    """Note the file as imported: last, only once what it holds is in."""
    if digest not in [i["sha256"] for i in imports]:
        imports.append({"file": str(path), "sha256": digest})
    atomic_write_json(layout.imports, imports)


def import_file(layout: Layout, hits: pd.DataFrame, args: argparse.Namespace) -> None:
    """Add ``args.results``'s votes and aggregate all of them (the caller holds the lock)."""
    report_path = layout.report(STAGE)
    settings = {
        "method": args.method,
        "confidence": args.confidence,
        "max_votes": args.max_votes,
        "min_worker_accuracy": args.min_worker_accuracy,
    }
    digest, imports = imported_already(layout, args, layout.labels, schemas.ANNOTATE_IMPORT_REPORT, settings)
    if digest is None:
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
    record_import(layout, imports, args.results, digest)  # last: only once its votes are in
    print_report(report)


def last_settings(report_path: Path, shape: schemas.Report = schemas.ANNOTATE_IMPORT_REPORT) -> dict | None:
    """The settings of the last import, from its report (None before the first)."""
    report = read_report(report_path, shape, missing_ok=True)
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


# -- box answers (Su, Deng and Fei-Fei's draw, quality and coverage tasks) -------------------------


def all_box_tasks(layout: Layout) -> pd.DataFrame:
    """Every exported box task, in round order."""
    tables = layout.box_task_tables()
    if not tables:
        raise InputError("no exported box rounds: run `make annotate-export TASK=draw` first", file=layout.annotation)
    return pd.concat([read_table(p, schemas.BOX_TASKS).to_pandas() for p in tables], ignore_index=True)


def _held(path: Path, schema) -> pd.DataFrame | None:
    return read_table(path, schema).to_pandas() if path.exists() else None


def merge_answers(old: pd.DataFrame | None, new: pd.DataFrame, tasks: pd.DataFrame, schema) -> pd.DataFrame:
    """All answers so far with their task's round, image, wnid and kind (and task, box_id for
    votes); a worker's second assignment on a task, in any file, is not counted."""
    wanted = [c for c in ("round", "task", "image_id", "wnid", "box_id", "kind") if c in schema.names]
    new = new.merge(tasks[["task_id", *wanted]], on="task_id", how="left")
    both = new if old is None else old if new.empty else pd.concat([old, new], ignore_index=True)
    first = both.drop_duplicates(["worker_id", "task_id"])[["worker_id", "task_id", "assignment_id"]]
    both = both.merge(first, on=["worker_id", "task_id", "assignment_id"], how="inner")
    return both[list(schema.names)].reset_index(drop=True)


def import_box_file(layout: Layout, tasks: pd.DataFrame, args: argparse.Namespace) -> None:
    """Add ``args.results``'s box answers and recompute the boxes from all of them (the caller
    holds the lock): ``box_consensus.consensus``, written with the classification's care (every
    table replaced whole, the file recorded as imported last)."""
    settings = {
        "box_method": args.box_method,
        "min_worker_accuracy": args.min_worker_accuracy,
        "min_gold_answers": args.min_gold_answers,
        "max_box_rounds": args.max_box_rounds,
    }
    shape = schemas.ANNOTATE_IMPORT_BOXES_REPORT
    digest, imports = imported_already(layout, args, layout.boxes, shape, settings)
    if digest is None:
        return
    old_draws, old_votes = _held(layout.box_draws, schemas.BOX_DRAWS), _held(layout.box_votes, schemas.BOX_VOTES)
    new_draws, new_votes, skipped = read_box_results(args.results, tasks, old_draws, old_votes)
    draws = merge_answers(old_draws, new_draws, tasks, schemas.BOX_DRAWS)
    votes = merge_answers(old_votes, new_votes, tasks, schemas.BOX_VOTES)
    boxes = _held(layout.boxes, schemas.BOXES)
    imported = boxes[boxes.source == "imported"] if boxes is not None else pd.DataFrame(columns=schemas.BOXES.names)
    outcome = box_consensus.consensus(
        tasks,
        draws,
        votes,
        imported,
        box_consensus.Settings(args.box_method, args.min_worker_accuracy, args.min_gold_answers),
    )
    report = box_report(draws, votes, outcome, args.max_box_rounds)
    added = len(draws) + len(votes) - sum(0 if t is None else len(t) for t in (old_draws, old_votes))
    report["last_import"] = {
        "file": str(args.results),
        "rows": len(new_draws) + len(new_votes),
        **skipped,
        "new_rows": added,
    }
    for frame, path, schema in (
        (draws, layout.box_draws, schemas.BOX_DRAWS),
        (votes, layout.box_votes, schemas.BOX_VOTES),
        (outcome.workers, layout.box_workers, schemas.WORKERS),
        (outcome.candidates, layout.box_candidates, schemas.BOX_CANDIDATES),
        (outcome.images, layout.box_images, schemas.BOX_IMAGES),
        (outcome.boxes, layout.boxes, schemas.BOXES),
    ):
        write_table({c: _values(frame[c]) for c in schema.names}, path, schema)
    write_report(layout.report(shape.stage), shape, {"settings": settings, **report})
    record_import(layout, imports, args.results, digest)
    print(
        f"annotate-import: boxes: {report['accepted']} accepted, {report['rejected']} rejected, "
        f"{report['undecided']} awaiting quality; {report['images_complete']} of {report['images']} images complete, "
        f"{report['images_needing_draw']} to draw again, {report['images_capped']} capped; "
        f"{report['workers']} workers, {len(report['workers_excluded'])} excluded",
        file=sys.stderr,
    )


def _values(column: pd.Series) -> list:
    """A column as Python values, a missing value (NaN, pd.NA: nullable box edges) as None."""
    return column.astype(object).where(column.notna(), None).tolist()


def box_report(draws: pd.DataFrame, votes: pd.DataFrame, outcome: box_consensus.Outcome, max_rounds: int) -> dict:
    """The figures of ``reports/annotate-import-boxes.json`` (schemas.ANNOTATE_IMPORT_BOXES_REPORT)."""
    images, candidates, workers = outcome.images, outcome.candidates, outcome.workers
    complete = images.coverage.isin(box_consensus.COVERED)
    incomplete = images.coverage == box_consensus.INCOMPLETE
    capped = incomplete & (images.draw_rounds >= max_rounds)
    judged = (images.draw_rounds > 0) & (images.pending == 0)
    awaiting = judged & images.coverage.isin([box_consensus.UNASKED, box_consensus.UNDECIDED])
    status = candidates.status.value_counts()
    return {
        "rounds": sorted({int(r) for r in pd.concat([draws["round"], votes["round"]])}),
        "draws": int(draws.xmin.notna().sum()),
        "votes": len(votes),
        "candidates": len(candidates),
        "accepted": int(status.get(box_consensus.ACCEPTED, 0)),
        "rejected": int(status.get(box_consensus.REJECTED, 0)),
        "undecided": int(status.get(box_consensus.UNDECIDED, 0)),
        "images": len(images),
        "images_complete": int(complete.sum()),
        "images_needing_draw": int((~complete & ((images.draw_rounds == 0) | (incomplete & ~capped))).sum()),
        "images_capped": int(capped.sum()),
        "images_pending_quality": int((images.pending > 0).sum()),
        "images_pending_coverage": int(awaiting.sum()),
        "workers": len(workers),
        "workers_excluded": sorted(workers.worker_id[workers.excluded]),
        "mean_boxes_per_image": round(float(images.boxes[complete].mean()), 2) if complete.any() else 0.0,
        "per_class": {
            w: {"images": len(g), "complete": int(complete[g.index].sum()), "boxes": int(g.boxes.sum())}
            for w, g in images.groupby("wnid")
        },
    }
