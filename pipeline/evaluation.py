"""``evaluate``: one scorer for every model, ours or anyone's, as ILSVRC scored classification and
single-object localization (the devkit's ``eval_clsloc``, Kaggle's ImageNet Object Localization
Challenge; Russakovsky et al., IJCV 2015). It lives in ``pipeline`` because the baseline scores
its own predictions with it (``write_submission``, then ``score``).

**The submission** is Kaggle's CSV: the header ``ImageId,PredictionString``, one row per image of
the split. PredictionString holds up to five guesses, best first, separated by spaces, each
``wnid xmin ymin xmax ymax`` (PASCAL VOC pixel indices, 1-based and inclusive, as Kaggle's
``LOC_*_solution.csv`` and ILSVRC's XML: ``pipeline.boxes.to_voc``) or a bare ``wnid``. Every
guess of a file has a box (a localization submission, as Kaggle's always are) or none has (a
classification submission): a file mixing them is refused, because a guess whose box was lost
would silently count as a wrong localization. An empty PredictionString is an image with no
guess, wrong at every k. ImageId is the manifest's ``image_id`` or the ILSVRC export's file stem
(``ILSVRC2012_val_00000001``), read through ``export/ilsvrc/files.csv``, which must list the
split's current images. Coordinates are taken as given, as the devkit takes them: a box reaching
past the image only lowers its overlap.

**The scores**, over every image of the split:

- top-k classification error: an image is right when one of its first k guesses is its class;
- top-k localization error: a guess is right when its class is the image's and its box overlaps
  some true box of that class in the image (``manifests/boxes.parquet``) with IoU >= 0.5, the
  overlap counted on inclusive pixel indices as the devkit's ``compute_overlap`` does
  (``iou_pairs(inclusive=True)`` on VOC boxes, which equals IoU in our convention); an image is
  right at k when one of its first k guesses is. Only the images with true boxes count; the
  errors are null when the split has no boxes or the submission gives none.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import runner, schemas
from .boxes import COLUMNS as BOX_COLUMNS
from .boxes import iou_pairs, problem, to_voc
from .errors import InputError
from .files import atomic_path, atomic_write_text
from .layout import SPLITS, Layout
from .tables import read_table, write_report
from .text import read_text

HELP = "score a submission (Kaggle's ImageId,PredictionString CSV) as ILSVRC did: evaluations/<split>-<name>.json"
HEADER = ["ImageId", "PredictionString"]
GUESSES = 5  # ILSVRC scores the first five guesses of an image
TOPS = (1, 5)
IOU_THRESHOLD = 0.5
EXPORT_INDEX = "files.csv"  # in export/ilsvrc/: each file's image_id
CSV_COLUMNS = (
    "wnid",
    "label",
    "name",
    "images",
    "top1_error",
    "top5_error",
    "images_with_boxes",
    "top1_loc_error",
    "top5_loc_error",
)
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--submission",
        type=Path,
        required=True,
        help="the CSV to score: ImageId,PredictionString, up to five 'wnid [xmin ymin xmax ymax]' "
        "guesses per image, boxes as VOC pixel indices (make: SUBMISSION)",
    )
    parser.add_argument(
        "--split", choices=SPLITS, default="val", help="the split the submission answers (make: SPLIT, default val)"
    )


def run(args: argparse.Namespace) -> None:
    workdir, submission = args.workdir, Path(args.submission)
    result = score(workdir, args.split, submission)
    path = Layout(workdir).evaluation(args.split, submission.stem)
    table = path.with_suffix(".csv")
    doc = {
        "dataset": str(workdir),
        "submission": str(submission),
        "submission_sha256": hashlib.sha256(submission.read_bytes()).hexdigest(),
        **result,
        "per_class_csv": table.name,
    }
    with runner.lock(workdir, "evaluate"):  # scoring only reads; these two files are its writes
        atomic_write_text(table, per_class_csv(result))
        write_report(path, schemas.EVALUATE_REPORT, doc)
    print(summary_line(result, path), file=sys.stderr)


def score(workdir: Path, split: str, submission: Path) -> dict:
    """The ILSVRC errors of ``submission`` (a Kaggle CSV) on ``split`` of the dataset in
    ``workdir``: split, images, images_with_boxes, localized (the submission gives boxes),
    iou_threshold, top1_error, top5_error, top1_loc_error, top5_loc_error (None without boxes)
    and per_class (wnid -> the same by class, with label and name). Writes nothing; a bad
    submission raises ``InputError`` naming its line and field."""
    truth = read_truth(Path(workdir), split)
    return evaluate(truth, read_submission(Path(submission), truth))


def write_submission(path: Path, rows: Iterable[tuple[str, list[tuple[str, tuple | None]]]]) -> None:
    """Write predictions as Kaggle's submission CSV, published whole: ``rows`` of (ImageId, up to
    five guesses best first, each (wnid, box or None)), boxes in our convention
    (``pipeline.boxes``), written as VOC pixel indices."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        for image_id, guesses in rows:
            if len(guesses) > GUESSES:
                raise ValueError(f"image {image_id}: {len(guesses)} guesses; ILSVRC scores at most {GUESSES}")
            parts = []
            for wnid, box in guesses:
                if box is not None:
                    if problem(tuple(box), math.inf, math.inf):  # no image size here: the rest of the rule
                        raise ValueError(
                            f"image {image_id}: {wnid} box {tuple(box)}: not integer edges 0 <= xmin < xmax, "
                            "0 <= ymin < ymax (pipeline.boxes)"
                        )
                    wnid = " ".join(map(str, (wnid, *to_voc(box))))
                parts.append(wnid)
            writer.writerow([image_id, " ".join(parts)])


@dataclass
class Truth:
    """A split's images (manifest order), their classes and their true boxes."""

    workdir: Path
    split: str
    image_ids: list[str]
    labels: np.ndarray  # class index of each image
    wnids: list[str]  # the dataset's classes, by label
    names: list[str]
    box_images: np.ndarray  # the image position of each true box
    box_edges: np.ndarray  # the true boxes as VOC pixel indices (n x 4)
    position: dict[str, int] = field(init=False)
    index: dict[str, int] = field(init=False)  # wnid -> label
    _stems: dict[str, str] | None = field(default=None, init=False)
    _stale: int | None = field(default=None, init=False)  # images the export and the manifest disagree on
    _other_stems: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.position = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self.index = {wnid: label for label, wnid in enumerate(self.wnids)}

    @property
    def export_index(self) -> Path:
        return Layout(self.workdir).export("ilsvrc") / EXPORT_INDEX

    def stems(self) -> dict[str, str]:
        """The ILSVRC export's file stems of the split's files -> their image_ids ({} without an
        export)."""
        if self._stems is None:
            self._stems = self._read_stems() if self.export_index.exists() else {}
        return self._stems

    def _read_stems(self) -> dict[str, str]:
        path = self.export_index
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        if not {"file", "image_id"} <= set(reader.fieldnames or []):
            raise InputError("expected the columns file and image_id of an ILSVRC export", file=path, line=1)
        stems, folder = {}, f"{self.split}/"
        for record in reader:
            stem = Path(record["file"]).stem
            if record["file"].startswith(folder):
                stems[stem] = record["image_id"]
            else:
                self._other_stems[stem] = record["file"].split("/", 1)[0]
        return stems

    def find(self, image_id: str) -> int | None:
        """The position of the image an ImageId names: its image_id, or its export file stem. An
        export that lists other images than the manifest is refused when a stem is used: its
        stems would name the wrong images."""
        found = self.position.get(image_id)
        if found is not None or image_id not in self.stems():
            return found
        if self._stale is None:
            self._stale = len(set(self.stems().values()) ^ set(self.position))
        if self._stale:
            raise InputError(
                f"lists other {self.split} images than manifests/{self.split}.parquet ({self._stale} differ): "
                "the export is older than the manifests; run `make export FORMAT=ilsvrc` again, or name "
                "the images by image_id",
                file=self.export_index,
            )
        return self.position[self.stems()[image_id]]

    def unknown(self, image_id: str) -> str:
        """Why ``image_id`` names no image of the split, in words."""
        if image_id in self._other_stems:
            return f"is a file of the ILSVRC export's {self._other_stems[image_id]}/, not of {self.split}/"
        for split in SPLITS:
            path = Layout(self.workdir).manifest(split)
            if split != self.split and path.exists():
                ids = read_table(path, schemas.MANIFEST, columns=["image_id"]).column("image_id")
                if pc.any(pc.equal(ids, image_id)).as_py():
                    return f"is an image of the {split} split, not of {self.split}"
        export = f"a file stem of {self.export_index}" if self.export_index.exists() else "an ILSVRC export's file stem"
        return f"not an image of the {self.split} split: neither a manifest image_id nor {export}"


def read_truth(workdir: Path, split: str) -> Truth:
    """The split's images, labels and true boxes, checked against each other."""
    layout = Layout(workdir)
    manifest = layout.manifest(split)
    for path in (manifest, layout.classes):
        if not path.exists():
            raise InputError("no manifests to score against: run `make manifests` (or `make import`) first", file=path)
    classes = read_table(layout.classes, schemas.CLASSES, columns=["label", "wnid", "name"]).to_pydict()
    if classes["label"] != list(range(len(classes["label"]))):
        raise InputError("labels are not 0..n-1 in order: run `make validate`", file=layout.classes, field="label")
    index = {wnid: label for label, wnid in enumerate(classes["wnid"])}
    rows = read_table(manifest, schemas.MANIFEST, columns=["image_id", "label", "wnid"]).to_pydict()
    for row, (label, wnid) in enumerate(zip(rows["label"], rows["wnid"])):
        if index.get(wnid) != label:
            raise InputError(
                f"label {label} and class disagree with classes.parquet",
                file=manifest,
                row=row,
                field="wnid",
                value=wnid,
            )
    if not rows["image_id"]:
        raise InputError(f"the {split} split has no images: nothing to score", file=manifest)
    if len(set(rows["image_id"])) != len(rows["image_id"]):
        raise InputError("an image is listed twice: run `make validate`", file=manifest, field="image_id")
    truth = Truth(
        workdir,
        split,
        rows["image_id"],
        np.asarray(rows["label"], dtype=np.int64),
        classes["wnid"],
        classes["name"],
        np.zeros(0, np.int64),
        np.zeros((0, 4)),
    )
    truth.box_images, truth.box_edges = read_boxes(layout.box_manifest, truth)  # read_boxes checks them against truth
    return truth


def read_boxes(path: Path, truth: Truth) -> tuple[np.ndarray, np.ndarray]:
    """The true boxes of the split's images: each box's image position, and the boxes as VOC
    pixel indices (n x 4); none when the dataset has no box manifest. A box of the split whose
    image or class the manifests do not hold means the box manifest is stale: refused, naming
    its row."""
    if not path.exists():
        return np.zeros(0, np.int64), np.zeros((0, 4))
    columns = ["image_id", "split", "wnid", *BOX_COLUMNS, "width", "height"]
    table = read_table(path, schemas.BOX_MANIFEST, columns=columns)
    mine = pc.or_(
        pc.equal(table.column("split"), truth.split),
        pc.is_in(table.column("image_id"), value_set=pa.array(truth.image_ids)),
    )
    rows = np.flatnonzero(mine.to_numpy(zero_copy_only=False))
    table = table.take(pa.array(rows, pa.int64()))
    column = {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}
    at = np.array([truth.position.get(i, -1) for i in column["image_id"]], dtype=np.int64)
    for i in np.flatnonzero((column["split"] != truth.split) | (at < 0))[:1]:
        raise InputError(
            f"says split {column['split'][i]}, manifests/{truth.split}.parquet "
            f"{'does not hold' if at[i] < 0 else 'holds'} the image: the box manifest is older than the "
            "manifests; run `make manifests` again",
            file=path,
            row=int(rows[i]),
            field="image_id",
            value=column["image_id"][i],
        )
    expected = np.asarray(truth.wnids, dtype=object)[truth.labels[at]]
    for i in np.flatnonzero(column["wnid"] != expected)[:1]:
        raise InputError(
            f"the image is of class {expected[i]} in manifests/{truth.split}.parquet",
            file=path,
            row=int(rows[i]),
            field="wnid",
            value=column["wnid"][i],
        )
    edges = np.stack([column[c] for c in BOX_COLUMNS], axis=1).tolist()
    for i, (box, width, height) in enumerate(zip(edges, column["width"].tolist(), column["height"].tolist())):
        why = problem(box, width, height)
        if why:
            raise InputError(f"not a box: {why}", file=path, row=int(rows[i]), field="xmin..ymax")
    return at, np.array([to_voc(box) for box in edges], dtype=np.float64).reshape(-1, 4)


@dataclass
class Submission:
    guesses: list[list[tuple[int, tuple | None]]]  # per image position: (class index, VOC box or None)
    localized: bool  # its guesses have boxes


def read_submission(path: Path, truth: Truth) -> Submission:
    """Parse and check a Kaggle submission against the split: every image once, known classes,
    at most five guesses, boxes of four integers that do not end before they start."""
    if not path.is_file():
        raise InputError("no such submission file", file=path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    guesses: list[list | None] = [None] * len(truth.image_ids)
    given_at: dict[int, int] = {}
    form: tuple[bool, int] | None = None  # (guesses have boxes, the line that set it)
    try:
        header = next(reader, None)
        if header != HEADER:
            raise InputError(
                "expected the header ImageId,PredictionString (Kaggle's submission format)",
                file=path,
                line=1,
                value=",".join(header or []),
            )
        for record in reader:
            line = reader.line_num
            if not record:
                continue
            if len(record) != 2:
                raise InputError(f"{len(record)} fields; a row is ImageId,PredictionString", file=path, line=line)
            image_id = record[0].strip()
            at = truth.find(image_id)
            if at is None:
                raise InputError(truth.unknown(image_id), file=path, line=line, field="ImageId", value=image_id)
            if at in given_at:
                raise InputError(
                    f"the same image again: line {given_at[at]} gave it",
                    file=path,
                    line=line,
                    field="ImageId",
                    value=image_id,
                )
            row = parse_guesses(record[1], truth, path, line)
            boxed = {box is not None for _, box in row}
            if len(boxed) > 1:
                raise InputError(
                    "guesses with and without boxes: give every guess a box (localization) or none (classification)",
                    file=path,
                    line=line,
                    field="PredictionString",
                )
            if boxed:
                has = boxed.pop()
                if form is None:
                    form = (has, line)
                elif form[0] != has:
                    differ = (
                        "with boxes where line {}'s have none" if has else "without boxes where line {}'s have them"
                    )
                    raise InputError(
                        f"guesses {differ.format(form[1])}: a submission gives every guess a box "
                        "(localization) or none (classification)",
                        file=path,
                        line=line,
                        field="PredictionString",
                    )
            guesses[at], given_at[at] = row, line
    except csv.Error as e:
        raise InputError(f"not CSV ({e})", file=path, line=reader.line_num) from None
    missing = [at for at, row in enumerate(guesses) if row is None]
    if missing:
        first = truth.image_ids[missing[0]]
        stem = {image_id: stem for stem, image_id in truth.stems().items()}.get(first)
        also = f" (file {stem})" if stem else ""
        raise InputError(
            f"{len(missing)} of the {len(guesses)} {truth.split} images have no row; the first: {first}{also}",
            file=path,
        )
    return Submission(guesses, localized=bool(form and form[0]))


def parse_guesses(text: str, truth: Truth, path: Path, line: int) -> list[tuple[int, tuple | None]]:
    """One PredictionString: ``wnid [xmin ymin xmax ymax]`` up to five times."""

    def bad(message: str, value: str | None = None) -> InputError:
        return InputError(message, file=path, line=line, field="PredictionString", value=value)

    index = truth.index
    groups = _groups(text.split(), index)
    if groups is None:  # not the common shape: token by token, to say what is wrong
        groups = []
        for token in text.split():
            if token in index:
                groups.append([token])
            elif _is_digits(token) or _NUMBER.fullmatch(token):
                if not groups:
                    raise bad("starts with a number; each guess is a wnid, then its box if any", token)
                groups[-1].append(token)
            else:
                groups.append([token])
    if len(groups) > GUESSES:
        raise bad(f"{len(groups)} guesses; ILSVRC scores at most {GUESSES} per image")
    out = []
    for wnid, *coordinates in groups:
        if wnid not in index:
            if schemas.WNID_RE.fullmatch(wnid):
                raise bad(f"a wnid that is not one of the dataset's {len(index)} classes", wnid)
            raise bad(f"neither one of the dataset's {len(index)} classes (a wnid) nor a coordinate", wnid)
        if not coordinates:
            out.append((index[wnid], None))
            continue
        if len(coordinates) != 4:
            raise bad(
                f"{wnid} is followed by {len(coordinates)} numbers; a box is four: xmin ymin xmax ymax",
                " ".join(coordinates),
            )
        for value in () if _is_digits("".join(coordinates)) else coordinates:
            if not (_is_digits(value) or _INTEGER.fullmatch(value)):
                raise bad("a coordinate that is not an integer: boxes are pixel indices, 1-based, inclusive", value)
        xmin, ymin, xmax, ymax = map(int, coordinates)
        if xmax < xmin or ymax < ymin:
            raise bad(
                "a box that ends before it starts: xmax must be >= xmin and ymax >= ymin (inclusive pixel indices)",
                " ".join(coordinates),
            )
        out.append((index[wnid], (xmin, ymin, xmax, ymax)))
    return out


def _groups(tokens: list[str], index: dict[str, int]) -> list[list[str]] | None:
    """A PredictionString's guesses, each its wnid and coordinates, where it has the common shape
    (every guess a known wnid, with four unsigned integers, or every guess a bare known wnid);
    None otherwise."""
    if all(token in index for token in tokens):
        return [[token] for token in tokens]
    numbers = tokens.copy()
    del numbers[::5]
    if len(tokens) % 5 or not all(token in index for token in tokens[::5]) or not _is_digits("".join(numbers)):
        return None
    return [tokens[i : i + 5] for i in range(0, len(tokens), 5)]


def _is_digits(token: str) -> bool:
    """ASCII digits only: the common coordinate, told without a regular expression."""
    return token.isascii() and token.isdigit()


def evaluate(truth: Truth, submission: Submission) -> dict:
    """The errors of ``submission`` on ``truth``: overall and per class (``score``'s dict)."""
    n, k = len(truth.image_ids), max(TOPS)
    labels = truth.labels
    guessed = np.full((n, k), -1, dtype=np.int64)
    boxes = np.zeros((n, k, 4))
    for at, row in enumerate(submission.guesses):
        if row:
            guessed[at, : len(row)] = [label for label, _ in row]
            if submission.localized:
                boxes[at, : len(row)] = [box for _, box in row]
    classified = guessed == labels[:, None]
    with_boxes = np.bincount(truth.box_images, minlength=n) > 0
    localized = submission.localized and bool(with_boxes.any())
    located = np.zeros((n, k), bool)
    if localized:
        # every true box against every guess of its image; a guess of the right class that
        # overlaps one of them enough is located
        overlap = iou_pairs(boxes[truth.box_images], truth.box_edges[:, None, :], inclusive=True)
        np.logical_or.at(located, truth.box_images, overlap >= IOU_THRESHOLD)
        located &= classified
    wrong = {t: ~classified[:, :t].any(axis=1) for t in TOPS}
    loc_wrong = {t: ~located[:, :t].any(axis=1) & with_boxes for t in TOPS}
    classes = len(truth.wnids)
    images = np.bincount(labels, minlength=classes)
    boxed = np.bincount(labels, weights=with_boxes, minlength=classes)

    def share(count: float, of: float, applies: bool = True) -> float | None:
        return float(count / of) if applies and of else None

    def by_class(flags: np.ndarray) -> np.ndarray:
        return np.bincount(labels, weights=flags, minlength=classes)

    per_class_wrong = {t: by_class(wrong[t]) for t in TOPS}
    per_class_loc = {t: by_class(loc_wrong[t]) for t in TOPS}
    per_class = {
        wnid: {
            "label": label,
            "name": truth.names[label],
            "images": int(images[label]),
            **{f"top{t}_error": share(per_class_wrong[t][label], images[label]) for t in TOPS},
            "images_with_boxes": int(boxed[label]),
            **{f"top{t}_loc_error": share(per_class_loc[t][label], boxed[label], localized) for t in TOPS},
        }
        for label, wnid in enumerate(truth.wnids)
    }
    return {
        "split": truth.split,
        "images": n,
        "images_with_boxes": int(with_boxes.sum()),
        "localized": submission.localized,
        "iou_threshold": IOU_THRESHOLD,
        **{f"top{t}_error": share(wrong[t].sum(), n) for t in TOPS},
        **{f"top{t}_loc_error": share(loc_wrong[t].sum(), with_boxes.sum(), localized) for t in TOPS},
        "per_class": per_class,
    }


def per_class_csv(result: dict) -> str:
    """The per-class table as CSV text (empty cells where an error does not apply)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for wnid, row in result["per_class"].items():
        values = {"wnid": wnid, **row}
        writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
    return buffer.getvalue()


def summary_line(result: dict, path: Path) -> str:
    def percent(value: float) -> str:
        return f"{100 * value:.1f}%"

    line = (
        f"evaluate: {result['split']} {result['images']} images: top-1 error {percent(result['top1_error'])}, "
        f"top-5 {percent(result['top5_error'])}"
    )
    if result["top1_loc_error"] is not None:
        line += (
            f", localization top-1 {percent(result['top1_loc_error'])}, top-5 {percent(result['top5_loc_error'])} "
            f"({result['images_with_boxes']} images with boxes)"
        )
    elif not result["localized"]:
        line += ", no localization: the submission gives no boxes"
    else:
        line += f", no localization: the {result['split']} split has no boxes"
    return f"{line} -> {path}"
