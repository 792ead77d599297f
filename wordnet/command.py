"""``python -m pipeline wordnet``: where WordNet 3.0 comes from; ``--provision`` sets it up."""

from __future__ import annotations

import argparse
import sys

from . import provision

HELP = "find WordNet 3.0 (or install and assemble it with --provision) and verify it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provision",
        action="store_true",
        help="install Debian's wordnet-base and wordnet-sense-index when root and missing",
    )


def run(args: argparse.Namespace) -> None:
    provision.locate(install=args.provision)
    from .hierarchy import load

    wordnet = load()
    print(
        f"wordnet: WordNet {wordnet.version}, {wordnet.noun_count()} noun synsets, "
        f"from {wordnet.copy.origin}, read at {wordnet.copy.path}",
        file=sys.stderr,
    )
