"""pipeline.lanczos resizes exactly as Pillow's Image.resize(LANCZOS) does, crop included, on
random and smooth pixels, shrinking and enlarging, wide and tall (either pass order)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.lanczos import resize_many, vertical_first


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
