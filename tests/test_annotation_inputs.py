"""What annotate-export, annotate-simulate and annotate-import make of inputs they cannot
trust: two imports at once, an assignment handed in twice, results that are not UTF-8 or not
shaped as their tool writes them, Label Studio annotations without an annotator, and settings
out of range. Each runs the stage as a user does, ``python -m pipeline``, in its own process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import rows, run_cli
from test_annotation import make_store, mturk_results
from wordnet_facts import REPO

from pipeline import runner, schemas
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import Layout
from pipeline.tables import read_report


@pytest.fixture(scope="module")
def exported_template(tmp_path_factory):
    """A three-class image store with round 1 exported, built once and copied per test."""
    workdir = tmp_path_factory.mktemp("template") / "set"
    make_store(workdir)
    done = run_cli("annotate-export", "--data", workdir.parent, "--subset", workdir.name, "--allow-http")
    assert done.returncode == 0, done.stderr
    return workdir


@pytest.fixture
def exported(exported_template, tmp_path):
    workdir = tmp_path / "data" / "set"
    shutil.copytree(exported_template, workdir)
    return workdir


def stage(name: str, workdir: Path, *args) -> subprocess.CompletedProcess:
    return run_cli(name, "--data", workdir.parent, "--subset", workdir.name, *args)


def import_results(workdir: Path, results: Path, *args) -> subprocess.CompletedProcess:
    return stage("annotate-import", workdir, "--results", results, *args)


def one_line_error(done: subprocess.CompletedProcess, status: int = 2) -> str:
    """The error of a run that failed as it should: one line, no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == status and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and "error: " in lines[0], done.stderr
    return lines[0]


def grids(workdir: Path) -> dict[str, list[str]]:
    """Each HIT's images in grid order."""
    hits = pd.DataFrame(rows(Layout(workdir).hits(1))).sort_values(["hit_id", "position"])
    return {h: list(g.image_id) for h, g in hits.groupby("hit_id")}


def answers(workdir: Path, workers: list[str], prefix: str) -> list[dict]:
    """Every HIT answered once by each of ``workers``, assignments ``<prefix><n>``."""
    out = []
    for hit_id, grid in grids(workdir).items():
        for worker in workers:
            n = len(out)
            out.append({"hit_id": hit_id, "worker": worker, "ticked": grid[n % 3 :: 3], "assignment": f"{prefix}{n}"})
    return out


def votes_of(workdir: Path) -> pd.DataFrame:
    return pd.DataFrame(rows(Layout(workdir).votes))


def last_import(workdir: Path) -> dict:
    return read_report(Layout(workdir).report("annotate-import"), schemas.ANNOTATE_IMPORT_REPORT)["last_import"]


# -- two imports at once -------------------------------------------------------------------------


def holds_flock(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds a flock on ``path`` (Linux's /proc/locks)."""
    if not path.exists():
        return False
    inode = f":{path.stat().st_ino} "
    return any(
        line.split()[1] == "FLOCK" and line.split()[4] == str(pid) and inode in line
        for line in Path("/proc/locks").read_text().splitlines()
    )


@pytest.mark.slow
def test_a_second_import_while_one_runs_is_refused_and_no_vote_is_lost(exported, tmp_path):
    """The first import is stopped (SIGSTOP) while it holds the stage's lock, so the second
    surely runs in the middle of it."""
    first = mturk_results(tmp_path / "first.csv", answers(exported, ["W1", "W2"], "F"))
    second = mturk_results(tmp_path / "second.csv", answers(exported, ["W3"], "S"))
    lock = exported / ".stages" / "annotate-import.lock"
    running = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "annotate-import", "--data", exported.parent, "--subset", exported.name]
        + ["--results", str(first)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not holds_flock(running.pid, lock):
            assert running.poll() is None, f"the first import ended without holding {lock}: {running.stderr.read()}"
            assert time.monotonic() < deadline, f"the first import never took {lock}"
            time.sleep(0.001)
        os.kill(running.pid, signal.SIGSTOP)
        refused = import_results(exported, second)
        os.kill(running.pid, signal.SIGCONT)
        assert running.wait(timeout=120) == 0, running.stderr.read()
    finally:
        running.kill()
        running.wait()
    assert f"error: another run of stage annotate-import is writing to {exported}" in one_line_error(refused, 1)
    assert import_results(exported, second).returncode == 0
    votes = votes_of(exported)
    wanted = sum(len(grids(exported)[a["hit_id"]]) for a in answers(exported, ["W1", "W2", "W3"], ""))
    assert len(votes) == wanted and set(votes.worker_id) == {"W1", "W2", "W3"}
    imported = json.loads(Layout(exported).imports.read_text())
    assert [Path(i["file"]).name for i in imported] == ["first.csv", "second.csv"]


def test_a_simulated_crowd_does_not_answer_while_another_run_writes(exported):
    with runner.lock(exported, "annotate-simulate"):
        refused = stage("annotate-simulate", exported)
    assert f"another run of stage annotate-simulate is writing to {exported}" in one_line_error(refused, 1)
    assert not Layout(exported).simulated_answers(1).exists()


# -- an assignment handed in twice -----------------------------------------------------------------


@pytest.mark.slow
def test_an_assignment_counts_once_however_often_it_is_handed_in(exported, tmp_path):
    mine = answers(exported, ["W1", "W2"], "A")
    twice = mturk_results(tmp_path / "twice.csv", mine + mine[:3])
    assert import_results(exported, twice).returncode == 0
    votes = votes_of(exported)
    assert len(votes) == sum(len(grids(exported)[a["hit_id"]]) for a in mine)
    assert last_import(exported)["repeated_assignments"] == 3
    assert last_import(exported)["repeated_answers"] == 0  # not a worker answering twice

    overlapping = mturk_results(tmp_path / "overlapping.csv", mine[2:] + answers(exported, ["W3"], "B"))
    assert import_results(exported, overlapping).returncode == 0
    assert last_import(exported)["imported_before"] == len(mine) - 2
    assert votes_of(exported).groupby(["assignment_id", "image_id"]).size().max() == 1

    Layout(exported).imports.unlink()  # as a kill between publishing the votes and the record leaves it
    before = votes_of(exported)
    assert import_results(exported, overlapping).returncode == 0
    assert last_import(exported)["new_votes"] == 0 and votes_of(exported).equals(before)


@pytest.mark.slow
def test_an_assignment_with_two_different_answers_is_refused(exported, tmp_path):
    mine = answers(exported, ["W1"], "A")
    other = {**mine[0], "ticked": mine[0]["ticked"][1:]}
    conflicting = mturk_results(tmp_path / "conflicting.csv", mine + [other])
    error = one_line_error(import_results(exported, conflicting))
    row = len(mine) + 1
    assert f"conflicting.csv:{row + 1}: row {row}: AssignmentId 'A0'" in error and "line 2, row 1" in error
    assert not Layout(exported).votes.exists()

    assert import_results(exported, mturk_results(tmp_path / "first.csv", mine)).returncode == 0
    before = Layout(exported).votes.read_bytes()
    later = mturk_results(tmp_path / "later.csv", [other])
    error = one_line_error(import_results(exported, later))
    assert "later.csv:2: row 1: AssignmentId 'A0': imported before with other answers" in error
    assert Layout(exported).votes.read_bytes() == before


def test_a_byte_order_mark_before_the_mturk_header_is_read_past(exported, tmp_path):
    mine = answers(exported, ["W1", "W2"], "A")
    results = mturk_results(tmp_path / "excel.csv", mine)
    results.write_bytes(b"\xef\xbb\xbf" + results.read_bytes())
    assert import_results(exported, results).returncode == 0
    votes = votes_of(exported)
    assert set(votes.assignment_id) == {a["assignment"] for a in mine}


# -- results that are not what their tool writes -------------------------------------------------


def ours(hit_id: str, grid: list[str], **fields) -> dict:
    line = {"format": "synsetforge-results/1", "hit_id": hit_id, "assignment_id": "a1", "worker_id": "w1"}
    return {**line, "status": "Submitted", "ticked": grid[:1], "shown": grid, **fields}


def label_studio_task(task_id: int, hit_id: str, image_id: str, annotations: list[dict]) -> dict:
    """A task as Label Studio's JSON export writes it (label-studio-sdk's ``export_tasks``)."""
    return {
        "id": task_id,
        "annotations": annotations,
        "file_upload": None,
        "drafts": [],
        "predictions": [],
        "data": {"image": f"https://cdn.example/{image_id}.jpg", "image_id": image_id, "hit_id": hit_id},
        "meta": {},
        "created_at": "2024-05-02T10:11:12.345678Z",
        "updated_at": "2024-05-02T10:20:00.000000Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": None,
        "comment_authors": [],
    }


def label_studio_annotation(annotation_id: int, task_id: int, choice: str, **fields) -> dict:
    return {
        "id": annotation_id,
        "result": [
            {
                "value": {"choices": [choice]},
                "id": f"r{annotation_id}",
                "from_name": "choice",
                "to_name": "image",
                "type": "choices",
                "origin": "manual",
            }
        ],
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2024-05-02T10:15:00.000000Z",
        "updated_at": "2024-05-02T10:15:00.000000Z",
        "draft_created_at": None,
        "lead_time": 4.2,
        "prediction": {},
        "result_count": 0,
        "unique_id": f"00000000-0000-0000-0000-{annotation_id:012d}",
        "import_id": None,
        "last_action": None,
        "task": task_id,
        "project": 3,
        "updated_by": None,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
        **fields,
    }


def one_task(workdir: Path, annotation: dict) -> list[dict]:
    hit_id, grid = next(iter(grids(workdir).items()))
    return [label_studio_task(1, hit_id, grid[0], [annotation])]


def latin1_mturk(workdir: Path, path: Path) -> bytes:
    mturk_results(path, answers(workdir, ["José"], "A")[:1])
    return path.read_text(encoding="utf-8").encode("latin-1")


def first_hit(workdir: Path) -> tuple[str, list[str]]:
    return next(iter(grids(workdir).items()))


BAD_RESULTS = {
    # name: (what the file holds, built from the workdir and its path; what the error must name)
    "latin1.csv": (latin1_mturk, ["latin1.csv:2: row 1: WorkerId", "UTF-8"]),
    "latin1.jsonl": (
        lambda w, p: json.dumps(ours(*first_hit(w), worker_id="José"), ensure_ascii=False).encode("latin-1"),
        ["latin1.jsonl:1: worker_id", "UTF-8"],
    ),
    "latin1.json": (
        lambda w, p: json.dumps(
            one_task(w, label_studio_annotation(11, 1, "yes", completed_by={"id": 7, "email": "josé@example.org"})),
            ensure_ascii=False,
        ).encode("latin-1"),
        ["latin1.json:1: row 1: annotations[0].completed_by.email", "UTF-8"],
    ),
    "huge.csv": (
        lambda w, p: mturk_results(p, [{**answers(w, ["W1"], "A")[0], "ticked": "x" * 140_000}]).read_bytes(),
        ["huge.csv:2: row 1: Answer.taskAnswers", "128 KB"],
    ),
    "list-line.jsonl": (
        lambda w, p: (json.dumps(ours(*first_hit(w))) + "\n" + json.dumps(first_hit(w)[1]) + "\n").encode(),
        ["list-line.jsonl:2:", "not a JSON object but list"],
    ),
    "list-hit.jsonl": (
        lambda w, p: json.dumps({**ours(*first_hit(w)), "hit_id": [first_hit(w)[0]]}).encode(),
        ["list-hit.jsonl:1: hit_id [", "must be a string, not list"],
    ),
    "number-assignment.jsonl": (
        lambda w, p: json.dumps(ours(*first_hit(w), assignment_id=12.5)).encode(),
        ["number-assignment.jsonl:1: assignment_id 12.5", "must be a string, not float"],
    ),
    "annotations-text.json": (
        lambda w, p: json.dumps([label_studio_task(1, *first_hit(w)[:1], first_hit(w)[1][0], "yes")]).encode(),
        ["annotations-text.json: row 1: annotations", "must be a list, not str"],
    ),
    "annotation-list.json": (
        lambda w, p: json.dumps(one_task(w, ["yes"])).encode(),
        ["annotation-list.json: row 1: annotations[0]", "must be an object, not list"],
    ),
    "result-object.json": (
        lambda w, p: json.dumps(
            one_task(w, label_studio_annotation(11, 1, "yes", result={"choices": ["yes"]}))
        ).encode(),
        ["result-object.json: row 1: annotations[0].result", "must be a list of results, not dict"],
    ),
    "value-list.json": (
        lambda w, p: json.dumps(
            one_task(w, label_studio_annotation(11, 1, "yes", result=[{"type": "choices", "value": ["yes"]}]))
        ).encode(),
        ["value-list.json: row 1: annotations[0].result[0].value ['yes']", "a list of choices"],
    ),
    "no-annotation-id.json": (
        lambda w, p: json.dumps(one_task(w, {**label_studio_annotation(11, 1, "yes"), "id": None})).encode(),
        ["no-annotation-id.json: row 1: annotations[0].id: missing"],
    ),
    "annotator-list.json": (
        lambda w, p: json.dumps(one_task(w, label_studio_annotation(11, 1, "yes", completed_by=[7]))).encode(),
        ["annotator-list.json: row 1: annotations[0].completed_by [7]", "must be a string or an integer"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
def test_malformed_results_stop_the_import_with_one_line_naming_the_place(exported, tmp_path, name):
    build, named = BAD_RESULTS[name]
    path = tmp_path / name
    path.write_bytes(build(exported, path))
    error = one_line_error(import_results(exported, path))
    for part in named:
        assert part in error, error
    assert not Layout(exported).votes.exists() and not Layout(exported).imports.exists()


def test_export_refuses_controls_that_are_not_utf8(exported, tmp_path):
    controls = tmp_path / "controls.csv"
    controls.write_bytes("image_id,wnid,kind\nJosé,n01440764,positive\n".encode("latin-1"))
    error = one_line_error(
        stage("annotate-export", exported, "--round", "1", "--force", "--allow-http", "--controls", controls)
    )
    assert "controls.csv:2: row 1: image_id b'Jos\\xe9': not UTF-8" in error
    assert json.loads(Layout(exported).report("annotate-export-1").read_text())["settings"]["controls"] == "None"


def test_simulate_refuses_a_binary_truth_file(exported, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_bytes(picture_jpeg("n01440764", 0, 32, 32))
    error = one_line_error(stage("annotate-simulate", exported, "--truth", truth))
    assert f"{truth}:1: not UTF-8 text (byte 0xff at column 1); is it a text file?" in error
    assert not Layout(exported).simulated_answers(1).exists()


# -- Label Studio annotations without an annotator -------------------------------------------------


def test_label_studio_annotations_without_an_annotator_stay_distinct_workers(exported, tmp_path):
    hit_id, grid = first_hit(exported)
    choices = ["yes", "yes", "no"]  # two of three say yes: majority accepts
    tasks = [
        label_studio_task(
            t, hit_id, image_id, [label_studio_annotation(100 * t + k, t, c) for k, c in enumerate(choices)]
        )
        for t, image_id in enumerate(grid, start=1)
    ]
    path = tmp_path / "project-3-at-2024-05-02.json"
    path.write_text(json.dumps(tasks))
    done = import_results(exported, path, "--method", "majority")
    assert done.returncode == 0, done.stderr
    votes = votes_of(exported)
    assert len(votes) == 3 * len(grid) and votes.groupby("image_id").worker_id.nunique().eq(3).all()
    assert "labelstudio-annotation-100" in set(votes.worker_id) and "None" not in set(votes.worker_id)
    labels = pd.DataFrame(rows(Layout(exported).labels))
    assert labels.accepted.all() and (labels.votes_total == 3).all()


# -- settings out of range -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "option"),
    [
        ("annotate-export", ["--round", "2", "--per-hit", "0", "--force"], "--per-hit"),
        ("annotate-simulate", ["--careful", "1.5"], "--careful"),
        ("annotate-simulate", ["--workers", "0"], "--workers"),
        ("annotate-import", ["--results", "x.csv", "--confidence", "0.3"], "--confidence"),
        ("annotate-import", ["--results", "x.csv", "--min-worker-accuracy", "2"], "--min-worker-accuracy"),
    ],
)
def test_a_setting_out_of_range_is_refused_before_anything_runs(exported, name, args, option):
    before = sorted(p.relative_to(exported) for p in exported.rglob("*"))
    error = one_line_error(stage(name, exported, *args))
    assert option in error and "out of range" in error
    assert sorted(p.relative_to(exported) for p in exported.rglob("*")) == before


def test_a_crowd_of_no_share_is_refused(exported):
    args = ["--careful", "0", "--noisy", "0", "--spammers", "0"]
    assert "all 0" in one_line_error(stage("annotate-simulate", exported, *args))
    assert not Layout(exported).simulated_answers(1).exists()
