"""``python -m baseline predict``: a finished run's five best classes for any image file, and
the first guess's box where the model has a box head.

The image is cut as evaluation cuts it (``transforms.View("center")``: the short side scaled to
256/224 of the run's input size, the centre square in whole source pixels, by the same
``transforms.crop``) and normalised with the run's own mean and std, both saved in
``model.pt``. torchvision's ImageNet recipe (224 px, ImageNet's mean and std) is another input
altogether for a 64 px run on its own statistics, and gives far worse guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline import pixels
from pipeline.boxes import Box
from pipeline.errors import InputError
from pipeline.progress import progress

from .localize import TOP, class_boxes, to_pixels
from .model import AlexNet, build, outputs
from .transforms import View, box_from_crop, crop, describe, resize_for

MODEL = "model.pt"


@dataclass
class Trained:
    """A finished run's model, ready to guess: the network in eval mode and what ``model.pt``
    says of its input and outputs."""

    net: AlexNet
    classes: list[str]  # output i is classes[i], a WordNet id
    names: list[str]
    size: int  # the input crop's side
    mean: torch.Tensor  # (3, 1, 1), of [0, 1] pixels
    std: torch.Tensor
    device: torch.device

    @property
    def view(self) -> View:
        return View("center", self.size, resize_for(self.size))


@dataclass(frozen=True)
class Guess:
    wnid: str
    name: str
    probability: float


def load(run: Path, device: torch.device | None = None) -> Trained:
    """The run's ``model.pt`` (written when a run finishes) as a ``Trained``."""
    path = Path(run) / MODEL
    if not path.is_file():
        reason = "the run has not finished" if (Path(run) / "checkpoint.pt").exists() else "no run here"
        raise InputError(f"no {MODEL}: {reason} (make train)", file=path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        with torch.device("meta"):  # shapes only: the saved weights are the values
            net = build(saved["arch"], len(saved["classes"]), box_head=saved["box_head"])
        net.load_state_dict(saved["state_dict"], assign=True)
    except Exception as e:  # noqa: BLE001  any reason a file is not a run's model.pt
        first = (str(e).strip().splitlines() or [""])[0]  # torch's own messages run to a page
        raise InputError(f"not a baseline run's {MODEL} ({type(e).__name__}: {first})", file=path) from None
    device = device or torch.device("cpu")
    stats = saved["stats"]
    return Trained(
        net.to(device).eval(),
        list(saved["classes"]),
        list(saved["names"]),
        int(saved["size"]),
        torch.tensor(stats["mean"], device=device).view(3, 1, 1),
        torch.tensor(stats["std"], device=device).view(3, 1, 1),
        device,
    )


@torch.no_grad()
def predict(trained: Trained, data: bytes, source: Path | None = None) -> tuple[list[Guess], Box | None]:
    """An encoded image's best classes (up to five, most probable first) and, with a box head,
    the first guess's box in the image's pixels (our convention: ``pipeline.boxes``). Bytes
    that are no image raise an InputError naming ``source``."""
    view = trained.view
    try:
        width, height = pixels.size(data)
        cut, _ = crop(data, view, 0)
    except Exception as e:  # noqa: BLE001  whatever the decoder raises for what is no image
        raise InputError(describe(e), file=source) from None
    x = torch.from_numpy(cut).to(trained.device).permute(0, 3, 1, 2).float().div_(255)
    scores, boxes = outputs(trained.net((x - trained.mean) / trained.std))
    probabilities = scores.float().softmax(-1)[0]
    top = probabilities.topk(min(TOP, len(trained.classes)))
    guesses = [
        Guess(trained.classes[c], trained.names[c], p) for p, c in zip(top.values.tolist(), top.indices.tolist())
    ]
    if boxes is None:
        return guesses, None
    fractions = class_boxes(boxes.float(), top.indices[None, :1])[0, 0].cpu().numpy()
    square = np.asarray(view.boxes(width, height, 0)[0][0], dtype=np.float64)
    return guesses, to_pixels(box_from_crop(fractions, square, np.asarray(False)), width, height)


def read_image(path: Path) -> bytes:
    """An image file's bytes, or a one-line error naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the image: {e.strerror or e}", file=path) from None


def report(path: Path, guesses: list[Guess], box: Box | None) -> str:
    """An image's lines: its path, then each guess with its probability, the box on the first."""
    width = max(len(f"{g.wnid} {g.name}") for g in guesses)
    lines = [str(path)]
    for rank, guess in enumerate(guesses, 1):
        line = f"  {rank}. {f'{guess.wnid} {guess.name}':<{width}} {100 * guess.probability:5.1f}%"
        if rank == 1 and box is not None:
            line += f"  box (xmin, ymin, xmax, ymax) {box.xmin}, {box.ymin}, {box.xmax}, {box.ymax}"
        lines.append(line)
    return "\n".join(lines)


def predict_files(run: Path, images: list[Path], device: torch.device, out) -> None:
    """``python -m baseline predict``: each image's report to ``out``, in order, stopping at
    the first image that cannot be read."""
    trained = load(run, device)
    bar = progress(images, desc="predict", unit="img", leave=False, disable=len(images) <= 50)
    for path in bar:
        guesses, box = predict(trained, read_image(path), path)
        bar.write(report(path, guesses, box), file=out)
