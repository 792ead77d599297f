"""The card's YAML front matter: the Hugging Face Hub's dataset card metadata, which
``huggingface_hub.DatasetCard`` reads as ``.data`` and the Hub shows and searches by.

Keys and values after the Hub's card spec (hub-docs ``datasetcard.md``) and
``huggingface_hub.DatasetCardData``: ``license`` an identifier of the Hub's licence list
(hub-docs ``repositories-licenses.md``), or ``other`` with ``license_name`` and
``license_link``, or ``unknown``; ``size_categories`` one of its buckets; ``task_categories``
and ``task_ids`` from its task list. Each value is written as JSON, which is YAML (a flow
scalar or collection), so no YAML writer is needed and no text from the data can break the block.
"""

from __future__ import annotations

import json
import re

from .facts import Facts

# The Creative Commons entries of the Hub's licence list: an image licence outside it has no Hub id.
HUB_LICENSES = {
    "cc0-1.0",
    *(f"cc-by-{v}" for v in ("2.0", "2.5", "3.0", "4.0")),
    *(f"cc-by-sa-{v}" for v in ("3.0", "4.0")),
    *(f"cc-by-nc-{v}" for v in ("2.0", "3.0", "4.0")),
    "cc-by-nd-4.0",
    *(f"cc-by-nc-nd-{v}" for v in ("3.0", "4.0")),
    *(f"cc-by-nc-sa-{v}" for v in ("2.0", "3.0", "4.0")),
}
# How the sources name CC licences: Commons and Flickr "CC BY-SA 4.0", Openverse "by-sa 4.0", "cc0 1.0".
_CC = re.compile(r"(?:cc[\s_-]*)?(by(?:[\s_-]*(?:nc|nd|sa))*)[\s_-]*v?(\d\.\d)")
_CC0 = re.compile(r"cc[\s_-]*0(?:[\s_-]*v?1\.0)?")
SIZE_BUCKETS = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B")
MIXED = "mixed-per-image"  # license_name where the images' licences differ
# What YAML may not hold raw, or reads as a line break or byte order mark (NEL, LS, PS, BOM): escaped.
_UNPRINTABLE = re.compile("[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")


def hub_license(name: str | None) -> str | None:
    """The Hub's identifier of an image's licence as its source named it; None where the Hub
    lists no such licence (a public domain mark, a CC 1.0 licence, a site's own terms)."""
    if not name:
        return None
    plain = name.strip().lower()
    if _CC0.fullmatch(plain):
        return "cc0-1.0"
    found = _CC.fullmatch(plain)
    if not found:
        return None
    parts = re.split(r"[\s_-]+", found.group(1))
    candidate = f"cc-{'-'.join(parts)}-{found.group(2)}"
    return candidate if candidate in HUB_LICENSES else None


def size_category(count: int) -> str:
    """The Hub's size bucket of a dataset of ``count`` examples (a power of ten starts the next one)."""
    bucket = 0 if count < 1000 else len(str(count)) - 3
    return SIZE_BUCKETS[min(bucket, len(SIZE_BUCKETS) - 1)]


def licence_metadata(facts: Facts, license_link: str | None) -> dict:
    """``license``: the images' one licence where they share one the Hub lists; ``unknown`` where
    no image has a licence; else ``other``, named for what it is (the images' one licence the
    Hub does not list, or ``mixed-per-image``), linked to ``license_link`` where given."""
    names = set(facts.rows.license.dropna())
    unlicensed = bool(facts.rows.license.isna().any())
    if not names:
        return {"license": "unknown"}
    if len(names) == 1 and not unlicensed:
        (name,) = names
        hub = hub_license(name)
        if hub is not None:
            return {"license": hub}
        meta = {"license": "other", "license_name": re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or MIXED}
    else:
        meta = {"license": "other", "license_name": MIXED}
    return meta | ({"license_link": license_link} if license_link else {})


def front_matter(facts: Facts, license_link: str | None = None) -> dict:
    """The Hub's card metadata of the dataset the facts describe."""
    boxed = facts.boxes is not None and len(facts.boxes) > 0
    annotators = {"yes": "crowdsourced", "no": "found", "imported": "found"}.get(facts.verified, "other")
    return {
        "pretty_name": facts.dataset,
        **licence_metadata(facts, license_link),
        "language": ["en"],
        "task_categories": ["image-classification", *(["object-detection"] if boxed else [])],
        "task_ids": ["multi-class-image-classification"],
        "size_categories": [size_category(len(facts.rows))],
        "annotations_creators": [annotators],
        "tags": ["imagenet-style", "wordnet", "synsetforge"],
    }


def yaml_block(metadata: dict) -> list[str]:
    """The front matter's lines: ``---``, a ``key: <JSON>`` line per key, ``---``."""
    body = [f"{key}: {_json(value)}" for key, value in metadata.items()]
    return ["---", *body, "---"]


def _json(value) -> str:
    """``value`` as JSON that YAML reads back equal: characters YAML may not hold raw are
    ``\\u`` escapes, which both read alike; the rest stays as it is (JSON's surrogate pairs for
    characters beyond the BMP are not YAML's)."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
