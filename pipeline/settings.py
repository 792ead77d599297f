"""Numeric settings with a range, checked when the command line is read.

A setting out of range is refused before anything runs: ``--max-side -5`` would otherwise
store every image as 1x1, and a stage's cache keeps only the current settings' work.
Every numeric option of every stage is declared through :func:`integer` or :func:`number`.
The operator's contact (:func:`add_contact_argument`), sent in the User-Agent, is checked the
same way: a value no one can write to is refused before any request goes out.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit


def _ranged(kind: type, low: float | None, high: float | None, *, above: bool) -> Callable[[str], float]:
    name = "an integer" if kind is int else "a number"
    if low is not None and high is not None:
        wanted = f"{name} above {low:g} and at most {high:g}" if above else f"{name} from {low:g} to {high:g}"
    elif low is not None:
        wanted = f"{name} above {low:g}" if above else f"{name} of at least {low:g}"
    elif high is not None:
        wanted = f"{name} of at most {high:g}"
    else:
        wanted = name

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        too_low = low is not None and (value <= low if above else value < low)
        if too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {wanted}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high``, both included."""
    return _ranged(int, low, high, above=False)


def number(low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number from ``low`` (or ``above`` it, excluded) to ``high``."""
    return _ranged(float, low, high, above=above)


CONTACT_ENV = "SYNSETFORGE_CONTACT"
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_COMMENT_TEXT = re.compile(r"[!-~]+")  # printable ASCII, no space: one word of a header comment


def contact(text: str) -> str:
    """An argparse ``type``: an email address or an http(s) URL, the contact Wikimedia's
    User-Agent policy asks for. Parentheses, backslashes and semicolons would end or split
    the User-Agent's comment (RFC 9110, section 5.6.5), and a header holds ASCII only."""
    value = text.strip()
    if _EMAIL.fullmatch(value.removeprefix("mailto:")):
        return value.removeprefix("mailto:")
    try:
        parts = urlsplit(value)
        url = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed [IPv6] host
        url = False
    if url and _COMMENT_TEXT.fullmatch(value) and not set("();\\") & set(value):
        return value
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither an email address nor an http(s) URL in ASCII; give one that reaches you, "
        "e.g. you@example.org"
    )


def add_contact_argument(parser: argparse._ActionsContainer) -> None:
    """``--contact`` (make: CONTACT, or the environment's SYNSETFORGE_CONTACT), for the stages
    that send requests: ``pipeline.user_agent`` puts it in their User-Agent."""
    parser.add_argument(
        "--contact",
        type=contact,
        default=os.environ.get(CONTACT_ENV) or None,
        metavar="EMAIL|URL",
        help="an email or URL that reaches you, sent in the User-Agent of every request as Wikimedia's "
        f"User-Agent policy asks (make: CONTACT, or {CONTACT_ENV} in the environment)",
    )


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the command, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")
