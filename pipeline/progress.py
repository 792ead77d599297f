"""Progress a person can watch, on a terminal and in a log.

On a terminal, tqdm's bar. Anywhere else (nohup, SLURM, CI, ``... 2>&1 | tee log``), where
tqdm's ``disable=None`` prints nothing until the end, a plain line every ``PROGRESS_SECONDS``
(10 by default; 0: none), with no carriage return or escape code so that a log file reads as
text, and a last line when the work ends::

    download: 1200/5000 urls (24%), 41.3 urls/s, 0:29 elapsed, eta 1:32; ok 97%, 40 img/s
    download: done, 5000 urls in 2:01, 41.3 urls/s; ok 96%, 40 img/s

Work shorter than one interval prints no line at all: its stage's summary line says it. A
line is printed from ``update``, as tqdm redraws its bar, so a stall shows as lines that
stop coming, on a terminal as a bar that stops moving.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

from .errors import InputError

SECONDS_VARIABLE = "PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0


def progress(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: float | None = None,
    unit: str = "it",
    unit_scale: bool = False,
    leave: bool = True,
    delay: float = 0,
    smoothing: float = 0.3,
    disable: bool = False,
):
    """A progress display with the tqdm calls the stages use (``update``, ``close``,
    ``set_postfix``, ``set_postfix_str``, ``write``, ``n``, iteration, ``with``): tqdm's bar when stderr is
    a terminal, else ``Lines``. ``disable`` shows nothing; ``leave=False`` leaves no last line."""
    if disable:
        return tqdm(iterable, total=total, disable=True)
    if _is_terminal(sys.stderr):
        return tqdm(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            unit_scale=unit_scale,
            leave=leave,
            delay=delay,
            smoothing=smoothing,
        )
    return Lines(iterable, desc=desc, total=total, unit=unit, unit_scale=unit_scale, leave=leave)


def seconds_between_lines() -> float:
    """``PROGRESS_SECONDS`` from the environment: seconds between lines, 0 for none."""
    raw = os.environ.get(SECONDS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise InputError(
            "must be a number of seconds between progress lines, 0 for none", field=SECONDS_VARIABLE, value=raw
        )
    return seconds


def plural(noun: str) -> str:
    """``url`` -> ``urls``, ``entry`` -> ``entries``, ``class`` -> ``classes``."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def counted(number: int, noun: str) -> str:
    """``1 shard``, ``2 shards``, ``0 classes``: a count as a sentence says it."""
    return f"{number} {noun if number == 1 else plural(noun)}"


class Lines:
    """Progress as a line on stderr every ``seconds`` (``seconds_between_lines()`` when None)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        desc: str,
        total: float | None = None,
        unit: str = "it",
        unit_scale: bool = False,
        leave: bool = True,
        seconds: float | None = None,
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.unit_scale, self.leave = total, desc, unit, unit_scale, leave
        self.seconds = seconds_between_lines() if seconds is None else seconds
        self.n = 0
        self.postfix = ""
        self.start = self.shown_at = time.monotonic()
        self.shown_n = 0
        self.shown = self.closed = False

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.seconds and not self.closed:
            now = time.monotonic()
            if now - self.shown_at >= self.seconds:
                self._show(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in {**(ordered_dict or {}), **kwargs}.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def write(self, s: str, file=None) -> None:
        """A line of output beside the progress lines (tqdm's ``write``, for a call site's results)."""
        print(s, file=file or sys.stdout)

    def close(self) -> None:
        """The last line: ``done`` when the total was reached, else where the work stopped."""
        if self.closed:
            return
        self.closed = True
        if not (self.shown and self.leave):
            return
        elapsed = time.monotonic() - self.start
        rate = self._rate(self.n / max(elapsed, 1e-9))
        if self.total is None or self.n >= self.total:
            line = f"{self.desc}: done, {self._amount(self.n)} in {_clock(elapsed)}, {rate}"
        else:
            line = f"{self.desc}: stopped at {self._count()} after {_clock(elapsed)}, {rate}"
        _print(line + (f"; {self.postfix}" if self.postfix else ""))

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _show(self, now: float) -> None:
        """A line with the rate since the last one, which the time left is reckoned from."""
        rate = (self.n - self.shown_n) / max(now - self.shown_at, 1e-9)
        line = f"{self.desc}: {self._count()}, {self._rate(rate)}, {_clock(now - self.start)} elapsed"
        if self.total is not None and self.total > self.n:
            line += f", eta {_clock((self.total - self.n) / rate) if rate > 0 else 'unknown'}"
        _print(line + (f"; {self.postfix}" if self.postfix else ""))
        self.shown, self.shown_at, self.shown_n = True, now, self.n

    def _amount(self, value: float) -> str:
        return _scaled(value, self.unit) if self.unit_scale else f"{_number(value)} {plural(self.unit)}"

    def _count(self) -> str:
        if self.total is None:
            return self._amount(self.n)
        if self.unit_scale:
            return f"{self._amount(self.n)} of {self._amount(self.total)} ({self._percent()})"
        return f"{_number(self.n)}/{_number(self.total)} {plural(self.unit)} ({self._percent()})"

    def _percent(self) -> str:
        return f"{100 * self.n / self.total:.0f}%" if self.total else "100%"

    def _rate(self, per_second: float) -> str:
        if self.unit_scale:
            return f"{_scaled(per_second, self.unit)}/s"
        return f"{per_second:.{1 if per_second < 100 else 0}f} {plural(self.unit)}/s"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _scaled(value: float, unit: str) -> str:
    """``value`` with an SI prefix, as tqdm's ``unit_scale`` writes it: 12.3 MB."""
    for prefix in ("", "k", "M", "G", "T"):
        if abs(value) < 999.5 or prefix == "T":
            break
        value /= 1000
    return f"{value:.3g} {prefix}{unit}"


def _clock(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"
