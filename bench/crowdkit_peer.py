"""crowd-kit 1.4.2 as the reference for our aggregation, run in its own virtualenv.

crowd-kit pulls in transformers, scikit-learn and more, so it is no dependency of ours:
``ensure_venv()`` makes ``.bench/crowdkit`` (``python -m venv`` with the interpreter behind
the running one, then ``pip install crowd-kit==1.4.2``, about a minute and 1 GB) and
``run_crowdkit()`` runs its ``MajorityVote`` and ``DawidSkene(n_iter=100)`` there on our
votes, per synset (ours runs per synset: a worker's confusion matrix is specific to one).

Labels go over as "yes"/"no", so crowd-kit's tie rule (``idxmax`` takes the first column,
"no") is our "a tie is rejected".

``python bench/crowdkit_peer.py`` compares both on crowd-kit's own 5x5 toy set and on a
simulated set (20 synsets x 500 candidates, 3 and 5 votes each) and prints the share of
items whose labels agree (target for Dawid-Skene: >= 99%).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchhost import peer_venv  # noqa: E402

from annotation.aggregate import dawid_skene, majority  # noqa: E402
from annotation.simulate import Crowd, simulate_votes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VERSION = "1.4.2"

# Reads task,worker,label,group CSV; writes task,group,majority,dawid_skene,dawid_skene_p CSV.
DRIVER = """
import json, sys, time
import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote
args = json.loads(sys.argv[1])
votes = pd.read_csv(args["votes"], dtype=str)
out, started = [], time.perf_counter()
for group, data in votes.groupby("group", sort=True):
    data = data[["task", "worker", "label"]].reset_index(drop=True)
    ds = DawidSkene(n_iter=args["n_iter"], tol=args["tol"]).fit(data)
    mv = MajorityVote().fit_predict(data)
    yes = ds.probas_["yes"] if "yes" in ds.probas_.columns else 0.0 * ds.probas_.iloc[:, 0]
    out.append(pd.DataFrame({"task": ds.labels_.index, "group": group, "majority": mv.reindex(ds.labels_.index).to_numpy(),
                             "dawid_skene": ds.labels_.to_numpy(), "dawid_skene_p": yes.reindex(ds.labels_.index).to_numpy()}))
pd.concat(out).to_csv(args["out"], index=False)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def ensure_venv(root: Path = REPO / ".bench" / "crowdkit") -> Path:
    """The venv at ``root`` with crowd-kit==1.4.2; returns its python."""
    return peer_venv(root, "crowd-kit", VERSION)


def run_crowdkit(python: Path, votes: pd.DataFrame, n_iter: int = 100, tol: float = 1e-5) -> pd.DataFrame:
    """crowd-kit's labels for our votes (``image_id, wnid, worker_id, answer``), one run per
    synset: ``image_id, wnid, majority, dawid_skene`` (bools), ``dawid_skene_p`` (P(yes)),
    sorted by (wnid, image_id); ``attrs["seconds"]`` = crowd-kit's own time, imports aside."""
    with tempfile.TemporaryDirectory(prefix="crowdkit-peer-") as tmp:
        source, target = Path(tmp) / "votes.csv", Path(tmp) / "labels.csv"
        pd.DataFrame(
            {
                "task": votes["image_id"],
                "worker": votes["worker_id"],
                "label": np.where(votes["answer"].to_numpy(bool), "yes", "no"),
                "group": votes["wnid"],
            }
        ).to_csv(source, index=False)
        arguments = {"votes": str(source), "out": str(target), "n_iter": n_iter, "tol": tol}
        done = subprocess.run([str(python), "-c", DRIVER, json.dumps(arguments)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"crowd-kit run failed:\n{done.stderr[-4000:]}")
        labels = pd.read_csv(target, dtype={"task": str, "group": str})
    labels = labels.rename(columns={"task": "image_id", "group": "wnid"})
    for method in ("majority", "dawid_skene"):
        labels[method] = labels[method] == "yes"
    labels = labels.sort_values(["wnid", "image_id"]).reset_index(drop=True)
    labels.attrs["seconds"] = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return labels


def compare(python: Path, votes: pd.DataFrame) -> dict:
    """Share of items where our label equals crowd-kit's, per method; and the timings."""
    theirs = run_crowdkit(python, votes)
    started = time.perf_counter()
    ours = {"majority": majority(votes), "dawid_skene": dawid_skene(votes, n_iter=100)}
    seconds = time.perf_counter() - started
    result = {"items": len(theirs), "crowd-kit s": theirs.attrs["seconds"], "ours s": seconds}
    for method, labels in ours.items():
        if not labels[["wnid", "image_id"]].equals(theirs[["wnid", "image_id"]]):
            raise AssertionError("ours and crowd-kit's label different items")
        result[method] = float((labels["accepted"].to_numpy() == theirs[method].to_numpy()).mean())
    gap = np.abs(ours["dawid_skene"]["confidence"].to_numpy() - theirs["dawid_skene_p"].to_numpy())
    result["max |P(yes) gap|"] = float(gap.max())
    result["labels"] = {"ours": ours, "crowd-kit": theirs}
    return result


def toy_votes() -> pd.DataFrame:
    """crowd-kit's 5 workers x 5 tasks toy set (Toloka/crowd-kit tests/conftest.py,
    ``toy_answers_df``): majority says no, yes, no, yes, no; Dawid-Skene yes, yes, no, yes, no."""
    answers = {"w1": "nyyyy", "w2": "yynyn", "w3": "-ynyn", "w4": "ynyyn", "w5": "nnnyn"}
    rows = [(f"t{t + 1}", w, a == "y") for w, line in answers.items() for t, a in enumerate(line) if a != "-"]
    return pd.DataFrame(rows, columns=["image_id", "worker_id", "answer"]).assign(wnid="toy")


def simulated_votes(votes_per_item: int, synsets: int = 20, candidates: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    wnids = np.repeat([f"n{9000000 + i:08d}" for i in range(synsets)], candidates)
    items = pd.DataFrame(
        {"image_id": [f"{w}_{j}" for w, j in zip(wnids, np.tile(np.arange(candidates), synsets))], "wnid": wnids}
    )
    truth = pd.Series(rng.random(len(items)) >= 0.4, index=pd.MultiIndex.from_frame(items[["image_id", "wnid"]]))
    return simulate_votes(items, truth, votes_per_item, Crowd(seed=seed), seed=seed + 1)


def main() -> None:
    python = ensure_venv()
    toy = compare(python, toy_votes())
    sides = toy.pop("labels")
    print("crowd-kit toy set (5 workers x 5 tasks):")
    print(
        pd.DataFrame(
            {
                "task": sides["crowd-kit"]["image_id"],
                "ours: majority": sides["ours"]["majority"]["accepted"].map({True: "yes", False: "no"}),
                "crowd-kit: majority": sides["crowd-kit"]["majority"].map({True: "yes", False: "no"}),
                "ours: DS": sides["ours"]["dawid_skene"]["accepted"].map({True: "yes", False: "no"}),
                "crowd-kit: DS": sides["crowd-kit"]["dawid_skene"].map({True: "yes", False: "no"}),
                "ours: DS P(yes)": sides["ours"]["dawid_skene"]["confidence"].round(4),
                "crowd-kit: DS P(yes)": sides["crowd-kit"]["dawid_skene_p"].round(4),
            }
        ).to_string(index=False)
    )
    rows = [{"set": "toy", **toy}]
    for n in (3, 5):
        result = compare(python, simulated_votes(n))
        result.pop("labels")
        rows.append({"set": f"simulated, {n} votes", **result})
    table = pd.DataFrame(rows)
    print("\nshare of items where our label equals crowd-kit's (per synset):")
    print(
        table.to_string(
            index=False,
            formatters={
                "majority": "{:.2%}".format,
                "dawid_skene": "{:.2%}".format,
                "crowd-kit s": "{:.2f}".format,
                "ours s": "{:.2f}".format,
                "max |P(yes) gap|": "{:.2e}".format,
            },
        )
    )
    worst = table["dawid_skene"].min()
    print(f"\nDawid-Skene agreement {worst:.2%} at worst: target >= 99% {'met' if worst >= 0.99 else 'NOT met'}")


if __name__ == "__main__":
    main()
