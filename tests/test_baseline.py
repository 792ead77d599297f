"""The AlexNet baseline: model shapes and counts, ILSVRC's error, data reading, training."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install -e '.[train]'): baseline tests skipped"
)

from conftest import write_images  # noqa: E402
from PIL import Image  # noqa: E402

from baseline import __main__ as command_line  # noqa: E402
from baseline import model as models  # noqa: E402
from baseline.__main__ import main  # noqa: E402
from baseline.config import Config  # noqa: E402
from baseline.dataset import Blobs  # noqa: E402
from baseline.loaders import Batches, CropDataset, StreamDataset  # noqa: E402
from baseline.manifests import load_dataset  # noqa: E402
from baseline.metrics import guess_error, topk_error, topk_wrong  # noqa: E402
from baseline.model import alexnet, caffenet, count_parameters, smallest_input, summary  # noqa: E402
from baseline.plot import curves  # noqa: E402
from baseline.run_folder import input_state  # noqa: E402
from baseline.stats import IMAGENET_STATS  # noqa: E402
from baseline.train import train  # noqa: E402
from baseline.transforms import View, crop, crops_on_device, pillow_decoder  # noqa: E402
from pipeline import schemas, store  # noqa: E402
from pipeline.errors import InputError  # noqa: E402
from pipeline.imagehost.pictures import picture_jpeg  # noqa: E402
from pipeline.layout import Layout  # noqa: E402
from pipeline.tables import write_table  # noqa: E402

# torchvision.models.alexnet().state_dict(): names and shapes, in order
TORCHVISION_ALEXNET = [
    ("features.0.weight", (64, 3, 11, 11)),
    ("features.0.bias", (64,)),
    ("features.3.weight", (192, 64, 5, 5)),
    ("features.3.bias", (192,)),
    ("features.6.weight", (384, 192, 3, 3)),
    ("features.6.bias", (384,)),
    ("features.8.weight", (256, 384, 3, 3)),
    ("features.8.bias", (256,)),
    ("features.10.weight", (256, 256, 3, 3)),
    ("features.10.bias", (256,)),
    ("classifier.1.weight", (4096, 9216)),
    ("classifier.1.bias", (4096,)),
    ("classifier.4.weight", (4096, 4096)),
    ("classifier.4.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)),
    ("classifier.6.bias", (1000,)),
]


# --------------------------------------------------------------------------- model


def test_parameter_counts():
    with torch.device("meta"):
        assert count_parameters(alexnet(1000)) == 61_100_840
        assert count_parameters(caffenet(1000)) == 60_965_224
        assert count_parameters(alexnet(10)) == 61_100_840 - 990 * 4097


def test_parameter_names_match_torchvision():
    with torch.device("meta"):
        model = alexnet(1000)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == TORCHVISION_ALEXNET
    try:
        import torchvision
    except ImportError:
        return
    theirs = torchvision.models.alexnet(weights=None)
    ours = alexnet(1000)
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 224, 224)
    assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-5)


def test_receptive_fields_strides_and_macs(capsys):
    layers = [layer for layer in summary("alexnet") if layer.receptive_field is not None]
    assert [layer.kind for layer in layers] == ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"]
    assert [layer.receptive_field for layer in layers] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [layer.stride for layer in layers] == [4, 8, 8, 16, 16, 16, 16, 32]
    assert [layer.shape for layer in layers][-1] == (256, 6, 6)
    macs = sum(layer.macs for layer in summary("alexnet"))
    assert macs == 714_188_480 and round(macs / 1e9, 3) == 0.714
    assert sum(layer.params for layer in summary("alexnet")) == 61_100_840
    caffe = summary("caffenet")
    assert sum(layer.params for layer in caffe) == 60_965_224
    assert [layer.shape for layer in caffe if layer.kind == "conv1"] == [(96, 55, 55)]  # 227 inputs
    assert main(["summary", "--arch", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "61,100,840 parameters, 0.714 G multiply-adds" in out
    assert " 195 " in out and " 32 " in out


def test_the_command_line_offers_the_models_architectures():
    assert command_line.ARCHS == models.ARCHS  # spelled twice so that --help needs no PyTorch


def test_small_inputs_and_any_class_count():
    assert smallest_input("alexnet") == 63 and smallest_input("caffenet") == 67
    model = alexnet(7, box_outputs=28).eval()
    torch.nn.init.normal_(model.boxes[-1].weight, 0, 0.01)  # not the zero start: boxes that vary
    for size in (64, 100, 128, 224):
        x = torch.randn(4, 3, size, size)
        with torch.no_grad():
            scores, boxes = model(x)
            conv5 = model.features[:-1](x)
            plain = model.classifier(torch.flatten(model.avgpool(model.features[-1](conv5)), 1))
            plain_boxes = model.boxes(conv5)
        assert scores.shape == (4, 7) and boxes.shape == (4, 28)
        assert torch.allclose(scores, plain, atol=1e-5)  # the fc6 fold is the same function
        assert torch.allclose(boxes, plain_boxes, atol=1e-5)  # and so is the box head's
        assert boxes.std() > 1e-3
    assert main(["summary", "--arch", "caffenet", "--size", "40"]) == 2


# --------------------------------------------------------------------------- ILSVRC error


def test_topk_error_follows_ilsvrc():
    # the ILSVRC slide: ground truth "steel drum"
    assert guess_error(["scale", "T-shirt", "steel drum", "drumstick", "mud turtle"], "steel drum") == 0
    assert guess_error(["scale", "T-shirt", "giant panda", "drumstick", "mud turtle"], "steel drum") == 1
    assert guess_error(["scale", "T-shirt", "steel drum"], "steel drum", k=1) == 1
    assert topk_error([["a", "b"], ["c", "d"]], ["b", "x"], k=5) == 0.5
    scores = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.0, 0.3, 0.05, 0.01],  # label 4: second guess
            [0.9, 0.04, 0.03, 0.0, 0.02, 0.05, 0.01],
        ]
    )  # label 3: last of 7
    wrong = topk_wrong(scores, torch.tensor([4, 3]))
    assert wrong[1].tolist() == [1, 1] and wrong[5].tolist() == [0, 1]
    assert topk_wrong(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))[5].tolist() == [0, 0, 0, 0]  # 3 classes


# --------------------------------------------------------------------------- a small dataset

WNIDS = ["n01440764", "n02102040", "n02979186"]  # three demo looks far apart in colour: labels 0, 1, 2


def make_dataset(root: Path, per_class: int = 12, val_per_class: int = 4, extra_rows: list[dict] | None = None) -> Path:
    """<root>/tiny: an image-store shard and manifests (MANIFEST and CLASSES columns)."""
    folder = root / "tiny"
    layout = Layout(folder)
    images, rows = [], {"train": [], "val": []}
    for label, wnid in enumerate(WNIDS):
        for n in range(per_class + val_per_class):
            image_id = f"{wnid}-{n:03d}"
            data = picture_jpeg(wnid, n, 96, 72)
            images.append((image_id, wnid, data))
            rows["train" if n < per_class else "val"].append(
                {
                    "image_id": image_id,
                    "label": label,
                    "wnid": wnid,
                    "location": store.location(store.shard_path(layout.images, 0)),
                    "width": 96,
                    "height": 72,
                    "sha256": "0" * 64,
                    "phash": 0,
                    "source": "demo",
                    "source_url": f"http://images.example/{image_id}.jpg",
                    "license": None,
                    "confidence": 0.99,
                    "votes": 3,
                }
            )
    write_images(folder, images)
    rows["train"] += extra_rows or []
    for split, members in rows.items():
        write_table(
            {name: [r[name] for r in members] for name in schemas.MANIFEST.names},
            layout.manifest(split),
            schemas.MANIFEST,
        )
    write_table(
        {
            "label": [0, 1, 2],
            "wnid": WNIDS,
            "name": ["tench", "English springer", "cassette player"],
            "gloss": [""] * 3,
            "train": [per_class] * 3,
            "val": [val_per_class] * 3,
            "test": [0] * 3,
        },
        layout.classes,
        schemas.CLASSES,
    )
    return folder


def config(root: Path, **kw) -> Config:
    settings = dict(
        data=root,
        subset="tiny",
        size=64,
        epochs=3,
        batch=9,
        lr=0.02,
        schedule="plateau",
        workers=0,
        device="cpu",
        progress=False,
        seed=1,
    )
    settings.update(kw)
    return Config(**settings)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run of 3 epochs, and the same run interrupted after its second epoch and resumed."""
    root = tmp_path_factory.mktemp("baseline")
    make_dataset(root)

    def interrupt_after_epoch_2(message: str) -> None:
        if message.startswith("epoch 2/"):  # logged once the epoch's checkpoint is written
            raise KeyboardInterrupt

    whole = train(config(root, name="whole"), log=lambda message: None)
    with pytest.raises(KeyboardInterrupt):
        train(config(root, name="parts"), log=interrupt_after_epoch_2)
    assert len((root / "tiny" / "runs" / "parts" / "metrics.jsonl").read_text().splitlines()) == 2
    parts = train(config(root, name="parts", resume=True), log=lambda message: None)
    yield root, whole, parts
    shutil.rmtree(root)  # two AlexNet runs' weights and checkpoints: 1.3 GB


@pytest.mark.slow
def test_training_learns_and_writes_its_outputs(runs):
    root, result, _ = runs
    run = root / "tiny" / "runs" / "whole"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for key in (
        "train_loss",
        "train_top1_error",
        "train_top5_error",
        "images_per_s",
        "data_wait_share",
        "val_loss",
        "val_top1_error",
        "val_top5_error",
    ):
        assert key in history[0]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["images"] == 12
    assert set(metrics["val"]["top1_error"]) == {"center", "ten_crop"}
    assert metrics["val"]["top1_error"]["ten_crop"] < 0.5  # chance is 2/3
    assert len(metrics["per_class"]) == 3 and metrics["worst_classes"][0]["wnid"] in WNIDS
    assert (run / "confusion.csv").read_text().splitlines()[0] == "true\\guess," + ",".join(WNIDS)
    assert Image.open(run / "curves.png").format == "PNG"
    saved = torch.load(run / "model.pt", weights_only=False)
    assert saved["classes"] == WNIDS and "classifier.6.weight" in saved["state_dict"]
    assert metrics["skipped_rows"] == 0


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(runs):
    root, whole, parts = runs
    a = torch.load(root / "tiny" / "runs" / "whole" / "checkpoint.pt", weights_only=False)
    b = torch.load(root / "tiny" / "runs" / "parts" / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    timing = ("images_per_s", "data_wait_share", "seconds")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert strip(whole["history"]) == strip(parts["history"])
    assert whole["val"] == parts["val"]


@pytest.mark.slow
def test_a_finished_run_is_skipped_when_current_and_never_overwritten(runs, capsys):
    root = runs[0]
    before = (root / "tiny" / "runs" / "whole" / "metrics.json").read_bytes()
    same = main(["train", "--data", str(root), "--subset", "tiny", "--name", "whole", "--device", "cpu", "--seed", "1"])
    assert same == 0 and "up to date" in capsys.readouterr().err
    other = main(
        ["train", "--data", str(root), "--subset", "tiny", "--name", "whole", "--device", "cpu", "--lr", "0.05"]
    )
    assert other == 2
    assert "already holds a run (3 epochs done)" in capsys.readouterr().err
    assert (root / "tiny" / "runs" / "whole" / "metrics.json").read_bytes() == before
    val = root / "tiny" / "manifests" / "val.parquet"
    os.utime(val, ns=(val.stat().st_atime_ns, val.stat().st_mtime_ns + 10**9))  # an earlier stage reran
    changed = main(
        ["train", "--data", str(root), "--subset", "tiny", "--name", "whole", "--device", "cpu", "--seed", "1"]
    )
    assert changed == 0 and "changed since it finished" in capsys.readouterr().err
    assert (
        json.loads((root / "tiny" / "runs" / "whole" / "metrics.json").read_text())["settings"]
        == json.loads(before)["settings"]
    )  # trained again with the run's own settings


# --------------------------------------------------------------------------- bad rows


def bad_row(**kw) -> dict:
    row = {
        "image_id": "n01440764-000",
        "label": 0,
        "wnid": WNIDS[0],
        "location": "images/shard-00000.parquet",
        "width": 96,
        "height": 72,
        "sha256": "0" * 64,
        "phash": 0,
        "source": "demo",
        "source_url": "x",
        "license": None,
        "confidence": None,
        "votes": None,
    }
    row.update(kw)
    return row


def test_label_out_of_range_names_the_row(tmp_path, capsys):
    make_dataset(tmp_path, per_class=3, val_per_class=1, extra_rows=[bad_row(label=7)])
    with pytest.raises(InputError) as error:
        load_dataset(tmp_path / "tiny")
    assert "train.parquet: row 9: label 7: outside the 3 classes" in str(error.value)
    assert main(["train", "--data", str(tmp_path), "--subset", "tiny", "--device", "cpu"]) == 2
    assert "row 9: label 7" in capsys.readouterr().err
    data = load_dataset(tmp_path / "tiny", skip_bad=True)
    assert data.skipped == {"bad label": 1} and len(data.splits["train"]) == 9


def test_missing_shard_names_the_row(tmp_path):
    make_dataset(
        tmp_path,
        per_class=3,
        val_per_class=1,
        extra_rows=[bad_row(image_id="gone", location="images/shard-00009.parquet")],
    )
    with pytest.raises(InputError) as error:
        load_dataset(tmp_path / "tiny")
    assert "row 9: location 'images/shard-00009.parquet': no such image shard" in str(error.value)
    assert load_dataset(tmp_path / "tiny", skip_bad=True).skipped == {"missing shard": 1}


def test_a_wrong_manifest_or_store_shard_is_an_error_naming_file_and_field(tmp_path):
    folder = make_dataset(tmp_path, per_class=3, val_per_class=1)
    manifest = folder / "manifests" / "val.parquet"
    original = pq.read_table(manifest)
    pq.write_table(original.drop_columns(["location"]), manifest)
    with pytest.raises(InputError) as error:
        load_dataset(folder)
    assert str(error.value) == f"{manifest}: location: column missing from the manifest table"
    pq.write_table(original.set_column(1, "label", original.column("label").cast(pa.string())), manifest)
    with pytest.raises(InputError) as error:
        load_dataset(folder)
    assert str(error.value) == f"{manifest}: label: column has type string, expected int64"
    pq.write_table(original, manifest)
    shard = folder / "images" / "shard-00000.parquet"
    pq.write_table(pq.read_table(shard).drop_columns(["image_id"]), shard)
    with pytest.raises(InputError) as error:
        load_dataset(folder)
    assert str(error.value) == f"{shard}: image_id: column missing from the images table"


def test_without_manifests_the_trainer_says_to_run_the_manifests_stage(tmp_path, capsys):
    folder = make_dataset(tmp_path, per_class=3, val_per_class=1)
    shutil.rmtree(folder / "manifests")  # an image store, annotation or not: still no splits to train on
    with pytest.raises(InputError) as error:
        load_dataset(folder)
    assert str(error.value) == (
        f"{folder / 'manifests' / 'train.parquet'}: no train manifest: run make manifests "
        "(make manifests UNVERIFIED=1 without annotation)"
    )
    assert main(["train", "--data", str(tmp_path), "--subset", "tiny", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.parquet: no train manifest: run make manifests" in err
    assert not (folder / "runs").exists()


def test_a_run_fingerprints_the_manifests_and_their_report(tmp_path):
    folder = make_dataset(tmp_path, per_class=3, val_per_class=1)
    report = folder / "reports" / "manifests.json"
    report.parent.mkdir()
    report.write_text("{}\n")
    named = [Path(name).relative_to(folder).as_posix() for name, _, _ in input_state(config(tmp_path))]
    assert named == [
        "manifests/classes.parquet",
        "manifests/train.parquet",
        "manifests/val.parquet",
        "reports/manifests.json",
    ]
    packed = [name for name, _, _ in input_state(config(tmp_path, packed=folder / "manifests"))]
    assert "reports/manifests.json" not in " ".join(packed)


def test_curves_are_drawn_with_gaps_where_an_epoch_lacks_a_value(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.3, "train_top1_error": 0.9, "val_loss": None, "val_top1_error": None},
        {"epoch": 2, "train_loss": 1.1, "train_top1_error": 0.5, "val_loss": 1.4, "val_top1_error": 0.6},
        {"epoch": 3, "train_loss": float("nan"), "train_top1_error": 0.4, "val_top5_error": 0.1},
    ]
    curves(history, tmp_path / "curves.png")
    image = Image.open(tmp_path / "curves.png")
    assert image.format == "PNG" and image.size == (1100, 400)
    assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 20  # lines and text, not blank


@pytest.mark.slow
def test_unreadable_image_names_the_row_or_is_skipped(tmp_path):
    folder = make_dataset(tmp_path, per_class=3, val_per_class=1)
    shard = folder / "images" / "shard-00000.parquet"
    table = pq.read_table(shard)
    blobs = table.column("image").to_pylist()
    blobs[1] = b"\xff\xd8\xff not a JPEG after all"  # train row 1: n01440764-001
    pq.write_table(
        table.set_column(table.schema.get_field_index("image"), "image", pa.array(blobs, pa.binary())), shard
    )
    with pytest.raises(InputError) as error:
        train(config(tmp_path, epochs=1, batch=4), log=lambda m: None)
    assert "train.parquet: row 1: image_id 'n01440764-001': unreadable image" in str(error.value)
    result = train(config(tmp_path, epochs=1, batch=4, skip_bad=True, force=True), log=lambda m: None)
    assert result["skipped"] == {"unreadable image": 1} and result["skipped_rows"] == 1
    assert result["history"][0]["images"] == 8


def invert(path: Path, column: int) -> None:
    """Invert 16 bytes at the first page header of ``column`` in row group 0 of a Parquet file."""
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(column)
    at = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])
    path.write_bytes(bytes(data))


def test_a_damaged_store_or_packed_shard_is_one_line_naming_it(tmp_path, capsys):
    folder = make_dataset(tmp_path, per_class=3, val_per_class=1)
    shard = folder / "images" / "shard-00000.parquet"
    invert(shard, pq.read_schema(shard).get_field_index("image"))
    assert main(["train", "--data", str(tmp_path), "--subset", "tiny", "--device", "cpu", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{shard}: row group 0: the image store shard is damaged" in err.splitlines()[-1]

    packed = tmp_path / "packed" / "data"
    packed.mkdir(parents=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = [{"bytes": picture_jpeg(WNIDS[i % 3], i, 80, 60), "path": f"{i}.jpg"} for i in range(6)]
    table = pa.table({"image": pa.array(images, image_type), "label": pa.array([i % 3 for i in range(6)])})
    pq.write_table(table, packed / "train-00000-of-00001.parquet")
    invert(packed / "train-00000-of-00001.parquet", 0)  # image.bytes
    data = load_dataset(tmp_path, packed=tmp_path / "packed")
    with pytest.raises(InputError) as error:
        Blobs.load(data, data.splits["train"])
    assert str(error.value).startswith(
        f"{packed / 'train-00000-of-00001.parquet'}: row group 0: the packed export shard"
    )


# --------------------------------------------------------------------------- data paths


def test_packed_export_and_streaming_give_the_same_crops(tmp_path):
    """A Hugging Face layout (image struct, label) read in memory and streamed by row group."""
    packed = tmp_path / "packed" / "data"
    packed.mkdir(parents=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split, n in (("train", 8), ("validation", 3)):
        images = [{"bytes": picture_jpeg(WNIDS[i % 3], i, 80, 60), "path": f"{split}-{i}.jpg"} for i in range(n)]
        table = pa.table(
            {"image": pa.array(images, image_type), "label": pa.array([i % 3 for i in range(n)], pa.int64())}
        )
        pq.write_table(table, packed / f"{split}-00000-of-00001.parquet", row_group_size=3)
    data = load_dataset(tmp_path, packed=tmp_path / "packed")
    assert data.origin == "packed" and len(data.classes) == 3
    assert {n: len(s) for n, s in data.splits.items()} == {"train": 8, "val": 3}
    split = data.splits["train"]
    view = View("train", 64, 73, seed=3, epoch=1)
    memory = CropDataset(split, Blobs.load(data, split), view)
    in_memory = {memory[i][2]: memory[i][0] for i in range(len(split))}
    streamed = {s[2]: s[0] for s in StreamDataset(data, split, view, shuffle=True)}
    assert sorted(streamed) == list(range(8))
    assert all(torch.equal(in_memory[i], streamed[i]) for i in range(8))
    assert in_memory[0].shape == (1, 3, 64, 64) and in_memory[0].dtype == torch.uint8


def test_tensor_crops_match_pillow_crops():
    """The GPU path's crop-and-scale (run here on the CPU, images decoded by Pillow) cuts the
    same squares as the workers' Pillow path: equal but for rounding, or for the reduced-size
    JPEG decoding the workers use when the image is twice the crop or more."""
    for (width, height), tolerance in (((96, 72), 0.5), ((200, 150), 6)):
        blob = picture_jpeg(WNIDS[0], 5, width, height)
        for mode in ("center", "tencrop", "train"):
            view = View(mode, 64, 73, seed=0, epoch=0)
            pillow, _ = crop(blob, view, 11)
            boxes, flip, _ = view.boxes(width, height, 11)
            images = pillow_decoder([torch.frombuffer(bytearray(blob), dtype=torch.uint8)], "cpu")
            tensor = crops_on_device(images, torch.tensor([boxes]), torch.tensor([flip]), 64)[0]
            diff = (tensor.float() - torch.from_numpy(pillow).permute(0, 3, 1, 2).float()).abs().mean()
            assert diff < tolerance, (width, mode, diff)


def test_crops_are_seeded_by_sample_and_epoch():
    def draw(epoch: int, index: int) -> str:
        boxes, flip, alpha = View("train", 64, 73, seed=0, epoch=epoch).boxes(300, 200, index)
        return f"{boxes} {flip} {alpha.tolist()}"

    assert draw(2, 5) == draw(2, 5)
    assert len({draw(e, 5) for e in range(8)}) == 8
    assert len({draw(2, i) for i in range(8)}) == 8


def test_gpu_decoding_path_runs_on_the_cpu(tmp_path):
    """The --decode gpu path (raw bytes to the device, batched decoding, crops there) with
    Pillow standing in for nvJPEG: the same batches as the workers' path, bad images reported."""
    make_dataset(tmp_path, per_class=3, val_per_class=1)
    data = load_dataset(tmp_path / "tiny")
    split = data.splits["train"]
    blobs = Blobs.load(data, split)
    blobs.array = pa.array([blobs[i] if i != 4 else b"junk" for i in range(len(split))], pa.large_binary())
    for mode in ("train", "tencrop"):
        view = View(mode, 64, 73, seed=0, epoch=0)
        made = {}
        for decode in (None, pillow_decoder):
            bad: set[int] = set()
            batches = Batches(
                data,
                split,
                blobs,
                view,
                batch=4,
                workers=0,
                device=torch.device("cpu"),
                stats=IMAGENET_STATS,
                shuffle=False,
                decode=decode,
                skip_bad=True,
                bad=bad,
            )
            made[decode] = torch.cat([x for x, _, _ in batches])
            assert bad == {4}
        assert made[None].shape == made[pillow_decoder].shape == (8, 1 if mode == "train" else 10, 3, 64, 64)
        assert (made[None] - made[pillow_decoder]).abs().mean() < 0.1  # normalised units
