"""The candidates stage: synsets.parquet -> ``candidates/part-N.parquet`` + ``reports/candidates.json``
(paths: ``pipeline.layout``).

Every candidate is one (wnid, url) pair with a stable ``candidate_id``; the same URL twice
in one class is one candidate. Rows are ordered by ``candidate_id`` and cut into shards of
``--shard-size``: hosts and classes mix evenly across shards, and a shard's content
depends only on the candidates, so the download stage can reuse finished shards.

Search sources query every phrase in ``synsets.queries``; each query's results are cached in
``.cache/candidates/<settings>/`` as soon as it finishes, so an interrupted collection resumes
at the first query not yet asked.

When an API stops serving for hours (a daily cap, an access token that cannot be renewed:
``SourceStopped``), the stage writes the candidates of the classes done, records in its report
which query phrases remain and when to resume, and exits with ``UNFINISHED``: not an error of
the input, but not a finished stage either, so ``make`` stops and a rerun is never "up to date"
until the collection is complete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import aiohttp

from pipeline import layout, runner, schemas, user_agent
from pipeline.errors import InputError, PipelineError
from pipeline.files import atomic_write_text
from pipeline.layout import Layout
from pipeline.progress import progress
from pipeline.schemas import WNID_RE, candidate_id
from pipeline.settings import add_contact_argument, integer
from pipeline.tables import read_report, read_table, write_report, write_table

from . import demo, urllist
from .search import ApiClient, SearchResult, Source, SourceStopped

HELP = "gather candidate image URLs per class: candidates/part-*.parquet"
OUTPUTS = (layout.CANDIDATES, layout.report_name("candidates"))
SOURCES = ("urllist", "commons", "openverse", "flickr", "demo")
SEARCH_SOURCES = ("commons", "openverse", "flickr")
# EX_TEMPFAIL (sysexits.h): a temporary failure, the user is invited to run it again later.
UNFINISHED = 75


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
        "--max-per-class",
        type=integer(1),
        metavar="N",
        help="keep at most N candidates per class (make: MAX_PER_CLASS)",
    )
    parser.add_argument(
        "--per-query",
        type=integer(1),
        default=100,
        metavar="N",
        help="search sources: results asked for per query phrase (make: PER_QUERY, default 100)",
    )
    parser.add_argument(
        "--license",
        metavar="FILTER",
        help="search sources: openverse license_type (e.g. commercial) or flickr licence ids (make: LICENSE)",
    )
    parser.add_argument(
        "--api",
        metavar="URL",
        help=f"search sources: another endpoint base, e.g. a mirror; demo: the demo image host "
        f"(default {demo.DEFAULT_API}) (make: API)",
    )
    parser.add_argument(
        "--shard-size",
        type=integer(1),
        default=1000,
        metavar="N",
        help="candidates per shard, the download stage's unit of work (make: SHARD_SIZE, default 1000)",
    )
    parser.add_argument(
        "--demo-per-class", type=integer(1), default=demo.PER_CLASS, metavar="N", help="demo: candidates per class"
    )
    add_contact_argument(parser)


def source_of(args: argparse.Namespace) -> str:
    if args.source:
        return args.source
    if args.subset == "demo":
        return "demo"
    raise PipelineError(f"choose where candidates come from: SOURCE={'|'.join(SOURCES)}")


def run(args: argparse.Namespace) -> int:
    source = source_of(args)
    if source == "urllist" and not args.urls:
        raise PipelineError("SOURCE=urllist needs URLS=<file>")
    synsets = Layout(args.workdir).synsets
    settings = {
        "source": source,
        "urls": str(args.urls.resolve()) if args.urls else None,
        "max_per_class": args.max_per_class,
        "shard_size": args.shard_size,
    }
    if source in SEARCH_SOURCES:
        settings.update(per_query=args.per_query, license=args.license, api=args.api)
    if source == "demo":
        settings.update(api=args.api or demo.DEFAULT_API, demo_per_class=args.demo_per_class)
    stage = runner.Stage(
        name="candidates",
        workdir=args.workdir,
        outputs=OUTPUTS,
        inputs=(synsets,) + ((args.urls.resolve(),) if args.urls else ()),
        settings=settings,
    )
    force = args.force or _unfinished(args.workdir) is not None
    runner.run(stage, lambda out: build(args, source, settings, synsets, out), force=force)
    left = _unfinished(args.workdir)
    if left is None:
        return 0
    when = f"after {left['resume_after']}" if left["resume_after"] else "once that is seen to"
    classes, left_over = left["classes"], len(left["remaining"])
    queries = sum(len(q) for q in left["remaining"].values())
    print(
        f"candidates: stopped early: {left['stopped']}. {classes - left_over} of {classes} classes are done and "
        f"written; query phrases left: {queries}, in {left_over} of {classes} classes. Resume {when}: run the same "
        f"command again; until it exits 0 the candidates are incomplete (exit {UNFINISHED})",
        file=sys.stderr,
    )
    return UNFINISHED


def _unfinished(workdir: Path) -> dict | None:
    """The last candidates report when its collection stopped early, else None."""
    report = read_report(Layout(workdir).report("candidates"), schemas.CANDIDATES_REPORT, missing_ok=True)
    return report if report and report.get("remaining") else None


def build(args: argparse.Namespace, source: str, settings: dict, synsets_path: Path, out: Path) -> str:
    synsets = read_table(synsets_path, schemas.SYNSETS, columns=["wnid", "queries"]).to_pylist()
    for row, synset in enumerate(synsets):  # a wnid names cache files: it must be one
        if not WNID_RE.match(synset["wnid"]):
            raise InputError(
                "not a wnid (n + 8 digits)", file=synsets_path, row=row, field="wnid", value=synset["wnid"]
            )
    wnids = [s["wnid"] for s in synsets]
    # complete/stopped/resume_after/remaining: where a search API stopped serving (``_collect``).
    report: dict = {"settings": settings, "source": source, "complete": True, "stopped": None, "resume_after": None}
    report["remaining"] = {}
    if source == "urllist":
        listed, list_report = urllist.read(args.urls, set(wnids), args.max_per_class)
        report["list"] = list_report.as_dict()
        rows = [_row(u.wnid, "urllist", None, SearchResult(u.url, source_id=u.source_id)) for u in listed]
    elif source == "demo":
        found = demo.catalogue(settings["api"], wnids, args.demo_per_class, user_agent(args.contact))
        rows = [_row(wnid, "demo", None, result) for wnid, result in found]
    else:
        rows, left = _search_rows(args, source, settings, synsets)
        report.update(left)
    rows = _rank_and_dedupe(rows, args.max_per_class)
    shards = _write_shards(rows, Layout(out), args.shard_size, {"subset": args.subset, "source": source})
    per_class = {w: 0 for w in wnids}
    for row in rows:
        per_class[row["wnid"]] += 1
    empty = [w for w, n in per_class.items() if n == 0 and w not in report["remaining"]]
    report.update(
        candidates=len(rows), shards=shards, classes=len(wnids), classes_without_candidates=empty, per_class=per_class
    )
    write_report(Layout(out).report("candidates"), schemas.CANDIDATES_REPORT, report)
    _print_report(report)
    found = sum(1 for n in per_class.values() if n)
    short = len(report["remaining"])
    unfinished = f"; stopped early, {short} of {len(wnids)} classes left" if short else ""
    return f"{len(rows)} candidates from {source} for {found} of {len(wnids)} classes, {shards} shards{unfinished}"


def _row(wnid: str, source: str, query: str | None, result: SearchResult) -> dict:
    """A candidates row; its rank is set when the class's rows are ranked (``_rank_and_dedupe``)."""
    return {
        "candidate_id": candidate_id(wnid, result.url),
        "wnid": wnid,
        "source": source,
        "query": query,
        "rank": 0,
        **asdict(result),
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


def _write_shards(rows: list[dict], built: Layout, size: int, metadata: dict) -> int:
    rows = sorted(rows, key=lambda r: r["candidate_id"])
    built.candidates.mkdir()
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    for number, chunk in enumerate(chunks):
        columns = {name: [r[name] for r in chunk] for name in schemas.CANDIDATES.names}
        write_table(columns, built.candidate_part(number), schemas.CANDIDATES, metadata=metadata)
    return len(chunks)


def _search_rows(args: argparse.Namespace, source: str, settings: dict, synsets: list[dict]) -> tuple[list[dict], dict]:
    cache = runner.work_cache(args.workdir, "candidates", settings)
    adapter, per_second = _adapter(source, args)
    if source == "commons" and not args.contact:
        print(
            "candidates: no CONTACT: Wikimedia's User-Agent policy asks API clients for an email or URL that "
            "reaches them, and throttles or blocks those without; give CONTACT=you@example.org (--contact)",
            file=sys.stderr,
        )
    return asyncio.run(_collect(adapter, per_second, synsets, args.per_query, cache, user_agent(args.contact)))


def _adapter(source: str, args: argparse.Namespace) -> tuple[Source, float]:
    api = {"api": args.api} if args.api else {}
    if source == "commons":
        from . import commons

        return commons.Commons(**api), commons.PER_SECOND
    if source == "openverse":
        from . import openverse

        client_id, secret = os.environ.get("OPENVERSE_CLIENT_ID"), os.environ.get("OPENVERSE_CLIENT_SECRET")
        if bool(client_id) != bool(secret):
            raise PipelineError(
                "SOURCE=openverse needs both OPENVERSE_CLIENT_ID and OPENVERSE_CLIENT_SECRET, or neither"
            )
        token = os.environ.get("OPENVERSE_TOKEN") or None
        adapter = openverse.Openverse(token, args.license, client_id=client_id, client_secret=secret, **api)
        return adapter, openverse.PER_SECOND
    from . import flickr

    key = os.environ.get("FLICKR_API_KEY")
    if not key:
        raise PipelineError("SOURCE=flickr needs FLICKR_API_KEY in the environment")
    return flickr.Flickr(api_key=key, **({"license": args.license} if args.license else {}), **api), flickr.PER_SECOND


async def _collect(
    adapter: Source, per_second: float, synsets: list[dict], per_query: int, cache: Path, agent: str
) -> tuple[list[dict], dict]:
    """Every class's rows, from the cache or the API, and the report's account of what is left
    when the API stops serving (``SourceStopped``): its answer, when to resume, and the query
    phrases not yet asked, by class. Each finished query's rows are cached at once, so a rerun
    asks only the queries left and ends with the rows an uninterrupted run would give."""
    rows: list[dict] = []
    stop: SourceStopped | None = None
    remaining: dict[str, list[str]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        client = ApiClient(adapter.name, session, per_second, user_agent=agent)
        for synset in progress(synsets, desc=adapter.name, unit="class", delay=2):
            wnid, queries = synset["wnid"], list(synset["queries"])
            done = cache / f"{wnid}.json"
            if done.exists():
                rows.extend(json.loads(done.read_text()))
                continue
            if stop is not None:
                remaining[wnid] = queries
                continue
            partial = cache / f"{wnid}.partial.json"  # {"asked": [phrases], "rows": [...]}
            so_far = json.loads(partial.read_text()) if partial.exists() else {"asked": [], "rows": []}
            if so_far["asked"] != queries[: len(so_far["asked"])]:  # the class's phrases changed
                so_far = {"asked": [], "rows": []}
            try:
                for query in queries[len(so_far["asked"]) :]:
                    found = await adapter.search(client, query, per_query)
                    so_far["rows"] += [_row(wnid, adapter.name, query, result) for result in found]
                    so_far["asked"].append(query)
                    if len(so_far["asked"]) < len(queries):
                        atomic_write_text(partial, json.dumps(so_far))
            except SourceStopped as e:
                stop, remaining[wnid] = e, queries[len(so_far["asked"]) :]
                continue
            atomic_write_text(done, json.dumps(so_far["rows"]))
            partial.unlink(missing_ok=True)
            rows.extend(so_far["rows"])
    left = {"complete": stop is None, "stopped": str(stop) if stop else None, "remaining": remaining}
    left["resume_after"] = stop.resume_at.strftime("%Y-%m-%d %H:%M UTC") if stop and stop.resume_at else None
    return rows, left


def _print_report(report: dict) -> None:
    lines = [
        f"candidates: {report['candidates']} from {report['source']} in {report['shards']} shards, "
        f"{sum(1 for n in report['per_class'].values() if n)} of {report['classes']} classes"
    ]
    if "list" in report:
        lst = report["list"]
        lines.append(
            f"candidates: {lst['rows']} list lines: {lst['malformed']} malformed"
            f"{' (lines ' + ', '.join(map(str, lst['malformed_lines'])) + ')' if lst['malformed_lines'] else ''}, "
            f"{lst['other_classes']} of other classes, {lst['duplicates']} duplicates, {lst['over_cap']} over the cap; "
            f"{lst['latin1']} not UTF-8 (read as Latin-1), {lst['spaces_encoded']} URLs with spaces (encoded as %20)"
        )
    if report["classes_without_candidates"]:
        lines.append(f"candidates: no candidates for {', '.join(report['classes_without_candidates'][:10])}")
    print("\n".join(lines), file=sys.stderr)
