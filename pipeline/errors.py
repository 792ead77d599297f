"""Errors a user can act on: the command line prints them without a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

# A folder this process may not write to: a read-only mount, another user's files.
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# A write the disk refuses: full, over quota, a file over the size limit.
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class PipelineError(Exception):
    """Something the user can fix (a missing tool, a wrong setting); exit status 1."""

    exit_status = 1


class InputError(PipelineError):
    """Bad input, located as precisely as we can: file, line or row, field and value.

    Renders as ``file:line: field 'value': what is wrong`` so that editors and
    terminals can jump to the place.
    """

    exit_status = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
        value: object = None,
    ):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.row = row
        self.field = field
        self.value = value
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            if self.row is not None:
                where += f": row {self.row}"
            where += ": "
        what = ""
        if self.field is not None:
            what = self.field
            if self.value is not None:
                what += f" {self.value!r}"
            what += ": "
        elif self.value is not None:
            what = f"{self.value!r}: "
        return f"{where}{what}{self.message}"


class StorageError(PipelineError):
    """A write the filesystem refused (read-only, no permission, full): one line naming the path."""

    def __init__(self, error: OSError):
        reason = os.strerror(error.errno).lower()  # pyarrow wraps the reason in its own words
        verb = "cannot use" if error.errno in (errno.EACCES, errno.EPERM) else "cannot write to"
        super().__init__(f"{verb} {error.filename}: {reason}" if error.filename else reason)
        self.errno = error.errno

    @staticmethod
    def applies(error: BaseException) -> bool:
        return isinstance(error, OSError) and error.errno in READ_ONLY | FULL


def name_path(error: OSError, path: str | Path) -> None:
    """Make ``error`` name ``path`` when it is a refused write that names no file (a ``write``
    on a full disk names none)."""
    if StorageError.applies(error) and not error.filename:
        error.filename = str(path)
