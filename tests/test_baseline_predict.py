"""Using a finished run: ``python -m baseline predict``, the run folder's README.txt (its code
run as a user would run it), and what a person reads of a run (the worst class's line, the
curves' ticks)."""

from __future__ import annotations

import io
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install -e '.[train]'): baseline tests skipped"
)

from PIL import Image  # noqa: E402
from test_baseline import WNIDS, config, make_dataset  # noqa: E402
from wordnet_facts import REPO  # noqa: E402

from baseline.__main__ import main  # noqa: E402
from baseline.console import final_lines  # noqa: E402
from baseline.model import build  # noqa: E402
from baseline.plot import curves_figure  # noqa: E402
from baseline.predict import load, predict  # noqa: E402
from baseline.run_folder import RunFolder  # noqa: E402
from baseline.stats import IMAGENET_STATS  # noqa: E402
from baseline.train import train  # noqa: E402
from baseline.transforms import View, crop, resize_for  # noqa: E402
from pipeline.imagehost.pictures import picture_jpeg  # noqa: E402

NAMES = ["tench", "English springer", "cassette player"]
GUESS = re.compile(
    r"^  (\d)\. (n\d{8}) (.+?)\s+(\d+\.\d)%(?:  box \(xmin, ymin, xmax, ymax\) (\d+), (\d+), (\d+), (\d+))?$"
)


def write_run(folder: Path, arch: str = "alexnet", box_head: str | None = None, size: int = 64, seed: int = 0) -> Path:
    """A run folder as a finished run leaves it (``RunFolder.write_model``), with random
    weights: the box head's last layer too, so that each class has its own box."""
    torch.manual_seed(seed)
    net = build(arch, len(WNIDS), box_head=box_head)
    if box_head:
        torch.nn.init.normal_(net.boxes[-1].weight, 0, 0.02)
    run = RunFolder(config(folder.parent, out=folder))
    run.path.mkdir(parents=True)
    run.write_model(
        {
            "arch": arch,
            "state_dict": net.state_dict(),
            "classes": WNIDS,
            "names": NAMES,
            "size": size,
            "stats": IMAGENET_STATS.as_dict() | {"mean": [0.45, 0.5, 0.55], "std": [0.2, 0.25, 0.3]},
            "box_head": box_head,
        }
    )
    return folder


def readme_code(run: Path) -> str:
    text = (run / "README.txt").read_text()
    return text.split("---8<--- predict.py\n", 1)[1].split("---8<---\n", 1)[0]


def readme_module(run: Path, monkeypatch) -> dict:
    """The README's code run as the module it is (in the run folder, where it finds model.pt)."""
    script = run / "predict.py"
    script.write_text(readme_code(run))
    monkeypatch.chdir(run)
    return runpy.run_path(str(script), run_name="readme_predict")


def images(folder: Path) -> list[Path]:
    """Images that take every branch of the centre crop: landscape and portrait JPEGs, one large
    enough for reduced-size JPEG decoding, one turned by its EXIF orientation, a palette PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n, (wnid, width, height) in enumerate([(WNIDS[0], 96, 72), (WNIDS[1], 60, 90), (WNIDS[2], 640, 410)]):
        out.append(folder / f"{n}.jpg")
        out[-1].write_bytes(picture_jpeg(wnid, n, width, height))
    turned = Image.open(io.BytesIO(picture_jpeg(WNIDS[1], 7, 120, 80)))
    exif = turned.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 80 x 120 upright
    out.append(folder / "turned.jpg")
    turned.save(out[-1], exif=exif)
    out.append(folder / "palette.png")
    Image.open(out[0]).convert("P").save(out[-1])
    return out


@pytest.mark.parametrize(
    "arch, box_head",
    [("alexnet", None), pytest.param("alexnet", "agnostic", marks=pytest.mark.slow), ("caffenet", "class")],
)
def test_the_readme_code_cuts_and_guesses_as_predict_does(tmp_path, monkeypatch, arch, box_head):
    run = write_run(tmp_path / "run", arch, box_head, size=64 if arch == "alexnet" else 67)
    pictures = images(tmp_path / "images")
    readme = readme_module(run, monkeypatch)
    trained = load(run)
    view = View("center", trained.size, resize_for(trained.size))
    for path in pictures:
        with Image.open(path) as image:
            pixels, square, size = readme["crop"](image)
        ours, _ = crop(path.read_bytes(), view, 0)
        assert torch.equal((pixels * 255).round().to(torch.uint8), torch.from_numpy(ours[0]).permute(2, 0, 1)), path
        assert size == Image.open(path).size[:: -1 if path.name == "turned.jpg" else 1]
        guesses, box = readme["predict"](path)
        expected, expected_box = predict(trained, path.read_bytes())
        assert [g[0] for g in guesses] == [g.wnid for g in expected] and len(guesses) == 3
        assert [g[1] for g in guesses] == [g.name for g in expected]
        np.testing.assert_allclose([g[2] for g in guesses], [g.probability for g in expected], atol=1e-5)
        assert (box is None) == (box_head is None)
        if box_head:
            assert box == tuple(expected_box), path
            assert 0 <= box[0] < box[2] <= size[0] and 0 <= box[1] < box[3] <= size[1]


def test_a_class_specific_box_head_gives_the_first_guess_its_own_box(tmp_path):
    run = write_run(tmp_path / "run", "alexnet", "class")
    trained = load(run)
    data = picture_jpeg(WNIDS[0], 0, 96, 72)
    guesses, box = predict(trained, data)
    x = torch.from_numpy(crop(data, trained.view, 0)[0]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        _, boxes = trained.net((x - trained.mean) / trained.std)
    rows = boxes.view(-1, 4)
    assert len(rows) == 3 and not torch.allclose(rows[0], rows[1])
    first = WNIDS.index(guesses[0].wnid)
    square = View("center", 64, resize_for(64)).boxes(96, 72, 0)[0][0]  # (12, 0, 84, 72)
    expected = [square[k % 2] + float(rows[first, k]) * (square[2] - square[0]) for k in range(4)]
    clipped = [min(max(round(v), 0), limit) for v, limit in zip(expected, (95, 71, 96, 72))]
    assert list(box) == clipped


@pytest.mark.slow
def test_the_state_dict_loads_into_torchvisions_alexnet_as_the_readme_says(tmp_path, monkeypatch):
    models = pytest.importorskip("torchvision.models", reason="torchvision is not installed")
    plain = write_run(tmp_path / "plain", "alexnet", None)
    boxed = write_run(tmp_path / "boxed", "alexnet", "class", seed=1)
    says = "torchvision.models.alexnet(num_classes=3) loads it with\nload_state_dict(state_dict"
    assert says + ");" in (plain / "README.txt").read_text()
    assert says + ", strict=False), all but the box head" in (boxed / "README.txt").read_text()
    x = torch.randn(2, 3, 64, 64)
    for run, strict in ((plain, True), (boxed, False)):
        saved = torch.load(run / "model.pt", weights_only=True)
        theirs = models.alexnet(num_classes=3).eval()
        theirs.load_state_dict(saved["state_dict"], strict=strict)
        readme = readme_module(run, monkeypatch)
        with torch.no_grad():
            torch.testing.assert_close(theirs(x), readme["model"](x)[0], rtol=1e-4, atol=1e-5)
    assert "no torchvision model" in write_run(tmp_path / "caffe", "caffenet").joinpath("README.txt").read_text()


def test_the_readme_says_the_input_and_lists_the_classes(tmp_path):
    text = (write_run(tmp_path / "run", "alexnet", None, size=80) / "README.txt").read_text()
    assert "the short side scaled to 91, the centre\n80 x 80 square" in text
    assert "mean 0.4500, 0.5000, 0.5500 and std 0.2000, 0.2500, 0.3000" in text
    assert "python -m baseline predict --run <this folder> IMAGE" in text
    assert text.rstrip().splitlines()[-3:] == [
        f"{i:>5} {wnid} {name}" for i, (wnid, name) in enumerate(zip(WNIDS, NAMES))
    ]


def test_predict_prints_the_top_classes_and_the_first_guess_box(tmp_path, capsys):
    root = tmp_path / "data"
    write_run(root / "tiny" / "runs" / "boxes", "alexnet", "class")
    pictures = images(tmp_path / "images")[:2]
    status = main(["predict", "--data", str(root), "--subset", "tiny", "--name", "boxes", *map(str, pictures)])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    trained = load(root / "tiny" / "runs" / "boxes")
    for n, path in enumerate(pictures):
        block = out[4 * n : 4 * n + 4]
        assert block[0] == str(path)
        guesses, box = predict(trained, path.read_bytes())
        parsed = [GUESS.match(line).groups() for line in block[1:]]
        assert [(int(p[0]), p[1], p[2]) for p in parsed] == [(k, g.wnid, g.name) for k, g in enumerate(guesses, 1)]
        assert [float(p[3]) for p in parsed] == [round(100 * g.probability, 1) for g in guesses]
        assert tuple(map(int, parsed[0][4:])) == tuple(box) and parsed[1][4] is None


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_predict_says_in_one_line_what_is_missing_or_unreadable(tmp_path, capsys):
    picture = images(tmp_path / "images")[0]
    run = tmp_path / "runs" / "alexnet"
    assert main(["predict", "--run", str(run), str(picture)]) == 2
    assert one_line(capsys) == f"error: {run / 'model.pt'}: no model.pt: no run here (make train)"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"")
    assert main(["predict", "--run", str(run), str(picture)]) == 2
    assert "no model.pt: the run has not finished (make train)" in one_line(capsys)
    (run / "model.pt").write_text("not a model")
    assert main(["predict", "--run", str(run), str(picture)]) == 2
    assert one_line(capsys).startswith(f"error: {run / 'model.pt'}: not a baseline run's model.pt (")

    run = write_run(tmp_path / "good", "alexnet", None)
    text = tmp_path / "notes.jpg"
    text.write_text("no image")
    assert main(["predict", "--run", str(run), str(picture), str(text)]) == 2
    assert one_line(capsys).startswith(f"error: {text}: unreadable image (")
    assert main(["predict", "--run", str(run), str(tmp_path / "missing.jpg")]) == 2
    assert one_line(capsys) == f"error: {tmp_path / 'missing.jpg'}: cannot read the image: No such file or directory"
    with pytest.raises(SystemExit) as exited:  # no image given: the parser's one line
        main(["predict", "--run", str(run)])
    assert exited.value.code == 2 and "required: IMAGE" in one_line(capsys)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_predict_runs_the_command_and_wants_images(tmp_path):
    run = write_run(tmp_path / "run", "alexnet", None)
    picture = images(tmp_path / "images")[0]

    def make(*args: str) -> subprocess.CompletedProcess:
        command = ["make", "--no-print-directory", "-C", str(REPO), "predict", *args, f"VENV={REPO / '.venv'}"]
        return subprocess.run(command, capture_output=True, text=True)

    refused = make(f"RUN={run}")
    assert refused.returncode == 2 and "make predict needs IMAGES=<image files>" in refused.stdout
    done = make(f"RUN={run}", f"IMAGES={picture}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[lines.index(str(picture)) + 1].startswith("  1. n0")


@pytest.mark.slow
def test_a_trained_run_guesses_alike_in_predict_in_its_readme_code_and_in_evaluation(tmp_path):
    """A real (short) CPU run: its README.txt's code, saved and run by python as a user runs
    it, gives predict's top-1 on the val images, and predict's centre-crop errors are the
    run's own centre-crop top-1 error."""
    make_dataset(tmp_path)
    result = train(config(tmp_path, name="short", epochs=2), log=lambda message: None)
    run = tmp_path / "tiny" / "runs" / "short"
    assert (run / "README.txt").is_file()
    val = tmp_path / "val"
    val.mkdir()
    truth = {}
    for wnid in WNIDS:
        for n in range(12, 16):  # make_dataset's val images: the picture host draws them again
            path = val / f"{wnid}-{n:03d}.jpg"
            path.write_bytes(picture_jpeg(wnid, n, 96, 72))
            truth[str(path)] = wnid
    paths = sorted(truth)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = subprocess.run(
        [sys.executable, "-m", "baseline", "predict", "--run", str(run), "--device", "cpu", *paths],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    (run / "predict.py").write_text(readme_code(run))
    pasted = subprocess.run([sys.executable, "predict.py", *paths], cwd=run, capture_output=True, text=True, check=True)

    def first_guesses(output: str) -> dict[str, str]:
        lines = output.splitlines()
        return {line: lines[k + 1].split()[1] for k, line in enumerate(lines) if line in truth}

    ours, theirs = first_guesses(command.stdout), first_guesses(pasted.stdout)
    assert sorted(ours) == paths and ours == theirs
    wrong = sum(ours[p] != truth[p] for p in paths) / len(paths)
    assert wrong == pytest.approx(result["val"]["top1_error"]["center"])
    assert (
        json.loads((run / "metrics.json").read_text())["val"]["top1_error"]["center"]
        == result["val"]["top1_error"]["center"]
    )


# --------------------------------------------------------------------------- what a person reads


def test_the_worst_class_line_says_its_figure_is_a_share_correct():
    worst = {
        "label": 2,
        "wnid": "n02979186",
        "name": "cassette player",
        "images": 25,
        "accuracy": 0.72,
        "most_confused_with": {"label": 0, "wnid": "n01440764", "name": "tench", "images": 5},
    }
    result = {
        "val": None,
        "test": None,
        "chance_top1_error": 2 / 3,
        "worst_classes": [worst],
        "per_class_split": "test",
        "skipped_rows": 0,
    }
    lines = final_lines(result, Path("runs/x")).splitlines()
    assert lines[0] == (
        "worst class on test (top-1, 10-crop): n02979186 cassette player, 72.0% correct (18 of 25 images), "
        "most often taken for n01440764 tench (5 images)"
    )
    worst.update(accuracy=1.0, most_confused_with=None)
    assert final_lines(result, Path("runs/x")).splitlines()[0].endswith("100.0% correct (25 of 25 images)")


@pytest.mark.parametrize("epochs", [1, 2, 3, 10, 33, 90])
def test_the_curves_have_whole_epochs_on_x_and_percent_on_the_error_axis(epochs):
    history = [
        {
            "epoch": e,
            "train_loss": 2 / e,
            "val_loss": 2.1 / e,
            "train_top1_error": 0.9 / e,
            "val_top1_error": 0.95 / e,
            "val_top5_error": 0.5 / e,
        }
        for e in range(1, epochs + 1)
    ]
    figure = curves_figure(history)
    figure.canvas.draw()
    loss, error = figure.axes
    for axes in (loss, error):
        low, high = axes.get_xlim()
        ticks = [t for t in axes.get_xticks() if low <= t <= high]
        assert ticks and all(t == int(t) and 1 <= t <= epochs for t in ticks), ticks
        assert 1 in ticks or epochs > 3
        labels = [label.get_text() for label in axes.get_xticklabels() if low <= label.get_position()[0] <= high]
        assert labels == [str(int(t)) for t in ticks]
    shown = [label.get_text() for label in error.get_yticklabels()]
    assert shown[0] == "0%" and shown[-1] == "100%" and all(s.endswith("%") for s in shown)
