"""Simulated crowds, for tests, benchmarks and the demo: workers whose answers depend only on
the truth and on their kind, as the aggregation models assume.

The worker model is small on purpose, for others to build on (e.g. answering whole HITs):
``Crowd.workers(rng) -> list[Worker]`` and ``Worker.answer(truth, rng) -> answers``.

Kinds: careful (tick right with probability 0.95), noisy (0.75) and spammers. A spammer
here ticks every image with probability ``spam_tick_rate`` = 0.5, whatever it shows: a
random clicker, the harder spammer for aggregation (an always-ticker shows up at once on
the negatives and in Dawid-Skene's confusion matrix; a coin flipper only in aggregate).
Set ``spam_tick_rate=1.0`` for workers who tick everything.

``BoxCrowd`` adds drawing boxes to the same workers (``BoxCrowd.draw``); they judge boxes
(good box? every instance boxed?) as they tick images.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.boxes import Box, iou_matrix

CAREFUL, NOISY, SPAMMER = "careful", "noisy", "spammer"
PER_HIT = 42  # candidates per HIT (ImageNetV2: 42 candidates + 3 positives + 3 negatives)


@dataclass(frozen=True)
class Worker:
    """One worker: P(tick) on an image that shows the synset, and on one that does not."""

    worker_id: str
    kind: str
    p_yes_given_yes: float
    p_yes_given_no: float

    def p_yes(self, truth) -> np.ndarray:
        return np.where(np.asarray(truth, bool), self.p_yes_given_yes, self.p_yes_given_no)

    def answer(self, truth, rng: np.random.Generator) -> np.ndarray:
        """Ticks (True) for images whose truth is given, each drawn independently."""
        p = self.p_yes(truth)
        return rng.random(p.shape) < p

    @property
    def accuracy(self) -> float:
        """Share of right answers on an even mix of true and wrong images."""
        return (self.p_yes_given_yes + 1 - self.p_yes_given_no) / 2


@dataclass(frozen=True)
class Crowd:
    """A pool of ``size`` workers: shares of careful, noisy and spamming workers (normalised),
    with their accuracies; ``seed`` fixes who is who."""

    careful: float = 0.7
    careful_accuracy: float = 0.95
    noisy: float = 0.2
    noisy_accuracy: float = 0.75
    spammers: float = 0.1
    spam_tick_rate: float = 0.5
    size: int = 50
    seed: int = 0

    def counts(self) -> dict[str, int]:
        """Workers of each kind: the shares of ``size``, rounded by largest remainder."""
        shares = np.array([self.careful, self.noisy, self.spammers], float)
        exact = shares / shares.sum() * self.size
        counts = np.floor(exact).astype(int)
        counts[np.argsort(counts - exact)[: self.size - counts.sum()]] += 1
        return dict(zip((CAREFUL, NOISY, SPAMMER), counts.tolist()))

    def workers(self, rng: np.random.Generator | None = None) -> list[Worker]:
        """The pool, ids ``w000``...; kinds in an order shuffled by ``rng`` (default: from
        ``seed``), so worker ids tell nothing."""
        rng = np.random.default_rng(self.seed) if rng is None else rng
        rates = {
            CAREFUL: (self.careful_accuracy, 1 - self.careful_accuracy),
            NOISY: (self.noisy_accuracy, 1 - self.noisy_accuracy),
            SPAMMER: (self.spam_tick_rate, self.spam_tick_rate),
        }
        kinds = rng.permutation([kind for kind, n in self.counts().items() for _ in range(n)])
        return [Worker(f"w{i:03d}", str(kind), *rates[kind]) for i, kind in enumerate(kinds)]


def _truth_of(items: pd.DataFrame, truth) -> np.ndarray:
    keys = pd.MultiIndex.from_frame(items[["image_id", "wnid"]])
    series = truth if isinstance(truth, pd.Series) else pd.Series(truth, dtype=object)
    if list(series.index.names) == ["wnid", "image_id"]:
        series = series.reorder_levels(["image_id", "wnid"])
    values = series.reindex(keys)
    if values.isna().any():
        raise ValueError(f"no truth for {values.isna().sum()} of the items")
    return values.to_numpy(bool)


def simulate_votes(
    items: pd.DataFrame, truth, votes_per_item=3, crowd: Crowd = Crowd(), seed: int = 0, per_hit: int = PER_HIT
) -> pd.DataFrame:
    """Votes of distinct workers, drawn uniformly from the crowd's pool, on each item.

    items: ``image_id, wnid``; truth: (image_id, wnid) -> bool (Series or dict);
    votes_per_item: an int, or one per item (array or Series in the items' order).
    Returns ``image_id, wnid, worker_id, answer, order, assignment_id, kind``: ``order`` is
    the vote's place among the item's votes (0-based), so the first n votes of a draw are
    themselves a draw with n votes (how the benchmark adds rounds); ``assignment_id``
    chunks each worker's votes on a synset, in order, into tasks of ``per_hit`` images.
    """
    workers = crowd.workers()
    wanted = np.broadcast_to(np.asarray(votes_per_item, dtype=np.intp), (len(items),))
    if len(items) and wanted.max() > len(workers):
        raise ValueError(f"{wanted.max()} votes on one item, but the crowd has {len(workers)} workers")
    truth_of_item = _truth_of(items, truth)
    rng = np.random.default_rng(seed)
    width = int(wanted.max()) if len(items) else 0
    drawn = np.argsort(rng.random((len(items), len(workers))), axis=1)[:, :width]  # distinct per item
    row, order = np.nonzero(np.arange(width) < wanted[:, None])
    worker = drawn[row, order]
    p1 = np.array([w.p_yes_given_yes for w in workers])
    p0 = np.array([w.p_yes_given_no for w in workers])
    p = np.where(truth_of_item[row], p1[worker], p0[worker])
    votes = pd.DataFrame(
        {
            "image_id": items["image_id"].to_numpy()[row],
            "wnid": items["wnid"].to_numpy()[row],
            "worker_id": np.array([w.worker_id for w in workers])[worker],
            "answer": rng.random(len(row)) < p,
            "order": order.astype(np.int32),
        }
    )
    rank = votes.sort_values(["order", "image_id"]).groupby(["wnid", "worker_id"]).cumcount()
    votes["assignment_id"] = votes["wnid"] + "-" + votes["worker_id"] + "-" + (rank // per_hit).astype(str)
    votes["kind"] = "candidate"
    return votes


def simulate_controls(
    votes: pd.DataFrame, crowd: Crowd = Crowd(), positives: int = 3, negatives: int = 3, seed: int = 0
) -> pd.DataFrame:
    """The known positives and negatives each assignment of ``votes`` also held (ImageNetV2:
    3 + 3 per 48-image HIT), answered by the assignment's worker: ``worker_id,
    assignment_id, wnid, kind, answer``. An assignment's answers depend only on its id and
    ``seed``, so they stay the same when later rounds add assignments."""
    by_id = {w.worker_id: w for w in crowd.workers()}
    tasks = votes[["worker_id", "assignment_id", "wnid"]].drop_duplicates().sort_values("assignment_id")
    truth = np.repeat([True, False], [positives, negatives])
    answers = [
        by_id[w].answer(truth, np.random.default_rng([seed, zlib.crc32(a.encode())]))
        for w, a in zip(tasks["worker_id"], tasks["assignment_id"])
    ]
    controls = tasks.loc[tasks.index.repeat(len(truth))].reset_index(drop=True)
    controls["kind"] = np.tile(np.where(truth, "positive", "negative"), len(tasks))
    controls["answer"] = np.concatenate(answers) if answers else np.array([], bool)
    return controls


# Boxes (Su, Deng and Fei-Fei's draw, quality and coverage tasks): the same pool of workers,
# who draw as carefully as they judge. Judging is ``Worker.answer`` on the task's truth.
GOOD_IOU = 0.7  # a good box of an instance (the usual standard for a box one would accept)
COVER_IOU = 0.5  # a shown box covers an instance (ILSVRC's localisation threshold)


@dataclass(frozen=True)
class BoxCrowd(Crowd):
    """A ``Crowd`` that also draws boxes. A careful or noisy (sloppy) drawer picks, at random,
    a true instance that no shown box covers and boxes it, each edge off by a gaussian error
    of ``*_edge`` times the box's side; with none left it draws nothing. A sloppy drawer boxes
    an instance already shown instead with probability ``noisy_redraw``. A spammer draws a
    random box anywhere, whatever the image shows."""

    careful_edge: float = 0.025
    noisy_edge: float = 0.10
    noisy_redraw: float = 0.15

    def draw(self, worker: Worker, truth, shown, width: int, height: int, rng: np.random.Generator):
        """The box ``worker`` draws on a ``width`` x ``height`` image whose true boxes are
        ``truth`` (n x 4) where ``shown`` (m x 4) are shown, or None for "nothing left"."""
        if worker.kind == SPAMMER:
            xmin, xmax = np.sort(rng.choice(width + 1, 2, replace=False))
            ymin, ymax = np.sort(rng.choice(height + 1, 2, replace=False))
            return Box(int(xmin), int(ymin), int(xmax), int(ymax))
        truth = np.asarray(truth, float).reshape(-1, 4)
        done = covered(truth, shown)
        redraw = worker.kind == NOISY and done.any() and rng.random() < self.noisy_redraw
        pool = truth[done if redraw else ~done]
        if not len(pool):
            return None
        box = pool[rng.integers(len(pool))]
        sides = np.array([box[2] - box[0], box[3] - box[1]] * 2)
        edge = self.careful_edge if worker.kind == CAREFUL else self.noisy_edge
        xmin, ymin, xmax, ymax = np.rint(box + rng.normal(0, edge, 4) * sides).astype(int)
        xmin, ymin = min(max(xmin, 0), width - 1), min(max(ymin, 0), height - 1)
        return Box(int(xmin), int(ymin), int(min(max(xmax, xmin + 1), width)), int(min(max(ymax, ymin + 1), height)))


def covered(truth, shown) -> np.ndarray:
    """Which true boxes (n x 4) some shown box covers at IoU >= ``COVER_IOU``."""
    truth = np.asarray(truth, float).reshape(-1, 4)
    shown = np.asarray(shown, float).reshape(-1, 4)
    if not len(truth) or not len(shown):
        return np.zeros(len(truth), bool)
    return iou_matrix(truth, shown).max(axis=1) >= COVER_IOU


def good_box(box, truth) -> bool:
    """Whether ``box`` is a good box of one true instance: IoU >= ``GOOD_IOU`` with one of ``truth``."""
    truth = np.asarray(truth, float).reshape(-1, 4)
    return bool(len(truth)) and bool(iou_matrix([box], truth).max() >= GOOD_IOU)
