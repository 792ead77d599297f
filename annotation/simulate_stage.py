"""``annotate-simulate``: a simulated crowd answers a round's HITs or box tasks, in MTurk's
results format.

The demo and the tests use it where the truth is known: each HIT gets its ``assignments``
answers from distinct workers of an ``annotation.simulate.Crowd`` (careful, noisy, spammers),
who tick the images by the truth and their accuracy. The file,
``annotation/round-<n>/results-simulated.csv``, is what MTurk's "Download results" gives:
``annotate-import`` reads it as it would read a real one. It is written whole, under the
stage's lock: a second run at once fails instead of racing it.

The truth comes from ``--truth`` (image_id, wnid, truth as CSV or Parquet) or, for images
fetched from the bundled image host (the demo), from their URL: ``/picture/<wnid>/...``
shows ``<wnid>``; anything else shows no class.

``--task draw|quality|coverage`` answers a box round's tasks instead
(``annotation/box-rounds/round-<n>/<task>/tasks.parquet``), into
``results-simulated.csv`` beside them: drawers box one true instance no shown box covers
(crowd-bounding-box's output), judges say whether a box is good (IoU >= 0.7 with a true
instance) or every instance is covered (each at IoU >= 0.5 by a shown box), gold tasks
included: workers see the picture, not the task's kind (``annotation.simulate.BoxCrowd``).
The true boxes come from ``--truth-boxes`` (image_id, xmin, ymin, xmax, ymax in the stored
image's pixels; CSV or Parquet) or, for images fetched from the bundled image host, from the
host itself: ``/picture/<wnid>/<n>.jpg?...`` has its boxes at ``/truth/<wnid>/<n>.json?...``,
in the served picture's pixels, scaled here to the stored image's. An image whose picture
shows another class, or that came from elsewhere, has none.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import runner, schemas, settings, store
from pipeline.boxes import COLUMNS, bad_edge, iou_matrix, problem, to_ltwh
from pipeline.errors import InputError
from pipeline.files import atomic_write_text
from pipeline.layout import Layout
from pipeline.progress import progress
from pipeline.seeding import rng_for
from pipeline.tables import read_table

from .formats import read_listing
from .simulate import COVER_IOU, GOOD_IOU, BoxCrowd, Crowd, covered, good_box
from .tasks import NEGATIVE, POSITIVE

STAGE = "annotate-simulate"
HELP = (
    "simulated workers answer a round's HITs (annotation/round-<n>/) or box tasks "
    "(annotation/box-rounds/round-<n>/<task>/): results-simulated.csv, MTurk's format"
)
CLASSIFY = "classify"
TASKS = (CLASSIFY, *schemas.BOX_TASK_KINDS)
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
BOX_FIELDS = (*FIELDS[:8], "Input.task_id", "Input.round", "Input.task", "Input.wnid", *FIELDS[-3:])
TRUTH_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
PICTURE = re.compile(rf"/picture/({schemas.NOUN_WNID})/")
HOST_PICTURE = re.compile(rf"^(https?://[^/?#]+)/picture/({schemas.NOUN_WNID})/(\d+)\.jpg(\?[^#]*)?$")
TRUTH_TIMEOUT = 60  # seconds for one /truth/ answer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = BoxCrowd()
    share = settings.number(0, 1)
    parser.add_argument(
        "--round", type=settings.integer(1), default=1, help="the exported round to answer (make: ROUND)"
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default=CLASSIFY,
        help="classify: the round's HITs; draw, quality, coverage: that box task of the box round (make: TASK)",
    )
    parser.add_argument(
        "--truth-boxes",
        type=Path,
        metavar="FILE",
        help="box tasks: image_id, xmin, ymin, xmax, ymax in the stored image's pixels (CSV or Parquet); "
        "default: from the demo host (make: TRUTH_BOXES)",
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
        "--noisy",
        "--sloppy",
        type=share,
        default=c.noisy,
        help=f"share of noisy (sloppy) workers, 0 to 1 (default {c.noisy})",
    )
    parser.add_argument(
        "--spammers", type=share, default=c.spammers, help=f"share of spammers, 0 to 1 (default {c.spammers})"
    )
    parser.add_argument(
        "--workers", type=settings.integer(1), default=c.size, help=f"workers in the pool (default {c.size})"
    )
    parser.add_argument("--seed", type=settings.integer(0), default=0, help="the crowd's seed (make: SEED)")
    parser.add_argument(
        "--score",
        action="store_true",
        help="answer nothing: score annotation/boxes.parquet against the true boxes (the demo host's or "
        "--truth-boxes) and print one line (make: SCORE=1)",
    )


def run(args: argparse.Namespace) -> None:
    if args.careful + args.noisy + args.spammers == 0:
        raise InputError("the shares of careful, noisy and spamming workers are all 0", field="--careful")
    if args.task == CLASSIFY and args.truth_boxes and not args.score:
        raise InputError(
            "--truth-boxes is for box tasks (--task draw, quality or coverage) and --score", field="--truth-boxes"
        )
    if args.task != CLASSIFY and args.truth:
        raise InputError("--truth is for classification HITs; box tasks take --truth-boxes", field="--truth")
    layout = Layout(args.workdir)
    if args.score:
        print(score_line(score_boxes(layout, args.truth_boxes)))
        return
    crowd = BoxCrowd(careful=args.careful, noisy=args.noisy, spammers=args.spammers, size=args.workers, seed=args.seed)
    if args.task == CLASSIFY:
        hits = read_table(layout.hits(args.round), schemas.HITS).to_pandas()
        results = layout.simulated_answers(args.round)
        what = f"{hits.hit_id.nunique()} HITs"
    else:
        tasks = read_box_tasks(layout, args.round, args.task)
        results = layout.simulated_box_answers(args.round, args.task)
        what = f"{len(tasks)} {args.task} tasks"
    with runner.lock(layout.root, STAGE):
        if results.exists() and not args.force:
            print(f"annotate-simulate: {results} exists; skipped, --force answers again", file=sys.stderr)
            return
        if args.task == CLASSIFY:
            truth = read_truth(args.truth) if args.truth else url_truth(layout)
            answers, fields = answer_hits(hits, truth, crowd, args.seed), FIELDS
        else:
            boxes = read_truth_boxes(args.truth_boxes, layout) if args.truth_boxes else host_truth_boxes(layout, tasks)
            answers, fields = answer_box_tasks(tasks, boxes, crowd, args.seed), BOX_FIELDS
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(answers)
        atomic_write_text(results, buffer.getvalue())
    print(f"annotate-simulate: {len(answers)} assignments on {what} by a crowd of {crowd.counts()} -> {results}")


def score_boxes(layout: Layout, truth_file: Path | None = None) -> dict:
    """The crowd's boxes (annotation/boxes.parquet) of the images the box loop asked about,
    against their true boxes: the share of boxes at IoU >= ``GOOD_IOU`` with a true instance,
    and the true instances no box covers at IoU >= ``COVER_IOU`` (as the simulated workers judge)."""
    if not layout.box_images.exists():
        raise InputError("no box round imported yet: nothing to score", file=layout.box_images)
    images = read_table(layout.box_images, schemas.BOX_IMAGES).to_pandas()
    found = read_table(layout.boxes, schemas.BOXES).to_pandas() if layout.boxes.exists() else None
    drawn = {} if found is None else {i: g[list(COLUMNS)].to_numpy(float) for i, g in found.groupby("image_id")}
    truth = read_truth_boxes(truth_file, layout) if truth_file else host_truth_boxes(layout, images)
    good = boxes = instances = missed = missing = 0
    for image_id in images.image_id:
        true = truth.get(image_id, np.empty((0, 4)))
        mine = drawn.get(image_id, np.empty((0, 4)))
        overlap = iou_matrix(mine, true)
        good += int((overlap.max(axis=1, initial=0) >= GOOD_IOU).sum())
        lost = int((overlap.max(axis=0, initial=0) < COVER_IOU).sum())
        boxes, instances, missed, missing = (
            boxes + len(mine),
            instances + len(true),
            missed + lost,
            missing + (lost > 0),
        )
    return {
        "images": len(images),
        "complete": int(images.coverage.isin(["complete", "nothing_left"]).sum()),
        "boxes": boxes,
        "good": good,
        "instances": instances,
        "missed": missed,
        "images_missing": missing,
    }


def score_line(score: dict) -> str:
    share = score["good"] / max(score["boxes"], 1)
    return (
        f"annotate-simulate: {score['boxes']} consensus boxes on {score['images']} images "
        f"({score['complete']} covered): {share:.1%} at IoU >= {GOOD_IOU} with a true box; "
        f"{score['missed']} of {score['instances']} true instances unboxed (IoU < {COVER_IOU}), "
        f"on {score['images_missing']} images"
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


def read_box_tasks(layout: Layout, round_: int, task: str) -> pd.DataFrame:
    path = layout.box_tasks(round_, task)
    if not path.exists():
        raise InputError(
            f"no {task} tasks exported for box round {round_}: run `make annotate-export TASK={task} ROUND={round_}`",
            file=path,
        )
    return read_table(path, schemas.BOX_TASKS).to_pandas()


def answer_box_tasks(tasks: pd.DataFrame, truth: dict[str, np.ndarray], crowd: BoxCrowd, seed: int) -> list[dict]:
    """One MTurk results row per assignment: each task answered by ``assignments`` distinct
    workers, who see ``truth`` (image_id -> true boxes, n x 4 in the stored image's pixels;
    an image not in it shows no instance)."""
    workers = crowd.workers()
    rows = []
    for task in tasks.sort_values("task_id").itertuples(index=False):
        if task.assignments > len(workers):
            raise InputError(
                f"task {task.task_id} wants {task.assignments} answers but the crowd has {len(workers)} workers"
            )
        true = truth.get(task.image_id, np.empty((0, 4)))
        shown = np.array([list(box) for box in task.shown], float).reshape(-1, 4)
        if task.task == "quality":
            right = good_box([getattr(task, c) for c in COLUMNS], true)
        elif task.task == "coverage":
            right = bool(covered(true, shown).all())
        rng = rng_for(seed, "box-answers", task.task_id)
        for number, k in enumerate(rng.choice(len(workers), task.assignments, replace=False)):
            worker = workers[k]
            if task.task == "draw":
                box = crowd.draw(worker, true, shown, task.width, task.height, rng)
                drawn = [] if box is None else [dict(zip(("left", "top", "width", "height"), to_ltwh(box)))]
                result = {
                    "boundingBoxes": [{**b, "label": task.wnid} for b in drawn],
                    "inputImageProperties": {"width": int(task.width), "height": int(task.height)},
                }
                answer = [{"annotatedResult": result}]
            else:
                yes = bool(worker.answer(np.array([right]), rng)[0])
                answer = [{"yes": {"on": yes}, "no": {"on": not yes}}]
            rows.append(
                {
                    "HITId": f"SIM{task.task_id}",
                    "HITTypeId": f"SIMULATED-{task.task}",
                    "AssignmentId": f"{task.task_id}-a{number}",
                    "WorkerId": worker.worker_id,
                    "AssignmentStatus": "Submitted",
                    "AcceptTime": "",
                    "SubmitTime": "",
                    "WorkTimeInSeconds": "0",
                    "Input.task_id": task.task_id,
                    "Input.round": str(task.round),
                    "Input.task": task.task,
                    "Input.wnid": task.wnid,
                    "Answer.taskAnswers": json.dumps(answer),
                    "Approve": "",
                    "Reject": "",
                }
            )
    return rows


def _stored_sizes(layout: Layout, image_ids=None) -> pd.DataFrame:
    """wnid, url, width and height of the stored images (of ``image_ids``), by image_id."""
    store.require_shards(layout.images, "the true boxes are taken from the demo host; give --truth-boxes")
    table = store.read_images(layout.images, ["image_id", "wnid", "url", "width", "height"]).to_pandas()
    table = table.set_index("image_id")
    return table if image_ids is None else table.loc[table.index.intersection(pd.Index(image_ids))]


def read_truth_boxes(path: Path, layout: Layout) -> dict[str, np.ndarray]:
    """image_id -> true boxes from a CSV or Parquet file of image_id, xmin, ymin, xmax, ymax
    (our convention, the stored image's pixels), each checked against its stored image."""
    sizes = _stored_sizes(layout)
    boxes: dict[str, list] = {}
    for where, record in read_listing(path, ("image_id", *COLUMNS), "truth boxes"):
        image_id = str(record["image_id"]).strip()
        if image_id not in sizes.index:
            raise InputError("no such image in the store", file=path, **where, field="image_id", value=image_id)
        box = []
        for field in COLUMNS:
            try:
                value = float(record[field])
            except (TypeError, ValueError):
                value = None
            if value is None or not value.is_integer():
                raise InputError("not an integer pixel edge", file=path, **where, field=field, value=record[field])
            box.append(int(value))
        width, height = int(sizes.at[image_id, "width"]), int(sizes.at[image_id, "height"])
        why = problem(tuple(box), width, height)
        if why:
            raise InputError(
                f"not a box of the stored image: {why}",
                file=path,
                **where,
                field=bad_edge(box, width, height),
                value=box,
            )
        boxes.setdefault(image_id, []).append(box)
    return {image_id: np.array(found, float) for image_id, found in boxes.items()}


def host_truth_boxes(layout: Layout, tasks: pd.DataFrame) -> dict[str, np.ndarray]:
    """The true boxes of the tasks' images, asked of the image host that served them: only a
    picture of the task's own class has any (see the module docstring)."""
    images = tasks.drop_duplicates("image_id").set_index("image_id").wnid
    stored = _stored_sizes(layout, images.index)
    missing = images.index.difference(stored.index)
    if len(missing):
        raise InputError("a task's image is not in the image store", file=layout.images, value=missing[0])
    asked = {}
    for image_id, wnid in images.items():
        shown = HOST_PICTURE.match(stored.at[image_id, "url"])
        if shown and shown.group(2) == wnid:
            base, _, variant, query = shown.groups()
            asked[image_id] = f"{base}/truth/{wnid}/{variant}.json{query or ''}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the host is local, as the download found it
    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(lambda url: _fetch_truth(opener, url), asked.values())
        found = list(progress(answers, total=len(asked), desc="annotate-simulate: true boxes", unit="img"))
    truth = {}
    for image_id, (served_width, served_height, boxes) in zip(asked, found):
        width, height = int(stored.at[image_id, "width"]), int(stored.at[image_id, "height"])
        scale = np.array([width / served_width, height / served_height] * 2)
        scaled = np.rint(np.array(boxes, float).reshape(-1, 4) * scale)
        scaled = np.clip(scaled, 0, [width, height, width, height])
        truth[image_id] = scaled[(scaled[:, 2] > scaled[:, 0]) & (scaled[:, 3] > scaled[:, 1])]
    return truth


def _fetch_truth(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, int, list]:
    """A ``/truth/`` answer: the served picture's width and height, and its boxes."""
    try:
        with opener.open(url, timeout=TRUTH_TIMEOUT) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise InputError(
            f"cannot get the true boxes ({reason}): is the demo image host running? "
            "`make annotate-simulate` starts it for the demo; elsewhere give --truth-boxes",
            file=url,
        ) from None
    width, height, boxes = (answer.get(k) if isinstance(answer, dict) else None for k in ("width", "height", "boxes"))
    if not (
        isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0 and isinstance(boxes, list)
    ):
        raise InputError("not a true-boxes answer: {width, height, boxes} expected", file=url)
    for box in boxes:
        if not isinstance(box, list) or problem(tuple(box), width, height):
            raise InputError("not a box of the served picture", file=url, field="boxes", value=box)
    return width, height, boxes
