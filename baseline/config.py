"""A run's settings, the ones the user left open, and where it runs (device, workers, memory)."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import InputError, PipelineError

from .localize import BOX_WEIGHT
from .model import ARCHS, BOX_HEADS, NATIVE_SIZE, smallest_input

CPU_SIZE, CPU_EPOCHS, GPU_EPOCHS = 64, 10, 90


@dataclass
class Config:
    data: Path = Path("data")
    subset: str = "demo"
    arch: str | None = None  # None: alexnet (or the resumed run's)
    epochs: int | None = None  # None: 90 with CUDA (AlexNet's), 10 on CPU
    batch: int | None = None  # None: 128, halved for a small training set (at least 8 steps an epoch)
    lr: float | None = None  # None: 0.01 (AlexNet's)
    size: int | None = None  # None: 224 (227 CaffeNet) with CUDA, 64 on CPU
    schedule: str | None = None  # plateau: lr / 10 when val error stops falling; cosine. None: plateau
    # for runs of 30 epochs or more (AlexNet's), cosine for shorter ones
    patience: int = 3  # plateau: epochs without a better val top-1 error
    warmup: int | None = None  # epochs of linear warm-up (cosine); None: 1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.5
    lighting: bool = True  # AlexNet's PCA colour lighting
    stats: str = "train"  # mean/std/PCA from the training split, or imagenet's
    box_head: str = "class"  # with boxes: 4 box numbers per class, or "agnostic": 4 in all
    box_weight: float | None = None  # with boxes: the box loss's weight beside the cross-entropy; None: 4
    workers: int | None = None
    seed: int = 0
    name: str = "alexnet"
    out: Path | None = None  # run folder; None: <data>/<subset>/runs/<name>
    manifests: Path | None = None
    packed: Path | None = None
    resume: bool = False
    force: bool = False
    skip_bad: bool = False
    compile: bool = False
    device: str = "auto"
    decode: str = "auto"  # gpu: nvJPEG through torchvision (CUDA only); cpu: Pillow in workers
    cache_gb: float | None = None  # read splits up to this size into memory; None: a quarter of RAM
    max_steps: int | None = None  # stop each epoch after this many steps (benchmarks)
    progress: bool = True

    def settings(self) -> dict:
        """The settings that make a run what it is (saved with it, compared on a rerun)."""
        return {k: getattr(self, k) for k in SETTINGS}


SETTINGS = (
    "arch",
    "epochs",
    "batch",
    "lr",
    "size",
    "schedule",
    "patience",
    "warmup",
    "momentum",
    "weight_decay",
    "dropout",
    "lighting",
    "stats",
    "box_head",
    "box_weight",
    "seed",
)
# Settings a resumed run must share with the run it continues (epochs may grow).
FIXED_ON_RESUME = tuple(k for k in SETTINGS if k != "epochs")
# ...of which these, given on the command line, must equal the saved ones (the rest are taken).
CHECKED_ON_RESUME = ("arch", "batch", "lr", "size")


def check_choices(config: Config) -> None:
    if config.arch is not None and config.arch not in ARCHS:
        raise InputError(f"unknown architecture: {', '.join(ARCHS)}", field="--arch", value=config.arch)
    if config.schedule not in (None, "plateau", "cosine"):
        raise InputError("unknown schedule: plateau or cosine", field="--schedule", value=config.schedule)
    if config.box_head not in BOX_HEADS:
        raise InputError(f"unknown box head: {', '.join(BOX_HEADS)}", field="--box-head", value=config.box_head)


def choose_settings(config: Config, n_train: int, cuda: bool, log) -> Config:
    """Fill in the settings left open: AlexNet's recipe on a GPU, a quick check on a CPU."""
    chosen = []
    if config.size is None:
        config.size = NATIVE_SIZE[config.arch] if cuda else CPU_SIZE
        chosen.append(f"size {config.size}")
    if config.epochs is None:
        config.epochs = GPU_EPOCHS if cuda else CPU_EPOCHS
        chosen.append(f"{config.epochs} epochs")
    if config.batch is None:
        config.batch = 128
        while config.batch > 16 and n_train < 8 * config.batch:
            config.batch //= 2
        chosen.append(f"batch {config.batch}")
    if config.lr is None:
        config.lr = 0.01
    if config.schedule is None:
        # AlexNet divided lr by 10 three times in 90 epochs; a short run has no room for
        # plateaus to show, and ends better with a cosine decay
        config.schedule = "plateau" if config.epochs >= 30 else "cosine"
        if config.schedule == "cosine":
            chosen.append("cosine schedule")
    if config.warmup is None:
        config.warmup = 1 if config.schedule == "cosine" and config.epochs > 2 else 0
    if config.box_weight is None:
        config.box_weight = BOX_WEIGHT
    if chosen and not cuda:
        log(
            f"on a CPU, settings left open are a quick check: {', '.join(chosen)} (AlexNet's own recipe: "
            "--size 224 --epochs 90 --batch 128 --schedule plateau)"
        )
    if config.size < smallest_input(config.arch):
        raise InputError(
            f"{config.arch} needs inputs of at least {smallest_input(config.arch)} px",
            field="--size",
            value=config.size,
        )
    if config.epochs < 1 or config.batch < 1 or config.lr <= 0:
        raise InputError("--epochs and --batch must be at least 1 and --lr positive")
    return config


# --------------------------------------------------------------------------- where it runs


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("--device cuda: no CUDA device here")
    return torch.device(name)


def memory_format(device: torch.device):
    """channels_last on a GPU (what cuDNN's fastest convolutions take), the default on a CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def autocast(device: torch.device):
    """bf16 autocast on a GPU, full precision on a CPU: a context manager factory."""
    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext


def default_workers(processes: int = 1) -> int:
    """DataLoader workers for one of ``processes`` training processes sharing this machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpus = max(1, cpus // processes)
    return min(12, max(1, cpus // 2)) if torch.cuda.is_available() else (1 if cpus <= 4 else min(4, cpus // 2))


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30
