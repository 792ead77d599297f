"""A run's folder, ``<data>/<subset>/runs/<name>/`` (or ``--out``): what a run leaves, and how a
rerun finds it.

- ``checkpoint.pt``: model, optimiser and schedule after the last finished epoch (``--resume``);
- ``metrics.jsonl``: one line per epoch; ``metrics.json``: the finished run's figures;
- ``confusion.csv``, ``curves.png``, ``model.pt``: the confusion matrix, the loss and error
  curves, the weights with their classes; ``evaluate.json``: ``python -m baseline evaluate``.

Every file is written under a temporary name and renamed (``pipeline.files``): a reader, or a
rerun after a kill, never sees half of one. A rerun skips a finished run of the same settings
whose inputs are unchanged (as make does, by name, size and modification time), and trains
again, with the run's own settings, one whose data changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline import schemas
from pipeline.errors import InputError
from pipeline.files import atomic_path, atomic_write_json, atomic_write_jsonl, atomic_write_text
from pipeline.layout import RUN_METRICS, Layout
from pipeline.tables import read_report, write_report

from .config import CHECKED_ON_RESUME, FIXED_ON_RESUME, Config
from .ddp import Ranks
from .plot import curves


def dataset_folder(config: Config) -> Path:
    return Path(config.data) / config.subset


class RunFolder:
    def __init__(self, config: Config):
        self.path = Path(config.out) if config.out else Layout(dataset_folder(config)).runs / config.name

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.path / RUN_METRICS

    @property
    def history(self) -> Path:
        return self.path / "metrics.jsonl"

    def open(self, config: Config, ranks: Ranks, log) -> tuple[dict | None, dict | None]:
        """(a finished run to return as it is, or None; the checkpoint to continue, or None).
        Fills in ``config`` the settings a continued or retrained run keeps, and refuses to
        overwrite a run the user did not ask to resume or start over."""
        finished, current = self.finished(config)
        # every rank reads the run folder: on one shared file system they decide alike
        ranks.agree((finished is not None, current, self.checkpoint.exists()), "the run folder")
        if finished is not None and current:
            log(
                f"train: {self.path} is up to date (the same data and settings, {finished['epochs_done']} epochs "
                "done); skipped, --force (FORCE=1) trains again"
            )
            return finished, None
        if finished is not None:
            log(f"train: the data of {self.path} changed since it finished; training it again with its settings")
            for key, value in finished["settings"].items():  # those the command line left open
                if getattr(config, key) is None:
                    setattr(config, key, value)
            config.force = True
        if not self.checkpoint.exists():
            if config.resume:
                log(f"note: no checkpoint in {self.path}: starting from epoch 1")
            return None, None
        if not config.resume:
            if config.force:
                return None, None
            epochs = len(self.history.read_text().splitlines()) if self.history.exists() else "?"
            raise InputError(
                f"already holds a run ({epochs} epochs done): --resume (RESUME=1) continues it, "
                "--force (FORCE=1) starts it over, --name (NAME=) starts another",
                file=self.path,
            )
        checkpoint = self.read_checkpoint()
        for key in FIXED_ON_RESUME:
            given, saved = getattr(config, key), checkpoint["settings"].get(key, getattr(config, key))
            if given is not None and key in CHECKED_ON_RESUME and given != saved:
                raise InputError(
                    f"the run being resumed has {key} {saved!r}", file=self.checkpoint, field=f"--{key}", value=given
                )
            setattr(config, key, saved)
        if config.epochs is None:
            config.epochs = checkpoint["settings"]["epochs"]
        return None, checkpoint

    def finished(self, config: Config) -> tuple[dict | None, bool]:
        """(the metrics of a finished run of the same settings, whether its inputs are
        unchanged), or (None, False) when there is no such run."""
        if config.force or config.resume or not self.metrics.exists():
            return None, False
        try:
            metrics = read_report(self.metrics, schemas.TRAIN_METRICS)
        except InputError:  # unreadable, or written by a trainer of other figures: train anew
            return None, False
        saved = metrics.get("settings", {})
        given = {k: v for k, v in config.settings().items() if v is not None}
        if not all(saved.get(k) == v for k, v in given.items()) or metrics.get("epochs_done") != saved.get("epochs"):
            return None, False
        return metrics, metrics.get("inputs") == input_state(config)

    def read_checkpoint(self) -> dict:
        if not self.checkpoint.exists():
            raise InputError("no checkpoint: train first (make train)", file=self.checkpoint)
        return torch.load(self.checkpoint, map_location="cpu", weights_only=False)

    def write_checkpoint(self, state: dict) -> None:
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def write_history(self, history: list[dict]) -> None:
        atomic_write_jsonl(self.history, history)

    def write_confusion(self, matrix: np.ndarray, wnids: list[str]) -> str:
        lines = ["true\\guess," + ",".join(wnids)]
        lines += [wnid + "," + ",".join(map(str, row)) for wnid, row in zip(wnids, matrix)]
        atomic_write_text(self.path / "confusion.csv", "\n".join(lines) + "\n")
        return "confusion.csv"

    def write_curves(self, history: list[dict]) -> str:
        with atomic_path(self.path / "curves.png") as tmp:
            curves(history, tmp)
        return "curves.png"

    def write_model(self, model: dict) -> None:
        with atomic_path(self.path / "model.pt") as tmp:
            torch.save(model, tmp)

    def write_metrics(self, result: dict) -> None:
        write_report(self.metrics, schemas.TRAIN_METRICS, result)

    def write_evaluation(self, scores: dict) -> None:
        atomic_write_json(self.path / "evaluate.json", scores)


def input_state(config: Config) -> list:
    """Name, size and modification time of every file the run reads its rows from (as make
    does): the manifests and the manifests stage's report, or the packed export."""
    if config.packed:
        files = _files(Path(config.packed))
    else:
        layout = Layout(dataset_folder(config))
        files = _files(Path(config.manifests) if config.manifests else layout.manifests)
        if layout.report("manifests").is_file():
            files.append(layout.report("manifests"))
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file()] if folder.is_dir() else []
