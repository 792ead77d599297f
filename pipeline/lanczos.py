"""Pillow's 8-bit LANCZOS resize, bit for bit, as numpy matrix products.

The hashes need four small resizes of one decoded image (32x32 and 9x8, of the whole and
of its inner part). Four ``Image.resize`` calls cost about 230 us, more than the rest of
the hashing once the JPEG is decoded; here the coefficient matrices are cached per size
(about 50 us each to build, so a folder of many sizes pays that once per size), side by
side in one plan per image size (``_plan``), and the four outputs come from one product
over the image and four small ones: about 50 us for a 125x94 draft-decoded photo.

Exactness follows Pillow's ``libImaging/Resample.c``: coefficients are computed in double
precision (the truncated sinc, normalised by their sum taken in order), rounded to fixed
point with 22 fractional bits, and each pass adds half a unit, shifts and clips to 0..255,
the first pass rounded to 8 bits before the second. Which pass comes first is Pillow's
choice (``vertical_first``). The matrices are kept scaled by 2**-22 (exact: a power of
two), so every product is a multiple of 2**-22 below 2**31, which float64 holds exactly
whatever the order of the sums. tests/test_lanczos.py compares with ``Image.resize`` on
hundreds of sizes and crops, both pass orders, on Pillow 10.1 to 13.0.

A Pillow whose Resample.c rounds otherwise must not silently change every hash, so the first
resize of a process compares the matrices with ``Image.resize`` on a small probe
(``matches_pillow``, one to two milliseconds) and, where they differ, resizes through Pillow.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image
from PIL import __version__ as PILLOW_VERSION

PRECISION_BITS = 22  # 32 - 8 - 2, as Resample.c
SUPPORT = 3.0  # LANCZOS: sinc windowed by sinc(x/3) on [-3, 3)
_UNIT = 1.0 / (1 << PRECISION_BITS)
_PILLOW_13 = int(PILLOW_VERSION.split(".")[0]) >= 13


def _lanczos(x: np.ndarray) -> np.ndarray:
    """sinc(x) * sinc(x / 3), each sinc as Resample.c computes it: sin(x * pi) / (x * pi)."""
    safe = np.where(x == 0.0, 1.0, x)
    near, far = safe * np.pi, (safe / 3) * np.pi
    values = (np.sin(near) / near) * (np.sin(far) / far)
    values[x == 0.0] = 1.0
    return values


@lru_cache(maxsize=4096)
def coefficients(in_size: int, out_size: int, start: int = 0, length: int | None = None) -> np.ndarray:
    """The fixed-point matrix (out_size x in_size, integer-valued float64) that resizes the
    pixels ``start .. start+length`` of a line of ``in_size`` to ``out_size``: the crop of
    that range, then Pillow's resize of the crop. Built from each output's taps only."""
    length = in_size - start if length is None else length
    scale = length / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    centers = (np.arange(out_size) + 0.5) * scale
    lo = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centers + support + 0.5).astype(np.int64), length)
    taps = lo[:, None] + np.arange(int(np.ceil(support)) * 2 + 1)  # Resample.c's ksize
    arg = ((taps - centers[:, None]) + 0.5) * (1.0 / filterscale)
    used = (taps < hi[:, None]) & (arg >= -SUPPORT) & (arg < SUPPORT)
    weights = np.zeros(taps.shape)
    weights[used] = _lanczos(arg[used])
    total = np.cumsum(weights, axis=1)[:, -1:]  # summed in order, as the C loop does
    weights = np.divide(weights, total, out=weights, where=total != 0.0)
    fixed = np.trunc(weights * (1 << PRECISION_BITS) + np.where(weights < 0, -0.5, 0.5))
    matrix = np.zeros((out_size, in_size))
    rows = np.broadcast_to(np.arange(out_size)[:, None], taps.shape)
    matrix[rows[used], start + taps[used]] = fixed[used]
    matrix.setflags(write=False)
    return matrix


def round_sums(sums: np.ndarray) -> np.ndarray:
    """Resample.c's ``clip8((sum + half) >> 22)``, in place, on sums already scaled by 2**-22."""
    np.add(sums, 0.5, out=sums)
    np.floor(sums, out=sums)
    np.maximum(sums, 0.0, out=sums)
    return np.minimum(sums, 255.0, out=sums)


def vertical_first(width: int, height: int, out_width: int, out_height: int) -> bool:
    """Pillow 13 runs the vertical pass first when the height shrinks by over twice as many
    pixels as the width (python-pillow/Pillow#9549); the pass order decides the rounding."""
    return _PILLOW_13 and out_height < height and height - out_height > 2 * (width - out_width)


class _Plan(NamedTuple):
    """The cached products of ``resize_sums`` for one image size, sizes and boxes: for each
    pass order, the first pass's matrices side by side (so one product serves every output)
    and, per output, its slice of that product and its second matrix."""

    across: np.ndarray | None  # (width, sum of out widths): image @ across
    across_outputs: tuple[tuple[int, slice, np.ndarray], ...]  # second pass: matrix @ rows[:, part]
    down: np.ndarray | None  # (sum of out heights, height): down @ image
    down_outputs: tuple[tuple[int, slice, np.ndarray], ...]  # second pass: columns[part] @ matrix


def _stacked(jobs: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray | None, tuple]:
    """The first-pass matrices of ``jobs`` (output index, first, second) one above the other,
    and for each job its output index, its rows of that stack and its second matrix."""
    if not jobs:
        return None, ()
    outputs, start = [], 0
    for i, first, second in jobs:
        outputs.append((i, slice(start, start + len(first)), second))
        start += len(first)
    return np.concatenate([first for _, first, _ in jobs]), tuple(outputs)


@lru_cache(maxsize=1024)
def _plan(width: int, height: int, sizes: tuple, boxes: tuple) -> _Plan:
    # Scaled by 2**-22, the fixed-point matrices stay exact (a power of two), and each pass
    # ends in one add, floor and clip.
    across_first, down_first = [], []
    for i, ((out_w, out_h), (left, top, right, bottom)) in enumerate(zip(sizes, boxes)):
        across = coefficients(width, out_w, left, right - left) * _UNIT
        down = coefficients(height, out_h, top, bottom - top) * _UNIT
        if vertical_first(right - left, bottom - top, out_w, out_h):
            down_first.append((i, down, np.ascontiguousarray(across.T)))
        else:
            across_first.append((i, across, down))
    across, across_outputs = _stacked(across_first)
    down, down_outputs = _stacked(down_first)
    return _Plan(None if across is None else np.ascontiguousarray(across.T), across_outputs, down, down_outputs)


def resize_sums(
    pixels: np.ndarray, sizes: list[tuple[int, int]], boxes: list[tuple[int, int, int, int]], out: list[np.ndarray]
) -> None:
    """``resize_many`` into ``out`` (float64 arrays of the sizes, (height, width)), all but the
    last rounding: ``round_sums`` finishes them, so a caller with many images rounds once."""
    if matches_pillow():
        _matrix_sums(pixels, sizes, boxes, out)
    else:
        _pillow_resizes(pixels, sizes, boxes, out)


def _matrix_sums(
    pixels: np.ndarray, sizes: list[tuple[int, int]], boxes: list[tuple[int, int, int, int]], out: list[np.ndarray]
) -> None:
    """``resize_sums`` by the cached matrices."""
    height, width = pixels.shape
    plan = _plan(width, height, tuple(sizes), tuple(boxes))
    image = pixels.astype(np.float64)
    if plan.across is not None:
        rows = round_sums(image @ plan.across)
        for i, part, down in plan.across_outputs:
            np.matmul(down, rows[:, part], out=out[i])
    if plan.down is not None:
        columns = round_sums(plan.down @ image)
        for i, part, across in plan.down_outputs:
            np.matmul(columns[part], across, out=out[i])


def resize_many(
    pixels: np.ndarray, sizes: list[tuple[int, int]], boxes: list[tuple[int, int, int, int]]
) -> list[np.ndarray]:
    """``Image.fromarray(pixels).crop(box).resize(size, LANCZOS)`` for each size and box,
    as float64 arrays; ``pixels`` is a 2-D uint8 (greyscale) array. The outputs whose
    horizontal pass comes first share one product over the image, the others another."""
    out = [np.empty((h, w)) for w, h in sizes]
    resize_sums(pixels, sizes, boxes, out)
    return [round_sums(o) for o in out]


def _pillow_resizes(
    pixels: np.ndarray, sizes: list[tuple[int, int]], boxes: list[tuple[int, int, int, int]], out: list[np.ndarray]
) -> None:
    """``resize_sums`` by ``Image.resize`` itself, already rounded (``round_sums`` keeps them)."""
    image = Image.fromarray(pixels)
    for (width, height), box, sums in zip(sizes, boxes, out):
        resized = image.crop(box).resize((width, height), Image.Resampling.LANCZOS)
        sums[...] = np.frombuffer(resized.tobytes(), np.uint8).reshape(height, width)


# The probe: (width, height) of noise images (every value 0..255, so the clipping too), each
# resized whole to the hash sizes and less a border to one of them. The wide one halves its
# width, the size where negative weights rounded as positive ones (trunc(k + 0.5)) show on any
# pixels; the tall one, vertical pass first on Pillow 13, shrinks its height and enlarges its width.
_PROBE_IMAGES = ((64, 48), (23, 61))
_PROBE_SIZES = [(32, 32), (9, 8), (9, 8)]


def _noise(width: int, height: int) -> np.ndarray:
    """Fixed pseudo-random pixels, the top byte of Knuth's multiplicative hash of their index
    (numpy.random's first use costs more than the whole probe)."""
    n = np.arange(width * height, dtype=np.uint64)
    return ((n * 2654435761 % 2**32) >> 24).astype(np.uint8).reshape(height, width)


@cache
def matches_pillow() -> bool:
    """Whether the matrices give this Pillow's LANCZOS resizes on a small probe; checked once
    per process. Where they differ it logs one warning and ``resize_sums`` resizes through
    Pillow from then on."""
    for width, height in _PROBE_IMAGES:
        pixels = _noise(width, height)
        boxes = [(0, 0, width, height)] * 2 + [(1, 1, width - 1, height - 1)]
        ours, pillows = ([np.empty((h, w)) for w, h in _PROBE_SIZES] for _ in range(2))
        _matrix_sums(pixels, _PROBE_SIZES, boxes, ours)
        _pillow_resizes(pixels, _PROBE_SIZES, boxes, pillows)
        if not all(np.array_equal(round_sums(a), b) for a, b in zip(ours, pillows)):
            logging.getLogger(__name__).warning(
                "Pillow %s resizes other than pipeline.lanczos's matrices: hashing resizes through Pillow (slower)",
                PILLOW_VERSION,
            )
            return False
    return True
