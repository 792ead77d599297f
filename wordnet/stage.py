"""The synsets stage: choose the dataset's classes in WordNet 3.0 and describe them.

Writes, under ``$(DATA)/$(SUBSET)/``:

- ``synsets.parquet`` (schema ``pipeline.schemas.SYNSETS``), one row per class;
- ``words.txt`` (``wnid<TAB>lemma, lemma``) and ``wordnet.is_a.txt`` (``parent child``), ImageNet's
  own files, over the classes and all their ancestors up to entity;
- ``reports/synsets.json`` (``pipeline.schemas.SYNSETS_REPORT``): the settings, classes that are
  ancestors of other classes (ILSVRC promises none), the depth histogram, lexname counts and
  class names used twice.

Paths are ``pipeline.layout``'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

from pipeline import layout, runner, schemas
from pipeline.layout import Layout
from pipeline.progress import progress
from pipeline.settings import integer
from pipeline.tables import write_report, write_table

from . import provision
from .hierarchy import WordNet, load, wnid_of
from .queries import expand
from .subsets import BUNDLED, Selection, check_selection, select, wnid_items

HELP = "choose the classes in WordNet 3.0: synsets.parquet, words.txt, wordnet.is_a.txt"
OUTPUTS = (layout.SYNSETS, layout.WORDS, layout.IS_A, layout.report_name("synsets"))
SHOWN_PAIRS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        f"Bundled subsets: {', '.join(sorted(BUNDLED))}. Any other SUBSET names a new one, chosen by --root or --wnids."
    )
    parser.add_argument("--root", metavar="WNID", help="every hyponym of this synset (make: ROOT)")
    parser.add_argument(
        "--depth", type=integer(0), metavar="N", help="with --root: at most N levels below it (make: DEPTH)"
    )
    parser.add_argument("--leaves", action="store_true", help="with --root: leaf synsets only (make: LEAVES=1)")
    parser.add_argument(
        "--wnids", type=Path, metavar="FILE", help="a list of wnids, one per line, first on the line (make: WNIDS)"
    )
    parser.add_argument(
        "--exclude",
        default="",
        metavar="WNID,...",
        help="drop these synsets and their subtrees, e.g. n00007846 (person) (make: EXCLUDE)",
    )
    parser.add_argument(
        "--all-nouns",
        action="store_true",
        help="with --root: keep abstract synsets too, not only physical entities (make: ALL_NOUNS=1)",
    )


def selection(args: argparse.Namespace) -> Selection:
    return Selection(
        subset=args.subset,
        wnids_file=args.wnids.resolve() if args.wnids else None,
        root=args.root or None,
        depth=args.depth,
        leaves=args.leaves,
        exclude=wnid_items(args.exclude),
        physical_only=not args.all_nouns,
    )


def run(args: argparse.Namespace) -> None:
    sel = selection(args)
    check_selection(sel)
    list_file = sel.list_file()
    settings = {
        "wordnet": provision.VERSION,
        "root": sel.root,
        "depth": sel.depth,
        "leaves": sel.leaves,
        "exclude": sel.exclude,
        "physical_only": sel.physical_only,
    }
    stage = runner.Stage(
        name="synsets",
        workdir=args.workdir,
        outputs=OUTPUTS,
        inputs=(list_file,) if list_file else (),
        settings=settings,
    )
    runner.run(stage, lambda tmp: build(sel, settings, tmp), force=args.force)


def build(sel: Selection, settings: dict, out: Path) -> str:
    built = Layout(out)
    wordnet = load()
    synsets = select(wordnet, sel)
    chosen = {wnid_of(s) for s in synsets}
    rows: dict[str, list] = {field.name: [] for field in schemas.SYNSETS}
    for index, synset in enumerate(progress(synsets, desc="synsets", unit="synset", delay=2)):
        gloss = wordnet.gloss(synset)
        lemmas = wordnet.lemmas(synset)
        children = wordnet.children(synset)
        rows["wnid"].append(wnid_of(synset))
        rows["class_index"].append(index)
        rows["name"].append(lemmas[0])
        rows["lemmas"].append(lemmas)
        rows["gloss"].append(gloss)
        rows["lexname"].append(synset.lexname())
        rows["depth"].append(wordnet.depth(synset))
        rows["parents"].append(sorted(wnid_of(p) for p in wordnet.parents(synset)))
        rows["num_hyponyms"].append(len(children))
        rows["is_leaf"].append(not children)
        rows["queries"].append(expand(wordnet, synset, gloss))

    closure = set(chosen).union(*(wordnet.ancestors(s) for s in synsets))
    nodes = sorted(closure)
    edges = sorted((wnid_of(parent), wnid) for wnid in nodes for parent in wordnet.parents(wordnet.synset(wnid)))
    built.is_a.write_text("".join(f"{p} {c}\n" for p, c in edges))
    built.words.write_text("".join(f"{w}\t{', '.join(wordnet.lemmas(wordnet.synset(w)))}\n" for w in nodes))

    names = dict(zip(rows["wnid"], rows["name"]))
    report = {
        "settings": settings,
        **hierarchy_report(wordnet, sel, synsets, chosen, rows, names, len(nodes), len(edges)),
    }
    write_report(built.report("synsets"), schemas.SYNSETS_REPORT, report)
    print_report(report, names)
    write_table(rows, built.synsets, schemas.SYNSETS, metadata={"subset": sel.subset, "wordnet": provision.VERSION})
    queries = sum(len(q) for q in rows["queries"])
    return (
        f"{len(synsets)} synsets of {sel.subset}, {len(nodes) - len(chosen)} ancestors, "
        f"{len(edges)} is-a edges, {queries} queries"
    )


def hierarchy_report(
    wordnet: WordNet,
    sel: Selection,
    synsets: list,
    chosen: set[str],
    rows: dict[str, list],
    names: dict[str, str],
    num_nodes: int,
    num_edges: int,
) -> dict:
    pairs = [[a, wnid_of(s)] for s in synsets for a in sorted(wordnet.ancestors(s) & chosen)]
    by_name: dict[str, list[str]] = {}
    for wnid, name in names.items():
        by_name.setdefault(name, []).append(wnid)
    return {
        "subset": sel.subset,
        "wordnet": {"version": wordnet.version, "source": wordnet.copy.origin},
        "num_synsets": len(synsets),
        "num_ancestors": num_nodes - len(chosen),
        "num_is_a_edges": num_edges,
        "num_ancestor_pairs": len(pairs),
        "ancestor_pairs": pairs,  # [ancestor, descendant]; words.txt names them
        "depth_histogram": {str(d): n for d, n in sorted(Counter(rows["depth"]).items())},
        "lexnames": dict(Counter(rows["lexname"]).most_common()),
        "duplicate_names": {n: w for n, w in sorted(by_name.items()) if len(w) > 1},
    }


def print_report(report: dict, names: dict[str, str]) -> None:
    depths = [int(d) for d, n in report["depth_histogram"].items() for _ in range(n)]
    lines = [
        f"synsets: {report['num_synsets']} classes, depth {min(depths)}..{max(depths)} "
        f"(median {statistics.median(depths):g}), WordNet {report['wordnet']['version']} "
        f"from {report['wordnet']['source']}",
        f"synsets: {report['num_ancestor_pairs']} pairs where one class is an ancestor of another",
    ]
    lines += [f"  {a} {names[a]} > {d} {names[d]}" for a, d in report["ancestor_pairs"][:SHOWN_PAIRS]]
    if report["num_ancestor_pairs"] > SHOWN_PAIRS:
        lines.append(f"  ... {report['num_ancestor_pairs'] - SHOWN_PAIRS} more in {layout.report_name('synsets')}")
    lines.append("synsets: lexnames " + ", ".join(f"{k} {v}" for k, v in list(report["lexnames"].items())[:6]))
    if report["duplicate_names"]:
        lines.append(
            f"synsets: {len(report['duplicate_names'])} names used by two or more classes, e.g. "
            + ", ".join(f"{n} ({' '.join(w)})" for n, w in list(report["duplicate_names"].items())[:3])
        )
    print("\n".join(lines), file=sys.stderr)
