"""Decide what fetched bytes are, decode them fully and normalise them into a stored image.

The type comes from the bytes (servers label HTML pages ``image/jpeg`` and JPEGs
``text/plain``); Pillow decodes every pixel, so a truncated file never reaches the store;
every image becomes upright 8-bit RGB, optionally no larger than ``max_side``, and is
stored as JPEG unless the original bytes already are exactly that (or ``keep_original``).
The hashes (``pipeline.hashing.Hashes``) follow its decoding rule, from the stored bytes;
``normalise`` gives their input, the greyscale pixels, and the caller hashes many images at
once (``hashes_of_pixels``; a download worker hashing a row group at once instead of each
image alone spent about a tenth less CPU per image).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.hashing import grey_of_bytes
from pipeline.pixels import DECODE_ERRORS, MAX_PIXELS, orientation, to_rgb, upright, upright_size

from . import status

# Leading bytes of the formats we accept, as Pillow names them.
MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


@dataclass(frozen=True)
class Normalise:
    """How fetched images become stored images; part of the download stage's settings."""

    max_side: int = 500  # longer side at most this many pixels (ILSVRC-like); 0 keeps the size
    min_side: int = 32  # shorter side below this is too_small
    quality: int = 90  # JPEG quality of re-encoded images
    keep_original: bool = False  # store the fetched bytes as they are
    max_pixels: int = MAX_PIXELS  # the one limit every stage that reads pixels applies


@dataclass(frozen=True)
class Stored:
    data: bytes
    sha256: str
    width: int
    height: int
    format: str
    grey: np.ndarray  # the hashes' input: ``grey_pixels`` of the stored bytes by the hashing rule
    original_width: int
    original_height: int
    original_format: str


class Rejected(Exception):
    """The bytes are not an image we keep; ``status`` is the ledger status."""

    def __init__(self, status_: str, message: str):
        self.status = status_
        super().__init__(message)


def sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in MAGIC if data.startswith(magic)), None)


def normalise(data: bytes, rule: Normalise) -> Stored:
    fmt = sniff(data)
    if fmt is None:
        head = data[:16].decode("latin-1").encode("unicode_escape").decode()
        raise Rejected(status.NOT_AN_IMAGE, f"{len(data)} bytes starting {head!r}" if data else "empty body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            if image.width * image.height > rule.max_pixels:
                raise Rejected(
                    status.DECOMPRESSION_BOMB, f"{image.width}x{image.height} is over {rule.max_pixels} pixels"
                )
            size = upright_size(image)
            if min(size) < rule.min_side:
                raise Rejected(status.TOO_SMALL, f"{size[0]}x{size[1]} is below {rule.min_side} px")
            resize = bool(rule.max_side) and max(size) > rule.max_side and not rule.keep_original
            if rule.keep_original or (fmt == "JPEG" and image.mode == "RGB" and orientation(image) == 1 and not resize):
                # The stored bytes are the fetched ones: the hashing decode is the verification.
                stored, stored_fmt, stored_size = data, fmt, size
            else:
                pixels = _decode_rgb(image, rule.max_side * 2 if resize else 0)
                if resize:
                    scale = rule.max_side / max(pixels.size)
                    pixels = pixels.resize(
                        (max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale))),
                        Image.Resampling.LANCZOS,
                    )
                buffer = io.BytesIO()
                pixels.save(buffer, "JPEG", quality=rule.quality)
                stored, stored_fmt, stored_size = buffer.getvalue(), "JPEG", pixels.size
            grey = grey_of_bytes(stored)
    except Image.DecompressionBombError as e:
        raise Rejected(status.DECOMPRESSION_BOMB, str(e)) from None
    except Rejected:
        raise
    except DECODE_ERRORS as e:  # a bomb was caught above, as its own status
        raise Rejected(status.DECODE_ERROR, f"{fmt}: {e}") from None
    return Stored(
        data=stored,
        sha256=hashlib.sha256(stored).hexdigest(),
        width=stored_size[0],
        height=stored_size[1],
        format=stored_fmt,
        grey=grey,
        original_width=size[0],
        original_height=size[1],
        original_format=fmt,
    )


def _decode_rgb(image: Image.Image, at_least: int) -> Image.Image:
    """Decode fully, upright, 8-bit RGB. A JPEG that will be shrunk is decoded at the smallest
    DCT scale still ``at_least`` px on its longer side: exact enough for LANCZOS, and several
    times faster on large photos."""
    if image.format == "JPEG" and at_least and max(image.size) > at_least:
        scale = at_least / max(image.size)
        image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
    return to_rgb(upright(image))
