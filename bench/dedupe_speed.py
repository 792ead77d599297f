"""Dedupe speed: hashing a folder, and the near-duplicate search, against the peers.

1. Hashing, one process: images/s of ``pipeline.hashing.hash_files`` (six hashes by our
   decoding rule: JPEG draft mode, plain JPEGs straight through libjpeg-turbo) against
   ``imagehash.phash(Image.open(f))`` (one hash, full decode) over the same files: the 200
   ILSVRC photos of ../shared as they are (68 to 2400 px), and the same photos brought to
   500 px as the download stage stores them. Ours is also
   timed on its first pass, before its cache of resize matrices (one per image size) fills.
   Then the whole folder with ``hash_folder`` on every core.
2. Search: ``N`` random 64-bit hashes (default 100,000) with 1% planted near copies (1 to 10
   bits flipped), all pairs within radius 10, ours (``pipeline.nearcopies.near_pairs``)
   against imagededup's ``find_duplicates`` in its own venv (bench/imagededup_peer.py); the
   pair sets must be identical. The peer's search is quadratic (CPU time grows as n^2.00,
   measured from 2,000 to 20,000; about 15 minutes at 100,000 on two idle cores), so by
   default it runs on the first ``--peer-n`` (20,000) hashes, both sides are compared there,
   and its time at ``N`` is extrapolated as (N / peer-n)^2; ``--peer-n 100000`` measures it.
3. 1,000,000 hashes at radius 10, in a child process: seconds and peak memory.
4. ``--large``: 10,000,000 hashes at radius 8, the same way (about 8 minutes on this machine).

    python bench/dedupe_speed.py [--n 100000] [--peer-n 100000] [--large] [--skip-peer]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pipeline.nearcopies import near_pairs  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data" / "real-photos" / "imagenet-samples"
ROUNDS = 5


def planted(n: int, radius: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """``n`` random 64-bit hashes (uint64) of which 1%, one after another, are replaced by a copy
    of a random one with 1 to ``radius`` distinct bits flipped (none at radius 0); also the
    planted pairs ``(i, j)``, ``i < j``: a copy and its original, where no later copy replaced
    the original."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    original: dict[int, int] = {}  # copy -> the hash it copies, in the order the copies are made
    for target in rng.choice(n, n // 100, replace=False).tolist():
        source = int(rng.integers(n))
        value = int(hashes[source])
        for bit in rng.choice(64, rng.integers(min(1, radius), radius, endpoint=True), replace=False):
            value ^= 1 << int(bit)
        hashes[target] = value
        original[target] = source
    made = {target: step for step, target in enumerate(original)}
    pairs = {
        (min(target, source), max(target, source))
        for target, source in original.items()
        if source != target and made.get(source, -1) < made[target]
    }
    return hashes, pairs


def photo_folders(root: Path) -> dict[str, list[Path]]:
    """The real photos as they are, and brought to at most 500 px (JPEG q90) as stored by download."""
    from PIL import Image

    if SHARED.is_dir():
        originals = sorted(SHARED.glob("*.JPEG"))
    else:
        from pipeline.imagehost.pictures import picture_jpeg

        print("../shared is absent: hashing generated 500x375 pictures instead of real photos")
        originals = []
        for n in range(200):
            path = root / "generated" / f"{n}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(picture_jpeg("n01440764", n))
            originals.append(path)
    stored = []
    for path in originals:
        image = Image.open(path).convert("RGB")
        image.thumbnail((500, 500), Image.Resampling.LANCZOS)
        target = root / "stored" / (path.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        target.write_bytes(buffer.getvalue())
        stored.append(target)
    return {"as found": originals, "stored (500 px)": stored}


def best_rates(works: dict, files: list[Path]) -> dict[str, float]:
    """Images/s of each ``work(files)``, the best of ROUNDS rounds, the works taking turns
    within a round so that a slow spell of the machine hits them alike."""
    best = dict.fromkeys(works, 0.0)
    for _ in range(ROUNDS):
        for name, work in works.items():
            start = time.perf_counter()
            work(files)
            best[name] = max(best[name], len(files) / (time.perf_counter() - start))
    return best


def hashing() -> None:
    import imagehash
    from PIL import Image

    from pipeline.dedupe.folder import hash_folder
    from pipeline.hashing import FILES_PER_BATCH, decode_for_hash, hash_files, phash64
    from pipeline.lanczos import _plan, coefficients

    def ours(files):  # as hash_folder's workers do: FILES_PER_BATCH files at a time
        for i in range(0, len(files), FILES_PER_BATCH):
            hash_files(files[i : i + FILES_PER_BATCH])

    print(f"1. hashing, one process (best of {ROUNDS} rounds, taking turns)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, files in photo_folders(Path(tmp)).items():
            coefficients.cache_clear()
            _plan.cache_clear()
            start = time.perf_counter()
            ours(files)
            cold = len(files) / (time.perf_counter() - start)
            rate = best_rates(
                {
                    "peer": lambda fs: [imagehash.phash(Image.open(f)) for f in fs],
                    "alone": lambda fs: [phash64(decode_for_hash(Image.open(f))) for f in fs],
                    "ours": ours,
                },
                files,
            )
            peer = rate["peer"]
            print(
                f"   {label:<16} {len(files)} files: imagehash.phash {peer:6.0f} img/s; "
                f"ours, the same pHash by Pillow's draft decode {rate['alone']:6.0f} img/s "
                f"({rate['alone'] / peer:.2f}x per core); ours, all six hashes and sha256 "
                f"{rate['ours']:6.0f} img/s ({rate['ours'] / peer:.2f}x); its first pass, every resize matrix still "
                f"to compute, {cold:6.0f} img/s ({cold / peer:.2f}x)"
            )
            processes = os.cpu_count() or 1
            start = time.perf_counter()
            hash_folder(files[0].parent, processes)
            print(
                f"   {'':<16} hash_folder on {processes} processes: "
                f"{len(files) / (time.perf_counter() - start):.0f} img/s (pool start included)"
            )


def search_against_peer(n: int, peer_n: int, skip_peer: bool) -> None:
    print(f"2. search: {n:,} random hashes, 1% planted copies, radius 10")
    hashes, _ = planted(n, 10)
    start = time.perf_counter()
    ours = near_pairs(hashes, 10)
    seconds = time.perf_counter() - start
    print(f"   ours: {len(ours):,} pairs in {seconds:.2f} s")
    if skip_peer:
        return
    from imagededup_peer import ensure_venv, find_duplicates

    ensure_venv()
    full_seconds = seconds
    if peer_n < n:
        hashes = hashes[:peer_n]
        start = time.perf_counter()
        ours = near_pairs(hashes, 10)
        seconds = time.perf_counter() - start
        print(f"   on the first {peer_n:,} hashes: ours {len(ours):,} pairs in {seconds:.2f} s")
    peer = find_duplicates(hashes, 10)
    same = peer["pairs"] == ours.as_set()
    print(
        f"   imagededup find_duplicates (brute_force_cython, 2 processes) on {peer_n:,}: {len(peer['pairs']):,} "
        f"pairs in {peer['seconds']:.1f} s (peak {peer['peak_rss_mb']:.0f} MB); pair sets identical: {same}"
    )
    print(f"   at {peer_n:,}: ours is {peer['seconds'] / seconds:.0f}x faster")
    if peer_n < n:
        estimate = peer["seconds"] * (n / peer_n) ** 2
        print(
            f"   at {n:,}: imagededup about {estimate:.0f} s (quadratic), ours {full_seconds:.2f} s: "
            f"about {estimate / full_seconds:.0f}x faster"
        )


def search_in_child(n: int, radius: int) -> None:
    from benchhost import measure

    measured = measure([sys.executable, __file__, "--search-only", str(n), str(radius)])
    print(
        f"   {n:,} hashes at radius {radius}: {measured.seconds:.1f} s with hash generation, "
        f"peak {measured.peak_rss_mb:.0f} MB RSS"
    )


def search_only(n: int, radius: int) -> None:
    hashes, _ = planted(n, radius)
    start = time.perf_counter()
    found = near_pairs(hashes, radius)
    print(f"   search alone: {len(found):,} pairs in {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--peer-n", type=int, default=20_000, help="hashes the peer searches (default 20,000)")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--large", action="store_true", help="also 10M hashes at radius 8")
    parser.add_argument("--search-only", nargs=2, type=int, metavar=("N", "RADIUS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_only:
        search_only(*args.search_only)
        return
    hashing()
    search_against_peer(args.n, min(args.peer_n, args.n), args.skip_peer)
    print("3. scale")
    search_in_child(1_000_000, 10)
    if args.large:
        search_in_child(10_000_000, 8)


if __name__ == "__main__":
    main()
