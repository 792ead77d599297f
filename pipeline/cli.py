"""``python -m pipeline <stage>``: one command line over every stage.

A stage is a module with ``HELP``, ``add_arguments(parser)`` and ``run(args)``; it is listed
in ``STAGES`` and imported only when the command line is built: only the named stage's module
when a command names one (importing every stage costs about a second: scipy, pandas...),
all of them for the overall help or an unknown name. Each stage keeps its heaviest imports
(nltk, torch...) inside its functions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import PipelineError, StorageError
from .remote import Remote, data_location
from .settings import OneLineParser

# name -> module; the order is the order of the pipeline.
STAGES = {
    "synsets": "wordnet.stage",
    "candidates": "pipeline.candidates.stage",
    "download": "pipeline.download.stage",
    "dedupe": "pipeline.dedupe.stage",
    "annotate-export": "annotation.hits_export",
    "annotate-serve": "annotation.serve",
    "annotate-simulate": "annotation.simulate_stage",
    "annotate-import": "annotation.answers_import",
    "manifests": "manifests.stage",
    "validate": "manifests.validate",
    "card": "manifests.card",
    "export": "manifests.dataset_export",
    "import": "manifests.dataset_import",
    "evaluate": "pipeline.evaluation",
}
TOOLS = {
    "wordnet": "wordnet.command",
    "summary": "pipeline.summary",
}


def common_arguments() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        type=data_location,
        default=data_location(os.environ.get("DATA", "data")),
        help="data root, a folder or a filesystem URL (s3://bucket/prefix: the stages work in a "
        "local mirror, see pipeline/remote.py); a stage writes under DATA/SUBSET "
        "(make: DATA, default data)",
    )
    common.add_argument(
        "--subset",
        default=os.environ.get("SUBSET", "demo"),
        help="the dataset's name: a bundled subset or a new one (make: SUBSET, default demo)",
    )
    common.add_argument("--force", action="store_true", help="rerun even when up to date (make: FORCE=1)")
    return common


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``command`` (a known stage or tool) only that one's arguments."""
    parser = OneLineParser(
        prog="python -m pipeline",
        description="synsetforge: build ImageNet-style datasets, one stage at a time.",
    )
    commands = parser.add_subparsers(dest="command", metavar="<stage>", required=True, parser_class=OneLineParser)
    common = common_arguments()
    everything = {**STAGES, **TOOLS}
    chosen = {command: everything[command]} if command in everything else everything
    for name, module_name in chosen.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name, help=module.HELP, description=module.HELP, parents=[common] if name in STAGES else []
        )
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    remote = Remote.of(args.data, args.subset) if hasattr(args, "data") else None
    if remote is not None:
        args.data = remote.mirror.parent
    if args.command in STAGES:
        args.workdir = args.data / args.subset
    try:
        if remote is not None:
            remote.pull()
        status = args.module.run(args) or 0
        if remote is not None and status == 0 and args.command in STAGES:
            remote.push()
        return status
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status
    except OSError as e:
        if not StorageError.applies(e):
            raise
        refused = StorageError(e)  # a read-only folder or a full disk: one line, no traceback
        print(f"error: {refused}", file=sys.stderr)
        return refused.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
