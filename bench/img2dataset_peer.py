"""img2dataset 1.47.0 as a download peer, run in its own virtualenv on the same URL list.

``ensure_venv()`` makes ``.bench/img2dataset`` (``python -m venv`` with the interpreter behind
the one running this module, then ``pip install img2dataset==1.47.0``, about 20 s and 780 MB);
``run_img2dataset()`` runs it on a txt list of URLs and returns its counts, wall time and the
peak memory of its process tree.

The settings, chosen to do the same work as our downloader:

- ``resize_mode="keep_ratio_largest"`` with ``resize_only_if_bigger=True``: the longer side
  becomes at most ``image_size`` (albumentations ``LongestMaxSize``, cv2 INTER_AREA when
  shrinking), never upscaled. (``keep_ratio`` would bound the *shorter* side, ``border`` pads.)
- ``encode_quality=90``, ``encode_format="jpg"``; every image is decoded in full by
  ``cv2.imdecode`` and re-encoded, even one already small enough (``skip_reencode=False``, the
  default; ``skip_reencode=True`` keeps the original bytes of a JPEG that needs no resize).
- ``output_format="parquet"``: one parquet per shard holding the image bytes and metadata, as
  our ``images/shard-N.parquet``; "files" would add a .jpg and a .json per image.
- ``distributor="multiprocessing"``, ``processes_count``, ``thread_count``, ``timeout``,
  ``retries``; ``enable_wandb=False``. Its defaults are kept: ``compute_hash="sha256"`` (as our
  ``sha256`` column), ``extract_exif=True``, ``disallowed_header_directives`` None, which it
  turns into ``["noai", "noimageai", "noindex", "noimageindex"]`` (X-Robots-Tag check).
- ``number_sample_per_shard``: img2dataset parallelises by shard (default 10,000 URLs), so a
  list smaller than ``processes * 10,000`` would leave processes idle; by default it is
  ``ceil(urls / processes)``, at most 10,000.

Environment of the run: ``NO_ALBUMENTATIONS_UPDATE=1`` (else every process asks pypi.org for
albumentations' latest version on import, 2 s timeout), ``WANDB_MODE=disabled``, no
``*_proxy`` variables (its urllib would honour them, also for 127.0.0.1), and a private
``TMPDIR`` removed afterwards (each pool worker leaks a ``*wandb-artifacts`` temp folder).

Its own ways, seen on 1.47.0: it fetches with urllib, a new connection per URL, follows
redirects, fetches loopback and private addresses like any other; it ignores EXIF orientation
(cv2 ``IMREAD_UNCHANGED``), blends alpha onto white, and its ``sha256`` is of the fetched bytes,
not the stored ones. Serve the benchmark's images with a listen backlog above
``processes * threads``: ``python -m http.server`` listens with socketserver's backlog of 5, and
128 simultaneous connects overflow it (SYNs retried after 1 s, 3 s, ...; "timed out" failures).

Equivalent command line: ``img2dataset --url_list=urls.txt --output_folder=out
--processes_count=2 --thread_count=64 --image_size=500 --resize_mode=keep_ratio_largest
--resize_only_if_bigger=True --encode_quality=90 --output_format=parquet --timeout=10
--retries=0 --number_sample_per_shard=N``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from benchhost import measure, peer_venv

REPO = Path(__file__).resolve().parent.parent
VERSION = "1.47.0"
MAX_SHARD = 10_000  # img2dataset's default number_sample_per_shard

# Runs img2dataset's own entry point (what its CLI calls through fire) with exact arguments.
DRIVER = "import json, sys\nfrom img2dataset import download\ndownload(**json.loads(sys.argv[1]))\n"


def ensure_venv(root: Path = REPO / ".bench" / "img2dataset") -> Path:
    """The venv at ``root`` with img2dataset==1.47.0; returns its python."""
    return peer_venv(root, "img2dataset", VERSION)


def _count_urls(url_list: Path) -> int:
    # img2dataset reads a txt list with pyarrow's CSV reader, which skips blank lines (and fails
    # on a URL holding a comma: "Expected 1 columns, got 2").
    with open(url_list, "rb") as f:
        return sum(1 for line in f if line.strip())


def _sum_stats(output: Path) -> dict:
    """Adds up the ``NNNNN_stats.json`` img2dataset writes per shard."""
    totals = Counter()
    statuses: Counter = Counter()
    start, end = math.inf, -math.inf
    for path in sorted(output.glob("*_stats.json")):
        stats = json.loads(path.read_text())
        for key in ("count", "successes", "failed_to_download", "failed_to_resize"):
            totals[key] += stats[key]
        statuses.update(stats["status_dict"])
        start, end = min(start, stats["start_time"]), max(end, stats["end_time"])
        totals["shards"] += 1
    statuses.pop("success", None)
    return {
        **totals,
        "failures": dict(statuses.most_common()),
        "shard_seconds": end - start if totals["shards"] else 0.0,
    }


def shard_size(urls: int, processes: int) -> int:
    """One shard per process, at most img2dataset's default shard: both tools get this."""
    return max(1, min(MAX_SHARD, math.ceil(urls / processes)))


def run_img2dataset(
    python: Path,
    url_list: Path,
    output: Path,
    *,
    processes: int = 2,
    threads: int = 64,
    image_size: int = 500,
    resize_mode: str = "keep_ratio_largest",
    resize_only_if_bigger: bool = True,
    encode_quality: int = 90,
    timeout: int = 10,
    retries: int = 0,
    output_format: str = "parquet",
    skip_reencode: bool = False,
    number_sample_per_shard: int | None = None,
    disallowed_header_directives: list[str] | None = None,
) -> dict:
    """Run img2dataset on ``url_list`` (one URL a line) into ``output``, which is deleted first
    (else img2dataset's incremental mode would skip the shards already there).

    Returns ``seconds`` (wall time of the whole run, interpreter start to exit), ``count`` (URLs
    in the list), ``success``, ``failed`` (download + decode/resize failures, also given apart as
    ``failed_to_download`` and ``failed_to_resize``), ``failures`` ({message: n}, e.g.
    "HTTP Error 404: File not found", "timed out"), ``peak_rss_mb`` (peak sum of VmRSS over the
    process tree, sampled every 0.2 s; ``peak_pss_mb`` the same with Pss), ``shard_seconds``
    (first shard start to last shard end, i.e. without interpreter and pool start-up),
    ``unaccounted`` (URLs no stats file counts: a shard that failed twice; img2dataset still
    exits 0), ``arguments`` (what ``img2dataset.download`` got) and ``log`` (its output).
    """
    url_list, output = Path(url_list).resolve(), Path(output).resolve()
    count = _count_urls(url_list)
    if number_sample_per_shard is None:
        number_sample_per_shard = shard_size(count, processes)
    arguments = {
        "url_list": str(url_list),
        "input_format": "txt",
        "output_folder": str(output),
        "output_format": output_format,
        "image_size": image_size,
        "resize_mode": resize_mode,
        "resize_only_if_bigger": resize_only_if_bigger,
        "encode_format": "jpg",
        "encode_quality": encode_quality,
        "skip_reencode": skip_reencode,
        "distributor": "multiprocessing",
        "processes_count": processes,
        "thread_count": threads,
        "number_sample_per_shard": number_sample_per_shard,
        "timeout": timeout,
        "retries": retries,
        "enable_wandb": False,
        "disallowed_header_directives": disallowed_header_directives,
    }
    shutil.rmtree(output, ignore_errors=True)
    log = output.with_name(output.name + ".log")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with tempfile.TemporaryDirectory(prefix="img2dataset-peer-") as tmp, open(log, "wb") as out:
        env.update(NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled", WANDB_SILENT="true", TMPDIR=tmp)
        run = measure([str(python), "-c", DRIVER, json.dumps(arguments)], env=env, output=out)
    seconds, returncode = run.seconds, run.returncode
    if returncode != 0:
        raise RuntimeError(
            f"img2dataset exited with {returncode}; see {log}:\n{log.read_text(errors='replace')[-4000:]}"
        )
    stats = _sum_stats(output)
    return {
        "seconds": seconds,
        "count": count,
        "success": stats.get("successes", 0),
        "failed": stats.get("failed_to_download", 0) + stats.get("failed_to_resize", 0),
        "failures": stats["failures"],
        "peak_rss_mb": run.peak_rss_mb,
        "peak_pss_mb": run.peak_pss_mb,
        "processes_seen": run.processes,
        "failed_to_download": stats.get("failed_to_download", 0),
        "failed_to_resize": stats.get("failed_to_resize", 0),
        "shard_seconds": stats["shard_seconds"],
        "shards": stats.get("shards", 0),
        "unaccounted": count - stats.get("count", 0),
        "arguments": arguments,
        "log": str(log),
    }
