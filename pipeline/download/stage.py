"""The download stage: ``candidates/part-N.parquet`` -> ``images/shard-N.parquet``,
``ledger/shard-N.parquet`` and ``download_stats.json``.

Shards are made in ``.cache/download/<settings>/`` and survive an interrupted run, so a rerun
downloads only the shards that did not finish (a shard is reused when its input bytes and
the settings are unchanged). When every shard is done they are linked into the outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import runner, schemas
from pipeline.errors import InputError, PipelineError
from pipeline.tables import read_table

from . import executors, status
from .fetch import Network
from .images import Normalise
from .politeness import Blocklist, Politeness
from .shard import Limits, Settings, ShardJob, finished

HELP = "fetch, verify and normalise every candidate: images/, ledger/, download_stats.json"
OUTPUTS = ("images", "ledger", "download_stats.json")
SHOWN_CLASSES = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    n, r, p, limits = Network(), Normalise(), Politeness(), Limits()
    group = parser.add_argument_group("images")
    group.add_argument(
        "--max-side",
        type=int,
        default=r.max_side,
        metavar="PX",
        help=f"resize so the longer side is at most PX; 0 keeps the size (make: MAX_SIDE, default {r.max_side})",
    )
    group.add_argument(
        "--min-side",
        type=int,
        default=r.min_side,
        metavar="PX",
        help=f"shorter side below PX is too_small (make: MIN_SIDE, default {r.min_side})",
    )
    group.add_argument(
        "--quality", type=int, default=r.quality, help=f"JPEG quality of re-encoded images (default {r.quality})"
    )
    group.add_argument(
        "--keep-original",
        action="store_true",
        help="store the fetched bytes unchanged (still verified) (make: KEEP_ORIGINAL=1)",
    )
    group = parser.add_argument_group("network")
    group.add_argument(
        "--timeout",
        type=float,
        default=n.total_timeout,
        metavar="S",
        help=f"total seconds for one request (make: TIMEOUT, default {n.total_timeout:g})",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=n.retries,
        help=f"retries after a connection error, 5xx or 429 (make: RETRIES, default {n.retries})",
    )
    group.add_argument(
        "--max-mb",
        type=float,
        default=n.max_bytes / 2**20,
        metavar="MB",
        help=f"byte cap of one image (make: MAX_MB, default {n.max_bytes / 2**20:g})",
    )
    group.add_argument(
        "--allow-private-hosts",
        action="store_true",
        help="allow loopback and private addresses (tests, a local host); link-local never",
    )
    group = parser.add_argument_group("speed (does not change the result)")
    group.add_argument(
        "--executor",
        choices=executors.EXECUTORS,
        default=os.environ.get("EXECUTOR", "local"),
        help="local worker processes, or Ray tasks (cluster from RAY_ADDRESS) (make: EXECUTOR)",
    )
    group.add_argument(
        "--processes", type=int, default=None, help="local worker processes (make: PROCESSES, default one per core)"
    )
    group.add_argument(
        "--concurrency",
        type=int,
        default=256,
        help="requests in flight over all workers (make: CONCURRENCY, default 256)",
    )
    group.add_argument(
        "--per-host",
        type=int,
        default=limits.per_host,
        help=f"connections to one host per worker (make: PER_HOST, default {limits.per_host})",
    )
    group = parser.add_argument_group("politeness")
    group.add_argument(
        "--ignore-optouts",
        action="store_true",
        help="fetch images whose X-Robots-Tag or tdm-reservation opts out (make: RESPECT_OPTOUTS=0)",
    )
    group.add_argument(
        "--optout-directives",
        default=",".join(p.optout_directives),
        metavar="D,...",
        help=f"X-Robots-Tag directives that opt out (make: OPTOUT_DIRECTIVES, default {','.join(p.optout_directives)})",
    )
    group.add_argument("--ignore-robots", action="store_true", help="do not read robots.txt (make: RESPECT_ROBOTS=0)")
    group.add_argument(
        "--robots-timeout",
        type=float,
        default=p.robots_timeout,
        metavar="S",
        help=f"seconds for one robots.txt request (default {p.robots_timeout:g})",
    )
    group.add_argument(
        "--domains-blocklist",
        type=Path,
        metavar="FILE",
        help="hosts never contacted, one per line; subdomains too (make: DOMAINS_BLOCKLIST)",
    )
    group.add_argument(
        "--host-rate",
        type=float,
        default=limits.host_rate,
        metavar="R",
        help=f"requests a second to one host, all workers together; 0 unpaced (make: HOST_RATE, default {limits.host_rate:g})",
    )
    group.add_argument(
        "--host-burst",
        type=float,
        default=limits.host_burst,
        metavar="N",
        help=f"requests to one host that may go at once (make: HOST_BURST, default {limits.host_burst:g})",
    )
    parser.add_argument(
        "--min-per-class",
        type=int,
        default=1,
        metavar="N",
        help="list classes that end with fewer images (make: MIN_PER_CLASS; ILSVRC's smallest has 732)",
    )


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings(
        network=Network(
            total_timeout=args.timeout,
            retries=args.retries,
            max_bytes=int(args.max_mb * 2**20),
            allow_private_hosts=args.allow_private_hosts,
        ),
        normalise=Normalise(
            max_side=args.max_side, min_side=args.min_side, quality=args.quality, keep_original=args.keep_original
        ),
        politeness=Politeness(
            respect_optouts=not args.ignore_optouts,
            optout_directives=tuple(
                sorted({d.strip().lower() for d in args.optout_directives.split(",") if d.strip()})
            ),
            respect_robots=not args.ignore_robots,
            robots_timeout=args.robots_timeout,
            blocklist=Blocklist.read(args.domains_blocklist) if args.domains_blocklist else (),
        ),
    )


def run(args: argparse.Namespace) -> None:
    candidates = args.workdir / "candidates"
    parts = sorted(candidates.glob("part-*.parquet"))
    if not parts:
        raise InputError("no candidate shards (part-*.parquet): run `make candidates` first", file=candidates)
    demo_port = _demo_port(parts[0])
    settings = settings_of(args)
    host_rate = args.host_rate
    if demo_port is not None:  # our own host on 127.0.0.1: nobody else's server to spare
        settings = dataclasses.replace(
            settings, network=dataclasses.replace(settings.network, allow_private_hosts=True)
        )
        host_rate = 0.0
    stage = runner.Stage(
        name="download",
        workdir=args.workdir,
        outputs=OUTPUTS,
        inputs=(candidates,),
        settings={**settings.as_dict(), "min_per_class": args.min_per_class},
    )
    processes = args.processes or os.cpu_count() or 1
    # The limits are shared out among the workers that will run: a local run starts no more
    # workers than there are shards (one shard runs in this process).
    workers = min(processes, len(parts)) if args.executor == "local" else processes
    # Decoding threads too: a worker whose decoder has the cores to itself spends none of its
    # time waiting for them (two workers of two threads each on two cores ran slower than one).
    limits = Limits(
        concurrency=max(1, math.ceil(args.concurrency / workers)),
        per_host=max(1, args.per_host),
        host_rate=host_rate / workers,
        host_burst=max(1.0, args.host_burst / workers),
        decode_threads=max(1, (os.cpu_count() or 1) // workers),
    )

    def build(out: Path) -> str:
        with ExitStack() as stack:
            if demo_port is not None:
                _start_demo_host(stack, demo_port)
            pace = {"host_rate": host_rate, "host_burst": args.host_burst}
            return download(
                parts, args.workdir, out, settings, limits, args.executor, workers, args.min_per_class, pace
            )

    runner.run(stage, build, force=args.force)


def download(
    parts: list[Path],
    workdir: Path,
    out: Path,
    settings: Settings,
    limits: Limits,
    executor: str,
    processes: int,
    min_per_class: int,
    pace: dict,
) -> str:
    cache = _cache_for(workdir, settings)
    jobs = []
    for part in parts:
        number = _shard_number(part)
        jobs.append(ShardJob(number, part, _digest(part), cache, settings, limits))
    todo = [job for job in jobs if finished(job) is None]
    total = sum(pq.read_metadata(job.candidates).num_rows for job in todo)
    if len(todo) < len(jobs):
        print(f"download: {len(jobs) - len(todo)} of {len(jobs)} shards already finished, resuming", file=sys.stderr)
    ran = executors.run(todo, executor, processes, total)
    stats = {job.number: finished(job) for job in jobs}
    for kind in ("images", "ledger"):
        (out / kind).mkdir()
        for job in jobs:
            _link(job.path(kind), out / kind / job.path(kind).name)
    report = download_report(out / "ledger", list(stats.values()), ran, min_per_class)
    report["politeness"] = politeness_report(report, settings.politeness, pace)
    (out / "download_stats.json").write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    return (
        f"{report['ok']} of {report['candidates']} candidates ok ({report['ok_percent']}%), "
        f"{len(jobs)} shards, {len(report['classes_below_min'])} classes below {min_per_class}"
    )


def download_report(ledger_dir: Path, stats: list[dict], ran: list[dict], min_per_class: int) -> dict:
    ledger = pa.concat_tables(
        read_table(p, schemas.LEDGER, columns=["wnid", "host", "status"])
        for p in sorted(ledger_dir.glob("shard-*.parquet"))
    )
    wnids, hosts, statuses = (ledger.column(c).to_pylist() for c in ("wnid", "host", "status"))
    per_class: dict[str, Counter] = {}
    per_host: dict[str, Counter] = {}
    for wnid, host, s in zip(wnids, hosts, statuses):
        per_class.setdefault(wnid, Counter())[s] += 1
        per_host.setdefault(host, Counter())[s] += 1
    totals = Counter(statuses)
    candidates = len(statuses)
    if candidates != sum(s["candidates"] for s in stats):
        raise PipelineError("the ledger does not hold one row per candidate; rerun with --force")
    seconds = sum(s["seconds"] for s in ran)
    classes = {w: {"candidates": sum(c.values()), "ok": c[status.OK]} for w, c in sorted(per_class.items())}
    top_hosts = sorted(per_host.items(), key=lambda kv: -sum(kv[1].values()))[:20]
    return {
        "candidates": candidates,
        "ok": totals[status.OK],
        "ok_percent": round(100 * totals[status.OK] / max(candidates, 1), 1),
        "statuses": {s: totals[s] for s in status.STATUSES if totals[s]},
        "shards": len(stats),
        "shards_this_run": len(ran),
        "bytes_received": sum(s["bytes_received"] for s in stats),
        "bytes_stored": sum(s["bytes_stored"] for s in stats),
        "worker_seconds_this_run": round(seconds, 1),
        "min_per_class": min_per_class,
        "classes_below_min": [w for w, c in classes.items() if c["ok"] < min_per_class],
        "per_class": classes,
        "top_hosts": {h: dict(c.most_common()) for h, c in top_hosts},
        "status_meaning": {s: status.MEANING[s] for s in status.STATUSES},
    }


def politeness_report(report: dict, rules: Politeness, pace: dict) -> dict:
    """What the rules were and how many URLs each stopped, per host for the top hosts: the
    dataset card says this."""
    stopped_by_host = {
        h: {s: n for s, n in c.items() if s in status.POLITENESS} for h, c in report["top_hosts"].items()
    }
    return {
        "respect_optouts": rules.respect_optouts,
        "optout_directives": list(rules.optout_directives),
        "respect_robots": rules.respect_robots,
        "blocklisted_domains": len(rules.blocklist),
        **pace,
        "stopped": {s: report["statuses"].get(s, 0) for s in status.POLITENESS},
        "stopped_per_top_host": {h: c for h, c in stopped_by_host.items() if c},
    }


def print_report(report: dict) -> None:
    lines = [
        f"download: {report['ok']} of {report['candidates']} ok ({report['ok_percent']}%), "
        f"{report['bytes_stored'] / 1e6:.1f} MB stored"
    ]
    lines += [f"  {s:<20} {n:>9}" for s, n in report["statuses"].items()]
    rules = report.get("politeness")
    if rules and (not rules["respect_optouts"] or not rules["respect_robots"]):
        lines.append(
            "download: opt-outs "
            + ("respected" if rules["respect_optouts"] else "IGNORED")
            + ", robots.txt "
            + ("respected" if rules["respect_robots"] else "IGNORED")
        )
    below = report["classes_below_min"]
    if below:
        shown = ", ".join(f"{w} ({report['per_class'][w]['ok']})" for w in below[:SHOWN_CLASSES])
        more = f" and {len(below) - SHOWN_CLASSES} more" if len(below) > SHOWN_CLASSES else ""
        lines.append(f"download: {len(below)} classes below {report['min_per_class']} images: {shown}{more}")
    print("\n".join(lines), file=sys.stderr)


def _cache_for(workdir: Path, settings: Settings) -> Path:
    """The shard cache of these settings, without the files a killed run left half-written."""
    cache = runner.work_cache(workdir, "download", settings.as_dict())
    for partial in cache.glob("*/.*.tmp"):
        partial.unlink(missing_ok=True)
    return cache


def _shard_number(part: Path) -> int:
    try:
        return int(part.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        raise InputError("a candidate shard must be named part-<number>.parquet", file=part) from None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _demo_port(part: Path) -> int | None:
    """The port of the bundled image host when the candidates come from the demo source."""
    metadata = pq.read_schema(part).metadata or {}
    if metadata.get(b"source") != b"demo":
        return None
    return int(metadata[b"demo_port"])


def _start_demo_host(stack: ExitStack, port: int) -> None:
    from pipeline.imagehost import ImageHost

    try:
        host = stack.enter_context(ImageHost(port=port))
    except OSError as e:
        print(f"download: demo image host port {port} is in use ({e}); using the server there", file=sys.stderr)
        return
    print(f"download: demo image host on {host.url('/')}", file=sys.stderr)
