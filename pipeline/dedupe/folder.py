"""Hash a folder of images in parallel: the dedupe stage on any image collection.

Files are decoded by ``pipeline.hashing``'s rule (JPEG draft mode, upright; ``hash_files``), so their
hashes compare with the download stage's. A class folder layout (``<wnid>/<file>``, as
ImageFolder and ILSVRC's train folders have it) gives each image its class; files at the
top have none. A file Pillow cannot read, a symbolic link to nothing and a link back to a
folder above it (a loop) are listed as failures, not hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import stat
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa

from pipeline import schemas
from pipeline.errors import InputError
from pipeline.hashing import FILES_PER_BATCH, IMAGE_EXTENSIONS, Hashes, hash_files
from pipeline.progress import progress

RAY_CHUNK = 512  # files per Ray task
LOOP = "a link back to a folder above it (a loop): not walked again"


class Listing(NamedTuple):
    """The images below a folder, found once for the fingerprint and the hashing."""

    files: list[str]  # image files, paths relative to the folder, POSIX style, sorted
    broken_links: list[tuple[str, str]]  # (path, why) of links skipped: to nothing, or back up (a loop)
    state: str  # sha256 over every image file's path, size and modification time


def list_folder(folder: Path) -> Listing:
    """The image files below ``folder``, following symbolic links to folders (a class folder
    linked from another disk is part of the collection). A link back to a folder above it
    would make the walk endless, and a link to nothing has no image: both are skipped and
    listed. A file Pillow cannot read is left to ``hash_files`` to report."""
    found: list[tuple[str, int, int]] = []
    broken: list[tuple[str, str]] = []
    top = folder.stat()
    pending = [(folder, "", frozenset({(top.st_dev, top.st_ino)}))]
    while pending:
        directory, prefix, above = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            raise InputError(f"cannot list this folder ({e.strerror})", file=directory) from None
        for entry in entries:
            name = prefix + entry.name
            try:
                st = entry.stat()
            except OSError as e:
                why = f"symbolic link to {os.readlink(entry.path)!r}" if entry.is_symlink() else "file"
                broken.append((name, f"{why}: {e.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in above:
                    broken.append((name, f"{LOOP} ({os.path.realpath(entry.path)})"))
                    continue
                pending.append((Path(entry.path), name + "/", above | {(st.st_dev, st.st_ino)}))
            elif stat.S_ISREG(st.st_mode) and not entry.name.startswith("."):
                if Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                    found.append((name, st.st_size, st.st_mtime_ns))
    found.sort()
    state = hashlib.sha256("".join(f"{n}\0{size}\0{time}\n" for n, size, time in found).encode()).hexdigest()
    return Listing([n for n, _, _ in found], sorted(broken), state)


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


def hash_folder(
    folder: Path, processes: int, executor: str = "local", listing: Listing | None = None
) -> tuple[pa.Table, list[tuple[str, str]]]:
    """The hashes table of every image below ``folder``, and the (path, error) of the files
    not hashed: unreadable images and broken links. ``executor``: local worker processes, or
    Ray tasks (``ray``); ``listing``: the folder's ``list_folder``, when already taken."""
    listing = listing or list_folder(folder)
    files = listing.files
    paths = [folder / f for f in files]
    bar = progress(total=len(files), desc="hash", unit="img")
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
    failures = list(listing.broken_links)
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
    return pa.Table.from_pydict(rows, schema=schemas.HASHES), sorted(failures)
