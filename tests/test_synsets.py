"""The synsets stage, checked against an independent reading of data.noun (tests/wordnet_facts.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO, rows, run_cli

from pipeline.layout import Layout
from pipeline.schemas import SYNSETS_REPORT
from pipeline.tables import read_report

ENTITY = "n00001740"
TENCH, WHIPPET, DOG, TEDDY = "n01440764", "n02091134", "n02084071", "n04399382"
DEMO = [
    "n01440764",
    "n02102040",
    "n02979186",
    "n03000684",
    "n03028079",
    "n03394916",
    "n03417042",
    "n03425413",
    "n03445777",
    "n03888605",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def built(data):
    """The three bundled subsets, built once for the module."""
    from pipeline.cli import main

    for subset in ("demo", "ilsvrc1k", "imagenet21k"):
        assert main(["synsets", "--data", str(data), "--subset", subset]) == 0
    return {s: {r["wnid"]: r for r in rows(Layout(data / s).synsets)} for s in ("demo", "ilsvrc1k", "imagenet21k")}


def is_a_edges(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in path.read_text().splitlines()]


def first_example_split(gloss: str) -> str:
    return re.split(r'[;:] "', gloss, maxsplit=1)[0].strip().rstrip(";").strip()


@pytest.mark.slow
def test_ilsvrc1k_is_the_1000_classes_and_all_resolve(built, facts):
    table = built["ilsvrc1k"]
    shipped = (REPO / "wordnet" / "data" / "ilsvrc1k.txt").read_text().split()
    assert list(table) == shipped and len(table) == 1000
    assert shipped[0] == TENCH and shipped[-1] == "n15075141"
    assert all(wnid in facts.entries for wnid in table)


def test_class_index_is_sorted_wnid_order(built):
    for table in built.values():
        wnids = list(table)
        assert wnids == sorted(wnids)
        assert [table[w]["class_index"] for w in wnids] == list(range(len(wnids)))


def test_tench_row_matches_data_noun(built, facts):
    tench, entry = built["ilsvrc1k"][TENCH], facts.entries[TENCH]
    assert tench["gloss"] == first_example_split(entry.gloss)
    assert tench["gloss"] == (
        "freshwater dace-like game fish of Europe and western Asia noted for ability to survive outside water"
    )
    assert tench["name"] == "tench"
    assert tench["lemmas"] == [w.replace("_", " ") for w in entry.words] == ["tench", "Tinca tinca"]
    assert entry.lex_filenum == 5 and tench["lexname"] == "noun.animal"  # 05 is noun.animal in lexnames(5WN)
    assert tench["depth"] == facts.depth(TENCH)
    assert tench["parents"] == sorted(facts.parents(TENCH))
    assert tench["num_hyponyms"] == len(facts.children(TENCH))
    assert tench["is_leaf"] is (not facts.children(TENCH))


def test_every_row_agrees_with_data_noun(built, facts):
    for row in built["ilsvrc1k"].values():
        wnid = row["wnid"]
        assert row["depth"] == facts.depth(wnid), wnid
        assert row["parents"] == sorted(facts.parents(wnid)), wnid
        assert row["num_hyponyms"] == len(facts.children(wnid)), wnid
        assert row["gloss"] == first_example_split(facts.entries[wnid].gloss), wnid


def test_teddy_bear_is_in_ilsvrc1k_but_not_in_fall11(built):
    assert TEDDY in built["ilsvrc1k"]
    assert built["ilsvrc1k"][TEDDY]["name"] == "teddy"
    assert TEDDY not in built["imagenet21k"]
    assert len(built["imagenet21k"]) == 21841


def test_demo_is_the_imagenette_ten(built):
    assert list(built["demo"]) == DEMO


@pytest.mark.parametrize("subset", ["ilsvrc1k", "imagenet21k"])
def test_is_a_file_is_the_true_closure_and_every_chain_reaches_entity(built, data, facts, subset):
    edges = is_a_edges(data / subset / "wordnet.is_a.txt")
    parents: dict[str, set[str]] = {}
    for parent, child in edges:
        parents.setdefault(child, set()).add(parent)
    nodes = set(parents) | {p for p, _ in edges}
    for child, found in parents.items():
        assert found == set(facts.parents(child)), child  # each edge is real, and none is missing
    assert nodes == set(built[subset]).union(*(facts.ancestors(w) for w in built[subset]))
    for wnid in built[subset]:
        node = wnid
        while node != ENTITY:
            node = min(parents[node])  # any path up will do: all of them must end at entity
        assert node == ENTITY


def test_words_txt_names_every_wnid_of_the_is_a_file(built, data, facts):
    words = dict(line.split("\t") for line in (data / "ilsvrc1k" / "words.txt").read_text().splitlines())
    assert words[TENCH] == "tench, Tinca tinca"
    assert words[ENTITY] == "entity"
    edges = is_a_edges(data / "ilsvrc1k" / "wordnet.is_a.txt")
    assert set(words) == {w for edge in edges for w in edge}
    for wnid, names in words.items():
        assert names == ", ".join(w.replace("_", " ") for w in facts.entries[wnid].words)


def test_whippet_queries_add_parent_words_found_in_its_gloss(built):
    whippet = built["ilsvrc1k"][WHIPPET]
    assert "dog" in whippet["gloss"] and "greyhound" in whippet["gloss"]
    assert whippet["queries"][0] == "whippet"
    assert "whippet dog" in whippet["queries"]
    assert "whippet greyhound" in whippet["queries"]
    tench = built["ilsvrc1k"][TENCH]
    assert tench["queries"][:2] == ["tench", "Tinca tinca"]
    assert "tench fish" in tench["queries"]  # "game fish of Europe": fish is an ancestor


def test_ilsvrc1k_report_matches_an_independent_ancestor_check(built, data, facts):
    report = read_report(Layout(data / "ilsvrc1k").report("synsets"), SYNSETS_REPORT)
    chosen = set(built["ilsvrc1k"])
    expected = sorted((a, w) for w in chosen for a in facts.ancestors(w) & chosen)
    assert sorted(map(tuple, report["ancestor_pairs"])) == expected
    assert report["num_ancestor_pairs"] == len(expected)
    assert sum(report["depth_histogram"].values()) == 1000
    assert report["lexnames"]["noun.animal"] == sum(1 for w in chosen if facts.entries[w].lex_filenum == 5)
    assert report["duplicate_names"]["crane"] == ["n02012849", "n03126707"]


def test_report_lists_a_class_that_is_an_ancestor_of_another(pipeline, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a dog and a dog breed\n{DOG}\n\n{WHIPPET} whippet\n")
    out = pipeline("synsets", "--data", tmp_path, "--subset", "pair", "--wnids", listing)
    assert out.status == 0, out.err
    report = read_report(Layout(tmp_path / "pair").report("synsets"), SYNSETS_REPORT)
    assert report["ancestor_pairs"] == [[DOG, WHIPPET]]
    assert f"{DOG} dog > {WHIPPET} whippet" in out.err
    stamp = json.loads((tmp_path / "pair" / ".stages" / "synsets.json").read_text())
    assert report["settings"] == stamp["settings"]  # what the runner fingerprinted, for the card


def test_dog_subtree_is_every_hyponym_of_dog(pipeline, tmp_path, facts):
    out = pipeline("synsets", "--data", tmp_path, "--subset", "dogs", "--root", DOG)
    assert out.status == 0, out.err
    got = {r["wnid"] for r in rows(Layout(tmp_path / "dogs").synsets)}
    assert got == facts.descendants(DOG)
    assert len(got) > 150


def test_depth_and_leaves_limit_a_subtree(pipeline, tmp_path, facts):
    assert pipeline("synsets", "--data", tmp_path, "--subset", "d1", "--root", DOG, "--depth", "1").status == 0
    assert {r["wnid"] for r in rows(Layout(tmp_path / "d1").synsets)} == {DOG, *facts.children(DOG)}
    assert pipeline("synsets", "--data", tmp_path, "--subset", "leaves", "--root", DOG, "--leaves").status == 0
    leaves = {r["wnid"] for r in rows(Layout(tmp_path / "leaves").synsets)}
    assert leaves == {w for w in facts.descendants(DOG) if not facts.children(w)}


def test_exclude_drops_whole_subtrees(pipeline, tmp_path, built, facts):
    out = pipeline("synsets", "--data", tmp_path, "--subset", "ilsvrc1k", "--exclude", f"{DOG},n01503061")
    assert out.status == 0, out.err
    got = {r["wnid"] for r in rows(Layout(tmp_path / "ilsvrc1k").synsets)}
    dropped = facts.descendants(DOG) | facts.descendants("n01503061")  # dogs and birds
    assert got == set(built["ilsvrc1k"]) - dropped
    assert 1000 - len(got) > 100 + 50


def test_subtrees_keep_physical_entities_unless_all_nouns(pipeline, tmp_path, facts):
    color = "n04956594"  # color.n.01, an attribute: an abstraction
    out = pipeline("synsets", "--data", tmp_path, "--subset", "colors", "--root", color)
    assert out.status == 2 and "no synset is left" in out.err
    assert not (tmp_path / "colors").exists()
    out = pipeline("synsets", "--data", tmp_path, "--subset", "colors", "--root", color, "--all-nouns")
    assert out.status == 0, out.err
    assert {r["wnid"] for r in rows(Layout(tmp_path / "colors").synsets)} == facts.descendants(color)


def outputs_state(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def test_rerun_skips_and_setting_changes_rerun(pipeline, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{TENCH}\n{WHIPPET}\n")
    args = ("synsets", "--data", tmp_path, "--subset", "mine", "--wnids", listing)
    assert pipeline(*args).status == 0
    before = outputs_state(tmp_path / "mine")

    again = pipeline(*args)
    assert again.status == 0 and "up to date" in again.err and "skipped" in again.err
    assert outputs_state(tmp_path / "mine") == before

    forced = pipeline(*args, "--force")
    assert "up to date" not in forced.err and outputs_state(tmp_path / "mine") != before

    before = outputs_state(tmp_path / "mine")
    changed = pipeline(*args, "--exclude", WHIPPET)
    assert "up to date" not in changed.err
    assert [r["wnid"] for r in rows(Layout(tmp_path / "mine").synsets)] == [TENCH]

    listing.write_text(f"{TENCH}\n{DOG}\n")
    pipeline(*args)
    assert [r["wnid"] for r in rows(Layout(tmp_path / "mine").synsets)] == [TENCH, DOG]

    (tmp_path / "mine" / "words.txt").unlink()
    assert "up to date" not in pipeline(*args).err
    assert (tmp_path / "mine" / "words.txt").exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ("n99999999", "no noun synset at that offset"),
        ("n01440765", "no noun synset at that offset"),
        ("v01234567", "is a verb synset"),
        ("a00001740", "is an adjective synset"),
        ("dog", "expected a wnid"),
        (TENCH, "listed twice (first on line 1)"),
    ],
)
def test_a_bad_wnid_list_names_file_line_and_value(pipeline, tmp_path, line, message):
    listing = tmp_path / "bad.txt"
    listing.write_text(f"{TENCH}\n{line}\n")
    out = pipeline("synsets", "--data", tmp_path / "data", "--subset", "bad", "--wnids", listing)
    assert out.status == 2
    assert f"{listing}:2: wnid {line.split()[0]!r}: {message}" in out.err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--subset", "imagenet1k"], "SUBSET 'imagenet1k': unknown subset"),
        (["--subset", "dogs", "--root", "n99999999"], "ROOT 'n99999999': no noun synset"),
        (["--subset", "dogs", "--root", "v00001740"], "ROOT 'v00001740': is a verb synset"),
        (["--subset", "ilsvrc1k", "--root", DOG], "SUBSET 'ilsvrc1k': ilsvrc1k is a bundled subset"),
        (["--subset", "demo", "--exclude", "n0000"], "EXCLUDE 'n0000': expected a wnid"),
        (["--subset", "demo", "--depth", "2"], "DEPTH and LEAVES apply to a subtree"),
        (["--subset", "x", "--wnids", "/nonexistent/list.txt"], "/nonexistent/list.txt: no such wnid list"),
    ],
)
def test_bad_settings_fail_before_writing(pipeline, tmp_path, args, message):
    out = pipeline("synsets", "--data", tmp_path / "data", *args)
    assert out.status == 2 and message in out.err, out.err
    assert not (tmp_path / "data").exists()


def test_a_failed_run_leaves_the_previous_outputs_as_they_were(pipeline, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{TENCH}\n")
    args = ("synsets", "--data", tmp_path, "--subset", "mine", "--wnids", listing)
    assert pipeline(*args).status == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "mine").iterdir() if p.is_file()}
    listing.write_text(f"{TENCH}\nn99999999\n")
    assert pipeline(*args).status == 2
    after = {p.name: p.read_bytes() for p in (tmp_path / "mine").iterdir() if p.is_file()}
    assert after == before
    assert not list((tmp_path / "mine").glob(".tmp-*"))


@pytest.mark.slow
def test_make_passes_its_variables_to_the_stage(tmp_path, facts):
    import subprocess

    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "synsets",
            f"DATA={tmp_path}",
            "SUBSET=toy",
            f"ROOT={DOG}",
            "DEPTH=1",
            "EXCLUDE=n02085374",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    got = {r["wnid"] for r in rows(Layout(tmp_path / "toy").synsets)}
    assert got == {DOG, *facts.children(DOG)} - {"n02085374"}
    assert "synsets: " in done.stderr


@pytest.mark.slow
def test_every_stage_has_help():
    from pipeline.cli import STAGES, TOOLS

    for name in [*STAGES, *TOOLS]:
        done = run_cli(name, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m pipeline {name}")
    done = run_cli("nonsense")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_a_wnid_list_with_a_byte_order_mark_keeps_its_first_wnid(pipeline, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"\ufeff{TENCH}\r\n{WHIPPET} whippet\r\n".encode())
    out = pipeline(
        "synsets", "--data", tmp_path, "--subset", "bom", "--wnids", listing, "--exclude", f"\ufeff{WHIPPET}"
    )
    assert out.status == 0, out.err
    assert [r["wnid"] for r in rows(Layout(tmp_path / "bom").synsets)] == [TENCH]


@pytest.mark.parametrize(
    "content, message",
    [
        (f"{TENCH}\n\xe9t\xe9\n".encode("latin-1"), ":2: not UTF-8 text (byte 0xe9 at column 1)"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", ":1: not UTF-8 text (byte 0x89 at column 1)"),
        (f"{TENCH}\n".encode() + b"\0" * 5000, ":2: holds a NUL byte at column 1"),
        (f"{TENCH}\n".encode("utf-16"), ":1: is UTF-16 text; save it as UTF-8"),
        (b"", ": the list holds no wnid"),
        ("\ufeff\n# nothing\n".encode(), ": the list holds no wnid"),
        (f"{TENCH}\n{'x' * 5000}\n".encode(), f":2: wnid '{'x' * 40}...': expected a wnid"),
    ],
)
def test_a_wnid_list_that_is_not_utf8_text_is_one_line_naming_file_and_line(pipeline, tmp_path, content, message):
    listing = tmp_path / "list.txt"
    listing.write_bytes(content)
    out = pipeline("synsets", "--data", tmp_path / "data", "--subset", "bad", "--wnids", listing)
    assert out.status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {listing}{message}") and len(lines[0]) < 300
    assert not (tmp_path / "data").exists()


def test_a_negative_depth_is_refused_before_anything_runs(tmp_path):
    done = run_cli("synsets", "--data", tmp_path / "data", "--subset", "dogs", "--root", DOG, "--depth", "-1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m pipeline synsets: error: argument --depth: -1 is out of range: it must be an integer "
        "of at least 0 (--help lists the options)"
    ]
    assert not (tmp_path / "data").exists()
