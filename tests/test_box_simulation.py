"""The simulated box crowd: workers who draw and judge boxes as their kind does, the true boxes
they see (the demo host's, scaled to the stored images, or a file's), and ``annotate-simulate
--task draw|quality|coverage`` writing MTurk's results format, read back here as the contract
says (csv, json, pipeline.boxes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_images, write_synsets

from annotation.simulate import CAREFUL, NOISY, SPAMMER, BoxCrowd, covered, good_box
from annotation.simulate_stage import BOX_FIELDS, host_truth_boxes
from pipeline import schemas, store
from pipeline.boxes import from_ltwh, iou_matrix, problem
from pipeline.cli import main
from pipeline.imagehost import ImageHost
from pipeline.imagehost.pictures import picture_jpeg, true_boxes
from pipeline.layout import Layout
from pipeline.tables import write_table

A, B = "n01440764", "n02102040"
# (listed class, path on the host): plain pictures, a near copy, a large picture the download
# shrinks to its 500-pixel side, and a picture of the other class found for A
LISTING = [
    (A, f"/picture/{A}/1.jpg"),
    (A, f"/picture/{A}/2.jpg?copy=2"),
    (A, f"/picture/{A}/3.jpg?w=800&h=600"),
    (A, f"/picture/{B}/4.jpg"),
    (B, f"/picture/{B}/5.jpg"),
    (B, f"/picture/{B}/6.jpg"),
]


def expected_truth(path: str, width: int, height: int) -> np.ndarray:
    """The host's true boxes of ``path`` in a stored image of ``width`` x ``height``, computed here."""
    wnid, rest = path.removeprefix("/picture/").split("/")
    variant, _, query = rest.partition(".jpg")
    options = dict(item.split("=") for item in query.lstrip("?").split("&") if item)
    served, boxes = true_boxes(
        wnid, int(variant), int(options.get("w", 500)), int(options.get("h", 375)), int(options.get("copy", 0))
    )
    return np.rint(np.array(boxes, float) * ([width / served[0], height / served[1]] * 2))


# -- the workers -----------------------------------------------------------------------------------


def test_drawers_box_an_instance_left_as_carefully_as_their_kind():
    crowd = BoxCrowd()
    rng = np.random.default_rng(0)
    truth = np.array([[40, 30, 140, 110], [200, 150, 320, 300], [330, 20, 480, 90]], float)
    hits = {CAREFUL: [], NOISY: [], SPAMMER: []}
    for worker in crowd.workers():
        for _ in range(200):
            box = crowd.draw(worker, truth, truth[:1], 500, 375, rng)
            assert problem(tuple(box), 500, 375) is None
            hits[worker.kind].append(iou_matrix([box], truth)[0])
    careful, sloppy, spam = (np.array(hits[kind]) for kind in (CAREFUL, NOISY, SPAMMER))
    assert (careful.max(axis=1) >= 0.7).mean() > 0.99 and (careful[:, 0] >= 0.5).mean() < 0.01  # never the shown one
    assert 0.5 < (sloppy.max(axis=1) >= 0.7).mean() < 0.9
    assert 0.05 < (sloppy[:, 0] >= 0.5).mean() < 0.3  # redraws the shown instance now and then
    assert (spam.max(axis=1) >= 0.7).mean() < 0.05


def test_with_every_instance_shown_only_spammers_and_redrawers_draw():
    crowd = BoxCrowd()
    rng = np.random.default_rng(1)
    truth = np.array([[40, 30, 140, 110], [200, 150, 320, 300]], float)
    shown = truth + [3, -2, 4, 2]
    drawn = {kind: [] for kind in (CAREFUL, NOISY, SPAMMER)}
    for worker in crowd.workers():
        drawn[worker.kind] += [crowd.draw(worker, truth, shown, 500, 375, rng) is not None for _ in range(100)]
        nothing_there = crowd.draw(worker, np.empty((0, 4)), [], 500, 375, rng)
        assert (nothing_there is None) == (worker.kind != SPAMMER)
    assert not any(drawn[CAREFUL]) and all(drawn[SPAMMER]) and 0 < np.mean(drawn[NOISY]) < 0.3


def test_the_judged_truths():
    truth = [[40, 30, 140, 110], [200, 150, 320, 300]]
    assert good_box((42, 33, 138, 112), truth) and not good_box((40, 30, 100, 110), truth)
    assert not good_box((40, 30, 140, 110), np.empty((0, 4)))
    assert covered(truth, [[45, 35, 150, 120]]).tolist() == [True, False]
    assert covered(truth, []).tolist() == [False, False] and covered([], truth).tolist() == []


# -- the stage -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host():
    with ImageHost() as running:
        yield running


@pytest.fixture(scope="module")
def downloaded(host, tmp_path_factory):
    """A store of LISTING's pictures, fetched from the host by candidates and download."""
    from pipeline.cli import main

    workdir = tmp_path_factory.mktemp("data") / "boxes"
    write_synsets(workdir, [A, B])
    listing = workdir.parent / "urls.csv"
    listing.write_text("wnid,url\n" + "".join(f"{w},{host.url(p)}\n" for w, p in LISTING))
    where = ["--data", str(workdir.parent), "--subset", workdir.name]
    assert main(["candidates", *where, "--source", "urllist", "--urls", str(listing)]) == 0
    assert main(["download", *where, "--allow-private-hosts", "--host-rate", "0", "--processes", "1"]) == 0
    return workdir


def stored(workdir: Path) -> dict[str, dict]:
    """Each stored image's row (wnid, url, width, height), by the path it was fetched from."""
    table = store.read_images(Layout(workdir).images, ["image_id", "wnid", "url", "width", "height"]).to_pylist()
    return {"/" + row["url"].split("/", 3)[3]: row for row in table}


def write_tasks(workdir: Path, round_: int, task: str, rows: list[dict]) -> Path:
    """A box round's tasks.parquet as annotate-export writes it (schemas.BOX_TASKS)."""
    columns = {name: [row.get(name) for row in rows] for name in schemas.BOX_TASKS.names}
    columns["round"] = [round_] * len(rows)
    columns["task"] = [task] * len(rows)
    path = Layout(workdir).box_tasks(round_, task)
    write_table(columns, path, schemas.BOX_TASKS)
    return path


def task_row(task_id: str, image: dict, assignments: int, shown=(), box=None, kind="candidate") -> dict:
    edges = dict(zip(("xmin", "ymin", "xmax", "ymax"), box)) if box is not None else {}
    return {
        "task_id": task_id,
        "image_id": image["image_id"],
        "wnid": image["wnid"],
        "kind": kind,
        "box_id": f"box-{task_id}" if box is not None else None,
        **edges,
        "shown": [list(map(int, b)) for b in shown],
        "width": image["width"],
        "height": image["height"],
        "assignments": assignments,
        "url": f"http://labelling.example/{image['image_id']}.jpg",
    }


def simulate(pipeline, workdir: Path, *args):
    return pipeline("annotate-simulate", "--data", workdir.parent, "--subset", workdir.name, *args)


def results(workdir: Path, round_: int, task: str) -> list[dict]:
    with Layout(workdir).simulated_box_answers(round_, task).open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == BOX_FIELDS
        return list(reader)


def answers_by_task(rows: list[dict], tasks: list[dict]) -> dict[str, list[dict]]:
    """The rows of each task, checked: as many as it wants, from distinct workers, its inputs echoed."""
    by_task = {t["task_id"]: [r for r in rows if r["Input.task_id"] == t["task_id"]] for t in tasks}
    assert sum(map(len, by_task.values())) == len(rows)
    for task in tasks:
        mine = by_task[task["task_id"]]
        assert len(mine) == task["assignments"] and len({r["WorkerId"] for r in mine}) == len(mine)
        assert len({r["AssignmentId"] for r in mine}) == len(mine)
        assert {(r["Input.wnid"], r["Input.round"], r["AssignmentStatus"]) for r in mine} == {
            (task["wnid"], "1", "Submitted")
        }
    return by_task


def test_the_demo_hosts_truth_is_scaled_to_the_stored_images(downloaded):
    images = stored(downloaded)
    large = images[f"/picture/{A}/3.jpg?w=800&h=600"]
    assert (large["width"], large["height"]) == (500, 375)  # the download shrank it
    truth = host_truth_boxes(Layout(downloaded), pd.DataFrame(list(images.values())))
    for path, image in images.items():
        found = truth.get(image["image_id"], np.empty((0, 4)))
        if path == f"/picture/{B}/4.jpg":  # found for A, shows B: no instance of A
            assert not len(found)
        else:
            assert len(found) and np.array_equal(found, expected_truth(path, image["width"], image["height"])), path
    _, served = true_boxes(A, 3, 800, 600)
    assert np.abs(truth[large["image_id"]] - np.array(served) * 0.625).max() <= 0.5


def test_simulated_draws_are_crowd_bounding_box_answers_of_the_true_instances(pipeline, downloaded):
    images = stored(downloaded)
    tasks = [task_row(f"b1-draw-{i['image_id']}", i, 9) for i in images.values()]
    first = images[f"/picture/{A}/1.jpg"]
    first_truth = expected_truth(f"/picture/{A}/1.jpg", first["width"], first["height"])
    tasks.append(task_row(f"b1-draw-gold-{first['image_id']}", first, 9, shown=first_truth[1:], kind="positive"))
    write_tasks(downloaded, 1, "draw", tasks)
    outcome = simulate(pipeline, downloaded, "--task", "draw", "--force")
    assert outcome.status == 0, outcome.err
    kinds = {w.worker_id: w.kind for w in BoxCrowd().workers()}
    by_task = answers_by_task(results(downloaded, 1, "draw"), tasks)
    careful_hits, spam_hits = [], []
    for task in tasks:
        path = next(p for p, i in images.items() if i["image_id"] == task["image_id"])
        truth = (
            expected_truth(path, task["width"], task["height"]) if path != f"/picture/{B}/4.jpg" else np.empty((0, 4))
        )
        for row in by_task[task["task_id"]]:
            (answer,) = json.loads(row["Answer.taskAnswers"])
            result = answer["annotatedResult"]
            assert result["inputImageProperties"] == {"width": task["width"], "height": task["height"]}
            drawn = [from_ltwh(b["left"], b["top"], b["width"], b["height"]) for b in result["boundingBoxes"]]
            assert len(drawn) <= 1 and all(b["label"] == task["wnid"] for b in result["boundingBoxes"])
            assert all(problem(box, task["width"], task["height"]) is None for box in drawn)
            kind = kinds[row["WorkerId"]]
            if kind == CAREFUL:
                assert bool(drawn) == bool(len(truth)), (path, row)  # nothing drawn on the wrong class
                if drawn:
                    overlap = iou_matrix(drawn, truth)[0]
                    careful_hits.append(overlap.max())
                    if task["kind"] == "positive":  # the one instance not shown
                        assert overlap.argmax() == 0
            if kind == SPAMMER and len(truth):
                spam_hits.append(iou_matrix(drawn, truth).max())
    assert len(careful_hits) > 20 and min(careful_hits) >= 0.7
    assert spam_hits and np.mean(np.array(spam_hits) >= 0.7) < 0.2


def test_simulated_judges_answer_yes_or_no_by_the_truth(pipeline, downloaded):
    images = stored(downloaded)
    path = f"/picture/{A}/1.jpg"
    image = images[path]
    truth = expected_truth(path, image["width"], image["height"])
    good, bad = truth[0], truth[0] + [0, 0, -(truth[0][2] - truth[0][0]) // 2, 0]
    quality = [
        task_row("b1-quality-good", image, 30, box=good),
        task_row("b1-quality-bad", image, 30, box=bad),
        task_row("b1-quality-gold-wrongclass", images[f"/picture/{B}/4.jpg"], 30, box=good, kind="negative"),
    ]
    coverage = [
        task_row("b1-coverage-all", image, 30, shown=truth + 2),
        task_row("b1-coverage-some", image, 30, shown=truth[1:]),
    ]
    write_tasks(downloaded, 1, "quality", quality)
    write_tasks(downloaded, 1, "coverage", coverage)
    kinds = {w.worker_id: w.kind for w in BoxCrowd(spammers=0.3).workers()}
    right = {"b1-quality-good": True, "b1-quality-bad": False, "b1-quality-gold-wrongclass": False}
    right |= {"b1-coverage-all": True, "b1-coverage-some": False}
    for task, tasks in (("quality", quality), ("coverage", coverage)):
        assert simulate(pipeline, downloaded, "--task", task, "--spammers", "0.3").status == 0
        for task_id, rows in answers_by_task(results(downloaded, 1, task), tasks).items():
            said = []
            for row in rows:
                (answer,) = json.loads(row["Answer.taskAnswers"])
                assert set(answer) == {"yes", "no"} and answer["yes"]["on"] != answer["no"]["on"]
                said.append((kinds[row["WorkerId"]], answer["yes"]["on"]))
            careful = [yes == right[task_id] for kind, yes in said if kind == CAREFUL]
            assert np.mean(careful) >= 0.8, task_id


def test_answers_are_the_same_for_the_same_seed_and_a_rerun_skips(pipeline, downloaded):
    images = stored(downloaded)
    write_tasks(downloaded, 2, "draw", [task_row(f"b2-draw-{i['image_id']}", i, 5) for i in images.values()])
    assert simulate(pipeline, downloaded, "--task", "draw", "--round", "2").status == 0
    first = Layout(downloaded).simulated_box_answers(2, "draw").read_bytes()
    again = simulate(pipeline, downloaded, "--task", "draw", "--round", "2")
    assert again.status == 0 and "exists; skipped" in again.err
    assert simulate(pipeline, downloaded, "--task", "draw", "--round", "2", "--force").status == 0
    assert Layout(downloaded).simulated_box_answers(2, "draw").read_bytes() == first
    assert simulate(pipeline, downloaded, "--task", "draw", "--round", "2", "--force", "--seed", "3").status == 0
    assert Layout(downloaded).simulated_box_answers(2, "draw").read_bytes() != first


# -- a truth file, and what the stage refuses ------------------------------------------------------


@pytest.fixture
def plain_store(tmp_path):
    """Two stored images from nowhere the host knows (no truth unless a file gives it)."""
    workdir = tmp_path / "data" / "plain"
    write_synsets(workdir, [A])
    write_images(workdir, [("img-1", A, picture_jpeg(A, 1, 200, 150)), ("img-2", A, picture_jpeg(A, 2, 200, 150))])
    image = {"wnid": A, "width": 200, "height": 150}
    write_tasks(
        workdir, 1, "draw", [task_row(f"b1-draw-img-{n}", {**image, "image_id": f"img-{n}"}, 5) for n in (1, 2)]
    )
    return workdir


def one_line(outcome) -> str:
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert outcome.status == 2 and len(lines) == 1 and lines[0].startswith("error: "), outcome.err
    return lines[0]


def test_a_truth_file_gives_the_boxes(pipeline, plain_store, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("image_id,xmin,ymin,xmax,ymax\nimg-1,10,20,110,100\n")
    outcome = simulate(pipeline, plain_store, "--task", "draw", "--truth-boxes", truth, "--spammers", "0")
    assert outcome.status == 0, outcome.err
    kinds = {w.worker_id: w.kind for w in BoxCrowd(spammers=0).workers()}
    for row in results(plain_store, 1, "draw"):
        boxes = json.loads(row["Answer.taskAnswers"])[0]["annotatedResult"]["boundingBoxes"]
        if kinds[row["WorkerId"]] == CAREFUL and row["Input.task_id"] == "b1-draw-img-1":
            (box,) = boxes
            assert (
                iou_matrix([from_ltwh(box["left"], box["top"], box["width"], box["height"])], [[10, 20, 110, 100]])
                >= 0.7
            )
        if row["Input.task_id"] == "b1-draw-img-2":
            assert boxes == []  # not in the file: no instance


@pytest.mark.parametrize(
    "line,field",
    [
        ("img-1,10,20,210,100", "xmax"),  # past the right edge of the 200x150 image
        ("img-1,-1,20,50,100", "xmin"),
        ("img-1,10,20,10,100", "xmax"),  # no area
        ("img-1,10,20,50.5,100", "xmax"),
        ("img-9,10,20,50,100", "image_id"),
    ],
)
def test_a_truth_file_with_a_bad_box_is_one_line(pipeline, plain_store, tmp_path, line, field):
    truth = tmp_path / "truth.csv"
    truth.write_text(f"image_id,xmin,ymin,xmax,ymax\nimg-2,0,0,200,150\n{line}\n")
    error = one_line(simulate(pipeline, plain_store, "--task", "draw", "--truth-boxes", truth))
    assert str(truth) in error and ":3" in error and field in error
    assert not Layout(plain_store).simulated_box_answers(1, "draw").exists()


def test_a_round_without_tasks_is_one_line(pipeline, plain_store):
    error = one_line(simulate(pipeline, plain_store, "--task", "coverage"))
    assert (
        "no coverage tasks exported for box round 1" in error and "make annotate-export TASK=coverage ROUND=1" in error
    )
    error = one_line(simulate(pipeline, plain_store, "--task", "draw", "--round", "4"))
    assert str(Layout(plain_store).box_tasks(4, "draw")) in error


def test_truth_options_belong_to_their_tasks(pipeline, plain_store, tmp_path):
    assert "--truth-boxes" in one_line(simulate(pipeline, plain_store, "--truth-boxes", tmp_path / "x.csv"))
    assert "--truth" in one_line(simulate(pipeline, plain_store, "--task", "draw", "--truth", tmp_path / "x.csv"))


def test_the_importer_reads_the_simulated_answers(pipeline, plain_store, tmp_path):
    """annotate-import takes the simulated draws in as drawn boxes, one per answer that has one."""
    truth = tmp_path / "truth.csv"
    truth.write_text("image_id,xmin,ymin,xmax,ymax\nimg-1,10,20,110,100\nimg-2,50,40,150,140\n")
    assert simulate(pipeline, plain_store, "--task", "draw", "--truth-boxes", truth).status == 0
    answers = Layout(plain_store).simulated_box_answers(1, "draw")
    outcome = pipeline(
        "annotate-import", "--data", plain_store.parent, "--subset", plain_store.name, "--results", answers
    )
    assert outcome.status == 0, outcome.err
    draws = pd.read_parquet(Layout(plain_store).box_draws)
    boxes = [
        json.loads(r["Answer.taskAnswers"])[0]["annotatedResult"]["boundingBoxes"]
        for r in results(plain_store, 1, "draw")
    ]
    assert len(draws) == 10 and draws.xmin.notna().sum() == sum(map(len, boxes))


def test_score_measures_the_crowds_boxes_against_the_truth(pipeline, plain_store, tmp_path, capsys):
    """One good box (IoU 0.9 with img-1's truth), one loose box (IoU 0.4 with img-2's first
    instance): 50% good, and neither of img-2's instances has a box at IoU >= 0.5."""
    truth = tmp_path / "truth.csv"
    truth.write_text("image_id,xmin,ymin,xmax,ymax\nimg-1,10,20,110,100\nimg-2,0,0,100,100\nimg-2,120,50,200,150\n")
    assert "no box round imported yet" in one_line(simulate(pipeline, plain_store, "--score", "--truth-boxes", truth))
    layout = Layout(plain_store)
    images = {"image_id": ["img-1", "img-2"], "wnid": [A, A], "width": [200, 200], "height": [150, 150]}
    state = {"draw_rounds": [1, 1], "last_draw": [1, 1], "pending": [0, 0], "boxes": [1, 1]}
    write_table({**images, **state, "coverage": ["complete", "incomplete"]}, layout.box_images, schemas.BOX_IMAGES)
    boxes = {"box_id": ["b1", "b2"], "image_id": ["img-1", "img-2"], "wnid": [A, A]}
    edges = {"xmin": [10, 0], "ymin": [20, 0], "xmax": [100, 40], "ymax": [100, 100]}
    sizes = {"width": [200, 200], "height": [150, 150], "drawn_by": [3, 2], "approved_by": [5, 4]}
    write_table({**boxes, **edges, **sizes, "source": ["crowd"] * 2}, layout.boxes, schemas.BOXES)
    where = ["--data", str(plain_store.parent), "--subset", plain_store.name]
    assert main(["annotate-simulate", *where, "--score", "--truth-boxes", str(truth)]) == 0
    assert capsys.readouterr().out.strip() == (
        "annotate-simulate: 2 consensus boxes on 2 images (1 covered): 50.0% at IoU >= 0.7 with a true box; "
        "2 of 3 true instances unboxed (IoU < 0.5), on 1 images"
    )
