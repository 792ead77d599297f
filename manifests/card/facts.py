"""What the stages left in a dataset folder, read once for the card.

Only the manifests are required. Every other table and report may be absent (a dataset
imported from a folder has no download report, an unverified build no annotation): its field
is then ``None`` and the section that needs it says its facts are unknown. Reports are read
against their declarations (``pipeline.schemas``), so a key a stage renamed fails here rather
than showing as "0" on the card.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schemas, store
from pipeline.errors import InputError
from pipeline.layout import SPLITS, Layout, annotate_export_stage
from pipeline.summary import newest_run
from pipeline.tables import read_report, read_table

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
STORE_COLUMNS = ["image_id", "format", "original_format", "width", "height", "original_width", "original_height"]
SYNSET_COLUMNS = ["wnid", "name", "lexname", "queries"]
VOTE_COLUMNS = ["round", "worker_id", "image_id"]
BOX_COLUMNS = ["image_id", "drawn_by", "approved_by", "source"]
# The first round's HIT export: how HITs were packed (later rounds only ask again).
FIRST_ROUND = annotate_export_stage(1)


@dataclass
class Facts:
    """Everything the card says, read once; ``None`` where a stage left nothing."""

    layout: Layout
    meta: dict[str, str]  # the manifests' metadata: synsetforge.dataset, .verified, .built_at...
    splits: dict[str, pd.DataFrame]
    classes: pd.DataFrame
    manifests_report: dict | None
    synsets: pd.DataFrame | None
    synsets_report: dict | None
    candidates_report: dict | None
    download_report: dict | None
    dedupe_report: dict | None
    first_round_report: dict | None
    annotation_report: dict | None
    labels: pd.DataFrame | None
    workers: pd.DataFrame | None
    votes: pd.DataFrame | None
    store: dict | None
    validate_report: dict | None
    boxes: pd.DataFrame | None  # manifests/boxes.parquet: the boxes of the manifests' images
    box_sources: pd.DataFrame | None  # annotation/boxes.parquet's image_id, drawn_by, approved_by, source
    run: dict | None = None  # the newest finished baseline run's metrics.json, with its ``path``
    unknown: list[str] = field(default_factory=list)  # sections the card could not tell, as it renders them
    sampled: int = 0  # classes in the sample grid, as drawn

    @cached_property
    def rows(self) -> pd.DataFrame:
        """Every split's manifest rows, with their ``split``."""
        return pd.concat([df.assign(split=s) for s, df in self.splits.items()], ignore_index=True)

    @property
    def dataset(self) -> str:
        """The dataset's name, as the manifests record it (else its folder's)."""
        return self.meta.get("synsetforge.dataset", self.layout.root.name)

    @property
    def verified(self) -> str:
        return self.meta.get("synsetforge.verified", "unknown")

    def name(self, path: Path) -> str:
        """``path`` as the card names it: relative to the dataset folder."""
        return Path(path).relative_to(self.layout.root).as_posix()

    def missing(self, section: str, *paths: Path) -> list[str]:
        """The card's line for a section whose inputs are absent; remembered for the maintenance section."""
        self.unknown.append(section)
        names = " and ".join(f"`{self.name(p)}`" for p in paths)
        return [
            f"_Unknown: {names} {'is' if len(paths) == 1 else 'are'} absent from the dataset folder, "
            f"so the card cannot say this section's facts._",
            "",
        ]


def manifest_tables(layout: Layout) -> list[Path]:
    """The manifests the card describes, or an error saying how to build them."""
    tables = [*(layout.manifest(s) for s in SPLITS), layout.classes]
    for path in tables:
        if not path.exists():
            raise InputError("no manifests: the card describes a built dataset, run `make manifests` first", file=path)
    return tables


def optional_inputs(layout: Layout) -> list[Path]:
    """What the card reads when a stage left it: the runner reruns the card when one changes."""
    reports = ("synsets", "candidates", "download", "dedupe", FIRST_ROUND, "annotate-import", "manifests", "validate")
    paths = [
        layout.synsets,
        *(layout.report(stage) for stage in reports),
        layout.labels,
        layout.workers,
        layout.votes,
        layout.images,
        layout.box_manifest,
        layout.boxes,
        *layout.run_metrics(),
    ]
    return [p for p in paths if p.exists()]


def _frame(path: Path, schema: pa.Schema, columns: list[str] | None = None) -> pd.DataFrame | None:
    return read_table(path, schema, columns=columns).to_pandas() if path.exists() else None


def load_facts(layout: Layout) -> Facts:
    manifest_tables(layout)
    splits = {s: read_table(layout.manifest(s), schemas.MANIFEST, columns=MANIFEST_COLUMNS).to_pandas() for s in SPLITS}
    metadata = pq.read_schema(layout.classes).metadata or {}

    def report(stage: str, declaration: schemas.Report) -> dict | None:
        return read_report(layout.report(stage), declaration, missing_ok=True)

    return Facts(
        layout=layout,
        meta={k.decode(): v.decode() for k, v in metadata.items()},
        splits=splits,
        classes=read_table(layout.classes, schemas.CLASSES).to_pandas(),
        manifests_report=report("manifests", schemas.MANIFESTS_REPORT),
        synsets=_frame(layout.synsets, schemas.SYNSETS, SYNSET_COLUMNS),
        synsets_report=report("synsets", schemas.SYNSETS_REPORT),
        candidates_report=report("candidates", schemas.CANDIDATES_REPORT),
        download_report=report("download", schemas.DOWNLOAD_REPORT),
        dedupe_report=report("dedupe", schemas.DEDUPE_REPORT),
        first_round_report=report(FIRST_ROUND, schemas.ANNOTATE_EXPORT_REPORT),
        annotation_report=report("annotate-import", schemas.ANNOTATE_IMPORT_REPORT),
        labels=_frame(layout.labels, schemas.LABELS),
        workers=_frame(layout.workers, schemas.WORKERS),
        votes=_frame(layout.votes, schemas.VOTES, VOTE_COLUMNS),
        store=store_facts(layout, set().union(*(set(df.image_id) for df in splits.values()))),
        validate_report=report("validate", schemas.VALIDATE_REPORT),
        boxes=_frame(layout.box_manifest, schemas.BOX_MANIFEST),
        box_sources=_frame(layout.boxes, schemas.BOXES, BOX_COLUMNS),
        run=newest_run(layout),
    )


def store_facts(layout: Layout, image_ids: set[str]) -> dict | None:
    """How the dataset's images were stored: formats and resizes, from the store's columns
    (never its bytes), counted over the images the manifests use."""
    if not store.shards(layout.images):
        return None
    images = store.read_images(layout.images, STORE_COLUMNS).to_pandas()
    images = images[images.image_id.isin(image_ids)]
    resized = (images.width != images.original_width) | (images.height != images.original_height)
    converted = images.format != images.original_format
    return {
        "images": len(images),
        "formats": Counter(images.format),
        "original_formats": Counter(images.original_format),
        "resized": int(resized.sum()),
        "converted": int(converted.sum()),
        "original_longer_side": _spread(np.maximum(images.original_width, images.original_height)),
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
