"""Read crowd answers into votes: MTurk's results CSV, Label Studio's JSON export, our JSONL.

A vote is one worker's yes or no on one image of one HIT (``schemas.VOTES``). Rejected MTurk
assignments, cancelled Label Studio annotations and rejected lines of ours are skipped; a
worker who answered the same HIT twice counts once (the first answer). Anything else that is
wrong (an unknown HIT or image, an empty answer, a file of another format) stops the import
with the file, row and field named, before anything is written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from pipeline.errors import InputError

OURS = "synsetforge-results/1"
MTURK, LABEL_STUDIO, SYNSETFORGE = "mturk", "labelstudio", "synsetforge"
MTURK_REQUIRED = ("AssignmentId", "WorkerId", "AssignmentStatus", "Input.hit_id")


def read_results(path: Path, hits: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Votes (without ``round``, ``wnid``, ``kind``: the caller joins them from ``hits``) and
    counts of what was skipped. ``hits``: every known HIT's rows (hit_id, image_id, ...)."""
    if not path.is_file():
        raise InputError("no such results file", file=path)
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    grids = {h: list(g) for h, g in hits.sort_values("position").groupby("hit_id").image_id}
    stripped = text.lstrip()
    if stripped.startswith("["):
        votes, skipped = _label_studio(path, text, grids)
    elif stripped.startswith("{"):
        votes, skipped = _ours(path, text, grids)
    else:
        votes, skipped = _mturk(path, text, grids)
    frame = pd.DataFrame(votes, columns=["hit_id", "assignment_id", "worker_id", "image_id", "answer", "source"])
    before = len(frame)
    frame = frame.drop_duplicates(["worker_id", "hit_id", "image_id"], keep="first")
    skipped["repeated_answers"] = before - len(frame)
    return frame.reset_index(drop=True), skipped


def _ticked_ids(path: Path, row: int, field: str, value, grid: list[str]) -> set[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError("empty answer", file=path, row=row, field=field)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError("not a JSON list of image ids", file=path, row=row, field=field, value=value) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("not a list of image ids", file=path, row=row, field=field, value=value)
    unknown = [v for v in value if v not in grid]
    if unknown:
        raise InputError("image not in this HIT", file=path, row=row, field=field, value=unknown[0])
    return set(value)


def _hit(path: Path, row: int, field: str, hit_id, grids: dict) -> list[str]:
    if hit_id not in grids:
        raise InputError("unknown HIT (not in any round's hits.parquet)", file=path, row=row, field=field, value=hit_id)
    return grids[hit_id]


def _mturk(path: Path, text: str, grids: dict):
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [f for f in MTURK_REQUIRED if f not in header]
    if missing:
        raise InputError("not an MTurk results CSV (or a JSON/JSONL file of another tool)", file=path, field=missing[0])
    answer_field = "Answer.taskAnswers" if "Answer.taskAnswers" in header else "Answer.ticked"
    if answer_field not in header:
        raise InputError("no answer column", file=path, field="Answer.taskAnswers")
    votes, skipped = [], {"rejected": 0}
    for row_number, row in enumerate(reader, start=1):
        if row["AssignmentStatus"] == "Rejected":
            skipped["rejected"] += 1
            continue
        grid = _hit(path, row_number, "Input.hit_id", row["Input.hit_id"], grids)
        answer = row.get(answer_field)
        if answer_field == "Answer.taskAnswers" and answer and answer.strip():
            try:
                answer = json.loads(answer)
            except json.JSONDecodeError:
                raise InputError("not JSON", file=path, row=row_number, field=answer_field, value=answer) from None
            answer = (
                answer[0].get("ticked") if isinstance(answer, list) and answer and isinstance(answer[0], dict) else None
            )
        ticked = _ticked_ids(path, row_number, answer_field, answer, grid)
        for image_id in grid:
            votes.append(
                (row["Input.hit_id"], row["AssignmentId"], row["WorkerId"], image_id, image_id in ticked, MTURK)
            )
    return votes, skipped


def _ours(path: Path, text: str, grids: dict):
    votes, skipped = [], {"rejected": 0}
    for row_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError("not a JSON line", file=path, row=row_number) from None
        if record.get("format") != OURS:
            raise InputError(
                f"not a {OURS} line", file=path, row=row_number, field="format", value=record.get("format")
            )
        if record.get("status") == "Rejected":
            skipped["rejected"] += 1
            continue
        grid = _hit(path, row_number, "hit_id", record.get("hit_id"), grids)
        for field in ("assignment_id", "worker_id"):
            if not record.get(field):
                raise InputError("missing", file=path, row=row_number, field=field)
        ticked = _ticked_ids(path, row_number, "ticked", record.get("ticked"), grid)
        for image_id in grid:
            votes.append(
                (
                    record["hit_id"],
                    record["assignment_id"],
                    str(record["worker_id"]),
                    image_id,
                    image_id in ticked,
                    SYNSETFORGE,
                )
            )
    return votes, skipped


def _label_studio(path: Path, text: str, grids: dict):
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON ({e})", file=path) from None
    votes, skipped = [], {"rejected": 0}
    for row_number, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "annotations" not in task:
            raise InputError("not a Label Studio export task (data, annotations)", file=path, row=row_number)
        grid = _hit(path, row_number, "data.hit_id", data.get("hit_id"), grids)
        image_id = data.get("image_id")
        if image_id not in grid:
            raise InputError("image not in this HIT", file=path, row=row_number, field="data.image_id", value=image_id)
        for annotation in task["annotations"]:
            if annotation.get("was_cancelled"):
                skipped["rejected"] += 1
                continue
            choices = [
                c
                for r in annotation.get("result", [])
                if r.get("type") == "choices"
                for c in r.get("value", {}).get("choices", [])
            ]
            if len(choices) != 1 or choices[0] not in ("yes", "no"):
                raise InputError(
                    "empty or unclear answer (one of yes, no)",
                    file=path,
                    row=row_number,
                    field="annotations.result",
                    value=choices,
                )
            worker = annotation.get("completed_by")
            worker = worker.get("email", worker.get("id")) if isinstance(worker, dict) else worker
            votes.append(
                (data["hit_id"], f"ls-{annotation.get('id')}", str(worker), image_id, choices[0] == "yes", LABEL_STUDIO)
            )
    return votes, skipped
