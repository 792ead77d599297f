"""The loss and error curves of a run, ``curves.png``, and (with boxes) some validation images
with their true and predicted boxes, ``boxes.png``; drawn with matplotlib's object API (a
``Figure`` of its own rendered by Agg: no pyplot state, safe in any process)."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, PercentFormatter


def curves(history: list[dict], path: Path) -> None:
    """``curves_figure`` as a PNG."""
    curves_figure(history).savefig(path, format="png", dpi=100)


def curves_figure(history: list[dict]) -> Figure:
    """Loss (train, val) and top-1/top-5 error (train, val) per epoch, side by side: whole
    epochs on the x axes, errors in percent."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    loss, error = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    _panel(loss, epochs, history, {"train": "train_loss", "val": "val_loss"})
    loss.set_title("loss")
    loss.set_ylabel("cross-entropy")
    _panel(
        error,
        epochs,
        history,
        {
            "train top-1": "train_top1_error",
            "val top-1": "val_top1_error",
            "val top-5": "val_top5_error",
            "val box IoU >= 0.5 (share)": "val_box_iou_50",
        },
    )
    error.set_title("error")
    error.set_ylim(0, 1)
    error.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    return figure


TRUE, PREDICTED = "limegreen", "red"


def boxes_figure(panels: list[tuple], path: Path) -> None:
    """One image per panel, (image, true boxes, predicted box, caption), boxes in our convention
    (pixel edges, far edges exclusive: a box is drawn on the pixels it covers)."""
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(2.6 * columns, 2.8 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, (image, truths, predicted, caption) in zip(grid.flat, panels):
        axes.imshow(image)
        for (xmin, ymin, xmax, ymax), colour, style in [(b, TRUE, "-") for b in truths] + [
            (predicted, PREDICTED, "--")
        ]:
            rectangle = Rectangle((xmin - 0.5, ymin - 0.5), xmax - xmin, ymax - ymin, fill=False, linestyle=style)
            rectangle.set(edgecolor=colour, linewidth=2)
            axes.add_patch(rectangle)
        axes.set_title(caption, fontsize=8)
    for axes in grid.flat:
        axes.set_axis_off()
    figure.legend(
        [Line2D([], [], color=TRUE, linewidth=2), Line2D([], [], color=PREDICTED, linewidth=2, linestyle="--")],
        ["true box", "predicted box (first guess)"],
        loc="outside lower center",
        ncols=2,
    )
    figure.savefig(path, format="png", dpi=100)


def _panel(axes, epochs: list[int], history: list[dict], series: dict[str, str]) -> None:
    """One line per series (a metrics.jsonl key), skipping epochs that lack a value."""
    for label, key in series.items():
        points = [(e, row.get(key)) for e, row in zip(epochs, history)]
        points = [(e, v) for e, v in points if v is not None and math.isfinite(v)]
        if points:
            axes.plot(*zip(*points), marker="o", markersize=3, label=label)
    axes.set_xlabel("epoch")
    # whole epochs only, and none before the first: without min_n_ticks a one-epoch run gets
    # ticks at 0.96, 0.98 ...; the half-epoch margins keep an epoch 0 off long runs' axes
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:
        axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    axes.grid(True, alpha=0.3)
    if axes.lines:
        axes.legend()
