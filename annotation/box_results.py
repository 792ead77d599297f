"""Read answers to box tasks: MTurk's results CSV, Label Studio's JSON export, our JSONL.

The formats (what ``annotation.box_formats`` exports and the labelling page writes):

- MTurk: ``Input.task_id`` names the task. A draw's ``Answer.taskAnswers`` is
  crowd-bounding-box's output, ``[{"annotatedResult": {"boundingBoxes": [{"left", "top",
  "width", "height", "label"}], "inputImageProperties": {"width", "height"}}}]``, in pixels of
  the image as loaded (the stored image); quality and coverage answers are crowd-radio-group's,
  ``[{"yes": {"on": true}, "no": {"on": false}}]``.
- Label Studio: ``data.task_id``; a draw annotation's ``rectanglelabels`` results (percent of
  the image), a quality or coverage annotation's one ``choices`` result, yes or no.
- Ours: one line per assignment, ``task_id``, ``assignment_id``, ``worker_id`` and ``box``
  ([xmin, ymin, xmax, ymax] in our convention, null: nothing left to box) or ``answer``
  (true or false).

A draw answer without a box says that every instance is boxed already; one with several
gives each as a drawn box of that worker. A drawing tool shows the boxes accepted so far and
may hand them back with the worker's own (crowd-bounding-box's ``initial-value``, Label
Studio's pre-annotations): a box identical to a shown one is not a new draw. A tool may also let
a corner stray up to ``STRAY`` pixels past the edge: that much is clipped, anything more (or a
box of no area) stops the import, as does anything else that is wrong, with file, line or row
and field named. Each assignment counts once, as in ``annotation.results``, whose checks and
bookkeeping these readers share.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from pathlib import Path

import pandas as pd

from pipeline.boxes import COLUMNS, clip, from_ltwh, from_percent, problem
from pipeline.errors import InputError

from .formats import csv_records, decode
from .results import (
    LABEL_STUDIO,
    MTURK,
    SYNSETFORGE,
    Assignments,
    annotator,
    choice,
    our_lines,
    results_of,
    text_field,
)

BOX_TASK_ID = re.compile(r'"task_id"\s*:\s*"b\d+-')  # in a JSON line or a Label Studio export
STRAY = 2  # pixels a drawing tool may let a box's edge stray past the image
DRAW_COLUMNS = ["task_id", "assignment_id", "worker_id", *COLUMNS, "source"]
VOTE_COLUMNS = ["task_id", "assignment_id", "worker_id", "answer", "source"]
NO_BOX = (None, None, None, None)


def is_box_results(path: Path) -> bool:
    """Whether a results file answers box tasks: its first task id starts ``b<round>-``
    (classification HITs' ``r<round>-``). Unreadable or empty files are left to the reader
    that will name what is wrong."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(1 << 16).removeprefix(codecs.BOM_UTF8).decode("utf-8", "replace")
    first = next((line for line in head.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return bool(BOX_TASK_ID.search(first))
    if first.lstrip().startswith("["):
        return bool(BOX_TASK_ID.search(head))
    return "Input.task_id" in first


class BoxAnswers(Assignments):
    """One file's assignments: a draw's rows are its boxes (``NO_BOX`` for none), a quality or
    coverage answer's row is its yes or no."""

    @staticmethod
    def content(hit_id: str, worker_id: str, answers: dict) -> frozenset:
        return frozenset((hit_id, worker_id, value) for value in answers["values"])

    def rows(self, hit_id: str, assignment_id: str, worker_id: str, answers: dict) -> list[tuple]:
        return [(hit_id, assignment_id, worker_id, value, self.source) for value in answers["values"]]

    @staticmethod
    def held_content(votes: pd.DataFrame) -> frozenset:
        if "answer" in votes.columns:
            return frozenset(zip(votes.task_id, votes.worker_id, map(bool, votes.answer)))
        edges = votes[list(COLUMNS)].astype(object).where(votes[list(COLUMNS)].notna(), None)
        boxes = [tuple(None if v is None else int(v) for v in row) for row in edges.itertuples(index=False)]
        return frozenset(zip(votes.task_id, votes.worker_id, boxes))


def read_box_results(
    path: Path, tasks: pd.DataFrame, draws: pd.DataFrame | None = None, votes: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The draws (``DRAW_COLUMNS``, a row per box) and yes/no votes (``VOTE_COLUMNS``) a results
    file holds, and counts of what was skipped. ``tasks``: every exported box task
    (schemas.BOX_TASKS); ``draws``, ``votes``: those imported before (schemas.BOX_DRAWS,
    BOX_VOTES), whose assignments are not read twice."""
    if not path.is_file():
        raise InputError("no such results file", file=path)
    data = path.read_bytes()
    known = tasks.set_index("task_id")
    first = data.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if first == b"[":
        answers = _label_studio(path, decode(path, data, "json"), known)
    elif first == b"{":
        answers = _ours(path, decode(path, data, "jsonl"), known)
    else:
        answers = _mturk(path, decode(path, data, "csv"), known)
    drawn, judged = (BoxAnswers(path, answers.source) for _ in range(2))
    for rows, into in ((answers.drawn, drawn), (answers.judged, judged)):
        for where, field, task_id, assignment, worker, values in rows:
            into.add(where, field, task_id, assignment, worker, {"values": values})
    skipped = {
        "rejected": answers.rejected,
        "repeated_assignments": drawn.repeated + judged.repeated,
        "imported_before": drawn.drop_imported(draws) + judged.drop_imported(votes),
    }
    draw_rows = [(t, a, w, *box, s) for t, a, w, box, s in drawn.votes]
    new_draws = pd.DataFrame(draw_rows, columns=DRAW_COLUMNS).astype(dict.fromkeys(COLUMNS, "Int64"))
    new_votes = pd.DataFrame(judged.votes, columns=VOTE_COLUMNS).astype({"answer": bool})
    before = len(new_draws), len(new_votes)
    new_draws = _first_per_worker(new_draws)
    new_votes = _first_per_worker(new_votes)
    skipped["repeated_answers"] = sum(before) - len(new_draws) - len(new_votes)
    return new_draws, new_votes, skipped


def _first_per_worker(rows: pd.DataFrame) -> pd.DataFrame:
    """A worker who answered a task twice counts once: the first assignment."""
    first = rows.drop_duplicates(["worker_id", "task_id"]).set_index(["worker_id", "task_id"]).assignment_id
    keep = (
        rows.assignment_id.to_numpy()
        == first.reindex(pd.MultiIndex.from_frame(rows[["worker_id", "task_id"]])).to_numpy()
    )
    return rows[keep].reset_index(drop=True)


class _Read:
    """What a reader found, before the per-assignment bookkeeping."""

    def __init__(self, source: str):
        self.source = source
        self.drawn: list[tuple] = []  # where, field, task_id, assignment_id, worker_id, boxes
        self.judged: list[tuple] = []  # where, field, task_id, assignment_id, worker_id, (answer,)
        self.rejected = 0

    def add(self, task: pd.Series, *row, value) -> None:
        if task.task == "draw":
            self.drawn.append((*row, value))
        else:
            self.judged.append((*row, value))


def _task(path: Path, where: dict, field: str, value, known: pd.DataFrame) -> pd.Series:
    task_id = text_field(path, where, field, value)
    if task_id not in known.index:
        raise InputError(
            "unknown box task (not in any box round's tasks.parquet)", file=path, **where, field=field, value=task_id
        )
    return known.loc[task_id]


def drawn_box(path: Path, where: dict, field: str, box: tuple, task: pd.Series):
    """A drawn box in our convention, checked against the task's image; an edge up to ``STRAY``
    pixels outside is clipped."""
    width, height = int(task.width), int(task.height)
    xmin, ymin, xmax, ymax = box
    if min(xmin, ymin) >= -STRAY and xmax <= width + STRAY and ymax <= height + STRAY:
        box = clip(box, width, height)
    why = problem(tuple(box), width, height)
    if why:
        raise InputError(f"not a box of the image: {why}", file=path, **where, field=field, value=list(box))
    return tuple(int(v) for v in box)


def _new_boxes(boxes: list[tuple], task: pd.Series) -> tuple:
    """The drawn boxes less those the tool was shown and handed back; ``(NO_BOX,)`` when none."""
    shown = {tuple(int(v) for v in b) for b in (task["shown"] if task["shown"] is not None else [])}
    new = tuple(dict.fromkeys(b for b in boxes if b not in shown))
    return new or (NO_BOX,)


def _number(path: Path, where: dict, field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError("must be a number", file=path, **where, field=field, value=value)
    return float(value)


def _yes_no(path: Path, where: dict, field: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputError("must be yes (true) or no (false)", file=path, **where, field=field, value=value)
    return value


def _mturk(path: Path, text: str, known: pd.DataFrame) -> _Read:
    header, records = csv_records(path, text)
    for field in ("AssignmentId", "WorkerId", "AssignmentStatus", "Input.task_id", "Answer.taskAnswers"):
        if field not in header:
            raise InputError("not an MTurk results CSV of box tasks", file=path, field=field)
    out = _Read(MTURK)
    for where, row in records:
        if row["AssignmentStatus"] == "Rejected":
            out.rejected += 1
            continue
        task = _task(path, where, "Input.task_id", row["Input.task_id"], known)
        assignment = text_field(path, where, "AssignmentId", row["AssignmentId"])
        worker = text_field(path, where, "WorkerId", row["WorkerId"])
        answer = _task_answer(path, where, row["Answer.taskAnswers"])
        reader = _mturk_draw if task.task == "draw" else _mturk_choice
        value = reader(path, where, "Answer.taskAnswers", answer, task)
        out.add(task, where, "AssignmentId", task.name, assignment, worker, value=value)
    return out


def _task_answer(path: Path, where: dict, value: str) -> dict:
    field = "Answer.taskAnswers"
    if not value or not value.strip():
        raise InputError("empty answer", file=path, **where, field=field)
    try:
        answer = json.loads(value)
    except json.JSONDecodeError:
        raise InputError("not JSON", file=path, **where, field=field, value=value) from None
    if not (isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict)):
        raise InputError("not MTurk's task answers (a list of one object)", file=path, **where, field=field)
    return answer[0]


def _mturk_draw(path: Path, where: dict, field: str, answer: dict, task: pd.Series) -> tuple:
    result = answer.get("annotatedResult")
    boxes = result.get("boundingBoxes") if isinstance(result, dict) else None
    if not isinstance(boxes, list):
        raise InputError(
            "not a box answer (annotatedResult.boundingBoxes, a list)", file=path, **where, field=field, value=answer
        )
    loaded = result.get("inputImageProperties")
    if isinstance(loaded, dict) and (loaded.get("width"), loaded.get("height")) != (task.width, task.height):
        raise InputError(
            f"the image was loaded at another size than the stored {task.width}x{task.height}: its boxes "
            "would be in other pixels",
            file=path,
            **where,
            field=f"{field}.annotatedResult.inputImageProperties",
            value=loaded,
        )
    drawn = []
    for k, box in enumerate(boxes):
        at = f"{field}.annotatedResult.boundingBoxes[{k}]"
        if not isinstance(box, dict):
            raise InputError("not a box (left, top, width, height)", file=path, **where, field=at, value=box)
        ltwh = [_number(path, where, f"{at}.{name}", box.get(name)) for name in ("left", "top", "width", "height")]
        drawn.append(drawn_box(path, where, at, from_ltwh(*ltwh), task))
    return _new_boxes(drawn, task)


def _mturk_choice(path: Path, where: dict, field: str, answer: dict, task: pd.Series) -> tuple:
    def on(name: str):
        value = answer.get(name)
        return value.get("on") if isinstance(value, dict) else None

    yes, no = on("yes"), on("no")
    if not (isinstance(yes, bool) and isinstance(no, bool)) or yes == no:
        raise InputError("neither yes nor no (exactly one must be on)", file=path, **where, field=field, value=answer)
    return (yes,)


def _ours(path: Path, text: str, known: pd.DataFrame) -> _Read:
    out = _Read(SYNSETFORGE)
    for where, record in our_lines(path, text, out):
        task = _task(path, where, "task_id", record.get("task_id"), known)
        assignment = text_field(path, where, "assignment_id", record.get("assignment_id"))
        worker = text_field(path, where, "worker_id", record.get("worker_id"), numbers=True)
        if task.task == "draw":
            if "box" not in record:
                raise InputError("missing (a box, or null for none left)", file=path, **where, field="box")
            box = record["box"]
            if box is not None and not (
                isinstance(box, list)
                and len(box) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
            ):
                raise InputError(
                    "not a box ([xmin, ymin, xmax, ymax], four integers, or null)",
                    file=path,
                    **where,
                    field="box",
                    value=box,
                )
            value = _new_boxes([] if box is None else [drawn_box(path, where, "box", tuple(box), task)], task)
        else:
            value = (_yes_no(path, where, "answer", record.get("answer")),)
        out.add(task, where, "assignment_id", task.name, assignment, worker, value=value)
    return out


def _label_studio(path: Path, text: str, known: pd.DataFrame) -> _Read:
    """Label Studio's JSON export: one task per box task; each annotation one worker's answer
    (its worker as in ``annotation.results``)."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON ({e.msg})", file=path, line=e.lineno) from None
    if not isinstance(items, list):
        raise InputError("not a Label Studio export (a list of tasks)", file=path)
    out = _Read(LABEL_STUDIO)
    for number, item in enumerate(items, start=1):
        where = {"row": number}
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data, dict) or not isinstance(item.get("annotations"), list):
            raise InputError("not a Label Studio export task (data, annotations list)", file=path, **where)
        task = _task(path, where, "data.task_id", data.get("task_id"), known)
        for k, annotation in enumerate(item["annotations"]):
            field = f"annotations[{k}]"
            if not isinstance(annotation, dict):
                raise InputError(f"must be an object, not {type(annotation).__name__}", file=path, **where, field=field)
            if annotation.get("was_cancelled"):
                out.rejected += 1
                continue
            annotation_id = text_field(path, where, f"{field}.id", annotation.get("id"), numbers=True)
            worker = annotator(path, where, field, annotation, annotation_id)
            if task.task == "draw":
                value = _label_studio_draw(path, where, field, annotation, task)
            else:
                value = (choice(path, where, field, annotation),)
            out.add(task, where, f"{field}.id", task.name, f"ls-{annotation_id}", worker, value=value)
    return out


def _label_studio_draw(path: Path, where: dict, field: str, annotation: dict, task: pd.Series) -> tuple:
    drawn = []
    for at, value in results_of(path, where, field, annotation, "rectanglelabels"):
        if not isinstance(value, dict):
            raise InputError("not a box (x, y, width, height in percent)", file=path, **where, field=f"{at}.value")
        if value.get("rotation") not in (None, 0, 0.0):
            raise InputError("a rotated box", file=path, **where, field=f"{at}.value.rotation", value=value["rotation"])
        xywh = [_number(path, where, f"{at}.value.{name}", value.get(name)) for name in ("x", "y", "width", "height")]
        drawn.append(drawn_box(path, where, at, from_percent(*xywh, int(task.width), int(task.height)), task))
    return _new_boxes(drawn, task)
