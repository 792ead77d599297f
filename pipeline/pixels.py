"""The pixel conventions every stage shares: upright (EXIF orientation applied), 8-bit RGB."""

from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image, ImageOps

ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def orientation(image: Image.Image) -> int:
    """The EXIF Orientation of an opened image (1, upright, when absent); reads no pixels."""
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def upright_size(image: Image.Image) -> tuple[int, int]:
    w, h = image.size
    return (h, w) if orientation(image) in ROTATED else (w, h)


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
