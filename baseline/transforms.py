"""From encoded image to AlexNet's crops: the crop geometry, and its two decoders.

A ``View`` places a sample's crops (AlexNet's: scale the short side to 256, cut 224; a random
crop and flip and a colour-lighting draw when training, the centre or the four corners and
centre for evaluation). Every random choice comes from a generator seeded by (seed, epoch,
sample index): the same crops in every run, whatever the number of workers, and after a
resume. Crops are placed in whole source pixels, so that the two decoders cut the same
squares: Pillow in DataLoader workers (``crop``), or nvJPEG on the GPU with the crops cut
and scaled there (``decode_batch``). Both see the image every stage sees
(``pipeline.pixels.decode``: upright, 8-bit RGB, within the pixel limit): nvJPEG is given only
JPEGs that are upright as stored; the rest go through Pillow. The transforms after decoding
are torch's alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from pipeline import pixels
from pipeline.errors import PipelineError

LIGHTING_STD = 0.1  # AlexNet's colour lighting: alphas ~ N(0, 0.1) along the RGB principal components


@dataclass(frozen=True)
class View:
    """How a sample becomes pixels: ``train`` (random crop, flip, lighting alpha), ``center``
    or ``tencrop`` (four corners and centre; the flips are made on the batch)."""

    mode: str
    size: int  # crop side
    resize: int  # short side the image is scaled to before cropping
    seed: int = 0
    epoch: int = 0
    lighting: bool = True

    @property
    def crops(self) -> int:
        """Crops a sample yields (before the batch adds the flips of ``tencrop``)."""
        return 5 if self.mode == "tencrop" else 1

    def boxes(self, width: int, height: int, index: int) -> tuple[list[tuple[int, int, int, int]], bool, np.ndarray]:
        """Crop boxes in whole source pixels (what scaling the image to ``resize`` and cutting
        ``size`` would take), whether to flip, and the lighting alphas. Whole pixels let the
        GPU path cut exactly the same squares as Pillow."""
        scale = self.resize / min(width, height)
        side = max(1, min(round(self.size / scale), width, height))  # the crop's side in source pixels
        free_x, free_y = width - side, height - side
        if self.mode == "train":
            rng = np.random.default_rng((self.seed, self.epoch, index))
            # a position on the scaled image's pixel grid, as AlexNet's crops were
            x = rng.integers(0, int(free_x * scale) + 1) / scale
            y = rng.integers(0, int(free_y * scale) + 1) / scale
            flip = bool(rng.integers(0, 2))
            alpha = rng.normal(0, LIGHTING_STD, 3).astype(np.float32) if self.lighting else np.zeros(3, np.float32)
            corners = [(x, y)]
        else:
            flip, alpha = False, np.zeros(3, np.float32)
            centre = (free_x / 2, free_y / 2)
            corners = (
                [centre] if self.mode == "center" else [(0, 0), (free_x, 0), (0, free_y), (free_x, free_y), centre]
            )
        boxes = []
        for x, y in corners:
            left, top = min(round(x), free_x), min(round(y), free_y)
            boxes.append((left, top, left + side, top + side))
        return boxes, flip, alpha


def placements(view: View, sizes: np.ndarray, indices) -> tuple[np.ndarray, np.ndarray]:
    """Where ``view`` cut each sample's crops (the same ``View.boxes`` the decoders used, from the
    stored sizes (n, 2) and the split indices): crop boxes (n, k, 4) in source pixels, and flips (n,)."""
    placed = [view.boxes(int(sizes[i, 0]), int(sizes[i, 1]), int(i)) for i in indices]
    crops = np.asarray([p[0] for p in placed], dtype=np.float64).reshape(len(placed), view.crops, 4)
    return crops, np.asarray([p[1] for p in placed], dtype=bool)


def box_to_crop(boxes: np.ndarray, crops: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Boxes of the source image (our convention, (..., 4)) as the crop ``crops`` (..., 4), source
    pixels) shows them: corners as fractions of the crop's sides, 0 and 1 its edges, mirrored
    where the crop was flipped. The crop's scaling to the input size leaves fractions as they
    are. Not clipped to the crop: an object larger than the crop goes on past 0 or 1, which is
    what the network must say of it to give the whole box back."""
    width, height = crops[..., 2] - crops[..., 0], crops[..., 3] - crops[..., 1]
    left = (boxes[..., 0] - crops[..., 0]) / width
    right = (boxes[..., 2] - crops[..., 0]) / width
    top = (boxes[..., 1] - crops[..., 1]) / height
    bottom = (boxes[..., 3] - crops[..., 1]) / height
    left, right = np.where(flips, 1 - right, left), np.where(flips, 1 - left, right)
    return np.stack([left, top, right, bottom], -1)


def box_from_crop(fractions: np.ndarray, crops: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """``box_to_crop`` undone: fractions of a (flipped) crop as source-image pixels (floats)."""
    left, top, right, bottom = (fractions[..., j] for j in range(4))
    left, right = np.where(flips, 1 - right, left), np.where(flips, 1 - left, right)
    width, height = crops[..., 2] - crops[..., 0], crops[..., 3] - crops[..., 1]
    return np.stack(
        [
            crops[..., 0] + left * width,
            crops[..., 1] + top * height,
            crops[..., 0] + right * width,
            crops[..., 1] + bottom * height,
        ],
        -1,
    )


def in_crop(fractions: np.ndarray) -> np.ndarray:
    """Whether a box in crop fractions (``box_to_crop``) shows in the crop at all."""
    return (np.minimum(fractions[..., 2], 1) > np.maximum(fractions[..., 0], 0)) & (
        np.minimum(fractions[..., 3], 1) > np.maximum(fractions[..., 1], 0)
    )


def resize_for(size: int) -> int:
    """AlexNet scales to 256 and crops 224: keep that ratio at any crop size."""
    return round(size * 256 / 224)


def open_image(data: bytes) -> Image.Image:
    """The image as the GPU path's worker needs it, to place the crops and choose the decoder:
    its header (nothing decoded) where it is upright as stored; where its EXIF orientation turns
    it, its upright pixels (``pixels.decode``), whose size is the upright size and whose format,
    None, sends it to Pillow (nvJPEG would not turn it). Raises for what is no image at all, or
    one over the pixel limit."""
    image = pixels.open_bytes(data)
    return image if pixels.orientation(image) == 1 else pixels.decode(data)


def describe(error: Exception) -> str:
    """A decoder's failure as the row's problem, for the error naming the row."""
    kind, text = type(error).__name__, str(error) or type(error).__name__
    return f"unreadable image ({kind}: {text})" if kind not in text else f"unreadable image ({text})"


# --------------------------------------------------------------------------- Pillow, in DataLoader workers


def crop(data: bytes, view: View, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode with Pillow by the pipeline's rule (reduced-size JPEG decoding when the crop
    allows) and cut the view's crops: uint8 (k, size, size, 3), and the lighting alphas."""
    width, height = pixels.size(data)
    boxes, flip, alpha = view.boxes(width, height, index)
    scale = view.resize / min(width, height)
    image = pixels.decode(data, at_least=(math.ceil(width * scale), math.ceil(height * scale)))
    fx, fy = image.size[0] / width, image.size[1] / height
    out = np.empty((len(boxes), view.size, view.size, 3), dtype=np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        piece = image.resize((view.size, view.size), Image.BILINEAR, box=(x0 * fx, y0 * fy, x1 * fx, y1 * fy))
        if flip:
            piece = piece.transpose(Image.FLIP_LEFT_RIGHT)
        out[k] = np.asarray(piece)
    return out, alpha


# --------------------------------------------------------------------------- nvJPEG, on the GPU


def gpu_decoder():
    """torchvision's batched nvJPEG decoder, or None when torchvision (or CUDA) is missing."""
    if not torch.cuda.is_available():
        return None
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None

    def decode(blobs: list[torch.Tensor], device) -> list[torch.Tensor]:
        return decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)

    return decode


def decoder(choice: str, device: torch.device):
    """The batch decoder for ``--decode`` (auto, cpu, gpu): nvJPEG on a GPU, or None for
    Pillow in the DataLoader workers."""
    decode = gpu_decoder() if device.type == "cuda" and choice in ("auto", "gpu") else None
    if choice == "gpu" and decode is None:
        raise PipelineError("--decode gpu needs CUDA and torchvision")
    return decode


def pillow_decoder(blobs: list[torch.Tensor], device) -> list[torch.Tensor]:
    """Whole images as CHW uint8 tensors (``pixels.decode``): the fallback for what nvJPEG
    refuses (PNG, CMYK) or would not turn upright."""
    out = []
    for blob in blobs:
        image = pixels.decode(blob.numpy().tobytes())
        out.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).to(device))
    return out


def crops_on_device(images: list[torch.Tensor], boxes: torch.Tensor, flips: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each image's boxes and scale them to size x size (antialiased bilinear): uint8 (B, k, 3, S, S)."""
    out = torch.empty((len(images), boxes.shape[1], 3, size, size), dtype=torch.uint8, device=images[0].device)
    for b, image in enumerate(images):
        for k, (left, top, right, bottom) in enumerate(boxes[b].round().long().tolist()):
            piece = image[None, :, top:bottom, left:right].float()
            piece = torch.nn.functional.interpolate(
                piece, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            piece = piece.round_().clamp_(0, 255).to(torch.uint8)[0]
            out[b, k] = piece.flip(-1) if flips[b] else piece
    return out


def decode_batch(blobs, boxes, flips, errors, size: int, device, decode) -> tuple[torch.Tensor, list[str]]:
    """The GPU path of a batch: nvJPEG for the JPEGs, Pillow for the rest (and for any JPEG the
    batched decoder refuses); errors updated for the images nothing could decode. An error
    "cpu" marks an image the worker saw needs Pillow."""
    images: list[torch.Tensor | None] = [None] * len(blobs)
    errors = list(errors)
    jpeg = [b for b, e in enumerate(errors) if e == ""]
    if jpeg:
        try:
            for b, image in zip(jpeg, decode([blobs[b] for b in jpeg], device)):
                images[b] = image
        except RuntimeError:
            pass  # one bad JPEG fails the batch: fall back to one at a time below
    for b, error in enumerate(errors):
        if images[b] is not None or (error and error != "cpu"):
            continue
        try:
            images[b] = decode([blobs[b]], device)[0] if error == "" else pillow_decoder([blobs[b]], device)[0]
        except Exception:  # noqa: BLE001
            try:
                images[b] = pillow_decoder([blobs[b]], device)[0]
            except Exception as e:  # noqa: BLE001
                errors[b] = describe(e)
        if errors[b] == "cpu":
            errors[b] = ""
    blank = torch.zeros((3, 2, 2), dtype=torch.uint8, device=device)
    return crops_on_device([i if i is not None else blank for i in images], boxes, flips, size), errors
