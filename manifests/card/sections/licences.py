"""Licences, the part of a datasheet's distribution questions a user needs: the images keep the
licences their sources gave, counted from the manifests."""

from __future__ import annotations

from ..facts import Facts
from .markdown import SHOWN, pct, table, text


def section_licences(facts: Facts, figures) -> list[str]:
    rows = facts.rows
    licences = rows.license.fillna("(no licence given)").value_counts()
    lines = [
        "## Licences",
        "",
        "The images keep their own licences and owners: the dataset's manifests and metadata do not relicense "
        "them. Each manifest row has the image's `source_url` and the `license` its source gave.",
        "",
        *table(
            ["licence", "images", "share"],
            [[text(name), int(n), pct(n, len(rows))] for name, n in licences.head(SHOWN * 2).items()],
        ),
        "",
    ]
    if len(licences) > SHOWN * 2:
        lines += [f"... and {len(licences) - SHOWN * 2:,} more licences in the manifests.", ""]
    unlicensed = int(rows.license.isna().sum())
    if unlicensed:
        lines += [
            f"{unlicensed:,} images ({pct(unlicensed, len(rows))}) carry no licence from their source: their "
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
