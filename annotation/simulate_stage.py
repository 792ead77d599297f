"""``annotate-simulate``: a simulated crowd answers a round's HITs, in MTurk's results format.

The demo and the tests use it where the truth is known: each HIT gets its ``assignments``
answers from distinct workers of an ``annotation.simulate.Crowd`` (careful, noisy, spammers),
who tick the images by the truth and their accuracy. The file,
``annotation/round-<n>/results-simulated.csv``, is what MTurk's "Download results" gives:
``annotate-import`` reads it as it would read a real one. It is written whole, under the
stage's lock: a second run at once fails instead of racing it.

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

from pipeline import runner, schemas, settings, store
from pipeline.errors import InputError
from pipeline.files import atomic_write_text
from pipeline.layout import Layout
from pipeline.seeding import rng_for
from pipeline.tables import read_table

from .formats import read_listing
from .simulate import Crowd
from .tasks import NEGATIVE, POSITIVE

STAGE = "annotate-simulate"
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
TRUTH_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
PICTURE = re.compile(rf"/picture/({schemas.NOUN_WNID})/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = Crowd()
    share = settings.number(0, 1)
    parser.add_argument(
        "--round", type=settings.integer(1), default=1, help="the exported round to answer (make: ROUND)"
    )
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="FILE",
        help="image_id, wnid, truth (CSV or Parquet); default: from the demo host's URLs (make: TRUTH)",
    )
    parser.add_argument(
        "--careful", type=share, default=c.careful, help=f"share of careful workers, 0 to 1 (default {c.careful})"
    )
    parser.add_argument(
        "--noisy", type=share, default=c.noisy, help=f"share of noisy workers, 0 to 1 (default {c.noisy})"
    )
    parser.add_argument(
        "--spammers", type=share, default=c.spammers, help=f"share of spammers, 0 to 1 (default {c.spammers})"
    )
    parser.add_argument(
        "--workers", type=settings.integer(1), default=c.size, help=f"workers in the pool (default {c.size})"
    )
    parser.add_argument("--seed", type=settings.integer(0), default=0, help="the crowd's seed (make: SEED)")


def run(args: argparse.Namespace) -> None:
    if args.careful + args.noisy + args.spammers == 0:
        raise InputError("the shares of careful, noisy and spamming workers are all 0", field="--careful")
    layout = Layout(args.workdir)
    hits = read_table(layout.hits(args.round), schemas.HITS).to_pandas()
    with runner.lock(layout.root, STAGE):
        results = layout.simulated_answers(args.round)
        if results.exists() and not args.force:
            print(f"annotate-simulate: {results} exists; skipped, --force answers again", file=sys.stderr)
            return
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
    """image_id, wnid, truth (true/false, 1/0 or yes/no) from a CSV or Parquet file."""
    truth = {}
    for where, record in read_listing(path, ("image_id", "wnid", "truth"), "truth"):
        shows = TRUTH_VALUES.get(str(record["truth"]).strip().lower())
        if shows is None:
            raise InputError(
                "not a truth value (true/false, 1/0, yes/no)", file=path, **where, field="truth", value=record["truth"]
            )
        truth[(str(record["image_id"]), str(record["wnid"]))] = shows
    return truth


def url_truth(layout: Layout) -> dict[tuple[str, str], bool]:
    """The demo's truth: an image from ``/picture/<wnid>/`` shows that class and no other."""
    store.require_shards(layout.images, "the truth is taken from the images' URLs; give --truth")
    table = store.read_images(layout.images, ["image_id", "wnid", "url"])
    truth = {}
    for image_id, wnid, url in zip(*(table.column(c).to_pylist() for c in ("image_id", "wnid", "url"))):
        shown = PICTURE.search(url)
        truth[(image_id, wnid)] = bool(shown) and shown.group(1) == wnid
    return truth
