"""``python -m baseline train|summary|evaluate|predict``: the AlexNet baseline's command line.

Errors the user can act on (a bad manifest row, a missing shard) print as one line and exit
with status 2 (1 for other setup problems), without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.errors import InputError, PipelineError
from pipeline.remote import Remote, data_location
from pipeline.settings import OneLineParser, integer, number

ARCHS = ("alexnet", "caffenet")  # model.ARCHS, spelled here so that --help works without PyTorch
BOX_HEADS = ("class", "agnostic")  # model.BOX_HEADS


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a run is: <data>/<subset>/runs/<name>."""
    parser.add_argument(
        "--data",
        type=data_location,
        default=data_location(os.environ.get("DATA", "data")),
        help="data root, a folder or a filesystem URL as for the pipeline's stages (make: DATA, default data)",
    )
    parser.add_argument(
        "--subset",
        default=os.environ.get("SUBSET", "demo"),
        help="the dataset: <data>/<subset> (make: SUBSET, default demo)",
    )
    parser.add_argument("--name", default="alexnet", help="run name: runs/<name> (make: NAME, default alexnet)")


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    parser.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="read {train,val,test,classes}.parquet from DIR (default <data>/<subset>/manifests)",
    )
    parser.add_argument(
        "--packed",
        type=Path,
        metavar="DIR",
        help="read a packed export instead: <split>-*.parquet with image{bytes,path} and label",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="run folder (default <data>/<subset>/runs/<name>)")
    parser.add_argument(
        "--workers", type=integer(0), help="DataLoader workers, 0 to load in the training process (make: WORKERS)"
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip bad rows (label out of range, missing shard, unreadable image) and count them "
        "(make: SKIP_BAD=1); default: stop at the first, naming it",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--decode",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="JPEG decoding: gpu = nvJPEG batches through torchvision (auto with CUDA and torchvision)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m baseline", description="AlexNet baseline: does a dataset train the way ILSVRC did?"
    )
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True, parser_class=OneLineParser)

    t = commands.add_parser(
        "train",
        help="train AlexNet on a dataset; write runs/<name>/",
        description="Train AlexNet (or CaffeNet) with AlexNet's recipe and report ILSVRC top-1/top-5 "
        "error, per-class accuracy and the confusion matrix. On several GPUs (or CPU "
        "processes): torchrun --standalone --nproc_per_node=N -m baseline train ... "
        "(make train NPROC=N), one process per GPU, each training on its own part "
        "of every epoch.",
    )
    _data_arguments(t)
    t.add_argument("--arch", choices=ARCHS, help="make: ARCH (default alexnet)")
    t.add_argument("--epochs", type=integer(1), help="make: EPOCHS (default 90 with CUDA, 10 on CPU)")
    t.add_argument(
        "--batch",
        type=integer(1),
        help="images a step in each process: under torchrun (make: NPROC) a step "
        "takes NPROC x BATCH (make: BATCH; default 128, less for a small "
        "training set)",
    )
    t.add_argument("--lr", type=number(0, above=True), help="make: LR (default 0.01)")
    t.add_argument(
        "--size",
        type=integer(1),
        help="crop side in pixels, images scaled to 256/224 of it first "
        "(make: SIZE; default 224, 227 for caffenet, with CUDA; 64 on CPU)",
    )
    t.add_argument(
        "--schedule",
        choices=("plateau", "cosine"),
        help="plateau: lr / 10 when val top-1 error stops falling (AlexNet's; the default for 30 epochs "
        "or more); cosine (the default for shorter runs) (make: SCHEDULE)",
    )
    t.add_argument("--patience", type=integer(0), default=3, help="plateau: epochs without improvement before lr / 10")
    t.add_argument("--warmup", type=integer(0), help="cosine: epochs of linear lr warm-up (default 1)")
    t.add_argument("--weight-decay", type=number(0), default=5e-4)
    t.add_argument("--momentum", type=number(0, 1), default=0.9)
    t.add_argument("--dropout", type=number(0, 1), default=0.5, help="share of the classifier's units dropped")
    t.add_argument("--no-lighting", dest="lighting", action="store_false", help="no PCA colour lighting")
    t.add_argument(
        "--stats",
        choices=("train", "imagenet"),
        default="train",
        help="mean, std and colour PCA: from the training split (default) or ImageNet's",
    )
    t.add_argument(
        "--box-head",
        choices=BOX_HEADS,
        default="class",
        help="with boxes (manifests/boxes.parquet): regress a box per class (default) or one for any class",
    )
    t.add_argument(
        "--box-weight",
        type=number(0),
        help="with boxes: the box loss's weight beside the cross-entropy (make: BOX_WEIGHT; default 4)",
    )
    t.add_argument("--seed", type=integer(0), default=0, help="make: SEED")
    t.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint (make: RESUME=1)")
    t.add_argument("--force", action="store_true", help="start the run over (make: FORCE=1)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (make: COMPILE=1)")
    t.add_argument(
        "--cache-gb",
        type=number(0),
        help="read splits up to this size into memory, stream larger ones (default a quarter of RAM)",
    )
    t.add_argument("--max-steps", type=integer(1), help="stop each epoch after N steps (benchmarks)")

    s = commands.add_parser("summary", help="per-layer shapes, parameters, receptive fields, multiply-adds")
    s.add_argument("--arch", choices=ARCHS, default="alexnet")
    s.add_argument("--classes", type=integer(1), default=1000)
    s.add_argument("--size", type=integer(1), help="input side (default 224, 227 for caffenet)")

    e = commands.add_parser("evaluate", help="score a run's last checkpoint on val and test (centre and 10-crop)")
    _data_arguments(e)
    e.add_argument("--split", choices=("val", "test"), action="append", help="split(s) to score (default both)")

    p = commands.add_parser(
        "predict",
        help="a finished run's five best classes (and box) for image files",
        description="Print each image's five most probable classes (WordNet id, name, probability), "
        "cut and normalised as the run's evaluation does, and with a box head the first guess's "
        "box in the image's pixels. The run folder's README.txt has the same in torch alone.",
    )
    _run_arguments(p)
    p.add_argument(
        "--run",
        "--out",
        dest="run",
        type=Path,
        metavar="DIR",
        help="the run folder (default <data>/<subset>/runs/<name>)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "summary":
            from .model import NATIVE_SIZE, format_summary, smallest_input, summary

            size = args.size or NATIVE_SIZE[args.arch]
            if size < smallest_input(args.arch):
                raise InputError(
                    f"{args.arch} needs inputs of at least {smallest_input(args.arch)} px", field="--size", value=size
                )
            print(format_summary(args.arch, summary(args.arch, args.classes, size), size))
            return 0
        if args.command == "predict":
            return _predict(args)
        from .config import Config
        from .evaluate import evaluate_run
        from .train import train

        remote = Remote.of(args.data, args.subset)
        if remote is not None:  # work in the local mirror of <url>/<subset>, published after the run
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise InputError(
                    "under torchrun give the mirror's folder, not the URL: its processes would pull it at once",
                    field="--data",
                    value=args.data,
                )
            args.data = remote.mirror.parent
            remote.pull()
        fields = set(Config.__dataclass_fields__)
        config = Config(**{k: v for k, v in vars(args).items() if k in fields})
        if args.command == "train":
            train(config)
        else:
            evaluate_run(config, tuple(args.split or ("val", "test")))
        if remote is not None:
            remote.push()
        return 0
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        print("error: PyTorch is not installed: pip install -e '.[train]' (or pip install torch)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (RESUME=1 continues from the last finished epoch)", file=sys.stderr)
        return 130


def _predict(args: argparse.Namespace) -> int:
    from .config import Config, pick_device
    from .predict import predict_files
    from .run_folder import RunFolder

    remote = Remote.of(args.data, args.subset)  # a run trained on a URL's dataset is in its local mirror
    data = remote.mirror.parent if remote is not None else args.data
    run = args.run or RunFolder(Config(data=data, subset=args.subset, name=args.name)).path
    predict_files(run, args.images, pick_device(args.device), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
