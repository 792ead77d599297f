"""SIGKILL the download stage at random moments, rerun it each time, and compare the end
result with an uninterrupted run: the same ``ok`` image_ids, no duplicates, one ledger row
per candidate. Prints the counts of both runs.

    .venv/bin/python bench/download_kill_resume.py [--urls 1200] [--kills 4] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import image_host, write_url_list  # noqa: E402


def run_download(data: Path, subset: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "download", "--data", str(data), "--subset", subset,
                             "--allow-private-hosts", "--timeout", "5"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def collect(data: Path, subset: str, urls: Path) -> None:
    subprocess.run([sys.executable, "-m", "pipeline", "candidates", "--data", str(data), "--subset", subset,
                    "--source", "urllist", "--urls", str(urls), "--shard-size", "100"], cwd=REPO, check=True,
                   stderr=subprocess.DEVNULL)


def outcome(workdir: Path) -> dict:
    ok = [i for p in sorted((workdir / "images").glob("*.parquet")) for i in pq.read_table(p, columns=["image_id"]).column(0).to_pylist()]
    ledger = sum(pq.read_metadata(p).num_rows for p in (workdir / "ledger").glob("*.parquet"))
    candidates = sum(pq.read_metadata(p).num_rows for p in (workdir / "candidates").glob("*.parquet"))
    return {"ok": len(ok), "distinct_ok": len(set(ok)), "ids": set(ok), "ledger_rows": ledger, "candidates": candidates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=1200)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    try:
        with image_host() as base:
            urls = write_url_list(data / "urls.txt", base, args.urls, faulty=0.1, seed=args.seed, slow=False)
            for subset in ("straight", "killed"):
                (data / subset).mkdir()
                shutil.copy(REPO / "wordnet" / "data" / "demo.txt", data / subset / "wnids.txt")
                subprocess.run([sys.executable, "-m", "pipeline", "synsets", "--data", str(data), "--subset", subset,
                                "--wnids", str(data / subset / "wnids.txt")], cwd=REPO, check=True, stderr=subprocess.DEVNULL)
                collect(data, subset, urls)

            start = time.monotonic()
            straight = run_download(data, "straight")
            if straight.wait() != 0:
                print(straight.stderr.read(), file=sys.stderr)
                return 1
            full = time.monotonic() - start

            kills = 0
            while True:
                process = run_download(data, "killed")
                if kills < args.kills:
                    try:
                        process.wait(timeout=rng.uniform(0.5, max(1.0, full * 0.6)))
                    except subprocess.TimeoutExpired:
                        process.send_signal(signal.SIGKILL)
                        process.wait()
                        kills += 1
                        print(f"killed run {kills} with SIGKILL", flush=True)
                        continue
                if process.wait() != 0:
                    print(process.stderr.read(), file=sys.stderr)
                    return 1
                break

        a, b = outcome(data / "straight"), outcome(data / "killed")
        print(f"{'':24}{'uninterrupted':>14}{'killed+rerun':>14}")
        for key in ("candidates", "ledger_rows", "ok", "distinct_ok"):
            print(f"{key:24}{a[key]:>14}{b[key]:>14}")
        print(f"kills: {kills}; same ok image_ids: {a['ids'] == b['ids']}")
        return 0 if a["ids"] == b["ids"] and b["ok"] == b["distinct_ok"] and b["ledger_rows"] == b["candidates"] else 1
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
