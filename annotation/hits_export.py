"""``annotate-export``: a round's HITs, in the formats the crowd tools read.

``--task draw|quality|coverage`` exports a box round's tasks instead (``annotation.box_tasks``,
formats in ``annotation.box_formats``): ``annotation/box-rounds/round-<n>/<task>/`` with its
``tasks.parquet`` (schemas.BOX_TASKS) and ``reports/annotate-export-box-<n>-<task>.json``
(schemas.ANNOTATE_EXPORT_BOX_REPORT). With nothing to ask it says so and writes nothing.

Writes ``annotation/round-<n>/``: ``hits.parquet`` (schemas.HITS, what ``annotate-import``
checks answers against) and the chosen formats (see ``annotation.formats``), and the round's
report ``reports/annotate-export-<n>.json`` (schemas.ANNOTATE_EXPORT_REPORT). Image URLs are
``IMAGE_BASE_URL/<image_id>.jpg``: where the images are served (``make annotate-serve``
serves them at http://127.0.0.1:8650/image) or uploaded, never a local path. The mturk format
needs an https URL workers can reach (``formats.mturk_url_problem``); ``--allow-http`` lets a
requester try HITs in the MTurk sandbox from the machine that serves them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pipeline import runner, schemas
from pipeline.errors import InputError
from pipeline.layout import (
    Layout,
    annotate_export_box_stage,
    annotate_export_stage,
    box_round_name,
    report_name,
    round_name,
)
from pipeline.settings import integer, number
from pipeline.tables import read_table, write_report, write_table

from . import box_formats, formats
from .box_tasks import TASKS, BoxPlan, build_tasks, read_box_controls, sizes, with_urls
from .tasks import CANDIDATE, Packing, controls, image_url, pack, round_items

HELP = (
    "export a round of annotation tasks: annotation/round-<n>/, or box tasks in "
    "annotation/box-rounds/round-<n>/<task>/ (MTurk, Label Studio, JSONL)"
)
DEFAULT_BASE_URL = "http://127.0.0.1:8650/image"
CLASSIFY = "classify"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p, b = Packing(), BoxPlan()
    parser.add_argument("--round", type=integer(1), default=1, help="annotation round, from 1 (make: ROUND)")
    parser.add_argument(
        "--task",
        choices=(CLASSIFY, *TASKS),
        default=CLASSIFY,
        help="classify: the yes/no HITs; draw, quality or coverage: a box round's tasks (make: TASK)",
    )
    parser.add_argument(
        "--formats",
        metavar="F,...",
        help=f"any of {', '.join(formats.FORMATS)} (make: HIT_FORMATS; default all, but mturk only for an "
        "IMAGE_BASE_URL it can show)",
    )
    parser.add_argument(
        "--image-base-url",
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help=f"where workers' browsers fetch images (make: IMAGE_BASE_URL, default {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        help="mturk: accept an http:// or loopback IMAGE_BASE_URL, to try HITs in the MTurk sandbox on the "
        "machine that serves the images (browsers let an https page show http://127.0.0.1 images) "
        "(make: MTURK_ALLOW_HTTP=1)",
    )
    parser.add_argument(
        "--per-hit", type=integer(1), default=p.per_hit, help=f"candidates per HIT (default {p.per_hit})"
    )
    parser.add_argument(
        "--positives", type=integer(0), default=p.positives, help=f"known positives per HIT (default {p.positives})"
    )
    parser.add_argument(
        "--negatives", type=integer(0), default=p.negatives, help=f"known negatives per HIT (default {p.negatives})"
    )
    parser.add_argument(
        "--votes",
        type=integer(1),
        default=None,
        help=f"answers per image this round (make: VOTES, default {p.votes} in round 1, {p.votes_later} later); "
        f"box tasks: answers per task (default {b.assignments('draw')} drawers, {b.assignments('quality')} judges)",
    )
    parser.add_argument(
        "--initial",
        type=integer(0),
        default=p.initial,
        help=f"round 1: images per synset in dynamic consensus's initial subset (default {p.initial})",
    )
    parser.add_argument(
        "--initial-votes",
        type=integer(1),
        default=p.initial_votes,
        help=f"answers per image of the initial subset (default {p.initial_votes})",
    )
    parser.add_argument(
        "--controls",
        type=Path,
        metavar="FILE",
        help="seed controls (image_id, wnid, kind positive|negative), CSV or Parquet (make: CONTROLS); box "
        "tasks: known boxes (image_id, wnid, xmin, ymin, xmax, ymax, our pixel edges), every instance of each "
        "image, whose images serve as gold and are not asked",
    )
    parser.add_argument("--seed", type=integer(0), default=p.seed, help="packing seed (make: SEED)")
    parser.add_argument(
        "--train-share",
        type=number(0, 1),
        default=b.train_share,
        help=f"box tasks, once manifests exist: share of each class's train images boxed (make: BOX_TRAIN_SHARE, "
        f"default {b.train_share}, as ILSVRC-2012); val and test are all boxed",
    )
    parser.add_argument(
        "--max-box-rounds",
        type=integer(1),
        default=b.max_rounds,
        help=f"box tasks: draws per image at most (make: BOX_MAX_ROUNDS, default {b.max_rounds})",
    )
    parser.add_argument(
        "--gold",
        type=number(0, 1),
        default=b.gold,
        help=f"box tasks: share of gold tasks (known answers) added, at least {b.min_gold} once any box is "
        f"known (make: BOX_GOLD, default {b.gold})",
    )


def packing_of(args: argparse.Namespace) -> Packing:
    return Packing(
        per_hit=args.per_hit,
        positives=args.positives,
        negatives=args.negatives,
        votes=args.votes or Packing.votes,
        votes_later=args.votes or Packing.votes_later,
        initial=args.initial,
        initial_votes=args.initial_votes,
        seed=args.seed,
    )


def checked_formats(args: argparse.Namespace) -> list[str]:
    """The chosen formats, once the formats and the image base URL are known good. Left open,
    all formats the base URL suits: mturk only where workers could see the images."""
    chosen = [f.strip() for f in (args.formats or ",".join(formats.FORMATS)).split(",") if f.strip()]
    unknown = [f for f in chosen if f not in formats.FORMATS]
    if unknown or not chosen:
        raise InputError(
            f"unknown format {unknown[0] if unknown else '(none)'}; choose from {', '.join(formats.FORMATS)}"
        )
    if not args.image_base_url.startswith(("http://", "https://")):
        raise InputError(
            "IMAGE_BASE_URL must be an http(s) URL where the images are served, not a path",
            field="IMAGE_BASE_URL",
            value=args.image_base_url,
        )
    problem = formats.mturk_url_problem(args.image_base_url) if "mturk" in chosen and not args.allow_http else None
    if problem and args.formats is None:
        print(
            f"annotate-export: no mturk HITs: IMAGE_BASE_URL {args.image_base_url!r}: {problem} (MTurk needs an https "
            "URL workers can reach)",
            file=sys.stderr,
        )
        return [f for f in chosen if f != "mturk"]
    if problem:
        raise InputError(
            f"{problem}: MTurk shows HITs in an https page, where workers would see no image; give the https "
            "URL the images are served at, leave mturk out of HIT_FORMATS, or try the sandbox from this machine "
            "with MTURK_ALLOW_HTTP=1 (--allow-http)",
            field="IMAGE_BASE_URL",
            value=args.image_base_url,
        )
    return chosen


def run(args: argparse.Namespace) -> None:
    chosen = checked_formats(args)
    if args.task != CLASSIFY:
        run_boxes(args, chosen)
        return
    layout = Layout(args.workdir)
    packing = packing_of(args)
    if layout.round(args.round).exists() and not args.force:
        # A round's HITs may be published already: later labels must not repack them.
        print(
            f"annotate-export: round {args.round} is exported already in {layout.round(args.round)}; "
            "skipped, --force exports it again",
            file=sys.stderr,
        )
        return
    inputs = [layout.synsets, layout.images]
    inputs += [p for p in (layout.clusters, layout.labels, args.controls) if p is not None and p.exists()]
    settings = {
        "packing": packing.__dict__,
        "formats": chosen,
        "base_url": args.image_base_url,
        "controls": str(args.controls),
    }
    name = annotate_export_stage(args.round)
    stage = runner.Stage(
        name=name,
        workdir=layout.root,
        outputs=(round_name(args.round), report_name(name)),
        inputs=tuple(inputs),
        settings=settings,
    )

    def build(out: Path) -> str:
        return export(layout, Layout(out), args.round, packing, chosen, args.image_base_url, args.controls, settings)

    runner.run(stage, build, force=args.force)


def export(
    layout: Layout,
    out: Layout,
    round_: int,
    packing: Packing,
    chosen: list[str],
    base_url: str,
    seed_controls: Path | None,
    settings: dict,
) -> str:
    """Write round ``round_``'s HITs and report under ``out`` (the build folder) from the
    dataset ``layout``; ``settings``, the stage's, go into the report."""
    synsets = read_table(layout.synsets, schemas.SYNSETS).to_pandas()
    known = controls(layout, synsets, seed_controls)
    items = round_items(layout, round_, packing, known=set(zip(known.image_id, known.wnid)))
    unknown = sorted(set(items.wnid) - set(synsets.wnid))
    if unknown:
        raise InputError(
            f"images of {len(unknown)} classes not in synsets.parquet, e.g. {unknown[0]}",
            file=layout.synsets,
            field="wnid",
            value=unknown[0],
        )
    hits = pack(items, known, round_, packing)
    hits["url"] = [image_url(base_url, i) for i in hits.image_id]
    folder = out.round(round_)
    folder.mkdir(parents=True)
    write_table({c: hits[c].tolist() for c in schemas.HITS.names}, out.hits(round_), schemas.HITS)
    records = formats.hit_records(hits, formats.describe(synsets, formats.read_words(layout.words)))
    for fmt in chosen:
        formats.write(fmt, folder, records)
    candidates = hits[hits.kind == CANDIDATE]
    report = {
        "settings": settings,
        "round": round_,
        "hits": int(hits.hit_id.nunique()),
        "images": int(candidates.image_id.nunique()),
        "answers_wanted": int(candidates.groupby("hit_id").assignments.first().sum()),
        "votes_wanted": int(candidates.assignments.sum()),
        "controls_per_hit": round(float((hits.kind != CANDIDATE).sum() / max(hits.hit_id.nunique(), 1)), 2),
        "hits_without_controls": int((hits.groupby("hit_id").kind.apply(lambda k: (k != CANDIDATE).sum()) == 0).sum()),
        "formats": chosen,
        "image_base_url": base_url,
    }
    write_report(out.report(annotate_export_stage(round_)), schemas.ANNOTATE_EXPORT_REPORT, report)
    return (
        f"round {round_}: {report['hits']} HITs, {report['images']} images, {report['votes_wanted']} votes wanted, "
        f"{report['hits_without_controls']} HITs without controls"
    )


def box_plan_of(args: argparse.Namespace) -> BoxPlan:
    return BoxPlan(
        votes=args.votes,
        gold=args.gold,
        train_share=args.train_share,
        max_rounds=args.max_box_rounds,
        seed=args.seed,
    )


def run_boxes(args: argparse.Namespace, chosen: list[str]) -> None:
    """One box task of one round (``annotation.box_tasks``): its tasks.parquet, formats and
    report, unless it was exported already or there is nothing to ask (then no folder at all:
    a round folder with tasks.parquet is an exported round)."""
    layout = Layout(args.workdir)
    round_, task = args.round, args.task
    if layout.box_tasks(round_, task).exists() and not args.force:
        print(
            f"annotate-export: box round {round_} {task} is exported already in {layout.box_round(round_, task)}; "
            "skipped, --force exports it again",
            file=sys.stderr,
        )
        return
    plan = box_plan_of(args)
    seeded = read_box_controls(args.controls, sizes(layout)) if args.controls is not None else None
    tasks, note = build_tasks(layout, round_, task, plan, seeded)
    if not (tasks.kind == CANDIDATE).any():
        print(f"annotate-export: box round {round_} {task}: {_nothing(task)}", file=sys.stderr)
        return
    inputs = [layout.synsets, *layout.box_task_tables()]
    inputs += [
        p
        for p in (layout.labels, layout.boxes, layout.box_candidates, layout.box_images, args.controls)
        if p is not None and p.exists()
    ]
    inputs += [layout.manifest(s) for s in ("train", "val", "test") if layout.manifest(s).exists()]
    settings = {
        "plan": plan.__dict__,
        "formats": chosen,
        "base_url": args.image_base_url,
        "controls": str(args.controls),
    }
    name = annotate_export_box_stage(round_, task)
    stage = runner.Stage(
        name=name,
        workdir=layout.root,
        outputs=(box_round_name(round_, task), report_name(name)),
        inputs=tuple(inputs),
        settings=settings,
    )

    def build(out: Path) -> str:
        return export_boxes(layout, Layout(out), with_urls(tasks, args.image_base_url), chosen, note, settings)

    runner.run(stage, build, force=args.force)


def _nothing(task: str) -> str:
    return {
        "draw": "nothing to ask, every image in scope is boxed and covered (or awaits its quality or coverage verdict)",
        "quality": "nothing to ask, no drawn box awaits a quality verdict",
        "coverage": "nothing to ask, no image awaits a coverage verdict",
    }[task]


def export_boxes(
    layout: Layout, out: Layout, tasks: pd.DataFrame, chosen: list[str], note: str | None, settings: dict
) -> str:
    """Write one box task's tasks.parquet, formats and report under ``out`` (the build folder)."""
    round_, task = int(tasks["round"].iloc[0]), str(tasks.task.iloc[0])
    synsets = read_table(layout.synsets, schemas.SYNSETS).to_pandas()
    unknown = sorted(set(tasks.wnid) - set(synsets.wnid))
    if unknown:
        raise InputError(
            f"images of {len(unknown)} classes not in synsets.parquet, e.g. {unknown[0]}",
            file=layout.synsets,
            field="wnid",
            value=unknown[0],
        )
    folder = out.box_round(round_, task)
    folder.mkdir(parents=True)
    write_table({c: tasks[c].tolist() for c in schemas.BOX_TASKS.names}, out.box_tasks(round_, task), schemas.BOX_TASKS)
    records = box_formats.task_records(tasks, formats.describe(synsets, formats.read_words(layout.words)))
    for fmt in chosen:
        box_formats.write(fmt, folder, task, records)
    candidates = tasks[tasks.kind == CANDIDATE]
    report = {
        "settings": settings,
        "round": round_,
        "task": task,
        "tasks": len(tasks),
        "gold": int((tasks.kind != CANDIDATE).sum()),
        "gold_note": note,
        "images": int(candidates.image_id.nunique()),
        "answers_wanted": int(tasks.assignments.sum()),
        "formats": chosen,
        "image_base_url": settings["base_url"],
    }
    write_report(out.report(annotate_export_box_stage(round_, task)), schemas.ANNOTATE_EXPORT_BOX_REPORT, report)
    return (
        f"box round {round_} {task}: {len(candidates)} tasks and {report['gold']} gold, {report['images']} images"
        + (f"; {note}" if note else "")
    )
