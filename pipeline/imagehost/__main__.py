"""``python -m pipeline.imagehost [--port 8642] [--folder DIR] [-- COMMAND ...]``.

Without a command it serves until Ctrl-C or SIGTERM. Once listening it prints one line,
``image host on http://127.0.0.1:PORT``, which benchmarks that start it as a subprocess wait
for (with ``--port 0`` it names the port it got).

With a command it serves while the command runs, then stops and exits with the command's
status: ``make demo`` runs its candidates and download stages this way, so the host never
outlives them, whether they succeed or fail. When the port is taken, the command runs against
the server already there (one started by hand, say).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path

from pipeline import DEMO_PORT
from pipeline.settings import OneLineParser, integer

from .app import ImageHost

MAX_ALIASES = 253  # 127.0.0.2 ... 127.0.0.254


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m pipeline.imagehost",
        description="Serve generated pictures, files and faults on 127.0.0.1 until Ctrl-C or SIGTERM, "
        "or while COMMAND runs.",
    )
    parser.add_argument(
        "--port", type=integer(0, 65535), default=DEMO_PORT, help=f"0 picks a free port (default {DEMO_PORT})"
    )
    parser.add_argument("--folder", type=Path, help="serve its files under /files/NAME")
    parser.add_argument(
        "--aliases",
        type=integer(0, MAX_ALIASES),
        default=0,
        metavar="N",
        help="also listen on 127.0.0.2 ... 127.0.0.(N+1): N more hosts, same port",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="run COMMAND while serving, then stop and exit with its status",
    )
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop on SIGTERM as on Ctrl-C
    host = ImageHost(args.folder, port=args.port, aliases=args.aliases)
    try:
        host.__enter__()
    except OSError as e:
        if command and args.port:
            print(f"image host: port {args.port} is taken ({e}); using the server there", file=sys.stderr)
            return _run(command)
        print(f"image host: cannot listen on port {args.port}: {e}", file=sys.stderr)
        return 1
    try:
        print(f"image host on {host.url('')}", flush=True)
        if command:
            return _run(command)
        threading.Event().wait()
    except KeyboardInterrupt:
        return 130 if command else 0
    finally:
        host.__exit__(None, None, None)
    return 0


def _run(command: list[str]) -> int:
    try:
        return subprocess.run(command).returncode
    except FileNotFoundError as e:
        print(f"image host: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
