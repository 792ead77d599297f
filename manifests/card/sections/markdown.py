"""The Markdown pieces every section of the card is written with: tables, shares, embedded
figures and ``key=value`` settings."""

from __future__ import annotations

import numpy as np

SHOWN = 10  # items shown of a long list


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table; integers are written with thousands separators."""

    def cell(v):
        return f"{v:,}" if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else str(v)

    return [
        "| " + " | ".join(header) + " |",
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
    """``key=value`` pairs of the values that were set."""
    return ", ".join(
        f"`{k}={v}`" for k, v in values.items() if v not in (None, "None") and (not isinstance(v, (dict, list)) or v)
    )
