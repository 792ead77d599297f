"""Object boxes in the files ILSVRC-2012 and Kaggle's ImageNet Object Localization Challenge
ship them in, written and read in this one place.

- ``Annotations/CLS-LOC/train/<wnid>/<stem>.xml`` and ``Annotations/CLS-LOC/{val,test}/<stem>.xml``:
  PASCAL VOC XML as ILSVRC-2012 shipped it (``annotation`` > ``folder`` (the wnid for train, the
  split otherwise), ``filename`` (the file's stem, no extension), ``source`` > ``database``
  ILSVRC_2012, ``size`` > ``width``, ``height``, ``depth`` 3, ``segmented`` 0, then one
  ``object`` per box: ``name`` (the wnid), ``pose`` Unspecified, ``truncated`` 0, ``difficult``
  0, ``bndbox`` > ``xmin``, ``ymin``, ``xmax``, ``ymax``), tab-indented, no XML declaration.
- Kaggle's ``LOC_<split>_solution.csv``: ``ImageId,PredictionString``, the PredictionString
  ``wnid xmin ymin xmax ymax `` once per box, each group followed by a space.

Both hold VOC coordinates (1-based, inclusive: ``pipeline.boxes.to_voc``/``from_voc``); what
is read here comes back in our convention (``pipeline.boxes.Box``) with its wnid.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple
from xml.etree import ElementTree

from pipeline.boxes import Box, from_voc, to_voc
from pipeline.errors import InputError
from pipeline.schemas import NOUN_WNID_RE
from pipeline.text import read_text

DATABASE = "ILSVRC_2012"
ANNOTATIONS = Path("Annotations", "CLS-LOC")
HEADER = ["ImageId", "PredictionString"]
EDGES = ("xmin", "ymin", "xmax", "ymax")


class Labelled(NamedTuple):
    """A box of an object and the object's class."""

    wnid: str
    box: Box


class LocRow(NamedTuple):
    """One line of a LOC solution file: where it is, and its boxes."""

    line: int
    boxes: list[Labelled]


def annotation_name(split: str, wnid: str, stem: str) -> str:
    """Where ILSVRC keeps an image's XML, relative to the dataset's root."""
    below = f"{split}/{wnid}" if split == "train" else split
    return f"{ANNOTATIONS.as_posix()}/{below}/{stem}.xml"


def voc_xml(folder: str, stem: str, width: int, height: int, boxes: list[Labelled]) -> bytes:
    """An image's boxes as ILSVRC-2012's XML, element for element."""

    def add(parent: ElementTree.Element, tag: str, text: object = None) -> ElementTree.Element:
        element = ElementTree.SubElement(parent, tag)
        if text is not None:
            element.text = str(text)
        return element

    root = ElementTree.Element("annotation")
    add(root, "folder", folder)
    add(root, "filename", stem)
    add(add(root, "source"), "database", DATABASE)
    size = add(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        add(size, tag, value)
    add(root, "segmented", 0)
    for wnid, box in boxes:
        item = add(root, "object")
        for tag, value in (("name", wnid), ("pose", "Unspecified"), ("truncated", 0), ("difficult", 0)):
            add(item, tag, value)
        bndbox = add(item, "bndbox")
        for tag, value in zip(EDGES, to_voc(box)):
            add(bndbox, tag, value)
    ElementTree.indent(root, space="\t")
    return ElementTree.tostring(root, encoding="utf-8") + b"\n"


def _integer(text: str | None, path: Path, field: str) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        raise InputError("expected an integer", file=path, field=field, value=text) from None


def _wnid(text: str | None, path: Path, field: str, line: int | None = None) -> str:
    wnid = (text or "").strip()
    if not NOUN_WNID_RE.fullmatch(wnid):
        raise InputError("expected a noun wnid: 'n' and 8 digits", file=path, line=line, field=field, value=text)
    return wnid


def _box(voc: list[int], path: Path, field: str, line: int | None = None) -> Box:
    """A VOC box in our convention; a negative coordinate (which ``from_voc`` would move to the
    edge) lies outside every image."""
    if min(voc) < 0:
        raise InputError("a box outside its image: a negative coordinate", file=path, line=line, field=field, value=voc)
    return from_voc(*voc)


def read_voc_xml(path: Path) -> tuple[int, int, list[Labelled]]:
    """The size (width, height) and the boxes of an ILSVRC/PASCAL VOC annotation file."""
    try:
        root = ElementTree.fromstring(path.read_bytes())
    except ElementTree.ParseError as e:
        line, column = e.position
        raise InputError(f"not well-formed XML (column {column}): {e.msg}", file=path, line=line) from None
    size = root.find("size")
    if size is None:
        raise InputError("no <size> element: the boxes' image size is unknown", file=path, field="size")
    width = _integer(size.findtext("width"), path, "size/width")
    height = _integer(size.findtext("height"), path, "size/height")
    boxes = []
    for number, item in enumerate(root.iter("object"), 1):
        where = f"object {number}"
        wnid = _wnid(item.findtext("name"), path, f"{where} name")
        bndbox = item.find("bndbox")
        if bndbox is None:
            raise InputError("an object without <bndbox>", file=path, field=where)
        voc = [_integer(bndbox.findtext(edge), path, f"{where} bndbox/{edge}") for edge in EDGES]
        boxes.append(Labelled(wnid, _box(voc, path, f"{where} bndbox")))
    return width, height, boxes


def prediction_string(boxes: list[Labelled]) -> str:
    """Kaggle's PredictionString: ``wnid xmin ymin xmax ymax `` per box (VOC coordinates)."""
    return "".join(f"{wnid} {' '.join(map(str, to_voc(box)))} " for wnid, box in boxes)


def loc_csv(rows: list[tuple[str, list[Labelled]]]) -> str:
    """A LOC solution file of (ImageId, boxes) rows, in the order given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((image, prediction_string(boxes)) for image, boxes in rows)
    return buffer.getvalue()


def read_loc_csv(path: Path) -> dict[str, LocRow]:
    """Kaggle's ``LOC_<split>_solution.csv``: ImageId -> its line and boxes (the first box's wnid
    is the image's class)."""
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != HEADER:
            raise InputError("expected the header ImageId,PredictionString", file=path, line=1, value=header)
        rows: dict[str, LocRow] = {}
        for number, row in enumerate(reader, 2):
            if not row:
                continue
            values = row[1].split() if len(row) == 2 else []
            if not values or len(values) % 5:
                raise InputError(
                    "expected ImageId,<wnid> <xmin> <ymin> <xmax> <ymax> ..., five values a box",
                    file=path,
                    line=number,
                    field="PredictionString",
                    value=",".join(row),
                )
            if row[0] in rows:
                raise InputError(
                    f"the image is listed twice (first on line {rows[row[0]].line})",
                    file=path,
                    line=number,
                    field="ImageId",
                    value=row[0],
                )
            boxes = []
            for start in range(0, len(values), 5):
                wnid = _wnid(values[start], path, "PredictionString", number)
                try:
                    voc = [int(v) for v in values[start + 1 : start + 5]]
                except ValueError:
                    raise InputError(
                        "box coordinates must be integers",
                        file=path,
                        line=number,
                        field="PredictionString",
                        value=" ".join(values[start : start + 5]),
                    ) from None
                boxes.append(Labelled(wnid, _box(voc, path, "PredictionString", number)))
            rows[row[0]] = LocRow(number, boxes)
    return rows
