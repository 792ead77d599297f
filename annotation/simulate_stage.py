"""``annotate-simulate``: a simulated crowd answers a round's HITs, in MTurk's results format.

The demo and the tests use it where the truth is known: each HIT gets its ``assignments``
answers from distinct workers of an ``annotation.simulate.Crowd`` (careful, noisy, spammers),
who tick the images by the truth and their accuracy. The file,
``annotation/round-<n>/results-simulated.csv``, is what MTurk's "Download results" gives:
``annotate-import`` reads it as it would read a real one.

The truth comes from ``--truth`` (image_id, wnid, truth as CSV or Parquet) or, for images
fetched from the bundled image host (the demo), from their URL: ``/picture/<wnid>/...``
shows ``<wnid>``; anything else shows no class.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import schemas, store
from pipeline.errors import InputError
from pipeline.files import atomic_write_text
from pipeline.layout import Layout
from pipeline.seeding import rng_for
from pipeline.tables import read_table

from .simulate import Crowd
from .tasks import NEGATIVE, POSITIVE

HELP = "simulated workers answer a round's HITs: annotation/round-<n>/results-simulated.csv (MTurk's format)"
FIELDS = (
    "HITId",
    "HITTypeId",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "AcceptTime",
    "SubmitTime",
    "WorkTimeInSeconds",
    "Input.hit_id",
    "Input.round",
    "Input.wnid",
    "Answer.taskAnswers",
    "Approve",
    "Reject",
)
PICTURE = re.compile(rf"/picture/({schemas.NOUN_WNID})/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = Crowd()
    parser.add_argument("--round", type=int, default=1, help="the exported round to answer (make: ROUND)")
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="FILE",
        help="image_id, wnid, truth (CSV or Parquet); default: from the demo host's URLs (make: TRUTH)",
    )
    parser.add_argument(
        "--careful", type=float, default=c.careful, help=f"share of careful workers (default {c.careful})"
    )
    parser.add_argument("--noisy", type=float, default=c.noisy, help=f"share of noisy workers (default {c.noisy})")
    parser.add_argument("--spammers", type=float, default=c.spammers, help=f"share of spammers (default {c.spammers})")
    parser.add_argument("--workers", type=int, default=c.size, help=f"workers in the pool (default {c.size})")
    parser.add_argument("--seed", type=int, default=0, help="the crowd's seed (make: SEED)")


def run(args: argparse.Namespace) -> None:
    layout = Layout(args.workdir)
    results = layout.simulated_answers(args.round)
    if results.exists() and not args.force:
        print(f"annotate-simulate: {results} exists; skipped, --force answers again", file=sys.stderr)
        return
    hits = read_table(layout.hits(args.round), schemas.HITS).to_pandas()
    truth = read_truth(args.truth) if args.truth else url_truth(layout)
    crowd = Crowd(careful=args.careful, noisy=args.noisy, spammers=args.spammers, size=args.workers, seed=args.seed)
    answers = answer_hits(hits, truth, crowd, args.seed)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(answers)
    atomic_write_text(results, buffer.getvalue())
    print(
        f"annotate-simulate: {len(answers)} assignments on {hits.hit_id.nunique()} HITs by a crowd of "
        f"{crowd.counts()} -> {results}"
    )


def answer_hits(hits: pd.DataFrame, truth: dict[tuple[str, str], bool], crowd: Crowd, seed: int) -> list[dict]:
    """One MTurk results row per assignment: distinct workers per HIT, each ticking by its accuracy."""
    workers = crowd.workers()
    rows = []
    for hit_id, grid in hits.sort_values(["hit_id", "position"]).groupby("hit_id", sort=True):
        wanted = int(grid.assignments.iloc[0])
        if wanted > len(workers):
            raise InputError(f"HIT {hit_id} wants {wanted} answers but the crowd has {len(workers)} workers")
        shows = np.array(
            [
                kind == POSITIVE or (kind != NEGATIVE and truth.get((i, w), False))
                for i, w, kind in zip(grid.image_id, grid.wnid, grid.kind)
            ]
        )
        rng = rng_for(seed, "answers", hit_id)
        for number, k in enumerate(rng.choice(len(workers), wanted, replace=False)):
            worker = workers[k]
            ticked = grid.image_id.to_numpy()[worker.answer(shows, rng)].tolist()
            rows.append(
                {
                    "HITId": f"SIM{hit_id}",
                    "HITTypeId": "SIMULATED",
                    "AssignmentId": f"{hit_id}-a{number}",
                    "WorkerId": worker.worker_id,
                    "AssignmentStatus": "Submitted",
                    "AcceptTime": "",
                    "SubmitTime": "",
                    "WorkTimeInSeconds": "0",
                    "Input.hit_id": hit_id,
                    "Input.round": str(grid["round"].iloc[0]),
                    "Input.wnid": grid.wnid.iloc[0],
                    "Answer.taskAnswers": json.dumps([{"ticked": json.dumps(ticked)}]),
                    "Approve": "",
                    "Reject": "",
                }
            )
    return rows


def read_truth(path: Path) -> dict[tuple[str, str], bool]:
    if not path.exists():
        raise InputError("no such truth file", file=path)
    table = (
        pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"image_id": str, "wnid": str})
    )
    for field in ("image_id", "wnid", "truth"):
        if field not in table.columns:
            raise InputError("column missing from the truth file", file=path, field=field)
    return {(i, w): bool(t) for i, w, t in zip(table.image_id, table.wnid, table.truth)}


def url_truth(layout: Layout) -> dict[tuple[str, str], bool]:
    """The demo's truth: an image from ``/picture/<wnid>/`` shows that class and no other."""
    store.require_shards(layout.images, "the truth is taken from the images' URLs; give --truth")
    table = store.read_images(layout.images, ["image_id", "wnid", "url"])
    truth = {}
    for image_id, wnid, url in zip(*(table.column(c).to_pylist() for c in ("image_id", "wnid", "url"))):
        shown = PICTURE.search(url)
        truth[(image_id, wnid)] = bool(shown) and shown.group(1) == wnid
    return truth
