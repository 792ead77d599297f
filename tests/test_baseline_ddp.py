"""The AlexNet baseline under torchrun: two CPU processes (gloo) of one DistributedDataParallel run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install -e '.[train]'): baseline tests skipped"
)

from test_baseline import WNIDS, make_dataset  # noqa: E402

from baseline.dataset import Blobs, row_groups  # noqa: E402
from baseline.ddp import rank_part, rank_rows, weights_digest  # noqa: E402
from baseline.loaders import Batches  # noqa: E402
from baseline.manifests import load_dataset  # noqa: E402
from baseline.stats import IMAGENET_STATS  # noqa: E402
from baseline.transforms import View  # noqa: E402
from pipeline.imagehost.pictures import picture_jpeg  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="this PyTorch has no gloo backend",
)


def torchrun(logs: Path, *args: str) -> dict[int, str]:
    """``torchrun --standalone --nproc_per_node=2 -m baseline train ARGS``, one thread a
    process, which must exit 0: each rank's output (torchrun keeps them apart in ``logs``)."""
    launcher = Path(sys.executable).with_name("torchrun")
    command = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = dict(os.environ, OMP_NUM_THREADS="1", BASELINE_RANK_LOG="1")
    done = subprocess.run(
        [
            *command,
            "--standalone",
            "--nproc_per_node=2",
            "--log-dir",
            str(logs),
            "--redirects",
            "3",
            "-m",
            "baseline",
            "train",
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = {}
    for rank in (0, 1):
        files = sorted(logs.glob(f"*/attempt_0/{rank}/std*.log"))
        output[rank] = "".join(f.read_text() for f in files)
    assert done.returncode == 0, done.stderr[-3000:] + output[0][-3000:] + output[1][-3000:]
    return output


def rank_logs(output: str) -> list[dict]:
    """The BASELINE_RANK_LOG lines: the rows a rank trained on in each epoch, its weights at the end."""
    return [json.loads(line[len("rank-log ") :]) for line in output.splitlines() if line.startswith("rank-log ")]


def check_parts(parts: list[list[int]], count: int) -> None:
    """Equal parts that cover 0..count-1, disjoint but for the padding (fewer rows than parts)."""
    assert len({len(p) for p in parts}) == 1, [len(p) for p in parts]
    every = [i for p in parts for i in p]
    assert set(every) == set(range(count))
    assert len(every) - count == (-count) % len(parts)


# --------------------------------------------------------------------------- the parts, directly


def test_rank_parts_are_equal_disjoint_and_cover_the_epoch(tmp_path):
    for count in (1, 2, 7, 36, 101):
        for world in (1, 2, 3, 8):
            check_parts([rank_part(count, rank, world).tolist() for rank in range(world)], count)

    # a packed split of 11 rows in row groups of 3: in memory (a sampler) and streamed (each
    # rank reading its own row groups, in two worker processes) every rank gets its rows
    packed = tmp_path / "packed" / "data"
    packed.mkdir(parents=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = [{"bytes": picture_jpeg(WNIDS[i % 3], i, 80, 60), "path": f"train-{i}.jpg"} for i in range(11)]
    pq.write_table(
        pa.table({"image": pa.array(images, image_type), "label": pa.array([i % 3 for i in range(11)])}),
        packed / "train-00000-of-00001.parquet",
        row_group_size=3,
    )
    data = load_dataset(tmp_path, packed=tmp_path / "packed")
    split = data.splits["train"]
    groups = row_groups(data, split)
    assert len(groups) == 4
    blobs = Blobs.load(data, split)
    for world in (2, 3):
        for epoch in (0, 1):
            view = View("train", 64, 73, seed=5, epoch=epoch)
            parts = [rank_rows(groups, view, rank, world).tolist() for rank in range(world)]
            check_parts(parts, 11)
            for rank, part in enumerate(parts):
                for memory, workers in ((blobs, 0), (None, 2)):
                    batches = Batches(
                        data,
                        split,
                        memory,
                        view,
                        batch=2,
                        workers=workers,
                        device=torch.device("cpu"),
                        stats=IMAGENET_STATS,
                        shuffle=True,
                        decode=None,
                        skip_bad=False,
                        bad=set(),
                        part=(rank, world),
                    )
                    got = [int(i) for _, _, indices in batches for i in indices]
                    assert sorted(got) == sorted(part), (world, epoch, rank, memory is None)
    view = lambda epoch: View("train", 64, 73, seed=5, epoch=epoch)  # noqa: E731
    assert len({tuple(rank_rows(groups, view(e), 0, 2)) for e in range(6)}) > 1  # a new part each epoch


# --------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_two_processes_train_one_model_on_disjoint_parts(tmp_path):
    make_dataset(tmp_path)  # 36 training rows, 12 val
    args = [
        "--data",
        str(tmp_path),
        "--subset",
        "tiny",
        "--device",
        "cpu",
        "--size",
        "64",
        "--epochs",
        "2",
        "--batch",
        "9",
        "--lr",
        "0.02",
        "--schedule",
        "plateau",
        "--workers",
        "0",
        "--seed",
        "1",
        "--no-progress",
    ]
    output = torchrun(tmp_path / "logs-1", *args)
    assert "epoch 1/2:" in output[0] and "x 2 processes (batch 9 each)" in output[0] and "wrote " in output[0]
    assert [line for line in output[1].splitlines() if not line.startswith("rank-log ")] == []  # rank 0 alone prints

    # one run folder, written once
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("metrics.json")] == [
        "tiny/runs/alexnet/metrics.json"
    ]
    run = tmp_path / "tiny" / "runs" / "alexnet"
    assert sorted(p.name for p in run.iterdir()) == [
        "README.txt",
        "checkpoint.pt",
        "confusion.csv",
        "curves.png",
        "metrics.json",
        "metrics.jsonl",
        "model.pt",
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and [r["images"] for r in metrics["history"]] == [36, 36]  # both ranks' images
    assert metrics["val"]["images"] == 12 and len((run / "metrics.jsonl").read_text().splitlines()) == 2

    # each epoch: two equal, disjoint parts of the 36 rows, together all of them
    logs = rank_logs(output[0]) + rank_logs(output[1])
    parts = {epoch: {r["rank"]: r["rows"] for r in logs if r.get("epoch") == epoch} for epoch in (1, 2)}
    for epoch in (1, 2):
        assert sorted(parts[epoch]) == [0, 1]
        assert len(parts[epoch][0]) == len(parts[epoch][1]) == 18 and not set(parts[epoch][0]) & set(parts[epoch][1])
        assert set(parts[epoch][0]) | set(parts[epoch][1]) == set(range(36))

    # the same weights on both ranks after training, and in the model rank 0 saved
    weights = {r["rank"]: r["weights"] for r in logs if "weights" in r}
    assert weights[0] == weights[1] == weights_digest(torch.load(run / "model.pt", weights_only=False)["state_dict"])

    # run again: up to date on every rank, nothing rewritten
    before = (run / "metrics.json").read_bytes()
    output = torchrun(tmp_path / "logs-2", *args)
    assert "up to date" in output[0] and rank_logs(output[1]) == []
    assert (run / "metrics.json").read_bytes() == before

    # streamed row groups: the same parts (the rule depends on seed and epoch alone), each rank
    # reading its own
    output = torchrun(tmp_path / "logs-3", *args, "--name", "streamed", "--epochs", "1", "--cache-gb", "0")
    assert "(streaming row groups)" in output[0]
    logs = rank_logs(output[0]) + rank_logs(output[1])
    streamed = [next(r["rows"] for r in logs if r.get("rank") == rank and "rows" in r) for rank in (0, 1)]
    check_parts(streamed, 36)
    assert [set(rows) for rows in streamed] == [set(parts[1][0]), set(parts[1][1])]
    assert len({r["weights"] for r in logs if "weights" in r}) == 1
    assert np.isfinite(
        json.loads((tmp_path / "tiny" / "runs" / "streamed" / "metrics.json").read_text())["history"][0]["train_loss"]
    )
