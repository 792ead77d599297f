from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from wordnet_facts import REPO, Facts, data_noun_path

from pipeline.cli import main

SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def facts() -> Facts:
    return Facts(data_noun_path())


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): real-data checks skipped")
    return SHARED


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (its own browser download fails here).
    Per module: Playwright's sync API keeps an event loop running in this thread, which
    asyncio.run in later tests must not find."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt install chromium): browser tests skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Outcome:
    status: int
    err: str


@pytest.fixture
def pipeline(capsys):
    """Run ``python -m pipeline ARGS`` in this process (WordNet stays loaded between runs)."""

    def run(*args: str | Path) -> Outcome:
        status = main([str(a) for a in args])
        return Outcome(status, capsys.readouterr().err)

    return run


def run_cli(*args: str | Path, env: dict | None = None, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` as a separate process, as a user runs it, with ``env`` added
    to this process's environment and the variables in ``unset`` removed."""
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
    )


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def write_synsets(workdir: Path, wnids: list[str], queries: dict[str, list[str]] | None = None) -> Path:
    """A synsets.parquet as the synsets stage writes it, for stages that only read it."""
    from pipeline import schemas
    from pipeline.tables import write_table

    wnids = sorted(wnids)
    columns = {
        "wnid": wnids,
        "class_index": list(range(len(wnids))),
        "name": [f"class {w}" for w in wnids],
        "lemmas": [[f"class {w}"] for w in wnids],
        "gloss": ["a test class"] * len(wnids),
        "lexname": ["noun.artifact"] * len(wnids),
        "depth": [9] * len(wnids),
        "parents": [["n00021939"]] * len(wnids),
        "num_hyponyms": [0] * len(wnids),
        "is_leaf": [True] * len(wnids),
        "queries": [(queries or {}).get(w, [f"class {w}"]) for w in wnids],
    }
    return write_table(columns, workdir / "synsets.parquet", schemas.SYNSETS) and workdir / "synsets.parquet"


def jpeg(image, quality: int = 90, **options) -> bytes:
    """A Pillow image as JPEG bytes."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def write_images(workdir: Path, images: list[tuple[str, str, bytes]], shard: int = 0) -> Path:
    """An image store shard as the download stage writes it, from (image_id, wnid, JPEG bytes):
    width and height are the upright size."""
    import hashlib

    from pipeline import pixels, store
    from pipeline.hashing import hashes_of_bytes
    from pipeline.layout import Layout

    path = store.shard_path(Layout(workdir).images, shard)
    writer = store.ShardWriter(path)
    for rank, (image_id, wnid, data) in enumerate(images):
        width, height = pixels.size(data)
        writer.add(
            {
                "image_id": image_id,
                "wnid": wnid,
                "image": data,
                "sha256": hashlib.sha256(data).hexdigest(),
                "width": width,
                "height": height,
                "format": "JPEG",
                **hashes_of_bytes(data)._asdict(),
                "original_width": width,
                "original_height": height,
                "original_format": "JPEG",
                "source": "urllist",
                "url": f"http://images.example/{image_id}.jpg",
                "rank": rank,
                "license": None,
            }
        )
    writer.close()
    return path


def write_labels(workdir: Path, images: list[tuple[str, str]], **columns: list) -> Path:
    """labels.parquet as annotate-import writes it: every (image_id, wnid) accepted and
    decided by 3 of 3 votes, unless ``columns`` give a column's values (one per image)."""
    from pipeline import schemas
    from pipeline.layout import Layout
    from pipeline.tables import write_table

    n = len(images)
    labels = {
        "image_id": [i for i, _ in images],
        "wnid": [w for _, w in images],
        "accepted": [True] * n,
        "decided": [True] * n,
        "confidence": [0.9] * n,
        "votes_yes": [3] * n,
        "votes_total": [3] * n,
        "selection_frequency": [1.0] * n,
        "method": ["majority"] * n,
        "round": [1] * n,
    }
    path = Layout(workdir).labels
    write_table(labels | columns, path, schemas.LABELS)
    return path
