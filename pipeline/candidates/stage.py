"""The candidates stage: synsets.parquet -> ``candidates/part-N.parquet`` + ``candidates_report.json``.

Every candidate is one (wnid, url) pair with a stable ``candidate_id``; the same URL twice
in one class is one candidate. Rows are ordered by ``candidate_id`` and cut into shards of
``--shard-size``: hosts and classes mix evenly across shards, and a shard's content
depends only on the candidates, so the download stage can reuse finished shards.

Search sources query every phrase in ``synsets.queries``; each class's hits are cached in
``.cache/candidates/<settings>/`` as soon as its queries finish, so an interrupted
collection resumes where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import aiohttp
from tqdm import tqdm

from pipeline import runner, schemas
from pipeline.errors import InputError, PipelineError
from pipeline.files import atomic_write_text
from pipeline.tables import read_table, write_table
from wordnet.hierarchy import WNID_RE

from . import urllist
from .search import ApiClient, Hit, Source

HELP = "gather candidate image URLs per class: candidates/part-*.parquet"
OUTPUTS = ("candidates", "candidates_report.json")
SOURCES = ("urllist", "commons", "openverse", "flickr", "demo")
SEARCH_SOURCES = ("commons", "openverse", "flickr")
DEMO_PORT = 8642


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=os.environ.get("SOURCE") or None,
        help="where candidates come from (make: SOURCE; default demo for the demo subset)",
    )
    parser.add_argument(
        "--urls",
        type=Path,
        metavar="FILE",
        help="urllist: ImageNet's <wnid>_<index><TAB><url> text, or CSV/TSV/Parquet with wnid and url (make: URLS)",
    )
    parser.add_argument(
        "--max-per-class", type=int, metavar="N", help="keep at most N candidates per class (make: MAX_PER_CLASS)"
    )
    parser.add_argument(
        "--per-query",
        type=int,
        default=100,
        metavar="N",
        help="search sources: hits asked for per query phrase (make: PER_QUERY, default 100)",
    )
    parser.add_argument(
        "--license",
        metavar="FILTER",
        help="search sources: openverse license_type (e.g. commercial) or flickr licence ids (make: LICENSE)",
    )
    parser.add_argument("--api", metavar="URL", help="search sources: another endpoint base, e.g. a mirror (make: API)")
    parser.add_argument(
        "--shard-size",
        type=int,
        default=1000,
        metavar="N",
        help="candidates per shard, the download stage's unit of work (make: SHARD_SIZE, default 1000)",
    )
    parser.add_argument("--demo-per-class", type=int, default=60, metavar="N", help="demo: candidates per class")
    parser.add_argument(
        "--demo-port", type=int, default=DEMO_PORT, help=f"demo: the image host's port (default {DEMO_PORT})"
    )


def source_of(args: argparse.Namespace) -> str:
    if args.source:
        return args.source
    if args.subset == "demo":
        return "demo"
    raise PipelineError(f"choose where candidates come from: SOURCE={'|'.join(SOURCES)}")


def run(args: argparse.Namespace) -> None:
    source = source_of(args)
    if source == "urllist" and not args.urls:
        raise PipelineError("SOURCE=urllist needs URLS=<file>")
    if args.shard_size < 1:
        raise PipelineError("--shard-size must be at least 1")
    synsets = args.workdir / "synsets.parquet"
    settings = {
        "source": source,
        "urls": str(args.urls.resolve()) if args.urls else None,
        "max_per_class": args.max_per_class,
        "shard_size": args.shard_size,
    }
    if source in SEARCH_SOURCES:
        settings.update(per_query=args.per_query, license=args.license, api=args.api)
    if source == "demo":
        settings.update(demo_per_class=args.demo_per_class, demo_port=args.demo_port)
    stage = runner.Stage(
        name="candidates",
        workdir=args.workdir,
        outputs=OUTPUTS,
        inputs=(synsets,) + ((args.urls.resolve(),) if args.urls else ()),
        settings=settings,
    )
    runner.run(stage, lambda out: build(args, source, settings, synsets, out), force=args.force)


def build(args: argparse.Namespace, source: str, settings: dict, synsets_path: Path, out: Path) -> str:
    synsets = read_table(synsets_path, schemas.SYNSETS, columns=["wnid", "queries"]).to_pylist()
    for row, synset in enumerate(synsets):  # a wnid names cache files: it must be one
        if not WNID_RE.match(synset["wnid"]):
            raise InputError(
                "not a wnid (n + 8 digits)", file=synsets_path, row=row, field="wnid", value=synset["wnid"]
            )
    wnids = [s["wnid"] for s in synsets]
    report: dict = {"source": source}
    if source == "urllist":
        hits, list_report = urllist.read(args.urls, set(wnids), args.max_per_class)
        report["list"] = list_report.as_dict()
        rows = [_row(h.wnid, h.url, "urllist", None, 0, Hit(h.url, source_id=h.source_id)) for h in hits]
    elif source == "demo":
        rows = _demo_rows(wnids, args.demo_per_class, args.demo_port)
    else:
        rows = _search_rows(args, source, settings, synsets)
    rows = _rank_and_dedupe(rows, args.max_per_class)
    shards = _write_shards(
        rows,
        out / "candidates",
        args.shard_size,
        {"subset": args.subset, "source": source, **({"demo_port": str(args.demo_port)} if source == "demo" else {})},
    )
    per_class = {w: 0 for w in wnids}
    for row in rows:
        per_class[row["wnid"]] += 1
    empty = [w for w, n in per_class.items() if n == 0]
    report.update(
        candidates=len(rows), shards=shards, classes=len(wnids), classes_without_candidates=empty, per_class=per_class
    )
    (out / "candidates_report.json").write_text(json.dumps(report, indent=1) + "\n")
    _print_report(report)
    return (
        f"{len(rows)} candidates from {source} for {len(wnids) - len(empty)} of {len(wnids)} classes, {shards} shards"
    )


def candidate_id(wnid: str, url: str) -> str:
    return hashlib.sha256(f"{wnid}\t{url}".encode()).hexdigest()[:16]


def _row(wnid: str, url: str, source: str, query: str | None, rank: int, hit: Hit) -> dict:
    return {
        "candidate_id": candidate_id(wnid, url),
        "wnid": wnid,
        "url": url,
        "source": source,
        "query": query,
        "rank": rank,
        **{k: v for k, v in asdict(hit).items() if k != "url"},
    }


def _rank_and_dedupe(rows: list[dict], max_per_class: int | None) -> list[dict]:
    """First occurrence of each (wnid, url) wins; ranks become 0.. within each class, in order."""
    seen: set[str] = set()
    counts: dict[str, int] = {}
    kept = []
    for row in rows:
        if row["candidate_id"] in seen:
            continue
        rank = counts.get(row["wnid"], 0)
        if max_per_class is not None and rank >= max_per_class:
            continue
        seen.add(row["candidate_id"])
        counts[row["wnid"]] = rank + 1
        kept.append({**row, "rank": rank})
    return kept


def _write_shards(rows: list[dict], folder: Path, size: int, metadata: dict) -> int:
    rows = sorted(rows, key=lambda r: r["candidate_id"])
    folder.mkdir()
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    for number, chunk in enumerate(chunks):
        columns = {name: [r[name] for r in chunk] for name in schemas.CANDIDATES.names}
        write_table(columns, folder / f"part-{number:05d}.parquet", schemas.CANDIDATES, metadata=metadata)
    return len(chunks)


def _demo_rows(wnids: list[str], per_class: int, port: int) -> list[dict]:
    from pipeline.imagehost.demo import catalogue

    base = f"http://127.0.0.1:{port}"
    return [
        _row(
            item.wnid,
            base + item.path,
            "demo",
            None,
            0,
            Hit(
                base + item.path,
                source_id=item.kind,
                title=f"generated picture ({item.kind})",
                creator="synsetforge demo host",
                license="cc0 1.0",
            ),
        )
        for item in catalogue(wnids, per_class)
    ]


def _search_rows(args: argparse.Namespace, source: str, settings: dict, synsets: list[dict]) -> list[dict]:
    cache = runner.work_cache(args.workdir, "candidates", settings)
    adapter, per_second = _adapter(source, args)
    return asyncio.run(_collect(adapter, per_second, synsets, args.per_query, cache))


def _adapter(source: str, args: argparse.Namespace) -> tuple[Source, float]:
    api = {"api": args.api} if args.api else {}
    if source == "commons":
        from . import commons

        return commons.Commons(**api), commons.PER_SECOND
    if source == "openverse":
        from . import openverse

        return (
            openverse.Openverse(token=os.environ.get("OPENVERSE_TOKEN") or None, license_type=args.license, **api),
            openverse.PER_SECOND,
        )
    from . import flickr

    key = os.environ.get("FLICKR_API_KEY")
    if not key:
        raise PipelineError("SOURCE=flickr needs FLICKR_API_KEY in the environment")
    return flickr.Flickr(api_key=key, **({"license": args.license} if args.license else {}), **api), flickr.PER_SECOND


async def _collect(adapter: Source, per_second: float, synsets: list[dict], per_query: int, cache: Path) -> list[dict]:
    rows: list[dict] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        client = ApiClient(adapter.name, session, per_second)
        for synset in tqdm(synsets, desc=adapter.name, unit="class", delay=2, disable=None):
            done = cache / f"{synset['wnid']}.json"
            if done.exists():
                found = json.loads(done.read_text())
            else:
                found = []
                for query in synset["queries"]:
                    for hit in await adapter.search(client, query, per_query):
                        found.append(_row(synset["wnid"], hit.url, adapter.name, query, 0, hit))
                atomic_write_text(done, json.dumps(found))
            rows.extend(found)
    return rows


def _print_report(report: dict) -> None:
    lines = [
        f"candidates: {report['candidates']} from {report['source']} in {report['shards']} shards, "
        f"{report['classes'] - len(report['classes_without_candidates'])} of {report['classes']} classes"
    ]
    if "list" in report:
        lst = report["list"]
        lines.append(
            f"candidates: {lst['rows']} list lines: {lst['non_utf8']} not UTF-8, {lst['malformed']} malformed"
            f"{' (lines ' + ', '.join(map(str, lst['malformed_lines'])) + ')' if lst['malformed_lines'] else ''}, "
            f"{lst['other_classes']} of other classes, {lst['duplicates']} duplicates, {lst['over_cap']} over the cap"
        )
    if report["classes_without_candidates"]:
        lines.append(f"candidates: no candidates for {', '.join(report['classes_without_candidates'][:10])}")
    print("\n".join(lines), file=sys.stderr)
