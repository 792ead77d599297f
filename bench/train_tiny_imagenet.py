"""Learnability on real photos: AlexNet on 10 classes of Tiny ImageNet, on this machine's CPU.

Builds a dataset the way the pipeline lays one out, in a temporary folder: an image-store
shard (``images/shard-00000.parquet``, the IMAGES columns, hashes included) and manifests
(``manifests/{train,val}.parquet`` with the MANIFEST columns, ``classes.parquet``) from
``../shared/data/real-photos/tiny-imagenet-10`` (500 training and 50 validation photos per
class, 64x64), then runs the baseline trainer on it and prints the validation top-1 accuracy
and the wall time. Chance is 10%; the target is at least 70% top-1 within 30 minutes.

Settings for 64 px photos on a CPU: crops of 64 from images scaled to 73 (AlexNet's 224/256
ratio; 63 px is the smallest input AlexNet takes), flips and colour lighting; batch 64, lr
0.02 on a cosine schedule with one warm-up epoch, so val error is never used to steer the
run and stays a clean held-out figure. The architecture is the default torchvision AlexNet.

    python bench/train_tiny_imagenet.py [--epochs 24] [--minutes 30] [--keep DIR]
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
from pipeline.hashing import hashes_of_bytes  # noqa: E402
from pipeline.layout import Layout  # noqa: E402
from pipeline.tables import write_table  # noqa: E402

TINY = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-photos" / "tiny-imagenet-10"


def build_dataset(folder: Path) -> dict[str, int]:
    """images/shard-00000.parquet and manifests/ from the Tiny ImageNet files."""
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
    images.close()
    for split, columns in manifests.items():
        write_table(columns, layout.manifest(split), schemas.MANIFEST)
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
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="build the dataset and write the run here (kept)")
    args = parser.parse_args()
    if not TINY.is_dir():
        print(f"skipped: {TINY} is absent (../shared holds it)", file=sys.stderr)
        return 0
    import torch

    from baseline.config import Config
    from baseline.train import train

    with tempfile.TemporaryDirectory(prefix="tiny-imagenet-") as tmp:
        root = args.keep or Path(tmp)
        began = time.perf_counter()
        counts = build_dataset(root / "tiny")
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
    print(json.dumps(summary, indent=2))
    print(
        f"Tiny ImageNet 10 classes, AlexNet {args.size} px on CPU: top-1 accuracy "
        f"{100 * summary['top1_accuracy_center']:.1f}% centre, {100 * summary['top1_accuracy_ten_crop']:.1f}% 10-crop "
        f"(chance 10%, target 70%), {seconds / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
