"""The perceptual hash every stage agrees on: imagehash's 64-bit pHash as a signed int64.

The download stage computes it from the image it has just decoded; dedupe compares these
integers with XOR and popcount, so both must use exactly this definition.
"""
from __future__ import annotations

import imagehash
from PIL import Image


def bits_to_int64(bits) -> int:
    """imagehash's bit order (row-major, first bit most significant) as a signed 64-bit int."""
    value = 0
    for bit in bits.flatten():
        value = (value << 1) | int(bit)
    return value - (1 << 64) if value >= 1 << 63 else value


def phash64(image: Image.Image) -> int:
    return bits_to_int64(imagehash.phash(image).hash)


def hex_of(value: int) -> str:
    """The 16-digit hex that ``str(imagehash.phash(...))`` prints for the same hash."""
    return f"{value & ((1 << 64) - 1):016x}"
