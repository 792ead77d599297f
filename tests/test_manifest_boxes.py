"""Object boxes from annotation/boxes.parquet through the manifests, validate, the three exports,
the ilsvrc import and the card, each output read by its consumer: ElementTree for ILSVRC's XML
(and the box checked on the exported JPEG's pixels), csv for Kaggle's LOC files, ``datasets``
for hf, ``webdataset`` for wds."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import rows, write_images, write_synsets
from PIL import Image, ImageDraw

from pipeline import schemas
from pipeline.boxes import to_voc
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import SPLITS, Layout
from pipeline.tables import read_report, write_table

WNIDS = ["n01440764", "n02012849"]
PER_CLASS = 6
SIZE = (96, 72)
PLAN = ["--unverified", "--val-n", "2", "--test-n", "1", "--min-train", "1"]
ROTATED = f"{WNIDS[0]}-0"  # stored sideways, with EXIF orientation 6
UNBOXED = {f"{WNIDS[0]}-4", f"{WNIDS[1]}-3"}
DROPPED = f"{WNIDS[1]}-4"  # dedupe did not keep it: its box stays out of the manifests


def box_of(image_id: str) -> list[tuple[int, int, int, int]]:
    """The known boxes drawn into each picture (ours: 0-based, far edges exclusive)."""
    n = int(image_id.rsplit("-", 1)[1])
    first = (5 + 3 * n, 7 + 2 * n, 40 + 4 * n, 50 + n)
    return [first, (70, 10, 90, 30)] if n == 2 else [first]


def picture(image_id: str) -> bytes:
    """A distinct picture, lightened, with its boxes filled dark; ROTATED is stored turned, with
    EXIF orientation 6."""
    wnid, n = image_id.split("-")
    image = Image.open(io.BytesIO(picture_jpeg(wnid, int(n), *SIZE))).convert("RGB")
    image = Image.blend(image, Image.new("RGB", SIZE, (255, 255, 255)), 0.75)
    draw = ImageDraw.Draw(image)
    if image_id not in UNBOXED:
        for xmin, ymin, xmax, ymax in box_of(image_id):
            draw.rectangle((xmin, ymin, xmax - 1, ymax - 1), fill=(20, 20, 20))  # Pillow: inclusive corners
    buffer = io.BytesIO()
    if image_id == ROTATED:
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned 90 degrees clockwise: the stored pixels are turned back
        image.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=95, exif=exif)
    else:
        image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def write_store(workdir: Path, ids: list[str]) -> None:
    """The image store as the download writes it: width and height are the upright size."""
    write_images(workdir, [(image_id, image_id.split("-")[0], picture(image_id)) for image_id in ids])


def write_boxes(workdir: Path, ids: list[str], **changes) -> None:
    """annotation/boxes.parquet as the box consensus writes it; ``changes``: {column: {row: value}}."""
    boxes = [(i, k, b) for i in ids if i not in UNBOXED for k, b in enumerate(box_of(i))]
    columns = {
        "box_id": [f"{i}-box{k}" for i, k, _ in boxes],
        "image_id": [i for i, _, _ in boxes],
        "wnid": [i.split("-")[0] for i, _, _ in boxes],
        **{edge: [b[n] for _, _, b in boxes] for n, edge in enumerate(("xmin", "ymin", "xmax", "ymax"))},
        "width": [SIZE[0]] * len(boxes),
        "height": [SIZE[1]] * len(boxes),
        "drawn_by": [3 + k for _, k, _ in boxes],
        "approved_by": [2] * len(boxes),
        "source": ["crowd"] * len(boxes),
    }
    for column, values in changes.items():
        for row, value in values.items():
            columns[column][row] = value
    write_table(columns, Layout(workdir).boxes, schemas.BOXES)


IDS = [f"{w}-{n}" for w in WNIDS for n in range(PER_CLASS)]


def where(workdir: Path) -> list[str]:
    return ["--data", str(workdir.parent), "--subset", workdir.name]


@pytest.fixture(scope="module")
def boxed(tmp_path_factory) -> Path:
    """Two classes of six pictures with drawn boxes (one sideways with EXIF, one of two boxes,
    one per class without), manifests of 3/2/1 per class (one image not kept by dedupe)."""
    workdir = tmp_path_factory.mktemp("data") / "boxed"
    write_synsets(workdir, WNIDS)
    write_store(workdir, IDS)
    write_table(
        {
            "image_id": IDS,
            "wnid": [i.split("-")[0] for i in IDS],
            "cluster_id": list(range(len(IDS))),
            "representative": IDS,
            "distance": [0] * len(IDS),
            "reason": ["unique"] * len(IDS),
            "keep": [i != DROPPED for i in IDS],
        },
        Layout(workdir).clusters,
        schemas.CLUSTERS,
    )
    write_boxes(workdir, IDS)
    from pipeline import cli

    assert cli.main(["manifests", *where(workdir), *PLAN]) == 0
    return workdir


def manifest_rows(workdir: Path) -> dict[str, dict]:
    """image_id -> its manifest row, with its split."""
    return {r["image_id"]: {**r, "split": s} for s in SPLITS for r in rows(Layout(workdir).manifest(s))}


def copy_of(workdir: Path, folder: Path) -> Path:
    copy = folder / workdir.name
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("export", ".stages"))
    return copy


def error_line(done) -> str:
    lines = [line for line in done.err.splitlines() if line.startswith("error: ")]
    assert done.status == 2 and len(lines) == 1 and "Traceback" not in done.err, done.err
    return lines[0]


def test_the_manifests_carry_the_boxes_of_their_images_in_split_label_image_order(boxed):
    images = manifest_rows(boxed)
    got = rows(Layout(boxed).box_manifest)
    wanted = [
        {
            "image_id": i,
            "split": images[i]["split"],
            "label": images[i]["label"],
            "wnid": images[i]["wnid"],
            **dict(zip(("xmin", "ymin", "xmax", "ymax"), b)),
            "width": 96,
            "height": 72,
            "source": "crowd",
        }
        for i in sorted(images, key=lambda i: (SPLITS.index(images[i]["split"]), images[i]["label"], i))
        if i not in UNBOXED
        for b in box_of(i)
    ]
    assert got == wanted and DROPPED not in {r["image_id"] for r in got}
    assert len(got) == 9 + 2  # nine boxed images kept, two of them with two boxes
    report = read_report(Layout(boxed).report("manifests"), schemas.MANIFESTS_REPORT)
    per_split = {s: len({i for i in images if images[i]["split"] == s} - UNBOXED) for s in SPLITS}
    assert report["boxes"]["images"] == per_split
    assert sum(report["boxes"]["boxes"].values()) == 11


def test_without_boxes_there_is_no_box_manifest(boxed, pipeline, tmp_path):
    copy = copy_of(boxed, tmp_path)
    Layout(copy).boxes.unlink()
    done = pipeline("manifests", *where(copy), *PLAN, "--force")
    assert done.status == 0, done.err
    assert not Layout(copy).box_manifest.exists()
    assert read_report(Layout(copy).report("manifests"), schemas.MANIFESTS_REPORT)["boxes"] is None


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"xmax": {0: 97}}, "row 1: xmax: outside the 96x72 image: (5, 7, 97, 50)"),
        ({"ymax": {1: 9}}, "row 2: ymax: no area: xmin 8 must be below xmax 44 and ymin 9 below ymax 9"),
        ({"wnid": {2: WNIDS[1]}}, f"row 3: wnid '{WNIDS[1]}': the manifest says {WNIDS[0]} for image {WNIDS[0]}-2"),
        ({"width": {3: 95}}, f"row 4: width 95: the manifest says 96 for image {WNIDS[0]}-2"),
    ],
)
def test_a_bad_box_is_one_line_naming_the_row_and_the_manifests_stay(boxed, pipeline, tmp_path, changes, named):
    copy = copy_of(boxed, tmp_path)
    write_boxes(copy, IDS, **changes)
    before = {p: p.read_bytes() for p in Layout(copy).manifests.iterdir()}
    done = pipeline("manifests", *where(copy), *PLAN, "--force")
    assert error_line(done) == f"error: {Layout(copy).boxes}: {named}"
    assert {p: p.read_bytes() for p in Layout(copy).manifests.iterdir()} == before


def test_validate_checks_the_boxes_and_counts_boxed_images(boxed, pipeline, tmp_path):
    copy = copy_of(boxed, tmp_path)
    assert pipeline("validate", *where(copy)).status == 0
    check = read_report(Layout(copy).report("validate"), schemas.VALIDATE_REPORT)["checks"]["boxes"]
    images = manifest_rows(copy)
    assert check["ok"] and "11 boxes" in check["summary"]
    for wnid in WNIDS:
        assert check["per_class"][wnid] == {
            s: len({i for i, r in images.items() if r["wnid"] == wnid and r["split"] == s} - UNBOXED) for s in SPLITS
        }
    table = pq.read_table(Layout(copy).box_manifest)
    frame = table.to_pandas()
    frame.loc[0, "xmax"] = 100  # outside the 96-pixel-wide image
    frame.loc[1, "split"] = "test" if frame.loc[1, "split"] != "test" else "val"
    frame.loc[2, "label"] = frame.loc[2, "label"] + 1  # the right wnid under another class's number
    write_table(frame.to_dict("list"), Layout(copy).box_manifest, schemas.BOX_MANIFEST)
    bad = pipeline("validate", *where(copy))
    assert bad.status == 1 and "FAIL boxes: 3 problems" in bad.err
    assert "manifests/boxes.parquet row 1" in bad.err and "outside the 96x72 image" in bad.err
    assert f"manifests/boxes.parquet row 2: image {frame.image_id[1]}: a box of" in bad.err
    assert f"manifests/boxes.parquet row 3: image {frame.image_id[2]}: label {frame.label[2]}" in bad.err


def darkness(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, float]:
    """Mean grey inside ``box`` and on the one-pixel ring just outside it (clipped to the image)."""
    grey = np.asarray(image.convert("L"), dtype=float)
    xmin, ymin, xmax, ymax = box
    inside = grey[ymin:ymax, xmin:xmax].mean()
    mask = np.zeros(grey.shape, bool)
    mask[max(ymin - 1, 0) : ymax + 1, max(xmin - 1, 0) : xmax + 1] = True
    mask[ymin:ymax, xmin:xmax] = False
    return inside, grey[mask].mean()


def test_ilsvrc_export_writes_ilsvrc_xml_and_kaggle_loc_files_that_lie_on_the_pixels(boxed, pipeline):
    done = pipeline("export", *where(boxed), "--format", "ilsvrc")
    assert done.status == 0, done.err
    folder = Layout(boxed).export("ilsvrc")
    files = {r["image_id"]: r for r in csv.DictReader(open(folder / "files.csv"))}
    assert files[ROTATED]["converted"] == "EXIF orientation 6"
    xmls = sorted(p.relative_to(folder).as_posix() for p in (folder / "Annotations").rglob("*.xml"))
    images = manifest_rows(boxed)
    expected = []
    for image_id, row in files.items():
        stem = Path(row["file"]).stem
        split = row["file"].split("/")[0]
        if image_id in UNBOXED:
            continue
        name = f"Annotations/CLS-LOC/{split}/{row['wnid'] + '/' if split == 'train' else ''}{stem}.xml"
        expected.append(name)
        root = ElementTree.parse(folder / name).getroot()
        assert [e.tag for e in root] == ["folder", "filename", "source", "size", "segmented"] + ["object"] * len(
            box_of(image_id)
        )
        assert root.findtext("folder") == (row["wnid"] if split == "train" else split)
        assert root.findtext("filename") == stem and root.findtext("source/database") == "ILSVRC_2012"
        assert [root.findtext(f"size/{t}") for t in ("width", "height", "depth")] == ["96", "72", "3"]
        assert root.findtext("segmented") == "0"
        exported = Image.open(folder / row["file"])  # as ImageFolder opens it: EXIF not applied
        assert exported.size == SIZE and images[image_id]["split"] == split
        for item, box in zip(root.iter("object"), box_of(image_id)):
            assert [e.tag for e in item] == ["name", "pose", "truncated", "difficult", "bndbox"]
            assert [item.findtext(t) for t in ("name", "pose", "truncated", "difficult")] == [
                row["wnid"],
                "Unspecified",
                "0",
                "0",
            ]
            voc = tuple(int(item.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
            assert voc == to_voc(box)
            # VOC is 1-based and inclusive: pixel columns xmin-1 .. xmax-1 are the box.
            inside, ring = darkness(exported, (voc[0] - 1, voc[1] - 1, voc[2], voc[3]))
            assert inside < 60 and ring > 170, (image_id, inside, ring)
    assert xmls == sorted(expected)

    for split in SPLITS:
        with open(folder / f"LOC_{split}_solution.csv", newline="") as f:
            solution = list(csv.reader(f))
        assert solution[0] == ["ImageId", "PredictionString"]
        in_split = {Path(r["file"]).stem: i for i, r in files.items() if r["file"].startswith(f"{split}/")}
        boxed_stems = sorted(s for s, i in in_split.items() if i not in UNBOXED)
        assert [r[0] for r in solution[1:]] == boxed_stems
        for stem, prediction in solution[1:]:
            image_id = in_split[stem]
            wanted = "".join(f"{files[image_id]['wnid']} {' '.join(map(str, to_voc(b)))} " for b in box_of(image_id))
            assert prediction == wanted and prediction.endswith(" ")
    readme = (folder / "README.txt").read_text()
    assert "Annotations/CLS-LOC/train/<wnid>/<file name>.xml" in readme and "no box is invented" in readme


def test_hf_export_has_objects_that_datasets_loads_with_exact_boxes(boxed, pipeline, tmp_path):
    datasets = pytest.importorskip("datasets")
    done = pipeline("export", *where(boxed), "--format", "hf")
    assert done.status == 0, done.err
    folder = Layout(boxed).export("hf")
    card = (folder / "README.md").read_text()
    assert "`bbox` = [xmin, ymin, xmax, ymax] in pixels of the image, 0-based, xmax and ymax exclusive" in card
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))
    assert loaded["train"].features["objects"]["category"].feature.names == ["class n01440764", "class n02012849"]
    images = manifest_rows(boxed)
    for split, name in zip(SPLITS, ("train", "validation", "test")):
        ids = sorted(r["image_id"] for r in rows(Layout(boxed).manifest(split)))  # the export's order
        got = loaded[name]
        for image_id, row in zip(ids, got):
            wanted = [] if image_id in UNBOXED else box_of(image_id)
            assert row["objects"]["bbox"] == [list(map(float, b)) for b in wanted]
            assert row["objects"]["category"] == [images[image_id]["label"]] * len(wanted)
            assert row["image"].size == SIZE  # datasets turns the sideways one upright
            for box in wanted:
                inside, ring = darkness(row["image"], box)
                assert inside < 60 and ring > 170, (image_id, inside, ring)


def test_wds_export_carries_the_boxes_in_each_json(boxed, pipeline):
    webdataset = pytest.importorskip("webdataset")
    done = pipeline("export", *where(boxed), "--format", "wds")
    assert done.status == 0, done.err
    folder = Layout(boxed).export("wds")
    seen = {}
    for tar in sorted(folder.glob("*.tar")):
        for sample in webdataset.WebDataset(str(tar), shardshuffle=False).decode("pil"):
            meta = sample["json"]
            seen[meta["image_id"]] = meta
            assert (
                meta["box_format"]
                == "[xmin, ymin, xmax, ymax] in pixels of the image, 0-based, xmax and ymax exclusive"
            )
            wanted = [] if meta["image_id"] in UNBOXED else box_of(meta["image_id"])
            assert meta["boxes"] == [list(b) for b in wanted]
            assert sample["jpg"].size == SIZE
            if wanted:
                inside, ring = darkness(sample["jpg"], wanted[-1])
                assert inside < 60 and ring > 170
    assert set(seen) == set(manifest_rows(boxed))


def imported_boxes(workdir: Path) -> dict[str, list[tuple]]:
    """The imported boxes by image file (the import's url), in box order."""
    urls = {r["image_id"]: r["source_url"] for s in SPLITS for r in rows(Layout(workdir).manifest(s))}
    found: dict[str, list[tuple]] = {}
    for r in rows(Layout(workdir).boxes):
        assert r["source"] == "imported" and r["drawn_by"] == r["approved_by"] == 0
        found.setdefault(urls[r["image_id"]], []).append((r["wnid"], r["xmin"], r["ymin"], r["xmax"], r["ymax"]))
    return found


def exported_boxes(boxed: Path, folder: Path) -> dict[str, list[tuple]]:
    """The boxes the export was made from, by exported file."""
    files = {r["image_id"]: r["file"] for r in csv.DictReader(open(folder / "files.csv"))}
    return {files[i]: [(i.split("-")[0], *b) for b in box_of(i)] for i in files if i not in UNBOXED}


def test_an_ilsvrc_export_imports_back_with_identical_boxes(boxed, pipeline, tmp_path):
    assert pipeline("export", *where(boxed), "--format", "ilsvrc", "--tree", "flat").status == 0
    exported = Layout(boxed).export("ilsvrc")
    done = pipeline("import", "--data", tmp_path, "--subset", "back", "--src", exported, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    back = tmp_path / "back"
    assert imported_boxes(back) == exported_boxes(boxed, exported)
    manifest = rows(Layout(back).box_manifest)
    assert len(manifest) == 11 and {r["source"] for r in manifest} == {"imported"}
    report = read_report(Layout(back).report("import"), schemas.IMPORT_REPORT)
    assert report["boxes"] == read_report(Layout(boxed).report("manifests"), schemas.MANIFESTS_REPORT)["boxes"]
    assert pipeline("validate", *where(back)).status == 0

    # Kaggle's tree: the images under ILSVRC/Data/CLS-LOC, the XML under ILSVRC/Annotations,
    # only the LOC files for train and val; the val images are labelled by LOC_val_solution.csv.
    kaggle = tmp_path / "kaggle"
    for split in ("train", "val"):
        shutil.copytree(exported / split, kaggle / "ILSVRC" / "Data" / "CLS-LOC" / split)
        shutil.copy(exported / f"LOC_{split}_solution.csv", kaggle)
    shutil.copytree(exported / "Annotations", kaggle / "ILSVRC" / "Annotations")
    solution = kaggle / "LOC_val_solution.csv"
    solution.write_bytes(b"\xef\xbb\xbf" + solution.read_bytes())  # a byte order mark, as Excel saves
    done = pipeline("import", "--data", tmp_path, "--subset", "kaggle", "--src", kaggle, "--layout", "ilsvrc")
    assert done.status == 0, done.err
    wanted = {f"ILSVRC/Data/CLS-LOC/{f}": b for f, b in exported_boxes(boxed, exported).items() if "test/" not in f}
    assert imported_boxes(tmp_path / "kaggle") == wanted
    report = read_report(Layout(tmp_path / "kaggle").report("import"), schemas.IMPORT_REPORT)
    assert report["unlabelled"] == [
        f"ILSVRC/Data/CLS-LOC/val/{p.name}"
        for p in sorted((exported / "val").iterdir())
        if p.stem not in {r[0] for r in csv.reader(open(exported / "LOC_val_solution.csv"))}
    ]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def src(boxed, pipeline, tmp_path) -> Path:
    """A copy of the boxed dataset's ilsvrc export (val and test flat), to spoil."""
    assert pipeline("export", *where(boxed), "--format", "ilsvrc", "--tree", "flat").status == 0
    copy = tmp_path / "src"
    shutil.copytree(Layout(boxed).export("ilsvrc"), copy)
    return copy


def first_train_box(src: Path) -> tuple[Path, str, str]:
    """The first LOC_train_solution row's stem, its PredictionString, and its XML."""
    with open(src / "LOC_train_solution.csv", newline="") as f:
        stem, prediction = list(csv.reader(f))[1]
    return src / "Annotations" / "CLS-LOC" / "train" / stem.split("_")[0] / f"{stem}.xml", stem, prediction


def spoil(src: Path, case: str) -> tuple[Path, str]:
    """Spoil ``src`` as ``case`` says; the file that must be named and what the line must say."""
    xml, stem, prediction = first_train_box(src)
    loc = src / "LOC_train_solution.csv"
    wnid, xmin, ymin, xmax, ymax = prediction.split()[:5]
    other = WNIDS[1] if wnid == WNIDS[0] else WNIDS[0]
    if case == "loc-other-class":
        edit(loc, f"{stem},{wnid} ", f"{stem},{other} ")
        return loc, f":2: PredictionString box 1 '{other}': a box of {other} on an image of {wnid}"
    if case == "loc-odd-values":
        edit(loc, f"{stem},{prediction}", f"{stem},{prediction}7 ")
        return loc, ":2: PredictionString"
    if case == "loc-outside":
        edit(loc, f"{stem},{wnid} {xmin} {ymin} {xmax} ", f"{stem},{wnid} {xmin} {ymin} 97 ")
        return loc, f":2: PredictionString box 1 '{xmin} {ymin} 97 {ymax}': outside the 96x72 image"
    if case == "loc-xmax-below-xmin":
        edit(loc, f"{stem},{wnid} {xmin} {ymin} {xmax} ", f"{stem},{wnid} {xmax} {ymin} {xmin} ")
        return loc, ":2: PredictionString box 1"
    if case == "xml-no-bndbox":
        text = xml.read_text()
        start, end = text.index("<bndbox>"), text.index("</bndbox>") + len("</bndbox>")
        xml.write_text(text[:start] + text[end:])
        return xml, "object 1: an object without <bndbox>"
    if case == "xml-not-integer":
        edit(xml, f"<xmin>{xmin}</xmin>", f"<xmin>{xmin}.5</xmin>")
        return xml, f"object 1 bndbox/xmin '{xmin}.5': expected an integer"
    if case == "xml-not-xml":
        edit(xml, "</annotation>", "</annotatio>")
        return xml, "not well-formed XML"
    if case == "xml-disagrees":
        edit(xml, f"<xmin>{xmin}</xmin>", f"<xmin>{int(xmin) + 1}</xmin>")
        return xml, "object: its boxes differ from LOC_train_solution.csv line 2: the two must agree"
    if case == "files-csv-disagrees":
        with open(src / "LOC_val_solution.csv", newline="") as f:
            stem, prediction = list(csv.reader(f))[1]
        index = (src / "files.csv").read_text().splitlines()
        number, line = next((n, t) for n, t in enumerate(index, 1) if t.startswith(f"val/{stem}.JPEG,"))
        label = prediction.split()[0]
        other = WNIDS[1] if label == WNIDS[0] else WNIDS[0]
        edit(src / "files.csv", line, line.replace(f",{label},", f",{other},"))
        return src / "files.csv", f":{number}: wnid '{other}': LOC_val_solution.csv line 2 labels this file {label}"
    raise AssertionError(case)


SPOILS = [
    "loc-other-class",
    "loc-odd-values",
    "loc-outside",
    "loc-xmax-below-xmin",
    "xml-no-bndbox",
    "xml-not-integer",
    "xml-not-xml",
    "xml-disagrees",
    "files-csv-disagrees",
]


@pytest.mark.parametrize("case", SPOILS)
def test_bad_box_files_are_one_line_naming_file_line_and_field_and_import_nothing(src, pipeline, tmp_path, case):
    named, says = spoil(src, case)
    done = pipeline("import", "--data", tmp_path, "--subset", "spoilt", "--src", src, "--layout", "ilsvrc")
    line = error_line(done)
    assert line.startswith(f"error: {named}") and says in line, line
    assert not (tmp_path / "spoilt").exists()


def test_the_card_says_how_many_images_have_boxes_and_where_they_came_from(boxed, pipeline, tmp_path):
    copy = copy_of(boxed, tmp_path)
    done = pipeline("card", *where(copy), "--samples-per-class", "0")
    assert done.status == 0, done.err
    card = Layout(copy).card.read_text()
    assert "### Object boxes" in card and "0-based, xmax and ymax exclusive" in card
    images = manifest_rows(copy)
    for split in SPLITS:
        total = sum(r["split"] == split for r in images.values())
        boxed_n = len({i for i, r in images.items() if r["split"] == split} - UNBOXED)
        assert f"| {split} | {total} | {boxed_n} |" in card
    assert "Boxes per boxed image: median 1, mean 1.22, max 2." in card
    assert "crowd 11 boxes" in card
    assert "a median 3 drawn boxes (from 3 to 4), approved by a median 2 workers (from 2 to 2)" in card

    Layout(copy).boxes.unlink()
    assert pipeline("manifests", *where(copy), *PLAN, "--force").status == 0
    assert pipeline("card", *where(copy), "--samples-per-class", "0").status == 0
    assert "This dataset has no object boxes" in Layout(copy).card.read_text()
