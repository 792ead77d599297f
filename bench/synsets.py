"""Speed of the synsets stage, each figure from a fresh process (cold start included).

- WordNet loading: ours (``wordnet.hierarchy.load``: locate, open, verify 3.0 and 82,115
  nouns) against stock nltk (``nltk.corpus.wordnet``, the same files) loading its reader.
- ``make synsets SUBSET=imagenet21k``: the 21,841 fall-2011 synsets with queries, is-a file
  and report. Target: under 20 s on the 2-core machine. Peer: a plain nltk script gathering
  the same per-synset facts (lemmas, definition, min_depth, hypernyms, hyponyms) for the list.

Usage: python bench/synsets.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_21K = 20.0

OUR_LOAD = "from wordnet.hierarchy import load; load()"
NLTK_LOAD = """
import warnings; warnings.simplefilter("ignore")
from nltk.corpus import wordnet as wn
wn.ensure_loaded()
"""
NLTK_21K = """
import warnings; warnings.simplefilter("ignore")
from nltk.corpus import wordnet as wn
wnids = open("wordnet/data/imagenet21k.txt").read().split()
for wnid in wnids:
    s = wn.synset_from_pos_and_offset("n", int(wnid[1:]))
    facts = (s.lemma_names(), s.definition(), s.lexname(), s.min_depth(),
             s.hypernyms() + s.instance_hypernyms(), s.hyponyms() + s.instance_hyponyms())
"""


def seconds(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def median(cmd: list[str], repeat: int, env: dict | None = None) -> float:
    return statistics.median(seconds(cmd, env) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from wordnet.provision import locate

    copy = locate()
    nltk_env = {"NLTK_DATA": str(copy.data_root)} if copy.corpus == "corpora/wordnet" else {}
    py = sys.executable

    ours = median([py, "-c", OUR_LOAD], args.repeat)
    stock = median([py, "-c", NLTK_LOAD], args.repeat, nltk_env)
    print(
        f"WordNet load, fresh process: synsetforge {ours:.2f} s (verifies version and noun count), "
        f"stock nltk {stock:.2f} s; ratio {stock / ours:.2f}x"
    )

    with tempfile.TemporaryDirectory() as data:
        make = ["make", "--no-print-directory", "synsets", "SUBSET=imagenet21k", f"DATA={data}", "FORCE=1"]
        ours_21k = median(make, args.repeat)
        skip = seconds(make[:-1])
    peer_21k = median([py, "-c", NLTK_21K], args.repeat, nltk_env)
    verdict = "meets" if ours_21k < TARGET_21K else "MISSES"
    print(
        f"make synsets SUBSET=imagenet21k: {ours_21k:.2f} s ({verdict} the {TARGET_21K:.0f} s target); "
        f"stock nltk facts for the same 21,841 synsets (no queries, no is-a file): {peer_21k:.2f} s; "
        f"ratio {peer_21k / ours_21k:.2f}x"
    )
    print(f"make synsets SUBSET=imagenet21k, rerun with nothing changed: {skip:.2f} s")
    print(f"({os.cpu_count()} CPUs, median of {args.repeat} runs, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
