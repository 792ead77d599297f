"""Read crowd answers into votes: MTurk's results CSV, Label Studio's JSON export, our JSONL.

A vote is one worker's yes or no on one image of one HIT (``schemas.VOTES``). An assignment
(one worker's answer to one HIT: MTurk's ``AssignmentId``, a Label Studio annotation, our
``assignment_id``) counts once: a second copy of it, in the file or among the votes imported
before, is skipped, and a copy with other answers stops the import naming both places.
Rejected MTurk assignments, cancelled Label Studio annotations and rejected lines of ours are
skipped; a worker who answered the same HIT twice counts once (the first answer). Anything else
that is wrong (an unknown HIT or image, an empty answer, a value of the wrong type, a file that
is not UTF-8 or of another format) stops the import with the file, line or row and field
named, before anything is written.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from pipeline.errors import InputError

from .formats import csv_records, decode

OURS = "synsetforge-results/1"
MTURK, LABEL_STUDIO, SYNSETFORGE = "mturk", "labelstudio", "synsetforge"
MTURK_REQUIRED = ("AssignmentId", "WorkerId", "AssignmentStatus", "Input.hit_id")
COLUMNS = ["hit_id", "assignment_id", "worker_id", "image_id", "answer", "source"]


def read_results(path: Path, hits: pd.DataFrame, imported: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Votes (without ``round``, ``wnid``, ``kind``: the caller joins them from ``hits``) and
    counts of what was skipped. ``hits``: every known HIT's rows (hit_id, image_id, ...);
    ``imported``: the votes imported so far (schemas.VOTES), whose assignments are not read twice."""
    if not path.is_file():
        raise InputError("no such results file", file=path)
    data = path.read_bytes()
    grids = {h: list(g) for h, g in hits.sort_values("position").groupby("hit_id").image_id}
    first = data.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if first == b"[":
        assignments = _label_studio(path, decode(path, data, "json"), grids)
    elif first == b"{":
        assignments = _ours(path, decode(path, data, "jsonl"), grids)
    else:
        assignments = _mturk(path, decode(path, data, "csv"), grids)
    skipped = {
        "rejected": assignments.rejected,
        "repeated_assignments": assignments.repeated,
        "imported_before": assignments.drop_imported(imported),
    }
    frame = pd.DataFrame(assignments.votes, columns=COLUMNS).astype({"answer": bool})
    before = len(frame)
    frame = frame.drop_duplicates(["worker_id", "hit_id", "image_id"], keep="first")
    skipped["repeated_answers"] = before - len(frame)
    return frame.reset_index(drop=True), skipped


class Assignments:
    """The votes a results file holds, each assignment once, and where each was read (for errors)."""

    def __init__(self, path: Path, source: str):
        self.path, self.source = path, source
        self.votes: list[tuple] = []
        self.seen: dict[str, tuple[dict, str, frozenset]] = {}  # assignment -> where, field, answers
        self.rejected = 0
        self.repeated = 0

    def add(self, where: dict, field: str, hit_id: str, assignment_id: str, worker_id: str, answers: dict) -> None:
        """One assignment's answers (image_id -> ticked); ``field`` names its id in the file."""
        content = self.content(hit_id, worker_id, answers)
        earlier = self.seen.get(assignment_id)
        if earlier is not None:
            if earlier[2] != content:
                raise InputError(
                    f"the same assignment as at {_place(earlier[0])}, with other answers",
                    file=self.path,
                    **where,
                    field=field,
                    value=assignment_id,
                )
            self.repeated += 1
            return
        self.seen[assignment_id] = (where, field, content)
        self.votes.extend(self.rows(hit_id, assignment_id, worker_id, answers))

    @staticmethod
    def content(hit_id: str, worker_id: str, answers: dict) -> frozenset:
        """What makes two copies of an assignment the same answer."""
        return frozenset((hit_id, worker_id, image_id, bool(a)) for image_id, a in answers.items())

    def rows(self, hit_id: str, assignment_id: str, worker_id: str, answers: dict) -> list[tuple]:
        """The rows (``COLUMNS``) an assignment adds."""
        return [(hit_id, assignment_id, worker_id, i, bool(a), self.source) for i, a in answers.items()]

    @staticmethod
    def held_content(votes: pd.DataFrame) -> frozenset:
        """``content`` of one assignment's rows among the imported ones."""
        return frozenset(zip(votes.hit_id, votes.worker_id, votes.image_id, map(bool, votes.answer)))

    def drop_imported(self, imported: pd.DataFrame | None) -> int:
        """Leave out the assignments ``imported`` holds already, with the same answers (a file
        imported again, or two files sharing rows); one held with other answers is an error."""
        if imported is None or not self.seen:
            return 0
        held = imported[(imported["source"] == self.source) & imported["assignment_id"].isin(self.seen.keys())]
        for assignment_id, votes in held.groupby("assignment_id"):
            where, field, content = self.seen[assignment_id]
            if self.held_content(votes) != content:
                raise InputError(
                    "imported before with other answers", file=self.path, **where, field=field, value=assignment_id
                )
        known = set(held["assignment_id"])
        self.votes = [v for v in self.votes if v[1] not in known]
        return len(known)


def _place(where: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in where.items())


def text_field(path: Path, where: dict, field: str, value, *, numbers: bool = False) -> str:
    """A field that must hold a non-empty string (or, with ``numbers``, an integer id)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError("missing", file=path, **where, field=field)
    kinds = (str, int) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = "a string or an integer" if numbers else "a string"
        raise InputError(f"must be {wanted}, not {type(value).__name__}", file=path, **where, field=field, value=value)
    return str(value)


def _ticked_ids(path: Path, where: dict, field: str, value, grid: list[str]) -> set[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError("empty answer", file=path, **where, field=field)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError("not a JSON list of image ids", file=path, **where, field=field, value=value) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("not a list of image ids", file=path, **where, field=field, value=value)
    unknown = [v for v in value if v not in grid]
    if unknown:
        raise InputError("image not in this HIT", file=path, **where, field=field, value=unknown[0])
    return set(value)


def _hit(path: Path, where: dict, field: str, hit_id, grids: dict) -> list[str]:
    hit_id = text_field(path, where, field, hit_id)
    if hit_id not in grids:
        raise InputError("unknown HIT (not in any round's hits.parquet)", file=path, **where, field=field, value=hit_id)
    return grids[hit_id]


def _mturk(path: Path, text: str, grids: dict) -> Assignments:
    header, records = csv_records(path, text)
    missing = [f for f in MTURK_REQUIRED if f not in header]
    if missing:
        raise InputError("not an MTurk results CSV (or a JSON/JSONL file of another tool)", file=path, field=missing[0])
    answer_field = "Answer.taskAnswers" if "Answer.taskAnswers" in header else "Answer.ticked"
    if answer_field not in header:
        raise InputError("no answer column", file=path, field="Answer.taskAnswers")
    out = Assignments(path, MTURK)
    for where, row in records:
        if row["AssignmentStatus"] == "Rejected":
            out.rejected += 1
            continue
        grid = _hit(path, where, "Input.hit_id", row["Input.hit_id"], grids)
        assignment = text_field(path, where, "AssignmentId", row["AssignmentId"])
        worker = text_field(path, where, "WorkerId", row["WorkerId"])
        answer = row.get(answer_field)
        if answer_field == "Answer.taskAnswers" and answer and answer.strip():
            try:
                answer = json.loads(answer)
            except json.JSONDecodeError:
                raise InputError("not JSON", file=path, **where, field=answer_field, value=answer) from None
            if not (isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict)):
                raise InputError(
                    "not MTurk's task answers (a list of one object)", file=path, **where, field=answer_field
                )
            answer = answer[0].get("ticked")
        ticked = _ticked_ids(path, where, answer_field, answer, grid)
        out.add(where, "AssignmentId", row["Input.hit_id"], assignment, worker, {i: i in ticked for i in grid})
    return out


def our_lines(path: Path, text: str, out) -> Iterator[tuple[dict, dict]]:
    """Each answer line of our JSONL results (the labelling page's) as (where, record): a JSON
    object of format ``OURS``; blank lines are skipped and a Rejected line is counted in
    ``out.rejected``."""
    for number, line in enumerate(text.splitlines(), start=1):
        where = {"line": number}
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError("not a JSON line", file=path, **where) from None
        if not isinstance(record, dict):
            raise InputError(f"not a JSON object but {type(record).__name__}", file=path, **where, value=record)
        if record.get("format") != OURS:
            raise InputError(f"not a {OURS} line", file=path, **where, field="format", value=record.get("format"))
        if record.get("status") == "Rejected":
            out.rejected += 1
            continue
        yield where, record


def _ours(path: Path, text: str, grids: dict) -> Assignments:
    out = Assignments(path, SYNSETFORGE)
    for where, record in our_lines(path, text, out):
        grid = _hit(path, where, "hit_id", record.get("hit_id"), grids)
        assignment = text_field(path, where, "assignment_id", record.get("assignment_id"))
        worker = text_field(path, where, "worker_id", record.get("worker_id"), numbers=True)
        ticked = _ticked_ids(path, where, "ticked", record.get("ticked"), grid)
        out.add(where, "assignment_id", record["hit_id"], assignment, worker, {i: i in ticked for i in grid})
    return out


def _label_studio(path: Path, text: str, grids: dict) -> Assignments:
    """Label Studio's JSON export: one task per image, each annotation one worker's yes or no.

    An annotation's worker is its ``completed_by`` (a user id, or the user's email where the
    export expands it). Where an export leaves ``completed_by`` out, the worker is
    ``labelstudio-annotation-<annotation id>``: one worker per annotation, so unknown annotators
    are never merged into one (which would drop all but one's votes as repeats, and give
    Dawid-Skene one worker's confusion matrix for many people)."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON ({e.msg})", file=path, line=e.lineno) from None
    if not isinstance(tasks, list):
        raise InputError("not a Label Studio export (a list of tasks)", file=path)
    out = Assignments(path, LABEL_STUDIO)
    for number, task in enumerate(tasks, start=1):
        where = {"row": number}
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "annotations" not in task:
            raise InputError("not a Label Studio export task (data, annotations)", file=path, **where)
        grid = _hit(path, where, "data.hit_id", data.get("hit_id"), grids)
        image_id = text_field(path, where, "data.image_id", data.get("image_id"))
        if image_id not in grid:
            raise InputError("image not in this HIT", file=path, **where, field="data.image_id", value=image_id)
        annotations = task["annotations"]
        if not isinstance(annotations, list):
            raise InputError(
                f"must be a list, not {type(annotations).__name__}", file=path, **where, field="annotations"
            )
        for k, annotation in enumerate(annotations):
            field = f"annotations[{k}]"
            if not isinstance(annotation, dict):
                raise InputError(f"must be an object, not {type(annotation).__name__}", file=path, **where, field=field)
            if annotation.get("was_cancelled"):
                out.rejected += 1
                continue
            annotation_id = text_field(path, where, f"{field}.id", annotation.get("id"), numbers=True)
            answer = choice(path, where, field, annotation)
            worker = annotator(path, where, field, annotation, annotation_id)
            out.add(where, f"{field}.id", data["hit_id"], f"ls-{annotation_id}", worker, {image_id: answer})
    return out


def results_of(path: Path, where: dict, field: str, annotation: dict, kind: str) -> Iterator[tuple[str, object]]:
    """(field path, ``value``) of each of a Label Studio annotation's ``result`` items of type
    ``kind`` (choices, rectanglelabels...); a result that is not a list of objects stops."""
    result = annotation.get("result")
    if not isinstance(result, list):
        raise InputError(
            f"must be a list of results, not {type(result).__name__}", file=path, **where, field=f"{field}.result"
        )
    for j, item in enumerate(result):
        at = f"{field}.result[{j}]"
        if not isinstance(item, dict):
            raise InputError(f"must be an object, not {type(item).__name__}", file=path, **where, field=at)
        if item.get("type") == kind:
            yield at, item.get("value")


def choice(path: Path, where: dict, field: str, annotation: dict) -> bool:
    """An annotation's one answer, yes (True) or no, from its ``choices`` results."""
    choices = []
    for at, value in results_of(path, where, field, annotation, "choices"):
        picked = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(picked, list):
            raise InputError(
                "must be an object with a list of choices", file=path, **where, field=f"{at}.value", value=value
            )
        choices += picked
    if len(choices) != 1 or choices[0] not in ("yes", "no"):
        raise InputError(
            "empty or unclear answer (one of yes, no)", file=path, **where, field=f"{field}.result", value=choices
        )
    return choices[0] == "yes"


def annotator(path: Path, where: dict, field: str, annotation: dict, annotation_id: str) -> str:
    """The worker of an annotation: ``completed_by`` (its email or id when expanded), else one
    of its own, ``labelstudio-annotation-<id>`` (see ``_label_studio``)."""
    worker = annotation.get("completed_by")
    if isinstance(worker, dict):
        worker = worker.get("email") or worker.get("id")
    if worker is None or worker == "":
        return f"labelstudio-annotation-{annotation_id}"
    return text_field(path, where, f"{field}.completed_by", worker, numbers=True)
