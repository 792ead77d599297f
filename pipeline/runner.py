"""The stage runner: the one way every stage writes its outputs.

A stage declares what it reads (``inputs``), what it writes (``outputs``, relative to
its working folder ``$(DATA)/$(SUBSET)``) and the settings that decide its result. The
runner turns those into a fingerprint; when a finished run left the same fingerprint
and its outputs are untouched, the stage is skipped. Otherwise the stage builds into a
temporary folder beside its outputs and the runner renames the results into place, so a
failed or interrupted run never leaves partial output behind.

Inputs are identified the way ``make`` does it, by each file's size and modification
time, which costs nothing at any scale and never misses a rewrite. A stage that reruns
therefore makes every later stage that reads its outputs rerun too.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, PipelineError
from .files import atomic_write_text
from .layout import CACHES, STAMPS


@dataclass(frozen=True)
class Stage:
    """One stage's declaration. Bump ``version`` when the same inputs would now give other outputs."""

    name: str
    workdir: Path
    outputs: tuple[str, ...]
    inputs: tuple[Path, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    version: int = 1


@dataclass(frozen=True)
class StageRun:
    stage: str
    skipped: bool
    summary: str
    seconds: float


def tree_state(path: Path) -> list[list[Any]]:
    """``[relative name, size, mtime_ns]`` for a file, or for every file below a folder."""
    if path.is_file():
        st = path.stat()
        return [[".", st.st_size, st.st_mtime_ns]]
    state = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root, name)
            st = full.stat()
            state.append([full.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns])
    return state


def _name(path: Path, workdir: Path) -> str:
    """An input's name in the fingerprint: relative to the working folder when inside it, so
    a data folder that moves (or a mirror of DATA=s3://... on another machine) stays current."""
    try:
        return Path(path).resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return str(path)


def fingerprint(stage: Stage) -> str:
    inputs = {}
    for path in stage.inputs:
        if not path.exists():
            raise InputError(f"stage {stage.name} needs this input and it is missing", file=path)
        inputs[_name(path, stage.workdir)] = tree_state(path)
    doc = {
        "stage": stage.name,
        "version": stage.version,
        "settings": stage.settings,
        "inputs": inputs,
    }
    blob = json.dumps(doc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def work_cache(workdir: Path, name: str, settings: Mapping[str, Any]) -> Path:
    """``workdir/.cache/<name>/<settings key>``: where a stage keeps finished pieces of work
    (a class's search hits, a downloaded shard) that a rerun after an interruption reuses.
    Only the cache of the current settings is kept; caches of other settings are removed."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = workdir / CACHES / name
    if root.is_dir():
        for other in root.iterdir():
            if other.name != key:
                _remove(other)
    return root / key


def stamp_path(stage: Stage) -> Path:
    return stage.workdir / STAMPS / f"{stage.name}.json"


def read_stamp(stage: Stage) -> dict | None:
    try:
        return json.loads(stamp_path(stage).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_current(stage: Stage, fp: str) -> bool:
    """True when the last finished run had this fingerprint and its outputs are as it left them."""
    stamp = read_stamp(stage)
    if not stamp or stamp.get("fingerprint") != fp:
        return False
    for rel in stage.outputs:
        out = stage.workdir / rel
        if not out.exists() or tree_state(out) != stamp["outputs"].get(rel):
            return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class lock:
    """An exclusive lock per stage and working folder, so two runs never interleave writes.

    Every stage that writes into a dataset folder holds it while it writes, the runner's
    stages and the ones that append (answers, imports, reports) alike; a second run fails
    at once with one line instead of waiting or interleaving."""

    def __init__(self, workdir: Path, name: str):
        self.path = Path(workdir) / STAMPS / f"{name}.lock"
        self.workdir = Path(workdir)
        self.name = name

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise PipelineError(f"another run of stage {self.name} is writing to {self.workdir}") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(
    stage: Stage,
    build: Callable[[Path], str],
    *,
    force: bool = False,
    log: Callable[[str], None] = _log,
) -> StageRun:
    """Run ``build(tmpdir)`` unless the stage is current; ``build`` writes every declared output
    under ``tmpdir`` and returns a one-line summary of what it did."""
    start = time.monotonic()
    fp = fingerprint(stage)
    created = next((p for p in reversed([stage.workdir, *stage.workdir.parents]) if not p.exists()), None)
    stage.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _run_locked(stage, build, fp, start, force, log)
    except BaseException:
        if created is not None:  # leave no trace of a run that wrote nothing
            shutil.rmtree(created, ignore_errors=True)
        raise


def _run_locked(
    stage: Stage, build: Callable[[Path], str], fp: str, start: float, force: bool, log: Callable[[str], None]
) -> StageRun:
    with lock(stage.workdir, stage.name):
        if not force and is_current(stage, fp):
            summary = read_stamp(stage).get("summary", "")
            log(f"{stage.name}: up to date in {stage.workdir} ({summary}); skipped, --force reruns it")
            return StageRun(stage.name, True, summary, time.monotonic() - start)

        for stale in stage.workdir.glob(f".tmp-{stage.name}-*"):
            _remove(stale)
        tmp = Path(tempfile.mkdtemp(dir=stage.workdir, prefix=f".tmp-{stage.name}-"))
        try:
            summary = build(tmp)
            missing = [rel for rel in stage.outputs if not (tmp / rel).exists()]
            if missing:
                raise PipelineError(f"stage {stage.name} did not write {', '.join(missing)}")
            stamp_path(stage).unlink(missing_ok=True)
            for rel in stage.outputs:
                target = stage.workdir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _remove(target)
                os.replace(tmp / rel, target)
        finally:
            _remove(tmp)

        seconds = time.monotonic() - start
        stamp = {
            "stage": stage.name,
            "fingerprint": fp,
            "settings": stage.settings,
            "outputs": {rel: tree_state(stage.workdir / rel) for rel in stage.outputs},
            "summary": summary,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 3),
        }
        atomic_write_text(stamp_path(stage), json.dumps(stamp, indent=1, default=str) + "\n")
    log(f"{stage.name}: {summary} -> {stage.workdir} ({seconds:.1f} s)")
    return StageRun(stage.name, False, summary, seconds)
