"""Write a round's HITs for the tool that will show them: MTurk, Label Studio or plain JSONL.

- MTurk: ``mturk/batch.csv`` (one row per HIT) and ``mturk/question.html``, whose ``${name}``
  placeholders are the CSV's header. MTurk pastes values into the HTML unescaped, so every
  value is HTML-escaped here; the grid is built by the page's script from a JSON attribute
  with DOM calls, never by pasting HTML. The answer is one hidden field, ``ticked``: a JSON
  list of the ticked image_ids, which MTurk returns in ``Answer.taskAnswers``.
- Label Studio: ``labelstudio/tasks.json`` (one task per image of a HIT, with the HIT's
  synset) and ``labelstudio/config.xml`` (yes/no per image); set the project's overlap to
  the HIT's assignments.
- JSONL: ``tasks.jsonl``, one HIT per line, for any other tool.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from pipeline.files import atomic_write_json, atomic_write_jsonl, atomic_write_text

FORMATS = ("mturk", "labelstudio", "jsonl")
MTURK_FIELDS = ("hit_id", "round", "wnid", "words", "gloss", "parent", "wikipedia", "images")

QUESTION = """<!-- synsetforge HIT: MTurk question template. ${...} placeholders are batch.csv's header. -->
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<style>
  .grid { display: flex; flex-wrap: wrap; gap: 6px; }
  .grid button { padding: 0; border: 4px solid #ddd; background: none; cursor: pointer; }
  .grid button[aria-pressed="true"] { border-color: #1a7f1a; }
  .grid img { width: 160px; height: 160px; object-fit: contain; display: block; }
</style>
<crowd-form answer-format="flatten-objects">
  <h2>Tick every image that shows: <span>${words}</span></h2>
  <p><b>Meaning:</b> <span>${gloss}</span> (a kind of <span>${parent}</span>).
     <a href="${wikipedia}" target="_blank" rel="noopener noreferrer">Look it up on Wikipedia</a></p>
  <p>Tick an image if the concept is clearly visible in it, even with other things around it.
     Leave drawings of it, or images where you cannot tell, unticked.</p>
  <div class="grid" id="grid" data-images="${images}" data-hit="${hit_id}" data-wnid="${wnid}" data-round="${round}"></div>
  <input type="hidden" name="ticked" id="ticked" value="[]">
</crowd-form>
<script>
  (function () {
    var grid = document.getElementById("grid");
    var images = JSON.parse(grid.getAttribute("data-images"));
    var ticked = new Set();
    images.forEach(function (image) {
      if (!/^https?:\\/\\//.test(image.url)) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      var img = document.createElement("img");
      img.src = image.url;
      img.alt = "candidate image";
      button.appendChild(img);
      button.addEventListener("click", function () {
        if (ticked.has(image.id)) { ticked.delete(image.id); } else { ticked.add(image.id); }
        button.setAttribute("aria-pressed", String(ticked.has(image.id)));
        document.getElementById("ticked").value = JSON.stringify(Array.from(ticked));
      });
      grid.appendChild(button);
    });
  })();
</script>
"""

LABEL_STUDIO_CONFIG = """<View>
  <Header value="Does this image show: $words"/>
  <Text name="gloss" value="$gloss"/>
  <Text name="parent" value="a kind of $parent"/>
  <Text name="wikipedia" value="$wikipedia"/>
  <Image name="image" value="$image"/>
  <Choices name="choice" toName="image" choice="single" showInline="true" required="true">
    <Choice value="yes"/>
    <Choice value="no"/>
  </Choices>
</View>
"""


def describe(synsets: pd.DataFrame, words: dict[str, str] | None = None) -> dict[str, dict]:
    """What a worker reads about each synset: lemmas, gloss, parent's name (from ``words``,
    ImageNet's words.txt, which covers the ancestors too), a Wikipedia search."""
    names = {**(words or {}), **dict(zip(synsets.wnid, synsets.name))}
    about = {}
    for row in synsets.itertuples():
        parent = next(iter(row.parents), "")
        about[row.wnid] = {
            "words": ", ".join(row.lemmas),
            "gloss": row.gloss,
            "parent": names.get(parent, parent).split(",")[0],
            "wikipedia": "https://en.wikipedia.org/w/index.php?search="
            + quote(row.lemmas[0] if len(row.lemmas) else row.name),
        }
    return about


def hit_records(hits: pd.DataFrame, about: dict[str, dict]) -> list[dict]:
    """One record per HIT: its synset's description, assignments and images in grid order."""
    records = []
    for hit_id, grid in hits.sort_values(["hit_id", "position"]).groupby("hit_id", sort=True):
        first = grid.iloc[0]
        records.append(
            {
                "hit_id": hit_id,
                "round": int(first["round"]),
                "wnid": first.wnid,
                **about[first.wnid],
                "assignments": int(first.assignments),
                "images": [{"id": i, "url": u} for i, u in zip(grid.image_id, grid.url)],
            }
        )
    return records


def write(fmt: str, folder: Path, records: list[dict]) -> list[Path]:
    return {"mturk": write_mturk, "labelstudio": write_labelstudio, "jsonl": write_tasks_jsonl}[fmt](folder, records)


def write_mturk(folder: Path, records: list[dict]) -> list[Path]:
    out = folder / "mturk"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        values = {**record, "images": json.dumps(record["images"], separators=(",", ":"))}
        rows.append({f: html.escape(str(values[f]), quote=True) for f in MTURK_FIELDS})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MTURK_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "batch.csv", buffer.getvalue())
    atomic_write_text(out / "question.html", QUESTION)
    return [out / "batch.csv", out / "question.html"]


def write_labelstudio(folder: Path, records: list[dict]) -> list[Path]:
    out = folder / "labelstudio"
    out.mkdir(parents=True, exist_ok=True)
    tasks = [
        {
            "data": {
                "image": image["url"],
                "image_id": image["id"],
                "hit_id": r["hit_id"],
                "wnid": r["wnid"],
                "words": r["words"],
                "gloss": r["gloss"],
                "parent": r["parent"],
                "wikipedia": r["wikipedia"],
                "assignments": r["assignments"],
            }
        }
        for r in records
        for image in r["images"]
    ]
    atomic_write_json(out / "tasks.json", tasks)
    atomic_write_text(out / "config.xml", LABEL_STUDIO_CONFIG)
    return [out / "tasks.json", out / "config.xml"]


def write_tasks_jsonl(folder: Path, records: list[dict]) -> list[Path]:
    path = folder / "tasks.jsonl"
    atomic_write_jsonl(path, records)
    return [path]


def read_words(path: Path) -> dict[str, str]:
    """words.txt: ``wnid<TAB>lemma, lemma``."""
    if not path.exists():
        return {}
    return dict(line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line)
