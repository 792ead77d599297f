"""The card stage: ``DATASET_CARD.md`` and its figures ``card/*.png``.

The card answers a datasheet's questions (Gebru et al., "Datasheets for Datasets", CACM 2021):
motivation, composition, collection, preprocessing, labelling, uses, licences and maintenance,
with the numbers the stages left in the dataset folder rather than claims. Only the manifests
are required: a section whose stage left nothing (a dataset imported from a folder has no
download report, an unverified build no annotation) says that its facts are unknown.

- ``facts``: what the stages left (tables, ``reports/<stage>.json``, the newest baseline run's
  ``metrics.json``), read once;
- ``figures``: the PNGs, drawn with matplotlib;
- ``hub``: the YAML front matter the Hugging Face Hub reads (licence, tasks, size);
- ``sections``: the Markdown, one function per datasheet section.

The hf export carries the same card as its ``README.md`` (``write_card``), its figures beside
it, so the folder pushed to the Hub shows it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import layout, runner
from pipeline.settings import integer

from .facts import Facts, load_facts, manifest_tables, optional_inputs
from .sections import render
from .sections.licences import section_licences

HELP = "the dataset card: DATASET_CARD.md (a datasheet of the built dataset) and its figures card/*.png"
SAMPLES_PER_CLASS = 8
SAMPLE_CLASSES = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--samples-per-class",
        type=integer(0),
        default=SAMPLES_PER_CLASS,
        help=f"thumbnails per class in the sample grid, 0 for none (default {SAMPLES_PER_CLASS})",
    )
    parser.add_argument(
        "--sample-classes",
        type=integer(0),
        default=SAMPLE_CLASSES,
        help=f"classes shown in the sample grid at most, spread over the labels (default {SAMPLE_CLASSES})",
    )


def run(args: argparse.Namespace) -> None:
    dataset = layout.Layout(args.workdir)
    settings = {"samples_per_class": args.samples_per_class, "sample_classes": args.sample_classes}
    stage = runner.Stage(
        name="card",
        workdir=dataset.root,
        outputs=(layout.CARD, layout.CARD_FIGURES),
        inputs=(*manifest_tables(dataset), *optional_inputs(dataset)),
        settings=settings,
    )

    def build(out: Path) -> str:
        return write_card(load_facts(dataset), out, layout.CARD, args.samples_per_class, args.sample_classes)

    runner.run(stage, build, force=args.force)


def write_card(
    facts: Facts,
    folder: Path,
    name: str,
    per_class: int = SAMPLES_PER_CLASS,
    sample_classes: int = SAMPLE_CLASSES,
    metadata: dict | None = None,
    usage: list[str] | None = None,
    license_file: str | None = None,
) -> str:
    """The card as ``folder/name``, its figures under ``folder/card/`` (the paths it links), and
    with ``license_file`` that file too: the licences section, which an ``other`` licence links."""
    from .figures import draw_figures  # matplotlib: half a second, only when the card is drawn

    figures = draw_figures(facts, layout.Layout(folder), per_class, sample_classes)
    text = render(facts, figures, metadata, usage, license_file)
    if license_file:
        licences = section_licences(facts, figures)[1:]  # without its "## Licences" heading
        (folder / license_file).write_text(
            f"# Licences of the images of {facts.dataset}\n" + "\n".join(licences), encoding="utf-8"
        )
    (folder / name).write_text(text, encoding="utf-8")
    drawn = sum(len(paths) for paths in figures.values())
    return f"card of {len(facts.classes)} classes, {drawn} figures, {len(facts.unknown)} sections unknown"
