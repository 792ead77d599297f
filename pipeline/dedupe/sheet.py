"""The contact sheet: one self-contained HTML page for a person to judge the threshold.

It shows the conflicts (copies under two classes), the largest clusters, and the verified
pairs farthest apart (at or just inside the radius), each image as a small inline JPEG
with its class, reason and distance. If the far pairs look like different photos, lower
RADIUS or VERIFY; if the largest clusters look like one photo, the defaults hold.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline import pixels
from pipeline.files import atomic_write_text
from pipeline.nearcopies import MATCH_REASONS, DedupeSettings

from .clusters import Clustering

CLUSTERS = 30  # clusters shown per section
FAR_PAIRS = 40  # pairs shown near the radius
MEMBERS = 12  # images shown per cluster
THUMB = 128
THUMB_QUALITY = 75

STYLE = """
body { font: 14px sans-serif; margin: 1em 2em; }
.row { display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0 14px; }
figure { margin: 0; width: 132px; font-size: 11px; }
figure img { max-width: 128px; max-height: 128px; display: block; border: 2px solid #ccc; }
figure.kept img { border-color: #2a2; }
figcaption { overflow-wrap: anywhere; }
"""


def write(
    path: Path,
    result: Clustering,
    hashes: pa.Table,
    settings: DedupeSettings,
    load: Callable[[pa.Table, list[str]], dict[str, bytes]],
    clusters: int = CLUSTERS,
) -> None:
    table = result.table
    cluster_id = table.column("cluster_id").to_numpy()
    sizes = np.bincount(cluster_id)
    reason = np.array(table.column("reason").to_pylist(), dtype=object)
    conflicts = sorted(set(cluster_id[reason == "conflict"].tolist()))[:clusters]
    largest = [int(c) for c in np.argsort(-sizes, kind="stable")[:clusters] if sizes[c] > 1]
    pairs = result.pairs
    far = np.argsort(-pairs.distance.astype(int), kind="stable")[:FAR_PAIRS]

    members = {c: np.flatnonzero(cluster_id == c)[:MEMBERS] for c in set(conflicts) | set(largest)}
    rows = set(np.concatenate([*members.values(), pairs.left[far], pairs.right[far], np.zeros(0, int)]).tolist())
    image_id = table.column("image_id").to_pylist()
    images = load(hashes, [image_id[r] for r in sorted(rows)])
    column = {name: table.column(name).to_pylist() for name in ("wnid", "reason", "distance", "keep")}

    def figure(row: int, note: str = "") -> str:
        data = images.get(image_id[row])
        img = f'<img src="data:image/jpeg;base64,{_thumbnail(data)}">' if data else "<p>(bytes not found)</p>"
        caption = (
            f"{html.escape(image_id[row])}<br>{html.escape(column['wnid'][row])} · "
            f"{column['reason'][row]} · {column['distance'][row]} bits{note}"
        )
        kept = ' class="kept"' if column["keep"][row] else ""
        return f"<figure{kept}>{img}<figcaption>{caption}</figcaption></figure>"

    def cluster_rows(ids: list[int]) -> str:
        return "".join(
            f"<h3>cluster {c}: {sizes[c]} images</h3><div class=row>"
            + "".join(figure(int(r)) for r in members[c])
            + "</div>"
            for c in ids
        )

    pair_rows = "".join(
        f"<div class=row>{figure(int(pairs.left[k]))}{figure(int(pairs.right[k]))}"
        f"<p>{pairs.distance[k]} bits apart ({MATCH_REASONS[pairs.reason[k]]})</p></div>"
        for k in far
    )
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>dedupe contact sheet</title>"
        f"<style>{STYLE}</style></head><body><h1>dedupe contact sheet</h1>"
        f"<p>{table.num_rows} images, radius {settings.radius} pHash bits, verified within {settings.verify} "
        f"dHash bits. A green border marks the image a cluster keeps.</p>"
        f"<h2>Conflicts: one image under two classes ({len(conflicts)} shown)</h2>{cluster_rows(conflicts) or '<p>none</p>'}"
        f"<h2>Largest clusters ({len(largest)} shown)</h2>{cluster_rows(largest) or '<p>none</p>'}"
        f"<h2>Pairs farthest apart within the radius ({len(far)} shown)</h2>{pair_rows or '<p>none</p>'}"
        f"</body></html>\n"
    )
    atomic_write_text(path, page)


def _thumbnail(data: bytes) -> str:
    """A small JPEG of the image as every stage reads it (upright, RGB); '' when it does not decode."""
    try:
        image = pixels.decode(data, at_least=(THUMB, THUMB))
    except pixels.DECODE_ERRORS:
        return ""
    image.thumbnail((THUMB, THUMB))
    return base64.b64encode(pixels.as_jpeg(image, THUMB_QUALITY)).decode()
