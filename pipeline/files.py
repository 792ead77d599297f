"""Writing files so that no reader, and no rerun after a kill, ever sees half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_beside(path: Path) -> Path:
    """A new, empty temporary file in ``path``'s folder, to be published as ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file to its real name, in one step."""
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)


def _name(error: BaseException, path: Path) -> None:
    """Make ``error`` name ``path`` where it named the temporary file, or nothing (a ``write`` on
    a full disk): the user knows the file they asked for, not our temporary name."""
    if isinstance(error, OSError) and error.errno is not None:
        named = Path(error.filename).name if isinstance(error.filename, str) else None
        if named is None or (named.startswith(f".{path.name}.") and named.endswith(".tmp")):
            error.filename = str(path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` when the block
    ends without an error, removed otherwise. A refused write names ``path``."""
    path = Path(path)
    try:
        tmp = temporary_beside(path)
    except OSError as e:
        _name(e, path)
        raise
    try:
        yield tmp
        publish(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        _name(e, path)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, value: object) -> None:
    atomic_write_text(path, json.dumps(value, indent=1, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[object]) -> None:
    """One JSON value a line (JSON Lines), published whole."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
