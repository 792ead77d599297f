"""What the download benchmarks share: the image host as a separate process, a folder of
photo-sized JPEGs, and a URL list mixing those photos with faulty URLs."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 0.2  # seconds between memory samples of a process tree
PHOTOS = REPO / ".bench" / "photos"
WNIDS = (REPO / "wordnet" / "data" / "demo.txt").read_text().split()
HOSTS = 250  # the photos are spread over 127.0.0.1 and its aliases, as a real list spans hosts
# Faults for the mixed list, as host paths; {i} makes each URL unique. No slow bodies: both
# downloaders would just wait out the same timeout.
ERRORS = (
    "/fault/404/{i}",
    "/fault/html/{i}",
    "/fault/truncated/{i}",
    "/fault/reset/{i}",
    "/fault/flaky/{i}",
    "/fault/redirect/2/{i}",
    "/fault/empty/{i}",
    "/format/tiny/{i}",
    "/fault/wrongtype/{i}",
    "/format/cmyk/{i}",
)
# With the politeness faults: opt-outs and hosts that answer 429.
FAULTS = ERRORS + ("/optout/noai/{i}", "/optout/tdm/{i}", "/fault/ratelimit/{i}", "/limited/{i}?rate=2")
# The host draws a picture per token, about 6 ms of CPU taken from the tool under test on
# these two cores (a real web server costs the downloader nothing): the faulty URLs share
# this many tokens, and a query (n=) keeps each URL, and each first-time-only fault, unique.
FAULT_PICTURES = 50


@contextmanager
def image_host(folder: Path | None = None, hosts: int = HOSTS) -> Iterator[str]:
    """``python -m pipeline.imagehost --port 0`` in its own process, answering as ``hosts``
    hosts (127.0.0.1 and aliases); yields its base URL."""
    command = [sys.executable, "-m", "pipeline.imagehost", "--port", "0", "--aliases", str(hosts - 1)]
    if folder:
        command += ["--folder", str(folder)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith("image host on "):
            raise RuntimeError(f"image host did not start: {line!r}")
        yield line.split()[-1].rstrip("/")
    finally:
        process.terminate()
        process.wait()


def _photo(args: tuple[int, Path]) -> None:
    from pipeline.imagehost.pictures import picture_jpeg

    number, path = args
    if not path.exists():
        path.write_bytes(picture_jpeg(WNIDS[number % len(WNIDS)], number))


def photo_folder(count: int) -> Path:
    """``count`` distinct 500x375 JPEGs of about 110 KB, made once into .bench/photos."""
    PHOTOS.mkdir(parents=True, exist_ok=True)
    todo = [(i, PHOTOS / f"{i:06d}.jpg") for i in range(count)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_photo, todo, chunksize=32))
    return PHOTOS


def url_list(
    base: str, count: int, faulty: float = 0.1, seed: int = 0, hosts: int = HOSTS, faults: tuple[str, ...] = FAULTS
) -> list[tuple[str, str]]:
    """(wnid, url) pairs: ``count`` photos of the folder, plus ``faulty`` of that many faults,
    spread over ``hosts`` hosts, shuffled."""
    port = base.rsplit(":", 1)[1]

    def host(i: int) -> str:
        return f"http://127.0.0.{1 + i % hosts}:{port}"

    pairs = [(WNIDS[i % len(WNIDS)], f"{host(i)}/files/{i:06d}.jpg") for i in range(count)]
    pairs += [
        (WNIDS[i % len(WNIDS)], host(i) + _fault_path(faults[i % len(faults)], i)) for i in range(int(count * faulty))
    ]
    random.Random(seed).shuffle(pairs)
    return pairs


def _fault_path(fault: str, i: int) -> str:
    path = fault.format(i=i % FAULT_PICTURES)
    return f"{path}{'&' if '?' in path else '?'}n={i}"


def write_imagenet_list(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """ImageNet's ``<wnid>_<index><TAB><url>`` format, for the candidates stage."""
    path.write_text("".join(f"{wnid}_{i}\t{url}\n" for i, (wnid, url) in enumerate(pairs)))
    return path


def _tree(root: int) -> list[int]:
    """``root`` and its living descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _kib(path: str, field: bytes) -> int:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class MemorySampler(threading.Thread):
    """Every SAMPLE_EVERY s, sums VmRSS (and Pss, which shares out common pages such as the
    libraries every process maps) over the process tree; keeps the peaks, in KiB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak_rss = self.peak_pss = self.peak_processes = 0

    def sample(self) -> None:
        pids = _tree(self.pid)
        self.peak_rss = max(self.peak_rss, sum(_kib(f"/proc/{p}/status", b"VmRSS:") for p in pids))
        self.peak_pss = max(self.peak_pss, sum(_kib(f"/proc/{p}/smaps_rollup", b"Pss:") for p in pids))
        self.peak_processes = max(self.peak_processes, len(pids))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(SAMPLE_EVERY)


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_mb: float
    peak_pss_mb: float
    processes: int


def measure(command: list[str], *, env: dict | None = None, output=None, cwd: Path = REPO) -> Measured:
    """Run ``command`` in its own session; wall time and the peak memory of its process tree."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    sampler = MemorySampler(process.pid)
    sampler.start()
    try:
        returncode = process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        seconds = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    return Measured(returncode, seconds, sampler.peak_rss / 1024, sampler.peak_pss / 1024, sampler.peak_processes)


def peer_venv(root: Path, name: str, version: str) -> Path:
    """A peer's own virtualenv at ``root`` (``python -m venv`` with the interpreter behind the
    running one, then ``pip install name==version`` unless already there); returns its python.
    Peers live apart so their dependencies never meet ours."""
    python = root / "bin" / "python"
    if python.exists() and _peer_installed(root, name, version):
        return python
    if not python.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", "--clear", str(root)], check=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", f"{name}=={version}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not _peer_installed(root, name, version):
        raise RuntimeError(f"pip install {name}=={version} into {root} failed:\n{done.stderr[-4000:]}")
    return python


def _peer_installed(root: Path, name: str, version: str) -> bool:
    folder = re.sub(r"[-_.]+", "_", name)  # the dist-info spelling: crowd-kit -> crowd_kit
    return any(root.glob(f"lib/python*/site-packages/{folder}-{version}.dist-info"))
