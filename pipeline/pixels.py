"""The pixel conventions every stage shares: upright (EXIF orientation applied), 8-bit RGB, and
one limit on the pixels an image may have.

A stage that reads stored or fetched bytes goes through ``decode`` (the pixels) or ``size``
(their upright size, no pixels decoded), so that validate, the exports, the card, the contact
sheet and the baseline see the image the download and the hashes saw: a photo its camera
stored sideways is upright everywhere, a 16-bit PNG is not turned white, a transparent PNG is
composited on white. ``open_bytes`` is the one place bytes are handed to Pillow.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps

ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# Pillow's own decompression-bomb limit (a 0.25 GB RGB bitmap), here the pipeline's: the
# download refuses larger images, so the import, validate and the baseline refuse them too.
MAX_PIXELS = 89_478_485


class TooManyPixels(Image.DecompressionBombError):
    """An image over ``MAX_PIXELS``; a kind of Pillow's bomb error, so handlers of it handle this."""


# What Pillow raises on bytes it cannot decode: its plugins fail with any of these (a truncated
# file is OSError or EOFError, a bad header SyntaxError or ValueError, bad tags IndexError or
# TypeError), and an image over the pixel limit is a DecompressionBombError (TooManyPixels).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, Image.DecompressionBombError)


def open_bytes(data: bytes) -> Image.Image:
    """Encoded bytes opened, their header read and no pixel decoded; an image over MAX_PIXELS is
    refused (``TooManyPixels``) without Pillow's DecompressionBombWarning on stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            limit = 2 * (Image.MAX_IMAGE_PIXELS or MAX_PIXELS)
            raise TooManyPixels(f"more than {limit} pixels: over the limit of {MAX_PIXELS}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise TooManyPixels(f"{width}x{height} is {width * height} pixels: over the limit of {MAX_PIXELS}")
    return image


def orientation(image: Image.Image) -> int:
    """The EXIF Orientation of an opened image (1, upright, when absent); reads no pixels."""
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def upright_size(image: Image.Image) -> tuple[int, int]:
    w, h = image.size
    return (h, w) if orientation(image) in ROTATED else (w, h)


def size(data: bytes) -> tuple[int, int]:
    """The upright (width, height) of encoded bytes, from their header (no pixel decoded)."""
    return upright_size(open_bytes(data))


def upright(image: Image.Image) -> Image.Image:
    """Decode (the first frame of an animation) and apply the EXIF orientation."""
    image.load()
    return ImageOps.exif_transpose(image) if orientation(image) != 1 else image


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: 16- and 32-bit greyscale scaled to the range they use,
    transparency composited on white, CMYK and palettes converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        return Image.fromarray(array.round().astype(np.uint8), "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK (Pillow inverts Adobe CMYK), YCbCr, LAB, HSV


def decode(data: bytes, at_least: tuple[int, int] | None = None) -> Image.Image:
    """Encoded bytes as upright 8-bit RGB pixels: the image every stage shows, crops or checks.

    ``at_least`` (upright width, height): a JPEG may be decoded at a reduced DCT scale that
    keeps it at least that large (a thumbnail or a crop needs no more; several times faster on
    a photo). Raises what Pillow raises for bytes it cannot read, and ``TooManyPixels``."""
    image = open_bytes(data)
    if at_least is not None and image.format == "JPEG":
        width, height = at_least
        if orientation(image) in ROTATED:
            width, height = height, width
        image.draft("RGB", (max(1, width), max(1, height)))
    return to_rgb(upright(image))


def as_jpeg(image: Image.Image, quality: int) -> bytes:
    """RGB pixels encoded as a JPEG (4:2:0, no EXIF: the pixels are already upright)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
