"""Near-duplicate quality on real photos: precision and recall of copy pairs, per transform.

Each of the 200 ILSVRC photos in ../shared (one per class, so no two are copies) is
transformed six ways, the copies a web crawl meets: JPEG re-encode at quality 50, resize
to 50%, a 5% border crop (5% of the width and of the height off each side), brightness
+20%, a 3 degree rotation (corners filled black, size kept) and a horizontal flip. Every
image is hashed by ``pipeline.hashing`` and paired by ``pipeline.nearcopies.find_pairs``.

- recall of a transform: the share of (photo, its transformed copy) pairs found;
- precision: found pairs whose two images come from the same photo, over all found pairs
  among the 1,400 images (the other photos and their copies are the distractors);
- with ``--tiny``, the 5,500 Tiny ImageNet photos join as more distractors; pairs found
  among them are counted apart, since Tiny ImageNet holds real copies (the sheet shows them).

For the peers' figure the same table is printed for imagehash's pHash alone (one view, no
verification), which is what imagehash or imagededup at a distance threshold do.
Extra rows measure crops of 2% and 8% a side, which the 5% inner view is not tuned to.

    python bench/dedupe_quality.py [--tiny] [--radius 6,8,10,12] [--verify 10,12,14,16,64]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.hashing import Hashes, hashes_of_bytes  # noqa: E402
from pipeline.nearcopies import MATCHES, DedupeSettings, find_pairs  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-photos"


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def crop(image: Image.Image, side: float) -> Image.Image:
    dx, dy = round(image.width * side), round(image.height * side)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


TRANSFORMS = {
    "reencode q50": lambda im: jpeg(im, 50),
    "resize 50%": lambda im: jpeg(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)),
    "crop 5%": lambda im: jpeg(crop(im, 0.05)),
    "brightness +20%": lambda im: jpeg(ImageEnhance.Brightness(im).enhance(1.2)),
    "rotate 3deg": lambda im: jpeg(im.rotate(3, resample=Image.Resampling.BICUBIC)),
    "flip": lambda im: jpeg(ImageOps.mirror(im)),
}
EXTRA = {
    "crop 2%": lambda im: jpeg(crop(im, 0.02)),
    "crop 8%": lambda im: jpeg(crop(im, 0.08)),
}


def hashes_table(images: list[tuple[str, bytes]]) -> pa.Table:
    rows = [hashes_of_bytes(data) for _, data in images]
    return pa.table({name: pa.array([r[k] for r in rows], pa.int64()) for k, name in enumerate(Hashes._fields)})


def build(tiny: bool):
    """(photo number or -1 for a Tiny ImageNet distractor, transform name or '', bytes) per image."""
    photos = sorted((SHARED / "imagenet-samples").glob("*.JPEG"))
    images = []
    for number, path in enumerate(photos):
        data = path.read_bytes()
        rgb = Image.open(io.BytesIO(data)).convert("RGB")
        images.append((number, "", data))
        for name, transform in {**TRANSFORMS, **EXTRA}.items():
            images.append((number, name, transform(rgb)))
    if tiny:
        for path in sorted((SHARED / "tiny-imagenet-10").rglob("*.JPEG")):
            images.append((-1, "", path.read_bytes()))
    return images


def measure(
    table: pa.Table, photo: np.ndarray, transform: np.ndarray, settings: DedupeSettings, matches=MATCHES
) -> dict:
    pairs = find_pairs(table, settings, matches=matches)
    a, b = pairs.left, pairs.right
    extra = np.isin(transform[a], list(EXTRA)) | np.isin(transform[b], list(EXTRA))
    a, b = a[~extra], b[~extra]
    found = set(zip(a.tolist(), b.tolist()))
    distractor = (photo[a] < 0) | (photo[b] < 0)
    same = (photo[a] == photo[b]) & ~distractor
    result = {"found": len(a), "false": int((~same & ~distractor).sum()), "tiny": int(distractor.sum())}
    result["precision"] = (result["found"] - result["false"] - result["tiny"]) / max(
        1, result["found"] - result["tiny"]
    )
    originals = np.flatnonzero((transform == "") & (photo >= 0))
    recalls = []
    for name in [*TRANSFORMS, *EXTRA]:
        copies = np.flatnonzero(transform == name)
        if name in EXTRA:
            sub = find_pairs_subset(table, originals, copies, settings, matches)
            result[name] = sub
            continue
        hit = [(min(o, c), max(o, c)) in found for o, c in zip(originals, copies)]
        result[name] = float(np.mean(hit))
        recalls.append(result[name])
    result["recall"] = float(np.mean(recalls))
    return result


def find_pairs_subset(table, originals, copies, settings, matches) -> float:
    rows = np.sort(np.concatenate([originals, copies]))
    pairs = find_pairs(table, settings, rows, matches)
    found = set(zip(pairs.left.tolist(), pairs.right.tolist()))
    return float(np.mean([(min(o, c), max(o, c)) in found for o, c in zip(originals, copies)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="add the 5,500 Tiny ImageNet photos as distractors")
    parser.add_argument("--radius", default="6,8,10,12")
    parser.add_argument("--verify", default="10,12,14,16,64")
    args = parser.parse_args()
    if not (SHARED / "imagenet-samples").is_dir():
        sys.exit(f"skipped: {SHARED} is absent (the real photos come with ../shared)")
    images = build(args.tiny)
    photo = np.array([p for p, _, _ in images])
    transform = np.array([t for _, t, _ in images], dtype=object)
    table = hashes_table([(t, d) for _, t, d in images])
    print(f"{(photo >= 0).sum()} images of {len(set(photo[photo >= 0]))} photos, {(photo < 0).sum()} distractors")
    names = [*TRANSFORMS, *EXTRA]
    header = f"{'':<26}{'precision':>10}{'false':>6}{'tiny':>5}{'recall':>8}" + "".join(f"{n[:11]:>12}" for n in names)
    print(header)
    peer = [MATCHES[0]]

    def row(label, result):
        print(
            f"{label:<26}{result['precision']:>10.4f}{result['false']:>6}{result['tiny']:>5}{result['recall']:>8.3f}"
            + "".join(f"{result[n]:>12.3f}" for n in names)
        )

    for radius in (int(r) for r in args.radius.split(",")):
        row(f"pHash alone, radius {radius}", measure(table, photo, transform, DedupeSettings(radius, 64), peer))
        for verify in (int(v) for v in args.verify.split(",")):
            row(f"ours r={radius} verify={verify}", measure(table, photo, transform, DedupeSettings(radius, verify)))


if __name__ == "__main__":
    main()
