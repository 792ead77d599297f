"""How right are the crowd's boxes, and what do they cost? The demo's box rounds (draw, quality,
coverage: Su, Deng and Fei-Fei, HCOMP 2012) answered by the simulated box crowd, scored
against the demo host's true boxes.

The dataset: the offline demo up to its manifests (``make`` synsets, download, dedupe, the
four classification rounds, manifests, on a scratch DATA), built once, or reused with
``--data``. For each spammer share the box rounds start over on a copy of it: each round
exports draw, quality and coverage tasks, the crowd (``annotation.simulate.BoxCrowd``: 50
workers, careful and sloppy in the ratio 7:2, the rest spammers) answers them and
annotate-import takes the answers in, until a round has nothing to ask or ``--rounds``; the
commands run in this process (``pipeline.cli.main``), the image host on a thread.

Printed per share: consensus boxes, the share of them at IoU >= 0.7 with a true instance
(target >= 95% with 10% spammers), true instances without a box at IoU >= 0.5 and the images
missing any (target: none), the rounds used, and the tasks and answers paid for per image
(gold included). Run: ``.venv/bin/python bench/box_consensus.py`` (about a minute a share
on 2 cores, plus 1.5 to build the dataset).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotation.simulate_stage import score_boxes  # noqa: E402
from pipeline import DEMO_PORT  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.imagehost import ImageHost  # noqa: E402
from pipeline.layout import Layout  # noqa: E402

TASKS = ("draw", "quality", "coverage")


def build(data: Path) -> None:
    """The demo up to its manifests, as `make demo` runs it."""
    make = ["make", "--no-print-directory", f"DATA={data}", "SUBSET=demo"]
    steps = [["synsets"], ["download"], ["dedupe"]]
    for n in range(1, 5):
        results = data / "demo" / "annotation" / f"round-{n}" / "results-simulated.csv"
        steps += [["annotate-export", f"ROUND={n}"], ["annotate-simulate", f"ROUND={n}"]]
        steps += [["annotate-import", f"RESULTS={results}"]]
    steps.append(["manifests", "VAL_N=5", "TEST_N=5", "MIN_TRAIN=10"])
    for step in steps:
        subprocess.run(make + step, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def stage(name: str, workdir: Path, *args: str) -> None:
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        status = main([name, "--data", str(workdir.parent), "--subset", workdir.name, *map(str, args)])
    if status:
        raise SystemExit(f"{name} {' '.join(map(str, args))} failed: {err.getvalue().strip()}")


def box_rounds(workdir: Path, rounds: int, crowd: list[str], export: list[str], imports: list[str]) -> int:
    """The demo's box loop (the Makefile's DEMO_BOX_LOOP); returns the rounds that asked anything.
    ``export`` and ``imports``: more options of annotate-export and annotate-import."""
    layout = Layout(workdir)
    for round_ in range(1, rounds + 1):
        asked = False
        for task in TASKS:
            # the demo's images are served on 127.0.0.1, as the Makefile's demo allows for mturk
            stage("annotate-export", workdir, "--task", task, "--round", round_, "--allow-http", *export)
            if not layout.box_tasks(round_, task).exists():
                continue
            asked = True
            stage("annotate-simulate", workdir, "--task", task, "--round", round_, *crowd)
            stage("annotate-import", workdir, "--results", layout.simulated_box_answers(round_, task), *imports)
        if not asked:
            return round_ - 1
    return rounds


def score(workdir: Path) -> dict:
    """``annotate-simulate --score``'s figures (the share of good boxes instead of their count),
    and the tasks and answers paid for per image."""
    layout = Layout(workdir)
    figures = score_boxes(layout)
    tasks = pd.concat([pd.read_parquet(p) for p in layout.box_task_tables()], ignore_index=True)
    return {
        **figures,
        "good": figures["good"] / max(figures["boxes"], 1),
        "tasks_per_image": len(tasks) / figures["images"],
        "answers_per_image": int(tasks.assignments.sum()) / figures["images"],
    }


@contextlib.contextmanager
def demo_host():
    """The demo host on the port the store's URLs name; one already there serves the same truth."""
    host = ImageHost(port=DEMO_PORT)
    try:
        host.__enter__()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        host.__exit__(None, None, None)


def crowd_args(spammers: float) -> list[str]:
    """Shares that add up to 1: careful and sloppy workers in the default 7:2 ratio."""
    return ["--careful", f"{0.7 / 0.9 * (1 - spammers):.4f}", "--noisy", f"{0.2 / 0.9 * (1 - spammers):.4f}"] + [
        "--spammers",
        f"{spammers:.4f}",
    ]


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a DATA folder whose demo/ has its manifests (default: build one)")
    parser.add_argument("--spammers", default="0,0.05,0.1,0.2", help="spammer shares, comma-separated")
    parser.add_argument("--rounds", type=int, default=8, help="box rounds at most (the demo's DEMO_BOX_ROUNDS)")
    parser.add_argument("--keep", type=Path, help="keep each share's dataset under this folder")
    parser.add_argument("--votes", type=int, help="answers per box task (annotate-export --votes; default its own)")
    parser.add_argument("--min-worker-accuracy", type=float, help="annotate-import's (default its own)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="box-bench-"))
    try:
        base = args.data
        if base is None:
            base = scratch / "base"
            started = time.perf_counter()
            build(base)
            print(f"built the demo up to its manifests in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(
            "| spammers | boxes | IoU >= 0.7 | instances missed | images missing any | complete | rounds | tasks/image | answers/image | time |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        with demo_host():
            for share in (float(s) for s in args.spammers.split(",")):
                copy = (args.keep or scratch) / f"spammers-{share:g}"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(base / "demo", copy / "demo", symlinks=True)
                started = time.perf_counter()
                export = ["--votes", str(args.votes)] if args.votes else []
                imports = ["--min-worker-accuracy", str(args.min_worker_accuracy)] if args.min_worker_accuracy else []
                rounds = box_rounds(copy / "demo", args.rounds, crowd_args(share), export, imports)
                took = time.perf_counter() - started
                s = score(copy / "demo")
                print(
                    f"| {share:.0%} | {s['boxes']} on {s['images']} images | {s['good']:.1%} | "
                    f"{s['missed']} of {s['instances']} | {s['images_missing']} | {s['complete']} | {rounds} | "
                    f"{s['tasks_per_image']:.1f} | {s['answers_per_image']:.1f} | {took:.0f} s |",
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
