"""A web server on 127.0.0.1 that stands in for the image web: generated class pictures,
files from a folder, and the faults and odd formats a downloader must survive.

``python -m pipeline.imagehost --port 8642`` serves until Ctrl-C (``... -- COMMAND``: while
COMMAND runs, as ``make demo`` uses it); tests use ``ImageHost``.
"""

from __future__ import annotations

from .app import ImageHost, Request, make_app

__all__ = ["ImageHost", "Request", "make_app"]
