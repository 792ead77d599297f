"""The download stage: ``candidates/part-N.parquet`` -> ``images/shard-N.parquet``,
``ledger/shard-N.parquet`` and ``reports/download.json`` (paths: ``pipeline.layout``).

Shards are made in ``.cache/download/<settings>/`` and survive an interrupted run, so a rerun
downloads only the shards that did not finish (a shard is reused when its input bytes and
the settings are unchanged). When every shard is done they are linked into the outputs.

Loopback and private addresses are refused unless ``--allow-private-hosts`` says otherwise,
whatever the candidates are: a local image host (the demo's, a test's) is allowed by its user.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import layout, runner, schemas, user_agent
from pipeline.errors import InputError, PipelineError
from pipeline.layout import Layout
from pipeline.progress import counted
from pipeline.settings import add_contact_argument, integer, number
from pipeline.tables import read_report, read_table, write_report

from . import executors, status
from .fetch import Network
from .images import Normalise
from .politeness import Blocklist, Politeness
from .shard import CANDIDATE_COLUMNS, DownloadSettings, Limits, ShardJob, finished

HELP = "fetch, verify and normalise every candidate: images/, ledger/, reports/download.json"
OUTPUTS = (layout.IMAGES, layout.LEDGER, layout.report_name("download"))
SHOWN_CLASSES = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    n, r, p, limits = Network(), Normalise(), Politeness(), Limits()
    group = parser.add_argument_group("images")
    group.add_argument(
        "--max-side",
        type=integer(0),
        default=r.max_side,
        metavar="PX",
        help=f"resize so the longer side is at most PX; 0 keeps the size (make: MAX_SIDE, default {r.max_side})",
    )
    group.add_argument(
        "--min-side",
        type=integer(0),
        default=r.min_side,
        metavar="PX",
        help=f"shorter side below PX is too_small (make: MIN_SIDE, default {r.min_side})",
    )
    group.add_argument(
        "--quality",
        type=integer(1, 100),
        default=r.quality,
        help=f"JPEG quality of re-encoded images (default {r.quality})",
    )
    group.add_argument(
        "--keep-original",
        action="store_true",
        help="store the fetched bytes unchanged (still verified) (make: KEEP_ORIGINAL=1)",
    )
    group = parser.add_argument_group("network")
    group.add_argument(
        "--timeout",
        type=number(0, above=True),
        default=n.total_timeout,
        metavar="S",
        help=f"total seconds for one request (make: TIMEOUT, default {n.total_timeout:g})",
    )
    group.add_argument(
        "--retries",
        type=integer(0),
        default=n.retries,
        help=f"retries after a connection error, 5xx or 429 (make: RETRIES, default {n.retries})",
    )
    group.add_argument(
        "--max-mb",
        type=number(0, above=True),
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
        "--processes",
        type=integer(1),
        default=None,
        help="local worker processes (make: PROCESSES, default one per core)",
    )
    group.add_argument(
        "--concurrency",
        type=integer(1),
        default=256,
        help="requests in flight over all workers (make: CONCURRENCY, default 256)",
    )
    group.add_argument(
        "--per-host",
        type=integer(1),
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
        type=number(0, above=True),
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
        type=number(0),
        default=limits.host_rate,
        metavar="R",
        help=f"requests a second to one host, all workers together; 0 unpaced (make: HOST_RATE, default {limits.host_rate:g})",
    )
    group.add_argument(
        "--host-burst",
        type=number(1),
        default=limits.host_burst,
        metavar="N",
        help=f"requests to one host that may go at once (make: HOST_BURST, default {limits.host_burst:g})",
    )
    add_contact_argument(group)
    parser.add_argument(
        "--min-per-class",
        type=integer(0),
        default=1,
        metavar="N",
        help="list classes that end with fewer images (make: MIN_PER_CLASS; ILSVRC's smallest has 732)",
    )


def settings_of(args: argparse.Namespace) -> DownloadSettings:
    return DownloadSettings(
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


def stage_settings(settings: DownloadSettings, min_per_class: int) -> dict:
    """The stage's settings, as the runner fingerprints them and the report records them."""
    return {**settings.as_dict(), "min_per_class": min_per_class}


def unfinished_candidates(built: Layout) -> None:
    """Refuse candidates whose search API stopped early (their report's ``remaining``): they
    lack whole classes, and ``make download`` runs the candidates stage only where there are
    none, so the rerun that the stopped stage asks for would otherwise download a partial list."""
    path = built.report("candidates")
    report = read_report(path, schemas.CANDIDATES_REPORT, missing_ok=True)
    left = (report or {}).get("remaining")
    if left:
        when = f"after {report['resume_after']}" if report.get("resume_after") else "once its last line is seen to"
        raise PipelineError(
            f"{path}: the candidates are incomplete, their collection stopped early with query phrases left in "
            f"{len(left)} of {report['classes']} classes: run `make candidates` again {when}, until it exits 0"
        )


def run(args: argparse.Namespace) -> None:
    candidates = Layout(args.workdir).candidates
    parts = Layout(args.workdir).candidate_parts()
    if not parts:
        raise InputError(
            f"no candidate shards ({layout.CANDIDATE_PARTS}): run `make candidates` first", file=candidates
        )
    unfinished_candidates(Layout(args.workdir))
    settings = settings_of(args)
    stage = runner.Stage(
        name="download",
        workdir=args.workdir,
        outputs=OUTPUTS,
        inputs=(candidates,),
        settings=stage_settings(settings, args.min_per_class),
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
        host_rate=args.host_rate / workers,
        host_burst=max(1.0, args.host_burst / workers),
        decode_threads=max(1, (os.cpu_count() or 1) // workers),
        user_agent=user_agent(args.contact),
    )

    pace = {"host_rate": args.host_rate, "host_burst": args.host_burst}

    def build(out: Path) -> str:
        if not args.contact and _source_of(parts[0]) == "commons":
            print(
                "download: no CONTACT: Wikimedia's User-Agent policy asks for an email or URL that reaches you "
                "in every request to upload.wikimedia.org; give CONTACT=you@example.org (--contact)",
                file=sys.stderr,
            )
        return download(parts, args.workdir, out, settings, limits, args.executor, workers, args.min_per_class, pace)

    runner.run(stage, build, force=args.force)


def download(
    parts: list[Path],
    workdir: Path,
    out: Path,
    settings: DownloadSettings,
    limits: Limits,
    executor: str,
    processes: int,
    min_per_class: int,
    pace: dict,
) -> str:
    rows = {part: _candidate_rows(part) for part in parts}  # a bad part stops the run before any work
    cache = _cache_for(workdir, settings)
    jobs = []
    for part in parts:
        number = _shard_number(part)
        jobs.append(ShardJob(number, part, _digest(part), cache, settings, limits))
    todo = [job for job in jobs if finished(job) is None]
    total = sum(rows[job.candidates] for job in todo)
    if len(todo) < len(jobs):
        finished_before = f"{len(jobs) - len(todo)} of {counted(len(jobs), 'shard')} already finished"
        print(f"download: {finished_before}, resuming", file=sys.stderr)
    ran = executors.run(todo, executor, processes, total)
    stats = {job.number: finished(job) for job in jobs}
    built = Layout(out)
    built.images.mkdir()
    built.ledger.mkdir()
    for job in jobs:
        _link(job.images, built.images / job.images.name)
        _link(job.ledger, built.ledger / job.ledger.name)
    report = {
        "settings": stage_settings(settings, min_per_class),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **download_report(built, list(stats.values()), ran, min_per_class),
    }
    report["politeness"] = politeness_report(report, settings.politeness, pace)
    write_report(built.report("download"), schemas.DOWNLOAD_REPORT, report)
    print_report(report, settings.network)
    return summary_line(report)


def download_report(built: Layout, stats: list[dict], ran: list[dict], min_per_class: int) -> dict:
    ledger = pa.concat_tables(
        read_table(p, schemas.LEDGER, columns=["wnid", "host", "status"]) for p in built.ledger_shards()
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


def summary_line(report: dict) -> str:
    """The stage's line: ``12 of 20 candidates ok (60.0%) in 1 shard; every class has an image``."""
    line = f"{report['ok']} of {report['candidates']} candidates ok ({report['ok_percent']}%)"
    line += f" in {counted(report['shards'], 'shard')}"
    return line + (f"; {short_classes(report)}" if report["min_per_class"] else "")


def short_classes(report: dict) -> str:
    """How many classes ended with fewer ok images than ``min_per_class``, as a sentence:
    ``every class has at least 5 images``, ``1 of 3 classes has no image``."""
    below, classes, minimum = len(report["classes_below_min"]), len(report["per_class"]), report["min_per_class"]
    if not below:
        return f"every class has at least {counted(minimum, 'image')}" if minimum > 1 else "every class has an image"
    lack = "no image" if minimum == 1 else f"fewer than {counted(minimum, 'image')}"
    return f"{below} of {counted(classes, 'class')} {'has' if below == 1 else 'have'} {lack}"


def print_report(report: dict, network: Network) -> None:
    lines = [
        f"download: {report['ok']} of {report['candidates']} ok ({report['ok_percent']}%), "
        f"{report['bytes_stored'] / 1e6:.1f} MB stored"
    ]
    lines += [f"  {s:<20} {n:>9}" for s, n in report["statuses"].items()]
    blocked = report["statuses"].get(status.BLOCKED_ADDRESS, 0)
    if blocked and not network.allow_private_hosts:
        lines.append(
            f"download: {blocked} URLs lead to private or loopback addresses; for a host of your own "
            "(the demo's, a test's) say so with --allow-private-hosts (make: ALLOW_PRIVATE_HOSTS=1)"
        )
    rules = report["politeness"]
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
        lines.append(f"download: {short_classes(report)}: {shown}{more}")
    print("\n".join(lines), file=sys.stderr)


def _cache_for(workdir: Path, settings: DownloadSettings) -> Path:
    """The shard cache of these settings, without the files a killed run left half-written."""
    cache = runner.work_cache(workdir, "download", settings.as_dict())
    for partial in cache.glob("*/.*.tmp"):
        partial.unlink(missing_ok=True)
    return cache


def _source_of(part: Path) -> str:
    """The candidates' source, as the candidates stage wrote it in each part's metadata; "" if unreadable
    (``_candidate_rows`` then names the part)."""
    try:
        return ((pq.read_schema(part).metadata or {}).get(b"source") or b"").decode()
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        return ""


def _candidate_rows(part: Path) -> int:
    """The number of candidates in ``part``, read whole: an empty, truncated or corrupted part
    is refused here, naming it, instead of failing a worker halfway through the run."""
    return read_table(part, schemas.CANDIDATES, columns=CANDIDATE_COLUMNS).num_rows


def _shard_number(part: Path) -> int:
    try:
        return int(part.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        raise InputError(
            f"a candidate shard is named like {layout.CANDIDATE_PART.format(number=0)}", file=part
        ) from None


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
