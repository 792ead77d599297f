"""The manifests stage: ``manifests/{train,val,test,classes}.parquet`` and ``reports/manifests.json``,
and ``manifests/boxes.parquet`` when annotation has object boxes.

Reads the synsets, the image store (not its bytes), dedupe's clusters, annotation's labels and,
when present, its boxes (``annotation/boxes.parquet``).
Every manifest row points at its image in the store (``location``, ``image_id``), so a
manifest is a few hundred bytes per image. Each file's schema metadata says which dataset,
version and build it is, the settings' fingerprint and whether the labels were verified.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline import __version__, boxes, runner, schemas, store
from pipeline.errors import InputError
from pipeline.layout import MANIFESTS, SPLITS, Layout, report_name
from pipeline.settings import integer, number
from pipeline.tables import read_table, write_report, write_table

from .splits import SAMPLINGS, Plan, assign

HELP = "ILSVRC-style train/val/test manifests and classes: manifests/*.parquet, reports/manifests.json"
SHOWN_CLASSES = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = Plan()
    parser.add_argument(
        "--train-max",
        type=integer(0),
        default=p.train_max,
        help=f"training images per class at most (make: TRAIN_MAX, default {p.train_max})",
    )
    parser.add_argument(
        "--val-n",
        type=integer(0),
        default=p.val_n,
        help=f"validation images per class (make: VAL_N, default {p.val_n})",
    )
    parser.add_argument(
        "--test-n", type=integer(0), default=p.test_n, help=f"test images per class (make: TEST_N, default {p.test_n})"
    )
    parser.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        default=p.sampling,
        help="how val and test choose their images (make: SAMPLING, default confidence)",
    )
    parser.add_argument(
        "--threshold",
        type=number(0, 1),
        default=p.threshold,
        help=f"sampling threshold: least selection frequency (default {p.threshold})",
    )
    parser.add_argument(
        "--min-train",
        type=integer(0),
        default=p.min_train,
        help=f"report classes with fewer training images (make: MIN_TRAIN, default {p.min_train}, ILSVRC's smallest)",
    )
    parser.add_argument(
        "--drop-small", action="store_true", help="drop the classes below MIN_TRAIN (make: DROP_SMALL=1)"
    )
    parser.add_argument(
        "--unverified",
        action="store_true",
        help="build from candidate labels when annotation has not run; every file says so (make: UNVERIFIED=1)",
    )
    parser.add_argument("--seed", type=integer(0), default=p.seed, help="split seed (make: SEED)")


def run(args: argparse.Namespace) -> None:
    plan = Plan(
        train_max=args.train_max,
        val_n=args.val_n,
        test_n=args.test_n,
        sampling=args.sampling,
        threshold=args.threshold,
        min_train=args.min_train,
        drop_small=args.drop_small,
        seed=args.seed,
    )
    workdir = Layout(args.workdir)
    if not args.unverified and not workdir.labels.exists():
        raise InputError(
            "no verified labels: run the annotation rounds (make annotate-import), "
            "or build from candidate labels with UNVERIFIED=1",
            file=workdir.labels,
        )
    inputs = [workdir.synsets, workdir.images, workdir.clusters]
    if not args.unverified:
        inputs.append(workdir.labels)
    if workdir.boxes.exists():
        inputs.append(workdir.boxes)
    settings = {**plan.__dict__, "unverified": args.unverified}
    stage = runner.Stage(
        name="manifests",
        workdir=workdir.root,
        outputs=(MANIFESTS, report_name("manifests")),
        inputs=tuple(inputs),
        settings=settings,
        # 2: splits seeded by a digest of the wnid; 3: drawn over the images in image_id order; 4: boxes
        version=4,
    )
    fingerprint = runner.fingerprint(stage)

    def build(out: Path) -> str:
        return build_manifests(workdir, Layout(out), plan, args.unverified, fingerprint, settings)

    runner.run(stage, build, force=args.force)


def eligible_images(dataset: Layout, unverified: bool) -> pd.DataFrame:
    """The store's images that may enter a split, with their cluster and label confidence."""
    columns = ["image_id", "wnid", "width", "height", "sha256", "phash", "source", "url", "license"]
    store.require_shards(dataset.images, "run `make download` first")
    images = store.read_images(dataset.images, columns, with_location=True).to_pandas()
    images = images.rename(columns={"url": "source_url"})
    clusters = read_table(
        dataset.clusters, schemas.CLUSTERS, columns=["image_id", "cluster_id", "representative", "keep"]
    ).to_pandas()
    images = images.merge(clusters, on="image_id", how="left")
    if images.keep.isna().any():
        raise InputError(
            f"{int(images.keep.isna().sum())} images are not in dedupe's clusters: run `make dedupe` again",
            file=dataset.clusters,
        )
    # image_id order: the store's row order is the order downloads finished in, and the seeded
    # draws of the splits must not depend on it.
    images = images[images.keep.astype(bool)].sort_values("image_id")
    if unverified:
        return images.assign(confidence=None, votes=None, selection_frequency=None).reset_index(drop=True)
    labels = read_table(dataset.labels, schemas.LABELS).to_pandas()
    accepted = labels[labels.accepted & labels.decided][
        ["image_id", "wnid", "confidence", "votes_total", "selection_frequency"]
    ]
    twice = accepted.duplicated(["image_id", "wnid"])
    if twice.any():
        row = int(accepted.index[twice][0])
        raise InputError(
            "this image is accepted twice for its class: it would enter the manifests twice",
            file=dataset.labels,
            row=row,
            field="image_id",
            value=accepted.at[row, "image_id"],
        )
    images = images.merge(accepted, on=["image_id", "wnid"], how="inner").rename(columns={"votes_total": "votes"})
    return images.sort_values("image_id").reset_index(drop=True)


def build_manifests(
    dataset: Layout, out: Layout, plan: Plan, unverified: bool, fingerprint: str, settings: dict
) -> str:
    """The manifests and their report, from the dataset folder ``dataset``, under the build folder ``out``."""
    synsets = read_table(dataset.synsets, schemas.SYNSETS, columns=["wnid", "name", "gloss"]).to_pandas()
    images = eligible_images(dataset, unverified)
    others = images[~images.wnid.isin(synsets.wnid)]
    if len(others):
        print(
            f"manifests: {len(others)} eligible images of {others.wnid.nunique()} wnids that "
            f"{dataset.synsets.name} does not list are left out, e.g. {others.wnid.iloc[0]}",
            file=sys.stderr,
        )
    images = assign(images[images.wnid.isin(synsets.wnid)].reset_index(drop=True), plan)
    counts = (
        images.groupby(["wnid", "split"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=synsets.wnid, columns=list(SPLITS), fill_value=0)
    )
    small = counts.index[counts.train < plan.min_train].tolist()
    empty = counts.index[counts.sum(axis=1) == 0].tolist()
    kept = [w for w in sorted(synsets.wnid) if w not in empty and not (plan.drop_small and w in small)]
    if not kept:
        dropped = f", {len(small)} dropped below MIN_TRAIN (DROP_SMALL)" if plan.drop_small and small else ""
        raise InputError(
            f"no class is left for the manifests: {len(empty)} of its {len(synsets)} classes "
            f"have no eligible image{dropped}",
            file=dataset.synsets,
        )
    label_of = {w: k for k, w in enumerate(kept)}
    metadata = {
        "synsetforge.dataset": dataset.root.name,
        "synsetforge.version": __version__,
        "synsetforge.built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "synsetforge.fingerprint": fingerprint,
        "synsetforge.verified": "no" if unverified else "yes",
    }
    out.manifests.mkdir(parents=True)
    images = images[images.split.notna() & images.wnid.isin(label_of)]
    images = images.assign(label=images.wnid.map(label_of).astype("int64"))
    for split in SPLITS:
        rows = images[images.split == split].sort_values(["label", "image_id"])
        rows = rows.assign(votes=rows.votes.astype("Int32") if not unverified else None)
        table = pa.Table.from_pandas(rows[list(schemas.MANIFEST.names)], preserve_index=False)
        write_table(table.cast(schemas.MANIFEST), out.manifest(split), schemas.MANIFEST, metadata=metadata)
    boxed = None
    if dataset.boxes.exists():
        boxed = box_manifest(read_table(dataset.boxes, schemas.BOXES).to_pandas(), images, dataset.boxes)
        write_table(
            pa.Table.from_pandas(boxed, preserve_index=False).cast(schemas.BOX_MANIFEST),
            out.box_manifest,
            schemas.BOX_MANIFEST,
            metadata=metadata,
        )
    names = dict(zip(synsets.wnid, synsets.name))
    glosses = dict(zip(synsets.wnid, synsets.gloss))
    write_table(
        {
            "label": list(range(len(kept))),
            "wnid": kept,
            "name": [names[w] for w in kept],
            "gloss": [glosses[w] for w in kept],
            **{s: [int(counts.at[w, s]) for w in kept] for s in SPLITS},
        },
        out.classes,
        schemas.CLASSES,
        metadata=metadata,
    )
    report = {
        "settings": settings,
        "verified": not unverified,
        "plan": plan.__dict__,
        "classes": len(kept),
        "images": {s: int((images.split == s).sum()) for s in SPLITS},
        "classes_below_min_train": small,
        "classes_dropped": [w for w in synsets.wnid if w not in label_of],
        "per_class": {w: {s: int(counts.at[w, s]) for s in SPLITS} for w in kept},
        "fingerprint": fingerprint,
        "boxes": box_counts(boxed),
    }
    write_report(out.report("manifests"), schemas.MANIFESTS_REPORT, report)
    if small:
        shown = ", ".join(f"{w} ({counts.at[w, 'train']})" for w in small[:SHOWN_CLASSES])
        print(
            f"manifests: {len(small)} classes below {plan.min_train} training images"
            f"{' (dropped)' if plan.drop_small else ''}: {shown}{' ...' if len(small) > SHOWN_CLASSES else ''}",
            file=sys.stderr,
        )
    verified = "unverified candidate labels" if unverified else "verified labels"
    return (
        f"{len(kept)} classes from {verified}: train {report['images']['train']}, val {report['images']['val']}, "
        f"test {report['images']['test']}{box_summary(report['boxes'])}"
    )


def box_manifest(table: pd.DataFrame, images: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows of ``manifests/boxes.parquet``: the boxes (``table``, schemas.BOXES, read from
    ``path``) of the manifests' images (``images``: image_id, split, label, wnid, width, height),
    ordered by split, label, image_id and the box's row. Every box must be a box of its stored
    image (``pipeline.boxes.problem``); a box of a manifest image must also name the image's class
    and size: otherwise an InputError naming the row and field."""
    edges = list(boxes.COLUMNS)
    for row, box, width, height in zip(  # rows numbered from 1, as every error of ours numbers them
        range(1, len(table) + 1), table[edges].itertuples(index=False), table.width, table.height
    ):
        box = tuple(int(v) for v in box)
        problem = boxes.problem(box, int(width), int(height))
        if problem:
            raise InputError(problem, file=path, row=row, field=boxes.bad_edge(box, int(width), int(height)))
    shown = images[["image_id", "split", "label", "wnid", "width", "height"]]
    joined = table.assign(row=range(1, len(table) + 1)).merge(
        shown, on="image_id", how="inner", suffixes=("", "_image")
    )
    for field in ("wnid", "width", "height"):
        wrong = joined[joined[field] != joined[f"{field}_image"]]
        if len(wrong):
            first = wrong.sort_values("row").iloc[0]
            raise InputError(
                f"the manifest says {first[f'{field}_image']} for image {first.image_id}",
                file=path,
                row=int(first.row),
                field=field,
                value=first[field].item() if hasattr(first[field], "item") else first[field],
            )
    joined = joined.assign(rank=joined.split.map(SPLITS.index)).sort_values(["rank", "label", "image_id", "row"])
    return joined[list(schemas.BOX_MANIFEST.names)].reset_index(drop=True)


def box_counts(boxed: pd.DataFrame | None) -> dict | None:
    """The manifests report's ``boxes``: per split, the images with boxes and the boxes; None
    for a dataset without boxes."""
    if boxed is None:
        return None
    return {
        "images": {s: int(boxed.image_id[boxed.split == s].nunique()) for s in SPLITS},
        "boxes": {s: int((boxed.split == s).sum()) for s in SPLITS},
    }


def box_summary(counts: dict | None) -> str:
    if counts is None:
        return ""
    return "; boxed images " + ", ".join(f"{s} {n}" for s, n in counts["images"].items())
