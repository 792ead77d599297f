"""What a box round asks: Su, Deng and Fei-Fei's draw, quality and coverage tasks (HCOMP 2012).

- **draw**: one image and the boxes accepted so far; the worker boxes one instance of the
  synset not yet boxed, or says none is left. Several workers draw per task; their boxes of
  one instance are merged (``annotation.box_consensus``).
- **quality**: one merged box; is it a good box of one instance?
- **coverage**: an image whose boxes are all judged, with its accepted boxes; is every
  instance boxed? An image that is not complete goes back to the drawers next round, up to
  ``max_rounds`` draws.

Five drawers, and five judges per quality and coverage task: with a fifth of the crowd sloppy
(right 75% of the time) three judges let too many verdicts rest on one or two sloppy votes.

Which images get boxes (the scope): the images annotation accepted or, once manifests exist,
every val and test image and a seeded share of each class's train images (ILSVRC-2012 boxed
about 40% of train). Images a dataset came with boxes for count as complete.

Gold tasks, whose right answer is known, are hidden among the others (task ids ``...-gold-...``)
and score the workers: a known good box (accepted with every judge's yes, imported, or seeded by
``--controls``) and a bad one made from it (IoU < 0.3) for quality; a known complete image with
all its boxes (positive) or one left out (negative) for coverage; a known complete image with
one box hidden for draw, which a drawer must hit at IoU >= 0.5. A crowd image is known complete
only when judged complete and every box it has is known good: showing only its known boxes of
an image with others would make "complete" wrong and leave the drawer more than the hidden box
to find, and careful workers would fail that gold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import schemas, store
from pipeline.boxes import COLUMNS, iou, problem
from pipeline.errors import InputError
from pipeline.layout import SPLITS, Layout
from pipeline.seeding import rng_for
from pipeline.tables import read_table

from .box_consensus import ACCEPTED, COVERAGE, COVERED, DRAW, INCOMPLETE, QUALITY, UNASKED, UNDECIDED
from .formats import read_listing
from .tasks import CANDIDATE, NEGATIVE, POSITIVE, image_url, read_labels

TASKS = (DRAW, QUALITY, COVERAGE)
BAD_IOU = 0.3  # a known bad box overlaps its good one less than this


@dataclass(frozen=True)
class BoxPlan:
    votes: int | None = None  # answers per task (None: the task's default)
    gold: float = 0.05  # share of gold tasks among the candidates
    min_gold: int = 2  # at least this many where any known box exists
    train_share: float = 0.4  # train images per class boxed, once manifests exist
    max_rounds: int = 8  # draws per image at most
    seed: int = 0

    def assignments(self, task: str) -> int:
        return self.votes or 5


def scope(layout: Layout, plan: BoxPlan) -> pd.DataFrame:
    """``image_id, wnid, width, height`` of the images to box (see the module docstring)."""
    if layout.manifest("train").exists():
        parts = []
        for split in SPLITS:
            if layout.manifest(split).exists():
                table = read_table(layout.manifest(split), schemas.MANIFEST, ["image_id", "wnid", "width", "height"])
                parts.append(table.to_pandas().assign(split=split))
        images = pd.concat(parts, ignore_index=True)
        keep = (images.split != "train").to_numpy() | images.image_id.isin(_train_share(images, plan)).to_numpy()
        images = images[keep].drop(columns="split")
    else:
        labels = read_labels(layout)
        if labels is None:
            raise InputError(
                "no accepted images to box: import the classification answers (or a dataset) first", file=layout.labels
            )
        accepted = labels[labels.accepted & labels.decided][["image_id", "wnid"]]
        images = accepted.merge(sizes(layout), on="image_id", how="inner")
    return images.sort_values(["wnid", "image_id"]).reset_index(drop=True)


def _train_share(images: pd.DataFrame, plan: BoxPlan) -> set[str]:
    """A seeded ``plan.train_share`` of each class's train images (rounded up)."""
    chosen = set()
    for wnid, group in images[images.split == "train"].groupby("wnid", sort=True):
        order = group.image_id.to_numpy()[rng_for(plan.seed, "boxes", wnid).permutation(len(group))]
        chosen.update(order[: math.ceil(plan.train_share * len(group))])
    return chosen


def sizes(layout: Layout) -> pd.DataFrame:
    """``image_id, width, height`` of every stored image."""
    store.require_shards(layout.images, "run `make download` (or `make import`) first")
    return store.read_images(layout.images, ["image_id", "width", "height"]).to_pandas()


def _read(path: Path, schema) -> pd.DataFrame:
    return read_table(path, schema).to_pandas() if path.exists() else pd.DataFrame(columns=schema.names)


def known_state(layout: Layout) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The accepted boxes (schemas.BOXES), the candidates (BOX_CANDIDATES) and the images'
    standing (BOX_IMAGES), empty before the first import."""
    return (
        _read(layout.boxes, schemas.BOXES),
        _read(layout.box_candidates, schemas.BOX_CANDIDATES),
        _read(layout.box_images, schemas.BOX_IMAGES),
    )


def read_box_controls(path: Path, known_sizes: pd.DataFrame) -> pd.DataFrame:
    """Seed gold: CSV or Parquet of image_id, wnid, xmin, ymin, xmax, ymax (our convention),
    listing every instance of each image it names. Returns BOXES-like rows (source imported)."""
    size = known_sizes.set_index("image_id")
    rows = []
    for where, record in read_listing(path, ("image_id", "wnid", *COLUMNS), "box controls"):
        image_id = str(record["image_id"])
        if image_id not in size.index:
            raise InputError("image not in the image store", file=path, **where, field="image_id", value=image_id)
        box = tuple(_integer(path, where, c, record[c]) for c in COLUMNS)
        width, height = (int(v) for v in size.loc[image_id, ["width", "height"]])
        why = problem(box, width, height)
        if why:
            raise InputError(why, file=path, **where, field="xmin", value=list(box))
        rows.append((f"control-{image_id}-{len(rows)}", image_id, str(record["wnid"]), *box, width, height))
    frame = pd.DataFrame(rows, columns=["box_id", "image_id", "wnid", *COLUMNS, "width", "height"])
    return frame.assign(drawn_by=0, approved_by=0, source="imported")


def _integer(path: Path, where: dict, field: str, value) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError("a box edge must be an integer", file=path, **where, field=field, value=value) from None


def _task_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[n for n in schemas.BOX_TASKS.names if n != "url"])
    for column in ("box_id", *COLUMNS):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _row(round_, task, image, kind, assignments, shown=(), box=None, box_id=None, gold=False) -> dict:
    part = "gold-" if gold else ""
    what = box_id if task == QUALITY else image.image_id
    return {
        "task_id": f"b{round_}-{task}-{part}{what}",
        "round": round_,
        "task": task,
        "image_id": image.image_id,
        "wnid": image.wnid,
        "kind": kind,
        "box_id": box_id,
        **dict(zip(COLUMNS, box if box is not None else (None,) * 4)),
        "shown": [list(map(int, b)) for b in shown],
        "width": int(image.width),
        "height": int(image.height),
        "assignments": assignments,
    }


def _shown(boxes: pd.DataFrame) -> dict[str, list]:
    return {i: g[list(COLUMNS)].to_numpy().tolist() for i, g in boxes.groupby("image_id")}


def build_tasks(
    layout: Layout, round_: int, task: str, plan: BoxPlan, controls: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, str | None]:
    """The round's tasks of one kind (schemas.BOX_TASKS less url), candidates and gold, and
    why it has no gold (None when it has some)."""
    boxes, candidates, images = known_state(layout)
    shown = _shown(boxes)
    votes = plan.assignments(task)
    if task == QUALITY:
        waiting = candidates[candidates.status == UNDECIDED]
        rows = [
            _row(round_, task, c, CANDIDATE, votes, box=[getattr(c, e) for e in COLUMNS], box_id=c.box_id)
            for c in waiting.itertuples()
        ]
    else:
        if task == DRAW:  # seeded images are known: gold, not asked
            asked = scope(layout, plan)
            asked = asked[~asked.image_id.isin(controls.image_id)] if controls is not None else asked
            chosen = _draw_images(asked, images, boxes, plan)
        else:
            chosen = _coverage_images(images)
        rows = [_row(round_, task, i, CANDIDATE, votes, shown=shown.get(i.image_id, [])) for i in chosen.itertuples()]
    if not rows:
        return _task_frame([]), None
    known = _known_boxes(boxes, candidates, images, controls)
    if task != QUALITY:  # an image asked about in this round is not also its gold
        known = known[~known.image_id.isin({r["image_id"] for r in rows})]
    gold, note = _gold(round_, task, len(rows), known, plan)
    return _task_frame(rows + gold), note


def _draw_images(asked: pd.DataFrame, images: pd.DataFrame, boxes: pd.DataFrame, plan: BoxPlan) -> pd.DataFrame:
    """Images never drawn (less those a dataset came with boxes for), or found incomplete since
    their last draw and below the draw cap; none with a box awaiting its quality verdict."""
    state = images.set_index("image_id").reindex(asked.image_id)
    drawn = state.draw_rounds.fillna(0).to_numpy() > 0
    imported = asked.image_id.isin(boxes.image_id[boxes.source == "imported"]).to_numpy()
    again = state.coverage.eq(INCOMPLETE).to_numpy() & (state.draw_rounds.fillna(0).to_numpy() < plan.max_rounds)
    waiting = state.pending.fillna(0).to_numpy() > 0
    return asked[((~drawn & ~imported) | again) & ~waiting]


def _coverage_images(images: pd.DataFrame) -> pd.DataFrame:
    """Images drawn, all of whose boxes are judged, without a coverage verdict since."""
    return images[(images.draw_rounds > 0) & (images.pending == 0) & images.coverage.isin([UNASKED, UNDECIDED])]


def _gold(round_: int, task: str, n_tasks: int, known: pd.DataFrame, plan: BoxPlan) -> tuple[list[dict], str | None]:
    """The round's gold tasks of one kind from the ``known`` boxes (``_known_boxes``):
    ``plan.gold`` of the tasks, at least ``plan.min_gold`` where any known box exists."""
    if known.empty:
        return [], f"no gold in box round {round_}: no known box yet (seed some with --controls)"
    rng = rng_for(plan.seed, "box-gold", round_, task)
    wanted = max(plan.min_gold, math.ceil(plan.gold * n_tasks))
    votes = plan.assignments(task)
    rows = []
    if task == QUALITY:
        for k in rng.permutation(len(known))[: math.ceil(wanted / 2)]:
            good = known.iloc[k]
            box = [int(good[c]) for c in COLUMNS]
            rows.append(_row(round_, task, good, POSITIVE, votes, box=box, box_id=good.box_id, gold=True))
            bad = bad_box(box, int(good.width), int(good.height), rng)
            if bad is not None:
                rows.append(_row(round_, task, good, NEGATIVE, votes, box=bad, box_id=f"{good.box_id}-bad", gold=True))
        return rows[:wanted], None
    complete = known[known.complete]
    if complete.empty:
        return [], f"no {task} gold in box round {round_}: no image known complete yet"
    groups = list(complete.groupby("image_id", sort=True))
    for n, k in enumerate(rng.permutation(len(groups))[:wanted]):
        image_boxes = groups[k][1]
        image = image_boxes.iloc[0]
        all_boxes = image_boxes[list(COLUMNS)].to_numpy().tolist()
        hidden = int(rng.integers(len(all_boxes)))
        rest = all_boxes[:hidden] + all_boxes[hidden + 1 :]
        if task == DRAW:
            rows.append(_row(round_, task, image, POSITIVE, votes, shown=rest, box=all_boxes[hidden], gold=True))
        elif n % 2 == 0:
            rows.append(_row(round_, task, image, POSITIVE, votes, shown=all_boxes, gold=True))
        else:
            rows.append(_row(round_, task, image, NEGATIVE, votes, shown=rest, gold=True))
    return rows, None


def _known_boxes(boxes, candidates, images, controls) -> pd.DataFrame:
    """Boxes whose truth is known: imported or seeded ones, and crowd boxes every judge
    approved; ``complete`` when their image is known complete: imported, seeded, or judged
    complete with every accepted box known (a complete image with one box of doubt would be
    wrong gold)."""
    crowd = boxes[boxes.source == "crowd"]
    accepted = candidates[candidates.status == ACCEPTED]
    unanimous = accepted.votes_yes == accepted.votes_total
    doubted = set(accepted.image_id[~unanimous]) | set(crowd.image_id[~crowd.box_id.isin(accepted.box_id)])
    complete_images = set(images.image_id[images.coverage.isin(COVERED)]) - doubted
    parts = [
        boxes[boxes.source == "imported"].assign(complete=True),
        crowd[crowd.box_id.isin(accepted.box_id[unanimous])].assign(complete=crowd.image_id.isin(complete_images)),
    ]
    if controls is not None:
        parts.append(controls.assign(complete=True))
    known = pd.concat(parts, ignore_index=True)
    return known.sort_values(["image_id", "box_id"]).drop_duplicates("box_id").reset_index(drop=True)


def bad_box(box: list[int], width: int, height: int, rng: np.random.Generator) -> list[int] | None:
    """A box of the same image overlapping ``box`` at IoU < 0.3: shifted by 60% of its size
    (IoU 0.25) where the image has room, else shrunk to a quarter of its area; None for a box
    too small to shrink."""
    xmin, ymin, xmax, ymax = box
    w, h = xmax - xmin, ymax - ymin
    dx, dy = math.ceil(0.6 * w), math.ceil(0.6 * h)
    shifts = [(dx, 0), (-dx, 0), (0, dy), (0, -dy)]
    tries = [[xmin + sx, ymin + sy, xmax + sx, ymax + sy] for sx, sy in (shifts[k] for k in rng.permutation(4))]
    tries.append([xmin + w // 4, ymin + h // 4, xmin + w // 4 + max(w // 2, 1), ymin + h // 4 + max(h // 2, 1)])
    return next((b for b in tries if problem(tuple(b), width, height) is None and iou(b, box) < BAD_IOU), None)


def with_urls(tasks: pd.DataFrame, base_url: str) -> pd.DataFrame:
    return tasks.assign(url=[image_url(base_url, i) for i in tasks.image_id])
