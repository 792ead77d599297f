"""The card stage: ``DATASET_CARD.md`` and its figures ``card/*.png``.

The card answers a datasheet's questions (Gebru et al., "Datasheets for Datasets"): motivation,
composition, collection, preprocessing, labelling, uses, licences and maintenance, with the
numbers the stages left in the dataset folder rather than claims. Only the manifests are
required: a section whose stage left nothing (a dataset imported from a folder has no download
stats, an unverified build no annotation) says that its facts are unknown. Figures are drawn
with Pillow, which the pipeline already needs, so the card adds no dependency.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from pipeline import __version__, runner, schemas
from pipeline.errors import InputError
from pipeline.tables import read_table

from .splits import SPLITS

HELP = "the dataset card: DATASET_CARD.md (a datasheet of the built dataset) and its figures card/*.png"
CARD = "DATASET_CARD.md"
FIGURES = "card"
MANIFESTS = "manifests"
# What the card reads when a stage left it; all but the manifests may be absent.
OPTIONAL_INPUTS = (
    "synsets.parquet",
    "synsets_report.json",
    "candidates_report.json",
    "download_stats.json",
    "dedupe/report.json",
    "annotation/report.json",
    "annotation/labels.parquet",
    "annotation/workers.parquet",
    "annotation/votes.parquet",
    "images",
    "validation.json",
)
# Earlier stages' recorded settings (the runner's stamps): the resize and HIT rules live only there.
STAMPED = ("synsets", "candidates", "download", "dedupe", "annotate-export-1")
STORE_COLUMNS = ["image_id", "format", "original_format", "width", "height", "original_width", "original_height"]
MANIFEST_COLUMNS = [
    "image_id",
    "label",
    "wnid",
    "location",
    "width",
    "height",
    "sha256",
    "phash",
    "source",
    "license",
    "confidence",
    "votes",
]
SAMPLES_PER_CLASS = 8
SAMPLE_CLASSES = 50
CLASSES_PER_PAGE = 10
BAR_CLASSES = 60  # above this, images per class is drawn as a sorted distribution
LISTED_CLASSES = 50  # above this, the card lists the smallest and largest classes only
SHOWN = 10

SOURCE_NOTES = {
    "urllist": "a URL list given to the candidates stage (for ImageNet's own lists, ImageNet's terms of access apply)",
    "commons": "Wikimedia Commons search: files under free licences, each with its own attribution terms",
    "openverse": "Openverse search: openly licensed images indexed from many providers",
    "flickr": "Flickr search: photos under the licences the search allowed",
    "demo": "synsetforge's local demo host: generated pictures, not photographs",
}
METHODS = {
    "dynamic": "ImageNet's dynamic consensus: per synset, a table P(shows the synset | k yes of n votes) is "
    "fitted on an initial subset of images with many votes; an image is decided once its confidence "
    "passes the threshold (or falls below one minus it), or at the vote cap",
    "majority": "the majority of the counted votes",
    "dawid_skene": "Dawid-Skene EM per synset, weighting each worker by their estimated error rates",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--samples-per-class",
        type=int,
        default=SAMPLES_PER_CLASS,
        help=f"thumbnails per class in the sample grid (default {SAMPLES_PER_CLASS})",
    )
    parser.add_argument(
        "--sample-classes",
        type=int,
        default=SAMPLE_CLASSES,
        help=f"classes shown in the sample grid at most, spread over the labels (default {SAMPLE_CLASSES})",
    )


def run(args: argparse.Namespace) -> None:
    if args.samples_per_class < 0 or args.sample_classes < 0:
        raise InputError("--samples-per-class and --sample-classes must not be negative")
    workdir = args.workdir
    manifests = workdir / MANIFESTS
    for split in (*SPLITS, "classes"):
        if not (manifests / f"{split}.parquet").exists():
            raise InputError(
                "no manifests: the card describes a built dataset, run `make manifests` first",
                file=manifests / f"{split}.parquet",
            )
    inputs = [
        manifests,
        *(workdir / rel for rel in OPTIONAL_INPUTS if (workdir / rel).exists()),
        *(p for p in map(lambda name: stamp(workdir, name), STAMPED) if p.exists()),
    ]
    settings = {"samples_per_class": args.samples_per_class, "sample_classes": args.sample_classes}
    stage = runner.Stage(name="card", workdir=workdir, outputs=(CARD, FIGURES), inputs=tuple(inputs), settings=settings)

    def build(out: Path) -> str:
        facts = load_facts(workdir)
        (out / FIGURES).mkdir()
        figures = draw_figures(facts, out, args.samples_per_class, args.sample_classes)
        (out / CARD).write_text(render(facts, figures), encoding="utf-8")
        drawn = sum(len(paths) for paths in figures.values())
        return f"card of {len(facts.classes)} classes, {drawn} figures, {len(facts.unknown)} sections unknown"

    runner.run(stage, build, force=args.force)


# ---------------------------------------------------------------------------------------------
# What the stages left


def stamp(workdir: Path, name: str) -> Path:
    return workdir / runner.STAMPS / f"{name}.json"


@dataclass
class Facts:
    """Everything the card says, read once; ``None`` where a stage left nothing."""

    workdir: Path
    meta: dict[str, str]
    splits: dict[str, pd.DataFrame]
    classes: pd.DataFrame
    manifests_report: dict | None
    synsets: pd.DataFrame | None
    synsets_report: dict | None
    candidates: dict | None
    download: dict | None
    dedupe: dict | None
    annotation: dict | None
    labels: pd.DataFrame | None
    workers: pd.DataFrame | None
    votes: pd.DataFrame | None
    store: dict | None
    validation: dict | None
    stamps: dict[str, dict]
    unknown: list[str] = field(default_factory=list)  # sections the card could not tell, as it renders them
    sampled: int = 0  # classes in the sample grid, as drawn

    @cached_property
    def rows(self) -> pd.DataFrame:
        return pd.concat([df.assign(split=s) for s, df in self.splits.items()], ignore_index=True)

    def settings(self, stage: str) -> dict:
        """The settings an earlier stage ran with, as its stamp records them ({} when unknown)."""
        return self.stamps.get(stage, {}).get("settings", {})

    @property
    def verified(self) -> str:
        return self.meta.get("synsetforge.verified", "unknown")

    def missing(self, section: str, *files: str) -> list[str]:
        """The card's line for a section whose inputs are absent; remembered for the summary."""
        self.unknown.append(section)
        names = " and ".join(f"`{f}`" for f in files)
        return [
            f"_Unknown: {names} {'is' if len(files) == 1 else 'are'} absent from the dataset folder, "
            f"so the card cannot say this section's facts._",
            "",
        ]


def _json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"not readable JSON ({e})", file=path) from None


def _frame(path: Path, schema, columns: list[str] | None = None) -> pd.DataFrame | None:
    return read_table(path, schema, columns=columns).to_pandas() if path.exists() else None


def load_facts(workdir: Path) -> Facts:
    manifests = workdir / MANIFESTS
    splits = {
        s: read_table(manifests / f"{s}.parquet", schemas.MANIFEST, columns=MANIFEST_COLUMNS).to_pandas()
        for s in SPLITS
    }
    metadata = pq.read_schema(manifests / "classes.parquet").metadata or {}
    meta = {k.decode(): v.decode() for k, v in metadata.items()}
    annotation = workdir / "annotation"
    return Facts(
        workdir=workdir,
        meta=meta,
        splits=splits,
        classes=read_table(manifests / "classes.parquet", schemas.CLASSES).to_pandas(),
        manifests_report=_json(manifests / "report.json"),
        synsets=_frame(workdir / "synsets.parquet", schemas.SYNSETS, ["wnid", "name", "lexname", "queries"]),
        synsets_report=_json(workdir / "synsets_report.json"),
        candidates=_json(workdir / "candidates_report.json"),
        download=_json(workdir / "download_stats.json"),
        dedupe=_json(workdir / "dedupe" / "report.json"),
        annotation=_json(annotation / "report.json"),
        labels=_frame(annotation / "labels.parquet", schemas.LABELS),
        workers=_frame(annotation / "workers.parquet", schemas.WORKERS),
        votes=_frame(
            annotation / "votes.parquet", schemas.VOTES, ["round", "worker_id", "image_id", "wnid", "kind", "answer"]
        ),
        store=store_facts(workdir, set().union(*(set(df.image_id) for df in splits.values()))),
        validation=_json(workdir / "validation.json"),
        stamps={name: _json(stamp(workdir, name)) or {} for name in STAMPED},
    )


def store_facts(workdir: Path, image_ids: set[str]) -> dict | None:
    """How the dataset's images were stored: formats and resizes, from the store's columns
    (never its bytes), counted over the images the manifests use."""
    shards = sorted((workdir / "images").glob("shard-*.parquet"))
    if not shards:
        return None
    frames = [read_table(s, schemas.IMAGES, columns=STORE_COLUMNS).to_pandas() for s in shards]
    store = pd.concat(frames, ignore_index=True)
    store = store[store.image_id.isin(image_ids)]
    resized = (store.width != store.original_width) | (store.height != store.original_height)
    converted = store.format != store.original_format
    return {
        "images": len(store),
        "formats": Counter(store.format),
        "original_formats": Counter(store.original_format),
        "resized": int(resized.sum()),
        "converted": int(converted.sum()),
        "original_longer_side": _spread(np.maximum(store.original_width, store.original_height)),
    }


def _spread(values) -> dict | None:
    values = pd.Series(values).dropna()
    if values.empty:
        return None
    return {
        "min": float(values.min()),
        "median": float(values.median()),
        "mean": float(values.mean()),
        "max": float(values.max()),
    }


def agreement(votes: pd.DataFrame, workers: pd.DataFrame | None) -> dict | None:
    """How much the counted votes on candidates agree: the share of pairs of votes on one image
    that agree, and Fleiss' kappa, which discounts the agreement that the overall yes share
    alone would give. Images are weighted by their pairs of votes, which is Fleiss' own kappa
    when every image has the same number of votes and extends it to dynamic consensus, where
    the number varies."""
    counted = votes[votes.kind == "candidate"]
    if workers is not None:
        counted = counted[~counted.worker_id.isin(workers.worker_id[workers.excluded])]
    items = counted.groupby(["image_id", "wnid"]).answer.agg(["sum", "size"])
    k, n = items["sum"].to_numpy(float), items["size"].to_numpy(float)
    several = n >= 2
    if not several.any():
        return None
    k, n = k[several], n[several]
    pairs = n * (n - 1) / 2
    agreeing = k * (k - 1) / 2 + (n - k) * (n - k - 1) / 2
    observed = agreeing.sum() / pairs.sum()
    yes = k.sum() / n.sum()
    chance = yes**2 + (1 - yes) ** 2
    return {
        "images": int(several.sum()),
        "observed": observed,
        "chance": chance,
        "yes_share": yes,
        "kappa": (observed - chance) / (1 - chance) if chance < 1 else float("nan"),
        "unanimous": float(((k == 0) | (k == n)).mean()),
    }


# ---------------------------------------------------------------------------------------------
# Drawing (Pillow only)

WIDTH = 1100
MARGIN = 24
INK, MUTED, GRID, PAPER, TILE = "#222222", "#666666", "#d9d9d9", "white", "#eeeeee"
BAR = "#4c72b0"
SPLIT_COLOURS = ("#4c72b0", "#dd8452", "#55a868")
WARN = "#c44e52"
ROW = 24
PLOT_HEIGHT = 260
THUMB = 112
GAP = 6
LABEL_COLUMN = 260
MAX_BARS = 25


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one small bitmap font
        return ImageFont.load_default()


TITLE_FONT, LABEL_FONT, SMALL_FONT = _font(20), _font(15), _font(13)


def _fit(text: str, font, width: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _canvas(height: int, title: str, width: int = WIDTH) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    """A white panel with its title; returns the y where the content starts."""
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), _fit(title, TITLE_FONT, width - 2 * MARGIN), fill=INK, font=TITLE_FONT)
    return image, draw, MARGIN + 34


def _legend(draw: ImageDraw.ImageDraw, x: int, y: int, names, colours) -> None:
    for name, colour in zip(names, colours):
        draw.rectangle((x, y + 3, x + 12, y + 15), fill=colour)
        draw.text((x + 18, y), name, fill=INK, font=LABEL_FONT)
        x += 30 + int(LABEL_FONT.getlength(name))


def _others(rows: list[tuple[str, list[float]]], limit: int = MAX_BARS) -> list[tuple[str, list[float]]]:
    """The largest rows, and the rest summed into one, so a long tail stays one bar."""
    if len(rows) <= limit:
        return rows
    rows = sorted(rows, key=lambda r: -sum(r[1]))
    rest = rows[limit - 1 :]
    return rows[: limit - 1] + [(f"{len(rest)} others", list(np.sum([r[1] for r in rest], axis=0)))]


def bars(
    title: str,
    rows: list[tuple[str, list[float]]],
    series: tuple[str, ...] = ("images",),
    colours: tuple[str, ...] = (BAR,),
) -> Image.Image:
    """Horizontal bars, one per label, segments stacked: long labels stay readable."""
    legend = len(series) > 1
    label_width = min(max((LABEL_FONT.getlength(label) for label, _ in rows), default=0) + 12, 380)
    label_width = max(label_width, 160)  # panels stacked in one figure line up
    top = MARGIN + 34 + (ROW if legend else 0)
    image, draw, y = _canvas(top + ROW * max(len(rows), 1) + MARGIN, title)
    if legend:
        _legend(draw, MARGIN, y, series, colours)
    if not rows:
        draw.text((MARGIN, top), "nothing to draw", fill=MUTED, font=LABEL_FONT)
        return image
    longest = max(sum(values) for _, values in rows) or 1
    x0 = MARGIN + label_width
    scale = (WIDTH - x0 - MARGIN - 80) / longest
    for i, (label, values) in enumerate(rows):
        y = top + i * ROW
        text = _fit(label, LABEL_FONT, label_width - 12)
        draw.text((x0 - 8 - LABEL_FONT.getlength(text), y + 2), text, fill=INK, font=LABEL_FONT)
        x = x0
        for value, colour in zip(values, colours):
            width = value * scale
            if width > 0:
                draw.rectangle((x, y + 3, x + max(width, 1), y + ROW - 4), fill=colour)
            x += width
        draw.text((x + 6, y + 2), f"{sum(values):,.0f}", fill=MUTED, font=LABEL_FONT)
    return image


def columns(
    title: str, labels: list[str], counts: list[float], caption: str, marker: tuple[float, str] | None = None
) -> Image.Image:
    """Vertical bars over ordered bins (a histogram), counts on top and bin names below;
    ``marker`` (a position in bins, a text) draws a threshold line."""
    image, draw, top = _canvas(MARGIN + 34 + 20 + PLOT_HEIGHT + 56 + MARGIN, title)
    top += 20
    left, right = MARGIN + 10, WIDTH - MARGIN
    step = (right - left) / max(len(counts), 1)
    highest = max(counts, default=0) or 1
    base = top + PLOT_HEIGHT
    every = max(1, math.ceil(len(labels) * 46 / (right - left)))  # keep bin names from overlapping
    for i, (label, count) in enumerate(zip(labels, counts)):
        x = left + i * step
        height = count / highest * (PLOT_HEIGHT - 4)
        draw.rectangle((x + 2, base - height, x + step - 2, base), fill=BAR)
        if count:
            text = f"{count:,.0f}"
            draw.text(
                (x + step / 2 - SMALL_FONT.getlength(text) / 2, base - height - 17), text, fill=MUTED, font=SMALL_FONT
            )
        if i % every == 0:
            draw.text((x + step / 2 - SMALL_FONT.getlength(label) / 2, base + 6), label, fill=INK, font=SMALL_FONT)
    draw.line((left, base, right, base), fill=INK)
    if marker is not None:
        x = left + marker[0] * step
        draw.line((x, top - 8, x, base), fill=WARN, width=2)
        draw.text((x + 6, top - 10), marker[1], fill=WARN, font=SMALL_FONT)
    draw.text(((WIDTH - LABEL_FONT.getlength(caption)) / 2, base + 28), caption, fill=INK, font=LABEL_FONT)
    return image


def distribution(title: str, stacks: np.ndarray, series: tuple[str, ...], colours: tuple[str, ...]) -> Image.Image:
    """One thin column per class, largest first, segments stacked: the shape of a dataset of
    a thousand classes, where a bar per class would be unreadable."""
    image, draw, top = _canvas(MARGIN + 34 + ROW + 10 + PLOT_HEIGHT + 40 + MARGIN, title)
    _legend(draw, MARGIN, top, series, colours)
    top += ROW + 10
    order = np.argsort(-stacks.sum(axis=1), kind="stable")
    stacks = stacks[order]
    left, right = MARGIN + 60, WIDTH - MARGIN
    base = top + PLOT_HEIGHT
    highest = stacks.sum(axis=1).max() if len(stacks) else 0
    highest = highest or 1
    for tick in (0, highest / 2, highest):
        y = base - tick / highest * PLOT_HEIGHT
        draw.line((left, y, right, y), fill=GRID)
        text = f"{tick:,.0f}"
        draw.text((left - 8 - SMALL_FONT.getlength(text), y - 8), text, fill=MUTED, font=SMALL_FONT)
    step = (right - left) / max(len(stacks), 1)
    for i, values in enumerate(stacks):
        x0 = left + i * step
        x1 = max(x0 + 1, left + (i + 1) * step - (1 if step > 3 else 0))
        y = base
        for value, colour in zip(values, colours):
            height = value / highest * PLOT_HEIGHT
            if height > 0:
                draw.rectangle((x0, y - height, x1, y), fill=colour)
            y -= height
    draw.line((left, base, right, base), fill=INK)
    caption = f"{len(stacks):,} classes, sorted by images, largest first"
    draw.text(((WIDTH - LABEL_FONT.getlength(caption)) / 2, base + 10), caption, fill=INK, font=LABEL_FONT)
    return image


def stack(panels: list[Image.Image]) -> Image.Image:
    """Panels one above the other, as one figure."""
    width = max(p.width for p in panels)
    figure = Image.new("RGB", (width, sum(p.height for p in panels)), PAPER)
    y = 0
    for panel in panels:
        figure.paste(panel, (0, y))
        y += panel.height
    return figure


def thumbnail(data: bytes | None) -> Image.Image:
    """The image fitted into a square tile; a marked grey tile when its bytes are missing or broken."""
    tile = Image.new("RGB", (THUMB, THUMB), TILE)
    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (THUMB, THUMB))  # JPEG: decode at reduced size
        image = image.convert("RGB")
    except Exception:  # noqa: BLE001 - any undecodable image becomes the placeholder
        ImageDraw.Draw(tile).text((THUMB / 2 - 20, THUMB / 2 - 8), "missing", fill=WARN, font=SMALL_FONT)
        return tile
    image.thumbnail((THUMB, THUMB))
    tile.paste(image, ((THUMB - image.width) // 2, (THUMB - image.height) // 2))
    return tile


def sample_page(title: str, rows: list[tuple[str, str, list[bytes | None]]], per_class: int) -> Image.Image:
    """Rows of thumbnails, each labelled with its class's label, wnid and name."""
    width = LABEL_COLUMN + per_class * (THUMB + GAP) + MARGIN
    image, draw, top = _canvas(MARGIN + 34 + len(rows) * (THUMB + GAP) + MARGIN, title, width=max(width, 600))
    for i, (head, name, images) in enumerate(rows):
        y = top + i * (THUMB + GAP)
        draw.text((MARGIN, y + 8), head, fill=INK, font=LABEL_FONT)
        for j, line in enumerate(_wrap(name, LABEL_FONT, LABEL_COLUMN - MARGIN - 10, 3)):
            draw.text((MARGIN, y + 32 + j * 20), line, fill=MUTED, font=LABEL_FONT)
        for j, data in enumerate(images):
            image.paste(thumbnail(data), (LABEL_COLUMN + j * (THUMB + GAP), y))
    return image


def _wrap(text: str, font, width: float, lines: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and font.getlength(f"{line} {word}") > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    out.append(line)
    if len(out) > lines:
        out = out[: lines - 1] + [" ".join(out[lines - 1 :])]
    return [_fit(line, font, width) for line in out]


# ---------------------------------------------------------------------------------------------
# Figures: each returns the paths it wrote, relative to the dataset folder


def draw_figures(facts: Facts, out: Path, per_class: int, sample_classes: int) -> dict[str, list[str]]:
    figures = {
        "splits": figure_splits(facts, out),
        "sources": figure_sources(facts, out),
        "download": figure_download(facts, out),
        "dedupe": figure_dedupe(facts, out),
        "annotation": figure_annotation(facts, out),
        "samples": figure_samples(facts, out, per_class, sample_classes),
    }
    return {name: paths for name, paths in figures.items() if paths}


def _save(image: Image.Image, out: Path, name: str) -> list[str]:
    rel = f"{FIGURES}/{name}.png"
    image.save(out / rel, optimize=True)
    return [rel]


def figure_splits(facts: Facts, out: Path) -> list[str]:
    classes = facts.classes.sort_values("label")
    title = "Images per class and split"
    if len(classes) <= BAR_CLASSES:
        rows = [(f"{c.label}  {c.wnid}  {c.name}", [c.train, c.val, c.test]) for c in classes.itertuples()]
        image = bars(title, rows, SPLITS, SPLIT_COLOURS)
    else:
        image = distribution(title, classes[list(SPLITS)].to_numpy(float), SPLITS, SPLIT_COLOURS)
    return _save(image, out, "split_counts")


def figure_sources(facts: Facts, out: Path) -> list[str]:
    rows = facts.rows
    sources = _others([(s, [n]) for s, n in rows.source.value_counts().items()])
    licences = _others([(s, [n]) for s, n in rows.license.fillna("(no licence given)").value_counts().items()])
    return _save(
        stack([bars("Images by source", sources), bars("Images by licence, as the source gives it", licences)]),
        out,
        "sources_licences",
    )


def figure_download(facts: Facts, out: Path) -> list[str]:
    if not facts.download or not facts.download.get("statuses"):
        return []
    statuses = sorted(facts.download["statuses"].items(), key=lambda kv: -kv[1])
    title = f"Download outcomes of {facts.download.get('candidates', 0):,} candidate URLs"
    return _save(bars(title, [(s, [n]) for s, n in statuses], ("URLs",)), out, "download")


def figure_dedupe(facts: Facts, out: Path) -> list[str]:
    if not facts.dedupe or not facts.dedupe.get("reasons"):
        return []
    dropped = facts.dedupe.get("dropped", {})
    reasons = sorted(facts.dedupe["reasons"].items(), key=lambda kv: -kv[1])
    rows = [(f"{r} (dropped)" if r in dropped else f"{r} (kept)", [n]) for r, n in reasons]
    return _save(bars(f"Dedupe: {facts.dedupe.get('images', 0):,} images by reason", rows), out, "dedupe")


def figure_annotation(facts: Facts, out: Path) -> list[str]:
    panels = []
    if facts.labels is not None and len(facts.labels):
        votes = facts.labels.votes_total.value_counts().sort_index()
        span = range(int(votes.index.min()), int(votes.index.max()) + 1)
        panels.append(
            columns(
                "Votes counted per image",
                [str(v) for v in span],
                [votes.get(v, 0) for v in span],
                "votes from workers not excluded",
            )
        )
        edges = np.linspace(0, 1, 11)
        counts, _ = np.histogram(facts.labels.selection_frequency, bins=edges)
        panels.append(
            columns(
                "Selection frequency per image (share of votes that ticked it)",
                [f"{a:.1f}-{b:.1f}" for a, b in zip(edges, edges[1:])],
                list(counts),
                "selection frequency",
            )
        )
    if facts.workers is not None and facts.workers.accuracy.notna().any():
        edges = np.linspace(0, 1, 11)
        counts, _ = np.histogram(facts.workers.accuracy.dropna(), bins=edges)
        threshold = (facts.annotation or {}).get("settings", {}).get("min_worker_accuracy")
        marker = (threshold * 10, f"exclusion below {threshold:g}") if threshold is not None else None
        panels.append(
            columns(
                "Worker accuracy on control images",
                [f"{a:.1f}-{b:.1f}" for a, b in zip(edges, edges[1:])],
                list(counts),
                f"accuracy ({facts.workers.accuracy.notna().sum()} workers who saw controls)",
                marker,
            )
        )
    return _save(stack(panels), out, "annotation") if panels else []


def sample_rows(facts: Facts, per_class: int, sample_classes: int) -> list[tuple[int, str, pd.DataFrame]]:
    """Up to ``sample_classes`` classes spread evenly over the labels, and per class its first
    ``per_class`` images in sha256 order: an arbitrary but fixed draw from all splits."""
    classes = facts.classes.sort_values("label")
    if len(classes) > sample_classes:
        classes = classes.iloc[np.linspace(0, len(classes) - 1, sample_classes).round().astype(int)]
    rows = facts.rows
    chosen = []
    for c in classes.itertuples():
        images = rows[rows.label == c.label].sort_values("sha256").head(per_class)
        chosen.append((c.label, c.wnid, c.name, images))
    return chosen


def read_images(workdir: Path, wanted: pd.DataFrame) -> dict[str, bytes]:
    """The bytes of ``wanted`` (image_id, location): per shard only the row groups that hold them."""
    found = {}
    for location, group in wanted.groupby("location"):
        path = workdir / location
        if not path.exists():
            continue
        shard = pq.ParquetFile(path)
        ids = shard.read(columns=["image_id"]).column("image_id").to_pylist()
        wanted_here = set(group.image_id)
        rows = [i for i, image_id in enumerate(ids) if image_id in wanted_here]
        ends = np.cumsum([shard.metadata.row_group(g).num_rows for g in range(shard.num_row_groups)])
        groups = sorted({int(np.searchsorted(ends, r, side="right")) for r in rows})
        table = shard.read_row_groups(groups, columns=["image_id", "image"])
        found.update(zip(table.column("image_id").to_pylist(), table.column("image").to_pylist()))
    return found


def figure_samples(facts: Facts, out: Path, per_class: int, sample_classes: int) -> list[str]:
    if not per_class or not sample_classes:
        return []
    chosen = sample_rows(facts, per_class, sample_classes)
    facts.sampled = len(chosen)
    if not chosen:
        return []
    wanted = pd.concat([images for *_, images in chosen], ignore_index=True)
    data = read_images(facts.workdir, wanted[["image_id", "location"]]) if len(wanted) else {}
    pages = [chosen[i : i + CLASSES_PER_PAGE] for i in range(0, len(chosen), CLASSES_PER_PAGE)]
    paths = []
    for number, page in enumerate(pages, 1):
        rows = [
            (f"{label}  {wnid}", name, [data.get(i) for i in images.image_id]) for label, wnid, name, images in page
        ]
        title = f"Samples {number} of {len(pages)}: labels {page[0][0]} to {page[-1][0]}"
        paths += _save(sample_page(title, rows, per_class), out, f"samples-{number}")
    return paths


# ---------------------------------------------------------------------------------------------
# The card's sections: each returns its Markdown lines


def _table(header: list[str], rows: list[list]) -> list[str]:
    def cell(v):
        return f"{v:,}" if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else str(v)

    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _embed(figures: dict[str, list[str]], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({path})" for path in figures.get(name, [])] + ([""] if name in figures else [])


def _settings(values: dict) -> str:
    """``key=value`` pairs of the values that were set."""
    return ", ".join(
        f"`{k}={v}`" for k, v in values.items() if v not in (None, "None") and (not isinstance(v, (dict, list)) or v)
    )


def section_header(facts: Facts, figures) -> list[str]:
    name = facts.meta.get("synsetforge.dataset", facts.workdir.name)
    lines = [
        f"# Dataset card: {name}",
        "",
        f"Generated by synsetforge {__version__} (`python -m pipeline card`) from the files the stages left in "
        "this folder; every number below comes from them. Parts a person must complete say so.",
        "",
    ]
    verified = facts.verified
    if verified == "no":
        lines += [
            "> **Warning: the labels are UNVERIFIED.** The manifests were built from candidate labels "
            "(`--unverified`): each image carries the class it was searched or listed for, and no annotator "
            "checked it. Expect wrong labels; do not report accuracy on this dataset as if it were verified.",
            "",
        ]
    elif verified == "imported":
        lines += [
            "> **Note: the labels are imported** from an existing dataset's layout; this pipeline's "
            "annotation did not verify them.",
            "",
        ]
    elif verified != "yes":
        lines += [
            "> **Note: whether the labels were verified is unknown** (the manifests carry no "
            "`synsetforge.verified` metadata).",
            "",
        ]
    rules = (facts.download or {}).get("politeness") or {}
    if rules.get("respect_optouts") is False:
        lines += [
            "> **Warning: opt-outs were NOT respected** during download (`RESPECT_OPTOUTS=0`): images whose "
            "owners opted out of AI use (X-Robots-Tag, tdm-reservation) may be in this dataset.",
            "",
        ]
    if rules.get("respect_robots") is False:
        lines += [
            "> **Warning: robots.txt was NOT respected** during download (`RESPECT_ROBOTS=0`): images from "
            "URLs that sites disallow for crawlers may be in this dataset.",
            "",
        ]
    return lines


def section_summary(facts: Facts, figures) -> list[str]:
    counts = {s: len(df) for s, df in facts.splits.items()}
    total = sum(counts.values())
    verified = {
        "yes": "yes, by crowd annotation",
        "no": "**no** (candidate labels)",
        "imported": "imported, not verified here",
    }.get(facts.verified, "unknown")
    rows = [
        ["classes", len(facts.classes)],
        *([f"{s} images", n] for s, n in counts.items()),
        ["images in all splits", total],
        ["labels verified", verified],
        ["built", facts.meta.get("synsetforge.built_at", "unknown")],
        ["manifests fingerprint", f"`{facts.meta.get('synsetforge.fingerprint', 'unknown')[:16]}`"],
    ]
    return ["## At a glance", "", *_table(["", "value"], rows), ""]


def section_motivation(facts: Facts, figures) -> list[str]:
    ran = [
        stage
        for stage, record in (
            ("synsets", facts.synsets_report),
            ("candidates", facts.candidates),
            ("download", facts.download),
            ("dedupe", facts.dedupe),
            ("annotation", facts.annotation),
        )
        if record
    ] + ["manifests"]
    lines = [
        "## Motivation",
        "",
        f"An ImageNet-style image classification dataset of {len(facts.classes):,} WordNet 3.0 noun synsets, "
        "built with synsetforge after ImageNet's recipe (candidate images per synset, downloaded, deduplicated, "
        f"verified by crowd workers, split ILSVRC-style). Stages that left their records here: {', '.join(ran)}.",
        "",
    ]
    chosen = facts.settings("synsets")
    if chosen:
        lines += [f"Classes chosen with: {_settings(chosen)} (subset `{facts.workdir.name}`).", ""]
    lines += [
        "**To complete by the dataset's maintainers** (the pipeline does not record it): who created the "
        "dataset and for which task or gap, on whose behalf, and who funded it.",
        "",
    ]
    return lines


def _class_rows(classes: pd.DataFrame) -> list[list]:
    return [[c.label, f"`{c.wnid}`", c.name, c.train, c.val, c.test] for c in classes.itertuples()]


def section_composition(facts: Facts, figures) -> list[str]:
    classes = facts.classes.sort_values("label")
    lines = [
        "## Composition",
        "",
        f"Each instance is one image (RGB, in the image store `images/`) with one class label. Labels are "
        f"0-based and number the {len(classes):,} kept classes in sorted-wnid order (as torchvision, Kaggle "
        f"and Hugging Face number ILSVRC), so label 0 is `{classes.wnid.iloc[0] if len(classes) else '-'}`; "
        "`manifests/classes.parquet` maps label, wnid, name and gloss.",
        "",
    ]
    split_rows = []
    for s in SPLITS:
        per_class = classes[s]
        split_rows.append(
            [
                s,
                len(facts.splits[s]),
                int((per_class > 0).sum()),
                int(per_class.min()) if len(per_class) else 0,
                f"{per_class.median():g}" if len(per_class) else 0,
                int(per_class.max()) if len(per_class) else 0,
            ]
        )
    lines += _table(["split", "images", "classes with images", "min per class", "median", "max"], split_rows) + [""]
    lines += _embed(figures, "splits", "images per class and split")
    report = facts.manifests_report or {}
    plan = report.get("plan")
    if plan:
        lines += [
            f"Split rules: {_settings(plan)}. Val and test take their images first, then train takes up to "
            "`train_max` of the rest; every cluster of near copies lies in one split.",
            "",
        ]
    small, dropped = report.get("classes_below_min_train") or [], report.get("classes_dropped") or []
    if small:
        lines += [
            f"{len(small):,} classes have fewer than {plan.get('min_train') if plan else '?'} training images "
            f"(ILSVRC-2012's smallest class has 732): {', '.join(f'`{w}`' for w in small[:SHOWN])}"
            f"{' ...' if len(small) > SHOWN else ''}.",
            "",
        ]
    if dropped:
        lines += [
            f"{len(dropped):,} chosen synsets are not in the dataset (no eligible images, or dropped as too "
            f"small): {', '.join(f'`{w}`' for w in dropped[:SHOWN])}{' ...' if len(dropped) > SHOWN else ''}.",
            "",
        ]
    if len(classes) <= LISTED_CLASSES:
        lines += [
            "### Classes",
            "",
            *_table(["label", "wnid", "name", "train", "val", "test"], _class_rows(classes)),
            "",
        ]
    else:
        by_train = classes.sort_values(["train", "label"])
        lines += [
            f"### Smallest and largest classes (by training images; all {len(classes):,} in `classes.parquet`)",
            "",
            *_table(
                ["label", "wnid", "name", "train", "val", "test"],
                _class_rows(by_train.head(SHOWN)) + [["...", "", "", "", "", ""]] + _class_rows(by_train.tail(SHOWN)),
            ),
            "",
        ]
    lines += _composition_facts(facts)
    lines += [
        "### Samples",
        "",
        "Thumbnails per class, the first images of each class in sha256 order (a fixed, arbitrary draw from "
        "all splits)"
        + (f", for {facts.sampled} classes spread over the labels" if len(classes) > facts.sampled else "")
        + ":",
        "",
    ]
    if facts.store is None and "samples" in figures:
        lines += ["The image store `images/` is absent: the thumbnails are placeholders.", ""]
    lines += (
        _embed(figures, "samples", "sample images per class") if "samples" in figures else ["_No samples drawn._", ""]
    )
    return lines


def _composition_facts(facts: Facts) -> list[str]:
    """Sizes, copies across splits and the WordNet make-up: what a user checks before training."""
    rows = facts.rows
    lines = []
    if len(rows):
        longer = np.maximum(rows.width, rows.height)
        lines.append(
            f"- Stored image size: longer side {longer.min():,} to {longer.max():,} px (median "
            f"{longer.median():g}); shorter side from {np.minimum(rows.width, rows.height).min():,} px."
        )
        shared = rows.groupby("sha256").split.nunique()
        near = rows.groupby("phash").split.nunique()
        lines.append(
            f"- Copies across splits, checked from the manifests: {int((shared > 1).sum()):,} identical files "
            f"(sha256) and {int((near > 1).sum()):,} identical pHashes appear in more than one split."
        )
        several = rows.groupby("image_id").wnid.nunique()
        lines.append(f"- Images under more than one class: {int((several > 1).sum()):,}.")
    report = facts.synsets_report
    if report:
        lexnames = ", ".join(f"{k} {v:,}" for k, v in sorted(report.get("lexnames", {}).items(), key=lambda kv: -kv[1]))
        lines.append(f"- WordNet lexicographer files of the chosen synsets: {lexnames}.")
        pairs = report.get("num_ancestor_pairs", 0)
        lines.append(
            f"- Pairs of classes where one is an ancestor of the other: {pairs:,}"
            + (" (an image of the child is also an image of the parent: labels overlap)." if pairs else ".")
        )
        names = report.get("duplicate_names") or {}
        if names:
            shown = "; ".join(f"{n} ({', '.join(ws)})" for n, ws in list(names.items())[:SHOWN])
            lines.append(f"- Class names that several classes share (tell them apart by wnid): {shown}.")
    else:
        lines.append("- WordNet make-up of the classes: unknown (`synsets_report.json` is absent).")
    if facts.synsets is not None:
        kept = facts.synsets[facts.synsets.wnid.isin(facts.classes.wnid)]
        people = int((kept.lexname == "noun.person").sum())
        lines.append(
            f"- Classes of people (`noun.person`): {people:,}"
            + (". Their images show identifiable people: see Uses and the licences." if people else ".")
        )
    return lines + [""]


def section_collection(facts: Facts, figures) -> list[str]:
    lines = ["## Collection process", "", "### Sources and queries", ""]
    rows = facts.rows
    sources = rows.source.value_counts()
    lines += _table(
        ["source", "images in the dataset", "what it is"],
        [[s, int(n), SOURCE_NOTES.get(s, "")] for s, n in sources.items()],
    ) + [""]
    if facts.candidates:
        c = facts.candidates
        lines.append(
            f"The candidates stage gathered {c.get('candidates', 0):,} candidate URLs from `{c.get('source', '?')}` "
            f"for {c.get('classes', 0):,} classes ({len(c.get('classes_without_candidates', [])):,} without any)."
        )
        settings = facts.settings("candidates")
        if settings:
            lines.append(f"Settings: {_settings(settings)}.")
        lines.append("")
    else:
        lines += facts.missing("candidates", "candidates_report.json")
    if facts.synsets is not None:
        queries = facts.synsets[facts.synsets.wnid.isin(facts.classes.wnid)]
        counts = queries.queries.map(len)
        examples = "; ".join(f"`{r.wnid}`: {', '.join(r.queries[:4])}" for r in queries.head(3).itertuples())
        lines += [
            f"Search phrases (used by the search sources): {int(counts.sum()):,} over the classes, "
            f"{counts.min()} to {counts.max()} per class, every lemma plus ImageNet's expansion with words of "
            f"ancestor synsets found in the gloss. For example {examples}.",
            "",
        ]
    else:
        lines += ["The search phrases are unknown (`synsets.parquet` is absent).", ""]
    lines += _embed(figures, "sources", "images by source and by licence")
    lines += ["### Download", ""]
    if not facts.download:
        return (
            lines
            + facts.missing("download", "download_stats.json")
            + ["The politeness rules in force when the images were fetched are therefore unknown as well.", ""]
        )
    return lines + _download_lines(facts, figures) + _politeness_lines(facts.download.get("politeness"))


def _download_lines(facts: Facts, figures) -> list[str]:
    d = facts.download
    candidates = d.get("candidates", 0)
    meaning = d.get("status_meaning", {})
    lines = [
        f"{candidates:,} candidate URLs were tried; {d.get('ok', 0):,} ({_pct(d.get('ok', 0), candidates)}) were "
        f"fetched, decoded and stored ({d.get('bytes_received', 0) / 1e6:,.1f} MB received, "
        f"{d.get('bytes_stored', 0) / 1e6:,.1f} MB stored).",
        "",
    ]
    lines += _table(
        ["status", "URLs", "share", "meaning"],
        [[s, n, _pct(n, candidates), meaning.get(s, "")] for s, n in d.get("statuses", {}).items()],
    ) + [""]
    lines += _embed(figures, "download", "download outcomes by status")
    hosts = list(d.get("top_hosts", {}).items())[:SHOWN]
    if hosts:
        lines += [
            f"Hosts that served the most candidates (top {len(hosts)}):",
            "",
            *_table(["host", "URLs", "ok"], [[h, sum(c.values()), c.get("ok", 0)] for h, c in hosts]),
            "",
        ]
    below = d.get("classes_below_min", [])
    if below:
        lines += [f"{len(below):,} classes got fewer than {d.get('min_per_class')} images.", ""]
    finished = facts.stamps["download"].get("finished_at")
    if finished:
        lines += [f"Downloaded: {finished} (images served later may have changed or gone).", ""]
    return lines


def _politeness_lines(rules: dict | None) -> list[str]:
    lines = ["### Politeness", ""]
    if not rules:
        return lines + [
            "_Unknown: `download_stats.json` has no politeness section, so the rules in force are unknown._",
            "",
        ]
    stopped = rules.get("stopped", {})
    directives = ", ".join(rules.get("optout_directives", []))
    if rules.get("respect_optouts"):
        lines.append(
            f"- **Opt-outs respected**: an answer whose `X-Robots-Tag` carried {directives} (for every "
            "crawler or for synsetforge), or whose `tdm-reservation` header was 1, was neither read nor stored: "
            f"{stopped.get('opted_out', 0):,} URLs."
        )
    else:
        lines.append(
            "- **Opt-outs were NOT respected** (`RESPECT_OPTOUTS=0`): `X-Robots-Tag` and `tdm-reservation` "
            "opt-outs were ignored, so images whose owners opted out may be in this dataset."
        )
    if rules.get("respect_robots"):
        lines.append(
            "- **robots.txt respected** for the `synsetforge` token: "
            f"{stopped.get('disallowed_by_robots', 0):,} disallowed URLs were never requested, and "
            f"{stopped.get('robots_unavailable', 0):,} URLs of hosts whose robots.txt failed every try were skipped."
        )
    else:
        lines.append(
            "- **robots.txt was NOT respected** (`RESPECT_ROBOTS=0`): URLs that sites disallow for crawlers "
            "were fetched."
        )
    blocklisted = rules.get("blocklisted_domains", 0)
    lines.append(
        f"- Domains blocklist: {blocklisted:,} domains, never contacted"
        + (f": {stopped.get('blocked_domain', 0):,} URLs." if blocklisted else " (no blocklist given).")
    )
    rate = rules.get("host_rate")
    if rate:
        lines.append(
            f"- Pacing: at most {rate:g} requests a second per host, in bursts of up to "
            f"{rules.get('host_burst', 0):g}; a 429 or 503 halved the host's rate and paused it."
        )
    elif rate is not None:
        lines.append("- Pacing: none (`HOST_RATE=0`, or the images came from the local demo host, which is not paced).")
    per_host = rules.get("stopped_per_top_host") or {}
    if per_host:
        lines += [
            "",
            "URLs stopped by a rule, per host:",
            "",
            *_table(
                ["host", "stopped"],
                [[h, ", ".join(f"{s} {n:,}" for s, n in c.items())] for h, c in list(per_host.items())[:SHOWN]],
            ),
        ]
    return lines + [""]


def section_preprocessing(facts: Facts, figures) -> list[str]:
    lines = ["## Preprocessing and cleaning", "", "### Resizing and re-encoding", ""]
    normalise = facts.settings("download").get("normalise")
    if normalise:
        side = normalise.get("max_side")
        lines.append(
            f"- Rule: EXIF orientation applied, converted to 8-bit RGB, the longer side brought down to {side} px"
            if side
            else "- Rule: EXIF orientation applied, converted to 8-bit RGB, size kept"
        )
        lines[-1] += (
            f", re-encoded as JPEG quality {normalise.get('quality')}; images under "
            f"{normalise.get('min_side')} px on the shorter side were refused"
            + (
                "; every original was kept byte for byte."
                if normalise.get("keep_original")
                else "; an upright RGB JPEG needing no change was stored byte for byte."
            )
        )
    else:
        lines.append("- Rule: unknown (the download stage's settings are not in `.stages/download.json`).")
    store = facts.store
    if store:
        formats = ", ".join(f"{f} {n:,}" for f, n in store["formats"].most_common())
        originals = ", ".join(f"{f} {n:,}" for f, n in store["original_formats"].most_common())
        spread = store["original_longer_side"]
        lines += [
            f"- The dataset's {store['images']:,} images: stored as {formats}; fetched as {originals}; "
            f"{store['resized']:,} resized and {store['converted']:,} converted to another format.",
            *(
                [
                    f"- Longer side as fetched: {spread['min']:,.0f} to {spread['max']:,.0f} px, median "
                    f"{spread['median']:,.0f}."
                ]
                if spread
                else []
            ),
            "",
        ]
    else:
        lines += ["- What was resized or converted: unknown (no image store `images/shard-*.parquet`).", ""]
    lines += ["### Duplicates", ""]
    if not facts.dedupe:
        return lines + facts.missing("dedupe", "dedupe/report.json")
    return lines + _dedupe_lines(facts.dedupe, figures)


def _dedupe_lines(d: dict, figures) -> list[str]:
    meaning = d.get("reason_meaning", {})
    dropped = d.get("dropped", {})
    lines = [
        f"{d.get('images', 0):,} images hashed (pHash and dHash of the image, its mirror and its inner part); "
        f"{d.get('kept', 0):,} kept, {sum(dropped.values()):,} dropped. Settings: {_settings(d.get('settings', {}))} "
        "(pHash bits for a pair, dHash bits to verify it). "
        f"{d.get('clusters_with_copies', 0):,} clusters hold copies; the largest has {d.get('largest_cluster', 0)} images.",
        "",
    ]
    lines += _table(
        ["reason", "images", "kept", "meaning"],
        [[r, n, "no" if r in dropped else "yes", meaning.get(r, "")] for r, n in d.get("reasons", {}).items()],
    )
    lines += [""] + _embed(figures, "dedupe", "dedupe counts by reason")
    conflicts = d.get("conflicts", [])
    settled = [c for c in conflicts if c.get("settled_in")]
    lines.append(
        f"Conflicts, clusters of copies under two or more classes: {len(conflicts):,}; {len(settled):,} settled "
        "by annotation labels, the rest dropped from every class."
    )
    if conflicts:
        lines += [
            "",
            *_table(
                ["cluster", "classes", "images", "settled in"],
                [
                    [
                        c.get("cluster_id"),
                        ", ".join(c.get("wnids", [])),
                        len(c.get("image_ids", [])),
                        c.get("settled_in") or "-",
                    ]
                    for c in conflicts[:SHOWN]
                ],
            ),
        ]
        if len(conflicts) > SHOWN:
            lines.append(
                f"\n... and {len(conflicts) - SHOWN:,} more in `dedupe/report.json` and `dedupe/contact_sheet.html`."
            )
    unreadable = d.get("unreadable_files", [])
    if unreadable:
        lines.append(f"\n{len(unreadable):,} files could not be read and are not in the dataset.")
    return lines + [""]


def section_labelling(facts: Facts, figures) -> list[str]:
    lines = ["## Labelling", ""]
    if facts.verified == "no":
        lines += [
            "The manifests use **unverified candidate labels**: whatever annotation exists below did not "
            "decide which images entered the splits.",
            "",
        ]
    a = facts.annotation
    if not a:
        return lines + facts.missing("labelling", "annotation/report.json")
    settings = a.get("settings", {})
    method = settings.get("method", "unknown")
    lines += [
        f"Crowd verification, ImageNet's way: workers saw one synset (lemmas, gloss, parent) and a grid of "
        f"candidate images, and ticked those that show it. Aggregation: `{method}`, {METHODS.get(method, '')}. "
        f"Settings: {_settings(settings)}.",
        "",
    ]
    packing = facts.settings("annotate-export-1").get("packing")
    if packing:
        lines += [
            f"HITs (round 1): {packing['per_hit']} candidates plus {packing['positives']} known positives and "
            f"{packing['negatives']} known negatives, shuffled; {packing['votes']} votes per image "
            f"({packing['initial_votes']} for an initial {packing['initial']} images per synset); later rounds "
            f"ask {packing['votes_later']} more about the images still undecided.",
            "",
        ]
    asked = a.get("images_asked", 0)
    lines += _table(
        ["", ""],
        [
            ["rounds", ", ".join(map(str, a.get("rounds", [])))],
            ["votes imported", a.get("votes", 0)],
            ["votes on candidates counted", a.get("candidate_votes_counted", 0)],
            ["images asked about", asked],
            ["accepted", f"{a.get('accepted', 0):,} ({_pct(a.get('accepted', 0), asked)})"],
            ["rejected", f"{a.get('rejected', 0):,} ({_pct(a.get('rejected', 0), asked)})"],
            ["undecided", f"{a.get('undecided', 0):,} ({_pct(a.get('undecided', 0), asked)})"],
            ["mean votes per image", a.get("mean_votes_per_image", "unknown")],
        ],
    ) + [""]
    lines += _round_lines(facts) + _agreement_lines(facts) + _worker_lines(facts)
    lines += _embed(figures, "annotation", "votes per image, selection frequency and worker accuracy")
    return lines


def _round_lines(facts: Facts) -> list[str]:
    if facts.votes is None:
        return ["Votes per round: unknown (`annotation/votes.parquet` is absent).", ""]
    per_round = facts.votes.groupby("round").agg(
        votes=("answer", "size"), workers=("worker_id", "nunique"), images=("image_id", "nunique")
    )
    return [
        "Per round:",
        "",
        *_table(
            ["round", "votes", "images", "workers"],
            [[int(r), int(v.votes), int(v.images), int(v.workers)] for r, v in per_round.iterrows()],
        ),
        "",
    ]


def _agreement_lines(facts: Facts) -> list[str]:
    lines = ["### Agreement", ""]
    if facts.labels is not None and len(facts.labels):
        labels = facts.labels
        accepted = labels[labels.accepted]
        lines.append(
            f"- Mean selection frequency (share of votes that ticked an image, ImageNetV2's measure): "
            f"{labels.selection_frequency.mean():.3f} over all {len(labels):,} images, "
            f"{accepted.selection_frequency.mean() if len(accepted) else float('nan'):.3f} over the accepted ones."
        )
        lines.append(
            f"- Votes per image: median {labels.votes_total.median():g}, from {labels.votes_total.min()} to "
            f"{labels.votes_total.max()}."
        )
        in_set = facts.rows
        if in_set.confidence.notna().any():
            lines.append(
                f"- Confidence of the images in the splits: median {in_set.confidence.median():.4f}, lowest "
                f"{in_set.confidence.min():.4f}."
            )
    else:
        lines.append("- Selection frequencies: unknown (`annotation/labels.parquet` is absent).")
    stats = agreement(facts.votes, facts.workers) if facts.votes is not None else None
    if stats:
        lines.append(
            f"- Over the {stats['images']:,} images with two or more counted votes: "
            f"{stats['unanimous']:.1%} unanimous; {stats['observed']:.1%} of pairs of votes on one image agree "
            f"(chance alone, with {stats['yes_share']:.1%} yes votes: {stats['chance']:.1%}); "
            + (
                f"Fleiss' kappa {stats['kappa']:.3f}"
                if not math.isnan(stats["kappa"])
                else "Fleiss' kappa undefined (the votes are all one answer)"
            )
            + " (images weighted by their pairs of votes, as votes per image vary)."
        )
    elif facts.votes is None:
        lines.append("- Agreement between workers: unknown (`annotation/votes.parquet` is absent).")
    return lines + [""]


def _worker_lines(facts: Facts) -> list[str]:
    lines = ["### Workers", ""]
    w = facts.workers
    if w is None:
        return lines + ["Unknown: `annotation/workers.parquet` is absent.", ""]
    accuracy = w.accuracy.dropna()
    answers, correct = int(w.control_answers.sum()), int(w.control_correct.sum())
    lines.append(
        f"- {len(w):,} workers answered {int(w.assignments.sum()):,} HITs (median {w.assignments.median():g} each); "
        f"{int(w.excluded.sum()):,} were excluded for accuracy on the controls below the threshold, and "
        "their votes are not counted."
    )
    if len(accuracy):
        lines.append(
            f"- Accuracy on control images, {len(accuracy):,} workers who saw any: min {accuracy.min():.2f}, "
            f"median {accuracy.median():.2f}, mean {accuracy.mean():.2f}, max {accuracy.max():.2f}; "
            f"{correct:,} of {answers:,} control answers right ({_pct(correct, answers)})."
        )
    no_controls = int(w.accuracy.isna().sum())
    if no_controls:
        lines.append(f"- {no_controls:,} workers saw no controls: their accuracy is unknown and their votes count.")
    return lines + [""]


def section_uses(facts: Facts, figures) -> list[str]:
    test = len(facts.splits["test"])
    lines = [
        "## Uses",
        "",
        f"- Intended: training and evaluating image classifiers over these {len(facts.classes):,} classes, "
        "ILSVRC-style (train to fit, val to tune, test to report once).",
    ]
    if test:
        half = 1.96 * math.sqrt(0.25 / test) * 100
        lines.append(
            f"- The test split has {test:,} images: a top-1 accuracy near 50% measured on it is known to "
            f"about ±{half:.1f} percentage points (95% binomial interval)."
        )
    else:
        lines.append("- The test split is empty: report results on val, and say so.")
    if facts.verified == "no":
        lines.append("- **Not for reporting accuracy** as if on verified labels: no person checked them.")
    lines += [
        "- Out of scope: identifying, tracking or profiling people; inferring attributes of people from "
        "images; any use that treats the classes as a sample of the world: images come from what the sources "
        "index and what their hosts still serve.",
        "- Biases to expect: the sources' coverage (language of the queries, popular hosts), the WordNet "
        "synsets chosen, and the annotators' judgement of each gloss.",
        "",
    ]
    return lines


def section_licences(facts: Facts, figures) -> list[str]:
    rows = facts.rows
    licences = rows.license.fillna("(no licence given)").value_counts()
    lines = [
        "## Licences",
        "",
        "The images keep their own licences and owners: the dataset's manifests and metadata do not relicense "
        "them. Each manifest row has the image's `source_url` and the `license` its source gave.",
        "",
        *_table(
            ["licence", "images", "share"],
            [[name, int(n), _pct(n, len(rows))] for name, n in licences.head(SHOWN * 2).items()],
        ),
        "",
    ]
    if len(licences) > SHOWN * 2:
        lines += [f"... and {len(licences) - SHOWN * 2:,} more licences in the manifests.", ""]
    unlicensed = int(rows.license.isna().sum())
    if unlicensed:
        lines += [
            f"{unlicensed:,} images ({_pct(unlicensed, len(rows))}) carry no licence from their source: their "
            "terms are unknown, so treat them as all rights reserved.",
            "",
        ]
    if "urllist" in set(rows.source):
        lines += [
            "Images from a URL list: where the list is ImageNet's, ImageNet's terms of access apply (use for "
            "non-commercial research and education; the images belong to their owners, and ImageNet does not "
            "own their copyright).",
            "",
        ]
    return lines


def section_maintenance(facts: Facts, figures) -> list[str]:
    name = facts.meta.get("synsetforge.dataset", facts.workdir.name)
    lines = [
        "## Maintenance",
        "",
        f"- Built {facts.meta.get('synsetforge.built_at', 'at an unknown time')} with synsetforge "
        f"{facts.meta.get('synsetforge.version', '(version unknown)')}; manifests fingerprint "
        f"`{facts.meta.get('synsetforge.fingerprint', 'unknown')}`.",
        f"- Rebuild: run the stages again with `SUBSET={name}` (`make synsets candidates download dedupe`, the "
        "annotation rounds, `make manifests`), then `python -m pipeline card`; each stage's settings are in "
        "`.stages/<stage>.json`. Source URLs go dead over time; the image store keeps the bytes.",
    ]
    checks = (facts.validation or {}).get("checks")
    if checks:
        failed = [n for n, c in checks.items() if not c.get("ok")]
        lines.append(
            f"- Validation (`validation.json`): {len(checks) - len(failed)} of {len(checks)} checks passed"
            + (f"; failed: {', '.join(failed)}." if failed else ".")
        )
    else:
        lines.append("- Validation: not run (`python -m pipeline validate` writes `validation.json`).")
    if facts.unknown:
        lines.append(f"- Sections with unknown facts: {', '.join(facts.unknown)}.")
    lines += [
        "- **To complete by the maintainers**: who maintains the dataset, how to reach them, how errors and "
        "takedown requests are handled, and whether it will be updated.",
        "",
    ]
    return lines


SECTIONS = (
    section_header,
    section_summary,
    section_motivation,
    section_composition,
    section_collection,
    section_preprocessing,
    section_labelling,
    section_uses,
    section_licences,
    section_maintenance,
)


def render(facts: Facts, figures: dict[str, list[str]]) -> str:
    return "\n".join(line for section in SECTIONS for line in section(facts, figures)).rstrip() + "\n"
