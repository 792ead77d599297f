"""Scoring a model on a split as ILSVRC did: top-1 and top-5 error on centre crops, and on
10-crops (the four corners and the centre, and their flips, their softmax averaged); with a
box head, each image's five best guesses with their boxes (``localize``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import InputError

from .config import Config, autocast, default_workers, memory_bytes, memory_format, pick_device
from .console import box_line, split_line, stderr
from .loaders import Batches, Feed
from .localize import TOP, placed, report
from .manifests import load_dataset
from .metrics import topk_wrong
from .model import build, outputs
from .run_folder import RunFolder, dataset_folder
from .stats import Stats
from .transforms import View, decoder, resize_for


@torch.no_grad()
def evaluate(model, batches: Batches, autocast) -> dict:
    """Loss and top-1/top-5 error over a split (averaging the softmax of the 10 crops), with
    each image's top-1 guess for the confusion matrix; with a box head, also each image's
    split index, its five best classes (``top``) and their boxes in its stored pixels (``boxes``)."""
    model.eval()
    labels, guesses, losses, wrong1, wrong5 = [], [], [], [], []
    found: dict[str, list] = {"indices": [], "top": [], "boxes": []}
    for x, y, indices in batches:
        b, k = x.shape[:2]
        with autocast():
            logits, boxes = outputs(model(x.flatten(0, 1).contiguous(memory_format=memory_format(x.device))))
        probs = logits.float().softmax(-1).view(b, k, -1).mean(1)
        if boxes is not None:
            top = probs.topk(min(TOP, probs.shape[1]), dim=1).indices
            found["boxes"].append(placed(boxes.view(b, k, -1), top, batches.view, batches.split, indices))
            found["top"].append(top.cpu().numpy())
            found["indices"].append(indices.numpy())
        losses.append(F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum").item())
        wrong = topk_wrong(probs, y)
        wrong1.append(wrong[1].sum().item())
        wrong5.append(wrong[5].sum().item())
        labels.append(y.cpu().numpy())
        guesses.append(probs.argmax(1).cpu().numpy())
    n = sum(len(batch) for batch in labels)
    boxed = {key: np.concatenate(parts) for key, parts in found.items()} if found["boxes"] else {}
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
        **boxed,
    }


def score_splits(model, feed: Feed, names, *, size: int, batch: int, autocast) -> tuple[dict, dict]:
    """Each split of ``names`` the dataset has, on centre crops and 10-crops (batches a quarter
    the size): (its scores by split, the 10-crop results with each image's guess)."""
    scores, ten_crops = {}, {}
    for name in names:
        split = feed.data.splits.get(name)
        if split is None or not len(split):
            continue
        centre = evaluate(model, feed.batches(name, View("center", size, resize_for(size)), batch=batch), autocast)
        ten = evaluate(
            model, feed.batches(name, View("tencrop", size, resize_for(size)), batch=max(1, batch // 4)), autocast
        )
        scores[name] = {
            "images": ten["images"],
            "top1_error": {"center": centre["top1_error"], "ten_crop": ten["top1_error"]},
            "top5_error": {"center": centre["top5_error"], "ten_crop": ten["top5_error"]},
            "loss": {"center": centre["loss"], "ten_crop": ten["loss"]},
        }
        ten_crops[name] = ten
    return scores, ten_crops


def evaluate_run(config: Config, splits: tuple[str, ...] = ("val", "test"), log=None) -> dict:
    """Score a run's last checkpoint again (centre and 10-crop; with a box head, its
    submissions and localization too), e.g. on a test split added later: writes the run's
    ``evaluate.json``."""
    log = log or stderr
    run = RunFolder(config)
    checkpoint = run.read_checkpoint()
    settings = checkpoint["settings"]
    device = pick_device(config.device)
    data = load_dataset(
        dataset_folder(config), manifests=config.manifests, packed=config.packed, skip_bad=config.skip_bad
    )
    if checkpoint["classes"] != data.classes.wnids:
        raise InputError("the dataset's classes differ from the run's", file=run.checkpoint)
    model = build(settings["arch"], len(data.classes), settings["dropout"], checkpoint.get("box_head"))
    model = model.to(device, memory_format=memory_format(device))
    model.load_state_dict(checkpoint["model"])
    feed = Feed(
        data,
        memory=memory_bytes() / 4,
        rank=0,
        stats=Stats.from_dict(checkpoint["stats"]),
        device=device,
        workers=default_workers() if config.workers is None else config.workers,
        decode=decoder(config.decode, device),
        skip_bad=config.skip_bad,
        splits=splits,
    )
    scores, ten_crops = score_splits(
        model, feed, splits, size=settings["size"], batch=settings["batch"], autocast=autocast(device)
    )
    for name, score in scores.items():
        log(split_line(name, score))
        if "boxes" in ten_crops[name]:  # the submission again, scored by pipeline.evaluation
            score.update(report(run.path, dataset_folder(config), data, name, ten_crops[name]))
            log(box_line(name, score))
    out = {"run": str(run.path), "epochs_done": checkpoint["epoch"], **scores}
    run.write_evaluation(out)
    return out
