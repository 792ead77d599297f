"""``python -m pipeline.imagehost [--port 8642] [--folder DIR]``: serve until Ctrl-C or SIGTERM.

Once listening it prints one line, ``image host on http://127.0.0.1:PORT``, which benchmarks
that start it as a subprocess wait for (with ``--port 0`` it names the port it got).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .app import ImageHost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.imagehost",
        description="Serve generated pictures, files and faults on 127.0.0.1 until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=8642, help="0 picks a free port (default 8642)")
    parser.add_argument("--folder", type=Path, help="serve its files under /files/NAME")
    parser.add_argument(
        "--aliases",
        type=int,
        default=0,
        metavar="N",
        help="also listen on 127.0.0.2 ... 127.0.0.(N+1): N more hosts, same port",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop on SIGTERM as on Ctrl-C
    try:
        with ImageHost(args.folder, port=args.port, aliases=args.aliases) as host:
            print(f"image host on {host.url('')}", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"image host: cannot listen on port {args.port}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
