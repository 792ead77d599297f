"""The stage runner: the one way every stage writes its outputs.

A stage declares what it reads (``inputs``), what it writes (``outputs``, relative to
its working folder ``$(DATA)/$(SUBSET)``) and the settings that decide its result. The
runner turns those into a fingerprint; when a finished run left the same fingerprint
and its outputs are untouched, the stage is skipped. Otherwise the stage builds into a
temporary folder beside its outputs (``.tmp-<stage>-*``) and the runner swaps the results
in: it moves the previous outputs and their stamp aside into ``.old-<stage>-*`` (one
rename each), renames the new ones in, writes the new stamp, then deletes the aside folder.

What a kill can lose: a SIGKILL (or Ctrl-C, or the process crashing) at any moment loses at
most the killed run's work in progress, never the last finished outputs. Until the new stamp is
written the previous outputs are either in place or whole in the aside folder; once it is
written the new outputs are all in place. The next run of that stage, even one that finds
it up to date, repairs what a kill left: it puts aside outputs back when the swap had not
finished, and deletes leftover temporary and aside folders. The stamp is only ever present
beside the outputs it describes, so a half-swapped folder is never taken for a finished one.
Nothing is fsynced: a power cut or a kernel crash is outside this promise.

Inputs are identified the way ``make`` does it, by each file's size and modification
time, which costs nothing at any scale and never misses a rewrite. A stage that reruns
therefore makes every later stage that reads its outputs rerun too.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import READ_ONLY, InputError, PipelineError, name_path
from .files import atomic_write_json, atomic_write_text
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
    """``[relative name, size, mtime_ns]`` for a file, or for every file below a folder.

    Links are followed, to files and to folders (an image folder of class folders linked from
    elsewhere is read through them, so their files count); a folder reached twice (a loop of
    links) is listed once. A link to nothing raises the OSError naming it."""
    if path.is_file():
        st = path.stat()
        return [[".", st.st_size, st.st_mtime_ns]]
    state = []
    seen = set()
    for root, dirs, files in os.walk(path, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
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


TEMPORARY = ".tmp-"  # a build in progress: .tmp-<stage>-<random>
ASIDE = ".old-"  # the previous outputs during a swap: .old-<stage>-<random>
JOURNAL = "swap.json"  # in the aside folder: the swap's outputs, and which had a previous version
OLD_STAMP = "stamp.json"  # in the aside folder: the previous outputs' stamp
OLD_OUTPUTS = "outputs"  # in the aside folder: the previous outputs, under their relative names
LOCK_TRIES = 100


def _own_folders(workdir: Path, kind: str, name: str) -> list[Path]:
    """This stage's temporary or aside folders (``mkdtemp`` names), not another stage's that
    shares a prefix (annotate-export-1 and annotate-export-10)."""
    pattern = re.compile(re.escape(f"{kind}{name}-") + r"[a-z0-9_]+")
    return sorted(p for p in workdir.iterdir() if pattern.fullmatch(p.name)) if workdir.is_dir() else []


class lock:
    """An exclusive lock per stage and working folder, so two runs never interleave writes.

    Every stage that writes into a dataset folder holds it while it writes, the runner's
    stages and the ones that append (answers, imports, reports) alike; a second run fails
    at once with one line instead of waiting or interleaving.

    On a folder this process may not write to (a read-only mount, another user's dataset),
    entering raises the refusal (an ``OSError`` naming the lock file); with ``read_only_ok``
    the lock file is opened read-only instead, so a run that only finds the stage up to date
    still works: ``writable`` is False and ``require_writable()`` raises the refusal.
    A holder may delete the lock file (a failed first run removing its traces): whoever then
    locks the deleted file sees that it is no longer the one named and locks the new one."""

    def __init__(self, workdir: Path, name: str, *, read_only_ok: bool = False):
        self.path = Path(workdir) / STAMPS / f"{name}.lock"
        self.workdir = Path(workdir)
        self.name = name
        self.read_only_ok = read_only_ok
        self.refused: OSError | None = None

    @property
    def writable(self) -> bool:
        return self.refused is None

    def require_writable(self) -> None:
        if self.refused is not None:
            raise self.refused

    def _open(self) -> int:
        self.refused = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as e:
            if e.errno not in READ_ONLY or not self.read_only_ok:
                raise
            self.refused = e
        try:
            return os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise self.refused from None

    def _is_named(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def __enter__(self):
        for _ in range(LOCK_TRIES):
            try:
                fd = self._open()
            except FileNotFoundError:  # a failed first run removed the folder as we made it
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise PipelineError(f"another run of stage {self.name} is writing to {self.workdir}") from None
            if self._is_named(fd):
                self.fd = fd
                return self
            os.close(fd)
        raise PipelineError(f"another run of stage {self.name} keeps replacing {self.path}")

    def remove(self, folders: list[Path]) -> None:
        """Delete the lock file, while holding it, then each of ``folders`` (innermost last)
        that is left empty: the traces of a first run that wrote nothing."""
        self.path.unlink(missing_ok=True)
        for folder in [self.path.parent, *reversed(folders)]:
            try:
                folder.rmdir()
            except OSError:  # another run, or another stage, has put something there
                return

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def repair(stage: Stage) -> None:
    """Undo what a killed run of this stage left: put back previous outputs that a swap had
    moved aside but not replaced (the stamp tells: a finished swap wrote the new one), then
    delete the aside and temporary folders and stamp temporaries. Call it holding the lock."""
    for aside in _own_folders(stage.workdir, ASIDE, stage.name):
        if not stamp_path(stage).exists():
            _put_back(stage, aside)
        _remove(aside)
    for stale in _own_folders(stage.workdir, TEMPORARY, stage.name):
        _remove(stale)
    for stale in (stage.workdir / STAMPS).glob(f".{stage.name}.json.*.tmp"):
        stale.unlink()


def _put_back(stage: Stage, aside: Path) -> None:
    """Return the outputs in ``aside`` to their places, deleting any new output moved in
    before them (deleting frees space, so this works on a full disk), and their stamp last."""
    try:
        journal = json.loads((aside / JOURNAL).read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # killed before moving anything
        return
    for rel in journal["outputs"]:
        target, old = stage.workdir / rel, aside / OLD_OUTPUTS / rel
        had_old, moved_aside = rel in journal["present"], os.path.lexists(old)
        if had_old and not moved_aside:
            continue  # never moved: the previous output is in place
        if os.path.lexists(target):  # the new output the killed run had moved in
            _remove(target)
        if moved_aside:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, target)
    if (aside / OLD_STAMP).exists():
        os.replace(aside / OLD_STAMP, stamp_path(stage))


def _swap(stage: Stage, tmp: Path) -> Path:
    """Move the previous outputs and stamp aside, then the new outputs in; each step one
    rename. Returns the aside folder, to delete once the new stamp is written."""
    aside = Path(tempfile.mkdtemp(dir=stage.workdir, prefix=f"{ASIDE}{stage.name}-"))
    present = [rel for rel in stage.outputs if os.path.lexists(stage.workdir / rel)]
    atomic_write_json(aside / JOURNAL, {"outputs": list(stage.outputs), "present": present})
    if stamp_path(stage).exists():
        os.replace(stamp_path(stage), aside / OLD_STAMP)
    for rel in present:
        (aside / OLD_OUTPUTS / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage.workdir / rel, aside / OLD_OUTPUTS / rel)
    for rel in stage.outputs:
        target = stage.workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, target)
    return aside


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
    created = [p for p in reversed([stage.workdir, *stage.workdir.parents]) if not p.exists()]
    stage.workdir.mkdir(parents=True, exist_ok=True)
    with lock(stage.workdir, stage.name, read_only_ok=True) as held:
        try:
            return _run_locked(stage, held, build, fp, start, force, log)
        except BaseException:
            if created and held.writable:  # a first run that wrote nothing leaves no folder
                held.remove(created)  # only emptied folders: another run may be starting in them
            raise


def _run_locked(
    stage: Stage,
    held: lock,
    build: Callable[[Path], str],
    fp: str,
    start: float,
    force: bool,
    log: Callable[[str], None],
) -> StageRun:
    if held.writable:
        repair(stage)
    if not force and is_current(stage, fp):
        summary = read_stamp(stage).get("summary", "")
        log(f"{stage.name}: up to date in {stage.workdir} ({summary}); skipped, --force reruns it")
        return StageRun(stage.name, True, summary, time.monotonic() - start)
    held.require_writable()

    tmp = Path(tempfile.mkdtemp(dir=stage.workdir, prefix=f"{TEMPORARY}{stage.name}-"))
    try:
        summary = build(tmp)
        missing = [rel for rel in stage.outputs if not (tmp / rel).exists()]
        if missing:
            raise PipelineError(f"stage {stage.name} did not write {', '.join(missing)}")
        try:
            aside = _swap(stage, tmp)
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
        except BaseException:
            repair(stage)  # no new stamp: the previous outputs go back in place
            raise
        _remove(aside)
    except OSError as e:  # a write the disk refused names the folder when the error names nothing
        name_path(e, stage.workdir)
        raise
    finally:
        _remove(tmp)
    log(f"{stage.name}: {summary} -> {stage.workdir} ({seconds:.1f} s)")
    return StageRun(stage.name, False, summary, seconds)
