"""A run's folder, ``<data>/<subset>/runs/<name>/`` (or ``--out``): what a run leaves, and how a
rerun finds it.

- ``checkpoint.pt``: model, optimiser and schedule after the last finished epoch (``--resume``);
- ``metrics.jsonl``: one line per epoch; ``metrics.json``: the finished run's figures;
- ``confusion.csv``, ``curves.png``, ``model.pt``: the confusion matrix, the loss and error
  curves, the weights with their classes, input size and pixel statistics; ``README.txt``: how
  to use ``model.pt``, with code in torch and Pillow alone; ``evaluate.json``: ``python -m
  baseline evaluate``.

Every file is written under a temporary name and renamed (``pipeline.files``): a reader, or a
rerun after a kill, never sees half of one. A rerun skips a finished run of the same settings
whose inputs are unchanged (as make does, by name, size and modification time), and trains
again, with the run's own settings, one whose data changed.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

import numpy as np
import torch

from pipeline import schemas
from pipeline.errors import InputError
from pipeline.files import atomic_path, atomic_write_json, atomic_write_jsonl, atomic_write_text
from pipeline.layout import RUN_METRICS, Layout
from pipeline.tables import read_report, write_report

from .config import CHECKED_ON_RESUME, FIXED_ON_RESUME, Config
from .ddp import Ranks
from .model import build
from .plot import curves
from .transforms import resize_for


def dataset_folder(config: Config) -> Path:
    return Path(config.data) / config.subset


class RunFolder:
    def __init__(self, config: Config):
        self.path = Path(config.out) if config.out else Layout(dataset_folder(config)).runs / config.name

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.path / RUN_METRICS

    @property
    def history(self) -> Path:
        return self.path / "metrics.jsonl"

    def open(self, config: Config, ranks: Ranks, log) -> tuple[dict | None, dict | None]:
        """(a finished run to return as it is, or None; the checkpoint to continue, or None).
        Fills in ``config`` the settings a continued or retrained run keeps, and refuses to
        overwrite a run the user did not ask to resume or start over."""
        finished, current = self.finished(config)
        # every rank reads the run folder: on one shared file system they decide alike
        ranks.agree((finished is not None, current, self.checkpoint.exists()), "the run folder")
        if finished is not None and current:
            log(
                f"train: {self.path} is up to date (the same data and settings, {finished['epochs_done']} epochs "
                "done); skipped, --force (FORCE=1) trains again"
            )
            return finished, None
        if finished is not None:
            log(f"train: the data of {self.path} changed since it finished; training it again with its settings")
            for key, value in finished["settings"].items():  # those the command line left open
                if getattr(config, key) is None:
                    setattr(config, key, value)
            config.force = True
        if not self.checkpoint.exists():
            if config.resume:
                log(f"note: no checkpoint in {self.path}: starting from epoch 1")
            return None, None
        if not config.resume:
            if config.force:
                return None, None
            epochs = len(self.history.read_text().splitlines()) if self.history.exists() else "?"
            raise InputError(
                f"already holds a run ({epochs} epochs done): --resume (RESUME=1) continues it, "
                "--force (FORCE=1) starts it over, --name (NAME=) starts another",
                file=self.path,
            )
        checkpoint = self.read_checkpoint()
        for key in FIXED_ON_RESUME:
            given, saved = getattr(config, key), checkpoint["settings"].get(key, getattr(config, key))
            if given is not None and key in CHECKED_ON_RESUME and given != saved:
                raise InputError(
                    f"the run being resumed has {key} {saved!r}", file=self.checkpoint, field=f"--{key}", value=given
                )
            setattr(config, key, saved)
        if config.epochs is None:
            config.epochs = checkpoint["settings"]["epochs"]
        return None, checkpoint

    def finished(self, config: Config) -> tuple[dict | None, bool]:
        """(the metrics of a finished run of the same settings, whether its inputs are
        unchanged), or (None, False) when there is no such run."""
        if config.force or config.resume or not self.metrics.exists():
            return None, False
        try:
            metrics = read_report(self.metrics, schemas.TRAIN_METRICS)
        except InputError:  # unreadable, or written by a trainer of other figures: train anew
            return None, False
        saved = metrics.get("settings", {})
        given = {k: v for k, v in config.settings().items() if v is not None}
        if not all(saved.get(k) == v for k, v in given.items()) or metrics.get("epochs_done") != saved.get("epochs"):
            return None, False
        return metrics, metrics.get("inputs") == input_state(config)

    def read_checkpoint(self) -> dict:
        if not self.checkpoint.exists():
            raise InputError("no checkpoint: train first (make train)", file=self.checkpoint)
        return torch.load(self.checkpoint, map_location="cpu", weights_only=False)

    def write_checkpoint(self, state: dict) -> None:
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def write_history(self, history: list[dict]) -> None:
        atomic_write_jsonl(self.history, history)

    def write_confusion(self, matrix: np.ndarray, wnids: list[str]) -> str:
        lines = ["true\\guess," + ",".join(wnids)]
        lines += [wnid + "," + ",".join(map(str, row)) for wnid, row in zip(wnids, matrix)]
        atomic_write_text(self.path / "confusion.csv", "\n".join(lines) + "\n")
        return "confusion.csv"

    def write_curves(self, history: list[dict]) -> str:
        with atomic_path(self.path / "curves.png") as tmp:
            curves(history, tmp)
        return "curves.png"

    def write_model(self, model: dict) -> None:
        """``model.pt`` and the ``README.txt`` that says how to use it."""
        with atomic_path(self.path / "model.pt") as tmp:
            torch.save(model, tmp)
        atomic_write_text(self.path / "README.txt", readme(model))

    def write_metrics(self, result: dict) -> None:
        write_report(self.metrics, schemas.TRAIN_METRICS, result)

    def write_evaluation(self, scores: dict) -> None:
        atomic_write_json(self.path / "evaluate.json", scores)


def input_state(config: Config) -> list:
    """Name, size and modification time of every file the run reads its rows from (as make
    does): the manifests and the manifests stage's report, or the packed export."""
    if config.packed:
        files = _files(Path(config.packed))
    else:
        layout = Layout(dataset_folder(config))
        files = _files(Path(config.manifests) if config.manifests else layout.manifests)
        if layout.report("manifests").is_file():
            files.append(layout.report("manifests"))
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file()] if folder.is_dir() else []


README = Template('''\
This folder is a finished training run of synsetforge's AlexNet baseline (python -m baseline
train); metrics.json holds its figures, model.pt its weights and what using them takes.

model.pt (torch.load(path, weights_only=True)) is a dict:
  arch        $arch
  state_dict  the weights
  classes     $count WordNet ids, output i is classes[i]; names: their names (the list below)
  size        $size: the input is a $size x $size RGB crop
  stats       mean $mean and std $std of the
              training pixels in [0, 1] ($source), the input's normalisation
  box_head    $box_head

The input is cut as the run's evaluation cut it: the short side scaled to $resize, the centre
$size x $size square (placed in whole pixels of the upright image, scaled bilinearly), then
(pixels / 255 - mean) / std with the mean and std above. Not torchvision's ImageNet recipe
(224 px, ImageNet's mean and std): on such a run that input gives far more errors.

$torchvision
The command line: python -m baseline predict --run <this folder> IMAGE ...

In torch and Pillow alone: save the lines between the two rulers as predict.py in this folder
and run python predict.py IMAGE ... there.

---8<--- predict.py
"""This run's five most probable classes for each image$box_doc."""

import math
import sys

import torch
from PIL import Image, ImageOps
from torch import nn

SAVED = torch.load("model.pt", map_location="cpu", weights_only=True)
CLASSES, NAMES = SAVED["classes"], SAVED["names"]  # output i is CLASSES[i], a WordNet id
SIZE, RESIZE = $size, $resize  # a SIZE x SIZE crop of the image with its short side scaled to RESIZE
MEAN = torch.tensor(SAVED["stats"]["mean"]).view(3, 1, 1)  # the run's own: $mean
STD = torch.tensor(SAVED["stats"]["std"]).view(3, 1, 1)  # $std


class Net(nn.Module):
    def __init__(self):
        super().__init__()
$modules
    def forward(self, x):
        conv5 = self.features[:-1](x)  # the box head, if any, reads conv5's map before the last pool
        scores = self.classifier(torch.flatten(self.avgpool(self.features[-1](conv5)), 1))
        return scores, $box_out


model = Net().eval()
model.load_state_dict(SAVED["state_dict"])


def crop(image):
    """The centre square, as the run's evaluation cut it: (3, SIZE, SIZE) pixels in [0, 1],
    the square (left, top, side) in the upright image's pixels, its (width, height)."""
    width, height = image.size
    if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF Orientation: turned a quarter
        width, height = height, width
    scale = RESIZE / min(width, height)
    side = max(1, min(round(SIZE / scale), width, height))
    left, top = round((width - side) / 2), round((height - side) / 2)
    # a JPEG may be decoded at a reduced scale that keeps it as large as the scaled image
    image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    # the pipeline composites transparent pixels on white, and stretches 16-bit greyscale
    image = ImageOps.exif_transpose(image).convert("RGB")
    fx, fy = image.width / width, image.height / height
    box = (left * fx, top * fy, (left + side) * fx, (top + side) * fy)
    piece = image.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=box)
    pixels = torch.frombuffer(bytearray(piece.tobytes()), dtype=torch.uint8).view(SIZE, SIZE, 3)
    return pixels.permute(2, 0, 1).float() / 255, (left, top, side), (width, height)


def predict(path):
    """[(wnid, name, probability)] of the five most probable classes, and the first guess's
    box (xmin, ymin, xmax, ymax: pixels of the upright image, far edges exclusive) or None."""
    with Image.open(path) as image:
        x, (left, top, side), (width, height) = crop(image)
    with torch.no_grad():
        scores, boxes = model(((x - MEAN) / STD)[None])
    best = scores.softmax(1)[0].topk(min(5, len(CLASSES)))
    guesses = [(CLASSES[c], NAMES[c], p) for p, c in zip(best.values.tolist(), best.indices.tolist())]
    if boxes is None:
        return guesses, None
    rows = boxes.view(-1, 4)  # a box per class, or one for any class: corners as fractions of the square
    fractions = rows[best.indices[0]] if len(rows) > 1 else rows[0]
    x0, y0, x1, y1 = (round(edge + f * side) for edge, f in zip((left, top, left, top), fractions.tolist()))
    x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    return guesses, (x0, y0, max(min(x1, width), x0 + 1), max(min(y1, height), y0 + 1))


if __name__ == "__main__":
    for path in sys.argv[1:]:
        guesses, box = predict(path)
        print(path)
        for rank, (wnid, name, probability) in enumerate(guesses, 1):
            print(f"  {rank}. {wnid} {name} {probability:.1%}")
        if box is not None:
            print("  box of the first guess (xmin, ymin, xmax, ymax):", *box)
---8<---

Classes (output, WordNet id, name):
$classes
''')


def readme(model: dict) -> str:
    """``README.txt`` for a run's ``model.pt`` (``train.final_report``'s dict): what it holds,
    the input it takes, and code in torch and Pillow alone that builds the network from the
    model's own modules (their reprs are their constructors) and guesses as ``predict`` does."""
    classes, box_head = model["classes"], model["box_head"]
    with torch.device("meta"):  # the modules' shapes, no weights
        net = build(model["arch"], len(classes), box_head=box_head)
    parts = [("features", net.features), ("avgpool", net.avgpool), ("classifier", net.classifier)]
    parts += [("boxes", net.boxes)] if box_head else []
    modules = ""
    for name, module in parts:
        if isinstance(module, torch.nn.Sequential):
            body = "".join(f"            nn.{child!r},\n" for child in module)
            modules += f"        self.{name} = nn.Sequential(\n{body}        )\n"
        else:
            modules += f"        self.{name} = nn.{module!r}\n"
    if model["arch"] != "alexnet":
        torchvision = "CaffeNet (grouped convolutions, LRN) has no torchvision model: use the code below.\n"
    else:
        torchvision = (
            "The state_dict's keys are torchvision's AlexNet's, at any input size (both end in an adaptive\n"
            f"average pool): torchvision.models.alexnet(num_classes={len(classes)}) loads it with\n"
            + (
                "load_state_dict(state_dict, strict=False), all but the box head (boxes.*);"
                if box_head
                else "load_state_dict(state_dict);"
            )
            + " give it the input above.\n"
        )
    stats = model["stats"]
    return README.substitute(
        arch=model["arch"],
        count=len(classes),
        size=model["size"],
        resize=resize_for(model["size"]),
        mean=", ".join(f"{v:.4f}" for v in stats["mean"]),
        std=", ".join(f"{v:.4f}" for v in stats["std"]),
        source=stats["source"],
        box_head={
            None: "null: no box head",
            "class": "class: a box per class (boxes.*, conv5's map to four corners per class)",
            "agnostic": "agnostic: one box for any class (boxes.*, conv5's map to four corners)",
        }[box_head],
        torchvision=torchvision,
        box_doc=", and the first guess's box" if box_head else "",
        modules=modules,
        box_out="self.boxes(conv5)" if box_head else "None",
        classes="\n".join(f"{i:>5} {wnid} {name}" for i, (wnid, name) in enumerate(zip(classes, model["names"]))),
    )
