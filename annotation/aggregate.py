"""Crowd votes to labels: one label per item, an item being one (image_id, wnid) pair.

ImageNet showed each candidate to several MTurk workers; a vote is one worker ticking (or not
ticking) one image in a task about synset ``wnid``. Three ways to turn votes into labels:

- ``majority``: the share of yes votes, ties rejected.
- ``dawid_skene``: crowd-kit's binary Dawid-Skene EM, run per synset (a worker's confusion
  matrix is specific to a synset), so a careful worker outweighs a careless one.
- ``dynamic_consensus``: ImageNet's scheme. A random initial subset of each synset gets many
  votes; ``fit_consensus`` turns it into a table P(item shows the synset | k yes of n votes);
  every other item is decided once its table value passes the confidence threshold, and the
  undecided ones are asked again in the next round.

``worker_quality`` scores workers on the known positives and negatives hidden in each task.

Every aggregator takes a DataFrame of candidate votes (``image_id, wnid, worker_id, answer``;
controls and excluded workers already removed by the caller) and returns a DataFrame with
the columns of ``schemas.LABELS`` sorted by (wnid, image_id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom, hypergeom

from pipeline.schemas import LABELS, WORKERS

from .tasks import CANDIDATE

ITEM = ["wnid", "image_id"]  # sort order of the labels
NEEDED = ("image_id", "wnid", "worker_id", "answer")
EPS = 1e-10  # crowd-kit's _EPS: floor of error-matrix cells and priors, so no log(0)
MIN_WORKER_ACCURACY = 0.7  # spammers (0.5) are out, noisy workers (0.75) stay
POOLED = "*"  # wnid under which fit_consensus keeps the table pooled over all synsets

# Dynamic consensus defaults, tuned with bench/annotation_quality.py (20 initial items per
# synset, 3 votes then 2 a round): 0.99 keeps precision >= 99.6% over ten simulated sets at
# about 4.4 votes per image; 0.95 let it fall to 98.9-99.4%, and 0.995 buys ~0.01 points
# for 0.4 more votes. The cap only bounds the rounds: few items reach it.
CONFIDENCE = 0.99
INITIAL_VOTES = 10  # votes on each item of the initial subset (ImageNet: "at least 10")
MAX_VOTES = 15
MIN_INITIAL_ITEMS = 5  # fewer initial items than this: the synset uses the pooled table
PRIOR_ITEMS = 10.0  # pseudo-items from the pool added to each synset's table (5 to 20 did as well)


# -- shared plumbing ---------------------------------------------------------------------------


def _checked(votes: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in NEEDED if c not in votes.columns]
    if missing:
        raise ValueError(f"votes lack column(s) {', '.join(missing)}")
    if votes["answer"].isna().any():
        raise ValueError("votes hold an answer that is neither true nor false")
    return votes


def _items(votes: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Per item (sorted by wnid, image_id): vote counts and the last round; and each vote's
    item number (its row in that frame)."""
    votes = _checked(votes)
    groups = votes.groupby(ITEM, sort=True, observed=True)
    items = groups["answer"].agg(votes_yes="sum", votes_total="size")
    items["round"] = groups["round"].max() if "round" in votes.columns else 1
    return items.reset_index(), groups.ngroup().to_numpy()


def _labels(items: pd.DataFrame, confidence, accepted, decided, method: str) -> pd.DataFrame:
    """The LABELS columns, in schema order and types."""
    yes, total = items["votes_yes"].to_numpy(), items["votes_total"].to_numpy()
    out = pd.DataFrame(
        {
            "image_id": items["image_id"].to_numpy(),
            "wnid": items["wnid"].to_numpy(),
            "accepted": np.asarray(accepted, bool),
            "decided": np.full(len(items), decided, bool),
            "confidence": np.asarray(confidence, float),
            "votes_yes": yes.astype(np.int32),
            "votes_total": total.astype(np.int32),
            "selection_frequency": yes / np.maximum(total, 1),
            "method": method,
            "round": items["round"].to_numpy().astype(np.int32),
        }
    )
    return out[LABELS.names]


def _share(items: pd.DataFrame) -> np.ndarray:
    return (items["votes_yes"] / items["votes_total"]).to_numpy(float)


# -- majority ----------------------------------------------------------------------------------


def majority(votes: pd.DataFrame) -> pd.DataFrame:
    """Accept an item when more than half of its votes say yes (a tie is rejected: a
    dataset is hurt more by a wrong image than by a missing one)."""
    items, _ = _items(votes)
    share = _share(items)
    return _labels(items, share, share > 0.5, True, "majority")


# -- Dawid-Skene ---------------------------------------------------------------------------------


def dawid_skene(votes: pd.DataFrame, n_iter: int = 100, tol: float = 1e-5) -> pd.DataFrame:
    """Binary Dawid-Skene, per synset, as crowd-kit's ``DawidSkene(n_iter, tol)`` run on each
    synset's votes alone: same majority-vote start, EM steps, floors and stopping rule (the
    evidence lower bound per vote gains less than ``tol``), all synsets at once in numpy.

    confidence is the posterior P(yes); accepted when it is above 0.5, so an exact tie is
    rejected, as crowd-kit's idxmax picks the first label, False."""
    items, item = _items(votes)
    if items.empty:
        return _labels(items, [], [], True, "dawid_skene")
    synset = pd.factorize(items["wnid"])[0]
    worker = votes.groupby(["wnid", "worker_id"], sort=False, observed=True).ngroup().to_numpy()
    answer = votes["answer"].to_numpy(bool).astype(np.intp)
    posterior = _em(item, worker * 2 + answer, synset, _share(items), n_iter, tol)
    return _labels(items, posterior, posterior > 0.5, True, "dawid_skene")


def _em(
    item: np.ndarray, cell: np.ndarray, synset: np.ndarray, start: np.ndarray, n_iter: int, tol: float
) -> np.ndarray:
    """EM over all synsets together; a synset stops (its posteriors freeze) at its own
    convergence, as if it ran alone. ``cell`` = worker * 2 + answer for each vote.
    Returns P(yes) per item."""
    n_items, n_synsets, n_cells = len(synset), synset.max() + 1, (cell.max() // 2 + 1) * 2
    vote_synset = synset[item]
    items_per_synset = np.bincount(synset, minlength=n_synsets)
    votes_per_synset = np.bincount(vote_synset, minlength=n_synsets)
    observed = np.bincount(cell, minlength=n_cells) > 0  # crowd-kit keeps no row for an answer never given

    def per_class(index, weights, size):
        return np.stack([np.bincount(index, weights=weights[:, c], minlength=size) for c in (0, 1)], axis=1)

    def m_step(q):
        """errors[worker*2 + answer, truth] = P(answer | truth) and the class priors."""
        counts = np.where(observed[:, None], np.maximum(per_class(cell, q[item], n_cells), EPS), 0.0)
        totals = counts.reshape(-1, 2, 2).sum(axis=1)
        errors = (counts.reshape(-1, 2, 2) / np.maximum(totals, EPS)[:, None, :]).reshape(-1, 2)
        priors = per_class(synset, q, n_synsets) / items_per_synset[:, None]
        return errors, np.maximum(priors, EPS)

    def e_step(errors, priors):
        with np.errstate(divide="ignore"):  # rows of answers never given: never looked up
            log_errors = np.log2(errors)
        loglik = np.log2(priors)[synset] + per_class(item, log_errors[cell], n_items)
        lik = np.exp2(loglik - loglik.max(axis=1, keepdims=True))
        return lik / lik.sum(axis=1, keepdims=True)

    def lower_bound(q, errors, priors):
        joint = (q[item] * (np.log(errors[cell]) + np.log(priors)[vote_synset])).sum(axis=1)
        floored = np.maximum(q, EPS)
        entropy = -(np.log(floored) * floored).sum(axis=1)
        return (np.bincount(vote_synset, joint, n_synsets) + np.bincount(synset, entropy, n_synsets)) / np.maximum(
            votes_per_synset, 1
        )

    q = np.stack([1.0 - start, start], axis=1)
    errors, priors = m_step(q)
    loss = np.full(n_synsets, -np.inf)
    running = np.ones(n_synsets, bool)
    for _ in range(n_iter):
        if not running.any():
            break
        q = np.where(running[synset, None], e_step(errors, priors), q)
        errors, priors = m_step(q)
        new_loss = lower_bound(q, errors, priors)
        converged = running & (new_loss - loss < tol)
        loss = np.where(running, new_loss, loss)
        running &= ~converged
    return q[:, 1]


# -- worker quality ------------------------------------------------------------------------------


def worker_quality(
    control_votes: pd.DataFrame,
    min_accuracy: float = MIN_WORKER_ACCURACY,
    all_votes: pd.DataFrame | None = None,
    min_answers: int = 1,
) -> pd.DataFrame:
    """Each worker's accuracy on the known positives and negatives hidden in its tasks: a
    WORKERS table. A worker below ``min_accuracy`` on at least ``min_answers`` control answers
    is excluded; one without control answers has a null accuracy and is kept (nothing is known
    against it), as is one with fewer than ``min_answers`` (two wrong of two say little about a
    worker right 95% of the time: 1 in 400 such workers would fail them).

    control_votes: ``worker_id, kind (positive|negative), answer`` and ``assignment_id`` (or
    ``hit_id``); ``assignments`` counts the distinct assignments of the worker over
    ``control_votes`` and ``all_votes`` (pass every vote, so tasks without controls count)."""
    kinds = set(control_votes["kind"].unique()) - {"positive", "negative"}
    if kinds:
        raise ValueError(f"control votes of kind {sorted(kinds)}: only positive and negative are controls")
    correct = control_votes["answer"].astype(bool) == (control_votes["kind"] == "positive")
    controls = correct.groupby(control_votes["worker_id"]).agg(control_answers="size", control_correct="sum")
    tasks = pd.concat([_assignments(v) for v in (control_votes, all_votes) if v is not None])
    assignments = tasks.drop_duplicates().groupby("worker_id").size().rename("assignments")
    workers = pd.concat([assignments, controls], axis=1).fillna(0).sort_index()
    answers = workers["control_answers"].to_numpy()
    accuracy = np.where(answers > 0, workers["control_correct"].to_numpy() / np.maximum(answers, 1), np.nan)
    out = pd.DataFrame(
        {
            "worker_id": workers.index.to_numpy(),
            "assignments": workers["assignments"].to_numpy(np.int32),
            "control_answers": answers.astype(np.int32),
            "control_correct": workers["control_correct"].to_numpy(np.int32),
            "accuracy": accuracy,
            "excluded": (np.nan_to_num(accuracy, nan=1.0) < min_accuracy) & (answers >= min_answers),
        }
    )
    return out[WORKERS.names]


def _assignments(votes: pd.DataFrame) -> pd.DataFrame:
    key = next((c for c in ("assignment_id", "hit_id") if c in votes.columns), None)
    if key is None:
        raise ValueError("votes need assignment_id or hit_id to count a worker's assignments")
    return votes[["worker_id", key]].set_axis(["worker_id", "assignment"], axis=1)


def drop_excluded(votes: pd.DataFrame, workers: pd.DataFrame) -> pd.DataFrame:
    """The votes of the workers ``worker_quality`` kept."""
    return votes[~votes["worker_id"].isin(workers.loc[workers["excluded"], "worker_id"])]


def counted_votes(votes: pd.DataFrame, workers: pd.DataFrame) -> pd.DataFrame:
    """The votes that labels are made of: those on candidates (controls only score the
    workers), from the workers ``worker_quality`` kept."""
    return drop_excluded(votes[votes["kind"] == CANDIDATE], workers)


# -- dynamic consensus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsensusFit:
    """What ``fit_consensus`` learnt from the initial subsets, per synset.

    tables: long table ``wnid, n, k, confidence, mass_yes, mass_no, likelihood_yes,
        likelihood_no`` for n = 0..initial_votes: confidence = P(item shows the synset | k yes
        of n votes); mass = the initial items' hypergeometric mass in the cell;
        likelihood = smoothed P(k of n | truth) (wnid ``POOLED``: all synsets together).
    models: per wnid (and ``POOLED``): ``initial_items, initial_yes, prior_yes,
        p_yes_given_yes, p_yes_given_no, pooled`` (True: fewer than ``min_items`` initial
        items, the synset uses the pooled table and model).
    initial: the initial items, ``wnid, image_id, truth`` (majority of all their votes).
    """

    initial_votes: int
    tables: pd.DataFrame
    models: pd.DataFrame
    initial: pd.DataFrame

    def confidence(self, wnid, n, k) -> np.ndarray:
        """P(yes | k yes of n votes) for arrays of wnid, n, k. n <= initial_votes: the table;
        beyond it the synset's vote model (a worker says yes with p_yes_given_yes on a true
        item and p_yes_given_no on a wrong one, votes independent: the rates are those of the
        table's last row). An unknown synset, or one with too few initial items, gets the
        pooled ones."""
        n, k = np.asarray(n, np.intp), np.asarray(k, np.intp)
        row = self._rows(np.asarray(wnid, object))
        size = self.initial_votes + 1
        grid = self.tables["confidence"].to_numpy().reshape(-1, size, size)
        fromtable = grid[row, np.minimum(n, size - 1), np.minimum(k, size - 1)]
        return np.where(n < size, fromtable, _posterior(self.models.iloc[row], n, k))

    def table(self, wnid: str) -> pd.DataFrame:
        """The table a synset uses, as printed in a report: rows n, columns k."""
        wnid = self.models.index[self._rows(np.array([wnid], object))[0]]
        part = self.tables[(self.tables["wnid"] == wnid) & (self.tables["k"] <= self.tables["n"])]
        return part.pivot(index="n", columns="k", values="confidence")

    def _rows(self, wnid: np.ndarray) -> np.ndarray:
        """Row of each wnid in models (and tables); the pooled row for the others."""
        pooled = self.models.index.get_loc(POOLED)
        rows = self.models.index.get_indexer(wnid)
        rows = np.where(rows < 0, pooled, rows)
        return np.where(self.models["pooled"].to_numpy()[rows], pooled, rows)


def _posterior(model: pd.DataFrame, n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """P(yes | k of n) under independent votes with the model's rates and prior."""
    prior, p1, p0 = (model[c].to_numpy(float) for c in ("prior_yes", "p_yes_given_yes", "p_yes_given_no"))
    logit = np.log(prior) - np.log1p(-prior) + k * (np.log(p1) - np.log(p0)) + (n - k) * (np.log1p(-p1) - np.log1p(-p0))
    return 1.0 / (1.0 + np.exp(-logit))


def _initial_items(votes: pd.DataFrame, initial_votes: int, initial) -> pd.MultiIndex:
    """The initial subset: given, or the items with at least ``initial_votes`` votes in their
    synset's first round (all votes when there is no round column), so items that gathered
    many votes in later rounds (the hard ones) do not join it."""
    if initial is not None:
        if isinstance(initial, pd.MultiIndex):
            return initial.reorder_levels(ITEM) if list(initial.names) != ITEM else initial
        return pd.MultiIndex.from_frame(pd.DataFrame(initial)[ITEM])
    first = votes
    if "round" in votes.columns:
        first = votes[votes["round"] == votes.groupby("wnid")["round"].transform("min")]
    counts = first.groupby(ITEM, sort=True, observed=True).size()
    return counts.index[counts.to_numpy() >= initial_votes]


def fit_consensus(
    votes: pd.DataFrame,
    initial_votes: int = INITIAL_VOTES,
    prior: float = PRIOR_ITEMS,
    min_items: int = MIN_INITIAL_ITEMS,
    initial=None,
) -> ConsensusFit:
    """ImageNet's per-synset table P(item shows the synset | k yes of n votes), n <= initial_votes.

    The initial items' truth is the majority of all their votes. An initial item with Y yes of
    m votes adds to cell (n, k) of its truth class the hypergeometric probability that n of
    its m votes hold k yes (one unit of mass per n and item), so mass / items is the class
    likelihood P(k of n | truth), and the table is Bayes' rule with the share of true items.

    Smoothing is Beta-like: each synset's likelihoods and share of true items get ``prior``
    pseudo-items drawn from the pool of all synsets (whose likelihoods in turn get one
    pseudo-item of a binomial model with the pool's add-one yes-rates, so no cell is 0/0).
    A synset with many initial items follows its own data; one with few leans on the crowd
    as seen everywhere: with 20 initial items (12 true, 8 wrong) a synset's own cell
    "2 yes of 3" rests on a few hundredths of an item of wrong-item mass, and plain add-one
    would instead cap every cell near 1 - 1/22. A synset with fewer than ``min_items``
    initial items uses the pooled table outright (``models.pooled``).

    Cells near n = initial_votes inherit the definition of the truth: an initial item with 5
    yes of 10 is wrong, so (10, 5) reads ~0 and (9, 4) nearly so, where independent votes
    would say ~0.2. Items of later rounds that land there are rejected a little too readily
    (a recall cost, not a precision one).

    ``initial``: the initial items (DataFrame with wnid and image_id, or a MultiIndex) when the
    vote count cannot tell them, e.g. once excluded workers' votes are dropped an initial
    item may hold fewer than ``initial_votes`` (cells with n above an item's votes get
    nothing from it).
    """
    items, _ = _items(votes)
    chosen = pd.MultiIndex.from_frame(items[ITEM]).isin(_initial_items(votes, initial_votes, initial))
    init = items[chosen].reset_index(drop=True)
    if init.empty:
        raise ValueError(
            f"no initial items (>= {initial_votes} votes in the first round): "
            "dynamic consensus has nothing to fit its table on"
        )
    init["truth"] = _share(init) > 0.5
    wnids = pd.Index(np.append(np.unique(init["wnid"]), POOLED), name="wnid")
    pool, size = len(wnids) - 1, initial_votes + 1
    twice = pd.concat([init, init], ignore_index=True)  # each item counts for its synset and for the pool
    row = np.append(wnids.get_indexer(init["wnid"]), np.full(len(init), pool))
    truth = twice["truth"].to_numpy()

    def per_row(weights):  # (rows, 2): summed over the row's wrong and true items
        return np.stack([np.bincount(row, weights=weights * (truth == c), minlength=len(wnids)) for c in (0, 1)], 1)

    counts = per_row(np.ones(len(twice)))
    mass = _hypergeometric_mass(twice, row, len(wnids), initial_votes)  # (rows, truth, n, k)
    seen = mass.sum(axis=3, keepdims=True)  # items with at least n votes
    yes_votes, all_votes = (per_row(twice[c].to_numpy(float))[pool] for c in ("votes_yes", "votes_total"))
    pool_rates = (yes_votes + 1) / (all_votes + 2)  # add-one P(yes vote | wrong), P(yes vote | true)
    n, k = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    pool_like = (mass[pool] + binom.pmf(k, n, pool_rates[:, None, None])) / (seen[pool] + 1)
    pool_share = (counts[pool, 1] + 1) / (counts[pool].sum() + 2)
    like = (mass + prior * pool_like) / (seen + prior)
    share = (counts[:, 1] + prior * pool_share) / (counts.sum(axis=1) + prior)
    pooled = (counts.sum(axis=1) < min_items) & (np.arange(len(wnids)) != pool)
    like[pooled | (np.arange(len(wnids)) == pool)] = pool_like
    share[pooled | (np.arange(len(wnids)) == pool)] = pool_share
    yes, no = share[:, None, None] * like[:, 1], (1 - share[:, None, None]) * like[:, 0]
    with np.errstate(invalid="ignore"):  # k > n: no such cell
        confidence = np.where(k <= n, yes / (yes + no), np.nan)
    last = like[:, :, initial_votes] @ np.arange(size) / initial_votes  # mean yes-rate of the last row
    models = pd.DataFrame(
        {
            "initial_items": counts.sum(axis=1).astype(int),
            "initial_yes": counts[:, 1].astype(int),
            "prior_yes": share,
            "p_yes_given_yes": last[:, 1],
            "p_yes_given_no": last[:, 0],
            "pooled": pooled,
        },
        index=wnids,
    )
    grid = np.repeat(wnids.to_numpy(), size * size), np.tile(n.ravel(), len(wnids)), np.tile(k.ravel(), len(wnids))
    tables = pd.DataFrame(
        {
            "wnid": grid[0],
            "n": grid[1],
            "k": grid[2],
            "confidence": confidence.ravel(),
            "mass_yes": mass[:, 1].ravel(),
            "mass_no": mass[:, 0].ravel(),
            "likelihood_yes": like[:, 1].ravel(),
            "likelihood_no": like[:, 0].ravel(),
        }
    )
    return ConsensusFit(initial_votes, tables, models, init[ITEM + ["truth"]])


def _hypergeometric_mass(items: pd.DataFrame, row: np.ndarray, rows: int, initial_votes: int) -> np.ndarray:
    """mass[row, truth, n, k] = sum over the row's items of P(k yes among n of its votes),
    computed once per distinct (votes, yes) pair; an item adds nothing where n exceeds its
    votes."""
    size = initial_votes + 1
    m, y = items["votes_total"].to_numpy(), items["votes_yes"].to_numpy()
    pairs, which = np.unique(np.stack([m, y], axis=1), axis=0, return_inverse=True)
    n, k = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    pm, py = pairs[:, 0, None, None], pairs[:, 1, None, None]
    pmf = np.where(n <= pm, hypergeom.pmf(k, pm, py, np.minimum(n, pm)), 0.0)  # (pairs, n, k)
    weights = np.zeros((rows * 2, len(pairs)))
    np.add.at(weights, (row * 2 + items["truth"].to_numpy(np.intp), which.ravel()), 1.0)
    return (weights @ pmf.reshape(len(pairs), -1)).reshape(rows, 2, size, size)


def dynamic_consensus(
    votes: pd.DataFrame,
    confidence: float = CONFIDENCE,
    initial_votes: int = INITIAL_VOTES,
    max_votes: int = MAX_VOTES,
    fit: ConsensusFit | None = None,
    initial=None,
    prior: float = PRIOR_ITEMS,
    min_items: int = MIN_INITIAL_ITEMS,
) -> pd.DataFrame:
    """ImageNet's dynamic consensus over the votes so far.

    confidence of an item = the fitted table at (votes_total, votes_yes). An initial item is
    decided by its majority; any other is decided once its confidence is >= ``confidence``
    (accepted) or <= 1 - ``confidence`` (rejected), or once it holds ``max_votes`` votes
    (accepted if confidence > 0.5). An undecided item is not accepted (yet); the undecided
    items are the ones the next round asks again. ``fit``: a ``fit_consensus`` result to
    reuse (and print); by default one is fitted on ``votes`` (see ``fit_consensus`` for
    ``initial``, ``prior`` and ``min_items``)."""
    if fit is None:
        fit = fit_consensus(votes, initial_votes, prior, min_items, initial)
    items, _ = _items(votes)
    n, k = items["votes_total"].to_numpy(), items["votes_yes"].to_numpy()
    p = fit.confidence(items["wnid"].to_numpy(object), n, k)
    is_initial = pd.MultiIndex.from_frame(items[ITEM]).isin(pd.MultiIndex.from_frame(fit.initial[ITEM]))
    capped = n >= max_votes
    decided = is_initial | capped | (p >= confidence) | (p <= 1 - confidence)
    accepted = np.where(is_initial, _share(items) > 0.5, np.where(capped, p > 0.5, p >= confidence))
    return _labels(items, p, accepted, decided, "dynamic")
