"""The dataset card: numbers from the stages' tables and reports, the politeness and verification
warnings, unknown sections instead of failures, matplotlib figures, and reruns that skip."""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path

import pytest
from conftest import run_cli, write_images, write_labels, write_synsets
from PIL import Image

from manifests import card
from manifests.card import figures as card_figures
from pipeline import schemas
from pipeline.cli import common_arguments
from pipeline.errors import InputError
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import Layout
from pipeline.tables import write_report, write_table

A, B, C = "n01440764", "n02102040", "n02979186"
WNIDS = (A, B, C)
COUNTS = {"train": 4, "val": 2, "test": 1}  # images per class and split


def run_card(workdir: Path, *options: str) -> None:
    """The stage as ``python -m pipeline card`` runs it, parsed by its own arguments."""
    parser = argparse.ArgumentParser(parents=[common_arguments()])
    card.add_arguments(parser)
    args = parser.parse_args(["--data", str(workdir.parent), "--subset", workdir.name, *options])
    args.workdir = args.data / args.subset
    card.run(args)


def write_stage_report(workdir: Path, declaration: schemas.Report, doc: dict, stage: str | None = None) -> None:
    """A report as its stage writes it: checked against its declaration, at ``reports/<stage>.json``."""
    write_report(Layout(workdir).report(stage or declaration.stage), declaration, doc)


def write_manifests(
    workdir: Path, wnids=WNIDS, verified: str = "yes", counts=COUNTS, names: dict | None = None, licence="cc-by 4.0"
) -> list[tuple[str, str]]:
    """Manifests as the manifests stage writes them; returns the (image_id, wnid) of every row.
    ``names``: class names by wnid (else "class <wnid>"); ``licence``: that of three images in four."""
    meta = {
        "synsetforge.dataset": workdir.name,
        "synsetforge.verified": verified,
        "synsetforge.built_at": "2026-01-01T00:00:00+0000",
        "synsetforge.fingerprint": "f" * 64,
    }
    written = []
    for split, n in counts.items():
        rows = [(label, wnid, f"{wnid}-{split}-{k}") for label, wnid in enumerate(wnids) for k in range(n)]
        written += [(image_id, wnid) for _, wnid, image_id in rows]
        write_table(
            {
                "image_id": [r[2] for r in rows],
                "label": [r[0] for r in rows],
                "wnid": [r[1] for r in rows],
                "location": ["images/shard-00000.parquet"] * len(rows),
                "width": [120] * len(rows),
                "height": [90] * len(rows),
                "sha256": [f"{r[2]:0>64}" for r in rows],
                "phash": list(range(len(written) - len(rows), len(written))),
                "source": ["commons"] * len(rows),
                "source_url": [f"https://upload.example/{r[2]}.jpg" for r in rows],
                "license": [None if k % 4 == 3 else licence for k in range(len(rows))],
                "confidence": [None if verified == "no" else 0.995] * len(rows),
                "votes": [None if verified == "no" else 3] * len(rows),
            },
            Layout(workdir).manifest(split),
            schemas.MANIFEST,
            metadata=meta,
        )
    write_table(
        {
            "label": list(range(len(wnids))),
            "wnid": list(wnids),
            "name": [(names or {}).get(w, f"class {w}") for w in wnids],
            "gloss": ["a test class"] * len(wnids),
            **{s: [n] * len(wnids) for s, n in counts.items()},
        },
        Layout(workdir).classes,
        schemas.CLASSES,
        metadata=meta,
    )
    return written


def politeness(optouts: bool = True, robots: bool = True) -> dict:
    return {
        "respect_optouts": optouts,
        "optout_directives": ["noai", "noimageai"],
        "respect_robots": robots,
        "blocklisted_domains": 2,
        "host_rate": 5.0,
        "host_burst": 10.0,
        "stopped": {"opted_out": 3, "disallowed_by_robots": 2, "robots_unavailable": 0, "blocked_domain": 1},
        "stopped_per_top_host": {"upload.example": {"opted_out": 3}},
    }


def download_report(**rules) -> dict:
    return {
        "settings": {
            "normalise": {"max_side": 500, "min_side": 32, "quality": 90, "keep_original": False},
            "min_per_class": 1,
        },
        "finished_at": "2026-01-01T12:00:00+0000",
        "candidates": 40,
        "ok": 31,
        "ok_percent": 77.5,
        "statuses": {"ok": 31, "http_error": 3, "opted_out": 3, "disallowed_by_robots": 2, "blocked_domain": 1},
        "shards": 1,
        "shards_this_run": 1,
        "bytes_received": 3_000_000,
        "bytes_stored": 2_000_000,
        "worker_seconds_this_run": 1.5,
        "min_per_class": 1,
        "classes_below_min": [],
        "per_class": {w: {"candidates": 13, "ok": 10} for w in WNIDS},
        "top_hosts": {"upload.example": {"ok": 31, "http_error": 3, "opted_out": 3}},
        "status_meaning": {"ok": "fetched, decoded and stored"},
        "politeness": politeness(**rules),
    }


def annotation_report(n: int, agreement: dict | None) -> dict:
    return {
        "settings": {"method": "dynamic", "confidence": 0.99, "max_votes": 15, "min_worker_accuracy": 0.7},
        "rounds": [1],
        "votes": 3 * n,
        "candidate_votes_counted": 3 * n,
        "workers": 4,
        "workers_excluded": ["w3", "w4"],
        "images_asked": n,
        "images_with_votes": n,
        "accepted": n,
        "rejected": 0,
        "undecided": 0,
        "mean_votes_per_image": 3.0,
        "agreement": agreement,
        "per_class": {},
        "last_import": {},
    }


def write_annotation(workdir: Path, written: list[tuple[str, str]]) -> None:
    """Three workers vote on every image: two always yes, one says no to every third image."""
    votes = {name: [] for name in schemas.VOTES.names}
    for k, (image_id, wnid) in enumerate(written):
        for worker, answer in (("w1", True), ("w2", True), ("w3", k % 3 != 0)):
            row = {
                "hit_id": f"r1-{wnid}-0",
                "round": 1,
                "assignment_id": f"r1-{wnid}-0-{worker}",
                "worker_id": worker,
                "image_id": image_id,
                "wnid": wnid,
                "kind": "candidate",
                "answer": answer,
                "source": "mturk",
            }
            for name, value in row.items():
                votes[name].append(value)
    layout = Layout(workdir)
    write_table(votes, layout.votes, schemas.VOTES)
    n = len(written)
    write_labels(
        workdir,
        written,
        confidence=[0.995] * n,
        votes_yes=[2 if k % 3 == 0 else 3 for k in range(n)],
        selection_frequency=[2 / 3 if k % 3 == 0 else 1.0 for k in range(n)],
        method=["dynamic"] * n,
    )
    write_table(
        {
            "worker_id": ["w1", "w2", "w3", "w4"],
            "assignments": [3, 3, 3, 1],
            "control_answers": [6, 6, 6, 6],
            "control_correct": [6, 5, 4, 2],
            "accuracy": [1.0, 5 / 6, 4 / 6, 2 / 6],
            "excluded": [False, False, True, True],
        },
        layout.workers,
        schemas.WORKERS,
    )
    # Counted votes (w3 excluded): w1 and w2 always agree, so every image is unanimous and
    # kappa is undefined, as annotation computes it.
    agreement = {"images": n, "observed": 1.0, "chance": 1.0, "yes_share": 1.0, "kappa": None, "unanimous": 1.0}
    write_stage_report(workdir, schemas.ANNOTATE_IMPORT_REPORT, annotation_report(n, agreement))
    packing = {"per_hit": 42, "positives": 3, "negatives": 3, "votes": 3, "votes_later": 2, "initial": 20}
    write_stage_report(
        workdir,
        schemas.ANNOTATE_EXPORT_REPORT,
        {
            "settings": {"packing": {**packing, "initial_votes": 10, "seed": 0}, "formats": ["mturk"]},
            "round": 1,
            "hits": 3,
            "images": n,
            "answers_wanted": 9,
            "votes_wanted": 3 * n,
            "controls_per_hit": 0.0,
            "hits_without_controls": 3,
            "formats": ["mturk"],
            "image_base_url": "http://127.0.0.1:8650/image",
        },
        stage="annotate-export-1",
    )


@pytest.fixture
def full(tmp_path) -> Path:
    """A dataset folder with every file the stages leave, small."""
    workdir = tmp_path / "set"
    write_synsets(workdir, list(WNIDS))
    written = write_manifests(workdir)
    write_images(
        workdir, [(image_id, wnid, picture_jpeg(wnid, k, 120, 90)) for k, (image_id, wnid) in enumerate(written)]
    )
    write_stage_report(
        workdir,
        schemas.SYNSETS_REPORT,
        {
            "subset": "set",
            "settings": {"wordnet": "3.0", "root": None, "leaves": False, "physical_only": True},
            "wordnet": {"version": "3.0"},
            "num_synsets": 3,
            "num_ancestors": 20,
            "num_is_a_edges": 25,
            "num_ancestor_pairs": 0,
            "ancestor_pairs": [],
            "depth_histogram": {"9": 3},
            "lexnames": {"noun.artifact": 3},
            "duplicate_names": {},
        },
    )
    write_stage_report(
        workdir,
        schemas.CANDIDATES_REPORT,
        {
            "settings": {"source": "commons", "max_per_class": 20},
            "source": "commons",
            "candidates": 40,
            "shards": 1,
            "classes": 3,
            "classes_without_candidates": [],
            "per_class": {w: 13 for w in WNIDS},
        },
    )
    write_stage_report(workdir, schemas.DOWNLOAD_REPORT, download_report())
    write_stage_report(
        workdir,
        schemas.DEDUPE_REPORT,
        {
            "settings": {"radius": 10, "verify": 10, "sheet_clusters": 30},
            "images": 31,
            "kept": 27,
            "dropped": {"near": 3, "conflict": 1},
            "reasons": {"unique": 25, "representative": 2, "near": 3, "conflict": 1},
            "reason_meaning": {"near": "re-encoded, resized or recoloured"},
            "clusters_with_copies": 2,
            "largest_cluster": 3,
            "verified_pairs": {"near": 3},
            "conflicts": [{"cluster_id": 7, "wnids": [A, B], "image_ids": ["x", "y"], "settled_in": None}],
            "unreadable_files": [],
            "per_class": {},
            "seconds": {},
        },
    )
    write_annotation(workdir, written)
    return workdir


def read_card(workdir: Path) -> str:
    return Layout(workdir).card.read_text()


def figures(workdir: Path) -> dict[str, Image.Image]:
    found = {}
    for path in sorted(Layout(workdir).card_figures.glob("*.png")):
        with Image.open(path) as image:
            image.load()  # decodes the whole file
            found[path.stem] = image.copy()
    return found


def test_full_card_states_the_numbers_and_draws_every_figure(full, capsys):
    run_card(full)
    text = read_card(full)
    assert "| train images | 12 |" in text and "| val images | 6 |" in text and "| test images | 3 |" in text
    assert "| train | 12 | 3 | 4 | 4 | 4 |" in text  # split, images, classes with images, min, median, max
    assert "0-based" in text and "sorted-wnid order" in text and f"| 0 | `{A}` | class {A} | 4 | 2 | 1 |" in text
    assert "**Opt-outs respected**" in text and "noai, noimageai" in text and "3 URLs" in text
    assert "**robots.txt respected**" in text and "Domains blocklist: 2 domains" in text
    assert "at most 5 requests a second per host" in text
    assert "NOT respected" not in text and "UNVERIFIED" not in text and "_Unknown" not in text
    assert (
        "| near | 3 | no |" in text and "Conflicts, clusters of copies under two or more classes: 1; 0 settled" in text
    )
    assert "Settings: `radius=10`, `verify=10` (pHash bits" in text
    assert "4 workers" in text and "2 were excluded" in text
    assert "100.0% unanimous" in text and "Fleiss' kappa undefined" in text
    assert "| cc-by 4.0 |" in text and "carry no licence" in text
    assert "stored as JPEG 21" in text
    for name in ("split_counts", "sources_licences", "download", "dedupe", "annotation", "samples-1"):
        assert f"](card/{name}.png)" in text
    drawn = figures(full)
    assert set(drawn) == {"split_counts", "sources_licences", "download", "dedupe", "annotation", "samples-1"}
    for name, image in drawn.items():
        assert 500 <= image.width <= 2000 and 100 <= image.height <= 3000, (name, image.size)
    samples = drawn["samples-1"]
    left, thumb = card_figures.LABEL_COLUMN, card_figures.THUMB
    assert samples.height >= 3 * thumb and samples.width >= left + 8 * thumb
    # a thumbnail is the picture, not the grey placeholder
    assert len(samples.crop((left, 80, left + thumb, 140)).getcolors(10_000)) > 20
    capsys.readouterr()

    before = Layout(full).card.stat().st_mtime_ns
    run_card(full)
    assert "card: up to date" in capsys.readouterr().err
    assert Layout(full).card.stat().st_mtime_ns == before

    write_stage_report(full, schemas.DOWNLOAD_REPORT, download_report(optouts=False))
    run_card(full)
    assert "card: up to date" not in capsys.readouterr().err
    assert "Opt-outs were NOT respected" in read_card(full)
    assert not list(full.glob(".tmp-card-*"))


def test_earlier_stages_settings_come_from_their_reports(full):
    run_card(full)
    text = read_card(full)
    assert "Classes chosen with: `wordnet=3.0`, `leaves=False`, `physical_only=True` (subset `set`)." in text
    assert "Settings: `source=commons`, `max_per_class=20`." in text
    assert "the longer side brought down to 500 px, re-encoded as JPEG quality 90; images under 32 px" in text
    assert "Downloaded: 2026-01-01T12:00:00+0000" in text
    assert "HITs (round 1): 42 candidates plus 3 known positives and 3 known negatives" in text
    assert "Settings: `method=dynamic`, `confidence=0.99`, `max_votes=15`, `min_worker_accuracy=0.7`." in text


def test_agreement_is_the_annotation_reports(full):
    n = len(WNIDS) * sum(COUNTS.values())
    agreement = {"images": n, "observed": 0.8, "chance": 0.5, "yes_share": 0.5, "kappa": 0.6, "unanimous": 0.25}
    write_stage_report(full, schemas.ANNOTATE_IMPORT_REPORT, annotation_report(n, agreement))
    run_card(full)
    assert (
        f"Over the {n} images with two or more counted votes: 25.0% unanimous; 80.0% of pairs of votes on one "
        "image agree (chance alone, with 50.0% yes votes: 50.0%); Fleiss' kappa 0.600"
    ) in read_card(full)


def test_a_renamed_report_key_fails_loudly(full):
    report = download_report()
    report["fetched"] = report.pop("ok")
    Layout(full).report("download").write_text(json.dumps(report))
    with pytest.raises(InputError) as error:
        run_card(full)
    assert "reports/download.json" in str(error.value) and "ok" in str(error.value)
    assert not Layout(full).card.exists()


def test_ignored_optouts_and_robots_are_said_plainly_at_the_top(full):
    write_stage_report(full, schemas.DOWNLOAD_REPORT, download_report(optouts=False, robots=False))
    run_card(full)
    text = read_card(full)
    top = text.split("## At a glance")[0]
    assert "opt-outs were NOT respected" in top and "RESPECT_OPTOUTS=0" in top
    assert "robots.txt was NOT respected" in top and "RESPECT_ROBOTS=0" in top
    assert "**Opt-outs were NOT respected**" in text and "**robots.txt was NOT respected**" in text


def test_unverified_build_with_manifests_only_says_what_is_unknown(tmp_path):
    workdir = tmp_path / "bare"
    write_manifests(workdir, verified="no")
    run_card(workdir)
    text = read_card(workdir)
    assert "labels are UNVERIFIED" in text.split("## At a glance")[0]
    assert "Not for reporting accuracy" in text and "Stages that left their records here: manifests." in text
    assert "| train images | 12 |" in text
    for missing in (
        "`reports/download.json` is absent",
        "`reports/dedupe.json` is absent",
        "`reports/annotate-import.json` is absent",
        "`reports/candidates.json` is absent",
    ):
        assert f"_Unknown: {missing}" in text
    assert "politeness rules in force when the images were fetched are therefore unknown" in text
    assert (
        "the thumbnails are placeholders" in text
        and "Rule: unknown" in text
        and "WordNet make-up of the classes: unknown" in text
    )
    assert "Sections with unknown facts: candidates, download, dedupe, labelling." in text
    drawn = figures(workdir)
    assert set(drawn) == {"split_counts", "sources_licences", "samples-1"}  # no store: placeholder tiles
    assert drawn["samples-1"].height > 3 * card_figures.THUMB


def test_many_classes_draw_a_distribution_and_paged_samples(tmp_path):
    wnids = [f"n{k:08d}" for k in range(1, 71)]
    workdir = tmp_path / "wide"
    write_manifests(workdir, wnids=wnids, counts={"train": 2, "val": 1, "test": 1})
    run_card(workdir, "--samples-per-class", "2", "--sample-classes", "45")
    drawn = figures(workdir)
    assert drawn["split_counts"].height < 600  # one plot, not 70 bars
    assert sorted(n for n in drawn if n.startswith("samples")) == [f"samples-{k}" for k in range(1, 6)]
    text = read_card(workdir)
    assert "Smallest and largest classes" in text and "for 45 classes spread over the labels" in text


def test_missing_manifests_is_a_clear_error_and_writes_nothing(tmp_path):
    workdir = tmp_path / "empty"
    write_synsets(workdir, list(WNIDS))
    with pytest.raises(InputError) as error:
        run_card(workdir)
    assert "manifests" in str(error.value) and "make manifests" in str(error.value)
    assert not Layout(workdir).card.exists() and not Layout(workdir).card_figures.exists()


def table_cells(line: str) -> list[str]:
    """The cells of a Markdown table row by GFM's rule: a ``|`` splits unless backslash-escaped."""
    cells, cell, chars = [], "", iter(line.strip().strip("|"))
    for char in chars:
        if char == "\\":
            cell += char + next(chars, "")
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return cells + [cell.strip()]


def shown(markdown_text: str) -> str:
    """What a renderer shows of Markdown text without markup: backslash escapes, then entities."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown_text))


def test_class_names_and_licences_from_the_data_cannot_inject_html_or_break_a_table(tmp_path):
    hostile = {
        A: "<script>alert(1)</script> | x",
        B: "two\nlines & a [link](javascript:alert(1)) *bold* back\\",
        C: "`ticks` and <img src=x onerror=alert(1)>",
    }
    licence = "<b>CC</b> | BY"
    workdir = tmp_path / "hostile"
    write_manifests(workdir, names=hostile, licence=licence)
    run_card(workdir)
    card_text = read_card(workdir)
    assert "<script" not in card_text and "<img" not in card_text and "<b>" not in card_text
    classes = card_text.split("### Classes")[1].split("\n\n")[1].splitlines()
    assert [table_cells(row)[0] for row in classes] == ["label", "---", "0", "1", "2"]
    for row, wnid in zip(classes[2:], WNIDS):
        cells = table_cells(row)
        assert len(cells) == 6 and cells[1] == f"`{wnid}`"
        assert shown(cells[2]) == " ".join(hostile[wnid].splitlines())
    licences = [table_cells(row) for row in card_text.split("## Licences")[1].splitlines() if row.startswith("|")]
    assert all(len(cells) == 3 for cells in licences)
    assert shown(licences[2][0]) == licence


@pytest.mark.parametrize("option, value", [("--samples-per-class", "-1"), ("--sample-classes", "-2")])
def test_a_negative_sample_count_is_refused_and_the_previous_card_stays(tmp_path, option, value):
    workdir = tmp_path / "set"
    write_manifests(workdir)
    run_card(workdir)
    before = {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}
    done = run_cli("card", "--data", tmp_path, "--subset", "set", option, value)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"python -m pipeline card: error: argument {option}: {value} is out of range: it must be an integer "
        "of at least 0 (--help lists the options)"
    ]
    assert {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()} == before
