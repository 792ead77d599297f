"""Our pHash and dHash are imagehash's, bit for bit, on generated pictures and (when ../shared is
there) real photos; the mirror hashes are the hashes of the mirror image. Plain JPEGs decode
straight through simplejpeg to Pillow's pixels, and where simplejpeg's decode does not match
Pillow's on the probe, through Pillow."""

from __future__ import annotations

import io
import logging

import imagehash
import pytest
from conftest import jpeg
from PIL import Image, ImageOps

from pipeline import hashing
from pipeline.hashing import (
    _has_app1,
    _pillow_input,
    _plain_jpeg_size,
    _scaled_grey,
    bits_to_int64,
    decode_for_hash,
    dhash64,
    grey_pixels,
    hash_files,
    hash_input,
    hashes_of,
    hashes_of_bytes,
    hashes_of_pixels,
    hex_of,
    inner_box,
    libjpeg_matches_pillow,
    phash64,
)
from pipeline.imagehost.pictures import picture_jpeg
from pipeline.lanczos import PILLOW_VERSION


def pictures() -> list[Image.Image]:
    wnids = ["n01440764", "n02102040", "n02979186", "n03000684"]
    images = [Image.open(io.BytesIO(picture_jpeg(w, n))) for w in wnids for n in range(10)]
    images += [
        images[0].convert("L"),
        images[1].resize((64, 48)),
        images[2].rotate(90, expand=True),
        Image.new("RGB", (100, 80), (30, 30, 30)),
    ]
    return images


def check(image: Image.Image) -> None:
    reference = imagehash.phash(image)
    ours = phash64(image)
    assert ours == bits_to_int64(reference.hash)
    assert hex_of(ours) == str(reference)
    assert -(2**63) <= ours < 2**63
    assert dhash64(image) == bits_to_int64(imagehash.dhash(image).hash)
    views = hashes_of(image)
    mirror = ImageOps.mirror(image)
    assert (views.phash, views.dhash) == (ours, dhash64(image))
    assert (views.phash_mirror, views.dhash_mirror) == (phash64(mirror), dhash64(mirror))
    middle = image.crop(inner_box(*image.size))
    assert (views.phash_inner, views.dhash_inner) == (phash64(middle), dhash64(middle))


def test_phash64_and_dhash64_are_imagehash_on_pictures():
    for image in pictures():
        check(image)


def test_hashing_many_images_at_once_gives_each_its_own_hashes(tmp_path):
    """A folder is hashed a chunk at a time: images of many sizes and both pass orders
    together, and a chunk whose files all fail, give what each image alone gives."""
    images = pictures()
    assert hashes_of_pixels([grey_pixels(i) for i in images]) == [hashes_of(i) for i in images]
    assert hashes_of_pixels([]) == []
    for n, image in enumerate(images[:3]):
        image.convert("RGB").save(tmp_path / f"{n}.jpg", quality=90)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    paths = [
        tmp_path / "broken.jpg",
        tmp_path / "0.jpg",
        tmp_path / "broken.jpg",
        tmp_path / "1.jpg",
        tmp_path / "2.jpg",
    ]
    together = hash_files(paths)
    assert together == [hash_files([path])[0] for path in paths]
    assert isinstance(together[0], str) and isinstance(together[2], str)
    assert hash_files([tmp_path / "broken.jpg"] * 2) == [together[0]] * 2


def test_phash64_and_dhash64_are_imagehash_on_real_photos(shared):
    photos = sorted((shared / "data" / "real-photos" / "imagenet-samples").glob("*.JPEG"))
    assert len(photos) == 200
    for path in photos:
        with Image.open(path) as image:
            check(image)
            check(decode_for_hash(Image.open(path)))


def test_the_draft_decoding_rule_moves_a_photo_hash_by_a_few_bits_at_most(shared):
    """The rule decodes JPEGs at reduced scale; against a full decode the hash stays within
    the distance of an exact re-encode (0-4 bits), so dedupe's radius is not spent on it."""
    distances = []
    for path in sorted((shared / "data" / "real-photos" / "imagenet-samples").glob("*.JPEG")):
        with Image.open(path) as image:
            full = phash64(image.convert("RGB"))
        distances.append(bin((full ^ hashes_of_bytes(path.read_bytes()).phash) & (2**64 - 1)).count("1"))
    assert max(distances) <= 4, sorted(distances)[-10:]


def straight(data: bytes) -> bool:
    """Whether libjpeg-turbo gives these bytes' hash input without Pillow (orientation aside)."""
    size = _plain_jpeg_size(data)
    return size is not None and _scaled_grey(data, *size) is not None


def assert_same_input(data: bytes) -> None:
    size, pixels = hash_input(data)
    reference_size, reference = _pillow_input(data)
    assert size == reference_size and pixels.dtype == reference.dtype
    assert pixels.shape == reference.shape and (pixels == reference).all()


def test_plain_jpegs_decode_straight_to_the_pixels_pillows_draft_gives():
    """A plain JPEG skips Pillow (simplejpeg's libjpeg-turbo, the same scaled decode): at every
    DCT scale (sides from under 128 px to 2,000), each chroma subsampling, greyscale and
    progressive files, with or without EXIF, the pixels are Pillow's draft decode's, bit for bit."""
    base = Image.open(io.BytesIO(picture_jpeg("n02102040", 3))).convert("RGB")
    upright_exif = Image.Exif()
    upright_exif[0x0112] = 1
    for width, height in [
        (100, 75),
        (127, 300),
        (128, 128),
        (255, 191),
        (256, 257),
        (500, 375),
        (513, 700),
        (1023, 1024),
        (2000, 1500),
    ]:
        image = base.resize((width, height))
        files = [jpeg(image, quality=90, subsampling=subsampling) for subsampling in (0, 1, 2)]
        files += [
            jpeg(image, quality=75, progressive=True),
            jpeg(image.convert("L"), quality=85),
            jpeg(image, quality=90, exif=upright_exif),
        ]
        for data in files:
            assert straight(data)
            assert_same_input(data)
    assert _has_app1(files[-1]) and not _has_app1(files[0])


def test_jpegs_needing_more_than_the_scaled_decode_go_through_pillow():
    """A rotated JPEG (its EXIF orientation), CMYK, and files libjpeg warns about get Pillow's
    answer: a JPEG with corrupt bytes in its scan decodes (as Pillow ignores libjpeg's
    warnings); a truncated one fails as Pillow fails."""
    image = Image.open(io.BytesIO(picture_jpeg("n01440764", 1))).convert("RGB").resize((400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: upright it is 300x400
    rotated = jpeg(image, quality=90, exif=exif)
    assert_same_input(rotated)
    assert hash_input(rotated)[0] == (300, 400) and hash_input(rotated)[1].shape == (100, 75)
    cmyk = jpeg(image.convert("CMYK"), quality=90)
    assert not straight(cmyk)
    assert_same_input(cmyk)
    data = jpeg(image, quality=90)
    middle = len(data) // 2
    corrupt = data[:middle] + bytes(range(7, 47)) + data[middle + 40 :]  # libjpeg warns, decodes on
    assert straight(data) and not straight(corrupt)
    assert_same_input(corrupt)
    with pytest.raises(OSError, match="truncated"):
        hash_input(data[: len(data) // 2])
    with pytest.raises(OSError):
        hash_input(b"\xff\xd8\xff\xe0 not a JPEG after all")


def test_plain_real_photos_decode_to_pillows_pixels(shared):
    photos = sorted((shared / "data" / "real-photos" / "imagenet-samples").glob("*.JPEG"))
    plain = 0
    for path in photos:
        data = path.read_bytes()
        plain += straight(data)
        assert_same_input(data)
    assert plain >= 150, plain  # most photos are decoded straight


@pytest.fixture
def fresh_probe():
    """The probe runs anew in the test, and again for the tests after it."""
    libjpeg_matches_pillow.cache_clear()
    yield
    libjpeg_matches_pillow.cache_clear()


def test_simplejpeg_matches_this_pillow_on_the_probe(fresh_probe, caplog):
    assert libjpeg_matches_pillow()
    assert not caplog.records


def test_a_simplejpeg_decode_unlike_pillows_makes_hashing_decode_through_pillow(fresh_probe, monkeypatch, caplog):
    """Every pixel off by one on the probe: one warning naming the Pillow version, then Pillow's
    pixels and hashes for plain JPEGs too."""
    exact = hashing._libjpeg_grey

    def off_by_one(*args):
        pixels = exact(*args)
        return None if pixels is None else pixels ^ 1

    monkeypatch.setattr(hashing, "_libjpeg_grey", off_by_one)
    image = Image.open(io.BytesIO(picture_jpeg("n03000684", 4))).convert("RGB")
    for data in (jpeg(image, quality=90), jpeg(image.resize((150, 130)).convert("L"), quality=85)):
        size = _plain_jpeg_size(data)
        assert size is not None and (_scaled_grey(data, *size) != _pillow_input(data)[1]).all()
        assert_same_input(data)
        assert hashes_of_bytes(data) == hashes_of_pixels([_pillow_input(data)[1]])[0]
    assert not libjpeg_matches_pillow()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and PILLOW_VERSION in warnings[0].getMessage()
