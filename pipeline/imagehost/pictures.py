"""The image bytes the local host serves: class pictures, near copies, odd formats, a bomb.

Every picture of a class shares a look read off a hash of its wnid (two hues, a shape kind,
a background texture), so a small CNN learns to tell classes apart; the variant number moves,
sizes, counts and rotates the shapes and picks the sensor-like grain, so no two variants are
the same image. Everything is deterministic: the same arguments give the same bytes in every
process, which is what lets tests and benchmarks name a picture by its URL alone.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

WIDTH, HEIGHT = 500, 375
QUALITY = 90
MAX_SIDE = 2048  # a larger ?w= or ?h= is refused: one request should not cost gigabytes

SHAPES = ("discs", "rings", "squares", "triangles", "stripes", "crosses", "stars", "hexagons")
TEXTURES = ("waves", "checks", "ripples", "gradient", "clouds")

# Grain amplitude (in 8-bit levels) that puts a 500x375 picture at about 110 KB as JPEG q90.
GRAIN = 25.0

# Near copies: each edge loses up to this fraction, brightness moves by up to this much.
COPY_CROP = 0.008
COPY_BRIGHTNESS = 0.06
COPY_QUALITIES = (72, 78, 84, 95)

BOMB_SIDE = 30_000

# A shape showing less than this share of a picture, or fewer pixels, has no true box.
MIN_VISIBLE = 0.005
MIN_VISIBLE_PIXELS = 64


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from a stable hash (Python's ``hash`` changes between processes)."""
    return np.random.default_rng(int.from_bytes(_digest(*parts)[:8], "big"))


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32) * 255


@dataclass(frozen=True)
class Style:
    """What every picture of one class shares."""

    background: np.ndarray  # the texture blends these two RGB colours
    backdrop: np.ndarray
    ink: np.ndarray  # the shapes' RGB colour
    shape: str
    texture: str
    frequency: float  # texture cycles across the picture
    count: int  # typical number of shapes


@lru_cache(maxsize=1024)
def style_of(wnid: str) -> Style:
    d = _digest("style", wnid)
    hue = d[0] / 256
    return Style(
        background=_rgb(hue, 0.35 + d[1] / 640, 0.55 + d[2] / 640),
        backdrop=_rgb(hue + 0.08, 0.55 + d[3] / 640, 0.25 + d[4] / 640),
        ink=_rgb(hue + 0.33 + d[5] / 768, 0.65 + d[6] / 1024, 0.7 + d[7] / 1024),
        shape=SHAPES[d[8] % len(SHAPES)],
        texture=TEXTURES[d[9] % len(TEXTURES)],
        frequency=2 + d[10] % 7,
        count=3 + d[11] % 8,
    )


def _texture(style: Style, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A (height, width) field in [0, 1] that blends the two background colours."""
    y, x = np.ogrid[0 : 1 : complex(0, height), 0 : width / height : complex(0, width)]
    x, y = x.astype(np.float32), y.astype(np.float32)
    angle = rng.uniform(0, math.pi)
    along = x * math.cos(angle) + y * math.sin(angle)
    phase = rng.uniform(0, 2 * math.pi)
    cycles = style.frequency * rng.uniform(0.8, 1.25)
    if style.texture == "waves":
        return 0.5 + 0.5 * np.sin(2 * math.pi * cycles * along + phase)
    if style.texture == "checks":
        across = -x * math.sin(angle) + y * math.cos(angle)
        return ((np.floor(cycles * along) + np.floor(cycles * across)) % 2) * 0.8 + 0.1
    if style.texture == "ripples":
        cx, cy = rng.uniform(0, width / height), rng.uniform(0, 1)
        return 0.5 + 0.5 * np.sin(2 * math.pi * cycles * np.hypot(x - cx, y - cy) + phase)
    if style.texture == "gradient":
        return np.clip(along / (along.max() or 1), 0, 1)
    coarse = rng.random((int(cycles) + 2, int(cycles * width / height) + 2), dtype=np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.BICUBIC)).clip(0, 1)


def _polygon(cx: float, cy: float, radii: tuple[float, ...], corners: int, turn: float) -> list:
    """A polygon of ``corners`` vertices turned by ``turn``, their distances from the centre
    cycling through ``radii`` (one radius: a regular polygon; two: a star)."""
    return [
        (
            cx + radii[i % len(radii)] * math.cos(turn + 2 * math.pi * i / corners),
            cy + radii[i % len(radii)] * math.sin(turn + 2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]


def _bar(cx: float, cy: float, length: float, thickness: float, turn: float) -> list:
    """A rotated rectangle centred on (cx, cy)."""
    c, s = math.cos(turn), math.sin(turn)
    half = [
        (length / 2, thickness / 2),
        (-length / 2, thickness / 2),
        (-length / 2, -thickness / 2),
        (length / 2, -thickness / 2),
    ]
    return [(cx + u * c - v * s, cy + u * s + v * c) for u, v in half]


@dataclass(frozen=True)
class Shape:
    """One instance of the class's shape: the Pillow calls that paint it, and its colour.

    ``parts`` holds ``("ellipse", bounds, outline_width)`` (0: filled) and
    ``("polygon", points, 0)``; the picture and the instance mask paint the same parts, so
    the mask's pixels are the picture's ink pixels (Pillow's drawing is not antialiased)."""

    parts: tuple
    fill: tuple[int, int, int]


def _shapes(style: Style, rng: np.random.Generator, width: int, height: int) -> list[Shape]:
    """The picture's shapes, in painting order (a later one covers an earlier one)."""
    scale = min(width, height)
    count = max(1, style.count + int(rng.integers(-2, 3)))
    stripe_turn = rng.uniform(0, math.pi)  # stripes in one picture run parallel
    shapes = []
    for _ in range(count):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = scale * rng.uniform(0.06, 0.2)
        turn = rng.uniform(0, 2 * math.pi)
        fill = tuple(int(v) for v in np.clip(style.ink * rng.uniform(0.75, 1.15), 0, 255))
        disc = (cx - radius, cy - radius, cx + radius, cy + radius)
        if style.shape == "discs":
            parts = [("ellipse", disc, 0)]
        elif style.shape == "rings":
            parts = [("ellipse", disc, max(2, int(radius / 3)))]
        elif style.shape == "squares":
            parts = [("polygon", _polygon(cx, cy, (radius,), 4, turn), 0)]
        elif style.shape == "triangles":
            parts = [("polygon", _polygon(cx, cy, (radius,), 3, turn), 0)]
        elif style.shape == "hexagons":
            parts = [("polygon", _polygon(cx, cy, (radius,), 6, turn), 0)]
        elif style.shape == "stars":
            parts = [("polygon", _polygon(cx, cy, (radius * 1.2, radius * 0.5), 10, turn), 0)]
        elif style.shape == "crosses":
            parts = [
                ("polygon", _bar(cx, cy, 2 * radius, radius / 2, turn), 0),
                ("polygon", _bar(cx, cy, 2 * radius, radius / 2, turn + math.pi / 2), 0),
            ]
        else:  # stripes: bars right across the picture
            parts = [("polygon", _bar(cx, cy, 3 * max(width, height), radius / 2, stripe_turn), 0)]
        shapes.append(Shape(tuple(parts), fill))
    return shapes


def _paint(draw: ImageDraw.ImageDraw, shape: Shape, fill: object) -> None:
    for kind, xy, outline in shape.parts:
        if kind == "ellipse" and outline:
            draw.ellipse(xy, outline=fill, width=outline)
        elif kind == "ellipse":
            draw.ellipse(xy, fill=fill)
        else:
            draw.polygon(xy, fill=fill)


@lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    """Fixed gaussian grain that pictures take windows of: far cheaper than fresh noise each time."""
    return np.random.default_rng(0).normal(0, GRAIN, (1024, 1024, 3)).astype(np.float32)


def _grain(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    tile = _grain_tile()
    reps = (-(-height // 1024), -(-width // 1024), 1)
    if reps != (1, 1, 1):
        tile = np.tile(tile, reps)
    top = int(rng.integers(0, tile.shape[0] - height + 1))
    left = int(rng.integers(0, tile.shape[1] - width + 1))
    return tile[top : top + height, left : left + width]


def _scene(wnid: str, variant: int, width: int, height: int) -> tuple[np.random.Generator, np.ndarray, list[Shape]]:
    """The random draws of a picture in the order ``render`` makes them: the texture field and
    the shapes; the generator is left where the grain's draw comes next."""
    style = style_of(wnid)
    rng = _rng("picture", wnid, variant)
    blend = _texture(style, rng, width, height)
    return rng, blend, _shapes(style, rng, width, height)


def render(wnid: str, variant: int, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """The RGB picture ``variant`` of class ``wnid``."""
    style = style_of(wnid)
    rng, blend, shapes = _scene(wnid, variant, width, height)
    pixels = style.backdrop * (1 - blend[..., None]) + style.background * blend[..., None]
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _paint(draw, shape, shape.fill)
    grainy = np.asarray(image, dtype=np.float32) + _grain(rng, width, height)
    return Image.fromarray(grainy.clip(0, 255).astype(np.uint8), "RGB")


def instance_mask(wnid: str, variant: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Which shape each pixel of picture ``variant`` shows: a (height, width) uint8 array, 0
    for the background and k for the k-th shape painted (1-based), where it was not covered."""
    _, _, shapes = _scene(wnid, variant, width, height)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for number, shape in enumerate(shapes, start=1):
        _paint(draw, shape, number)
    return np.asarray(mask)


def _copy_crop(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    """The part of a ``width`` x ``height`` picture a near copy keeps: (left, top, right, bottom)."""
    left, right = (int(width * f) for f in rng.uniform(0.002, COPY_CROP, 2))
    top, bottom = (int(height * f) for f in rng.uniform(0.002, COPY_CROP, 2))
    return left, top, width - right, height - bottom


def near_copy(image: Image.Image, copy: int, key: object) -> tuple[Image.Image, int]:
    """Copy number ``copy`` of ``image``: cropped by a few %, brightened or darkened a little,
    and the JPEG quality to re-encode it at, as a re-upload elsewhere on the web would be."""
    rng = _rng("copy", key, copy)
    cropped = image.crop(_copy_crop(rng, *image.size))
    factor = 1 + rng.choice((-1, 1)) * rng.uniform(0.02, COPY_BRIGHTNESS)
    return ImageEnhance.Brightness(cropped).enhance(factor), COPY_QUALITIES[copy % len(COPY_QUALITIES)]


def encode(image: Image.Image, format: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **params)
    return out.getvalue()


def _copy_key(wnid: str, variant: int, width: int, height: int) -> tuple:
    """What seeds the near copies of a picture."""
    return wnid, variant, width, height


@lru_cache(maxsize=2048)  # ~250 MB of 500x375 pictures; a benchmark's working set fits
def picture_jpeg(wnid: str, variant: int, width: int = WIDTH, height: int = HEIGHT, copy: int = 0) -> bytes:
    """The JPEG bytes of a picture, or of its near copy ``copy`` (>= 1)."""
    image = render(wnid, variant, width, height)
    quality = QUALITY
    if copy:
        image, quality = near_copy(image, copy, _copy_key(wnid, variant, width, height))
    return encode(image, "JPEG", quality=quality)


@lru_cache(maxsize=4096)
def true_boxes(
    wnid: str, variant: int, width: int = WIDTH, height: int = HEIGHT, copy: int = 0
) -> tuple[tuple[int, int], tuple[tuple[int, int, int, int], ...]]:
    """The served picture's size and the box of each shape's visible part, in painting order.

    What a careful annotator would box: the pixels each shape still shows after the later
    shapes covered it and the picture's edges (and a near copy's crop) cut it, as
    (xmin, ymin, xmax, ymax) in ``pipeline.boxes``' convention. A shape showing fewer than
    ``MIN_VISIBLE`` of the picture's pixels, or fewer than ``MIN_VISIBLE_PIXELS``, is left
    out: nobody could box it."""
    mask = instance_mask(wnid, variant, width, height)
    if copy:
        left, top, right, bottom = _copy_crop(
            _rng("copy", _copy_key(wnid, variant, width, height), copy), width, height
        )
        mask = mask[top:bottom, left:right]
    rows, columns = mask.shape
    least = max(MIN_VISIBLE_PIXELS, MIN_VISIBLE * rows * columns)
    boxes = []
    for number, shown in enumerate(np.bincount(mask.ravel())):
        if number == 0 or shown < least:
            continue
        inside = mask == number
        ys, xs = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        boxes.append((int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1))
    return (columns, rows), tuple(boxes)


FAULT_CLASS = "fault"  # the look of pictures served by fault and format routes


def token_variant(token: str) -> int:
    return zlib.crc32(token.encode())


def token_picture(token: str) -> bytes:
    """The JPEG a fault route serves for the URL token ``token``."""
    return picture_jpeg(FAULT_CLASS, token_variant(token))


def _exif_rotated(image: Image.Image) -> bytes:
    """The picture stored turned a quarter left, with EXIF Orientation 6 to turn it upright."""
    upright = image.resize((image.height, image.width))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=QUALITY, exif=exif.tobytes())


def _palette_alpha(image: Image.Image) -> bytes:
    paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(paletted, "PNG", transparency=0)


def _rgba(image: Image.Image) -> bytes:
    alpha = Image.linear_gradient("L").resize(image.size)
    rgba = image.copy()
    rgba.putalpha(alpha)
    return encode(rgba, "PNG")


def _gray16(image: Image.Image) -> bytes:
    levels = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(levels), "PNG")  # a uint16 array is mode I;16


def _gif(image: Image.Image) -> bytes:
    frames = [image.rotate(angle).convert("P", palette=Image.Palette.ADAPTIVE) for angle in (0, 120, 240)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


# kind -> (Content-Type, bytes of the token's picture in that form)
FORMATS = {
    "cmyk": ("image/jpeg", lambda im: encode(im.convert("CMYK"), "JPEG", quality=QUALITY)),
    "palette": ("image/png", lambda im: encode(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")),
    "palette-alpha": ("image/png", _palette_alpha),
    "rgba": ("image/png", _rgba),
    "gray": ("image/jpeg", lambda im: encode(im.convert("L"), "JPEG", quality=QUALITY)),
    "gray16": ("image/png", _gray16),
    "exif-rotated": ("image/jpeg", _exif_rotated),
    "png": ("image/png", lambda im: encode(im, "PNG")),
    "webp": ("image/webp", lambda im: encode(im, "WEBP", quality=QUALITY)),
    "gif": ("image/gif", _gif),
    "tiny": ("image/jpeg", lambda im: encode(im.resize((16, 12)), "JPEG", quality=QUALITY)),
    "bmp": ("image/bmp", lambda im: encode(im, "BMP")),
    "tiff": ("image/tiff", lambda im: encode(im, "TIFF")),
}


@lru_cache(maxsize=256)
def format_picture(kind: str, token: str) -> bytes:
    """The token's picture in format ``kind`` (a key of ``FORMATS``)."""
    return FORMATS[kind][1](render(FAULT_CLASS, token_variant(token)))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@lru_cache(maxsize=1)
def bomb_png() -> bytes:
    """A valid 30000x30000 8-bit greyscale PNG of black pixels, under 1 MB on the wire.

    Compressing 900 MB of zeros takes seconds, so one block of rows is deflated once with a
    full flush (which resets the compressor, making the block's bytes independent of what came
    before) and repeated; an empty final block ends the stream. The zlib checksum of n zero
    bytes is Adler-32 with A = 1 and B = n mod 65521.
    """
    row = BOMB_SIDE + 1  # the filter-type byte (0, none) and the pixels, all zero
    rows_per_block = 1000
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(row * rows_per_block)) + deflate.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    adler = ((row * BOMB_SIDE) % 65521) << 16 | 1
    stream = b"\x78\xda" + block * (BOMB_SIDE // rows_per_block) + final + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b"")
