"""Hash a folder of images in parallel: the dedupe stage on any image collection.

Files are decoded by ``pipeline.hashing``'s rule (JPEG draft mode, upright; ``hash_files``), so their
hashes compare with the download stage's. A class folder layout (``<wnid>/<file>``, as
ImageFolder and ILSVRC's train folders have it) gives each image its class; files at the
top have none. A file Pillow cannot read is listed as a failure, not hashed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from pipeline import schemas
from pipeline.hashing import FILES_PER_BATCH, IMAGE_EXTENSIONS, Hashes, hash_files

RAY_CHUNK = 512  # files per Ray task


def image_files(folder: Path) -> list[str]:
    """Paths below ``folder`` with an image extension, POSIX style, sorted."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )


def _hash_on_ray(paths: list[Path], bar) -> list[tuple | str]:
    """One Ray task per RAY_CHUNK files; the folder must be at the same path on every node."""
    from pipeline.distributed import ray_module

    ray = ray_module()
    task = ray.remote(max_retries=3, num_cpus=1)(hash_files)
    refs = [task.remote(paths[i : i + RAY_CHUNK]) for i in range(0, len(paths), RAY_CHUNK)]
    done: dict = {}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done[ready[0]] = ray.get(ready[0])
        bar.update(len(done[ready[0]]))
    return [result for ref in refs for result in done[ref]]


def hash_folder(folder: Path, processes: int, executor: str = "local") -> tuple[pa.Table, list[tuple[str, str]]]:
    """The hashes table of every image below ``folder``, and the (path, error) of the failures.
    ``executor``: local worker processes, or Ray tasks (``ray``)."""
    files = image_files(folder)
    paths = [folder / f for f in files]
    bar = tqdm(total=len(files), desc="hash", unit="img", disable=None)
    results = []
    try:
        if executor == "ray":
            results = _hash_on_ray(paths, bar)
        else:
            chunks = [paths[i : i + FILES_PER_BATCH] for i in range(0, len(paths), FILES_PER_BATCH)]
            with contextlib.ExitStack() as stack:
                if processes > 1 and len(chunks) > 1:
                    mapped = stack.enter_context(multiprocessing.get_context("spawn").Pool(processes)).imap(
                        hash_files, chunks
                    )
                else:
                    mapped = map(hash_files, chunks)
                for chunk in mapped:
                    results.extend(chunk)
                    bar.update(len(chunk))
    finally:
        bar.close()
    rows = {name: [] for name in schemas.HASHES.names}
    failures = []
    for name, result in zip(files, results):
        if isinstance(result, str):
            failures.append((name, result))
            continue
        sha, width, height, hashes = result
        parts = name.split("/")
        rows["image_id"].append(name)
        rows["wnid"].append(parts[0] if len(parts) > 1 else "")
        rows["location"].append(name)
        rows["sha256"].append(sha)
        rows["width"].append(width)
        rows["height"].append(height)
        rows["rank"].append(0)
        for field in Hashes._fields:
            rows[field].append(getattr(hashes, field))
    return pa.Table.from_pydict(rows, schema=schemas.HASHES), failures
