"""Training AlexNet on a dataset, read top to bottom (after torchvision's classification
reference script: ``train`` -> ``load_data`` -> ``train_one_epoch`` and ``evaluate``).

``train(config)`` opens the run folder (skipping a current finished run, continuing a
checkpoint), loads the splits, picks the settings the user left open, builds the model and
SGD, then runs epochs: each one trains on the training split, scores the validation split on
centre crops, steps the learning-rate schedule, writes a checkpoint and a line of
``metrics.jsonl``. At the end it scores val (and test, when the manifests have one) on centre
crops and 10-crops, and writes ``metrics.json``, the confusion matrix, the curves and the
weights (``run_folder``). Where the manifests have object boxes the model also regresses
each image's box (``localize``), and the run writes its val and test guesses with their
boxes as Kaggle submissions, scored for localization error, and ``boxes.png``.

Under torchrun (``torchrun --nproc_per_node=N -m baseline train ...``, WORLD_SIZE > 1) each
process is one rank of a DistributedDataParallel run: it trains on its own part of every
epoch (``ddp.rank_rows``) with ``--batch`` images a step, DDP averaging the gradients, so a
step takes N x batch images. Rank 0 alone scores val and test, prints and writes files.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from pipeline.errors import InputError

from .config import (
    Config,
    autocast,
    check_choices,
    choose_settings,
    default_workers,
    memory_bytes,
    memory_format,
    pick_device,
)
from .console import epoch_line, final_lines, progress_bar, quiet, stderr
from .dataset import DataSet
from .ddp import Ranks, process_group, weights_digest
from .evaluate import evaluate, score_splits
from .loaders import Batches, Feed
from .localize import box_loss, figure, first_boxes, has_boxes, overlap, report, targets
from .manifests import load_dataset
from .metrics import confusion, per_class, topk_wrong, worst
from .model import build, count_parameters, outputs
from .run_folder import RunFolder, dataset_folder, input_state
from .stats import IMAGENET_STATS, Stats, training_stats
from .transforms import View, decoder, resize_for

ALEXNET_ILSVRC2012 = {"top1_error": 0.407, "top5_error": 0.182}  # one net, val (Krizhevsky et al. 2012, table 2)


def train(config: Config, log=None) -> dict:
    """Train a run: ``metrics.json``'s figures (or a finished run's, skipped). Started by
    torchrun, the process joins the run's process group first and leaves it at the end."""
    check_choices(config)
    device = pick_device(config.device)
    with process_group(device):
        return _train(config, device, log or stderr)


def _train(config: Config, device: torch.device, log) -> dict:
    cuda = device.type == "cuda"
    ranks = Ranks.current(cuda)
    if ranks.ddp and cuda:
        device = torch.device("cuda", torch.cuda.current_device())  # LOCAL_RANK's, set by process_group
    if ranks.rank:  # rank 0 alone prints and writes files
        log, config.progress = quiet, False
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)

    # -- the run folder: a finished run to skip, or the checkpoint to continue
    run = RunFolder(config)
    finished, checkpoint = run.open(config, ranks, log)
    if finished is not None:
        return finished
    config.arch = config.arch or "alexnet"

    # -- data
    data = load_data(config, checkpoint, run)
    config = choose_settings(config, -(-len(data.splits["train"]) // ranks.world), cuda, log)  # a rank's part
    feed = make_feed(config, data, checkpoint, ranks, device)
    log(_plan_line(config, data, feed, ranks))

    # -- model and optimiser
    torch.manual_seed(config.seed)
    box_head = config.box_head if has_boxes(data) else None
    model = build(config.arch, len(data.classes), config.dropout, box_head)
    model = model.to(device, memory_format=memory_format(device))
    optimizer = _sgd(model, config)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=config.patience)
        if config.schedule == "plateau"
        else None
    )
    history: list[dict] = []
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if plateau is not None:
            plateau.load_state_dict(checkpoint["plateau"])
        history, start = checkpoint["history"], checkpoint["epoch"]
        for name, rows in feed.bad.items():
            rows.update(checkpoint["bad"].get(name, []))
        log(f"resuming {run.path} after epoch {start}")
    # steps go through DDP, which averages the gradients over the ranks (and starts them all
    # from rank 0's weights); rank 0 scores val and test alone, on the bare model
    net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None) if ranks.ddp else model
    forward = torch.compile(net) if config.compile else net
    score = (torch.compile(model) if config.compile else model) if ranks.ddp else forward
    amp = autocast(device)

    # -- epochs
    if ranks.rank == 0:
        run.path.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, config.epochs):
        # dropout and every crop of the epoch depend on (seed, epoch) alone (and the rank): a
        # resumed run repeats exactly what the uninterrupted one did
        torch.manual_seed(config.seed * 100003 + epoch + 7919 * ranks.rank)
        view = View("train", config.size, resize_for(config.size), config.seed, epoch, config.lighting)
        batches = feed.batches("train", view, batch=config.batch, shuffle=True, part=(ranks.rank, ranks.world))
        net.train()
        row = train_one_epoch(forward, optimizer, batches, epoch=epoch, config=config, ranks=ranks, autocast=amp)
        val = validate(score, feed, config, ranks, amp)
        if val is not None:
            row.update(val_loss=val["loss"], val_top1_error=val["top1_error"], val_top5_error=val["top5_error"])
            if "val_box_iou_50" in val:
                row["val_box_iou_50"] = val["val_box_iou_50"]
        if plateau is not None:  # steps on val top-1 error, on the training loss without a val split
            watched = row["train_loss"] if val is None else val["top1_error"]
            if watched is not None:
                plateau.step(watched)
        row["skipped"] = sum(len(b) for b in feed.bad.values()) + sum(data.skipped.values())
        history.append(row)
        if ranks.rank == 0:
            run.write_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "plateau": plateau.state_dict() if plateau else None,
                    "epoch": epoch + 1,
                    "history": history,
                    "settings": config.settings(),
                    "stats": feed.stats.as_dict(),
                    "classes": data.classes.wnids,
                    "names": data.classes.names,
                    "box_head": box_head,
                    "bad": {n: sorted(b) for n, b in feed.bad.items()},
                }
            )
            run.write_history(history)
        log(epoch_line(row, config.epochs))
    if ranks.log_rows:
        ranks.log(weights=weights_digest(model.state_dict()))
    if ranks.rank:  # done: rank 0 scores val and test and writes the run's files
        return {"rank": ranks.rank, "epochs_done": len(history), "history": history}
    result = final_report(config, run, data, feed, model, score, history, amp)
    log(final_lines(result, run.path))
    return result


def load_data(config: Config, checkpoint: dict | None, run: RunFolder) -> DataSet:
    """The splits (manifests or a packed export), checked against the run being continued."""
    data = load_dataset(
        dataset_folder(config), manifests=config.manifests, packed=config.packed, skip_bad=config.skip_bad
    )
    train_split = data.splits["train"]
    if not len(train_split):
        raise InputError("the train split is empty", file=train_split.sources[0])
    if checkpoint is not None and checkpoint["classes"] != data.classes.wnids:
        raise InputError("the dataset's classes differ from the run being resumed", file=run.checkpoint)
    return data


def make_feed(config: Config, data: DataSet, checkpoint: dict | None, ranks: Ranks, device: torch.device) -> Feed:
    """Where batches come from: the splits that fit the cache in memory, the rest streamed;
    the pixel statistics (the continued run's, ImageNet's or the training split's)."""
    if checkpoint is not None:
        stats = Stats.from_dict(checkpoint["stats"])
    else:
        stats = IMAGENET_STATS if config.stats == "imagenet" else training_stats(data, data.splits["train"])
    workers = default_workers(ranks.here) if config.workers is None else config.workers
    decode = decoder(config.decode, device)
    return Feed(
        data,
        memory=config.cache_gb * 2**30 if config.cache_gb is not None else memory_bytes() / 4 / ranks.here,
        rank=ranks.rank,
        stats=stats,
        device=device,
        workers=workers,
        decode=decode,
        skip_bad=config.skip_bad,
    )


def train_one_epoch(
    forward, optimizer, batches: Batches, *, epoch: int, config: Config, ranks: Ranks, autocast
) -> dict:
    """One pass over this rank's part of the training split: the epoch's line of
    ``metrics.jsonl`` (summed over the ranks), but for the validation figures."""
    device, length = batches.device, len(batches)
    bar = progress_bar(-(-length // ranks.world), f"epoch {epoch + 1}/{config.epochs}", config.progress)
    seen = steps = 0
    sums = torch.zeros(4, device=device)  # loss, top-1 wrong, top-5 wrong, box loss: read once an epoch, not per step
    boxes_loss, boxed = torch.zeros((), device=device), False
    rows = []  # the rank's rows, for BASELINE_RANK_LOG
    waited, began = 0.0, time.perf_counter()
    ready = time.perf_counter()
    for x, y, indices in ranks.every_rank(batches):
        waited += time.perf_counter() - ready
        if config.schedule == "cosine":  # under DDP from the steps, which every rank counts alike
            done = min(steps * config.batch * ranks.world, length) if ranks.ddp else seen
            _set_lr(optimizer, _cosine(config, epoch + done / length))
        with autocast():
            logits, boxes = outputs(forward(x[:, 0].contiguous(memory_format=memory_format(device))))
            classes_loss = loss = F.cross_entropy(logits.float(), y)
            if boxes is not None:  # the box of the true class, in the crop as the pixels were cut
                target, shown = targets(batches.split, batches.view, indices)
                boxes_loss = box_loss(boxes.float(), y, target.to(device), shown.to(device))
                loss, boxed = classes_loss + config.box_weight * boxes_loss, True
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            wrong = topk_wrong(logits.float(), y)
            sums += torch.stack(
                [classes_loss.detach() * len(y), wrong[1].sum(), wrong[5].sum(), boxes_loss.detach() * len(y)]
            )
        seen += len(y)
        steps += 1
        if ranks.log_rows:
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
    ranks.log(epoch=epoch + 1, rows=rows)
    if ranks.ddp:  # the epoch over all ranks: images, loss and errors summed, and the bad rows met
        totals = ranks.total(torch.cat([sums, sums.new_tensor([seen])]))
        sums, seen = totals[:4], int(totals[4].item())
        ranks.union(batches.bad)
    loss_sum, wrong1, wrong5, box_sum = sums.tolist()
    seconds = time.perf_counter() - began
    row = {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": loss_sum / max(seen, 1),
        "train_top1_error": wrong1 / max(seen, 1),
        "train_top5_error": wrong5 / max(seen, 1),
        "images": seen,
        "images_per_s": seen / seconds if seconds else None,
        "data_wait_share": waited / seconds if seconds else None,
        "seconds": seconds,
    }
    if boxed:
        row["train_box_loss"] = box_sum / max(seen, 1)
    if device.type == "cuda":
        row["gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def validate(score, feed: Feed, config: Config, ranks: Ranks, autocast) -> dict | None:
    """The epoch's val figures on centre crops (scored by rank 0, sent to every rank, which
    steps its schedule on them); None without a val split."""
    split = feed.data.splits.get("val")
    if split is None or not len(split):
        return None
    val = None
    if ranks.rank == 0:
        view = View("center", config.size, resize_for(config.size))
        val = evaluate(score, feed.batches("val", view, batch=config.batch), autocast)
        if "boxes" in val and split.boxes.with_boxes:  # the first guess's box overlaps a true one by half
            val["val_box_iou_50"] = overlap(split, val["indices"], first_boxes(split, val))
    return ranks.from_rank_0(val)


def final_report(
    config: Config, run: RunFolder, data: DataSet, feed: Feed, model, score, history: list[dict], autocast
) -> dict:
    """Score val and test (centre and 10-crop), write the run's files, return ``metrics.json``."""
    classes = data.classes
    result = {
        "dataset": str(data.root),
        "inputs": input_state(config),
        "origin": data.origin,
        "arch": config.arch,
        "parameters": count_parameters(model),
        "classes": len(classes),
        "settings": config.settings(),
        "device": feed.device.type,
        "epochs_done": len(history),
        "images": {name: len(split) for name, split in data.splits.items()},
        "train_seconds": sum(r["seconds"] for r in history),
        "images_per_s": _mean([r["images_per_s"] for r in history]),
        "data_wait_share": _mean([r["data_wait_share"] for r in history]),
        "chance_top1_error": 1 - 1 / len(classes),
        "reference_alexnet_ilsvrc2012": ALEXNET_ILSVRC2012,
        "val": None,  # null where the manifests have no such split
        "test": None,
    }
    scores, ten_crops = score_splits(
        score, feed, ("val", "test"), size=config.size, batch=config.batch, autocast=autocast
    )
    result.update(scores)
    boxed = [name for name, ten in ten_crops.items() if "boxes" in ten]
    for name in boxed:  # the 10-crop guesses with their boxes: a submission, scored by pipeline.evaluation
        result[name].update(report(run.path, dataset_folder(config), data, name, ten_crops[name]))
    if boxed:
        result["box_head"] = config.box_head
        result["boxes_plot"] = figure(run.path / "boxes.png", data, boxed[0], ten_crops[boxed[0]])
    if ten_crops:  # per class: on the first scored split, val unless the manifests have none
        name, ten = next(iter(ten_crops.items()))
        matrix = confusion(ten["labels"], ten["guesses"], len(classes))
        classes_report = per_class(matrix, classes.wnids, classes.names)
        result.update(
            per_class_split=name,
            per_class=classes_report,
            worst_classes=worst(classes_report),
            confusion_matrix=run.write_confusion(matrix, classes.wnids),
        )
    skipped = dict(data.skipped)
    if any(feed.bad.values()):
        skipped["unreadable image"] = sum(len(b) for b in feed.bad.values())
    result["skipped"] = skipped
    result["skipped_rows"] = sum(skipped.values())
    result["stats"] = feed.stats.as_dict()
    if history:
        result["plot"] = run.write_curves(history)
    run.write_model(
        {
            "arch": config.arch,
            "state_dict": model.state_dict(),
            "classes": classes.wnids,
            "names": classes.names,
            "size": config.size,
            "stats": feed.stats.as_dict(),
            "box_head": config.box_head if boxed else None,
        }
    )
    result["history"] = history
    run.write_metrics(result)
    return result


def _plan_line(config: Config, data: DataSet, feed: Feed, ranks: Ranks) -> str:
    return (
        f"{data.origin}: {len(data.classes)} classes, "
        + ", ".join(f"{n} {len(s)}" for n, s in data.splits.items())
        + f" images; {config.arch} {config.size} px, batch {config.batch}, lr {config.lr}, {config.schedule}, "
        f"{config.epochs} epochs on {feed.device.type}"
        + (f" x {ranks.world} processes (batch {config.batch} each)" if ranks.ddp else "")
        + (" (streaming row groups)" if feed.streamed else "")
    )


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
