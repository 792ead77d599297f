"""Where every table, report and folder of a dataset lives: the one place a path is spelled.

A dataset is the folder ``DATA/SUBSET``. ``Layout(folder)`` names each file in it; the same
names serve a stage's temporary build folder, since the runner renames a build's outputs into
the dataset folder under the same relative names (``Layout(tmp).synsets`` is built, then
published as ``Layout(workdir).synsets``). Stages declare their outputs with the relative
names below (``runner.Stage.outputs``) and reach every path through a ``Layout``.

Reports follow one rule: stage ``<name>`` writes ``reports/<name>.json``, whose shape is
declared beside the table schemas (``pipeline.schemas.REPORTS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Relative names inside a dataset folder, for ``runner.Stage.outputs``.
SYNSETS = "synsets.parquet"
WORDS = "words.txt"
IS_A = "wordnet.is_a.txt"
CANDIDATES = "candidates"
IMAGES = "images"
LEDGER = "ledger"
DEDUPE = "dedupe"
ANNOTATION = "annotation"
MANIFESTS = "manifests"
EXPORT = "export"
RUNS = "runs"
CARD = "DATASET_CARD.md"
CARD_FIGURES = "card"
REPORTS = "reports"
EVALUATIONS = "evaluations"  # scored submissions (pipeline.evaluation)

STAMPS = ".stages"  # the runner's record of each finished stage, and its locks
CACHES = ".cache"  # finished pieces of work a rerun after an interruption reuses
SPLITS = ("train", "val", "test")
CANDIDATE_PART = "part-{number:05d}.parquet"
CANDIDATE_PARTS = "part-*.parquet"
RUN_METRICS = "metrics.json"  # in a run folder, runs/<name>/
SHARD = "shard-{number:05d}.parquet"
SHARDS = "shard-*.parquet"


def report_name(stage: str) -> str:
    """``reports/<stage>.json``: the relative name of a stage's report."""
    return f"{REPORTS}/{stage}.json"


def annotate_export_stage(round_: int) -> str:
    """``annotate-export-<n>``: the runner stage, and report, of one round's HIT export."""
    return f"annotate-export-{round_}"


def annotate_export_box_stage(round_: int, task: str) -> str:
    """``annotate-export-box-<n>-<task>``: the runner stage, and report, of one box task export."""
    return f"annotate-export-box-{round_}-{task}"


def box_round_name(round_: int, task: str) -> str:
    """``annotation/box-rounds/round-<n>/<task>``: one box task's export, relative to the dataset."""
    return f"{ANNOTATION}/box-rounds/round-{round_}/{task}"


def round_name(round_: int) -> str:
    """``annotation/round-<n>``: the folder of one annotation round's HITs and answers."""
    return f"{ANNOTATION}/round-{round_}"


@dataclass(frozen=True)
class Layout:
    """The paths of one dataset folder (or of a stage's build folder)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def report(self, stage: str) -> Path:
        return self.root / report_name(stage)

    # synsets
    @property
    def synsets(self) -> Path:
        return self.root / SYNSETS

    @property
    def words(self) -> Path:
        return self.root / WORDS

    @property
    def is_a(self) -> Path:
        return self.root / IS_A

    # candidates and download
    @property
    def candidates(self) -> Path:
        return self.root / CANDIDATES

    def candidate_parts(self) -> list[Path]:
        return sorted(self.candidates.glob(CANDIDATE_PARTS))

    def candidate_part(self, number: int) -> Path:
        return self.candidates / CANDIDATE_PART.format(number=number)

    @property
    def images(self) -> Path:
        """The image store: ``images/shard-N.parquet`` (read and written by ``pipeline.store``)."""
        return self.root / IMAGES

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    def ledger_shards(self) -> list[Path]:
        return sorted(self.ledger.glob(SHARDS))

    # dedupe
    @property
    def dedupe(self) -> Path:
        return self.root / DEDUPE

    @property
    def hashes(self) -> Path:
        return self.dedupe / "hashes.parquet"

    @property
    def clusters(self) -> Path:
        return self.dedupe / "clusters.parquet"

    @property
    def contact_sheet(self) -> Path:
        return self.dedupe / "contact_sheet.html"

    # annotation
    @property
    def annotation(self) -> Path:
        return self.root / ANNOTATION

    def round(self, round_: int) -> Path:
        return self.root / round_name(round_)

    def hits(self, round_: int) -> Path:
        return self.round(round_) / "hits.parquet"

    def rounds(self) -> list[int]:
        """The exported annotation rounds (those with a ``hits.parquet``), in numeric order."""
        found = (p.parent.name.removeprefix("round-") for p in self.annotation.glob("round-*/hits.parquet"))
        return sorted(int(n) for n in found if n.isdigit())

    def hit_tables(self) -> list[Path]:
        """Every exported round's ``hits.parquet``, in round order."""
        return [self.hits(r) for r in self.rounds()]

    @property
    def votes(self) -> Path:
        return self.annotation / "votes.parquet"

    @property
    def workers(self) -> Path:
        return self.annotation / "workers.parquet"

    @property
    def labels(self) -> Path:
        return self.annotation / "labels.parquet"

    # object boxes (Su, Deng and Fei-Fei's draw, quality and coverage tasks)
    @property
    def boxes(self) -> Path:
        """The verified boxes (schemas.BOXES): crowd consensus, or imported with a dataset."""
        return self.annotation / "boxes.parquet"

    def box_round(self, round_: int, task: str) -> Path:
        """``annotation/box-rounds/round-<n>/<task>/``: one box task's export and answers."""
        return self.root / box_round_name(round_, task)

    def box_tasks(self, round_: int, task: str) -> Path:
        return self.box_round(round_, task) / "tasks.parquet"

    def box_task_tables(self) -> list[Path]:
        """Every exported box task's ``tasks.parquet``, by round then task."""
        found = self.annotation.glob("box-rounds/round-*/*/tasks.parquet")
        return sorted(found, key=lambda p: (int(p.parent.parent.name.removeprefix("round-")), p.parent.name))

    @property
    def box_draws(self) -> Path:
        """Every box drawn by the crowd (schemas.BOX_DRAWS)."""
        return self.annotation / "box-draws.parquet"

    @property
    def box_votes(self) -> Path:
        """The crowd's quality and coverage answers (schemas.BOX_VOTES)."""
        return self.annotation / "box-votes.parquet"

    @property
    def box_candidates(self) -> Path:
        """Merged draws and their quality verdicts (schemas.BOX_CANDIDATES)."""
        return self.annotation / "box-candidates.parquet"

    @property
    def box_images(self) -> Path:
        """Where each image stands in the box loop (schemas.BOX_IMAGES)."""
        return self.annotation / "box-images.parquet"

    @property
    def box_workers(self) -> Path:
        """Box workers' accuracy on the gold tasks (schemas.WORKERS)."""
        return self.annotation / "box-workers.parquet"

    @property
    def imports(self) -> Path:
        """The digests of the answer files imported so far."""
        return self.annotation / "imports.json"

    # manifests
    @property
    def manifests(self) -> Path:
        return self.root / MANIFESTS

    def manifest(self, split: str) -> Path:
        return self.manifests / f"{split}.parquet"

    @property
    def classes(self) -> Path:
        return self.manifests / "classes.parquet"

    @property
    def box_manifest(self) -> Path:
        """The boxes of the manifests' images, with their split (schemas.BOX_MANIFEST)."""
        return self.manifests / "boxes.parquet"

    # what is made from the manifests
    def export(self, format_: str) -> Path:
        return self.root / EXPORT / format_

    def evaluation(self, split: str, name: str) -> Path:
        """``evaluations/<split>-<name>.json``: the scores of the submission whose file's stem is
        ``name`` on ``split`` (schemas.EVALUATE_REPORT); its per-class table beside it, ``.csv``."""
        return self.root / EVALUATIONS / f"{split}-{name}.json"

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    def run_metrics(self) -> list[Path]:
        """Every run's ``metrics.json`` (finished runs only), oldest first."""
        return sorted(self.runs.glob(f"*/{RUN_METRICS}"), key=lambda p: p.stat().st_mtime)

    @property
    def card(self) -> Path:
        return self.root / CARD

    @property
    def card_figures(self) -> Path:
        return self.root / CARD_FIGURES

    # the answers beside a round's hits.parquet
    def simulated_answers(self, round_: int) -> Path:
        """A simulated crowd's answers to a round (``annotate-simulate``), in MTurk's results format."""
        return self.round(round_) / "results-simulated.csv"

    def simulated_box_answers(self, round_: int, task: str) -> Path:
        """A simulated crowd's answers to one box task of a round, in MTurk's results format."""
        return self.box_round(round_, task) / "results-simulated.csv"

    def local_answers(self, round_: int) -> Path:
        """Answers given on our own labelling page (``annotate-serve``), one JSON object a line."""
        return self.round(round_) / "results-local.jsonl"

    # the download's ledger, shard by shard as the image store
    def ledger_shard(self, number: int) -> Path:
        return self.ledger / SHARD.format(number=number)
