"""SIGKILL the download stage at random moments, rerun it each time, and compare the end
result with an uninterrupted run: the same ``ok`` image_ids, no duplicates, one ledger row
per candidate. Prints the counts of both runs.

    .venv/bin/python bench/download_kill_resume.py [--urls 1200] [--kills 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchhost import REPO, image_host, photo_folder, url_list, write_imagenet_list  # noqa: E402

from pipeline import store  # noqa: E402
from pipeline.layout import Layout  # noqa: E402


def pipeline(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args, "--data", str(data), "--subset", "demo"]


def run_download(data: Path) -> subprocess.Popen:
    return subprocess.Popen(
        pipeline(data, "download", "--allow-private-hosts", "--timeout", "5"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )


def outcome(data: Path) -> dict:
    workdir = Layout(data / "demo")
    ok = store.read_images(workdir.images, ["image_id"]).column(0).to_pylist()
    ledger = sum(pq.read_metadata(p).num_rows for p in workdir.ledger_shards())
    candidates = sum(pq.read_metadata(p).num_rows for p in workdir.candidate_parts())
    return {"ok": len(ok), "distinct_ok": len(set(ok)), "ids": set(ok), "ledger_rows": ledger, "candidates": candidates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=1200)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    photos = photo_folder(args.urls)
    try:
        with image_host(photos) as base:
            urls = write_imagenet_list(data / "urls.txt", url_list(base, args.urls, faulty=0.1, seed=args.seed))
            for run in ("straight", "killed"):
                for stage in (
                    ["synsets"],
                    ["candidates", "--source", "urllist", "--urls", str(urls), "--shard-size", "100"],
                ):
                    subprocess.run(pipeline(data / run, *stage), cwd=REPO, check=True, stderr=subprocess.DEVNULL)

            start = time.monotonic()
            straight = run_download(data / "straight")
            if straight.wait() != 0:
                print(straight.stderr.read(), file=sys.stderr)
                return 1
            full = time.monotonic() - start

            kills = 0
            while True:
                process = run_download(data / "killed")
                if kills < args.kills:
                    try:
                        process.wait(timeout=rng.uniform(0.3, max(1.0, full * 0.8)))
                    except subprocess.TimeoutExpired:
                        process.send_signal(signal.SIGKILL)
                        process.wait()
                        kills += 1
                        done = len(list((data / "killed" / "demo" / ".cache" / "download").glob("*/stats/*.json")))
                        print(f"SIGKILL {kills}: {done} shards finished so far", flush=True)
                        continue
                if process.wait() != 0:
                    print(process.stderr.read(), file=sys.stderr)
                    return 1
                break

        a, b = outcome(data / "straight"), outcome(data / "killed")
        print(f"download of {b['candidates']} candidates: {full:.1f} s uninterrupted; rerun after each kill")
        print(f"{'':24}{'uninterrupted':>14}{'killed+rerun':>14}")
        for key in ("candidates", "ledger_rows", "ok", "distinct_ok"):
            print(f"{key:24}{a[key]:>14}{b[key]:>14}")
        print(f"kills: {kills}; same ok image_ids: {a['ids'] == b['ids']}")
        return 0 if a["ids"] == b["ids"] and b["ok"] == b["distinct_ok"] and b["ledger_rows"] == b["candidates"] else 1
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
