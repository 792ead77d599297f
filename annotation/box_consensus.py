"""Crowd boxes to verified boxes: Su, Deng and Fei-Fei's draw, quality and coverage loop
("Crowdsourcing annotations for visual object detection", HCOMP 2012 workshop).

Drawers each box one instance not yet boxed; their boxes of one instance are merged into a
candidate; judges say whether a candidate is a good box of one instance (quality); once an
image's candidates are all judged, judges say whether every instance is boxed (coverage), and
an image that is not complete goes back to the drawers. Every function here takes DataFrames
and returns DataFrames; ``annotation.answers_import`` reads and writes the tables.

The yes/no answers go through the classification's own code: ``aggregate.worker_quality``
scores workers on the gold tasks (a draw gold answer is right when one of its boxes hits the
hidden box at IoU >= 0.5), excluding one only on ``MIN_GOLD_ANSWERS`` of them, and
``aggregate.majority`` (or ``dawid_skene``) decides each box and each image's coverage.
Majority is the default: a box gets 5 votes, too few to fit dynamic consensus's table (it needs
an initial subset with 10 votes per item). A tie, which excluded workers leave (2 yes of 4), is
asked again rather than settled either way. A box its judges have judged stays a candidate
when its drawers are excluded later: the judges' verdict is the check on the drawers, and an
image judged complete would otherwise lose a box without being asked about again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage

from pipeline.boxes import COLUMNS, iou_matrix

from . import aggregate
from .tasks import CANDIDATE, POSITIVE

DRAW, QUALITY, COVERAGE = "draw", "quality", "coverage"
MATCH_IOU = 0.5  # the same instance (ILSVRC's localisation threshold)
SAME_BOX_IOU = 0.9  # the same box, merged again from slightly other draws
METHODS = ("majority", "dawid_skene")
# Gold answers a worker must have before being excluded: a careful worker (right 95% of the
# time) fails 2 of 2 once in 400, 2 of 5 (accuracy 0.6 < 0.7) once in 45; a spammer (50%)
# fails 2 of 5 or worse 81% of the time, and gets more gold answers as the rounds go on.
MIN_GOLD_ANSWERS = 5
# Share of coverage yes votes that makes an image complete (majority): 4 of 5. A wrong
# "complete" loses an instance for good, a wrong "incomplete" costs one more draw, whose
# drawers then find nothing left. With a fifth of the judges sloppy (wrong 25% of the time,
# careful ones 5%) 3 wrong of 5 happen about once in 150 verdicts, 4 of 5 once in 3,000.
COMPLETE_SHARE = 0.8
ACCEPTED, REJECTED, UNDECIDED = "accepted", "rejected", "undecided"
COMPLETE, INCOMPLETE, UNASKED, NOTHING_LEFT, IMPORTED = "complete", "incomplete", "unasked", "nothing_left", "imported"
COVERED = (COMPLETE, NOTHING_LEFT, IMPORTED)
CANDIDATE_COLUMNS = ["box_id", "round", "image_id", "wnid", *COLUMNS, "drawn_by", "members"]


def box_id(round_: int, image_id: str, assignments) -> str:
    """A candidate's id: its image, round and the assignments whose boxes it merges, so the
    same draws give the same id at every import (and its quality votes find it again)."""
    digest = hashlib.sha256("\n".join(sorted(map(str, assignments))).encode()).hexdigest()[:12]
    return f"b{round_}-{image_id}-{digest}"


def draw_round(box: str) -> int:
    """The draw round a ``box_id`` names."""
    return int(box[1 : box.index("-")])


def clusters(boxes: np.ndarray, threshold: float = MATCH_IOU) -> np.ndarray:
    """Cluster number of each box (n x 4): complete linkage on 1 - IoU, cut so that every two
    boxes of a cluster overlap at IoU >= ``threshold``. Single linkage would chain two
    overlapping instances into one through a box drawn between them; complete linkage cannot."""
    if len(boxes) < 2:
        return np.zeros(len(boxes), int)
    distance = 1.0 - iou_matrix(boxes, boxes)
    condensed = distance[np.triu_indices(len(boxes), k=1)]
    return fcluster(linkage(condensed, method="complete"), t=1.0 - threshold, criterion="distance")


def merge_draws(draws: pd.DataFrame) -> pd.DataFrame:
    """Candidate boxes from drawn boxes (``round, image_id, wnid, assignment_id``, the box edges
    and optionally ``counted``; rows without a box left out by the caller): per image and
    round, each cluster's per-coordinate median, rounded to whole pixels. ``members`` lists its
    assignments. Every draw shapes the clusters and names them, so excluding a worker later
    does not rename a box its judges already judged; only the ``counted`` ones (all, without
    the column) make the median and ``drawn_by``, and a cluster of none is no candidate."""
    rows = []
    for (round_, image_id, wnid), group in draws.groupby(["round", "image_id", "wnid"], sort=True):
        boxes = group[list(COLUMNS)].to_numpy(float)
        counted = group["counted"].to_numpy(bool) if "counted" in group.columns else np.ones(len(group), bool)
        labels = clusters(boxes)
        for label in np.unique(labels):
            inside = labels == label
            if not (inside & counted).any():
                continue
            members = sorted(group.assignment_id.to_numpy()[inside])
            median = np.floor(np.median(boxes[inside & counted], axis=0) + 0.5).astype(int)
            name = box_id(round_, image_id, members)
            rows.append((name, int(round_), image_id, wnid, *median.tolist(), int((inside & counted).sum()), members))
    candidates = pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)
    return candidates.sort_values(["image_id", "round", "drawn_by", "box_id"], ascending=[True, True, False, True])


def repeats(candidates: pd.DataFrame, known: pd.DataFrame, shadows: np.ndarray | None = None) -> np.ndarray:
    """For each candidate, whether it boxes an instance ``known`` (image_id and edges) boxes
    already, or one a candidate of more drawers before it in ``candidates`` boxes: IoU >= 0.5
    on the same image. Only the candidates ``shadows`` marks (all without it) hide later ones:
    a box of an instance that hides behind a rejected one would never be asked about."""
    out = np.zeros(len(candidates), bool)
    shadows = np.ones(len(candidates), bool) if shadows is None else np.asarray(shadows, bool)
    known_by_image = {i: g[list(COLUMNS)].to_numpy(float) for i, g in known.groupby("image_id")}
    for image_id, group in candidates.groupby("image_id", sort=False):
        seen = known_by_image.get(image_id, np.empty((0, 4)))
        for row, box in zip(group.index, group[list(COLUMNS)].to_numpy(float)):
            at = candidates.index.get_loc(row)
            if len(seen) and iou_matrix([box], seen).max() >= MATCH_IOU:
                out[at] = True
            elif shadows[at]:
                seen = np.vstack([seen, box])
    return out


def decide(votes: pd.DataFrame, method: str) -> pd.DataFrame:
    """Yes/no votes on items (``item, wnid, worker_id, answer``) through the classification's
    aggregators: ``item, accepted, decided, votes_yes, votes_total``. A majority tie (votes of
    excluded workers left out, 1 of 2) is undecided: the next round asks again."""
    if method not in METHODS:
        raise ValueError(f"box method {method!r}: choose from {', '.join(METHODS)}")
    if votes.empty:
        return pd.DataFrame(columns=["item", "accepted", "decided", "votes_yes", "votes_total"])
    labels = getattr(aggregate, method)(votes.rename(columns={"item": "image_id"}))
    labels = labels.rename(columns={"image_id": "item"})
    if method == "majority":
        labels["decided"] &= labels.votes_yes * 2 != labels.votes_total
    return labels[["item", "accepted", "decided", "votes_yes", "votes_total"]]


def gold_answers(draws: pd.DataFrame, votes: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Every answer to a gold task as a control vote (``worker_id, assignment_id, kind,
    answer``: answer is what the worker said, kind what is right) for ``worker_quality``. A
    draw gold answer says yes when one of its boxes hits the hidden box at IoU >= 0.5."""
    parts = [votes.loc[votes.kind != CANDIDATE, ["worker_id", "assignment_id", "kind", "answer"]]]
    gold = draws[draws.kind != CANDIDATE]
    if len(gold):
        hidden = tasks.set_index("task_id").loc[gold.task_id, list(COLUMNS)].to_numpy(float)
        drawn = gold[list(COLUMNS)].to_numpy(float)
        has_box = ~np.isnan(drawn).any(axis=1)
        ious = np.zeros(len(gold))
        for i in np.flatnonzero(has_box):
            ious[i] = iou_matrix([drawn[i]], [hidden[i]])[0, 0]
        hit = pd.Series(ious >= MATCH_IOU, index=gold.index).groupby(gold.assignment_id).any()
        first = gold.drop_duplicates("assignment_id").set_index("assignment_id")
        parts.append(
            pd.DataFrame(
                {
                    "worker_id": first.loc[hit.index, "worker_id"].to_numpy(),
                    "assignment_id": hit.index,
                    "kind": POSITIVE,
                }
            ).assign(answer=hit.to_numpy(bool))
        )
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Settings:
    method: str = "majority"
    min_worker_accuracy: float = aggregate.MIN_WORKER_ACCURACY
    min_gold_answers: int = MIN_GOLD_ANSWERS


@dataclass(frozen=True)
class Outcome:
    workers: pd.DataFrame  # schemas.WORKERS
    candidates: pd.DataFrame  # schemas.BOX_CANDIDATES
    boxes: pd.DataFrame  # schemas.BOXES: the imported boxes and the accepted candidates
    images: pd.DataFrame  # schemas.BOX_IMAGES


def consensus(
    tasks: pd.DataFrame, draws: pd.DataFrame, votes: pd.DataFrame, imported: pd.DataFrame, settings: Settings
) -> Outcome:
    """Everything the box loop knows, recomputed from every answer so far.

    tasks: every exported box task (schemas.BOX_TASKS); draws and votes: every answer
    (schemas.BOX_DRAWS, BOX_VOTES); imported: boxes a dataset came with (schemas.BOXES rows of
    source imported), which count as accepted and leave their images complete."""
    workers = aggregate.worker_quality(
        gold_answers(draws, votes, tasks),
        settings.min_worker_accuracy,
        all_votes=pd.concat([draws[["worker_id", "assignment_id"]], votes[["worker_id", "assignment_id"]]]),
        min_answers=settings.min_gold_answers,
    )
    excluded = set(workers.worker_id[workers.excluded])
    drawn = draws[draws.kind == CANDIDATE].assign(counted=lambda d: ~d.worker_id.isin(excluded))
    draws = drawn[drawn.counted]
    votes = aggregate.drop_excluded(votes[votes.kind == CANDIDATE], workers)
    sizes = tasks.drop_duplicates("image_id").set_index("image_id")[["width", "height"]]
    asked = tasks[(tasks.task == QUALITY) & (tasks.kind == CANDIDATE)][["box_id", "image_id", *COLUMNS]]
    candidates = _judged_candidates(drawn, votes[votes.task == QUALITY], asked, imported, settings.method)
    candidates[["width", "height"]] = sizes.loc[candidates.image_id].to_numpy()
    accepted = candidates[candidates.status == ACCEPTED]
    crowd = accepted.assign(approved_by=accepted.votes_yes, source="crowd")
    boxes = pd.concat([imported, crowd], ignore_index=True)[_BOX_NAMES]
    images = _images(tasks, draws, votes[votes.task == COVERAGE], candidates, imported, settings.method)
    return Outcome(workers, candidates.drop(columns="members"), boxes.sort_values(["image_id", "box_id"]), images)


_BOX_NAMES = ["box_id", "image_id", "wnid", *COLUMNS, "width", "height", "drawn_by", "approved_by", "source"]


def judged_as(candidates: pd.DataFrame, judged: pd.DataFrame) -> list[str]:
    """For each candidate, the box whose quality votes judge it: itself where it was judged,
    else a judged box of its image and draw round it overlaps at IoU >= ``SAME_BOX_IOU`` (the
    same draws merged again, less a worker excluded since, move the median a little and change
    the id), else itself. Another round's box of the same instance is another box, asked about
    anew: inheriting a verdict across rounds would let one wrong rejection keep an instance from
    ever being boxed. ``judged``: box_id, image_id and the edges of the boxes asked about."""
    by_draw = dict(list(judged.groupby([judged.image_id, judged.box_id.map(draw_round)])))
    keys = []
    for c in candidates.itertuples():
        near = by_draw.get((c.image_id, c.round))
        if near is None or c.box_id in set(near.box_id):
            keys.append(c.box_id)
            continue
        overlap = iou_matrix([[getattr(c, e) for e in COLUMNS]], near[list(COLUMNS)].to_numpy(float))[0]
        keys.append(near.box_id.iloc[int(overlap.argmax())] if overlap.max() >= SAME_BOX_IOU else c.box_id)
    return keys


def _judged_candidates(
    draws: pd.DataFrame, quality: pd.DataFrame, judged: pd.DataFrame, imported: pd.DataFrame, method: str
) -> pd.DataFrame:
    """Round by round: merge the round's draws, judge them by their quality votes
    (``judged_as``), and drop those that repeat a box accepted before (or imported) or a
    candidate of the round not rejected (asked about only if that one is rejected). A cluster of
    excluded drawers only stays where it was judged (merged from all its draws, as when it was
    asked about)."""
    verdicts = decide(
        quality.rename(columns={"box_id": "item"})[["item", "wnid", "worker_id", "answer"]], method
    ).set_index("item")
    judged = judged[judged.box_id.isin(verdicts.index)]
    known = imported[["image_id", *COLUMNS]]
    out = []
    boxed = draws.dropna(subset=list(COLUMNS))
    for _, drawn in boxed.groupby("round", sort=True):
        drawn = drawn.astype({c: int for c in COLUMNS})
        merged = merge_draws(drawn)
        everyone = merge_draws(drawn.drop(columns="counted", errors="ignore"))
        excluded = everyone[~everyone.box_id.isin(merged.box_id)]
        merged = pd.concat([merged, excluded[excluded.box_id.isin(judged.box_id)]], ignore_index=True)
        verdict = verdicts.reindex(judged_as(merged, judged))
        merged["votes_yes"] = verdict.votes_yes.fillna(0).astype(int).to_numpy()
        merged["votes_total"] = verdict.votes_total.fillna(0).astype(int).to_numpy()
        decided = verdict.decided.fillna(False).astype(bool).to_numpy()
        yes = verdict.accepted.fillna(False).astype(bool).to_numpy()
        merged["status"] = np.where(~decided, UNDECIDED, np.where(yes, ACCEPTED, REJECTED))
        merged = merged[~repeats(merged, known, merged.status != REJECTED)].reset_index(drop=True)
        out.append(merged)
        known = pd.concat([known, merged.loc[merged.status == ACCEPTED, ["image_id", *COLUMNS]]])
    columns = CANDIDATE_COLUMNS + ["votes_yes", "votes_total", "status"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


def _images(
    tasks: pd.DataFrame,
    draws: pd.DataFrame,
    coverage: pd.DataFrame,
    candidates: pd.DataFrame,
    imported: pd.DataFrame,
    method: str,
) -> pd.DataFrame:
    """Per image asked to be boxed: its draw rounds, pending candidates, accepted boxes and
    coverage (schemas.BOX_IMAGES): the verdict of its last coverage task since its last draw
    (an earlier one saw other boxes), complete on ``COMPLETE_SHARE`` of the votes by majority."""
    asked = tasks[tasks.kind == CANDIDATE].drop_duplicates("image_id").set_index("image_id")
    images = asked[["wnid", "width", "height"]].copy()
    rounds = draws.groupby("image_id")["round"]
    images["draw_rounds"] = rounds.nunique().reindex(images.index).fillna(0).astype(int)
    images["last_draw"] = rounds.max().reindex(images.index).fillna(0).astype(int)

    def count(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("image_id").size().reindex(images.index).fillna(0).astype(int)

    images["pending"] = count(candidates[candidates.status == UNDECIDED])
    images["boxes"] = count(candidates[candidates.status == ACCEPTED]) + count(imported)
    latest = coverage.groupby("image_id")["round"].transform("max").to_numpy()
    since = coverage["round"].to_numpy() >= images.last_draw.reindex(coverage.image_id).fillna(0).to_numpy()
    recent = coverage[since & (coverage["round"].to_numpy() == latest)].rename(columns={"image_id": "item"})
    verdict = decide(recent[["item", "wnid", "worker_id", "answer"]], method).set_index("item").reindex(images.index)
    decided = verdict.decided.fillna(False).astype(bool).to_numpy()
    complete = decided & verdict.accepted.fillna(False).astype(bool).to_numpy()
    if method == "majority":
        complete &= verdict.votes_yes.fillna(0).to_numpy() >= COMPLETE_SHARE * verdict.votes_total.fillna(0).to_numpy()
    drew = draws[list(COLUMNS)].notna().all(axis=1).groupby([draws.image_id, draws["round"]]).any()
    nothing = np.array([r > 0 and not drew.get((i, r), False) for i, r in zip(images.index, images.last_draw)], bool)
    images["coverage"] = np.select(
        [
            images.index.isin(imported.image_id),
            nothing,
            complete,
            decided,
            verdict.votes_total.fillna(0).to_numpy() > 0,
        ],
        [IMPORTED, NOTHING_LEFT, COMPLETE, INCOMPLETE, UNDECIDED],
        default=UNASKED,
    )
    return images.reset_index().sort_values(["wnid", "image_id"]).reset_index(drop=True)
