"""The Markdown pieces every section of the card is written with: tables, shares, embedded
figures and ``key=value`` settings, and the escaping of text that comes from the data.

Class names, lemmas, licences, hosts and settings come from files a user may have imported
(a ``LOC_synset_mapping.txt``, a URL list): written raw, a ``<script>`` would reach every page
that renders the card and a ``|`` would split a table row. Every such text goes through
``text`` (shown as it is, as prose) or ``code`` (as a code span)."""

from __future__ import annotations

import re

import numpy as np

SHOWN = 10  # items shown of a long list
_ESCAPES = {
    "&": "&amp;",  # HTML: a tag or entity in a name stays text
    "<": "&lt;",
    ">": "&gt;",
    **{c: "\\" + c for c in "\\`*_[]|"},  # Markdown: no emphasis, link, code span or table cell from data
}
_SPECIAL = re.compile("[" + re.escape("".join(_ESCAPES)) + "]")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _one_line(value: object) -> str:
    """A table row and a list item are one line: line breaks in the data become spaces."""
    return " ".join(str(value).splitlines())


def text(value: object) -> str:
    """Free text from the data, as Markdown that shows exactly it: no HTML, no Markdown markup."""
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], _one_line(value))


def code(value: object) -> str:
    """A value from the data as a code span (shown verbatim; renderers escape its HTML), fenced
    with more backticks than it holds."""
    content = _one_line(value)
    fence = "`" * (max(map(len, re.findall("`+", content)), default=0) + 1)
    pad = " " if "`" in content else ""
    return f"{fence}{pad}{content}{pad}{fence}"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table; integers are written with thousands separators. A ``|`` that is not
    escaped yet (in a code span) is escaped, so every row keeps its cells; text from the data
    must still go through ``text`` or ``code``."""

    def cell(v):
        shown = f"{v:,}" if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else _one_line(v)
        return _UNESCAPED_PIPE.sub(r"\\|", shown)

    return [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]


def pct(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole``, one decimal; "n/a" of nothing."""
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def embed(figures: dict[str, list[str]], name: str, alt: str) -> list[str]:
    """The images of the figure ``name`` (its paths in ``figures``) and a blank line; nothing if it was not drawn."""
    return [f"![{alt}]({path})" for path in figures.get(name, [])] + ([""] if name in figures else [])


def settings_text(values: dict) -> str:
    """``key=value`` code spans of the values that were set."""
    return ", ".join(
        code(f"{k}={v}")
        for k, v in values.items()
        if v not in (None, "None") and (not isinstance(v, (dict, list)) or v)
    )
