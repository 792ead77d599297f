"""Motivation (Gebru et al., "Datasheets for Datasets"): what the dataset is for, the
stages that built it and how its classes were chosen; who created and funded it is for the
maintainers to complete."""

from __future__ import annotations

from ..facts import Facts
from .markdown import code, settings_text


def section_motivation(facts: Facts, figures) -> list[str]:
    ran = [
        stage
        for stage, record in (
            ("synsets", facts.synsets_report),
            ("candidates", facts.candidates_report),
            ("download", facts.download_report),
            ("dedupe", facts.dedupe_report),
            ("annotation", facts.annotation_report),
        )
        if record
    ] + ["manifests"]
    lines = [
        "## Motivation",
        "",
        f"An ImageNet-style image classification dataset of {len(facts.classes):,} WordNet 3.0 noun synsets, "
        "built with synsetforge after ImageNet's recipe (candidate images per synset, downloaded, deduplicated, "
        f"verified by crowd workers, split ILSVRC-style). Stages that left their records here: {', '.join(ran)}.",
        "",
    ]
    if facts.synsets_report:
        chosen = settings_text(facts.synsets_report["settings"])
        lines += [f"Classes chosen with: {chosen} (subset {code(facts.layout.root.name)}).", ""]
    lines += [
        "**To complete by the dataset's maintainers** (the pipeline does not record it): who created the "
        "dataset and for which task or gap, on whose behalf, and who funded it.",
        "",
    ]
    return lines
