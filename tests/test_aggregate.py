"""Crowd label aggregation: majority, Dawid-Skene, worker quality and dynamic consensus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from annotation.aggregate import (
    POOLED,
    counted_votes,
    dawid_skene,
    drop_excluded,
    dynamic_consensus,
    fit_consensus,
    majority,
    worker_quality,
)
from annotation.agreement import agreement
from annotation.simulate import Crowd, Worker, simulate_controls, simulate_votes
from pipeline.schemas import LABELS, WORKERS

# crowd-kit's toy set: Toloka/crowd-kit tests/conftest.py, fixture ``toy_answers_df`` (5 workers,
# 5 tasks; w3 did not answer t1), with its expected labels (``toy_ground_truth_df`` for
# Dawid-Skene) and, in tests/aggregation/test_ds_aggregation.py, ``probas_iter_1``: P(yes)
# after one EM iteration. One string per worker, one letter per task t1..t5.
TOY = {"w1": "nyyyy", "w2": "yynyn", "w3": "-ynyn", "w4": "ynyyn", "w5": "nnnyn"}
TOY_MAJORITY = [False, True, False, True, False]  # t1 is a 2-2 tie: rejected
TOY_DAWID_SKENE = [True, True, False, True, False]
TOY_P_YES_AFTER_ONE_ITERATION = [0.65, 0.74, 0.13, 1.00, 0.05]


def toy_votes(wnid: str = "n00000001", flip: bool = False) -> pd.DataFrame:
    rows = [
        (f"t{t + 1}", wnid, w, (a == "y") != flip) for w, line in TOY.items() for t, a in enumerate(line) if a != "-"
    ]
    return pd.DataFrame(rows, columns=["image_id", "wnid", "worker_id", "answer"])


def simulated(synsets=8, per_synset=200, votes=5, crowd=Crowd(), seed=0, share_true=0.6):  # noqa: B008 (a frozen value)
    """items, truth (Series on (image_id, wnid)) and votes of a simulated crowd."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"wnid": np.repeat([f"n{9000000 + i:08d}" for i in range(synsets)], per_synset)})
    items["image_id"] = [f"img{i}" for i in range(len(items))]
    truth = pd.Series(rng.random(len(items)) < share_true, index=pd.MultiIndex.from_frame(items[["image_id", "wnid"]]))
    return items, truth, simulate_votes(items, truth, votes, crowd, seed=seed + 1)


def precision_recall(labels: pd.DataFrame, truth: pd.Series) -> tuple[float, float]:
    true = truth.reindex(pd.MultiIndex.from_frame(labels[["image_id", "wnid"]])).to_numpy(bool)
    accepted = labels["accepted"].to_numpy(bool)
    return (accepted & true).sum() / accepted.sum(), (accepted & true).sum() / true.sum()


# -- majority and Dawid-Skene ------------------------------------------------------------------


def test_toy_majority_and_dawid_skene_agree_with_crowdkit():
    votes = toy_votes()
    assert majority(votes)["accepted"].tolist() == TOY_MAJORITY
    assert dawid_skene(votes)["accepted"].tolist() == TOY_DAWID_SKENE
    one = dawid_skene(votes, n_iter=1)["confidence"].to_numpy()
    np.testing.assert_allclose(one, TOY_P_YES_AFTER_ONE_ITERATION, atol=0.005)


def test_labels_have_the_labels_schema_and_counts():
    labels = majority(toy_votes().sample(frac=1.0, random_state=3))  # order of the votes does not matter
    assert list(labels.columns) == LABELS.names
    pa.Table.from_pandas(labels, schema=LABELS, preserve_index=False)  # types and nullability fit
    assert labels["image_id"].tolist() == ["t1", "t2", "t3", "t4", "t5"]
    assert labels["votes_total"].tolist() == [4, 5, 5, 5, 5]
    assert labels["votes_yes"].tolist() == [2, 3, 2, 5, 1]
    np.testing.assert_allclose(labels["selection_frequency"], [0.5, 0.6, 0.4, 1.0, 0.2])
    assert labels["decided"].all() and (labels["method"] == "majority").all()


def test_dawid_skene_runs_each_synset_alone():
    """A second synset whose workers answer the opposite way changes nothing in the first:
    pooled over synsets, the same workers would look like coin flippers."""
    alone = dawid_skene(toy_votes("n1"))
    both = dawid_skene(pd.concat([toy_votes("n2", flip=True), toy_votes("n1")]))
    assert both["wnid"].tolist() == ["n1"] * 5 + ["n2"] * 5  # sorted by (wnid, image_id)
    first = both[both["wnid"] == "n1"].reset_index(drop=True)
    np.testing.assert_allclose(first["confidence"], alone["confidence"], atol=1e-9)
    assert both[both["wnid"] == "n2"]["accepted"].tolist() == [not a for a in TOY_DAWID_SKENE]


def test_dawid_skene_survives_unanimous_and_single_vote_synsets():
    votes = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "wnid": ["n1", "n1", "n2", "n3"],
            "worker_id": ["w1", "w2", "w1", "w1"],
            "answer": [True, True, False, True],
        }
    )
    labels = dawid_skene(votes)
    assert np.isfinite(labels["confidence"]).all()
    assert labels["accepted"].tolist() == [True, True, False, True]


def test_simulated_crowd_labels_are_right():
    items, truth, votes = simulated(votes=5)
    for method in (majority, dawid_skene):
        precision, recall = precision_recall(method(votes), truth)
        assert precision > 0.97 and recall > 0.97, (method.__name__, precision, recall)  # base rate 0.6


def test_dawid_skene_sees_through_workers_who_tick_everything():
    """40% of the crowd ticks every image: majority accepts many wrong images, Dawid-Skene
    learns those workers' confusion matrices and discounts their ticks."""
    crowd = Crowd(careful=0.6, noisy=0.0, spammers=0.4, spam_tick_rate=1.0, size=20)
    items, truth, votes = simulated(votes=5, crowd=crowd)
    assert precision_recall(majority(votes), truth)[0] < 0.9
    precision, recall = precision_recall(dawid_skene(votes), truth)
    assert precision > 0.95 and recall > 0.95


# -- worker quality ------------------------------------------------------------------------------


def test_worker_quality_excludes_the_spammers():
    crowd = Crowd(size=20, seed=4)
    items, truth, votes = simulated(synsets=4, votes=5, crowd=crowd)
    controls = simulate_controls(votes, crowd)
    workers = worker_quality(controls, 0.7, all_votes=votes)
    assert list(workers.columns) == WORKERS.names
    pa.Table.from_pandas(workers, schema=WORKERS, preserve_index=False)
    kinds = workers["worker_id"].map({w.worker_id: w.kind for w in crowd.workers()})
    assert (kinds == "spammer").sum() == 2
    assert workers.loc[kinds == "spammer", "excluded"].all()
    assert not workers.loc[kinds == "careful", "excluded"].any()  # noisy ones (0.75) may fall either side
    assert (workers["assignments"] == votes.groupby("worker_id")["assignment_id"].nunique().to_numpy()).all()
    assert (workers["control_answers"] == 6 * workers["assignments"]).all()
    kept = drop_excluded(votes, workers)
    assert not kept["worker_id"].isin(workers.loc[kinds == "spammer", "worker_id"]).any()


def test_worker_quality_counts_and_keeps_workers_without_controls():
    controls = pd.DataFrame(
        {
            "worker_id": ["a", "a", "a", "a", "b", "b"],
            "assignment_id": ["a1"] * 4 + ["b1"] * 2,
            "kind": ["positive", "positive", "negative", "negative", "positive", "negative"],
            "answer": [True, True, False, True, False, True],
        }
    )
    candidates = pd.DataFrame({"worker_id": ["a", "c", "c"], "assignment_id": ["a2", "c1", "c2"]})
    workers = worker_quality(controls, 0.7, all_votes=candidates).set_index("worker_id")
    assert workers.loc["a", ["assignments", "control_answers", "control_correct"]].tolist() == [2, 4, 3]
    assert workers.loc["a", "accuracy"] == 0.75 and not workers.loc["a", "excluded"]
    assert workers.loc["b", "accuracy"] == 0.0 and workers.loc["b", "excluded"]
    assert np.isnan(workers.loc["c", "accuracy"]) and not workers.loc["c", "excluded"]
    assert workers.loc["c", "assignments"] == 2


# -- agreement -----------------------------------------------------------------------------------


def crowd_votes(answers: dict[str, str], kind: str = "candidate") -> pd.DataFrame:
    """Votes from one string per worker, one letter per image x, y, z: y(es), n(o) or - (none)."""
    rows = [
        (image_id, "n00000001", worker, kind, letter == "y")
        for worker, line in answers.items()
        for image_id, letter in zip("xyz", line)
        if letter != "-"
    ]
    return pd.DataFrame(rows, columns=["image_id", "wnid", "worker_id", "kind", "answer"])


def excluding(*excluded: str) -> pd.DataFrame:
    ids = ["a", "b", "c", "d"]
    return pd.DataFrame({"worker_id": ids, "excluded": [w in excluded for w in ids]})


def test_agreement_is_fleiss_kappa_of_the_counted_votes():
    # Counted: x has 3 yes of 3, y 1 of 2, z one vote (not an item of agreement). Pairs: 3 on x,
    # all agreeing, 1 on y, disagreeing: observed 3/4; yes share 4/5, chance 0.8^2 + 0.2^2.
    counted = crowd_votes({"a": "yyn", "b": "yn-", "c": "y--"})
    spammer = crowd_votes({"d": "nny"})
    controls = crowd_votes({"a": "nnn", "b": "nnn"}, kind="positive")
    votes = pd.concat([counted, spammer, controls], ignore_index=True)
    result = agreement(votes, excluding("d"))
    assert result == pytest.approx(
        {
            "images": 2,
            "observed": 0.75,
            "chance": 0.68,
            "yes_share": 0.8,
            "kappa": (0.75 - 0.68) / (1 - 0.68),
            "unanimous": 0.5,
        }
    )
    assert counted_votes(votes, excluding("d")).equals(counted)
    assert agreement(votes, excluding()) != result  # the excluded worker's votes would change it


def test_agreement_without_pairs_or_without_disagreement():
    assert agreement(crowd_votes({"a": "yyn", "b": "---"}), excluding()) is None
    assert agreement(crowd_votes({"a": "yyn", "d": "ynn"}), excluding("d")) is None  # d's votes do not count
    unanimous = agreement(crowd_votes({"a": "yy-", "b": "yy-"}), excluding())
    assert unanimous["kappa"] is None and unanimous["observed"] == 1.0 and unanimous["unanimous"] == 1.0


# -- dynamic consensus ---------------------------------------------------------------------------


def consensus_votes(seed=0):
    """Two synsets: 30 initial items with 10 votes each, 300 items with 3 votes, from the
    default crowd; plus hand-made items in n9000000 whose vote counts are given."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"wnid": np.repeat(["n9000000", "n9000001"], 330)})
    items["image_id"] = [f"img{i}" for i in range(len(items))]
    truth = pd.Series(rng.random(len(items)) < 0.6, index=pd.MultiIndex.from_frame(items[["image_id", "wnid"]]))
    wanted = np.where(np.tile(np.arange(330) < 30, 2), 10, 3)
    votes = simulate_votes(items, truth, wanted, Crowd(), seed=seed + 1)
    return items, truth, votes


def made(image_id: str, yes: int, no: int, wnid: str = "n9000000") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": image_id,
            "wnid": wnid,
            "worker_id": [f"m{i}" for i in range(yes + no)],
            "answer": [True] * yes + [False] * no,
        }
    )


def test_dynamic_consensus_decides_easy_items_and_asks_again_about_ambiguous_ones():
    items, truth, votes = consensus_votes()
    extra = [
        made("easy-yes", 3, 0),
        made("easy-no", 0, 3),
        made("split", 2, 1),
        made("even", 2, 2),
        made("capped", 8, 7),
    ]
    labels = dynamic_consensus(pd.concat([votes, *extra]), confidence=0.99, max_votes=15).set_index("image_id")
    assert labels.loc["easy-yes", ["decided", "accepted"]].tolist() == [True, True]
    assert labels.loc["easy-yes", "confidence"] >= 0.99
    assert labels.loc["easy-no", ["decided", "accepted"]].tolist() == [True, False]
    assert labels.loc["easy-no", "confidence"] <= 0.01
    for ambiguous in ("split", "even"):
        assert not labels.loc[ambiguous, "decided"] and not labels.loc[ambiguous, "accepted"]
        assert 0.01 < labels.loc[ambiguous, "confidence"] < 0.99
    assert labels.loc["capped", "decided"]  # the cap decides what the votes cannot
    initial = labels[labels["votes_total"] == 10]
    assert len(initial) == 60 and initial["decided"].all()
    assert (initial["accepted"] == (initial["selection_frequency"] > 0.5)).all()

    three = labels[(labels["votes_total"] == 3) & ~labels.index.isin(["easy-yes", "easy-no", "split"])]
    assert 0.6 < three["decided"].mean() < 1.0  # most, not all, decided with 3 votes
    precision, recall = precision_recall(three[three["decided"]].reset_index(), truth)
    assert precision > 0.98 and recall > 0.9


def test_decisions_follow_the_confidence_threshold():
    items, truth, votes = consensus_votes()
    undecided = []
    for threshold in (0.8, 0.99):
        labels = dynamic_consensus(votes, confidence=threshold, max_votes=15)
        rest = labels[labels["votes_total"] == 3]
        p = rest["confidence"]
        assert (rest["decided"] == ((p >= threshold) | (p <= 1 - threshold))).all()
        assert (rest["accepted"] == (p >= threshold)).all()
        undecided.append((~rest["decided"]).sum())
    assert undecided[0] < undecided[1] < len(rest)


def test_a_synset_with_few_initial_items_leans_on_the_pool():
    """Six initial items, five all-yes and one wrong with 2 yes of 10: alone they would say
    that 2 yes of 3 votes means a wrong image; the pool of all synsets says otherwise."""
    items, truth, votes = consensus_votes()
    few = [made(f"sure-{i}", 10, 0, wnid="n9000009") for i in range(5)] + [made("odd", 2, 8, wnid="n9000009")]
    fit = fit_consensus(pd.concat([votes, *few]))
    assert not fit.models.loc["n9000009", "pooled"]
    own, pool = fit.table("n9000009"), fit.table(POOLED)
    assert own.loc[3, 2] > 0.5 and abs(own.loc[3, 2] - pool.loc[3, 2]) < 0.2


def test_fit_consensus_tables_and_fallback_to_the_pool():
    items, truth, votes = consensus_votes()
    few = made("lonely-0", 9, 1, wnid="n9000002")
    few = pd.concat([few, made("lonely-1", 1, 9, wnid="n9000002"), made("lonely-2", 2, 1, wnid="n9000002")])
    fit = fit_consensus(pd.concat([votes, few]), initial_votes=10)
    assert fit.models.loc["n9000002", "pooled"] and not fit.models.loc["n9000000", "pooled"]
    assert fit.models.loc["n9000002", "initial_items"] == 2 and fit.models.loc[POOLED, "initial_items"] == 62
    pooled_table = fit.table(POOLED)
    pd.testing.assert_frame_equal(fit.table("n9000002"), pooled_table)
    pd.testing.assert_frame_equal(fit.table("n-unknown"), pooled_table)
    table = fit.table("n9000000")
    assert table.shape == (11, 11) and np.isnan(table.loc[3, 4])
    assert (np.diff(table.loc[3, [0, 1, 2, 3]].to_numpy()) > 0).all()  # more yes, more confident
    assert table.loc[3, 3] > 0.95 and table.loc[3, 0] < 0.05
    # beyond the table: the vote model, continuing it
    p = fit.confidence(["n9000000"] * 3, [15, 15, 15], [15, 8, 0])
    assert p[0] > 0.999 and 0.3 < p[1] < 0.99 and p[2] < 0.001
    model = fit.models.loc["n9000000"]
    assert 0.75 < model["p_yes_given_yes"] < 0.95 and 0.05 < model["p_yes_given_no"] < 0.25


def test_initial_subset_comes_from_the_first_round_or_is_given():
    items, truth, votes = consensus_votes()
    votes = votes.assign(round=1)
    later = made("img40", 5, 6).assign(round=2)  # 3 votes in round 1 and 11 in round 2: not initial
    fit = fit_consensus(pd.concat([votes, later]))
    assert "img40" not in set(fit.initial["image_id"]) and len(fit.initial) == 60
    given = items.iloc[[0, 1, 2, 330, 331]]
    assert len(fit_consensus(votes, initial=given, min_items=1).initial) == 5
    with pytest.raises(ValueError, match="no initial items"):
        fit_consensus(votes[votes["order"] < 3])


# -- simulation ----------------------------------------------------------------------------------


def test_simulated_votes_come_from_distinct_workers_of_the_stated_accuracy():
    crowd = Crowd(careful=1.0, noisy=0.0, spammers=0.0, careful_accuracy=0.9, size=30)
    items, truth, votes = simulated(synsets=2, per_synset=500, votes=np.tile([3, 7], 500), crowd=crowd)
    counts = votes.groupby("image_id").size()
    assert set(counts) == {3, 7}
    assert not votes.duplicated(["image_id", "worker_id"]).any()
    right = (
        votes["answer"].to_numpy() == truth.reindex(pd.MultiIndex.from_frame(votes[["image_id", "wnid"]])).to_numpy()
    )
    assert 0.88 < right.mean() < 0.92
    again = simulated(synsets=2, per_synset=500, votes=np.tile([3, 7], 500), crowd=crowd)[2]
    pd.testing.assert_frame_equal(votes, again)


def test_crowd_shares_and_worker_answers():
    crowd = Crowd()
    assert crowd.counts() == {"careful": 35, "noisy": 10, "spammer": 5}
    workers = crowd.workers()
    assert len({w.worker_id for w in workers}) == 50 and [w.kind for w in workers] != sorted(w.kind for w in workers)
    rng = np.random.default_rng(0)
    spammer = Worker("s", "spammer", 0.5, 0.5)
    ticks = spammer.answer(np.array([True, False] * 5000), rng)
    assert 0.47 < ticks[::2].mean() < 0.53 and 0.47 < ticks[1::2].mean() < 0.53
    assert Worker("c", "careful", 0.95, 0.05).accuracy == pytest.approx(0.95)
