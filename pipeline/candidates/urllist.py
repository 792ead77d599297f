"""The ``urllist`` source: candidate URLs from a file the user already has.

Reads ImageNet's own list format (``<wnid>_<index><TAB><url>``, one per line, as in
``fall11_urls.txt``; a line not in that form is malformed: skipped, counted and its number
shown) and tables with ``wnid`` and ``url`` columns: CSV, TSV or Parquet. A UTF-8 byte-order
mark (spreadsheets and Windows editors write one) is not part of the first line.

Rows of classes outside the subset are dropped; the first ``max_per_class`` distinct URLs of
each class are kept, in file order (that order is the candidates' ``rank``). A list that
yields no candidate at all is refused: it would replace the candidates with none.

ImageNet's list holds the URLs its crawler saw, byte for byte: most lines are UTF-8, some
are not (a file name in Latin-1, ``café.jpg`` with é as the one byte E9). Such a line is
read as Latin-1, as the public parsers of the list read the whole file (e.g. BigRedT/vico's
``data/imagenet/create_wnid_to_urls.py``: ``open(urls_txt, encoding='ISO-8859-1')``), and
its non-ASCII bytes are percent-encoded as they are (``caf%E9.jpg``): the request the crawler
made, where a UTF-8 encoding of the decoded text (``caf%C3%A9.jpg``) would name another file.
Everything after the tab is the URL, spaces included (some servers' file names have them);
its spaces are percent-encoded (``%20``), as a browser sends them. The report counts both
(``latin1``, ``spaces_encoded``).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InputError
from pipeline.progress import progress
from pipeline.schemas import NOUN_WNID, WNID_RE
from pipeline.tables import unreadable
from pipeline.text import undecodable

IMAGENET_LINE = re.compile(rf"^({NOUN_WNID})(?:_(\d+))?\s+(\S[^\t\r\n]*?)\s*$")
MALFORMED_TOLERANCE = 0.01  # more malformed lines than this means the file is not a URL list
SHOWN_LINES = 5


@dataclass
class ListedUrl:
    """One line (or row) of a URL list: a class, a URL and the list's own id for it, if any."""

    wnid: str
    url: str
    source_id: str | None


@dataclass
class ListReport:
    rows: int = 0
    latin1: int = 0  # lines that are not UTF-8, read as Latin-1
    spaces_encoded: int = 0  # URLs whose spaces were percent-encoded
    malformed: int = 0
    malformed_lines: list[int] = field(default_factory=list)
    other_classes: int = 0
    duplicates: int = 0
    over_cap: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def read(path: Path, wnids: set[str], max_per_class: int | None) -> tuple[list[ListedUrl], ListReport]:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such URL list", file=path)
    report = ListReport()
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows = _parquet_rows(path, report)
    elif suffix in (".csv", ".tsv"):
        rows = _table_rows(path, "\t" if suffix == ".tsv" else ",", report)
    else:
        rows = _imagenet_rows(path, report)
    kept: list[ListedUrl] = []
    seen: dict[str, set[str]] = {}
    for listed in rows:
        if listed.wnid not in wnids:
            report.other_classes += 1
            continue
        urls = seen.setdefault(listed.wnid, set())
        if listed.url in urls:
            report.duplicates += 1
        elif max_per_class is not None and len(urls) >= max_per_class:
            report.over_cap += 1
        else:
            urls.add(listed.url)
            kept.append(listed)
    if report.rows and report.malformed > MALFORMED_TOLERANCE * report.rows:
        raise InputError(
            f"{report.malformed} of {report.rows} lines are not '<wnid>_<index><TAB><url>' "
            f"({report.latin1} not UTF-8; nor CSV/TSV/Parquet by extension)",
            file=path,
            line=report.malformed_lines[0],
        )
    if not kept:
        raise InputError(_why_empty(report), file=path)
    return kept, report


def _why_empty(report: ListReport) -> str:
    if not report.rows:
        return "the URL list lists no URL: no candidates"
    return f"none of its {report.rows} lines lists a URL of a class of this subset: no candidates"


def _imagenet_rows(path: Path, report: ListReport) -> Iterator[ListedUrl]:
    with (
        open(path, "rb") as f,
        progress(total=path.stat().st_size, desc="urllist", unit="B", unit_scale=True, delay=2) as bar,
    ):
        for number, raw in enumerate(f, 1):
            bar.update(len(raw))
            report.rows += 1
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line, latin1 = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                line, latin1 = raw.decode("latin-1"), True
                report.latin1 += 1
            if not line.strip():
                report.rows -= 1
                continue
            match = IMAGENET_LINE.match(line)
            if not match:
                _malformed(report, number)
                continue
            wnid, index, url = match.groups()
            if " " in url:
                report.spaces_encoded += 1
            yield ListedUrl(wnid, _escaped(url, latin1), f"{wnid}_{index}" if index else None)


def _escaped(url: str, latin1: bool) -> str:
    """``url`` with its spaces percent-encoded, and, for a line read as Latin-1, its non-ASCII
    characters as the bytes they were read from (one ``%XX`` each)."""
    return "".join("%20" if c == " " else f"%{ord(c):02X}" if latin1 and c > "\x7f" else c for c in url)


def _malformed(report: ListReport, number: int) -> None:
    report.malformed += 1
    if len(report.malformed_lines) < SHOWN_LINES:
        report.malformed_lines.append(number)


def _table_rows(path: Path, delimiter: str, report: ListReport) -> Iterator[ListedUrl]:
    """The rows of a CSV or TSV list; errors name the line where the bad record starts."""
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        start = 1
        try:
            _check_columns(path, reader.fieldnames or [])
            while True:
                start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return
                report.rows += 1
                yield _listed_url(path, start, row.get("wnid"), row.get("url"), line=True)
        except UnicodeDecodeError:  # its position is in a block of the file: find the line
            raise undecodable(path) from None
        except csv.Error as e:  # a field over csv.field_size_limit(), a NUL byte...
            raise InputError(f"not a readable {path.suffix[1:].upper()} record ({e})", file=path, line=start) from None


def _parquet_rows(path: Path, report: ListReport) -> Iterator[ListedUrl]:
    try:
        schema = pq.read_schema(path)
        _check_columns(path, schema.names)
        table = pq.read_table(path, columns=["wnid", "url"])
    except (pa.ArrowException, OSError) as e:  # not Parquet, truncated, corrupted
        raise unreadable(path, e) from None
    for number, (wnid, url) in enumerate(zip(table.column("wnid").to_pylist(), table.column("url").to_pylist())):
        report.rows += 1
        yield _listed_url(path, number, wnid, url, line=False)


def _check_columns(path: Path, names: list[str]) -> None:
    for column in ("wnid", "url"):
        if column not in names:
            raise InputError(
                f"a URL table needs 'wnid' and 'url' columns; it has {', '.join(names) or 'none'}",
                file=path,
                field=column,
            )


def _listed_url(path: Path, number: int, wnid, url, line: bool) -> ListedUrl:
    where = {"line": number} if line else {"row": number}
    wnid = (wnid or "").strip() if isinstance(wnid, str) or wnid is None else str(wnid)
    url = (url or "").strip() if isinstance(url, str) or url is None else str(url)
    if not WNID_RE.match(wnid):
        raise InputError("not a wnid (n + 8 digits)", file=path, field="wnid", value=wnid, **where)
    if not url:
        raise InputError("empty url", file=path, field="url", **where)
    return ListedUrl(wnid, url, None)
