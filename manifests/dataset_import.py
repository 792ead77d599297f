"""The import stage: a dataset built elsewhere, brought into ``$(DATA)/$(SUBSET)`` as if this
pipeline had built it: ``synsets.parquet``, the image store ``images/shard-N.parquet`` and
``manifests/{train,val,test,classes}.parquet`` with ``reports/manifests.json``, so dedupe, the
exports, the card and the baseline read it unchanged; ``reports/import.json`` says what was
left out.

Layouts of SRC (the splits are kept as the layout gives them):

- ``imagefolder``: ``train/<wnid>/...``, and optionally ``val/<wnid>/...`` and ``test/<wnid>/...``,
  torchvision's ImageFolder per split (files at any depth below a class folder).
- ``ilsvrc``: the same, plus flat split folders (``val/*.JPEG``) labelled by Kaggle's
  ``LOC_<split>_solution.csv`` (the first wnid of PredictionString) or by the ``files.csv`` of
  our own ilsvrc export (its wnid column; where both label a file they must agree). Kaggle's
  own tree (``ILSVRC/Data/CLS-LOC/<split>`` with the CSV files beside ``ILSVRC/``) is found as well,
  so every tree the ilsvrc export writes (class folders, flat, Kaggle's) reads back.

Object boxes (``ilsvrc``): from the ``LOC_<split>_solution.csv`` files and from ILSVRC's
``Annotations/CLS-LOC/train/<wnid>/<stem>.xml`` and ``Annotations/CLS-LOC/<split>/<stem>.xml``
(beside the split folders, or in Kaggle's ``ILSVRC/``), matched to the images by file stem.
Where both give an image's boxes they must agree (the same boxes, in any order): Kaggle derived
its CSV files from the XML, so a difference means one of them was edited, and neither is
trusted over the other. Each box must name the image's class, lie inside the image (its stored,
upright size; an XML's ``size`` must equal it) and have an area; otherwise the import stops
with one line naming the file, line (or XML object) and field. They are written to
``annotation/boxes.parquet`` (source ``imported``, box_id ``<image_id>-<n>``, n from 0 in the
file's order) and ``manifests/boxes.parquet``, as crowd boxes are. Whether SRC has box files
decides, before anything is read, whether the import writes the boxes tables.

Class names: reading WordNet needs nltk's data provisioned, so ``synsets.parquet`` is written
without it: name and lemmas come from a ``LOC_synset_mapping.txt`` or ``words.txt`` in SRC, else
the wnid; gloss and lexname are empty, depth -1 (unknown), parents empty, and the queries are the
lemmas. ``make synsets WNIDS=<words.txt>`` in another subset gives WordNet's facts.

Images keep their bytes (``format`` as Pillow names it) and are hashed by the download stage's
rule (``pipeline.hashing.hash_file``) in a spawn pool; width and height are the upright size
(EXIF orientation applied, as every stage reads pixels: ``pipeline.pixels``). ``source`` is
``import``, ``url`` the file's path relative to SRC, ``image_id`` the candidate id of (wnid, that
path), so shards are cut in image_id order as the download's are. Nothing is dropped silently:
folders not named by a noun wnid (or not in ``--wnids``), unreadable images (among them images
over ``pixels.MAX_PIXELS``, which the download refuses too), flat files without a label, files
that are not images and classes left without an image are reported on stderr and in
``reports/import.json``.

Links: symbolic links below a class folder are followed, as torchvision's ImageFolder follows
them; a link back to a folder already walked (a loop) is reported among the unreadable and not
walked again. A link in SRC that leads nowhere (dangling, or a loop of links) is an error naming
it: the stage's fingerprint reads the size of every file of SRC. The text files (``LOC_*_solution.csv``,
the names file, ``--wnids``) are UTF-8, a byte order mark allowed; other bytes are an error
naming the file and line.
"""

from __future__ import annotations

import argparse
import csv
import errno
import io
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow as pa

from pipeline import __version__, boxes, pixels, runner, schemas, store
from pipeline.boxes import to_voc
from pipeline.errors import InputError
from pipeline.hashing import FILES_PER_BATCH, IMAGE_EXTENSIONS, hash_file
from pipeline.layout import IMAGES, MANIFESTS, SPLITS, SYNSETS, Layout, report_name
from pipeline.progress import progress
from pipeline.schemas import NOUN_WNID_RE, candidate_id
from pipeline.settings import integer
from pipeline.tables import write_report, write_table
from pipeline.text import read_lines, read_text

from .boxes_files import ANNOTATIONS, Labelled, LocRow, annotation_name, read_loc_csv, read_voc_xml
from .stage import box_counts, box_manifest, box_summary

HELP = "bring in a dataset built elsewhere (ImageFolder or ILSVRC/Kaggle tree): synsets, image store, manifests"
OUTPUTS = (SYNSETS, IMAGES, MANIFESTS, report_name("manifests"), report_name("import"))
LAYOUTS = ("imagefolder", "ilsvrc")
KAGGLE_ROOT = Path("ILSVRC", "Data", "CLS-LOC")
NAME_FILES = ("LOC_synset_mapping.txt", "words.txt")
FILES_INDEX = "files.csv"  # our ilsvrc export's index: file, image_id, label, wnid, ...
BOXES_OUTPUT = "annotation/boxes.parquet"
SHOWN = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", type=Path, required=True, metavar="DIR", help="the dataset's folder (make: SRC)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="imagefolder",
        help="imagefolder: <split>/<wnid>/...; ilsvrc: also flat val/ and test/ labelled by "
        "LOC_<split>_solution.csv (make: LAYOUT, default imagefolder)",
    )
    parser.add_argument(
        "--wnids",
        type=Path,
        metavar="FILE",
        help="accept only these wnids, one per line, first on the line; other class folders are reported (make: WNIDS)",
    )
    parser.add_argument(
        "--processes",
        type=integer(1),
        default=None,
        help="processes reading and hashing images (make: PROCESSES, default one per core)",
    )


def run(args: argparse.Namespace) -> None:
    src, workdir = args.src, args.workdir
    if not src.is_dir():
        raise InputError("no such folder to import", file=src)
    if args.wnids is not None and not args.wnids.is_file():
        raise InputError("no such wnid list", file=args.wnids)
    settings = {"src": str(src.resolve()), "layout": args.layout, "wnids": str(args.wnids)}
    outputs = (*OUTPUTS, BOXES_OUTPUT) if args.layout == "ilsvrc" and has_box_files(src) else OUTPUTS
    stage = runner.Stage(
        name="import",
        workdir=workdir,
        outputs=outputs,
        inputs=tuple(p for p in (src, args.wnids) if p is not None),
        settings=settings,
    )
    taken = [name for name in outputs if (workdir / name).exists()]
    if taken and runner.read_stamp(stage) is None and not args.force:
        raise InputError(
            f"holds {', '.join(taken)} that no import wrote: import into a new SUBSET, or FORCE=1 to replace them",
            file=workdir,
        )
    allowed = read_wnids(args.wnids) if args.wnids is not None else None
    try:
        fingerprint = runner.fingerprint(stage)
    except OSError as e:  # the fingerprint reads every file of SRC
        raise unreadable_file(e) from None

    def build(out: Path) -> str:
        return import_dataset(
            src,
            args.layout,
            allowed,
            Layout(out),
            args.processes or os.cpu_count() or 1,
            settings,
            {
                "synsetforge.dataset": workdir.name,
                "synsetforge.version": __version__,
                "synsetforge.built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "synsetforge.fingerprint": fingerprint,
                "synsetforge.verified": "imported",
            },
            BOXES_OUTPUT in outputs,
        )

    runner.run(stage, build, force=args.force)


# What README.txt of an ilsvrc export said when its LOC files held whole-image stand-ins.
STAND_IN = "with one whole-image box per image (wnid 0 0 width-1 height-1): this dataset has no object boxes"


def kaggle_root(src: Path) -> Path:
    return src / KAGGLE_ROOT if (src / KAGGLE_ROOT).is_dir() else src


def annotation_bases(src: Path) -> list[Path]:
    """The folders that may hold ``Annotations/CLS-LOC``: SRC, and Kaggle's ``ILSVRC/``."""
    return [base for base in (src, src / "ILSVRC") if (base / ANNOTATIONS).is_dir()]


def has_box_files(src: Path) -> bool:
    """Whether an ilsvrc SRC holds boxes: a LOC solution file (not stand-ins) or an
    Annotations/CLS-LOC folder."""
    root = kaggle_root(src)
    solutions = any(_first(src, root, f"LOC_{split}_solution.csv") for split in SPLITS)
    return (solutions and not whole_image_standins(src)) or bool(annotation_bases(src))


def whole_image_standins(src: Path) -> bool:
    """Whether SRC is an ilsvrc export of synsetforge from before it had boxes, whose LOC solution
    files hold one whole-image box per image as a stand-in, as its README.txt says: they label val
    and test, but are not boxes anyone drew."""
    readme = src / "README.txt"
    return readme.is_file() and STAND_IN in readme.read_text(encoding="utf-8", errors="replace")


def unreadable_file(error: OSError) -> InputError:
    """The error naming a file of SRC that cannot be read: a dangling link, a loop of links."""
    path = Path(error.filename or "")
    if error.errno == errno.ELOOP:
        problem = "a loop of symbolic links"
    elif error.errno == errno.ENOENT and path.is_symlink():
        problem = f"a symbolic link to {os.readlink(path)}, which does not exist"
    else:
        problem = f"cannot be read ({error.strerror or error})"
    return InputError(f"{problem}: remove or mend it, then import again", file=path)


def read_wnids(path: Path) -> set[str]:
    """A wnid list: first on each line, blank lines and ``#`` comments skipped."""
    wnids = set()
    for number, text in enumerate(read_lines(path), 1):
        if text.strip() and not text.lstrip().startswith("#"):
            wnid = text.split()[0]
            if not NOUN_WNID_RE.fullmatch(wnid):
                raise InputError(
                    "expected a noun wnid: 'n' and 8 digits", file=path, line=number, field="wnid", value=wnid
                )
            wnids.add(wnid)
    if not wnids:
        raise InputError("the list holds no wnid", file=path)
    return wnids


@dataclass
class Found:
    """What SRC holds: the images to import, and what is left out and why."""

    images: pd.DataFrame  # split, wnid, path (relative to SRC, POSIX), image_id
    classes: set[str]  # accepted wnids that have a folder or a label, with images or not
    unknown: list[dict]  # {"where", "files"}: class folders (or labels) that name no accepted wnid
    unreadable: list[dict]  # {"file", "error"}: what could not be listed (a link back to a folder walked)
    unlabelled: list[str]  # flat files that no solution file labels
    ignored: list[str]  # files that are not images
    names: dict[str, list[str]]  # wnid -> lemmas, from a names file
    names_from: str | None
    solutions: dict[str, tuple[Path, dict[str, LocRow]]]  # split -> its LOC solution file and rows


def find(src: Path, src_layout: str, allowed: set[str] | None) -> Found:
    root = kaggle_root(src) if src_layout == "ilsvrc" else src
    if not (root / "train").is_dir():
        shape = "val/*.JPEG labelled by LOC_val_solution.csv" if src_layout == "ilsvrc" else "val/<wnid>/..."
        raise InputError(f"no train/ folder: the {src_layout} layout is train/<wnid>/..., {shape}", file=root / "train")

    def accepted(wnid: str) -> bool:
        return bool(NOUN_WNID_RE.fullmatch(wnid)) and (allowed is None or wnid in allowed)

    def relative(path: Path) -> str:
        return path.relative_to(src).as_posix()

    rows, classes, unknown, unreadable, unlabelled, ignored = [], set(), [], [], [], []
    solutions = {}
    index = read_files_index(_first(src, root, FILES_INDEX) if src_layout == "ilsvrc" else None)
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        path = _first(src, root, f"LOC_{split}_solution.csv") if src_layout == "ilsvrc" else None
        if path is not None:
            solutions[split] = (path, read_loc_csv(path))
        solution = flat_labels(split, solutions.get(split), index)
        labelled: dict[str, int] = {}
        for entry in progress(sorted(folder.iterdir()), desc=f"list {split}", unit="entry"):
            if entry.is_dir():
                images, others, loops = _files(entry)
                ignored += map(relative, others)
                unreadable += [{"file": relative(p), "error": LOOP} for p in loops]
                if accepted(entry.name):
                    classes.add(entry.name)
                    rows += [(split, entry.name, relative(p)) for p in images]
                else:
                    unknown.append({"where": relative(entry), "files": len(images)})
            elif entry.suffix.lower() not in IMAGE_EXTENSIONS or entry.name.startswith("."):
                ignored.append(relative(entry))
            elif entry.stem not in solution:
                unlabelled.append(relative(entry))
            elif accepted(solution[entry.stem]):
                classes.add(solution[entry.stem])
                rows.append((split, solution[entry.stem], relative(entry)))
            else:
                labelled[solution[entry.stem]] = labelled.get(solution[entry.stem], 0) + 1
        unknown += [
            {"where": f"{split}/ labelled {w} by LOC_{split}_solution.csv", "files": n}
            for w, n in sorted(labelled.items())
        ]
    images = pd.DataFrame(rows, columns=["split", "wnid", "path"])
    images["image_id"] = [candidate_id(w, p) for w, p in zip(images.wnid, images.path)]
    names_file = next((p for p in (_first(src, root, n) for n in NAME_FILES) if p is not None), None)
    return Found(
        images,
        classes | (allowed or set()),
        unknown,
        unreadable,
        unlabelled,
        ignored,
        read_names(names_file) if names_file else {},
        relative(names_file) if names_file else None,
        solutions,
    )


def _first(src: Path, root: Path, name: str) -> Path | None:
    return next((folder / name for folder in (src, root) if (folder / name).is_file()), None)


LOOP = "a link to a folder already walked (a loop of links, or a second link to it): not walked again"


def _files(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The images below a class folder, its other files, and the linked folders not walked
    because their folder was walked already (``LOOP``), each sorted. Links are followed, as
    ImageFolder follows them; a file whose link leads nowhere is listed by its name, and its
    read fails (reported as unreadable)."""
    images, others, loops = [], [], []
    walked = {_identity(folder)}
    for root, dirs, files in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(dirs):
            identity = _identity(Path(root, name))
            if identity in walked:
                loops.append(Path(root, name))
            else:
                walked.add(identity)
                kept.append(name)
        dirs[:] = kept
        for name in files:
            image = Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith(".")
            (images if image else others).append(Path(root, name))
    return sorted(images), sorted(others), sorted(loops)


def _identity(folder: Path) -> tuple[int, int]:
    """A folder's device and inode: the same folder whatever link leads to it."""
    st = os.stat(folder)
    return st.st_dev, st.st_ino


class FilesIndex(NamedTuple):
    """Our ilsvrc export's ``files.csv``: the flat files' wnids, and their lines."""

    path: Path | None
    labels: dict[str, tuple[str, int]]  # file (below the split folders' parent) -> wnid, line


def read_files_index(path: Path | None) -> FilesIndex:
    if path is None:
        return FilesIndex(None, {})
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        if not {"file", "wnid"} <= set(reader.fieldnames or []):
            raise InputError("expected the columns file and wnid", file=path, line=1, value=reader.fieldnames)
        return FilesIndex(path, {row["file"]: (row["wnid"], number) for number, row in enumerate(reader, 2)})


def flat_labels(split: str, solution: tuple[Path, dict[str, LocRow]] | None, index: FilesIndex) -> dict[str, str]:
    """A flat split folder's labels, file stem -> wnid: the first wnid of its LOC solution row,
    else the wnid ``files.csv`` gives; where both give one they must agree."""
    given = {
        Path(file).stem: label
        for file, label in index.labels.items()
        if file.startswith(f"{split}/") and file.count("/") == 1
    }
    labels = {stem: wnid for stem, (wnid, _) in given.items()}
    if solution is not None:
        path, rows = solution
        for stem, row in rows.items():
            wnid = row.boxes[0].wnid
            if labels.get(stem, wnid) != wnid:
                raise InputError(
                    f"{path.name} line {row.line} labels this file {wnid}",
                    file=index.path,
                    line=given[stem][1],
                    field="wnid",
                    value=given[stem][0],
                )
            labels[stem] = wnid
    return labels


def import_boxes(src: Path, found: Found, stored: pd.DataFrame) -> pd.DataFrame:
    """The boxes SRC gives the stored images (``stored``: image_id, split, wnid, width, height
    and ``url``, the file's path in SRC), as schemas.BOXES rows in image_id order."""
    bases = annotation_bases(src)
    standins = whole_image_standins(src)
    stored = stored.sort_values("image_id", ignore_index=True)
    stems = stored.url.map(lambda path: Path(path).stem)
    shared = stored.assign(stem=stems).duplicated(["split", "stem"], keep=False)
    rows = []
    bar = progress(zip(stored.itertuples(), stems, shared), total=len(stored), desc="boxes", unit="img")
    for image, stem, twice in bar:
        solution = None if standins else found.solutions.get(image.split)
        loc = solution[1].get(stem) if solution else None
        xml = next(
            (p for p in (b / annotation_name(image.split, image.wnid, stem) for b in bases) if p.is_file()), None
        )
        if (loc or xml) and twice:
            raise InputError(
                f"two images of {image.split} are named {stem}: whose boxes these are is ambiguous",
                file=xml or solution[0],
                line=loc.line if loc and not xml else None,
            )
        chosen = []
        if loc:
            chosen = check_boxes(loc.boxes, image, solution[0], "PredictionString", loc.line)
        if xml:
            width, height, labelled = read_voc_xml(xml)
            if (width, height) != (image.width, image.height):
                raise InputError(
                    f"the image is {image.width}x{image.height}", file=xml, field="size", value=f"{width}x{height}"
                )
            from_xml = check_boxes(labelled, image, xml, "object")
            if loc and sorted(from_xml) != sorted(chosen):
                raise InputError(
                    f"its boxes differ from {solution[0].name} line {loc.line}: the two must agree",
                    file=xml,
                    field="object",
                )
            chosen = from_xml
        for n, box in enumerate(chosen):
            rows.append((f"{image.image_id}-{n}", image.image_id, image.wnid, *box, image.width, image.height))
    columns = ["box_id", "image_id", "wnid", "xmin", "ymin", "xmax", "ymax", "width", "height"]
    table = pd.DataFrame(rows, columns=columns)
    return table.assign(drawn_by=0, approved_by=0, source="imported")[list(schemas.BOXES.names)]


def check_boxes(labelled: list[Labelled], image, path: Path, field: str, line: int | None = None) -> list[tuple]:
    """``labelled``'s boxes, each checked against ``image`` (its class and size)."""
    checked = []
    for n, (wnid, box) in enumerate(labelled, 1):
        where = f"{field} box {n}" if line is not None else f"{field} {n}"
        if wnid != image.wnid:
            raise InputError(
                f"a box of {wnid} on an image of {image.wnid}", file=path, line=line, field=where, value=wnid
            )
        problem = boxes.problem(box, int(image.width), int(image.height))
        if problem:
            raise InputError(
                f"{problem} (as 0-based edges, the far ones exclusive)",
                file=path,
                line=line,
                field=where,
                value=" ".join(map(str, to_voc(box))),
            )
        checked.append(tuple(box))
    return checked


def read_names(path: Path) -> dict[str, list[str]]:
    """``LOC_synset_mapping.txt`` (``wnid lemma, lemma``) or ``words.txt`` (``wnid<TAB>lemma, lemma``)."""
    names = {}
    for text in read_lines(path):
        parts = text.split(None, 1)
        if len(parts) == 2:
            names[parts[0]] = [lemma.strip() for lemma in parts[1].split(",") if lemma.strip()]
    return names


def decode_file(path: Path) -> tuple | str:
    """``hash_file``'s answer with the bytes and Pillow's name of their format, for the store."""
    result = hash_file(path)
    if isinstance(result, str):
        return result
    try:
        data = path.read_bytes()
        with pixels.open_bytes(data) as image:
            kind = image.format
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return (data, kind, *result)


def decode_files(paths: list[Path], processes: int) -> Iterator[tuple | str]:
    """``decode_file`` of each path, in order, on ``processes`` spawned processes."""
    bar = progress(total=len(paths), desc="import", unit="img")
    try:
        if processes <= 1 or len(paths) <= FILES_PER_BATCH:
            for path in paths:
                yield decode_file(path)
                bar.update()
        else:
            with multiprocessing.get_context("spawn").Pool(processes) as pool:
                for result in pool.imap(decode_file, paths, chunksize=FILES_PER_BATCH):
                    yield result
                    bar.update()
    finally:
        bar.close()


def write_store(src: Path, images: pd.DataFrame, folder: Path, processes: int) -> list[dict]:
    """The image store of ``images`` (in image_id order), ``store.SHARD_SIZE`` files a shard;
    returns the files that could not be read."""
    folder.mkdir(parents=True)
    results = decode_files([src / p for p in images.path], processes)
    failures = []
    for number, start in enumerate(range(0, len(images), store.SHARD_SIZE)):
        shard = store.ShardWriter(store.shard_path(folder, number))
        added = 0
        for image in images.iloc[start : start + store.SHARD_SIZE].itertuples():
            result = next(results)
            if isinstance(result, str):
                failures.append({"file": image.path, "error": result})
                continue
            data, kind, sha, width, height, hashes = result
            shard.add(
                {
                    "image_id": image.image_id,
                    "wnid": image.wnid,
                    "image": data,
                    "sha256": sha,
                    "width": width,
                    "height": height,
                    "format": kind,
                    **hashes._asdict(),
                    "original_width": width,
                    "original_height": height,
                    "original_format": kind,
                    "source": "import",
                    "url": image.path,
                    "rank": 0,
                    "license": None,
                }
            )
            added += 1
        if added:
            shard.close()
        else:  # a shard whose files were all unreadable is not written
            shard.abort()
    return failures


def stored_rows(folder: Path) -> pd.DataFrame:
    """What the manifests need of the store just written (not the bytes)."""
    columns = ["image_id", "wnid", "width", "height", "sha256", "phash", "url"]
    return store.read_images(folder, columns, with_location=True).to_pandas()


def import_dataset(
    src: Path,
    src_layout: str,
    allowed: set[str] | None,
    out: Layout,
    processes: int,
    settings: dict,
    metadata: dict[str, str],
    boxed: bool = False,
) -> str:
    """Everything the import stage writes, under the build folder ``out``; ``settings``: the
    stage's, for the reports; ``boxed``: SRC has box files, so the boxes tables are written."""
    found = find(src, src_layout, allowed)
    if found.images.empty:
        raise InputError("no image in a class folder named by an accepted wnid (n + 8 digits)", file=src)
    images = found.images.sort_values("image_id", ignore_index=True)
    failures = write_store(src, images, out.images, processes)
    stored = stored_rows(out.images).merge(images[["image_id", "split"]], on="image_id")
    kept = sorted(stored.wnid.unique())
    counts = (
        stored.groupby(["wnid", "split"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=kept, columns=list(SPLITS), fill_value=0)
    )
    write_synsets(sorted(found.classes), found.names, out.synsets)
    box_table = import_boxes(src, found, stored) if boxed else None
    box_figures = write_manifests(stored, kept, counts, found, out, settings, metadata, box_table)
    report = {
        "settings": settings,
        "src": str(src),
        "layout": src_layout,
        "names_from": found.names_from,
        "images": {s: int(counts[s].sum()) for s in SPLITS},
        "classes": len(kept),
        "unknown_wnids": found.unknown,
        "unreadable": found.unreadable + failures,
        "unlabelled": found.unlabelled,
        "ignored_files": found.ignored,
        "empty_classes": sorted(found.classes - set(kept)),
        "classes_missing_from": {s: [w for w in kept if counts.at[w, s] == 0] for s in SPLITS if counts[s].sum()},
        "boxes": box_figures,
    }
    write_report(out.report("import"), schemas.IMPORT_REPORT, report)
    print_report(report)
    return (
        f"{len(stored)} images of {len(kept)} classes imported from {src} ({src_layout}): "
        + ", ".join(f"{s} {n}" for s, n in report["images"].items())
        + f"; {len(report['unreadable'])} unreadable, {sum(u['files'] for u in found.unknown)} under unknown wnids, "
        f"{len(report['empty_classes'])} empty classes{box_summary(box_figures)}"
    )


def write_synsets(wnids: list[str], names: dict[str, list[str]], path: Path) -> None:
    lemmas = [names.get(w) or [w] for w in wnids]
    write_table(
        {
            "wnid": wnids,
            "class_index": list(range(len(wnids))),
            "name": [ls[0] for ls in lemmas],
            "lemmas": lemmas,
            "gloss": [""] * len(wnids),
            "lexname": [""] * len(wnids),
            "depth": [-1] * len(wnids),
            "parents": [[]] * len(wnids),
            "num_hyponyms": [0] * len(wnids),
            "is_leaf": [True] * len(wnids),
            "queries": lemmas,
        },
        path,
        schemas.SYNSETS,
    )


def write_manifests(
    stored: pd.DataFrame,
    kept: list[str],
    counts: pd.DataFrame,
    found: Found,
    out: Layout,
    settings: dict,
    metadata: dict[str, str],
    box_table: pd.DataFrame | None,
) -> dict | None:
    """The manifests and their report as the manifests stage writes them, with the splits SRC
    gave; ``box_table``: the imported boxes (schemas.BOXES), written with their box manifest."""
    out.manifests.mkdir(parents=True)
    label_of = {w: k for k, w in enumerate(kept)}
    stored = stored.assign(
        label=stored.wnid.map(label_of).astype("int64"),
        source="import",
        source_url=stored.url,
        license=None,
        confidence=None,
        votes=None,
    )
    for split in SPLITS:
        rows = stored[stored.split == split].sort_values(["label", "image_id"])
        table = pa.Table.from_pandas(rows[list(schemas.MANIFEST.names)], preserve_index=False)
        write_table(table.cast(schemas.MANIFEST), out.manifest(split), schemas.MANIFEST, metadata=metadata)
    write_table(
        {
            "label": list(range(len(kept))),
            "wnid": kept,
            "name": [(found.names.get(w) or [w])[0] for w in kept],
            "gloss": [""] * len(kept),
            **{s: counts[s].astype(int).tolist() for s in SPLITS},
        },
        out.classes,
        schemas.CLASSES,
        metadata=metadata,
    )
    report = {
        "settings": settings,
        "verified": "imported",
        "plan": None,  # the splits are the ones SRC gave
        "classes": len(kept),
        "images": {s: int(counts[s].sum()) for s in SPLITS},
        "classes_below_min_train": [],
        "classes_dropped": sorted(found.classes - set(kept)),
        "per_class": {w: {s: int(counts.at[w, s]) for s in SPLITS} for w in kept},
        "fingerprint": metadata["synsetforge.fingerprint"],
        "boxes": None,
    }
    if box_table is not None:
        out.boxes.parent.mkdir(parents=True, exist_ok=True)
        write_table(pa.Table.from_pandas(box_table, preserve_index=False), out.boxes, schemas.BOXES)
        boxed = box_manifest(box_table, stored, out.boxes)
        write_table(
            pa.Table.from_pandas(boxed, preserve_index=False).cast(schemas.BOX_MANIFEST),
            out.box_manifest,
            schemas.BOX_MANIFEST,
            metadata=metadata,
        )
        report["boxes"] = box_counts(boxed)
    write_report(out.report("manifests"), schemas.MANIFESTS_REPORT, report)
    return report["boxes"]


def print_report(report: dict) -> None:
    lines = [
        f"import: {u['files']} images under an unknown wnid, skipped: {u['where']}"
        for u in report["unknown_wnids"][:SHOWN]
    ]
    lines += [f"import: unreadable, skipped: {f['file']}: {f['error']}" for f in report["unreadable"][:SHOWN]]
    lines += [f"import: no label in LOC_<split>_solution.csv, skipped: {f}" for f in report["unlabelled"][:SHOWN]]
    lines += [f"import: not an image, skipped: {f}" for f in report["ignored_files"][:SHOWN]]
    for key in ("unknown_wnids", "unreadable", "unlabelled", "ignored_files"):
        if len(report[key]) > SHOWN:
            lines.append(
                f"import: and {len(report[key]) - SHOWN} more {key.replace('_', ' ')} ({report_name('import')})"
            )
    if report["empty_classes"]:
        lines.append(
            f"import: {len(report['empty_classes'])} classes have no image, left out of the manifests: "
            f"{', '.join(report['empty_classes'][:SHOWN])}"
        )
    for split, wnids in report["classes_missing_from"].items():
        if wnids:
            lines.append(f"import: {len(wnids)} classes have no {split} image: {', '.join(wnids[:SHOWN])}")
    if lines:
        print("\n".join(lines), file=sys.stderr)
