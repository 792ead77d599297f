"""Learnability on real photos: AlexNet on 10 classes of Tiny ImageNet, on this machine's CPU,
classifying and localizing.

Builds a dataset the way the pipeline lays one out, in a temporary folder: an image-store
shard (``images/shard-00000.parquet``, the IMAGES columns, hashes included), manifests
(``manifests/{train,val}.parquet`` with the MANIFEST columns, ``classes.parquet``) and the
imported boxes (``manifests/boxes.parquet``, BOX_MANIFEST, source imported: Tiny ImageNet's
``<wnid>_boxes.txt`` and ``val_annotations.txt``, 0-based inclusive, one box an image) from
``../shared/data/real-photos/tiny-imagenet-10`` (500 training and 50 validation photos per
class, 64x64), then runs the baseline trainer on it and prints the validation top-1 accuracy,
the localization figures and the wall time. Chance is 10%; the targets: top-1 accuracy no
worse than classification alone (78.6%), a predicted box overlapping the true one by half
(IoU >= 0.5) on at least 20 points more val images than the whole image's box, top-1
localization error at most 45%, within 30 minutes. ``--no-boxes`` trains on classes alone.

Settings for 64 px photos on a CPU: crops of 64 from images scaled to 73 (AlexNet's 224/256
ratio; 63 px is the smallest input AlexNet takes), flips and colour lighting; batch 64, lr
0.02 on a cosine schedule with one warm-up epoch, so val error is never used to steer the
run and stays a clean held-out figure. The architecture is the default torchvision AlexNet.
With boxes the photos are scaled up to 128 px inputs (crops of 128 from 146): conv5's map,
which the box head reads, is then 7x7 cells instead of 3x3, and small objects get a place
of their own (at 64 px the first guess's box overlapped by half on 72.2% of val images, at
128 px on 76.0% and 75.0% with seeds 0 and 1, in 24-25 minutes; docs/benchmarks.md).

    python bench/train_tiny_imagenet.py [--epochs 24] [--size 64|128] [--box-head class|agnostic] [--box-weight W] [--no-boxes] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import schemas, store  # noqa: E402
from pipeline.boxes import from_inclusive  # noqa: E402
from pipeline.hashing import hashes_of_bytes  # noqa: E402
from pipeline.layout import Layout  # noqa: E402
from pipeline.tables import write_table  # noqa: E402

TINY = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-photos" / "tiny-imagenet-10"


def tiny_boxes() -> dict[str, tuple]:
    """Tiny ImageNet's boxes by file name, in our convention (its files are 0-based inclusive)."""
    found = {}
    for listing in sorted(TINY.glob("train/*/*_boxes.txt")):
        for line in listing.read_text().splitlines():
            name, *edges = line.split("\t")
            found[name] = from_inclusive(*map(int, edges))
    for line in TINY.joinpath("val", "val_annotations.txt").read_text().splitlines():
        name, _, *edges = line.split("\t")
        found[name] = from_inclusive(*map(int, edges))
    return found


def build_dataset(folder: Path, boxes: bool = True) -> dict[str, int]:
    """images/shard-00000.parquet and manifests/ from the Tiny ImageNet files (and
    manifests/boxes.parquet with ``boxes``)."""
    from PIL import Image

    wnids = sorted(TINY.joinpath("wnids.txt").read_text().split())
    names = {}
    for line in TINY.joinpath("words.txt").read_text().splitlines():
        wnid, _, words = line.partition("\t")
        if wnid in wnids:
            names[wnid] = words.split(",")[0].strip()
    files = [("train", w, p) for w in wnids for p in sorted((TINY / "train" / w / "images").glob("*.JPEG"))]
    for line in TINY.joinpath("val", "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        files.append(("val", wnid, TINY / "val" / "images" / name))
    layout = Layout(folder)
    shard = store.shard_path(layout.images, 0)
    images = store.ShardWriter(shard)
    manifests = {split: {name: [] for name in schemas.MANIFEST.names} for split in ("train", "val")}
    box_of, box_rows = tiny_boxes(), {name: [] for name in schemas.BOX_MANIFEST.names}
    for rank, (split, wnid, path) in enumerate(files):
        data = path.read_bytes()
        image_id = hashlib.sha256(f"{wnid}\t{path.name}".encode()).hexdigest()[:16]
        with Image.open(path) as image:
            width, height = image.size
        hashes = hashes_of_bytes(data)._asdict()
        sha = hashlib.sha256(data).hexdigest()
        url = f"file://tiny-imagenet-10/{path.relative_to(TINY)}"
        row = {
            "image_id": image_id,
            "wnid": wnid,
            "image": data,
            "sha256": sha,
            "width": width,
            "height": height,
            "format": "JPEG",
            **hashes,
            "original_width": width,
            "original_height": height,
            "original_format": "JPEG",
            "source": "urllist",
            "url": url,
            "rank": rank,
            "license": None,
        }
        images.add(row)
        entry = {
            "image_id": image_id,
            "label": wnids.index(wnid),
            "wnid": wnid,
            "location": store.location(shard),
            "width": width,
            "height": height,
            "sha256": sha,
            "phash": hashes["phash"],
            "source": "urllist",
            "source_url": url,
            "license": None,
            "confidence": None,
            "votes": None,
        }
        for name, value in entry.items():
            manifests[split][name].append(value)
        box = box_of[path.name]._asdict()
        box_row = {"split": split, "source": "imported", **{k: entry[k] for k in ("image_id", "label", "wnid")}}
        for name, value in {**box_row, **box, "width": width, "height": height}.items():
            box_rows[name].append(value)
    images.close()
    for split, columns in manifests.items():
        write_table(columns, layout.manifest(split), schemas.MANIFEST)
    if boxes:
        write_table(box_rows, layout.box_manifest, schemas.BOX_MANIFEST)
    counts = {split: {w: manifests[split]["wnid"].count(w) for w in wnids} for split in manifests}
    write_table(
        {
            "label": list(range(len(wnids))),
            "wnid": wnids,
            "name": [names.get(w, w) for w in wnids],
            "gloss": [""] * len(wnids),
            "train": [counts["train"][w] for w in wnids],
            "val": [counts["val"][w] for w in wnids],
            "test": [0] * len(wnids),
        },
        layout.classes,
        schemas.CLASSES,
    )
    return {split: len(columns["image_id"]) for split, columns in manifests.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--size", type=int, help="input side (default 128 with boxes, 64 without)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--box-head", choices=("class", "agnostic"), default="class")
    parser.add_argument("--box-weight", type=float, help="the box loss's weight (default the trainer's)")
    parser.add_argument("--no-boxes", dest="boxes", action="store_false", help="train on the classes alone")
    parser.add_argument("--keep", type=Path, help="build the dataset and write the run here (kept)")
    args = parser.parse_args()
    args.size = args.size or (128 if args.boxes else 64)
    if not TINY.is_dir():
        print(f"skipped: {TINY} is absent (../shared holds it)", file=sys.stderr)
        return 0
    import torch

    from baseline.config import Config
    from baseline.train import train

    with tempfile.TemporaryDirectory(prefix="tiny-imagenet-") as tmp:
        root = args.keep or Path(tmp)
        began = time.perf_counter()
        counts = build_dataset(root / "tiny", args.boxes)
        built = time.perf_counter() - began
        print(
            f"built {root / 'tiny'}: {counts} images in {built:.0f} s; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads",
            file=sys.stderr,
        )
        config = Config(
            data=root,
            subset="tiny",
            epochs=args.epochs,
            size=args.size,
            batch=args.batch,
            lr=args.lr,
            schedule=args.schedule,
            warmup=args.warmup,
            dropout=args.dropout,
            workers=args.workers,
            seed=args.seed,
            box_head=args.box_head,
            box_weight=args.box_weight,
            device="cpu",
            force=True,
            progress=sys.stderr.isatty(),
        )
        began = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - began
    val = result["val"]
    summary = {
        "top1_accuracy_center": 1 - val["top1_error"]["center"],
        "top1_accuracy_ten_crop": 1 - val["top1_error"]["ten_crop"],
        "top5_accuracy_ten_crop": 1 - val["top5_error"]["ten_crop"],
        "val_images": val["images"],
        "train_seconds": round(result["train_seconds"]),
        "wall_seconds_with_evaluation": round(seconds),
        "build_seconds": round(built),
        "images_per_s": round(result["images_per_s"] or 0),
        "epochs": args.epochs,
        "size": args.size,
        "batch": args.batch,
        "lr": args.lr,
        "schedule": args.schedule,
        "worst_class": result["worst_classes"][0] if result.get("worst_classes") else None,
    }
    if args.boxes:
        summary.update(
            box_head=args.box_head,
            box_weight=args.box_weight,
            top1_loc_error=val["top1_loc_error"],
            top5_loc_error=val["top5_loc_error"],
            box_iou_50=val["box_iou_50"],
            whole_image_iou_50=val["whole_image_iou_50"],
            images_with_boxes=val["images_with_boxes"],
        )
    print(json.dumps(summary, indent=2))
    print(
        f"Tiny ImageNet 10 classes, AlexNet {args.size} px on CPU: top-1 accuracy "
        f"{100 * summary['top1_accuracy_center']:.1f}% centre, {100 * summary['top1_accuracy_ten_crop']:.1f}% 10-crop "
        f"(chance 10%, target 78.6%), {seconds / 60:.1f} min (target 30)"
    )
    if args.boxes:
        print(
            f"localization ({args.box_head} boxes): predicted box IoU >= 0.5 on {100 * val['box_iou_50']:.1f}% of "
            f"val images, the whole image on {100 * val['whole_image_iou_50']:.1f}% (target: 20 points more); "
            f"top-1 localization error {100 * val['top1_loc_error']:.1f}% (target <= 45%), "
            f"top-5 {100 * val['top5_loc_error']:.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
