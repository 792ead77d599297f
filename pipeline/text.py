"""Text files handed to the pipeline (wnid lists, Kaggle's solution files, crowd results, URL
tables): UTF-8, a leading byte order mark dropped (Windows editors and Excel write one, and it
would cling to the first value); anything else is an error naming the line and column of the
first byte that is not text. Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as Python's text files
and ``csv`` count them.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from .errors import InputError

BOM = "\ufeff"  # the byte order mark as a character; codecs.BOM_UTF8 as bytes
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_LINE_BREAK = re.compile("\r\n|\r|\n")


class NotUtf8(InputError):
    """A byte that is not UTF-8 in what is otherwise text (no NUL byte): a file saved in another
    encoding, whose reader may add the row and field around the byte."""


def decode(data: bytes, file: str | Path | None = None, line: int = 1) -> str:
    """``data``, a text file's bytes (or its lines from ``line`` on), as UTF-8 text.

    A text file holds no NUL byte: one is refused as not text, and so is a byte that is not
    UTF-8, both at their line and column (a byte's column, counted in bytes). Only a file's
    start (``line`` 1) may hold a byte order mark; a UTF-16 one is refused."""
    if line == 1:
        if data.startswith(_UTF16_BOMS):
            raise InputError("is UTF-16 text; save it as UTF-8", file=file, line=1)
        data = data.removeprefix(codecs.BOM_UTF8)
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if nul < 0 or e.start < nul:
            at, column = _place(data, e.start, line)
            byte = f"byte 0x{data[e.start]:02x} at column {column}"
            if nul < 0:
                raise NotUtf8(f"not UTF-8 text ({byte}): save it as UTF-8", file=file, line=at) from None
            raise InputError(f"not UTF-8 text ({byte}); is it a text file?", file=file, line=at) from None
    if nul >= 0:
        at, column = _place(data, nul, line)
        raise InputError(f"holds a NUL byte at column {column}; is it a text file?", file=file, line=at)
    return text


def _place(data: bytes, offset: int, line: int) -> tuple[int, int]:
    """The line (counting from ``line``) and byte column of ``offset`` in ``data``."""
    breaks = data.count(b"\n", 0, offset) + data.count(b"\r", 0, offset) - data.count(b"\r\n", 0, offset)
    start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
    return line + breaks, offset - start + 1


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file (``decode``'s rules, its errors naming ``path``)."""
    return decode(Path(path).read_bytes(), path)


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 file, numbered as ``decode`` numbers them (``str.splitlines`` would
    also break at form feeds and Unicode's separators)."""
    lines = _LINE_BREAK.split(read_text(path))
    return lines[:-1] if lines[-1] == "" else lines


def undecodable(path: str | Path) -> InputError:
    """The error ``read_text`` raises for ``path``, found a line at a time: for a file too large
    to read whole that a streaming decoder refused. (Whether it is a binary file is judged by
    the line of the byte alone.)"""
    with open(path, "rb") as f:
        line = 1
        for raw in f:
            try:
                decode(raw, path, line)
            except InputError as e:
                return e
            line += raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")
    return InputError("not UTF-8 text", file=path)
