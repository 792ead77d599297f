"""imagededup 0.3.3.post2 as the near-duplicate search peer, run in its own virtualenv on the
same 64-bit hashes.

Why a venv of its own: imagededup depends on torch and torchvision (its CNN method), which pip
resolves to torch 2.14 with the CUDA 13 wheels: ``.bench/imagededup`` is 5.8 GB (about a
minute from the local mirror), and importing ``imagededup.methods`` imports torch, about
780 MB of RSS before any search. Its wheel also installs two stray top-level modules,
``mkdocs`` (just ``autogen.py``: it would shadow a real mkdocs) and ``brute_force_cython_ext``.
``ensure_venv()`` makes the venv (``python -m venv`` with the interpreter behind the running
one); ``find_duplicates()`` writes the hashes to a temp file and runs, in a subprocess of that
venv, ``PHash().find_duplicates(encoding_map={str(i): hex}, max_distance_threshold=radius,
scores=True, search_method=...)``, the documented way to search precomputed hashes.

Encoding: imagededup's hash is the 8x8 bit matrix row-major, first bit most significant, as 16
hex digits (``np.packbits``), our int64's layout, so ``pipeline.hashing.hex_of`` gives its
string; a signed -1 becomes "ffffffffffffffff". brute_force_cython compares
``popcount(int(a, 16) ^ int(b, 16))`` as unsigned long long, bktree and brute_force compare
``bin(int(h, 16))`` strings zero-filled to 64: the same 64 bits as ours either way.

What it returns, seen on 0.3.3.post2: a match is distance <= ``max_distance_threshold`` (as
ours, 0..64, a Python int: a numpy int is a TypeError); a hash is dropped from its own list by
key, so equal hashes under two keys are a pair at distance 0; every pair comes back from both
sides (``{"3": [("17", 4)], "17": [("3", 4)]}``), sorted by distance. An unknown
``search_method`` silently runs brute_force_cython (checked here); an empty map is a
ValueError; each call warns that ``num_enc_workers`` has no effect.

Its cost: every method is a loop over the queries in a ``multiprocessing.Pool`` (fork) of
``num_dist_workers`` processes, default ``cpu_count()`` (2 here; 0 still starts one), fed by
``imap`` in chunks of 100 that each pickle the whole index. All three are quadratic, CPU time
~ n^2.00 from 2,000 to 20,000 hashes at radius 10: brute_force_cython rebuilds the list of all
n ``int(hex, 16)`` in Python for every query (the C popcount loop is the cheap part);
brute_force calls the Python ``bin`` string distance n^2 times; the BK-tree prunes nothing at
radius 10 (random 64-bit hashes lie 32 +- 4 bits apart, so a child's range d +- 10 keeps
nearly every child) and pays the same string distance plus a ``deepcopy`` per query.

Measured on this 2-core machine, radius 10, 1% planted near copies, default 2 workers; the
machine was shared, so wall times vary up to 2-3x; CPU time (process + pool) is steadier.
Seconds of the find_duplicates call alone; each run's pairs equal the brute-force reference:

    n        brute_force_cython       bktree                  brute_force
             wall      CPU            wall        CPU         wall        CPU
    2,000    0.4-1.1   0.65           13-42       27          14-32       26
    5,000    3.7-6.3   3.7            117-195     169         88-167      161
    10,000   14-23     15             446-451     -           400-536     -
    20,000   35-95     66             (> 10 min)              (> 10 min)
    100,000  ~15 min on 2 idle cores  ~9 h                    ~9 h          (n^2 extrapolated)

Peak RSS of the tree (parent + 2 forked workers, shared pages counted in each) 1.67-1.72 GB,
PSS 0.78-1.03 GB; with ``num_dist_workers=1`` 1.24 GB; the hashes themselves are negligible.
The subprocess adds about 4.5 s (interpreter, torch import) to each call's wall time.

    .venv/bin/python bench/imagededup_peer.py --n 5000 --radius 10 [--method all] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchhost import REPO, measure, peer_venv  # noqa: E402
from dedupe_speed import planted  # noqa: E402  (the search bench's hashes)

from pipeline.hashing import hex_of  # noqa: E402
from pipeline.nearcopies import as_uint64  # noqa: E402

VERSION = "0.3.3.post2"
DEFAULT_METHOD = "brute_force_cython"  # imagededup's default on every platform but win32
METHODS = ("brute_force_cython", "bktree", "brute_force")

# Runs in the peer's venv: argv = hex file (one 16-digit hash a line), radius, search method,
# num_dist_workers ("default": imagededup's own, cpu_count()), result file. Times the
# find_duplicates call alone (wall, and CPU of the process plus its pool workers, which
# parallelise() joins before returning); the import of imagededup (torch included) is outside it.
DRIVER = """\
import json, resource, sys, time
from imagededup.methods import PHash
hex_path, radius, method, workers, out = sys.argv[1:6]
with open(hex_path) as f:
    encoding_map = {str(i): line.strip() for i, line in enumerate(f)}
kwargs = {} if workers == "default" else {"num_dist_workers": int(workers)}
phasher = PHash()
def cpu():
    usage = map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in usage)
start, start_cpu = time.perf_counter(), cpu()
duplicates = phasher.find_duplicates(encoding_map=encoding_map, max_distance_threshold=int(radius),
                                     scores=True, search_method=method, **kwargs)
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
with open(out, "w") as f:
    json.dump({"seconds": seconds, "cpu_seconds": cpu_seconds, "duplicates": duplicates}, f, default=int)
"""


def ensure_venv(root: Path = REPO / ".bench" / "imagededup") -> Path:
    """Create the venv at ``root`` and install imagededup==0.3.3.post2 unless already there;
    return its python. Idempotent; when present it only checks two paths."""
    return peer_venv(root, "imagededup", VERSION)


def find_duplicates(
    hashes,
    radius: int,
    search_method: str = DEFAULT_METHOD,
    *,
    num_dist_workers: int | None = None,
    python: Path | None = None,
) -> dict:
    """Every pair of ``hashes`` within ``radius`` bits, as imagededup finds them:
    ``PHash().find_duplicates(encoding_map={str(i): hex_of(hashes[i])}, max_distance_threshold=radius,
    scores=True, search_method=search_method)`` in the peer's venv, in a subprocess.

    Returns ``pairs`` (set of ``(i, j)``, ``i < j``), ``seconds`` (the find_duplicates call
    alone, timed in the subprocess), ``wall_seconds`` (the whole subprocess: interpreter,
    imports, reading the hashes, writing the result), ``peak_rss_mb`` (peak sum of VmRSS over
    the process tree, its pool workers included; ``peak_pss_mb`` the same with Pss),
    ``processes`` (most processes seen at once), ``distances`` ({pair: distance} as imagededup
    reported it), ``matches`` (entries in its result: each pair comes back once per side) and
    ``one_sided`` (pairs it reported from one side only; 0 when its result is symmetric).
    ``num_dist_workers`` None keeps imagededup's default (``multiprocessing.cpu_count()``).
    """
    values = as_uint64(hashes)
    if len(values) == 0:
        raise ValueError("imagededup rejects an empty encoding_map ('Provide either an image directory or encodings!')")
    if search_method not in METHODS:  # imagededup would silently run brute_force_cython for any other name
        raise ValueError(f"search_method must be one of {METHODS}, got {search_method!r}")
    if not 0 <= radius <= 64:
        raise ValueError(f"radius must be in 0..64, got {radius}")
    python = python or ensure_venv()
    workers = "default" if num_dist_workers is None else str(num_dist_workers)
    with tempfile.TemporaryDirectory(prefix="imagededup-peer-") as tmp:
        tmp = Path(tmp)
        hex_path, out, log_path = tmp / "hashes.txt", tmp / "result.json", tmp / "log"
        hex_path.write_text("".join(hex_of(h) + "\n" for h in values.tolist()))
        with open(log_path, "wb") as log:
            run = measure(
                [str(python), "-c", DRIVER, str(hex_path), str(int(radius)), search_method, workers, str(out)],
                output=log,
            )
        if run.returncode != 0:
            raise RuntimeError(
                f"imagededup exited with {run.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        result = json.loads(out.read_text())
    directed = {
        (int(query), int(match)): distance for query, found in result["duplicates"].items() for match, distance in found
    }
    distances = {(min(i, j), max(i, j)): d for (i, j), d in directed.items()}
    return {
        "pairs": set(distances),
        "seconds": result["seconds"],
        "cpu_seconds": result["cpu_seconds"],
        "wall_seconds": run.seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "peak_pss_mb": run.peak_pss_mb,
        "processes": run.processes,
        "distances": distances,
        "matches": len(directed),
        "one_sided": sum((j, i) not in directed for i, j in directed),
    }


def reference_pairs(hashes, radius: int) -> set[tuple[int, int]]:
    """Every pair ``i < j`` within ``radius`` bits: XOR and popcount over all pairs, in row blocks."""
    values = as_uint64(hashes)
    step = max(1, 4_000_000 // max(len(values), 1))
    pairs: set[tuple[int, int]] = set()
    for start in range(0, len(values), step):
        d = np.bitwise_count(values[start : start + step, None] ^ values[None, :])
        i, j = np.nonzero(d <= radius)
        i += start
        keep = i < j
        pairs.update(zip(i[keep].tolist(), j[keep].tolist()))
    return pairs


def growth(sizes: list[int], seconds: list[float], target: int) -> tuple[float, float]:
    """Least-squares exponent b of seconds ~ a * n**b, and the seconds it predicts at ``target``."""
    x, y = np.log(sizes), np.log(seconds)
    b, log_a = np.polyfit(x, y, 1)
    return float(b), float(math.exp(log_a) * target**b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[5000], help="hash counts, one run each")
    parser.add_argument("--radius", type=int, default=10)
    parser.add_argument("--method", nargs="+", default=[DEFAULT_METHOD], choices=METHODS + ("all",))
    parser.add_argument(
        "--workers", type=int, default=None, help="num_dist_workers (default: imagededup's, cpu_count())"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extrapolate", type=int, default=100_000, help="n to extrapolate the time to")
    args = parser.parse_args()
    methods = METHODS if "all" in args.method else args.method
    python = ensure_venv()
    ok = True
    for method in methods:
        times = []
        for n in args.n:
            hashes, copies = planted(n, args.radius, seed=args.seed)
            start = time.perf_counter()
            reference = reference_pairs(hashes, args.radius)
            reference_seconds = time.perf_counter() - start
            found = find_duplicates(hashes, args.radius, method, num_dist_workers=args.workers, python=python)
            same = found["pairs"] == reference
            wrong_distance = sum(
                d != int(np.bitwise_count(as_uint64(hashes[i]) ^ as_uint64(hashes[j])))
                for (i, j), d in found["distances"].items()
            )
            ok &= same and not wrong_distance
            times.append(found["seconds"])
            print(
                f"{method} n={n} radius={args.radius}: {len(found['pairs'])} pairs "
                f"({found['matches']} entries, {found['one_sided']} one-sided), reference {len(reference)} "
                f"(planted {len(copies)}, {len(copies & reference)} of them found), "
                f"{'equal' if same else 'DIFFERENT'}: {len(found['pairs'] - reference)} extra, "
                f"{len(reference - found['pairs'])} missing, {wrong_distance} wrong distances; "
                f"find_duplicates {found['seconds']:.2f} s (CPU {found['cpu_seconds']:.2f} s), "
                f"wall {found['wall_seconds']:.2f} s, "
                f"peak RSS {found['peak_rss_mb']:.0f} MB (PSS {found['peak_pss_mb']:.0f} MB, "
                f"{found['processes']} processes); reference {reference_seconds:.2f} s",
                flush=True,
            )
        if len(args.n) > 1:
            exponent, predicted = growth(args.n, times, args.extrapolate)
            print(f"{method}: time ~ n^{exponent:.2f}; n={args.extrapolate:,} would take about {predicted:,.0f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
