"""How much the crowd agrees with itself: pair agreement and Fleiss' kappa of the counted votes.

Fleiss' kappa (J. L. Fleiss, "Measuring nominal scale agreement among many raters",
Psychological Bulletin 76(5), 1971) compares the share of pairs of votes on one item that
agree with the share that the overall yes rate alone would give. Items are weighted by their
pairs of votes: that is Fleiss' own kappa when every item has the same number of votes, and
extends it to dynamic consensus, where the number varies.
"""

from __future__ import annotations

import pandas as pd

from .aggregate import ITEM, counted_votes


def agreement(votes: pd.DataFrame, workers: pd.DataFrame) -> dict | None:
    """Agreement of the votes labels are made of (``aggregate.counted_votes``: candidates only,
    excluded workers left out), over the items with at least two of them: ``images``,
    ``observed`` (share of agreeing pairs), ``chance`` (the share the yes rate alone gives),
    ``yes_share``, ``kappa`` (None when chance is 1: every vote alike) and ``unanimous``
    (share of items whose votes all agree). None when no item has two votes.

    votes: ``image_id, wnid, worker_id, kind, answer`` (schemas.VOTES); workers: schemas.WORKERS."""
    counted = counted_votes(votes, workers)
    items = counted.groupby(ITEM).answer.agg(["sum", "size"])
    yes, n = items["sum"].to_numpy(float), items["size"].to_numpy(float)
    several = n >= 2
    if not several.any():
        return None
    yes, n = yes[several], n[several]
    pairs = n * (n - 1) / 2
    agreeing = yes * (yes - 1) / 2 + (n - yes) * (n - yes - 1) / 2
    observed = float(agreeing.sum() / pairs.sum())
    yes_share = float(yes.sum() / n.sum())
    chance = yes_share**2 + (1 - yes_share) ** 2
    return {
        "images": int(several.sum()),
        "observed": observed,
        "chance": chance,
        "yes_share": yes_share,
        "kappa": (observed - chance) / (1 - chance) if chance < 1 else None,
        "unanimous": float(((yes == 0) | (yes == n)).mean()),
    }
