"""Write a box round's tasks for the tool that will show them: MTurk, Label Studio or JSONL.

The same rules as the classification HITs (``annotation.formats``):

- MTurk: ``mturk/batch.csv`` (one row per task) and ``mturk/question.html``, an HTMLQuestion
  template whose ``${name}`` placeholders are columns of the CSV. MTurk pastes values into the
  HTML unescaped, so every value is HTML-escaped here. The task id, round and wnid travel in the
  CSV alone (MTurk hands them back as ``Input.*``): the page never shows a task id, whose
  ``-gold`` would tell a worker which tasks are gold. Draw uses crowd-bounding-box
  (``labels``: the task's wnid; ``initial-value``: the boxes accepted so far, so the worker sees
  them); quality and coverage draw the boxes over the image with SVG built by script from a
  JSON attribute (DOM calls, never pasted HTML) and ask yes or no with crowd-radio-group.
- Label Studio: ``labelstudio/config.xml`` (``RectangleLabels`` for draw, ``Choices`` yes/no
  for quality and coverage) and ``labelstudio/tasks.json``: ``data.task_id`` and the image, with
  the boxes to show as pre-annotations (``predictions``) in percent of the image.
- JSONL: ``tasks.jsonl``, one task a line, boxes in our convention.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd

from pipeline.boxes import COLUMNS, to_ltwh, to_percent
from pipeline.files import atomic_write_json, atomic_write_jsonl, atomic_write_text

from .box_consensus import COVERAGE, DRAW, QUALITY
from .formats import FORMATS

MTURK_FIELDS = ("task_id", "round", "task", "wnid", "words", "gloss", "parent", "wikipedia", "url", "labels", "boxes")
QUESTIONS = {
    DRAW: "Draw a box around one {words} that has no box yet",
    QUALITY: "Is the box drawn tightly around exactly one {words}?",
    COVERAGE: "Does every {words} in the image have a box?",
}

_HEAD = """<!-- synsetforge box task ({task}): MTurk question template; its placeholders are batch.csv's columns. -->
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
"""
_ABOUT = """  <p><b>${words}</b>: <span>${gloss}</span> (a kind of <span>${parent}</span>).
     <a href="${wikipedia}" target="_blank" rel="noopener noreferrer">Look it up on Wikipedia</a></p>
"""

DRAW_QUESTION = (
    _HEAD.format(task=DRAW)
    + """<crowd-form answer-format="flatten-objects">
"""
    + _ABOUT
    + """  <crowd-bounding-box name="annotatedResult" src="${url}" labels="${labels}" initial-value="${boxes}"
    header="Draw a box around ONE ${words} that has no box yet">
    <full-instructions header="Boxing one object">
      <p>The boxes already drawn stay as they are. Draw one new box, as tight as you can around the
      whole visible object. If every ${words} already has a box, submit without drawing.</p>
    </full-instructions>
    <short-instructions><p>One new box around one ${words} not yet boxed; none if all are boxed.</p></short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""
)

JUDGE_QUESTION = """{head}<style>
  .frame {{ position: relative; display: inline-block; }}
  .frame img {{ display: block; max-width: 640px; height: auto; }}
  .frame svg {{ position: absolute; left: 0; top: 0; width: 100%; height: 100%; }}
  .frame rect {{ fill: none; stroke: #ff00aa; stroke-width: 3; vector-effect: non-scaling-stroke; }}
</style>
<crowd-form answer-format="flatten-objects">
  <h2>{question}</h2>
{about}  <div class="frame" id="frame" data-url="${{url}}" data-boxes="${{boxes}}"></div>
  <crowd-radio-group>
    <crowd-radio-button name="yes" value="yes">Yes</crowd-radio-button>
    <crowd-radio-button name="no" value="no">No</crowd-radio-button>
  </crowd-radio-group>
</crowd-form>
<script>
  (function () {{
    var frame = document.getElementById("frame");
    var url = frame.getAttribute("data-url");
    var boxes = JSON.parse(frame.getAttribute("data-boxes"));
    if (!/^https?:\\/\\//.test(url)) {{ return; }}
    var img = document.createElement("img");
    img.alt = "image to judge";
    img.addEventListener("load", function () {{
      var ns = "http://www.w3.org/2000/svg";
      var svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", "0 0 " + img.naturalWidth + " " + img.naturalHeight);
      svg.setAttribute("preserveAspectRatio", "none");
      boxes.forEach(function (b) {{
        var rect = document.createElementNS(ns, "rect");
        rect.setAttribute("x", String(Number(b.left)));
        rect.setAttribute("y", String(Number(b.top)));
        rect.setAttribute("width", String(Number(b.width)));
        rect.setAttribute("height", String(Number(b.height)));
        svg.appendChild(rect);
      }});
      frame.appendChild(svg);
    }});
    img.src = url;
    frame.appendChild(img);
  }})();
</script>
"""

LABEL_STUDIO_DRAW = """<View>
  <Header value="Draw a box around ONE $words that has no box yet (none if every one is boxed)"/>
  <Text name="gloss" value="$gloss"/>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
{labels}  </RectangleLabels>
</View>
"""

LABEL_STUDIO_JUDGE = """<View>
  <Header value="{question}"/>
  <Text name="gloss" value="$gloss"/>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
{labels}  </RectangleLabels>
  <Choices name="answer" toName="image" choice="single" showInline="true" required="true">
    <Choice value="yes"/>
    <Choice value="no"/>
  </Choices>
</View>
"""


def question(task: str) -> str:
    """The MTurk question template of one box task."""
    if task == DRAW:
        return DRAW_QUESTION
    text = html.escape(QUESTIONS[task].format(words="${words}"), quote=False)
    return JUDGE_QUESTION.format(head=_HEAD.format(task=task), question=text, about=_ABOUT)


def shown_boxes(task: pd.Series) -> list[list[int]]:
    """What a task shows, our convention: the judged box (quality) or the accepted ones."""
    if task["task"] == QUALITY:
        return [[int(task[c]) for c in COLUMNS]]
    return [list(map(int, b)) for b in task["shown"]]


def task_records(tasks: pd.DataFrame, about: dict[str, dict]) -> list[dict]:
    """One record per task, in task_id order: its synset's description and what it shows."""
    records = []
    for _, task in tasks.sort_values("task_id").iterrows():
        records.append(
            {
                "task_id": task.task_id,
                "round": int(task["round"]),
                "task": task.task,
                "wnid": task.wnid,
                **about[task.wnid],
                "image_id": task.image_id,
                "url": task.url,
                "width": int(task.width),
                "height": int(task.height),
                "assignments": int(task.assignments),
                "boxes": shown_boxes(task),
            }
        )
    return records


def write(fmt: str, folder: Path, task: str, records: list[dict]) -> list[Path]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    return {"mturk": write_mturk, "labelstudio": write_labelstudio, "jsonl": write_tasks_jsonl}[fmt](
        folder, task, records
    )


def write_mturk(folder: Path, task: str, records: list[dict]) -> list[Path]:
    out = folder / "mturk"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        ltwh = [
            dict(zip(("left", "top", "width", "height"), to_ltwh(b)), label=record["wnid"]) for b in record["boxes"]
        ]
        values = {
            **record,
            "labels": json.dumps([record["wnid"]]),
            "boxes": json.dumps(ltwh, separators=(",", ":")),
        }
        rows.append({f: html.escape(str(values[f]), quote=True) for f in MTURK_FIELDS})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MTURK_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "batch.csv", buffer.getvalue())
    atomic_write_text(out / "question.html", question(task))
    return [out / "batch.csv", out / "question.html"]


def _prediction(record: dict) -> list[dict]:
    """The boxes a task shows as Label Studio pre-annotations (percent of the image)."""
    result = []
    for box in record["boxes"]:
        x, y, w, h = to_percent(box, record["width"], record["height"])
        result.append(
            {
                "from_name": "box",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": record["width"],
                "original_height": record["height"],
                "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [record["wnid"]]},
            }
        )
    return [{"model_version": "synsetforge", "result": result}] if result else []


def write_labelstudio(folder: Path, task: str, records: list[dict]) -> list[Path]:
    out = folder / "labelstudio"
    out.mkdir(parents=True, exist_ok=True)
    tasks = [
        {
            "data": {
                "image": r["url"],
                "task_id": r["task_id"],
                "round": r["round"],
                "task": r["task"],
                "image_id": r["image_id"],
                "wnid": r["wnid"],
                "words": r["words"],
                "gloss": r["gloss"],
                "width": r["width"],
                "height": r["height"],
                "assignments": r["assignments"],
            },
            "predictions": _prediction(r),
        }
        for r in records
    ]
    wnids = sorted({r["wnid"] for r in records})
    labels = "".join(f"    <Label value={quoteattr(w)}/>\n" for w in wnids)
    if task == DRAW:
        config = LABEL_STUDIO_DRAW.format(labels=labels)
    else:
        config = LABEL_STUDIO_JUDGE.format(question=QUESTIONS[task].format(words="$words"), labels=labels)
    atomic_write_json(out / "tasks.json", tasks)
    atomic_write_text(out / "config.xml", config)
    return [out / "tasks.json", out / "config.xml"]


def write_tasks_jsonl(folder: Path, task: str, records: list[dict]) -> list[Path]:
    path = folder / "tasks.jsonl"
    atomic_write_jsonl(path, records)
    return [path]
