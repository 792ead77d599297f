"""The candidates stage on real files: ImageNet's URL list format, CSV/TSV/Parquet tables, the demo
source (against a demo image host the test starts, as a user would)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import rows, run_cli, write_synsets

from pipeline import schemas
from pipeline.imagehost import ImageHost
from pipeline.layout import Layout
from pipeline.schemas import candidate_id
from pipeline.tables import read_report

TENCH, GOLDFISH, SHARK = "n01440764", "n01443537", "n01484850"


@pytest.fixture
def workdir(tmp_path) -> Path:
    write_synsets(tmp_path / "fish", [TENCH, GOLDFISH])
    return tmp_path / "fish"


def candidates(workdir: Path) -> list[dict]:
    return [r for p in Layout(workdir).candidate_parts() for r in rows(p)]


def collect(pipeline, workdir: Path, *args):
    return pipeline("candidates", "--data", workdir.parent, "--subset", workdir.name, *args)


def test_imagenet_url_list(pipeline, workdir, tmp_path):
    lines = [
        f"{TENCH}_1\thttp://a.example/1.jpg\n".encode(),
        f"{TENCH}_2\thttp://a.example/2.jpg\n".encode(),
        f"{TENCH}_3\thttp://a.example/1.jpg\n".encode(),  # same URL, same class: one candidate
        f"{GOLDFISH}_7\thttp://a.example/1.jpg\n".encode(),  # same URL, other class: its own candidate
        f"{SHARK}_1\thttp://b.example/shark.jpg\n".encode(),  # not in the subset
        f"{TENCH}_4\thttp://a.example/caf\xe9.jpg\n".encode("latin-1"),  # not UTF-8: read as Latin-1
        f"{TENCH}_5 http://a.example/\n".encode(),  # no path: still a URL
        b"no tab or wnid here\n",  # malformed
        f"{GOLDFISH}_8\thttp://a.example/\u00e9t\u00e9.jpg\n".encode(),  # UTF-8 is fine
    ] + [f"{GOLDFISH}_{i}\thttp://c.example/{i}.jpg\n".encode() for i in range(10, 200)]
    urls = tmp_path / "fall11_urls.txt"
    urls.write_bytes(b"".join(lines))
    out = collect(
        pipeline, workdir, "--source", "urllist", "--urls", urls, "--max-per-class", "50", "--shard-size", "20"
    )
    assert out.status == 0, out.err
    got = candidates(workdir)
    by_class = {w: [r for r in sorted(got, key=lambda r: r["rank"]) if r["wnid"] == w] for w in (TENCH, GOLDFISH)}
    assert [r["url"] for r in by_class[TENCH]] == [
        "http://a.example/1.jpg",
        "http://a.example/2.jpg",
        "http://a.example/caf%E9.jpg",
        "http://a.example/",
    ]
    assert [r["source_id"] for r in by_class[TENCH]] == [f"{TENCH}_{i}" for i in (1, 2, 4, 5)]
    assert len(by_class[GOLDFISH]) == 50 and by_class[GOLDFISH][1]["url"] == "http://a.example/\u00e9t\u00e9.jpg"
    assert [r["rank"] for r in by_class[GOLDFISH]] == list(range(50))
    assert all(r["candidate_id"] == candidate_id(r["wnid"], r["url"]) and r["source"] == "urllist" for r in got)
    assert len({r["candidate_id"] for r in got}) == len(got) == 54
    parts = Layout(workdir).candidate_parts()
    assert [pq.read_metadata(p).num_rows for p in parts] == [20, 20, 14]
    assert [r["candidate_id"] for r in got] == sorted(r["candidate_id"] for r in got)
    report = read_report(Layout(workdir).report("candidates"), schemas.CANDIDATES_REPORT)
    stamp = json.loads((workdir / ".stages" / "candidates.json").read_text())
    assert report["settings"] == stamp["settings"] and report["settings"]["max_per_class"] == 50
    assert report["list"] == {
        "rows": 199,
        "latin1": 1,
        "spaces_encoded": 0,
        "malformed": 1,
        "malformed_lines": [8],
        "other_classes": 1,
        "duplicates": 1,
        "over_cap": 142,
    }
    assert "1 malformed (lines 8)" in out.err and "1 not UTF-8 (read as Latin-1)" in out.err


def test_candidate_ids_are_stable_across_runs_and_orders(pipeline, workdir, tmp_path):
    urls = tmp_path / "list.txt"
    urls.write_text("".join(f"{TENCH}_{i}\thttp://a.example/{i}.jpg\n" for i in range(30)))
    assert collect(pipeline, workdir, "--source", "urllist", "--urls", urls).status == 0
    first = {r["url"]: r["candidate_id"] for r in candidates(workdir)}
    urls.write_text("".join(f"{TENCH}_{i}\thttp://a.example/{i}.jpg\n" for i in reversed(range(30))))
    assert collect(pipeline, workdir, "--source", "urllist", "--urls", urls).status == 0
    assert {r["url"]: r["candidate_id"] for r in candidates(workdir)} == first


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_url_tables(pipeline, workdir, tmp_path, kind):
    records = [
        {"url": f"http://a.example/{i}.jpg", "wnid": [TENCH, GOLDFISH, SHARK][i % 3], "extra": i} for i in range(12)
    ]
    path = tmp_path / f"urls.{kind}"
    if kind == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["url", "wnid", "extra"], delimiter="\t" if kind == "tsv" else ",")
            writer.writeheader()
            writer.writerows(records)
    out = collect(pipeline, workdir, "--source", "urllist", "--urls", path)
    assert out.status == 0, out.err
    got = candidates(workdir)
    assert sorted(r["url"] for r in got) == sorted(r["url"] for r in records if r["wnid"] != SHARK)


def test_bad_url_tables_name_file_line_and_field(pipeline, workdir, tmp_path):
    no_wnid = tmp_path / "no_wnid.csv"
    no_wnid.write_text("url,label\nhttp://a.example/1.jpg,3\n")
    out = collect(pipeline, workdir, "--source", "urllist", "--urls", no_wnid)
    assert out.status == 2 and f"{no_wnid}: wnid: a URL table needs 'wnid' and 'url' columns" in out.err

    bad_wnid = tmp_path / "bad.tsv"
    bad_wnid.write_text(f"wnid\turl\n{TENCH}\thttp://a.example/1.jpg\ntench\thttp://a.example/2.jpg\n")
    out = collect(pipeline, workdir, "--source", "urllist", "--urls", bad_wnid)
    assert out.status == 2 and f"{bad_wnid}:3: wnid 'tench': not a wnid" in out.err

    not_a_list = tmp_path / "notes.txt"
    not_a_list.write_text("these are my notes\nabout fish\n")
    out = collect(pipeline, workdir, "--source", "urllist", "--urls", not_a_list)
    assert out.status == 2 and f"{not_a_list}:1: 2 of 2 lines are not" in out.err
    assert not Layout(workdir).candidates.exists()

    out = collect(pipeline, workdir, "--source", "urllist")
    assert out.status == 1 and "SOURCE=urllist needs URLS=<file>" in out.err


def test_demo_source_lists_what_the_demo_host_lists(pipeline, tmp_path):
    from pipeline.imagehost.demo import catalogue

    demo = ["n01440764", "n02102040", "n02979186"]
    write_synsets(tmp_path / "demo", demo)
    with ImageHost() as host:
        out = pipeline(
            "candidates", "--data", tmp_path, "--subset", "demo", "--demo-per-class", "20", "--api", host.url("")
        )
        assert out.status == 0, out.err
        assert [r.method for r in host.requests_to("/demo/catalogue")] == ["POST"]
    got = candidates(tmp_path / "demo")
    assert len(got) == 60 and {r["source"] for r in got} == {"demo"}
    assert sorted(r["url"] for r in got) == sorted(host.url(item.path) for item in catalogue(demo, 20))
    assert {r["source_id"] for r in got} == {"true", "other_class", "near_copy", "cross_class_copy", "fault"}
    assert all(r["license"] == "cc0 1.0" and r["candidate_id"] == candidate_id(r["wnid"], r["url"]) for r in got)
    part = Layout(tmp_path / "demo").candidate_part(0)
    assert pq.read_schema(part).metadata[b"source"] == b"demo"
    assert pq.read_schema(part).equals(schemas.CANDIDATES, check_metadata=False)


def test_demo_source_without_a_host_says_how_to_start_one(pipeline, tmp_path):
    write_synsets(tmp_path / "demo", ["n01440764", "n02102040"])
    with ImageHost() as gone:
        api = gone.url("")
    out = pipeline("candidates", "--data", tmp_path, "--subset", "demo", "--api", api)
    assert out.status == 1 and f"no demo image host answers at {api}" in out.err
    assert "python -m pipeline.imagehost" in out.err and "make demo" in out.err
    assert not Layout(tmp_path / "demo").candidates.exists()


def test_a_search_source_queries_every_phrase_and_resumes_from_its_cache(pipeline, tmp_path):
    from api_servers import FakeCommons, serving

    workdir = tmp_path / "fish"
    write_synsets(workdir, [TENCH, GOLDFISH], queries={TENCH: ["tench", "tinca tinca"], GOLDFISH: ["goldfish"]})
    fake = FakeCommons(total=30)
    with serving(fake) as api:
        out = collect(pipeline, workdir, "--source", "commons", "--api", api, "--per-query", "4")
        assert out.status == 0, out.err
        sent = len(fake.requests)
        got = sorted(candidates(workdir), key=lambda r: (r["wnid"], r["rank"]))
        assert [r["query"] for r in got if r["wnid"] == TENCH] == ["tench"] * 4 + ["tinca tinca"] * 4
        assert [r["rank"] for r in got if r["wnid"] == TENCH] == list(range(8))
        assert {r["source"] for r in got} == {"commons"} and all(r["license"] and r["title"] for r in got)
        assert sent == 3  # one page of 4 per phrase
        assert (
            collect(pipeline, workdir, "--source", "commons", "--api", api, "--per-query", "4", "--force").status == 0
        )
        assert len(fake.requests) == sent  # every class came from the cache
        assert sorted(candidates(workdir), key=lambda r: (r["wnid"], r["rank"])) == got


def test_a_wnid_that_could_name_a_path_is_refused(pipeline, tmp_path):
    write_synsets(tmp_path / "bad", ["../../escape", TENCH])
    out = pipeline("candidates", "--data", tmp_path, "--subset", "bad", "--source", "demo")
    assert out.status == 2 and "synsets.parquet: row 0: wnid '../../escape': not a wnid" in out.err
    assert not Layout(tmp_path / "bad").candidates.exists()


def one_line_error(done) -> str:
    """The one stderr line of a refused run (no traceback, no progress bar)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def collected(pipeline, workdir, tmp_path) -> dict[Path, bytes]:
    """A dataset with candidates from a good list: each output file's bytes."""
    good = tmp_path / "good.txt"
    good.write_text("".join(f"{TENCH}_{i}\thttp://a.example/{i}.jpg\n" for i in range(5)))
    assert collect(pipeline, workdir, "--source", "urllist", "--urls", good).status == 0
    return {p: p.read_bytes() for p in sorted(Layout(workdir).candidates.iterdir())}


def recollect(workdir: Path, *args):
    return run_cli("candidates", "--data", workdir.parent, "--subset", workdir.name, "--source", "urllist", *args)


def test_random_bytes_are_refused_and_the_candidates_kept(workdir, collected, tmp_path):
    noise = tmp_path / "noise.txt"
    noise.write_bytes(random.Random(7).randbytes(200_000))
    done = recollect(workdir, "--urls", noise)
    assert done.returncode == 2
    error = one_line_error(done)
    assert error.startswith(f"error: {noise}:1: ") and "lines are not '<wnid>_<index><TAB><url>'" in error
    assert "not UTF-8" in error
    assert {p: p.read_bytes() for p in sorted(Layout(workdir).candidates.iterdir())} == collected


@pytest.mark.parametrize(
    "name, text",
    [
        ("empty.txt", ""),
        ("blank.txt", "\n\n"),
        ("header.csv", "wnid,url\n"),
        ("others.txt", f"{SHARK}_1\thttp://b.example/shark.jpg\n"),
    ],
)
def test_a_list_without_a_candidate_is_refused(workdir, collected, tmp_path, name, text):
    urls = tmp_path / name
    urls.write_text(text)
    done = recollect(workdir, "--urls", urls)
    assert done.returncode == 2
    assert one_line_error(done).startswith(f"error: {urls}: ") and "no candidates" in done.stderr
    assert {p: p.read_bytes() for p in sorted(Layout(workdir).candidates.iterdir())} == collected


def test_lines_not_utf8_are_read_as_latin1_and_those_not_in_form_are_malformed(pipeline, workdir, tmp_path):
    lines = [f"{TENCH}_{i}\thttp://a.example/{i}.jpg\n".encode() for i in range(300)]
    lines[40] = b"\xff\xfe not text\n"
    lines[41] = f"{TENCH}_41\thttp://a.example/caf\xe9.jpg\n".encode("latin-1")
    urls = tmp_path / "list.txt"
    urls.write_bytes(b"".join(lines))
    out = collect(pipeline, workdir, "--source", "urllist", "--urls", urls)
    assert out.status == 0, out.err
    listed = read_report(Layout(workdir).report("candidates"), schemas.CANDIDATES_REPORT)["list"]
    assert (listed["malformed"], listed["latin1"], listed["malformed_lines"]) == (1, 2, [41])
    assert "1 malformed (lines 41)" in out.err
    assert len(candidates(workdir)) == 299


@pytest.mark.parametrize("kind", ["txt", "csv", "tsv"])
def test_a_byte_order_mark_keeps_the_first_line(pipeline, workdir, tmp_path, kind):
    """200 lines: one lost line would be under the 1% of malformed lines a list may have."""
    urls = [f"http://a.example/{i}.jpg" for i in range(200)]
    if kind == "txt":
        text = "".join(f"{TENCH}_{i}\t{url}\n" for i, url in enumerate(urls))
    else:
        sep = "," if kind == "csv" else "\t"
        text = f"wnid{sep}url\n" + "".join(f"{TENCH}{sep}{url}\n" for url in urls)
    path = tmp_path / f"bom.{kind}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    out = collect(pipeline, workdir, "--source", "urllist", "--urls", path)
    assert out.status == 0, out.err
    assert sorted(r["url"] for r in candidates(workdir)) == sorted(urls)
    assert read_report(Layout(workdir).report("candidates"), schemas.CANDIDATES_REPORT)["list"]["malformed"] == 0


def test_a_csv_field_over_the_csv_limit_names_its_line(workdir, collected, tmp_path):
    urls = tmp_path / "long.csv"
    urls.write_text(f"wnid,url\n{TENCH},http://a.example/1.jpg\n{TENCH},http://a.example/{'x' * 200_000}.jpg\n")
    done = recollect(workdir, "--urls", urls)
    assert done.returncode == 2
    error = one_line_error(done)
    assert error.startswith(f"error: {urls}:3: not a readable CSV record (field larger than field limit")
    assert {p: p.read_bytes() for p in sorted(Layout(workdir).candidates.iterdir())} == collected


def test_a_csv_list_that_is_not_utf8_names_the_line_and_column(workdir, collected, tmp_path):
    """The decoder stops in a block of the file; the error still names the line (past 8 KB)."""
    lines = [f"{TENCH},http://a.example/{i}.jpg\n".encode() for i in range(500)]
    lines[400] = f"{TENCH},http://a.example/caf\xe9.jpg\n".encode("latin-1")
    urls = tmp_path / "latin.csv"
    urls.write_bytes(b"\xef\xbb\xbfwnid,url\r\n" + b"".join(lines))
    done = recollect(workdir, "--urls", urls)
    assert done.returncode == 2
    column = len(f"{TENCH},http://a.example/caf") + 1
    assert one_line_error(done) == (
        f"error: {urls}:402: not UTF-8 text (byte 0xe9 at column {column}): save it as UTF-8"
    )
    assert {p: p.read_bytes() for p in sorted(Layout(workdir).candidates.iterdir())} == collected


@pytest.mark.parametrize(
    "option, value",
    [("--shard-size", "0"), ("--max-per-class", "0"), ("--per-query", "-1"), ("--demo-per-class", "0")],
)
def test_an_out_of_range_setting_is_refused_before_anything_runs(workdir, collected, tmp_path, option, value):
    urls = tmp_path / "other.txt"
    urls.write_text(f"{GOLDFISH}_1\thttp://a.example/other.jpg\n")
    done = recollect(workdir, "--urls", urls, option, value)
    assert done.returncode == 2
    assert f"{option}: {value} is out of range" in one_line_error(done)
    assert {p: p.read_bytes() for p in sorted(Layout(workdir).candidates.iterdir())} == collected
