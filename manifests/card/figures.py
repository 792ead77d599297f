"""The card's figures, ``card/*.png``, drawn with matplotlib.

Each ``figure_*`` function draws one PNG from the facts and returns the paths it wrote,
relative to the dataset folder (empty when its stage left nothing to draw). Figures are
``matplotlib.figure.Figure`` objects saved by the Agg canvas: pyplot's global state is never
touched, so nothing is left open once a figure is saved and dropped.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from pipeline import pixels, store
from pipeline.layout import SPLITS, Layout

from .facts import Facts

DPI = 100
WIDTH = 11.0  # inches: 1,100 pixels at DPI
BAR_HEIGHT = 0.26  # inches per horizontal bar
PANEL_HEIGHT = 3.6  # inches per histogram panel
BLUE = "#4c72b0"
SPLIT_COLOURS = ("#4c72b0", "#dd8452", "#55a868")
WARN = "#c44e52"
MUTED = "#666666"
TILE = "#eeeeee"
LABEL_CHARS = 48  # a bar's label is shortened to this many characters
MAX_BARS = 25  # more rows than this: the smallest are summed into one bar
BAR_CLASSES = 60  # more classes than this: images per class is drawn as a sorted distribution
CLASSES_PER_PAGE = 10
THUMB = 112  # pixels of a sample tile's side
GAP = 6  # pixels between tiles
LABEL_COLUMN = 260  # pixels left of the tiles, for the class labels
MARGIN = 24  # pixels around the sample grid


def draw_figures(facts: Facts, out: Layout, per_class: int, sample_classes: int) -> dict[str, list[str]]:
    """Every figure, written under ``out``'s ``card/``; by name, the paths each wrote."""
    out.card_figures.mkdir(parents=True, exist_ok=True)
    figures = {
        "splits": figure_splits(facts, out),
        "sources": figure_sources(facts, out),
        "download": figure_download(facts, out),
        "dedupe": figure_dedupe(facts, out),
        "annotation": figure_annotation(facts, out),
        "samples": figure_samples(facts, out, per_class, sample_classes),
    }
    return {name: paths for name, paths in figures.items() if paths}


def _save(figure: Figure, out: Layout, name: str) -> list[str]:
    path = out.card_figures / f"{name}.png"
    figure.savefig(path, dpi=DPI, facecolor="white")
    return [path.relative_to(out.root).as_posix()]


# ---------------------------------------------------------------------------------------------
# Plot kinds


def _figure(height: float) -> Figure:
    """A card-wide figure of ``height`` inches whose layout engine keeps labels and titles apart."""
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.12, h_pad=0.12, hspace=0.05)
    return figure


def _plain(ax: Axes) -> None:
    """Only the axis the values are read on: no box around the plot."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend(ax: Axes, columns: int) -> None:
    """The series' names in one row above the plot, right of its title."""
    ax.legend(ncols=columns, loc="lower right", bbox_to_anchor=(1, 1), frameon=False, borderaxespad=0)


def _shorten(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def others(rows: list[tuple[str, list[float]]], limit: int = MAX_BARS) -> list[tuple[str, list[float]]]:
    """The largest rows, and the rest summed into one, so a long tail stays one bar."""
    if len(rows) <= limit:
        return rows
    rows = sorted(rows, key=lambda r: -sum(r[1]))
    rest = rows[limit - 1 :]
    return rows[: limit - 1] + [(f"{len(rest)} others", list(np.sum([r[1] for r in rest], axis=0)))]


def bars(
    ax: Axes,
    title: str,
    rows: list[tuple[str, list[float]]],
    series: tuple[str, ...] = ("images",),
    colours: tuple[str, ...] = (BLUE,),
) -> None:
    """Horizontal bars, one per label, top to bottom, segments stacked and the total at the end:
    long labels stay readable."""
    ax.set_title(title, loc="left")
    _plain(ax)
    if not rows:
        ax.text(0, 0.5, "nothing to draw", color=MUTED, transform=ax.transAxes)
        ax.set_axis_off()
        return
    labels = [_shorten(label) for label, _ in rows]
    values = np.array([v for _, v in rows], dtype=float).reshape(len(rows), len(series))
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for column, (name, colour) in enumerate(zip(series, colours)):
        last = ax.barh(y, values[:, column], left=left, color=colour, label=name, height=0.7)
        left += values[:, column]
    ax.bar_label(last, labels=[f"{total:,.0f}" for total in left], padding=4, color=MUTED)
    ax.set_yticks(y, labels)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    ax.set_xlim(0, left.max() * 1.08 or 1)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#dddddd")
    ax.set_axisbelow(True)
    if len(series) > 1:
        _legend(ax, len(series))


def bar_figure(panels: list[tuple]) -> Figure:
    """Panels of ``bars`` (each the arguments after the axes), one above the other, sized to their rows."""
    heights = [0.9 + BAR_HEIGHT * max(len(p[1]), 1) for p in panels]
    figure = _figure(sum(heights))
    axes = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, panel in zip(axes, panels):
        bars(ax, *panel)
    return figure


def histogram(
    ax: Axes, title: str, labels: list[str], counts: list[float], caption: str, marker: tuple[float, str] | None = None
) -> None:
    """Vertical bars over ordered bins, counts on top and bin names below; ``marker`` (a position
    in bins, a text) draws a threshold line."""
    ax.set_title(title, loc="left")
    _plain(ax)
    ax.spines["left"].set_visible(False)
    positions = np.arange(len(counts))
    drawn = ax.bar(positions, counts, width=0.94, color=BLUE)
    ax.bar_label(drawn, labels=[f"{c:,.0f}" if c else "" for c in counts], padding=2, color=MUTED, fontsize=9)
    every = max(1, -(-len(labels) // 24))  # at most 24 bin names, so they never overlap
    ax.set_xticks(positions[::every], labels[::every], fontsize=9)
    ax.set_xlim(-0.5, len(counts) - 0.5)
    ax.set_yticks([])
    ax.set_ylim(0, (max(counts, default=0) or 1) * 1.12)
    ax.set_xlabel(caption)
    if marker is not None:
        at, text = marker
        ax.axvline(at - 0.5, color=WARN, linewidth=1.5)
        ax.annotate(
            text,
            (at - 0.5, 1),
            xycoords=("data", "axes fraction"),
            xytext=(4, -2),
            textcoords="offset points",
            va="top",
            color=WARN,
            fontsize=9,
        )


def distribution(ax: Axes, title: str, stacks: np.ndarray, series: tuple[str, ...], colours: tuple[str, ...]) -> None:
    """One thin column per class, largest first, segments stacked: the shape of a dataset of
    a thousand classes, where a bar per class would be unreadable."""
    ax.set_title(title, loc="left")
    _plain(ax)
    stacks = stacks[np.argsort(-stacks.sum(axis=1), kind="stable")]
    positions = np.arange(len(stacks))
    bottom = np.zeros(len(stacks))
    for column, (name, colour) in enumerate(zip(series, colours)):
        ax.bar(positions, stacks[:, column], bottom=bottom, width=1.0, color=colour, label=name, linewidth=0)
        bottom += stacks[:, column]
    ax.set_xlim(-0.5, len(stacks) - 0.5)
    ax.set_xticks([])
    ax.grid(axis="y", color="#dddddd")
    ax.set_axisbelow(True)
    ax.set_xlabel(f"{len(stacks):,} classes, sorted by images, largest first")
    ax.set_ylabel("images")
    _legend(ax, len(series))


# ---------------------------------------------------------------------------------------------
# The figures


def figure_splits(facts: Facts, out: Layout) -> list[str]:
    classes = facts.classes.sort_values("label")
    title = "Images per class and split"
    if len(classes) <= BAR_CLASSES:
        rows = [(f"{c.label}  {c.wnid}  {c.name}", [c.train, c.val, c.test]) for c in classes.itertuples()]
        figure = bar_figure([(title, rows, SPLITS, SPLIT_COLOURS)])
    else:
        figure = _figure(PANEL_HEIGHT + 0.4)
        distribution(figure.subplots(), title, classes[list(SPLITS)].to_numpy(float), SPLITS, SPLIT_COLOURS)
    return _save(figure, out, "split_counts")


def figure_sources(facts: Facts, out: Layout) -> list[str]:
    rows = facts.rows
    sources = others([(s, [n]) for s, n in rows.source.value_counts().items()])
    licences = others([(s, [n]) for s, n in rows.license.fillna("(no licence given)").value_counts().items()])
    figure = bar_figure([("Images by source", sources), ("Images by licence, as the source gives it", licences)])
    return _save(figure, out, "sources_licences")


def figure_download(facts: Facts, out: Layout) -> list[str]:
    report = facts.download_report
    if not report or not report["statuses"]:
        return []
    statuses = sorted(report["statuses"].items(), key=lambda kv: -kv[1])
    title = f"Download outcomes of {report['candidates']:,} candidate URLs"
    return _save(bar_figure([(title, [(s, [n]) for s, n in statuses], ("URLs",))]), out, "download")


def figure_dedupe(facts: Facts, out: Layout) -> list[str]:
    report = facts.dedupe_report
    if not report or not report["reasons"]:
        return []
    reasons = sorted(report["reasons"].items(), key=lambda kv: -kv[1])
    rows = [(f"{r} (dropped)" if r in report["dropped"] else f"{r} (kept)", [n]) for r, n in reasons]
    return _save(bar_figure([(f"Dedupe: {report['images']:,} images by reason", rows)]), out, "dedupe")


def _tenths(values: pd.Series) -> tuple[list[str], list[int]]:
    """Bin names and counts of shares over ten bins from 0 to 1."""
    edges = np.linspace(0, 1, 11)
    counts, _ = np.histogram(values, bins=edges)
    return [f"{a:.1f}-{b:.1f}" for a, b in zip(edges, edges[1:])], list(counts)


def figure_annotation(facts: Facts, out: Layout) -> list[str]:
    panels = []
    labels = facts.labels
    if labels is not None and len(labels):
        votes = labels.votes_total.value_counts().sort_index()
        span = range(int(votes.index.min()), int(votes.index.max()) + 1)
        panels.append(
            (
                "Votes counted per image",
                [str(v) for v in span],
                [votes.get(v, 0) for v in span],
                "votes from workers not excluded",
            )
        )
        panels.append(
            (
                "Selection frequency per image (share of votes that ticked it)",
                *_tenths(labels.selection_frequency),
                "selection frequency",
            )
        )
    workers = facts.workers
    if workers is not None and workers.accuracy.notna().any():
        threshold = facts.annotation_report["settings"]["min_worker_accuracy"] if facts.annotation_report else None
        panels.append(
            (
                "Worker accuracy on control images",
                *_tenths(workers.accuracy.dropna()),
                f"accuracy ({workers.accuracy.notna().sum()} workers who saw controls)",
                (threshold * 10, f"exclusion below {threshold:g}") if threshold is not None else None,
            )
        )
    if not panels:
        return []
    figure = _figure(PANEL_HEIGHT * len(panels))
    for ax, panel in zip(figure.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        histogram(ax, *panel)
    return _save(figure, out, "annotation")


# ---------------------------------------------------------------------------------------------
# The sample grid


def sample_rows(facts: Facts, per_class: int, sample_classes: int) -> list[tuple[int, str, str, pd.DataFrame]]:
    """Up to ``sample_classes`` classes spread evenly over the labels, and per class its first
    ``per_class`` images in sha256 order: an arbitrary but fixed draw from all splits."""
    classes = facts.classes.sort_values("label")
    if len(classes) > sample_classes:
        classes = classes.iloc[np.linspace(0, len(classes) - 1, sample_classes).round().astype(int)]
    rows = facts.rows
    return [
        (c.label, c.wnid, c.name, rows[rows.label == c.label].sort_values("sha256").head(per_class))
        for c in classes.itertuples()
    ]


def sample_bytes(layout: Layout, wanted: pd.DataFrame) -> dict[str, bytes]:
    """The bytes of ``wanted`` (image_id, location: the shard as the manifests name it)."""
    found = {}
    for location, group in wanted.groupby("location"):
        shard = layout.root / location
        if shard.exists():
            found.update(store.image_bytes(shard, set(group.image_id)))
    return found


def thumbnail(data: bytes | None) -> np.ndarray | None:
    """The image, upright and in RGB as every stage reads it, fitted into a square tile of
    ``THUMB`` pixels; None when its bytes are missing or broken."""
    try:
        image = pixels.decode(data, at_least=(THUMB, THUMB))  # a JPEG decoded at reduced size
    except Exception:  # noqa: BLE001 - any undecodable image becomes the placeholder
        return None
    image.thumbnail((THUMB, THUMB))
    tile = Image.new("RGB", (THUMB, THUMB), TILE)
    tile.paste(image, ((THUMB - image.width) // 2, (THUMB - image.height) // 2))
    return np.asarray(tile)


def sample_page(title: str, rows: list[tuple[str, str, list[bytes | None]]], per_class: int) -> Figure:
    """Rows of thumbnails, each labelled with its class's label, wnid and name. The tiles are
    placed pixel for pixel (``figimage``), so thumbnails are not resampled a second time."""
    step = THUMB + GAP
    top = 60  # pixels above the grid, for the title
    width = max(LABEL_COLUMN + per_class * step + MARGIN, 600)
    height = top + len(rows) * step + MARGIN
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    figure.text(MARGIN / width, 1 - MARGIN / height, title, fontsize=14, va="top")
    placeholder = np.full((THUMB, THUMB, 3), 0xEE, np.uint8)
    for i, (head, name, images) in enumerate(rows):
        y = top + i * step  # the row's top, in pixels from the figure's top
        figure.text(MARGIN / width, 1 - (y + 4) / height, head, va="top", fontsize=11)
        wrapped = "\n".join(textwrap.wrap(name, 24, max_lines=3, placeholder="…"))
        figure.text(MARGIN / width, 1 - (y + 28) / height, wrapped, va="top", fontsize=10, color=MUTED)
        for j, data in enumerate(images):
            tile = thumbnail(data)
            x = LABEL_COLUMN + j * step
            figure.figimage(placeholder if tile is None else tile, xo=x, yo=height - y - THUMB, origin="upper")
            if tile is None:
                centre = ((x + THUMB / 2) / width, 1 - (y + THUMB / 2) / height)
                figure.text(*centre, "missing", color=WARN, ha="center", va="center")
    return figure


def figure_samples(facts: Facts, out: Layout, per_class: int, sample_classes: int) -> list[str]:
    if not per_class or not sample_classes:
        return []
    chosen = sample_rows(facts, per_class, sample_classes)
    facts.sampled = len(chosen)
    if not chosen:
        return []
    wanted = pd.concat([images for *_, images in chosen], ignore_index=True)
    data = sample_bytes(facts.layout, wanted[["image_id", "location"]]) if len(wanted) else {}
    pages = [chosen[i : i + CLASSES_PER_PAGE] for i in range(0, len(chosen), CLASSES_PER_PAGE)]
    paths = []
    for number, page in enumerate(pages, 1):
        rows = [
            (f"{label}  {wnid}", name, [data.get(i) for i in images.image_id]) for label, wnid, name, images in page
        ]
        title = f"Samples {number} of {len(pages)}: labels {page[0][0]} to {page[-1][0]}"
        paths += _save(sample_page(title, rows, per_class), out, f"samples-{number}")
    return paths
