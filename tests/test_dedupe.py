"""Dedupe: the pair search against brute force, clusters and conflicts on a handmade set of
real JPEG bytes, and the stage on a folder and on the download store."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import jpeg, rows
from PIL import Image, ImageEnhance, ImageOps

from pipeline import runner, schemas, store
from pipeline.dedupe.clusters import cluster
from pipeline.dedupe.folder import hash_folder
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import Layout
from pipeline.nearcopies import DedupeSettings, near_pairs, plan_blocks
from pipeline.schemas import candidate_id
from pipeline.tables import read_report, write_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from dedupe_speed import planted  # noqa: E402  (the speed bench's hashes, searched alike)

A, B, C = "n01440764", "n02102040", "n02979186"


def planted_with_equals(n: int, radius: int, seed: int = 0) -> np.ndarray:
    """The speed bench's random hashes with their 1% near copies, and three equal values (1, 2, 3)."""
    hashes, _ = planted(n, radius, seed)
    hashes[1] = hashes[2] = hashes[3]
    return hashes


@pytest.mark.parametrize("radius", [0, 3, 8, 10, 12])
def test_the_index_finds_exactly_the_brute_force_pairs(radius):
    hashes = planted_with_equals(4000, max(radius, 1))
    index = near_pairs(hashes, radius, method="index")
    brute = near_pairs(hashes, radius, method="brute")
    assert len(index) == len(index.as_set()) == len(brute)  # every pair once
    assert index.as_set() == brute.as_set()
    assert (index.left < index.right).all()
    assert {(1, 2), (1, 3), (2, 3)} <= index.as_set()
    xor = hashes[index.left] ^ hashes[index.right]
    assert (np.bitwise_count(xor) == index.distance).all() and (index.distance <= radius).all()
    assert len(brute) >= 40 if radius else len(brute) == 3


def test_the_index_joins_two_sets_and_takes_signed_hashes():
    queries = planted_with_equals(3000, 10, seed=1)
    others = np.concatenate([planted_with_equals(2000, 10, seed=2), queries[:50] ^ np.uint64(0b1011)])
    index = near_pairs(queries.view(np.int64), 9, others.view(np.int64), method="index")
    brute = near_pairs(queries, 9, others, method="brute")
    assert index.as_set() == brute.as_set() and len(index) == len(brute)
    assert {(k, 2000 + k) for k in range(50)} <= index.as_set()


def test_the_block_plan_keeps_the_pigeonhole_guarantee():
    for n, radius in [(10, 10), (10**5, 10), (10**6, 10), (10**7, 8), (10**6, 0), (10**6, 20)]:
        blocks = plan_blocks(n, n, radius)
        # Two hashes r+1 bits apart, spread so that each block just misses its radius: the
        # sum of (block radius + 1) over the blocks must exceed the search radius.
        assert sum(b.radius + 1 for b in blocks) > radius, (n, radius, blocks)
        assert sum(b.bits for b in blocks) <= 64


def picture(wnid: str, n: int) -> Image.Image:
    return Image.open(io.BytesIO(picture_jpeg(wnid, n, 400, 300))).convert("RGB")


def handmade_folder(root: Path) -> Path:
    """Class folders holding: a picture and its resized copy, re-encode, mirror image and
    crop; an exact byte copy; the same picture under two classes; distinct pictures."""
    original = Image.open(io.BytesIO(picture_jpeg(A, 1, 480, 360))).convert("RGB")
    smaller = original.resize((400, 300))
    files = {
        f"{A}/original.jpg": jpeg(original),
        f"{A}/half.jpg": jpeg(original.resize((240, 180))),
        f"{A}/reencoded.jpg": jpeg(smaller, 50),
        f"{A}/mirror.jpg": jpeg(ImageOps.mirror(smaller)),
        f"{A}/cropped.jpg": jpeg(original.crop((24, 18, 456, 342))),
        f"{A}/brighter.jpg": jpeg(ImageEnhance.Brightness(smaller).enhance(1.2)),
        f"{A}/other.jpg": picture_jpeg(A, 2, 400, 300),
        f"{B}/own.jpg": picture_jpeg(B, 3, 400, 300),
        f"{B}/own-copy.jpg": picture_jpeg(B, 3, 400, 300),
        f"{B}/shared.jpg": picture_jpeg(C, 4, 400, 300),
        f"{C}/shared.jpg": picture_jpeg(C, 4, 400, 300),
        f"{C}/shared-small.jpg": jpeg(picture(C, 4).resize((300, 225))),
        f"{C}/alone.jpg": picture_jpeg(C, 5, 400, 300),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / A / "notes.txt").write_text("not an image")
    (root / A / "broken.jpg").write_bytes(files[f"{A}/original.jpg"][:300])
    return root


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    root = handmade_folder(tmp_path_factory.mktemp("handmade"))
    hashes, failures = hash_folder(root, processes=2)
    return root, hashes, failures


def by_id(table: pa.Table) -> dict[str, dict]:
    return {row["image_id"]: row for row in table.to_pylist()}


def test_a_folder_is_hashed_by_class_and_unreadable_files_are_listed(handmade):
    _, hashes, failures = handmade
    assert [f for f, _ in failures] == [f"{A}/broken.jpg"]
    assert hashes.num_rows == 13 and hashes.schema.equals(schemas.HASHES, check_metadata=False)
    row = by_id(hashes)[f"{A}/half.jpg"]
    assert (row["wnid"], row["width"], row["height"], row["rank"]) == (A, 240, 180, 0)


def test_clusters_reasons_representatives_and_conflicts(handmade):
    _, hashes, _ = handmade
    result = cluster(hashes)
    got = by_id(result.table)
    family = [f"{A}/{n}.jpg" for n in ("original", "half", "reencoded", "mirror", "cropped", "brighter")]
    assert len({got[f]["cluster_id"] for f in family}) == 1
    assert {got[f]["representative"] for f in family} == {f"{A}/original.jpg"}  # the largest
    reasons = {f: got[f]["reason"] for f in family}
    assert reasons == {
        f"{A}/original.jpg": "representative",
        f"{A}/half.jpg": "near",
        f"{A}/reencoded.jpg": "near",
        f"{A}/mirror.jpg": "mirror",
        f"{A}/cropped.jpg": "crop",
        f"{A}/brighter.jpg": "near",
    }
    assert [f for f in family if got[f]["keep"]] == [f"{A}/original.jpg"]
    # Equal bytes: equal area and rank, so the smaller image_id is kept.
    assert got[f"{B}/own.jpg"]["reason"] == "exact" and got[f"{B}/own.jpg"]["distance"] == 0
    assert got[f"{B}/own-copy.jpg"]["reason"] == "representative" and got[f"{B}/own-copy.jpg"]["keep"]
    shared = [f"{B}/shared.jpg", f"{C}/shared.jpg", f"{C}/shared-small.jpg"]
    assert {got[f]["reason"] for f in shared} == {"conflict"} and not any(got[f]["keep"] for f in shared)
    assert [c["wnids"] for c in result.counts["conflicts"]] == [[B, C]]
    for alone in (f"{A}/other.jpg", f"{C}/alone.jpg"):
        assert (got[alone]["reason"], got[alone]["keep"], got[alone]["representative"]) == ("unique", True, alone)
    assert len({got[f]["cluster_id"] for f in got}) == 5


def test_the_order_of_the_input_does_not_change_the_clusters(handmade):
    _, hashes, _ = handmade
    shuffled = hashes.take(np.random.default_rng(0).permutation(hashes.num_rows))
    first, second = by_id(cluster(hashes).table), by_id(cluster(shuffled).table)
    assert {k: (v["representative"], v["reason"], v["keep"]) for k, v in first.items()} == {
        k: (v["representative"], v["reason"], v["keep"]) for k, v in second.items()
    }


def test_accepted_labels_settle_a_conflict_and_a_reference_drops_its_copies(handmade):
    _, hashes, _ = handmade
    got = by_id(cluster(hashes, accepted={(f"{C}/shared-small.jpg", C)}).table)
    assert got[f"{C}/shared-small.jpg"]["keep"] and got[f"{C}/shared-small.jpg"]["reason"] == "representative"
    assert not got[f"{C}/shared.jpg"]["keep"] and not got[f"{B}/shared.jpg"]["keep"]
    assert got[f"{B}/shared.jpg"]["representative"] == f"{C}/shared-small.jpg"
    both = by_id(cluster(hashes, accepted={(f"{C}/shared.jpg", C), (f"{B}/shared.jpg", B)}).table)
    assert not any(both[f]["keep"] for f in (f"{B}/shared.jpg", f"{C}/shared.jpg"))  # still a conflict

    test_set = hashes.filter(pa.compute.equal(hashes.column("image_id"), f"{A}/half.jpg")).select(["phash"])
    got = by_id(cluster(hashes, reference=test_set).table)
    assert {got[f"{A}/{n}.jpg"]["reason"] for n in ("original", "mirror", "cropped", "brighter")} == {"reference"}
    assert not got[f"{A}/original.jpg"]["keep"] and got[f"{A}/other.jpg"]["keep"]


def test_verification_rejects_a_phash_match_whose_dhash_disagrees(handmade):
    _, hashes, _ = handmade
    loose = by_id(cluster(hashes, DedupeSettings(radius=63, verify=64)).table)
    assert len({row["cluster_id"] for row in loose.values()}) == 1  # radius 63 joins everything
    verified = by_id(cluster(hashes, DedupeSettings(radius=63, verify=10)).table)
    assert len({row["cluster_id"] for row in verified.values()}) > 1


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_the_stage_on_a_folder_writes_its_outputs_and_skips_a_rerun(handmade, pipeline, tmp_path):
    root = handmade[0]
    outcome = pipeline("dedupe", "--data", tmp_path, "--subset", "mine", "--folder", root, "--radius", "11")
    assert outcome.status == 0, outcome.err
    out = Layout(tmp_path / "mine")
    clusters = {r["image_id"]: r for r in rows(out.clusters)}
    assert len(clusters) == 13 and len(rows(out.hashes)) == 13
    report = read_report(out.report("dedupe"), schemas.DEDUPE_REPORT)
    stamp = json.loads((out.root / runner.STAMPS / "dedupe.json").read_text())
    assert report["settings"] == stamp["settings"]  # the settings the runner fingerprinted
    assert (report["settings"]["radius"], report["settings"]["verify"], report["settings"]["folder"]) == (
        11,
        10,
        str(root),
    )
    assert report["kept"] == 4 and report["dropped"] == {"exact": 1, "near": 3, "mirror": 1, "crop": 1, "conflict": 3}
    assert report["per_class"][A] == {"images": 7, "kept": 2, "near": 3, "mirror": 1, "crop": 1}
    assert report["unreadable_files"][0]["file"] == f"{A}/broken.jpg" and "broken.jpg" in outcome.err
    page = _Images()
    page.feed(out.contact_sheet.read_text())
    assert len(page.sources) >= 13
    for source in page.sources:
        Image.open(io.BytesIO(__import__("base64").b64decode(source.split(",", 1)[1]))).verify()
    again = pipeline("dedupe", "--data", tmp_path, "--subset", "mine", "--folder", root, "--radius", "11")
    assert again.status == 0 and "up to date" in again.err


def test_bad_inputs_are_clear_errors(pipeline, tmp_path):
    missing = pipeline("dedupe", "--data", tmp_path, "--subset", "none")
    assert missing.status == 2 and "images" in missing.err and "make download" in missing.err
    not_a_folder = pipeline("dedupe", "--data", tmp_path, "--subset", "none", "--folder", tmp_path / "nope")
    assert not_a_folder.status == 2 and "nope" in not_a_folder.err
    (tmp_path / "pics" / A).mkdir(parents=True)
    (tmp_path / "pics" / A / "x.jpg").write_bytes(picture_jpeg(A, 1))
    reference = tmp_path / "reference.parquet"
    write_table({"other": [1]}, reference, pa.schema([pa.field("other", pa.int64())]))
    bad_reference = pipeline(
        "dedupe", "--data", tmp_path, "--subset", "x", "--folder", tmp_path / "pics", "--reference", reference
    )
    assert bad_reference.status == 2 and "reference.parquet" in bad_reference.err and "phash" in bad_reference.err
    assert not Layout(tmp_path / "x").dedupe.exists()


def test_the_stage_reads_the_download_store_without_decoding(host_store, pipeline):
    workdir, ok = host_store
    outcome = pipeline("dedupe", "--data", workdir.parent, "--subset", workdir.name)
    assert outcome.status == 0, outcome.err
    layout = Layout(workdir)
    hashes = {r["image_id"]: r for r in rows(layout.hashes)}
    images = {r["image_id"]: r for r in rows(store.shard_path(layout.images, 0))}
    assert hashes.keys() == images.keys() == ok
    for image_id, row in hashes.items():
        assert row["location"] == "images/shard-00000.parquet"
        assert {k: row[k] for k in ("phash", "dhash_inner", "sha256", "rank")} == {
            k: images[image_id][k] for k in ("phash", "dhash_inner", "sha256", "rank")
        }
    clusters = {r["image_id"]: r for r in rows(layout.clusters)}
    copies = [i for i, r in images.items() if "copy=" in r["url"]]
    assert copies and all(clusters[i]["reason"] in ("near", "crop") for i in copies)


@pytest.fixture
def host_store(tmp_path):
    """A download of pictures and near copies from the local image host."""
    from test_download import write_candidates

    from pipeline.cli import main
    from pipeline.imagehost import ImageHost

    with ImageHost() as host:
        urls = [host.url(f"/picture/{A}/{n}.jpg") for n in range(6)]
        urls += [host.url(f"/picture/{A}/{n}.jpg?copy={k}") for n in range(2) for k in (1, 2)]
        workdir = tmp_path / "store"
        write_candidates(workdir, urls)
        assert (
            main(
                [
                    "download",
                    "--data",
                    str(tmp_path),
                    "--subset",
                    "store",
                    "--allow-private-hosts",
                    "--host-rate",
                    "0",
                    "--processes",
                    "1",
                ]
            )
            == 0
        )
    return workdir, {candidate_id(A, u) for u in urls}


def test_real_photos_and_their_copies_are_found_without_false_pairs(shared, tmp_path):
    """The quality bench's transforms at the default settings, as a behaviour check."""
    photos = sorted((shared / "data" / "real-photos" / "imagenet-samples").glob("*.JPEG"))[:60]
    root = tmp_path / "photos"
    for number, path in enumerate(photos):
        image = Image.open(path).convert("RGB")
        w, h = image.size
        copies = {
            "q50": jpeg(image, 50),
            "half": jpeg(image.resize((w // 2, h // 2))),
            "crop": jpeg(image.crop((round(w * 0.05), round(h * 0.05), w - round(w * 0.05), h - round(h * 0.05)))),
            "bright": jpeg(ImageEnhance.Brightness(image).enhance(1.2)),
            "rotate": jpeg(image.rotate(3, resample=Image.Resampling.BICUBIC)),
            "flip": jpeg(ImageOps.mirror(image)),
        }
        folder = root / f"photo{number:03d}"
        folder.mkdir(parents=True)
        shutil.copy(path, folder / "original.jpg")
        for name, data in copies.items():
            (folder / f"{name}.jpg").write_bytes(data)
    hashes, failures = hash_folder(root, processes=2)
    assert not failures
    table = cluster(hashes).table.to_pylist()
    assert not [r for r in table if r["reason"] == "conflict"]  # two photos were never joined
    cluster_of = {r["image_id"]: r["cluster_id"] for r in table}
    together = [
        cluster_of[f"photo{n:03d}/{name}.jpg"] == cluster_of[f"photo{n:03d}/original.jpg"]
        for n in range(len(photos))
        for name in copies
    ]
    assert np.mean(together) >= 0.95


@pytest.mark.slow
def test_a_folder_hashed_by_ray_tasks_equals_the_local_hashing(handmade):
    pytest.importorskip("ray", reason="ray is not installed (the dev extra has it)")
    root, local, failures = handmade
    on_ray, ray_failures = hash_folder(root, processes=1, executor="ray")
    assert on_ray.equals(local) and ray_failures == failures


def small_folder(root: Path) -> Path:
    """Two classes of two distinct pictures each."""
    for wnid in (A, B):
        (root / wnid).mkdir(parents=True)
        for n in range(2):
            (root / wnid / f"{n}.jpg").write_bytes(picture_jpeg(wnid, n, 160, 120))
    return root


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


BAD_TABLES = {  # what a hostile or hurried user passes for a Parquet table
    "text": lambda path: path.write_text("phash\n1\n"),
    "empty": lambda path: path.write_bytes(b""),
    "folder": lambda path: path.mkdir(),
    "missing": lambda path: None,
}


@pytest.mark.parametrize(
    "option, kind, message",
    [
        ("--reference", "text", "not a readable Parquet file"),
        ("--reference", "empty", "not a readable Parquet file"),
        ("--reference", "folder", "not a readable Parquet file"),
        ("--reference", "missing", "no such file"),
        ("--labels", "folder", "not a readable Parquet file"),
        ("--labels", "missing", "no such labels table"),
    ],
)
def test_a_reference_or_labels_file_that_is_not_parquet_is_one_line_naming_it(
    pipeline, tmp_path, option, kind, message
):
    folder = small_folder(tmp_path / "pics")
    table = tmp_path / "table.parquet"
    BAD_TABLES[kind](table)
    out = pipeline("dedupe", "--data", tmp_path / "data", "--subset", "x", "--folder", folder, option, table)
    assert out.status == 2
    assert one_error_line(out.err).startswith(f"error: {table}: ") and message in out.err
    assert not (tmp_path / "data").exists()


def test_symbolic_links_are_followed_broken_ones_listed_and_a_rerun_sees_inside_them(pipeline, tmp_path):
    elsewhere = small_folder(tmp_path / "elsewhere")
    root = tmp_path / "pics"
    (root / C).mkdir(parents=True)
    (root / C / "own.jpg").write_bytes(picture_jpeg(C, 7, 160, 120))
    (root / C / "linked.jpg").symlink_to(elsewhere / A / "0.jpg")
    (root / C / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (root / C / "circle.jpg").symlink_to("circle.jpg")
    (root / B).symlink_to(elsewhere / B, target_is_directory=True)
    args = ("dedupe", "--data", tmp_path / "data", "--subset", "x", "--folder", root)
    out = pipeline(*args)
    assert out.status == 0, out.err
    layout = Layout(tmp_path / "data" / "x")
    assert sorted(r["image_id"] for r in rows(layout.hashes)) == [
        f"{B}/0.jpg",
        f"{B}/1.jpg",
        f"{C}/linked.jpg",
        f"{C}/own.jpg",
    ]
    skipped = read_report(layout.report("dedupe"), schemas.DEDUPE_REPORT)["unreadable_files"]
    assert [(f["file"], f["error"].split(":")[0]) for f in skipped] == [
        (f"{C}/circle.jpg", "symbolic link to 'circle.jpg'"),
        (f"{C}/gone.jpg", f"symbolic link to '{tmp_path / 'nowhere.jpg'}'"),
    ]
    assert f"skipped: {C}/gone.jpg" in out.err and f"skipped: {C}/circle.jpg" in out.err
    assert "up to date" in pipeline(*args).err
    (elsewhere / B / "1.jpg").write_bytes(picture_jpeg(B, 9, 200, 150))  # inside the linked class folder
    rerun = pipeline(*args)
    assert rerun.status == 0 and "up to date" not in rerun.err


def test_a_symbolic_link_loop_is_listed_and_not_walked_again(tmp_path):
    root = small_folder(tmp_path / "pics")
    (root / A / "again").symlink_to(root, target_is_directory=True)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "dedupe", "--data", tmp_path / "data", "--subset", "x", "--folder", root],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    layout = Layout(tmp_path / "data" / "x")
    assert len(rows(layout.hashes)) == 4
    skipped = read_report(layout.report("dedupe"), schemas.DEDUPE_REPORT)["unreadable_files"]
    assert skipped == [
        {"file": f"{A}/again", "error": f"a link back to a folder above it (a loop): not walked again ({root})"}
    ]
    assert f"dedupe: unreadable, skipped: {A}/again: a link back" in done.stderr


def test_a_folder_without_a_readable_image_is_one_line(pipeline, tmp_path):
    empty = tmp_path / "empty"
    (empty / A).mkdir(parents=True)
    (empty / A / "notes.txt").write_text("no pictures here")
    out = pipeline("dedupe", "--data", tmp_path / "data", "--subset", "x", "--folder", empty)
    assert out.status == 2 and one_error_line(out.err).startswith(f"error: {empty}: no image file (.bmp, ")
    broken = tmp_path / "broken"
    (broken / A).mkdir(parents=True)
    (broken / A / "a.jpg").write_bytes(b"not a jpeg")
    out = pipeline("dedupe", "--data", tmp_path / "data", "--subset", "x", "--folder", broken)
    assert out.status == 2
    assert one_error_line(out.err).startswith(f"error: {broken}: not one image could be read (the first: {A}/a.jpg: ")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "option, value, wanted",
    [
        ("--radius", "64", "an integer from 0 to 63"),
        ("--radius", "-1", "an integer from 0 to 63"),
        ("--verify", "65", "an integer from 0 to 64"),
        ("--processes", "0", "an integer of at least 1"),
        ("--sheet-clusters", "-3", "an integer of at least 0"),
        ("--radius", "ten", "an integer from 0 to 63"),
    ],
)
def test_a_setting_out_of_range_is_refused_and_the_previous_outputs_stay(pipeline, tmp_path, option, value, wanted):
    folder = small_folder(tmp_path / "pics")
    assert pipeline("dedupe", "--data", tmp_path, "--subset", "x", "--folder", folder).status == 0
    workdir = tmp_path / "x"
    before = {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "dedupe", "--data", tmp_path, "--subset", "x", "--folder", folder]
        + [option, value],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m pipeline dedupe: error: argument {option}: ")
    assert wanted in lines[0]
    assert {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()} == before
