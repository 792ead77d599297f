"""Training and evaluating AlexNet on a dataset, read top to bottom.

``train(config)`` loads the splits, picks the settings the user left open, builds the model
and SGD, then runs epochs: each one trains on the training split, scores the validation split
on centre crops, steps the learning-rate schedule, writes a checkpoint and a line of
``metrics.jsonl``. At the end it scores val (and test, when the manifests have one) on centre
crops and 10-crops, and writes ``metrics.json``, the confusion matrix, the curves and the
weights. Everything goes under the run folder, each file written under a temporary name
and renamed.

Under torchrun (``torchrun --nproc_per_node=N -m baseline train ...``, WORLD_SIZE > 1) each
process is one rank of a DistributedDataParallel run: it trains on its own part of every
epoch (``data.rank_rows``) with ``--batch`` images a step, DDP averaging the gradients, so a
step takes N x batch images. Rank 0 alone scores val and test, prints and writes files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, IterableDataset

from pipeline.errors import InputError, PipelineError

from . import data as D
from .metrics import confusion, per_class, topk_wrong, worst
from .model import ARCHS, NATIVE_SIZE, build, count_parameters, smallest_input
from .plot import curves

ALEXNET_ILSVRC2012 = {"top1_error": 0.407, "top5_error": 0.182}  # one net, val (REFERENCE.md)
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
        keep = (
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
            "seed",
        )
        return {k: getattr(self, k) for k in keep}


# Settings a resumed run must share with the run it continues (epochs may grow).
FIXED_ON_RESUME = (
    "arch",
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
    "seed",
)


def resize_for(size: int) -> int:
    """AlexNet scales to 256 and crops 224: keep that ratio at any crop size."""
    return round(size * 256 / 224)


def choose_settings(config: Config, n_train: int, cuda: bool, log) -> Config:
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
    if chosen and not cuda:
        log(
            f"on a CPU, settings left open are a quick check: {', '.join(chosen)} (AlexNet's own recipe: "
            "--size 224 --epochs 90 --batch 128 --schedule plateau)"
        )
    return config


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("--device cuda: no CUDA device here")
    return torch.device(name)


# --------------------------------------------------------------------------- batches


class Batches:
    """A split as batches of normalised float crops on the device, for one epoch or one pass.

    Bad images (Pillow cannot decode them) raise an InputError naming the row, or with
    skip_bad are dropped from their batch and remembered in ``bad``."""

    def __init__(
        self,
        data: D.DataSet,
        split: D.Split,
        blobs: D.Blobs | None,
        view: D.View,
        *,
        batch: int,
        workers: int,
        device: torch.device,
        stats: D.Stats,
        shuffle: bool,
        decode,
        skip_bad: bool,
        bad: set[int],
        part: tuple[int, int] = (0, 1),
    ):
        self.split, self.view, self.device, self.decode, self.skip_bad, self.bad = (
            split,
            view,
            device,
            decode,
            skip_bad,
            bad,
        )
        raw = decode is not None
        sampler = None
        if blobs is None:
            dataset = D.StreamDataset(data, split, view, shuffle, raw=raw, part=part)
        else:
            dataset = (D.RawDataset if raw else D.CropDataset)(split, blobs, view)
            if part[1] > 1:  # under torchrun (part = rank, world): the rank's rows of the epoch, shuffled
                rows = D.rank_rows(D.row_groups(data, split), view, *part)
                sampler = np.random.default_rng((view.seed, view.epoch, part[0])).permutation(rows).tolist()
        generator = torch.Generator().manual_seed(view.seed * 100003 + view.epoch)
        self.loader = DataLoader(
            dataset,
            batch_size=batch,
            shuffle=shuffle and sampler is None and not isinstance(dataset, IterableDataset),
            sampler=sampler,
            generator=generator,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            collate_fn=D.raw_collate if raw else None,
            drop_last=False,
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )
        self.mean = torch.tensor(stats.mean, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(stats.std, device=device).view(1, 1, 3, 1, 1)
        self.eig = torch.tensor(stats.eigvec, device=device) * torch.tensor(stats.eigval, device=device)[None, :]

    def __len__(self) -> int:
        return len(self.split)

    def __iter__(self):
        """(images (B, k, 3, S, S) float, labels, indices) with k = 1, or 10 for 10-crop."""
        for batch in self.loader:
            if self.decode is not None:
                blobs, boxes, flips, labels, indices, alphas, errors = batch
                pixels, errors = D.decode_batch(blobs, boxes, flips, errors, self.view.size, self.device, self.decode)
            else:
                pixels, labels, indices, alphas, errors = batch
            ok = self.check(errors, indices)
            if not ok.all():
                pixels, labels, indices, alphas = pixels[ok], labels[ok], indices[ok], alphas[ok]
                if not len(labels):
                    continue
            x = pixels.to(self.device, non_blocking=True).float().div_(255)
            if self.view.mode == "train" and self.view.lighting:
                shift = alphas.to(self.device, non_blocking=True) @ self.eig.T  # (B, 3): eigvec @ (alpha * eigval)
                x += shift.view(-1, 1, 3, 1, 1)
            x = (x - self.mean) / self.std
            if self.view.mode == "tencrop":
                x = torch.cat([x, x.flip(-1)], dim=1)
            yield x, labels.to(self.device, non_blocking=True), indices

    def check(self, errors, indices) -> torch.Tensor:
        ok = torch.tensor([not e for e in errors], dtype=torch.bool)
        for k in np.flatnonzero(~ok.numpy()):
            index = int(indices[k])
            if not self.skip_bad:
                file, row = self.split.where(index)
                raise InputError(errors[k], file=file, row=row, field="image_id", value=self.split.image_ids[index])
            self.bad.add(index)
        return ok


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, batches: Batches, autocast) -> dict:
    """Loss and top-1/top-5 error over a split (averaging the softmax of the 10 crops), with
    each image's top-1 guess for the confusion matrix."""
    model.eval()
    labels, guesses, losses, wrong1, wrong5 = [], [], [], [], []
    for x, y, _ in batches:
        b, k = x.shape[:2]
        with autocast():
            logits = model(x.flatten(0, 1).contiguous(memory_format=_memory_format(x.device)))
        probs = logits.float().softmax(-1).view(b, k, -1).mean(1)
        losses.append(F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum").item())
        wrong = topk_wrong(probs, y)
        wrong1.append(wrong[1].sum().item())
        wrong5.append(wrong[5].sum().item())
        labels.append(y.cpu().numpy())
        guesses.append(probs.argmax(1).cpu().numpy())
    n = sum(len(batch) for batch in labels)
    if not n:
        return {
            "images": 0,
            "loss": None,
            "top1_error": None,
            "top5_error": None,
            "labels": np.zeros(0, np.int64),
            "guesses": np.zeros(0, np.int64),
        }
    return {
        "images": n,
        "loss": sum(losses) / n,
        "top1_error": sum(wrong1) / n,
        "top5_error": sum(wrong5) / n,
        "labels": np.concatenate(labels),
        "guesses": np.concatenate(guesses),
    }


def _memory_format(device: torch.device):
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


# --------------------------------------------------------------------------- files


def atomic(path: Path, write) -> None:
    """Write through ``write(tmp)`` and rename, so a reader (or a rerun after a kill) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, value) -> None:
    atomic(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic(path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"))


def write_confusion(path: Path, matrix: np.ndarray, wnids: list[str]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("true\\guess," + ",".join(wnids) + "\n")
            for wnid, row in zip(wnids, matrix):
                f.write(wnid + "," + ",".join(map(str, row)) + "\n")

    atomic(path, write)


def run_folder(config: Config) -> Path:
    return Path(config.out) if config.out else Path(config.data) / config.subset / "runs" / config.name


def input_state(config: Config) -> list:
    """Name, size and modification time of every file the run reads its rows from (as make does)."""
    root = Path(config.data) / config.subset
    folders = (
        [Path(config.packed)] if config.packed else [Path(config.manifests) if config.manifests else root / "manifests"]
    )
    return [
        [str(p), p.stat().st_size, p.stat().st_mtime_ns]
        for folder in folders
        if folder.is_dir()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def finished_run(run: Path, config: Config) -> tuple[dict | None, bool]:
    """(the metrics of a finished run of the same settings, whether its inputs are unchanged),
    or (None, False) when there is no such run: a rerun skips a current run, and trains again,
    as any stage reruns, one whose data changed."""
    if config.force or config.resume or not (run / "metrics.json").exists():
        return None, False
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except json.JSONDecodeError:
        return None, False
    saved = metrics.get("settings", {})
    given = {k: v for k, v in config.settings().items() if v is not None}
    if not all(saved.get(k) == v for k, v in given.items()) or metrics.get("epochs_done") != saved.get("epochs"):
        return None, False
    return metrics, metrics.get("inputs") == input_state(config)


# --------------------------------------------------------------------------- training


def train(config: Config, log=None) -> dict:
    """Train a run. Started by torchrun (WORLD_SIZE > 1), the process joins the run's process
    group ("nccl" on GPUs, "gloo" on CPUs) first and leaves it at the end."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or dist.is_initialized():
        return _train(config, log)
    cuda = pick_device(config.device).type == "cuda"
    if cuda:  # one GPU per process: LOCAL_RANK's
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise PipelineError(f"local rank {local}, but {torch.cuda.device_count()} GPUs here: one process per GPU")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        return _train(config, log)
    finally:
        dist.destroy_process_group()


def _train(config: Config, log=None) -> dict:
    if config.arch is not None and config.arch not in ARCHS:
        raise InputError(f"unknown architecture: {', '.join(ARCHS)}", field="--arch", value=config.arch)
    if config.schedule not in (None, "plateau", "cosine"):
        raise InputError("unknown schedule: plateau or cosine", field="--schedule", value=config.schedule)
    # -- under torchrun: this process's rank of world, its GPU, and a CPU channel for small messages
    ddp = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    here = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if ddp else 1  # processes on this machine
    device = pick_device(config.device)
    cuda = device.type == "cuda"
    if ddp and cuda:
        device = torch.device("cuda", torch.cuda.current_device())  # LOCAL_RANK's, set by train()
    group = dist.new_group(backend="gloo") if ddp and cuda else None  # None: the default (gloo) group
    rank_log = ddp and bool(os.environ.get("BASELINE_RANK_LOG"))  # each rank's rows and weights, on stderr
    if rank:  # rank 0 alone prints and writes files
        log, config.progress = (lambda message: None), False
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    run = run_folder(config)
    checkpoint_path = run / "checkpoint.pt"
    finished, current = finished_run(run, config)
    if ddp:  # every rank reads the run folder: on one shared file system they decide alike
        _agree((finished is not None, current, checkpoint_path.exists()), "the run folder", world, group)
    if finished is not None and current:
        log(
            f"train: {run} is up to date (the same data and settings, {finished['epochs_done']} epochs done); "
            "skipped, --force (FORCE=1) trains again"
        )
        return finished
    if finished is not None:
        log(f"train: the data of {run} changed since it finished; training it again with its settings")
        for key, value in finished["settings"].items():  # those the command line left open
            if getattr(config, key) is None:
                setattr(config, key, value)
        config.force = True

    # -- the checkpoint to continue, if any
    checkpoint = None
    if checkpoint_path.exists():
        if config.resume:
            checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
            for key in FIXED_ON_RESUME:
                given, saved = getattr(config, key), checkpoint["settings"][key]
                if given is not None and key in ("arch", "batch", "lr", "size") and given != saved:
                    raise InputError(
                        f"the run being resumed has {key} {saved!r}",
                        file=checkpoint_path,
                        field=f"--{key}",
                        value=given,
                    )
                setattr(config, key, saved)
            if config.epochs is None:
                config.epochs = checkpoint["settings"]["epochs"]
        elif not config.force:
            metrics = run / "metrics.jsonl"
            epoch = len(metrics.read_text().splitlines()) if metrics.exists() else "?"
            raise InputError(
                f"already holds a run ({epoch} epochs done): --resume (RESUME=1) continues it, "
                "--force (FORCE=1) starts it over, --name (NAME=) starts another",
                file=run,
            )
    elif config.resume:
        log(f"note: no checkpoint in {run}: starting from epoch 1")
    config.arch = config.arch or "alexnet"

    # -- data
    data = D.load_dataset(
        Path(config.data) / config.subset,
        manifests=config.manifests,
        packed=config.packed,
        skip_bad=config.skip_bad,
        log=log,
    )
    classes = data.classes
    train_split, val_split = data.splits["train"], data.splits.get("val")
    if not len(train_split):
        raise InputError("the train split is empty", file=train_split.sources[0])
    if checkpoint is not None and checkpoint["classes"] != classes.wnids:
        raise InputError("the dataset's classes differ from the run being resumed", file=checkpoint_path)
    config = choose_settings(config, -(-len(train_split) // world), cuda, log)  # a rank's part of the rows
    if config.size < smallest_input(config.arch):
        raise InputError(
            f"{config.arch} needs inputs of at least {smallest_input(config.arch)} px",
            field="--size",
            value=config.size,
        )
    if config.epochs < 1 or config.batch < 1 or config.lr <= 0:
        raise InputError("--epochs and --batch must be at least 1 and --lr positive")
    workers = D.default_workers(here) if config.workers is None else config.workers
    decode = D.gpu_decoder() if cuda and config.decode in ("auto", "gpu") else None
    if config.decode == "gpu" and decode is None:
        raise PipelineError("--decode gpu needs CUDA and torchvision")
    stats = (
        D.Stats.from_dict(checkpoint["stats"])
        if checkpoint
        else (D.IMAGENET_STATS if config.stats == "imagenet" else D.training_stats(data, train_split))
    )
    cache = config.cache_gb * 2**30 if config.cache_gb is not None else _memory_bytes() / 4 / here
    blobs: dict[str, D.Blobs | None] = {}
    for name, split in data.splits.items():
        read = rank == 0 or name == "train"  # val and test: rank 0 alone scores them
        blobs[name] = D.Blobs.load(data, split) if read and D.split_bytes(data, split) <= cache else None
        cache -= D.split_bytes(data, split) if blobs[name] is not None else 0
    log(
        f"{data.origin}: {len(classes)} classes, "
        + ", ".join(f"{n} {len(s)}" for n, s in data.splits.items())
        + f" images; {config.arch} {config.size} px, batch {config.batch}, lr {config.lr}, {config.schedule}, "
        f"{config.epochs} epochs on {device.type}"
        + (f" x {world} processes (batch {config.batch} each)" if ddp else "")
        + ("" if all(b is not None for b in blobs.values()) else " (streaming row groups)")
    )

    # -- model and optimiser
    torch.manual_seed(config.seed)
    model = build(config.arch, len(classes), config.dropout).to(device, memory_format=_memory_format(device))
    optimizer = _sgd(model, config)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=config.patience)
        if config.schedule == "plateau"
        else None
    )
    history: list[dict] = []
    bad = {name: set() for name in data.splits}
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if plateau is not None:
            plateau.load_state_dict(checkpoint["plateau"])
        history, start = checkpoint["history"], checkpoint["epoch"]
        bad = {name: set(checkpoint["bad"].get(name, [])) for name in data.splits}
        log(f"resuming {run} after epoch {start}")
    # steps go through DDP, which averages the gradients over the ranks (and starts them all
    # from rank 0's weights); rank 0 scores val and test alone, on the bare model
    net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None) if ddp else model
    forward = torch.compile(net) if config.compile else net
    score = forward
    if ddp:
        score = torch.compile(model) if config.compile else model
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext

    def batches(split_name: str, view: D.View, shuffle: bool, batch: int, part=(0, 1)) -> Batches:
        return Batches(
            data,
            data.splits[split_name],
            blobs[split_name],
            view,
            batch=batch,
            workers=workers,
            device=device,
            stats=stats,
            shuffle=shuffle,
            decode=decode,
            skip_bad=config.skip_bad,
            bad=bad[split_name],
            part=part,
        )

    def save_checkpoint(epoch: int) -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "plateau": plateau.state_dict() if plateau else None,
            "epoch": epoch,
            "history": history,
            "settings": config.settings(),
            "stats": stats.as_dict(),
            "classes": classes.wnids,
            "names": classes.names,
            "bad": {n: sorted(b) for n, b in bad.items()},
        }
        atomic(checkpoint_path, lambda tmp: torch.save(state, tmp))

    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
    resize = resize_for(config.size)
    for epoch in range(start, config.epochs):
        # dropout and every crop of the epoch depend on (seed, epoch) alone (and the rank): a
        # resumed run repeats exactly what the uninterrupted one did
        torch.manual_seed(config.seed * 100003 + epoch + 7919 * rank)
        view = D.View("train", config.size, resize, config.seed, epoch, config.lighting)
        train_batches = batches("train", view, True, config.batch, part=(rank, world))
        net.train()
        bar = _bar(-(-len(train_split) // world), f"epoch {epoch + 1}/{config.epochs}", config.progress)
        seen = steps = 0
        sums = torch.zeros(3, device=device)  # loss, top-1 wrong, top-5 wrong: read once an epoch, not per step
        rows = []  # the rank's rows, for BASELINE_RANK_LOG
        waited, began = 0.0, time.perf_counter()
        ready = time.perf_counter()
        for x, y, indices in _every_rank(train_batches, group) if ddp else train_batches:
            waited += time.perf_counter() - ready
            if config.schedule == "cosine":  # under DDP from the steps, which every rank counts alike
                done = min(steps * config.batch * world, len(train_split)) if ddp else seen
                _set_lr(optimizer, _cosine(config, epoch + done / len(train_split)))
            with autocast():
                logits = forward(x[:, 0].contiguous(memory_format=_memory_format(device)))
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                wrong = topk_wrong(logits.float(), y)
                sums += torch.stack([loss.detach() * len(y), wrong[1].sum(), wrong[5].sum()])
            seen += len(y)
            steps += 1
            if rank_log:
                rows += indices.tolist()
            if bar is not None:
                bar.update(len(y))
                if steps % 10 == 1:
                    bar.set_postfix(loss=f"{sums[0].item() / seen:.3f}", refresh=False)
            if config.max_steps and steps >= config.max_steps:
                break
            ready = time.perf_counter()
        if bar is not None:
            bar.close()
        if rank_log:
            print(
                "rank-log " + json.dumps({"rank": rank, "world": world, "epoch": epoch + 1, "rows": rows}),
                file=sys.stderr,
                flush=True,
            )
        if ddp:  # the epoch over all ranks: images, loss and errors summed, and the bad rows met
            totals = torch.cat([sums, sums.new_tensor([seen])])
            dist.all_reduce(totals)
            sums, seen = totals[:3], int(totals[3].item())
            met = [None] * world
            dist.all_gather_object(met, bad["train"], group=group)
            bad["train"].update(*met)
        loss_sum, wrong1, wrong5 = sums.tolist()
        seconds = time.perf_counter() - began
        lr = optimizer.param_groups[0]["lr"]
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum / max(seen, 1),
            "train_top1_error": wrong1 / max(seen, 1),
            "train_top5_error": wrong5 / max(seen, 1),
            "images": seen,
            "images_per_s": seen / seconds if seconds else None,
            "data_wait_share": waited / seconds if seconds else None,
            "seconds": seconds,
        }
        if cuda:
            row["gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        if val_split is not None and len(val_split):
            val = (
                evaluate(score, batches("val", D.View("center", config.size, resize), False, config.batch), autocast)
                if rank == 0
                else None
            )
            if ddp:  # rank 0 scored val alone: every rank steps the schedule on its numbers
                val = _from_rank_0(val, group)
            row.update(val_loss=val["loss"], val_top1_error=val["top1_error"], val_top5_error=val["top5_error"])
            if plateau is not None and val["top1_error"] is not None:
                plateau.step(val["top1_error"])
        elif plateau is not None:
            plateau.step(row["train_loss"])
        row["skipped"] = sum(len(b) for b in bad.values()) + sum(data.skipped.values())
        history.append(row)
        if rank == 0:
            save_checkpoint(epoch + 1)
            write_jsonl(run / "metrics.jsonl", history)
        log(_epoch_line(row, config.epochs))
    if rank_log:
        print(
            "rank-log " + json.dumps({"rank": rank, "world": world, "weights": weights_digest(model.state_dict())}),
            file=sys.stderr,
            flush=True,
        )
    if rank:  # done: rank 0 scores val and test and writes the run's files
        return {"rank": rank, "epochs_done": len(history), "history": history}

    # -- final evaluation
    result = {
        "dataset": str(data.root),
        "inputs": input_state(config),
        "origin": data.origin,
        "arch": config.arch,
        "parameters": count_parameters(model),
        "classes": len(classes),
        "settings": config.settings(),
        "device": device.type,
        "epochs_done": len(history),
        "images": {name: len(split) for name, split in data.splits.items()},
        "train_seconds": sum(r["seconds"] for r in history),
        "images_per_s": _mean([r["images_per_s"] for r in history]),
        "data_wait_share": _mean([r["data_wait_share"] for r in history]),
        "chance_top1_error": 1 - 1 / len(classes),
        "reference_alexnet_ilsvrc2012": ALEXNET_ILSVRC2012,
    }
    report_split = None
    for name in ("val", "test"):
        split = data.splits.get(name)
        if split is None or not len(split):
            continue
        centre = evaluate(score, batches(name, D.View("center", config.size, resize), False, config.batch), autocast)
        ten = evaluate(
            score, batches(name, D.View("tencrop", config.size, resize), False, max(1, config.batch // 4)), autocast
        )
        result[name] = {
            "images": ten["images"],
            "top1_error": {"center": centre["top1_error"], "ten_crop": ten["top1_error"]},
            "top5_error": {"center": centre["top5_error"], "ten_crop": ten["top5_error"]},
            "loss": {"center": centre["loss"], "ten_crop": ten["loss"]},
        }
        if report_split is None:
            report_split = (name, ten)
    if report_split is not None:
        name, ten = report_split
        matrix = confusion(ten["labels"], ten["guesses"], len(classes))
        write_confusion(run / "confusion.csv", matrix, classes.wnids)
        classes_report = per_class(matrix, classes.wnids, classes.names)
        result.update(
            per_class_split=name,
            per_class=classes_report,
            worst_classes=worst(classes_report),
            confusion_matrix="confusion.csv",
        )
    skipped = dict(data.skipped)
    if any(bad.values()):
        skipped["unreadable image"] = sum(len(b) for b in bad.values())
    result["skipped"] = skipped
    result["skipped_rows"] = sum(skipped.values())
    result["stats"] = stats.as_dict()
    if history:
        atomic(run / "curves.png", lambda tmp: curves(history, tmp))
        result["plot"] = "curves.png"
    atomic(
        run / "model.pt",
        lambda tmp: torch.save(
            {
                "arch": config.arch,
                "state_dict": model.state_dict(),
                "classes": classes.wnids,
                "names": classes.names,
                "size": config.size,
                "stats": stats.as_dict(),
            },
            tmp,
        ),
    )
    result["history"] = history
    write_json(run / "metrics.json", result)
    log(_final_line(result, run))
    return result


def _every_rank(batches, group):
    """The rank's batches, as long as every rank has one: DDP's all-reduce in each step needs
    them all. The parts are equal, so every rank has as many batches, but for one that bad
    images emptied (--skip-bad) or, streaming, ranks with other worker counts."""
    more = torch.ones(1)
    for batch in batches:
        dist.all_reduce(more, op=dist.ReduceOp.MIN, group=group)
        if not more.item():
            return
        yield batch
    more.zero_()
    dist.all_reduce(more, op=dist.ReduceOp.MIN, group=group)  # tell the others this rank is out


def _from_rank_0(value, group):
    box = [value]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def _agree(value, what: str, world: int, group) -> None:
    values = [None] * world
    dist.all_gather_object(values, value, group=group)
    if any(v != values[0] for v in values):
        raise PipelineError(f"the ranks see {what} differently ({values}): put it on a file system they share")


def weights_digest(state_dict: dict) -> str:
    """SHA-256 of a model's weights (names, values): equal on every rank of a DDP run."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _sgd(model: torch.nn.Module, config: Config) -> torch.optim.SGD:
    """SGD with momentum and weight decay, as one fused update where this PyTorch has it (CPU
    too since 2.4): on a CPU the plain per-tensor update of AlexNet's 61 M parameters costs as
    much as a small batch's forward and backward passes."""
    kwargs = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    try:
        return torch.optim.SGD(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.SGD(model.parameters(), **kwargs)


def _cosine(config: Config, progress: float) -> float:
    """Cosine decay over the run, after ``warmup`` epochs of linear warm-up."""
    if progress < config.warmup:
        return config.lr * (progress + 1e-3) / config.warmup
    span = max(config.epochs - config.warmup, 1e-9)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - config.warmup) / span)))


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _bar(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None  # the epoch line says it all
    return tqdm(total=total, desc=description, unit="img", leave=False, disable=None, smoothing=0.1)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _epoch_line(row: dict, epochs: int) -> str:
    line = (
        f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.3f}, top-1 error {_pct(row['train_top1_error'])}, "
        f"lr {row['lr']:.3g}, {row['images_per_s'] or 0:.0f} img/s, waiting for data {_pct(row['data_wait_share'])}"
    )
    if "val_top1_error" in row:
        line += (
            f"; val loss {row['val_loss']:.3f}, top-1 error {_pct(row['val_top1_error'])}, "
            f"top-5 error {_pct(row['val_top5_error'])}"
        )
    return line


def _class(entry: dict) -> str:
    return entry["wnid"] if entry["name"] == entry["wnid"] else f"{entry['wnid']} {entry['name']}"


def _final_line(result: dict, run: Path) -> str:
    lines = []
    for name in ("val", "test"):
        if name in result:
            r = result[name]
            lines.append(
                f"{name} ({r['images']} images): top-1 error {_pct(r['top1_error']['center'])} centre, "
                f"{_pct(r['top1_error']['ten_crop'])} 10-crop; top-5 error {_pct(r['top5_error']['center'])} "
                f"centre, {_pct(r['top5_error']['ten_crop'])} 10-crop (chance {_pct(result['chance_top1_error'])})"
            )
    if result.get("worst_classes"):
        w = result["worst_classes"][0]
        other = w["most_confused_with"]
        lines.append(
            f"worst class: {_class(w)} {_pct(w['accuracy'])}"
            + (f", most often taken for {_class(other)}" if other else "")
        )
    if result["skipped_rows"]:
        lines.append(f"skipped {result['skipped_rows']} bad rows: {result['skipped']}")
    lines.append(f"wrote {run}/metrics.json")
    return "\n".join(lines)


# --------------------------------------------------------------------------- evaluate a finished run


def evaluate_run(config: Config, splits: tuple[str, ...] = ("val", "test"), log=None) -> dict:
    """Score a run's last checkpoint again (centre and 10-crop), e.g. on a test split added later."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    run = run_folder(config)
    path = run / "checkpoint.pt"
    if not path.exists():
        raise InputError("no checkpoint: train first (make train)", file=path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    settings = checkpoint["settings"]
    device = pick_device(config.device)
    cuda = device.type == "cuda"
    data = D.load_dataset(
        Path(config.data) / config.subset,
        manifests=config.manifests,
        packed=config.packed,
        skip_bad=config.skip_bad,
        log=log,
    )
    if checkpoint["classes"] != data.classes.wnids:
        raise InputError("the dataset's classes differ from the run's", file=path)
    model = build(settings["arch"], len(data.classes), settings["dropout"]).to(
        device, memory_format=_memory_format(device)
    )
    model.load_state_dict(checkpoint["model"])
    stats = D.Stats.from_dict(checkpoint["stats"])
    workers = D.default_workers() if config.workers is None else config.workers
    decode = D.gpu_decoder() if cuda and config.decode in ("auto", "gpu") else None
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
    size, batch = settings["size"], settings["batch"]
    out: dict = {"run": str(run), "epochs_done": checkpoint["epoch"]}
    for name in splits:
        split = data.splits.get(name)
        if split is None or not len(split):
            continue
        scores = {}
        blobs = D.Blobs.load(data, split) if D.split_bytes(data, split) <= _memory_bytes() / 4 else None
        for mode, b in (("center", batch), ("ten_crop", max(1, batch // 4))):
            view = D.View("center" if mode == "center" else "tencrop", size, resize_for(size))
            batches = Batches(
                data,
                split,
                blobs,
                view,
                batch=b,
                workers=workers,
                device=device,
                stats=stats,
                shuffle=False,
                decode=decode,
                skip_bad=config.skip_bad,
                bad=set(),
            )
            scores[mode] = evaluate(model, batches, autocast)
        out[name] = {
            "images": scores["center"]["images"],
            "top1_error": {m: s["top1_error"] for m, s in scores.items()},
            "top5_error": {m: s["top5_error"] for m, s in scores.items()},
        }
        log(
            f"{name} ({out[name]['images']} images): top-1 error {_pct(out[name]['top1_error']['center'])} centre, "
            f"{_pct(out[name]['top1_error']['ten_crop'])} 10-crop; top-5 error {_pct(out[name]['top5_error']['center'])} "
            f"centre, {_pct(out[name]['top5_error']['ten_crop'])} 10-crop"
        )
    write_json(run / "evaluate.json", out)
    return out
