"""AlexNet and CaffeNet in a page, and the per-layer summary that checks them.

``alexnet`` is the one-GPU AlexNet of torchvision (Krizhevsky's "one weird trick" variant: 64,
192, 384, 256, 256 filters, no grouping, no local response normalisation) with the same
module layout, so ``features.0.weight`` ... ``classifier.6.bias`` load into torchvision's model
and back: 61,100,840 parameters for 1000 classes. ``caffenet`` is the BVLC reference network:
96, 256, 384, 384, 256 filters, grouped conv2/4/5 as on the paper's two GPUs, pooling then
local response normalisation, 227 inputs: 60,965,224 parameters.

Both end in an adaptive average pool to 6x6, which is the identity at 224 (227) and lets
smaller inputs (64 px Tiny ImageNet, a quick demo run) through the same classifier.

For a dataset with object boxes a box head sits beside the classifier, as the ILSVRC 2012-13
localization entries regressed boxes from a classification net's feature maps (Sermanet et
al., OverFeat, 2014: a regressor of two fully connected layers on the last convolutional
layer's map): conv5's map, before the last max pool, averaged to 6x6 cells as pool5 is for
the classifier (the map is 3x3 at 64 px, 7x7 at 128, 13x13 at 224), then 1024 units and four
numbers per class (class-specific) or four in all (class-agnostic), the box's corners as
fractions of the input crop. The model then returns (class scores, boxes). Not fc7: pool5 is
a single cell at 64 px and keeps no layout, and on Tiny ImageNet a head on fc7 stayed near the
mean box (see docs/stages/baseline.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("alexnet", "caffenet")
BOX_GRID, BOX_HIDDEN = (
    6,
    1024,
)  # the box head: conv5's map averaged to 6x6 cells (as pool5: one fold serves both), then 1024 units
NATIVE_SIZE = {"alexnet": 224, "caffenet": 227}


class AlexNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        dropout: float = 0.5,
        lrn: bool = False,
        widths: tuple[int, ...] = (64, 192, 384, 256, 256),
        groups: tuple[int, ...] = (1, 1, 1, 1, 1),
        conv1_padding: int = 2,
        box_outputs: int = 0,
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        g1, g2, g3, g4, g5 = groups
        # CaffeNet pools before it normalises (bvlc_alexnet normalises first).
        norm = (lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)) if lrn else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=conv1_padding, groups=g1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=g2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1, groups=g3),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=g4),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=g5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        if lrn:  # after pool1 and pool2, as in the BVLC reference CaffeNet
            self.features.insert(3, norm())
            self.features.insert(7, norm())
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        self.boxes = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d((BOX_GRID, BOX_GRID)),
                nn.Flatten(),
                nn.Linear(c5 * BOX_GRID * BOX_GRID, BOX_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Linear(BOX_HIDDEN, box_outputs),
            )
            if box_outputs
            else None
        )
        if not self.classifier[1].weight.is_meta:  # a model built for its shapes alone needs no values
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation for the convolutions (fan-out, as torchvision's VGG and ResNet),
        N(0, 0.01) for the fully connected layers, zero biases: AlexNet's own N(0, 0.01) and
        unit biases everywhere barely start learning without its hand-tuned schedule."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if self.boxes is not None:
            # He for the hidden layer and a zero last layer that starts at the whole crop,
            # (0, 0, 1, 1), for every class: with N(0, 0.01) for both, the hidden units were a
            # tenth of conv5's size and the boxes barely moved in an epoch
            hidden, last = self.boxes[2], self.boxes[-1]
            nn.init.kaiming_normal_(hidden.weight, nonlinearity="relu")
            nn.init.zeros_(last.weight)
            with torch.no_grad():
                last.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(last.out_features // 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        conv5 = self.features[:-1](x)
        x = self.features[-1](conv5)  # pool5
        x = self._pooled_linear(x, self.avgpool, self.classifier[1], self.classifier[0])  # fc6
        x = self.classifier[2:6](x)  # fc7's features
        scores = self.classifier[6](x)
        if self.boxes is None:
            return scores
        return scores, self.boxes[3:](self._pooled_linear(conv5, self.boxes[0], self.boxes[2]))

    def _pooled_linear(
        self, x: torch.Tensor, pool: nn.AdaptiveAvgPool2d, linear: nn.Linear, dropout: nn.Module | None = None
    ) -> torch.Tensor:
        """``linear`` on the flattened 6x6 ``pool`` of ``x`` (after ``dropout``). A map smaller
        than 6x6 (pool5 below the native input size, conv5 below 112 px) is only copied and
        averaged by the pool: that linear map is folded into the layer's weights once per batch
        instead of being multiplied out per image. Evaluation gives the same outputs as pooling
        then the layer (with fc6 a 64 px batch runs about twice as fast on a CPU; the box head,
        whose batch of 64 is small beside its weights, gains about a tenth); in training a dropout
        drops the map's units rather than each of their copies."""
        dropout = dropout or nn.Identity()
        b, c, h, w = x.shape
        if h * w >= 36 or not (self.training or b >= h * w):
            return linear(dropout(torch.flatten(pool(x), 1)))
        cells = _pool_matrix(h, w, x.device)  # (h*w, 36)
        weight = (linear.weight.view(linear.out_features, c, 36) @ cells.T.to(linear.weight.dtype)).flatten(1)
        return F.linear(dropout(x.flatten(1)), weight, linear.bias)


@functools.lru_cache(maxsize=16)
def _pool_matrix(h: int, w: int, device: torch.device) -> torch.Tensor:
    basis = torch.eye(h * w, device=device).view(h * w, 1, h, w)
    return F.adaptive_avg_pool2d(basis, (6, 6)).view(h * w, 36)


def alexnet(num_classes: int = 1000, dropout: float = 0.5, box_outputs: int = 0) -> AlexNet:
    """torchvision's AlexNet: same layers, shapes and parameter names (and ``boxes.*`` with a box head)."""
    return AlexNet(num_classes, dropout, box_outputs=box_outputs)


def caffenet(num_classes: int = 1000, dropout: float = 0.5, box_outputs: int = 0) -> AlexNet:
    """The BVLC reference CaffeNet (bvlc_reference_caffenet): LRN, groups of 2, 227 inputs."""
    return AlexNet(
        num_classes,
        dropout,
        lrn=True,
        widths=(96, 256, 384, 384, 256),
        groups=(1, 2, 1, 2, 2),
        conv1_padding=0,
        box_outputs=box_outputs,
    )


BOX_HEADS = ("class", "agnostic")  # four box numbers per class, or four in all


def box_outputs(head: str | None, num_classes: int) -> int:
    """The box head's outputs: 4 per class (``class``), 4 (``agnostic``), none (None)."""
    return {None: 0, "class": 4 * num_classes, "agnostic": 4}[head]


def build(arch: str, num_classes: int, dropout: float = 0.5, box_head: str | None = None) -> AlexNet:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}: {', '.join(ARCHS)}")
    return {"alexnet": alexnet, "caffenet": caffenet}[arch](num_classes, dropout, box_outputs(box_head, num_classes))


def outputs(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(class scores, boxes or None) from a model's output, with or without a box head."""
    return out if isinstance(out, tuple) else (out, None)


@functools.cache
def smallest_input(arch: str) -> int:
    """The smallest input side that leaves pool5 at least 1x1 (63 for AlexNet, 67 for CaffeNet)."""
    with torch.device("meta"):
        features = build(arch, 1).features
    for size in range(16, 512):
        try:
            features(torch.empty(1, 3, size, size, device="meta"))
            return size
        except RuntimeError:
            continue
    raise ValueError(arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class Layer:
    name: str  # state_dict prefix, e.g. features.0
    kind: str  # conv1, pool1, norm1, relu, fc6...
    shape: tuple  # output shape for one image (C, H, W) or (N,)
    params: int
    receptive_field: int | None  # pixels of the input one output unit sees (None: the whole image)
    stride: int | None  # input pixels between neighbouring output units
    macs: int  # multiply-adds for one image


def summary(arch: str = "alexnet", num_classes: int = 1000, size: int | None = None) -> list[Layer]:
    """Per layer: output shape, parameters, theoretical receptive field and stride, multiply-adds
    for one ``size`` x ``size`` image. Built on the meta device: no weights are allocated."""
    size = size or NATIVE_SIZE[arch]
    with torch.device("meta"):
        model = build(arch, num_classes)
    layers: list[Layer] = []
    rf, jump = 1, 1
    counts = {"conv": 0, "pool": 0, "norm": 0}
    shape = (3, size, size)

    def add(name: str, module: nn.Module, kind: str, out: tuple, macs: int, field: bool = True) -> None:
        layers.append(
            Layer(
                name,
                kind,
                out,
                sum(p.numel() for p in module.parameters(recurse=False)),
                rf if field else None,
                jump if field else None,
                macs,
            )
        )

    x = torch.empty(1, *shape, device="meta")
    for index, module in enumerate(model.features):
        x = module(x)
        out = tuple(x.shape[1:])
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k, s = _pair(module.kernel_size), _pair(module.stride)
            rf, jump = rf + (k - 1) * jump, jump * s
        if isinstance(module, nn.Conv2d):
            counts["conv"] += 1
            macs = math.prod(out) * (module.in_channels // module.groups) * _pair(module.kernel_size) ** 2
            add(f"features.{index}", module, f"conv{counts['conv']}", out, macs)
        elif isinstance(module, nn.MaxPool2d):
            counts["pool"] += 1
            add(f"features.{index}", module, f"pool{counts['conv']}", out, 0)
        elif isinstance(module, nn.LocalResponseNorm):
            counts["norm"] += 1
            add(f"features.{index}", module, f"norm{counts['conv']}", out, 0)
    before = tuple(x.shape[2:])
    x = model.avgpool(x)
    if tuple(x.shape[2:]) != before:  # not the identity: an input smaller or larger than native
        if before[0] >= 6:
            k = math.ceil(before[0] / 6)
            rf, jump = rf + (k - 1) * jump, jump * (before[0] // 6)
        add("avgpool", model.avgpool, "avgpool", tuple(x.shape[1:]), 0)
    x = torch.flatten(x, 1)
    fc = 5
    for index, module in enumerate(model.classifier):
        x = module(x)
        if isinstance(module, nn.Linear):
            fc += 1
            add(
                f"classifier.{index}",
                module,
                f"fc{fc}",
                tuple(x.shape[1:]),
                module.in_features * module.out_features,
                field=False,
            )
    return layers


def _pair(value) -> int:
    if isinstance(value, tuple):
        if value[0] != value[1]:
            raise ValueError(f"square kernels only: {value}")
        return value[0]
    return value


def format_summary(arch: str, layers: list[Layer], size: int) -> str:
    header = f"{'layer':<8} {'module':<14} {'output':<16} {'params':>12} {'rf':>5} {'stride':>6} {'MACs':>14}"
    lines = [f"{arch}, {size}x{size} input", header, "-" * len(header)]
    for layer in layers:
        shape = "x".join(map(str, layer.shape))
        rf = "-" if layer.receptive_field is None else str(layer.receptive_field)
        stride = "-" if layer.stride is None else str(layer.stride)
        lines.append(
            f"{layer.kind:<8} {layer.name:<14} {shape:<16} {layer.params:>12,} {rf:>5} {stride:>6} {layer.macs:>14,}"
        )
    lines.append("-" * len(header))
    total_params = sum(layer.params for layer in layers)
    total_macs = sum(layer.macs for layer in layers)
    lines.append(f"{'total':<8} {'':<14} {'':<16} {total_params:>12,} {'':>5} {'':>6} {total_macs:>14,}")
    lines.append(f"{total_params:,} parameters, {total_macs / 1e9:.3f} G multiply-adds per image")
    return "\n".join(lines)
