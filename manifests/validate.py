"""``validate``: check a built dataset the way a user's loader and a reviewer would.

Checks, each reported with what failed: the manifests' schemas; labels within range and
equal to the class's place in sorted-wnid order; every image's bytes found, equal to the
manifest's sha256 and decoded by the pipeline's pixel rule (``pipeline.pixels.decode``: upright,
8-bit RGB, within the pixel limit) at the manifest's size; split
counts equal to classes.parquet's; no exact or near copy across splits (recomputed from the
images' hashes with dedupe's own pair search, at the radius and verify dedupe's report
records, not trusted from the build); no image under two classes; every object box
(``manifests/boxes.parquet``) inside its image, of positive area, on an image of its class in
its split, with the boxed images counted per class and split. Writes
``reports/validate.json`` and exits non-zero on any failure: 1 for a failed check, 2 for a
file it cannot read (a truncated manifest, a damaged image store shard), naming it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline import boxes, pixels, runner, schemas, store
from pipeline.errors import InputError, PipelineError
from pipeline.layout import SPLITS, Layout, report_name
from pipeline.nearcopies import DedupeSettings, find_pairs
from pipeline.progress import progress
from pipeline.tables import read_report, read_table, write_report

HELP = "check the manifests: schemas, labels, decodable images, counts, no copies across splits: reports/validate.json"
SHOWN = 5


class Failed(PipelineError):
    exit_status = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-decode", action="store_true", help="skip decoding every image (make: NO_DECODE=1)")


def run(args: argparse.Namespace) -> None:
    report = validate(args.workdir, decode=not args.no_decode)
    path = Layout(args.workdir).report("validate")
    with runner.lock(args.workdir, "validate"):  # the checks only read; the report is its one write
        write_report(path, schemas.VALIDATE_REPORT, report)
    failed = {name: check for name, check in report["checks"].items() if not check["ok"]}
    for name, check in report["checks"].items():
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"validate: {mark} {name}: {check['summary']}", file=sys.stderr)
        for problem in check.get("problems", [])[:SHOWN]:
            print(f"validate:        {problem}", file=sys.stderr)
    if failed:
        raise Failed(f"{len(failed)} of {len(report['checks'])} checks failed ({', '.join(failed)}); details in {path}")


def _read(path: Path, schema: pa.Schema) -> pd.DataFrame:
    try:
        return read_table(path, schema).to_pandas()
    except (pa.ArrowException, OSError) as e:  # a truncated or corrupted file
        raise InputError(
            f"cannot read the {schema.metadata[b'synsetforge.table'].decode()} table ({e})", file=path
        ) from None


def validate(workdir: Path, decode: bool = True) -> dict:
    layout = Layout(workdir)
    if not layout.classes.exists():
        raise InputError("no manifests: run `make manifests` first", file=layout.manifests)
    classes = _read(layout.classes, schemas.CLASSES)
    splits = {s: _read(layout.manifest(s), schemas.MANIFEST) for s in SPLITS}
    rows = pd.concat([m.assign(split=s) for s, m in splits.items()], ignore_index=True)
    checks = {
        "labels": check_labels(classes, rows),
        "counts": check_counts(classes, splits),
        "one_class_per_image": check_classes(rows),
        "no_copies_across_splits": check_copies(workdir, rows),
        "boxes": check_boxes(layout, rows),
    }
    if decode:
        checks["images_decode"] = check_images(workdir, rows)
    copies, source = dedupe_settings(workdir)
    return {
        "settings": {"decode": decode, "radius": copies.radius, "verify": copies.verify, "copies_settings": source},
        "dataset": str(workdir),
        "images": {s: len(m) for s, m in splits.items()},
        "classes": len(classes),
        "checks": checks,
    }


def _result(problems: list[str], summary_ok: str) -> dict:
    return {
        "ok": not problems,
        "summary": summary_ok if not problems else f"{len(problems)} problems",
        "problems": problems[:1000],
    }


def check_labels(classes: pd.DataFrame, rows: pd.DataFrame) -> dict:
    problems = []
    if list(classes.label) != list(range(len(classes))):
        problems.append("classes.parquet: labels are not 0..n-1 in order")
    if list(classes.wnid) != sorted(classes.wnid):
        problems.append("classes.parquet: wnids are not in sorted order, so labels are not sorted-wnid indices")
    label_of = dict(zip(classes.wnid, classes.label))
    for row in rows[(rows.label < 0) | (rows.label >= len(classes))].head(SHOWN).itertuples():
        problems.append(f"{row.split}.parquet: image {row.image_id}: label {row.label} outside 0..{len(classes) - 1}")
    wrong = rows[rows.wnid.map(label_of).ne(rows.label)]
    for row in wrong.head(SHOWN).itertuples():
        problems.append(
            f"{row.split}.parquet: image {row.image_id}: label {row.label} but class {row.wnid} "
            f"is label {label_of.get(row.wnid)}"
        )
    return _result(problems, f"{len(rows)} labels match {len(classes)} classes in sorted-wnid order")


def check_counts(classes: pd.DataFrame, splits: dict[str, pd.DataFrame]) -> dict:
    problems = []
    for split, manifest in splits.items():
        counted = manifest.groupby("wnid").size()
        for row in classes.itertuples():
            if int(counted.get(row.wnid, 0)) != int(getattr(row, split)):
                problems.append(
                    f"{split}: class {row.wnid} has {int(counted.get(row.wnid, 0))} images, "
                    f"classes.parquet says {getattr(row, split)}"
                )
    return _result(problems, ", ".join(f"{s} {len(m)}" for s, m in splits.items()) + " as classes.parquet says")


def check_classes(rows: pd.DataFrame) -> dict:
    problems = []
    for image_id, group in rows[rows.image_id.duplicated(keep=False)].groupby("image_id"):
        problems.append(f"image {image_id} is listed {len(group)} times: {', '.join(group.split + ' ' + group.wnid)}")
    for sha, group in rows[rows.sha256.duplicated(keep=False)].groupby("sha256"):
        if group.wnid.nunique() > 1:
            problems.append(f"the same bytes ({sha[:12]}) under classes {', '.join(sorted(set(group.wnid)))}")
    return _result(problems, "every image once, under one class")


def check_boxes(layout: Layout, rows: pd.DataFrame) -> dict:
    """Each box lies inside its image and has an area (``pipeline.boxes.problem``, here on whole
    columns), on an image of the manifests of the same class, label and split, with the image's
    size; ``per_class``: boxed images per class and split. Rows are numbered from 1."""
    name = layout.box_manifest.relative_to(layout.root).as_posix()
    if not layout.box_manifest.exists():
        return {**_result([], f"no object boxes (no {name})"), "per_class": {}}
    table = _read(layout.box_manifest, schemas.BOX_MANIFEST)
    images = rows.drop_duplicates("image_id")[["image_id", "split", "label", "wnid", "width", "height"]]
    joined = table.assign(row=range(1, len(table) + 1)).merge(
        images, on="image_id", how="left", suffixes=("", "_image")
    )
    joined = joined.sort_values("row")
    xmin, ymin, xmax, ymax = (joined[c].to_numpy() for c in boxes.COLUMNS)
    width, height = joined.width_image.to_numpy(), joined.height_image.to_numpy()
    known = joined.split_image.notna().to_numpy()
    inside = (xmin >= 0) & (ymin >= 0) & (xmax <= width) & (ymax <= height) & (xmin < xmax) & (ymin < ymax)
    same = (
        (joined.split == joined.split_image).to_numpy()
        & (joined.wnid == joined.wnid_image).to_numpy()
        & (joined.label == joined.label_image).to_numpy()
    )
    sized = (joined.width == width) & (joined.height == height)
    problems = []
    for box in joined[~known | ~inside | ~same | ~sized.to_numpy()].head(1000).itertuples():
        where = f"{name} row {box.row}: image {box.image_id}"
        if pd.isna(box.split_image):
            problems.append(f"{where}: not an image of the manifests")
            continue
        why = boxes.problem((box.xmin, box.ymin, box.xmax, box.ymax), int(box.width_image), int(box.height_image))
        if why:
            problems.append(f"{where}: {why}")
        if (box.split, box.wnid) != (box.split_image, box.wnid_image):
            problems.append(
                f"{where}: a box of {box.wnid} in {box.split}, the image is {box.wnid_image} in {box.split_image}"
            )
        if box.label != box.label_image:
            problems.append(f"{where}: label {box.label}, the manifest says {int(box.label_image)}")
        if (box.width, box.height) != (box.width_image, box.height_image):
            problems.append(
                f"{where}: size {box.width}x{box.height}, the manifest says {box.width_image}x{box.height_image}"
            )
    boxed = table.drop_duplicates("image_id").groupby(["wnid", "split"]).size()
    per_class = {w: {s: int(boxed.get((w, s), 0)) for s in SPLITS} for w in sorted(set(table.wnid))}
    counted = ", ".join(f"{s} {int(table.image_id[table.split == s].nunique())}" for s in SPLITS)
    result = _result(
        problems, f"{len(table)} boxes inside their images, on images of their class and split ({counted} boxed images)"
    )
    return {**result, "per_class": per_class}


def manifest_hashes(workdir: Path, rows: pd.DataFrame) -> pa.Table:
    """The six hashes of the manifest's images, from the image store, in ``rows`` order."""
    names = ["image_id", *(f.name for f in schemas.HASH_FIELDS)]
    hashes = store.read_images(Layout(workdir).images, names).to_pandas().set_index("image_id")
    hashes = hashes[~hashes.index.duplicated()].reindex(rows.image_id)
    if hashes.phash.isna().any():
        missing = hashes.index[hashes.phash.isna()][0]
        raise InputError("a manifest image is not in the image store", field="image_id", value=missing)
    return pa.Table.from_pandas(hashes.reset_index(drop=True).astype("int64"), preserve_index=False)


def dedupe_settings(workdir: Path) -> tuple[DedupeSettings, str]:
    """The radius and verify the dataset's dedupe ran with, and where they came from; dedupe's
    defaults where no dedupe report is (an imported dataset)."""
    report = read_report(Layout(workdir).report("dedupe"), schemas.DEDUPE_REPORT, missing_ok=True)
    if report is None:
        return DedupeSettings(), f"dedupe's defaults: no {report_name('dedupe')}"
    settings = report["settings"]
    return DedupeSettings(settings["radius"], settings["verify"]), f"from {report_name('dedupe')}"


def check_copies(workdir: Path, rows: pd.DataFrame) -> dict:
    problems = []
    for _, group in rows[rows.sha256.duplicated(keep=False)].groupby("sha256"):
        if group.split.nunique() > 1:
            problems.append(f"exact copy across {', '.join(sorted(set(group.split)))}: {', '.join(group.image_id)}")
    settings, source = dedupe_settings(workdir)
    pairs = find_pairs(manifest_hashes(workdir, rows), settings)
    split = rows.split.to_numpy()
    image_id = rows.image_id.to_numpy()
    across = split[pairs.left] != split[pairs.right]
    for a, b, d in zip(pairs.left[across], pairs.right[across], pairs.distance[across]):
        problems.append(f"near copy across {split[a]} and {split[b]}: {image_id[a]}, {image_id[b]} ({d} bits)")
    return _result(
        problems,
        f"no copy across splits (radius {settings.radius}, verify {settings.verify}, {source}; "
        f"{len(pairs.left)} near pairs within splits)",
    )


def check_images(workdir: Path, rows: pd.DataFrame) -> dict:
    problems = []
    bar = progress(total=len(rows), desc="validate: decode", unit="img")
    for location, group in rows.groupby("location"):
        path = workdir / location
        if not path.exists():
            problems.append(f"{location}: missing, {len(group)} images unreadable")
            bar.update(len(group))
            continue
        wanted = defaultdict(list)
        for row in group.itertuples():
            wanted[row.image_id].append(row)
        shard = store.open_shard(path, ["image_id", "image"])
        for batch in shard.iter_batches(batch_size=256, columns=["image_id", "image"]):
            for image_id, data in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                for row in wanted.pop(image_id, []):
                    problem = _decode_problem(data, row.width, row.height, row.sha256)
                    if problem:
                        problems.append(f"{row.split}.parquet: image {image_id} in {location}: {problem}")
                    bar.update()
        for image_id, missing in wanted.items():
            problems.append(f"{missing[0].split}.parquet: image {image_id} not found in {location}")
            bar.update(len(missing))
    bar.close()
    return _result(problems, f"{len(rows)} images match their sha256 and decode upright at their recorded size")


def _decode_problem(data: bytes, width: int, height: int, sha256: str) -> str | None:
    if hashlib.sha256(data).hexdigest() != sha256:
        return "its bytes do not match the manifest's sha256: the shard is damaged, or the manifests are stale"
    try:
        size = pixels.decode(data).size
    except pixels.TooManyPixels as e:
        return f"refused: {e}"
    except Exception as e:  # noqa: BLE001 - any decoder failure is the finding
        return f"does not decode ({type(e).__name__}: {e})"
    if size != (width, height):
        return f"decodes upright to {size[0]}x{size[1]}, manifest says {width}x{height}"
    return None
