"""The perceptual hash every stage agrees on: imagehash's 64-bit pHash, as a signed int64,
of an image decoded by one rule.

``phash64`` is imagehash.phash's definition (greyscale, LANCZOS to 32x32, 2-D DCT-II,
the 8x8 lowest frequencies against their median, row-major, first bit most significant)
computed with two small matrix products instead of scipy's DCT, so download workers need
neither scipy nor its import time; tests/test_hashing.py checks it bit for bit against
imagehash.

The decoding rule (``decode_for_hash``): a JPEG is decoded at the smallest DCT scale that
keeps both sides at least 64 px (Pillow's draft mode: a quarter of the work for a photo,
and the 32x32 hash input barely changes), greyscale, upright. Every stage hashes through
it, so a hash made by the download stage and one made from a folder of the same files are
equal; dedupe compares them with XOR and popcount.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .pixels import to_rgb, upright

SIZE, BITS = 32, 8
DRAFT_SIDE = 64
# Rows 0..7 of the unnormalised DCT-II matrix (scipy.fftpack.dct's convention): 2 cos(pi k (2n+1) / 2N).
_DCT = 2 * np.cos(np.pi * np.outer(np.arange(BITS), 2 * np.arange(SIZE) + 1) / (2 * SIZE))


def bits_to_int64(bits: np.ndarray) -> int:
    """A boolean 8x8 hash, row-major with the first bit most significant, as a signed 64-bit int."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool).flatten()).tobytes(), "big", signed=True)


def phash64(image: Image.Image) -> int:
    """imagehash.phash of ``image`` exactly as given (no decoding rule applied)."""
    pixels = np.asarray(image.convert("L").resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    # Rounding removes the matrix product's last-bit noise, which would otherwise decide
    # ties that scipy's DCT computes exactly (a flat image's zero AC coefficients).
    low = np.round(_DCT @ pixels @ _DCT.T, 6)
    return bits_to_int64(low > np.median(low))


def decode_for_hash(image: Image.Image) -> Image.Image:
    """Decode an opened, not yet loaded image by the hashing rule. Decoding every byte of the
    entropy-coded data, it also verifies the file."""
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
        image.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
    image = upright(image)
    return image if image.mode in ("L", "RGB") else to_rgb(image)


def phash_of_bytes(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return phash64(decode_for_hash(image))


def hex_of(value: int) -> str:
    """The 16 hex digits ``str(imagehash.phash(...))`` prints for the same hash."""
    return f"{value & ((1 << 64) - 1):016x}"
