"""The perceptual hash every stage agrees on: imagehash's 64-bit pHash, as a signed int64,
of an image decoded by one rule.

``phash64`` is imagehash.phash's definition (greyscale, LANCZOS to 32x32, 2-D DCT-II,
the 8x8 lowest frequencies against their median, row-major, first bit most significant)
computed with small matrix products instead of Pillow's resize and scipy's DCT
(``pipeline.lanczos`` resizes as Pillow does, bit for bit), so download workers need neither
scipy nor its import time; tests/test_hashing.py checks it bit for bit against imagehash.

The decoding rule (``decode_for_hash``): a JPEG is decoded at the smallest DCT scale that
keeps both sides at least 64 px (Pillow's draft mode: a quarter of the work for a photo,
and the 32x32 hash input barely changes), greyscale, upright. Every stage hashes through
it, so a hash made by the download stage and one made from a folder of the same files are
equal; dedupe compares them with XOR and popcount. ``hash_input`` applies it to encoded bytes:
an upright YCbCr or greyscale JPEG (the common case) goes straight to libjpeg-turbo through
simplejpeg, the same scaled decode without Pillow's parsing and buffering (about 40 us of a
photo's 950 in bench/dedupe_speed.py, bit for bit the same pixels: tests/test_hashing.py,
on Pillow 10.1 to 13.0); anything else, or anything libjpeg warns about, goes through Pillow,
which decides. The two libjpeg-turbo builds (Pillow's and simplejpeg's) are compared once per
process on a small probe JPEG (``libjpeg_matches_pillow``); where they differ, every image goes
through Pillow, so that a new Pillow cannot silently change hashes.

``hashes_of`` gives the six hashes dedupe compares (``Hashes``): pHash and dHash of three
views of the image. The mirror view catches flipped copies, which pHash alone never matches
(a flip moves a photo's pHash by about 32 bits); the inner view, the image less a 5% border,
catches cropped copies and steadies rotated ones (corners move most). dHash (imagehash.dhash:
9x8 greyscale, each pixel against its right neighbour) is the second, independent measure
dedupe verifies a pHash match with. The mirror hashes come from the mirrored hash inputs
(32x32 and 9x8), so the three views cost one decode and four small resizes, done together.
"""

from __future__ import annotations

import hashlib
import io
import logging
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import simplejpeg
from PIL import Image

from .lanczos import PILLOW_VERSION, resize_many, resize_sums, round_sums
from .pixels import DECODE_ERRORS, MAX_PIXELS, open_bytes, orientation, to_rgb, upright, upright_size

SIZE, BITS = 32, 8
DRAFT_SIDE = 64
INNER_BORDER = 0.05  # the inner view leaves out this fraction of the width (height) on each side
_HASH_SIZES = [(SIZE, SIZE), (BITS + 1, BITS)] * 2  # (width, height): the whole, then the inner view
# Rows 0..7 of the unnormalised DCT-II matrix (scipy.fftpack.dct's convention): 2 cos(pi k (2n+1) / 2N).
_DCT = 2 * np.cos(np.pi * np.outer(np.arange(BITS), 2 * np.arange(SIZE) + 1) / (2 * SIZE))


def bits_to_int64(bits: np.ndarray) -> int:
    """A boolean 8x8 hash, row-major with the first bit most significant, as a signed 64-bit int."""
    return _ints(np.asarray(bits, dtype=bool).reshape(1, -1))[0]


class Hashes(NamedTuple):
    """The hashes of one image, as signed 64-bit ints; the names are the Parquet columns."""

    phash: int
    phash_mirror: int
    phash_inner: int
    dhash: int
    dhash_mirror: int
    dhash_inner: int


VIEWS = ("", "_mirror", "_inner")  # column suffixes: the whole image, its mirror image, its inner part


def grey_pixels(image: Image.Image) -> np.ndarray:
    """The 8-bit greyscale array the hashes start from (Pillow's "L" conversion)."""
    grey = image if image.mode == "L" else image.convert("L")
    # tobytes and a view: np.asarray's __array_interface__ costs twice as much for a small image
    return np.frombuffer(grey.tobytes(), np.uint8).reshape(grey.height, grey.width)


def _phash_bits(pixels: np.ndarray) -> np.ndarray:
    """pHash bits, (n, 64), of a stack of 32x32 greyscale inputs."""
    # Rounding removes the matrix product's last-bit noise, which would otherwise decide
    # ties that scipy's DCT computes exactly (a flat image's zero AC coefficients).
    low = np.round(_DCT @ pixels @ _DCT.T, 6).reshape(len(pixels), -1)
    middle = np.partition(low, (31, 32), axis=1)  # np.median's two middle values, and its mean of them
    return low > (middle[:, 31:32] + middle[:, 32:33]) / 2


def _dhash_bits(pixels: np.ndarray) -> np.ndarray:
    """dHash bits, (n, 64), of a stack of 8-row, 9-column greyscale inputs."""
    return (pixels[:, :, 1:] > pixels[:, :, :-1]).reshape(len(pixels), -1)


def _ints(bits: np.ndarray) -> list[int]:
    """Each row of a boolean (n, 64) array as a signed 64-bit int (``bits_to_int64``, n at once)."""
    return np.packbits(bits, axis=1).view(">i8").ravel().tolist()


def phash64(image: Image.Image) -> int:
    """imagehash.phash of ``image`` exactly as given (no decoding rule applied)."""
    pixels = grey_pixels(image)
    return _ints(_phash_bits(np.stack(resize_many(pixels, [(SIZE, SIZE)], [(0, 0, *image.size)]))))[0]


def dhash64(image: Image.Image) -> int:
    """imagehash.dhash of ``image`` exactly as given."""
    pixels = grey_pixels(image)
    return _ints(_dhash_bits(np.stack(resize_many(pixels, [(BITS + 1, BITS)], [(0, 0, *image.size)]))))[0]


def inner_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The inner view: the image less INNER_BORDER of its width (height) on each side."""
    dx, dy = round(width * INNER_BORDER), round(height * INNER_BORDER)
    return dx, dy, width - dx, height - dy


def hashes_of(image: Image.Image) -> Hashes:
    """The six hashes of an image decoded by the hashing rule (``decode_for_hash``)."""
    return hashes_of_pixels([grey_pixels(image)])[0]


def hashes_of_pixels(images: list[np.ndarray]) -> list[Hashes]:
    """``hashes_of`` for many images at once, given as ``grey_pixels`` arrays: each image
    costs its resizes, and the rounding, mirroring, DCTs and bit packing are done once for all
    (about half the numpy calls when a folder is hashed 32 files at a time)."""
    n = len(images)
    if not n:
        return []
    big, small = np.empty((n, 3, SIZE, SIZE)), np.empty((n, 3, BITS, BITS + 1))
    for k, pixels in enumerate(images):
        height, width = pixels.shape
        whole, middle = (0, 0, width, height), inner_box(width, height)
        resize_sums(
            pixels, _HASH_SIZES, [whole, whole, middle, middle], [big[k, 0], small[k, 0], big[k, 2], small[k, 2]]
        )
    for views in (big, small):
        round_sums(views[:, 0::2])
        views[:, 1] = views[:, 0, :, ::-1]  # the mirror image's hash input is the mirrored input
    bits = np.concatenate(
        [
            _phash_bits(big.reshape(-1, SIZE, SIZE)).reshape(n, 3, -1),
            _dhash_bits(small.reshape(-1, BITS, BITS + 1)).reshape(n, 3, -1),
        ],
        axis=1,
    )
    ints = _ints(bits.reshape(-1, BITS * BITS))
    return [Hashes(*ints[6 * k : 6 * k + 6]) for k in range(n)]


def decode_for_hash(image: Image.Image) -> Image.Image:
    """Decode an opened, not yet loaded image by the hashing rule. Decoding every byte of the
    entropy-coded data, it also verifies the file."""
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
        image.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
    image = upright(image)
    return image if image.mode in ("L", "RGB") else to_rgb(image)


def draft_scale(width: int, height: int) -> int:
    """The DCT scale denominator of the hashing rule: Pillow's ``draft`` for DRAFT_SIDE."""
    fits = min(width // DRAFT_SIDE, height // DRAFT_SIDE)
    return next((scale for scale in (8, 4, 2) if fits >= scale), 1)


def _has_app1(data: bytes) -> bool:
    """Whether a JPEG's header segments hold an APP1 (EXIF or XMP, which may carry an
    orientation); True too where the segments cannot be walked to the scan."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: no more header segments
            return False
        if marker == 0xE1:
            return True
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return True


def _plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG whose hash input libjpeg-turbo gives straight (greyscale or
    YCbCr, within the pipeline's pixel limit); None for any other bytes."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return None if colorspace not in ("Gray", "YCbCr") or width * height > MAX_PIXELS else (width, height)


def _scaled_grey(data: bytes, width: int, height: int) -> np.ndarray | None:
    """Pillow's draft decode of a plain JPEG (``_plain_jpeg_size``), greyscale at the rule's DCT
    scale, by libjpeg-turbo through simplejpeg; None where libjpeg errs or warns (a truncated
    file), for Pillow's path to decide."""
    return _libjpeg_grey(data, width, height, draft_scale(width, height))


def _libjpeg_grey(data: bytes, width: int, height: int, scale: int) -> np.ndarray | None:
    """A plain JPEG decoded greyscale at DCT scale 1/``scale`` by simplejpeg (``_scaled_grey``)."""
    size = (-(-width // scale), -(-height // scale))
    try:
        pixels = simplejpeg.decode_jpeg(
            data, colorspace="GRAY", min_width=size[0], min_height=size[1], min_factor=scale, strict=True
        )
    except ValueError:
        return None
    return pixels.reshape(size[1], size[0]) if pixels.shape[:2] == size[::-1] else None


def _probe_jpeg() -> tuple[bytes, int, int]:
    """A small colour JPEG (4:2:0, sides not whole MCUs) with its width and height."""
    width, height = 72, 56
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([x * 3, y * 4, (x * y) % 256], axis=-1) ^ ((x * 7919 + y * 104729) % 64)[..., None]
    out = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue(), width, height


@cache
def libjpeg_matches_pillow() -> bool:
    """Whether simplejpeg's decode gives the pixels of Pillow's draft decode on a probe JPEG at
    every DCT scale the hashing rule uses; checked once per process. Where they differ it logs
    one warning and ``hash_input`` decodes through Pillow from then on."""
    data, width, height = _probe_jpeg()
    for scale in (1, 2, 4, 8):
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (-(-width // scale), -(-height // scale)))
            pillows = grey_pixels(image)
        ours = _libjpeg_grey(data, width, height, scale)
        if ours is None or ours.shape != pillows.shape or not (ours == pillows).all():
            logging.getLogger(__name__).warning(
                "Pillow %s decodes JPEGs other than simplejpeg %s: hashing decodes through Pillow (slower)",
                PILLOW_VERSION,
                simplejpeg.__version__,
            )
            return False
    return True


def hash_input(data: bytes) -> tuple[tuple[int, int], np.ndarray]:
    """The upright (width, height) of encoded image bytes and their ``grey_pixels`` by the
    hashing rule. Raises what Pillow raises for bytes it cannot read, and
    ``pixels.TooManyPixels`` for an image over the pixel limit."""
    size = _plain_jpeg_size(data) if libjpeg_matches_pillow() else None
    if size is not None and _has_app1(data):  # EXIF or XMP: Pillow reads the orientation
        with open_bytes(data) as image:
            size = size if orientation(image) == 1 else None
    pixels = None if size is None else _scaled_grey(data, *size)
    return (size, pixels) if pixels is not None else _pillow_input(data)


def _pillow_input(data: bytes) -> tuple[tuple[int, int], np.ndarray]:
    """``hash_input`` through Pillow: any format, rotation and colour space, its errors raised
    (``pixels.TooManyPixels`` over the pixel limit)."""
    with open_bytes(data) as image:
        return upright_size(image), grey_pixels(decode_for_hash(image))


def grey_of_bytes(data: bytes) -> np.ndarray:
    """The ``grey_pixels`` of encoded image bytes, decoded by the hashing rule."""
    return hash_input(data)[1]


def hashes_of_bytes(data: bytes) -> Hashes:
    return hashes_of_pixels([grey_of_bytes(data)])[0]


def hex_of(value: int) -> str:
    """The 16 hex digits ``str(imagehash.phash(...))`` prints for the same hash."""
    return f"{value & ((1 << 64) - 1):016x}"


# Files: what the dedupe stage hashes in a folder and the import stage brings into the store.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
FILES_PER_BATCH = 32  # files a worker process is sent at a time, decoded one by one and hashed together


def hash_files(paths: list[Path]) -> list[tuple | str]:
    """For each image file, (sha256, width, height, Hashes), or why it could not be read.
    The files are decoded one by one, then hashed together (``hashes_of_pixels``)."""
    read: list[tuple | str] = []
    for path in paths:
        try:
            data = path.read_bytes()
            (width, height), pixels = hash_input(data)
        except DECODE_ERRORS as e:
            read.append(f"{type(e).__name__}: {e}")
            continue
        read.append((hashlib.sha256(data).hexdigest(), width, height, pixels))
    hashes = iter(hashes_of_pixels([r[3] for r in read if not isinstance(r, str)]))
    return [r if isinstance(r, str) else (*r[:3], next(hashes)) for r in read]


def hash_file(path: Path) -> tuple | str:
    """``hash_files`` of one file."""
    return hash_files([path])[0]
