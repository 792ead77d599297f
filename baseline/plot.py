"""The loss and error curves as a PNG, drawn with Pillow alone (matplotlib may be absent)."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
WIDTH, HEIGHT, MARGIN = 560, 380, 52


def panel(
    draw: ImageDraw.ImageDraw,
    left: int,
    title: str,
    series: dict[str, list[float]],
    epochs: list[int],
    y_range: tuple[float, float] | None = None,
) -> None:
    x0, y0, x1, y1 = left + MARGIN, MARGIN - 20, left + WIDTH - 20, HEIGHT - MARGIN
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    lo, hi = y_range or ((min(values), max(values)) if values else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    first, last = (epochs[0], epochs[-1]) if epochs else (1, 1)
    span = max(last - first, 1)

    def at(epoch: float, value: float) -> tuple[float, float]:
        return x0 + (epoch - first) / span * (x1 - x0), y1 - (value - lo) / (hi - lo) * (y1 - y0)

    draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    draw.text((x0, 4), title, fill=(0, 0, 0))
    for t in range(5):
        value = lo + (hi - lo) * t / 4
        y = y1 - (y1 - y0) * t / 4
        draw.line((x0 - 4, y, x0, y), fill=(0, 0, 0))
        draw.line((x0 + 1, y, x1 - 1, y), fill=(225, 225, 225))
        draw.text((left + 4, y - 6), f"{value:.3g}", fill=(0, 0, 0))
    ticks = sorted({first + round(span * t / 4) for t in range(5)})
    for epoch in ticks:
        x, _ = at(epoch, lo)
        draw.line((x, y1, x, y1 + 4), fill=(0, 0, 0))
        draw.text((x - 6, y1 + 6), str(epoch), fill=(0, 0, 0))
    draw.text(((x0 + x1) // 2 - 14, y1 + 22), "epoch", fill=(0, 0, 0))
    for k, (name, vs) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        points = [at(e, v) for e, v in zip(epochs, vs) if v is not None and math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.line((x1 - 120, y0 + 10 + 14 * k, x1 - 100, y0 + 10 + 14 * k), fill=colour, width=2)
        draw.text((x1 - 96, y0 + 4 + 14 * k), name, fill=(0, 0, 0))


def curves(history: list[dict], path: Path) -> None:
    """Loss (train, val) and top-1/top-5 error (train, val) per epoch, side by side."""
    image = Image.new("RGB", (2 * WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    epochs = [row["epoch"] for row in history]
    column = lambda key: [row.get(key) for row in history]  # noqa: E731
    panel(draw, 0, "loss", {"train": column("train_loss"), "val": column("val_loss")}, epochs)
    panel(
        draw,
        WIDTH,
        "error",
        {
            "train top-1": column("train_top1_error"),
            "val top-1": column("val_top1_error"),
            "val top-5": column("val_top5_error"),
        },
        epochs,
        (0.0, 1.0),
    )
    image.save(path, format="PNG")
