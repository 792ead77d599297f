"""ILSVRC's classification error, per-class accuracy and the confusion matrix.

ILSVRC scores each image by a list of guesses: the error is 0 when the true label is among
the first k guesses, 1 otherwise; top-1 and top-5 error are the means over the images.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch


def guess_error(guesses: Sequence[Hashable], truth: Hashable, k: int = 5) -> int:
    """One image's ILSVRC error: 0 if ``truth`` is among the first ``k`` guesses, else 1."""
    return 0 if truth in list(guesses)[:k] else 1


def topk_error(guesses: Sequence[Sequence[Hashable]], truths: Sequence[Hashable], k: int = 5) -> float:
    """Mean ILSVRC error over images, each with its ranked guesses."""
    if not truths:
        return float("nan")
    return sum(guess_error(g, t, k) for g, t in zip(guesses, truths)) / len(truths)


def topk_wrong(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, torch.Tensor]:
    """Per image and k, 1 where the label is not among the k highest scores (k capped at the
    class count: with 3 classes, top-5 error is 0)."""
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return {k: (~hit[:, :k].any(1)).to(torch.int64) for k in ks}


def confusion(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """Rows: true class; columns: top-1 guess."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class(matrix: np.ndarray, wnids: Sequence[str], names: Sequence[str]) -> list[dict]:
    """Top-1 accuracy of each class and the class it is most often taken for."""
    out = []
    for c, row in enumerate(matrix):
        images = int(row.sum())
        others = row.copy()
        others[c] = -1
        worst = int(others.argmax())
        confused = (
            {"label": worst, "wnid": wnids[worst], "name": names[worst], "images": int(row[worst])}
            if images and row[worst] > 0
            else None
        )
        out.append(
            {
                "label": c,
                "wnid": wnids[c],
                "name": names[c],
                "images": images,
                "accuracy": float(row[c] / images) if images else None,
                "most_confused_with": confused,
            }
        )
    return out


def worst(classes: list[dict], n: int = 10) -> list[dict]:
    rated = [c for c in classes if c["accuracy"] is not None]
    return sorted(rated, key=lambda c: (c["accuracy"], c["label"]))[:n]
