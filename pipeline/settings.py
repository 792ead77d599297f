"""Numeric settings with a range, checked when the command line is read.

A setting out of range is refused before anything runs: ``--max-side -5`` would otherwise
store every image as 1x1, and a stage's cache keeps only the current settings' work.
Every numeric option of every stage is declared through :func:`integer` or :func:`number`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


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


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the command, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")
