"""The dedupe stage: ``images/`` (or any folder, ``--folder``) -> ``dedupe/hashes.parquet``,
``dedupe/clusters.parquet``, ``dedupe/contact_sheet.html`` and ``reports/dedupe.json``.

Images from the download stage carry their hashes, so only a folder is decoded here. The
report's ``settings`` hold the radius and verify it ran with, so validate searches alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import runner, schemas, store
from pipeline.errors import InputError
from pipeline.hashing import IMAGE_EXTENSIONS
from pipeline.layout import DEDUPE, Layout, report_name
from pipeline.nearcopies import DedupeSettings
from pipeline.settings import integer
from pipeline.tables import check_schema, read_table, unreadable, write_report, write_table

from . import sheet
from .clusters import DROPPED, MEANING, cluster
from .folder import Listing, hash_folder, list_folder

HELP = (
    "find exact and near-duplicate images: dedupe/hashes.parquet, clusters.parquet, contact_sheet.html, "
    "reports/dedupe.json"
)
SHOWN_FAILURES = 20
LABEL_COLUMNS = ["image_id", "wnid", "accepted", "decided"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DedupeSettings()
    parser.add_argument(
        "--folder",
        type=Path,
        metavar="DIR",
        help="hash the images below DIR (class folders <wnid>/...) instead of images/ (make: FOLDER)",
    )
    parser.add_argument(
        "--radius",
        type=integer(0, 63),
        default=d.radius,
        metavar="BITS",
        help=f"pHash bits within which two images are copies (make: RADIUS, default {d.radius})",
    )
    parser.add_argument(
        "--verify",
        type=integer(0, 64),
        default=d.verify,
        metavar="BITS",
        help=f"dHash bits a pHash match must also be within; 64 turns it off (make: VERIFY, default {d.verify})",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="drop images near these hashes, e.g. an existing test set's hashes.parquet (make: REFERENCE)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="annotation/labels.parquet: images accepted in one class settle conflicts (make: LABELS)",
    )
    parser.add_argument(
        "--processes",
        type=integer(1),
        default=None,
        help="processes hashing a folder (make: PROCESSES, default one per core)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default=os.environ.get("EXECUTOR", "local"),
        help="hash a folder on local processes or as Ray tasks (cluster from RAY_ADDRESS) (make: EXECUTOR)",
    )
    parser.add_argument(
        "--sheet-clusters",
        type=integer(0),
        default=sheet.CLUSTERS,
        metavar="N",
        help=f"clusters shown in the contact sheet (default {sheet.CLUSTERS})",
    )


def run(args: argparse.Namespace) -> None:
    source = args.folder if args.folder is not None else Layout(args.workdir).images
    listing = None
    if args.folder is not None:
        if not args.folder.is_dir():
            raise InputError("not a folder", file=args.folder)
        listing = list_folder(args.folder)
        if not listing.files:
            broken = f"; {len(listing.broken_links)} symbolic links lead nowhere" if listing.broken_links else ""
            raise InputError(
                f"no image file ({', '.join(sorted(IMAGE_EXTENSIONS))}) below it{broken}", file=args.folder
            )
    else:
        store.require_shards(source, "run `make download` first, or give FOLDER=<dir>")
    # The tables given are checked before any image is hashed.
    reference = (args.reference, reference_columns(args.reference)) if args.reference is not None else None
    if args.labels is not None:
        check_schema(args.labels, schemas.LABELS, LABEL_COLUMNS)
    settings = DedupeSettings(args.radius, args.verify)
    # A folder is fingerprinted by its listing (which follows links to class folders), the
    # store and the tables by the runner.
    inputs = tuple(p for p in (None if listing else source, args.reference, args.labels) if p is not None)
    recorded = {
        **settings._asdict(),
        "folder": str(args.folder),
        "folder_state": listing.state if listing else None,
        "reference": str(args.reference),
        "labels": str(args.labels),
        "sheet_clusters": args.sheet_clusters,
    }
    stage = runner.Stage(
        name="dedupe",
        workdir=args.workdir,
        outputs=(DEDUPE, report_name("dedupe")),
        inputs=inputs,
        settings=recorded,
    )

    def build(out: Path) -> str:
        return dedupe(
            source,
            listing,
            Layout(out),
            settings,
            reference,
            args.labels,
            args.processes or os.cpu_count() or 1,
            args.sheet_clusters,
            recorded,
            args.executor,
        )

    runner.run(stage, build, force=args.force)


def dedupe(
    source: Path,
    listing: Listing | None,
    out: Layout,
    settings: DedupeSettings,
    reference: tuple[Path, list[str]] | None,
    labels: Path | None,
    processes: int,
    sheet_clusters: int,
    recorded: dict,
    executor: str = "local",
) -> str:
    """Hash (a folder, whose ``listing`` is given) or read (the store), cluster, and write the
    dedupe outputs under ``out`` (a build folder); ``reference``: a table and its hash columns
    (``reference_columns``); ``recorded``: the stage's settings, for the report."""
    is_folder = listing is not None
    out.dedupe.mkdir(parents=True)
    start = time.monotonic()
    failures = []
    if is_folder:
        hashes, failures = hash_folder(source, processes, executor, listing)
    else:
        hashes = store_hashes(source)
    if hashes.num_rows == 0:
        first = f" (the first: {failures[0][0]}: {failures[0][1]})" if failures else ""
        raise InputError(f"not one image could be read{first}", file=source)
    hashed = time.monotonic()
    result = cluster(
        hashes,
        settings,
        reference=read_reference(*reference) if reference else None,
        accepted=read_accepted(labels) if labels else None,
    )
    clustered = time.monotonic()
    write_table(hashes, out.hashes, schemas.HASHES)
    write_table(result.table, out.clusters, schemas.CLUSTERS)
    report = dedupe_report(result.table, result.counts, recorded, failures)
    report["seconds"] = {
        "hashing" if is_folder else "reading": round(hashed - start, 2),
        "search_and_clusters": round(clustered - hashed, 2),
    }
    write_report(out.report("dedupe"), schemas.DEDUPE_REPORT, report)
    sheet.write(out.contact_sheet, result, hashes, settings, _bytes_loader(source, is_folder), sheet_clusters)
    print_report(report)
    dropped = report["images"] - report["kept"]
    return (
        f"{report['kept']} of {report['images']} images kept, {dropped} dropped "
        f"({', '.join(f'{n} {r}' for r, n in report['dropped'].items()) or 'none'}), "
        f"{len(report['conflicts'])} conflicts"
    )


def store_hashes(images: Path) -> pa.Table:
    """The hashes of the download stage's images, without reading the image bytes, in image_id
    order: a shard's rows are in arrival order, which differs from run to run, and the
    cluster numbering follows the row order."""
    columns = [n for n in schemas.HASHES.names if n != "location"]
    table = store.read_images(images, columns, with_location=True)
    return table.select(schemas.HASHES.names).cast(schemas.HASHES).sort_by("image_id")


def reference_columns(path: Path) -> list[str]:
    """The hash columns of a reference table, checked (phash at least, each int64), reading no data."""
    if not path.exists():
        raise InputError("no such file", file=path)
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as e:
        raise unreadable(path, e) from None
    present = [f.name for f in schemas.HASH_FIELDS if f.name in names]
    if "phash" not in present:
        raise InputError(
            "a reference table needs a phash column (int64), e.g. dedupe/hashes.parquet", file=path, field="phash"
        )
    check_schema(path, schemas.HASHES, present)
    return present


def read_reference(path: Path, columns: list[str]) -> pa.Table:
    """The reference table's ``columns`` (``reference_columns``, checked before the stage ran)."""
    return read_table(path, schemas.HASHES, columns=columns)


def read_accepted(path: Path) -> set[tuple[str, str]]:
    table = read_table(path, schemas.LABELS, columns=LABEL_COLUMNS)
    table = table.filter(pc.and_(table.column("accepted"), table.column("decided")))
    return set(zip(table.column("image_id").to_pylist(), table.column("wnid").to_pylist()))


def dedupe_report(table: pa.Table, counts: dict, settings: dict, failures: list) -> dict:
    wnid = table.column("wnid").to_pylist()
    reason = table.column("reason").to_pylist()
    keep = table.column("keep").to_pylist()
    per_class: dict[str, Counter] = {}
    for w, r, k in zip(wnid, reason, keep):
        c = per_class.setdefault(w, Counter())
        c["images"] += 1
        c["kept"] += k
        if not k:
            c[r] += 1
    totals = Counter(r for r, k in zip(reason, keep) if not k)
    return {
        "settings": settings,
        "images": counts["images"],
        "kept": counts["kept"],
        "dropped": {r: totals[r] for r in DROPPED if totals[r]},
        "reasons": {r: n for r, n in Counter(reason).items()},
        "reason_meaning": MEANING,
        "clusters_with_copies": counts["clusters_with_copies"],
        "largest_cluster": counts["largest_cluster"],
        "verified_pairs": counts["pairs"],
        "conflicts": counts["conflicts"],
        "unreadable_files": [{"file": f, "error": e} for f, e in failures],
        "per_class": {w: dict(c) for w, c in sorted(per_class.items())},
    }


def print_report(report: dict) -> None:
    lines = [
        f"dedupe: {report['kept']} of {report['images']} images kept; "
        f"{report['clusters_with_copies']} clusters of copies, the largest of {report['largest_cluster']}"
    ]
    lines += [f"  {r:<12} {n:>9} dropped" for r, n in report["dropped"].items()]
    if report["conflicts"]:
        lines.append(
            f"dedupe: {len(report['conflicts'])} clusters span two classes (conflicts), listed in "
            f"{report_name('dedupe')} and the contact sheet for review"
        )
    failures = report["unreadable_files"]
    for f in failures[:SHOWN_FAILURES]:
        lines.append(f"dedupe: unreadable, skipped: {f['file']}: {f['error']}")
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"dedupe: and {len(failures) - SHOWN_FAILURES} more unreadable files ({report_name('dedupe')})")
    print("\n".join(lines), file=sys.stderr)


def _bytes_loader(source: Path, is_folder: bool):
    """image_ids -> their bytes, for the contact sheet."""

    def load(hashes: pa.Table, ids: list[str]) -> dict[str, bytes]:
        if is_folder:
            return {i: (source / i).read_bytes() for i in ids}
        rows = hashes.filter(pc.is_in(hashes.column("image_id"), pa.array(ids, pa.string())))
        found = {}
        for location in set(rows.column("location").to_pylist()):
            found.update(store.image_bytes(source.parent / location, ids))
        return found

    return load
