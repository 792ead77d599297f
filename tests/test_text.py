"""One reader of the text files handed to the pipeline: UTF-8, a byte order mark dropped, and
every other byte refused at its line and column, lines counted as Python's text files count them."""

from __future__ import annotations

import codecs

import pytest

from pipeline.errors import InputError
from pipeline.text import NotUtf8, read_lines, read_text, undecodable


@pytest.mark.parametrize(
    "data, located",
    [
        (b"a\nb\xe9c\n", ":2: not UTF-8 text (byte 0xe9 at column 2): save it as UTF-8"),
        (b"a\r\nb\r\n\xe9\r\n", ":3: not UTF-8 text (byte 0xe9 at column 1): save it as UTF-8"),
        (b"a\rbb\r\xe9", ":3: not UTF-8 text (byte 0xe9 at column 1): save it as UTF-8"),
        (codecs.BOM_UTF8 + b"ab\xe9", ":1: not UTF-8 text (byte 0xe9 at column 3): save it as UTF-8"),
        (b"\x89PNG\r\n\x1a\n\0\0", ":1: not UTF-8 text (byte 0x89 at column 1); is it a text file?"),
        (b"a\nbc\0\xe9", ":2: holds a NUL byte at column 3; is it a text file?"),
        ("a\n".encode("utf-16"), ":1: is UTF-16 text; save it as UTF-8"),
    ],
)
def test_bytes_that_are_not_utf8_text_are_refused_at_their_line_and_column(tmp_path, data, located):
    path = tmp_path / "list.txt"
    path.write_bytes(data)
    with pytest.raises(InputError) as raised:
        read_text(path)
    assert str(raised.value) == f"{path}{located}"
    scanned = undecodable(path)  # a line at a time: the same place (its hint judges one line, not the file)
    assert (scanned.line, scanned.message.partition(")")[0]) == (
        raised.value.line,
        raised.value.message.partition(")")[0],
    )
    # only a text in another encoding, not a binary file, has rows and fields to name
    assert isinstance(raised.value, NotUtf8) == ("not UTF-8" in located and "text file" not in located)


def test_a_byte_order_mark_is_dropped_and_lines_break_where_python_breaks_them(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(codecs.BOM_UTF8 + "n01440764\r\nné\x0cx\rlast\n".encode())
    assert read_text(path) == "n01440764\r\nné\x0cx\rlast\n"
    assert read_lines(path) == ["n01440764", "né\x0cx", "last"]
