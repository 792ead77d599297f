"""Write a round's HITs for the tool that will show them: MTurk, Label Studio or plain JSONL.

- MTurk: ``mturk/batch.csv`` (one row per HIT) and ``mturk/question.html``, whose ``${name}``
  placeholders are the CSV's header. MTurk pastes values into the HTML unescaped, so every
  value is HTML-escaped here; the grid is built by the page's script from a JSON attribute
  with DOM calls, never by pasting HTML. The answer is one hidden field, ``ticked``: a JSON
  list of the ticked image_ids, which MTurk returns in ``Answer.taskAnswers``. MTurk fills in
  every dollar-brace placeholder of the file, comments included, so none is written but the
  CSV's columns. Workers see the HIT inside an https page of mturk.com: their browsers block
  ``http://`` images in it, and an address of this machine (127.0.0.1, a private network) is
  out of their reach, so ``mturk_url_problem`` refuses such an image base URL.
- Label Studio: ``labelstudio/tasks.json`` (one task per image of a HIT, with the HIT's
  synset) and ``labelstudio/config.xml`` (yes/no per image); set the project's overlap to
  the HIT's assignments.
- JSONL: ``tasks.jsonl``, one HIT per line, for any other tool.

It also reads the files people hand back (results, seed controls, a truth list) as text: UTF-8
or an error naming the line and field where another encoding shows.
"""

from __future__ import annotations

import codecs
import csv
import html
import io
import ipaddress
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pandas as pd
import pyarrow as pa

from pipeline.errors import InputError
from pipeline.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from pipeline.tables import unreadable
from pipeline.text import NotUtf8
from pipeline.text import decode as decode_text

FORMATS = ("mturk", "labelstudio", "jsonl")
MAX_FIELD = 128 * 1024  # characters in one CSV field: Python's csv limit (no answer comes near it)
SHOWN = 80  # bytes of an undecodable value an error shows
UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8
MTURK_FIELDS = ("hit_id", "round", "wnid", "words", "gloss", "parent", "wikipedia", "images")

QUESTION = """<!-- synsetforge HIT: MTurk question template; its placeholders are batch.csv's column names. -->
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


def mturk_url_problem(base_url: str) -> str | None:
    """Why a worker's browser on MTurk would show no image from ``base_url``, or None: the
    HIT page is https, so an ``http://`` image is mixed content that browsers block, and a
    loopback or private host is this machine's or this network's, not the worker's."""
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return "is not https"
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "names this machine (localhost)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: whoever serves the images answers for it
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified:
        return f"is a loopback or private address ({address}), out of workers' reach"
    return None


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


# -- reading what people hand back ---------------------------------------------------------------


def decode(path: Path, data: bytes, kind: str) -> str:
    """``data`` as UTF-8 text (``pipeline.text.decode``); where a byte that is not UTF-8 stops
    it and the text around it parses, the error names the row and field too (``kind``: csv,
    json or jsonl)."""
    try:
        return decode_text(data, path)
    except NotUtf8 as e:
        row, field, value = _undecodable(data.removeprefix(codecs.BOM_UTF8).decode("utf-8", "surrogateescape"), kind)
        raise InputError(
            e.message,
            file=path,
            line=e.line,
            row=row,
            field=field,
            value=value.encode("utf-8", "surrogateescape")[:SHOWN] if value is not None else None,
        ) from None


def _undecodable(text: str, kind: str) -> tuple[int | None, str | None, str | None]:
    """Row (CSV data row, JSON array item; None for JSONL, whose row is its line), field path
    and value of the first string holding a byte that is not UTF-8; Nones where unparseable."""
    try:
        if kind == "csv":
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader, [])
            if any(UNDECODABLE.search(name) for name in header):
                return None, "header", next(n for n in header if UNDECODABLE.search(n))
            for row, record in enumerate(reader, start=1):
                found = _found(dict(zip(header, record)))
                if found:
                    return row, *found
        elif kind == "json":
            for row, item in enumerate(json.loads(text), start=1):
                found = _found(item)
                if found:
                    return row, *found
        else:
            for line in text.splitlines():
                found = _found(json.loads(line)) if UNDECODABLE.search(line) else None
                if found:
                    return None, *found
    except (csv.Error, ValueError, TypeError):
        pass
    return None, None, None


def _found(value: object, where: str = "") -> tuple[str, str] | None:
    """(field path, string) of the first string in ``value`` (dicts and lists within) that
    holds an undecodable byte: a key counts as its own field."""
    if isinstance(value, str):
        return (where or "value", value) if UNDECODABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            found = _found(key, path) or _found(item, path)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _found(item, f"{where}[{i}]")
            if found:
                return found
    return None


def csv_records(path: Path, text: str) -> tuple[list[str], Iterator[tuple[dict, dict]]]:
    """A CSV text's header, and its data rows as (where: ``line`` and ``row``, record). A
    malformed CSV, or a field over ``MAX_FIELD`` characters, stops with its line, row and field."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise _csv_error(path, text, e, {"line": 1}) from None
    return list(header), _csv_rows(path, text, reader)


def _csv_rows(path: Path, text: str, reader: csv.DictReader) -> Iterator[tuple[dict, dict]]:
    row = 0
    try:
        for row, record in enumerate(reader, start=1):
            yield {"line": reader.line_num, "row": row}, record
    except csv.Error as e:
        raise _csv_error(path, text, e, {"line": reader.line_num + 1, "row": row + 1}) from None


def _csv_error(path: Path, text: str, error: csv.Error, where: dict) -> InputError:
    field = _oversized(text)
    if field is None:
        return InputError(f"not CSV ({error})", file=path, **where)
    return InputError(
        f"a field over {MAX_FIELD // 1024} KB: not a value this file should hold", file=path, **where, field=field
    )


def _oversized(text: str) -> str | None:
    """The name of the first field longer than ``MAX_FIELD`` characters, or None (another
    CSV error). csv's limit is process-wide: raised only while looking, then put back."""
    limit = csv.field_size_limit(sys.maxsize)
    try:
        records = csv.reader(io.StringIO(text, newline=""))
        header = next(records, [])
        for column, name in enumerate(header):
            if len(name) > MAX_FIELD:
                return f"header column {column + 1}"
        for record in records:
            for column, value in enumerate(record):
                if len(value) > MAX_FIELD:
                    return header[column] if column < len(header) else f"column {column + 1}"
    except csv.Error:
        return None
    finally:
        csv.field_size_limit(limit)
    return None


def read_listing(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[dict, dict]]:
    """A CSV or Parquet list handed in on the command line (seed controls, a truth list): each
    row's ``columns`` with where it came from (``line`` and ``row``, for errors). A file that
    is not UTF-8 CSV or Parquet, a missing column or an empty value stops with one line."""
    if not path.is_file():
        raise InputError(f"no such {what} file", file=path)
    if path.suffix == ".parquet":
        try:
            table = pd.read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise unreadable(path, e) from None
        records = [({"row": n}, r) for n, r in enumerate(table.to_dict("records"), start=1)]
        header = list(table.columns)
    else:
        header, rows = csv_records(path, decode(path, path.read_bytes(), "csv"))
        records = list(rows)
    for field in columns:
        if field not in header:
            raise InputError(f"column missing from the {what} file", file=path, field=field)
    out = []
    for where, record in records:
        for field in columns:
            value = record.get(field)
            if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
                raise InputError("empty", file=path, **where, field=field)
        out.append((where, {f: record[f] for f in columns}))
    return out
