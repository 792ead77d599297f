"""One decode rule and one pixel limit, on real image bytes: an EXIF-rotated photo, a 16-bit
greyscale PNG, a palette PNG with transparency, an RGBA PNG and a CMYK JPEG, imported with the
real import stage, then validated, cropped by the baseline, drawn by the card and the contact
sheet, and exported for the readers of each layout (torchvision's ImageFolder, ``datasets``,
webdataset's tars)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import rows, run_cli
from PIL import Image

from manifests.card.figures import THUMB, TILE, thumbnail
from manifests.validate import _decode_problem
from pipeline import pixels, schemas, store
from pipeline.dedupe.sheet import _thumbnail
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.layout import SPLITS, Layout
from pipeline.tables import read_report

A, B = "n01440764", "n02102040"
UPRIGHT = (120, 160)  # the rotated photo's upright size; stored as 160x120 pixels, EXIF orientation 6
RED = (220, 30, 30)
WHITE = 255


def pattern(width: int, height: int, n: int) -> np.ndarray:
    """Blocks of random greys from 40 to 160, seeded by ``n``: every image of the test its own
    picture, far from the others in pHash (no image is a copy of another)."""
    blocks = np.random.default_rng(n).integers(40, 161, (4, 4), dtype=np.uint8)
    return np.kron(blocks, np.ones((-(-height // 4), -(-width // 4)), np.uint8))[:height, :width]


def marked(width: int, height: int, n: int) -> Image.Image:
    """``pattern`` in RGB with a red block in its top left corner: where the block lies tells
    which way up the pixels are."""
    image = np.repeat(pattern(width, height, n)[..., None], 3, axis=2)
    image[: height // 4, : width // 4] = RED
    return Image.fromarray(image)


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def rotated_jpeg(n: int = 0) -> bytes:
    """A camera's portrait photo: pixels stored sideways and EXIF orientation 6 (turn 90
    degrees clockwise to show)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(marked(*UPRIGHT, n).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)


def grey16_png(n: int = 0) -> bytes:
    """A 16-bit greyscale PNG using 12 bits, as a scientific camera writes: every value above 255."""
    return encoded(Image.fromarray(pattern(140, 100, n).astype(np.uint16) * 25 + 256), "PNG")


def palette_png(n: int = 0) -> bytes:
    """A palette PNG of greys whose index 0 (black) is transparent: its left quarter."""
    image = Image.fromarray(pattern(128, 96, n), "P")
    image.putpalette([v for grey in range(256) for v in (grey, grey, grey)])
    image.paste(0, (0, 0, 32, 96))
    return encoded(image, "PNG", transparency=0)


def rgba_png(n: int = 0) -> bytes:
    """``marked`` with its left quarter fully transparent (black under the alpha)."""
    image = np.zeros((96, 128, 4), np.uint8)
    image[:, 32:, :3] = np.asarray(marked(128, 96, n))[:, 32:]
    image[:, 32:, 3] = 255
    return encoded(Image.fromarray(image, "RGBA"), "PNG")


def cmyk_jpeg(n: int = 0) -> bytes:
    """A CMYK JPEG (as print workflows write): cyan ink in the pattern, none elsewhere."""
    cyan = 255 - pattern(128, 96, n)
    zero = np.zeros_like(cyan)
    return encoded(Image.fromarray(np.stack([cyan, zero, zero, zero], axis=2), "CMYK"), "JPEG", quality=95)


def huge_png(side: int) -> bytes:
    """A 1-bit PNG of side x side pixels: a few KB on disk, more pixels than the limit."""
    return encoded(Image.new("1", (side, side)), "PNG")


ODD = {
    "rotated.jpg": rotated_jpeg,
    "grey16.png": grey16_png,
    "palette.png": palette_png,
    "rgba.png": rgba_png,
    "cmyk.jpg": cmyk_jpeg,
}


def naive(data: bytes) -> Image.Image:
    """What a reader that knows no rule sees: Pillow's convert("RGB"), no EXIF orientation."""
    return Image.open(io.BytesIO(data)).convert("RGB")


# --------------------------------------------------------------------------- the rule


def test_decode_gives_upright_8_bit_rgb_where_a_plain_conversion_does_not():
    upright = pixels.decode(rotated_jpeg())
    assert upright.mode == "RGB" and upright.size == UPRIGHT and pixels.size(rotated_jpeg()) == UPRIGHT
    assert np.abs(np.asarray(upright)[5, 5].astype(int) - RED).max() < 30  # red block top left
    assert naive(rotated_jpeg()).size == UPRIGHT[::-1]

    grey = np.asarray(pixels.decode(grey16_png()))
    values = pattern(140, 100, 0).astype(float)  # the 16-bit values, scaled to the range they use
    assert (grey[..., 0] == np.round((values - values.min()) * 255 / (values.max() - values.min()))).all()
    assert (np.asarray(naive(grey16_png())) == WHITE).mean() > 0.9  # the plain conversion: all white

    for make in (palette_png, rgba_png):
        image = np.asarray(pixels.decode(make()))
        assert (image[:, :32] == WHITE).all() and (image[:, 32:] < 200).all()  # transparent: on white
        assert (np.asarray(naive(make()))[:, :32] == 0).all()  # the plain conversion: on black

    cmyk = np.asarray(pixels.decode(cmyk_jpeg())).astype(int)
    assert cmyk.shape == (96, 128, 3) and (cmyk[..., 1:] > 215).all()  # cyan ink takes only red away
    assert np.abs(cmyk[..., 0] - pattern(128, 96, 0)).mean() < 4


def test_a_reduced_decode_keeps_at_least_the_asked_upright_size():
    photo = rotated_jpeg()
    small = pixels.decode(photo, at_least=(30, 40))
    assert small.size == (30, 40)  # a quarter scale: the stored 160x120 decoded at 40x30, turned
    assert pixels.decode(photo, at_least=(31, 40)).size == (60, 80)


@pytest.mark.parametrize(
    "side", [10_000, 14_000]
)  # over the limit; and over twice Pillow's, which Pillow refuses itself
def test_one_pixel_limit_refuses_without_pillows_warning(side):
    data = huge_png(side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail the test
        with pytest.raises(pixels.TooManyPixels, match=f"over the limit of {pixels.MAX_PIXELS}"):
            pixels.size(data)
        with pytest.raises(Image.DecompressionBombError):  # what the download's handlers catch
            pixels.decode(data)
        problem = _decode_problem(data, side, side, hashlib.sha256(data).hexdigest())
    assert problem.startswith("refused: ") and "over the limit" in problem


# --------------------------------------------------------------------------- every stage, on an import


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """data/odd: the odd images, an ordinary picture per class and an image over the pixel
    limit, imported by the real import stage as a user runs it."""
    root = tmp_path_factory.mktemp("odd")
    src = root / "src"
    for n, (name, make) in enumerate(ODD.items()):
        split = SPLITS[n % 2]  # train and val
        for k, wnid in enumerate((A, B)):
            path = src / split / wnid / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(make(2 * n + k))
    for wnid in (A, B):
        (src / "train" / wnid / "picture.jpg").write_bytes(picture_jpeg(wnid, 1, 96, 72))
    (src / "train" / A / "huge.png").write_bytes(huge_png(10_000))
    done = run_cli("import", "--data", root / "data", "--subset", "odd", "--src", src, "--processes", "1")
    assert done.returncode == 0, done.stderr
    (root / "import.err").write_text(done.stderr)
    return root / "data" / "odd"


def manifest_rows(workdir: Path) -> dict[str, dict]:
    """Each image's manifest row by its file name in SRC (``source_url``), with its split."""
    return {
        r["source_url"].split("/", 1)[1]: {**r, "split": s}
        for s in SPLITS
        if Layout(workdir).manifest(s).exists()
        for r in rows(Layout(workdir).manifest(s))
    }


def stored(workdir: Path) -> dict[str, bytes]:
    table = store.read_images(Layout(workdir).images, ["image_id", "image"])
    return dict(zip(table.column("image_id").to_pylist(), table.column("image").to_pylist()))


def test_import_records_upright_sizes_and_refuses_images_over_the_limit(imported):
    by_file = manifest_rows(imported)
    assert (by_file[f"{A}/rotated.jpg"]["width"], by_file[f"{A}/rotated.jpg"]["height"]) == UPRIGHT
    report = read_report(Layout(imported).report("import"), schemas.IMPORT_REPORT)
    [huge] = report["unreadable"]
    assert huge["file"] == f"train/{A}/huge.png" and "over the limit of" in huge["error"]
    said = (imported.parent.parent / "import.err").read_text()
    assert "DecompressionBomb" not in said and "Traceback" not in said


def test_validate_passes_every_odd_image(imported):
    done = run_cli("validate", "--data", imported.parent, "--subset", imported.name)
    assert done.returncode == 0, done.stderr
    assert "ok   images_decode: 12 images" in done.stderr


def test_the_baseline_crops_what_every_stage_decodes(imported):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: baseline checks skipped")
    from baseline.dataset import Blobs
    from baseline.loaders import CropDataset, raw_sample
    from baseline.manifests import load_dataset
    from baseline.transforms import View

    data = load_dataset(imported)
    names = {r["image_id"]: f for f, r in manifest_rows(imported).items()}
    view = View("center", 48, 48)
    for split in data.splits.values():
        blobs = Blobs.load(data, split)
        crops = CropDataset(split, blobs, view)
        for i, image_id in enumerate(split.image_ids):
            name = names[image_id]
            got = crops[i][0][0].permute(1, 2, 0).numpy().astype(int)
            upright = pixels.decode(blobs[i])
            boxes, _, _ = view.boxes(*upright.size, i)
            want = np.asarray(upright.resize((48, 48), Image.BILINEAR, box=boxes[0])).astype(int)
            assert np.abs(got - want).mean() < 6, name  # the reduced JPEG decode differs a little
            if name.endswith("grey16.png"):
                assert (got == WHITE).mean() < 0.2
            # The GPU path: crops placed on the upright image, nvJPEG given upright plain JPEGs only.
            _, placed, _, _, _, _, error = raw_sample(blobs[i], split, view, i)
            assert torch.equal(placed, torch.tensor(boxes, dtype=torch.float32)), name
            assert error == ("" if name.endswith("picture.jpg") else "cpu"), name


def test_the_card_and_the_contact_sheet_show_images_upright(imported):
    data = stored(imported)
    by_file = manifest_rows(imported)
    tile = thumbnail(data[by_file[f"{A}/rotated.jpg"]["image_id"]])
    background = np.all(tile == np.array(Image.new("RGB", (1, 1), TILE))[0, 0], axis=2)
    columns, lines = np.flatnonzero(~background.all(axis=0)), np.flatnonzero(~background.all(axis=1))
    assert len(lines) == THUMB and len(columns) == round(THUMB * UPRIGHT[0] / UPRIGHT[1])  # portrait
    assert np.abs(tile[lines[2], columns[2]].astype(int) - RED).max() < 40  # red block top left
    grey = thumbnail(data[by_file[f"{A}/grey16.png"]["image_id"]])
    assert (grey == WHITE).mean() < 0.2
    sheet = Image.open(io.BytesIO(base64.b64decode(_thumbnail(data[by_file[f"{A}/rotated.jpg"]["image_id"]]))))
    assert sheet.size == (96, 128)
    done = run_cli("card", "--data", imported.parent, "--subset", imported.name)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- exports, read by their readers


def export(workdir: Path, layout: str) -> Path:
    done = run_cli("export", "--data", workdir.parent, "--subset", workdir.name, "--format", layout)
    assert done.returncode == 0, done.stderr
    return Layout(workdir).export(layout)


def test_the_ilsvrc_export_holds_upright_jpegs_for_imagefolder_readers(imported):
    folder = export(imported, "ilsvrc")
    by_id = {r["image_id"]: r for r in manifest_rows(imported).values()}
    index = {r["file"]: r for r in rows_csv(folder / "files.csv")}
    assert {index[f]["converted"] for f in index} == {"", "PNG", "EXIF orientation 6"}
    for file, entry in index.items():
        with Image.open(folder / file) as image:
            assert image.format == "JPEG" and file.endswith(".JPEG")
            row = by_id[entry["image_id"]]
            assert image.size == (row["width"], row["height"])
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(folder / "train"), cache_dir=str(folder.parent / "hf"))
    assert sorted(r["image"].size for r in loaded["train"]) == sorted(
        (r["width"], r["height"]) for r in manifest_rows(imported).values() if r["split"] == "train"
    )
    folders = pytest.importorskip("torchvision.datasets", reason="torchvision is not installed")
    tree = folders.ImageFolder(str(folder / "train"))  # its loader: Image.open(...).convert("RGB")
    assert tree.classes == [A, B]
    for k, (path, _) in enumerate(tree.samples):
        entry = index[Path(path).relative_to(folder).as_posix()]
        image, _ = tree[k]
        assert image.size == (by_id[entry["image_id"]]["width"], by_id[entry["image_id"]]["height"])
        if entry["converted"].startswith("EXIF"):
            assert np.abs(np.asarray(image)[5, 5].astype(int) - RED).max() < 40  # red block top left


def rows_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_hf_export_names_each_image_by_its_format_and_datasets_reads_it_upright(imported):
    datasets = pytest.importorskip("datasets")
    folder = export(imported, "hf")
    by_sha = {r["sha256"]: r for r in manifest_rows(imported).values()}
    loaded = datasets.load_dataset(str(folder), cache_dir=str(folder.parent / "hf-cache"))
    seen = set()
    for split in ("train", "validation"):
        records = [r["image"] for path in sorted((folder / "data").glob(f"{split}-*.parquet")) for r in rows(path)]
        for record, decoded in zip(records, loaded[split]):
            row = by_sha[hashlib.sha256(record["bytes"]).hexdigest()]  # hf keeps the stored bytes
            kind = Image.open(io.BytesIO(record["bytes"])).format
            assert record["path"].endswith(".JPEG" if kind == "JPEG" else f".{kind.lower()}")
            assert decoded["image"].size == (row["width"], row["height"])
            seen.add(kind)
    assert seen == {"JPEG", "PNG"}


def test_the_wds_export_turns_rotated_photos_upright_and_keeps_formats(imported):
    folder = export(imported, "wds")
    by_id = {r["image_id"]: r for r in manifest_rows(imported).values()}
    kinds = set()
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, data in members.items():
            key, extension = name.rsplit(".", 1)
            if extension in ("json", "cls"):
                continue
            row = by_id[json.loads(members[f"{key}.json"])["image_id"]]
            with Image.open(io.BytesIO(data)) as opened:  # as webdataset's Pillow decoders: no EXIF turn
                assert opened.size == (row["width"], row["height"])
                assert extension == {"JPEG": "jpg", "PNG": "png"}[opened.format]
                kinds.add(opened.format)
    assert kinds == {"JPEG", "PNG"}
