"""Uses (Gebru et al., "Datasheets for Datasets"): what the dataset is for, how
precise its test split is, and the uses it is not fit for."""

from __future__ import annotations

import math

from ..facts import Facts


def section_uses(facts: Facts, figures) -> list[str]:
    test = len(facts.splits["test"])
    lines = [
        "## Uses",
        "",
        f"- Intended: training and evaluating image classifiers over these {len(facts.classes):,} classes, "
        "ILSVRC-style (train to fit, val to tune, test to report once).",
    ]
    if test:
        half = 1.96 * math.sqrt(0.25 / test) * 100
        lines.append(
            f"- The test split has {test:,} images: a top-1 accuracy near 50% measured on it is known to "
            f"about ±{half:.1f} percentage points (95% binomial interval)."
        )
    else:
        lines.append("- The test split is empty: report results on val, and say so.")
    if facts.verified == "no":
        lines.append("- **Not for reporting accuracy** as if on verified labels: no person checked them.")
    lines += [
        "- Out of scope: identifying, tracking or profiling people; inferring attributes of people from "
        "images; any use that treats the classes as a sample of the world: images come from what the sources "
        "index and what their hosts still serve.",
        "- Biases to expect: the sources' coverage (language of the queries, popular hosts), the WordNet "
        "synsets chosen, and the annotators' judgement of each gloss.",
        "",
    ]
    return lines
