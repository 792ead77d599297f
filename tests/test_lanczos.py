"""pipeline.lanczos resizes exactly as Pillow's Image.resize(LANCZOS) does, crop included, on
random and smooth pixels, shrinking and enlarging, wide and tall (either pass order); and where
its matrices do not, it finds out on its probe and resizes through Pillow."""

from __future__ import annotations

import io
import logging

import imagehash
import numpy as np
import pytest
from PIL import Image

from pipeline import lanczos
from pipeline.hashing import bits_to_int64, dhash64, hashes_of, phash64
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.lanczos import PILLOW_VERSION, matches_pillow, resize_many, vertical_first


def test_resize_many_equals_pillow_bit_for_bit():
    rng = np.random.default_rng(0)
    orders = set()
    for trial in range(600):
        width, height = (int(v) for v in rng.integers(3, 300, size=2))
        if trial % 2:
            pixels = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
        else:
            pixels = (rng.random((height, width)).cumsum(0).cumsum(1) % 256).astype(np.uint8)
        image = Image.fromarray(pixels)
        dx, dy = round(width * 0.05), round(height * 0.05)
        sizes = [(32, 32), (9, 8), (32, 32), (9, 8), tuple(int(v) for v in rng.integers(1, 80, size=2))]
        boxes = [(0, 0, width, height)] * 2 + [(dx, dy, width - dx, height - dy)] * 2 + [(0, 0, width, height)]
        for size, box, ours in zip(sizes, boxes, resize_many(pixels, sizes, boxes)):
            expected = np.asarray(image.crop(box).resize(size, Image.Resampling.LANCZOS))
            assert np.array_equal(ours, expected), (width, height, size, box)
            orders.add(vertical_first(box[2] - box[0], box[3] - box[1], *size))
    assert orders == {True, False} or int(Image.__version__.split(".")[0]) < 13


@pytest.fixture
def fresh_probe():
    """The probe runs anew in the test, and again for the tests after it."""
    matches_pillow.cache_clear()
    yield
    matches_pillow.cache_clear()


def test_the_matrices_match_this_pillow_on_the_probe(fresh_probe, caplog):
    assert matches_pillow()
    assert not caplog.records


def test_matrices_unlike_pillows_resize_make_resizes_and_hashes_go_through_pillow(fresh_probe, monkeypatch, caplog):
    """One output pixel off by one on the probe: one warning naming the Pillow version, then
    Pillow's resizes and imagehash's hashes, whatever the matrices give."""
    exact = lanczos._matrix_sums

    def off_by_one(pixels, sizes, boxes, out):
        exact(pixels, sizes, boxes, out)
        out[-1][0, 0] += 1.0

    monkeypatch.setattr(lanczos, "_matrix_sums", off_by_one)
    image = Image.open(io.BytesIO(picture_jpeg("n02979186", 2))).convert("L")
    pixels = np.asarray(image)
    sizes, boxes = [(32, 32), (9, 8)], [(0, 0, *image.size), (5, 4, 60, 50)]
    for size, box, ours in zip(sizes, boxes, resize_many(pixels, sizes, boxes)):
        assert np.array_equal(ours, np.asarray(image.crop(box).resize(size, Image.Resampling.LANCZOS)))
    assert phash64(image) == bits_to_int64(imagehash.phash(image).hash)
    assert dhash64(image) == bits_to_int64(imagehash.dhash(image).hash)
    assert hashes_of(image).phash == phash64(image)
    assert not matches_pillow()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and PILLOW_VERSION in warnings[0].getMessage()
