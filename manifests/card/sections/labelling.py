"""Labelling (the labelling half of Gebru et al.'s "Datasheets for Datasets"): the crowd
verification, its aggregation method and HITs, the rounds, agreement between workers and the
workers' accuracy on control images."""

from __future__ import annotations

from ..facts import Facts
from .markdown import code, embed, pct, settings_text, table

METHODS = {
    "dynamic": "ImageNet's dynamic consensus: per synset, a table P(shows the synset | k yes of n votes) is "
    "fitted on an initial subset of images with many votes; an image is decided once its confidence "
    "passes the threshold (or falls below one minus it), or at the vote cap",
    "majority": "the majority of the counted votes",
    "dawid_skene": "Dawid-Skene EM per synset, weighting each worker by their estimated error rates",
}


def section_labelling(facts: Facts, figures) -> list[str]:
    lines = ["## Labelling", ""]
    if facts.verified == "no":
        lines += [
            "The manifests use **unverified candidate labels**: whatever annotation exists below did not "
            "decide which images entered the splits.",
            "",
        ]
    a = facts.annotation_report
    if not a:
        return lines + facts.missing("labelling", facts.layout.report("annotate-import"))
    settings = a["settings"]
    method = settings["method"]
    lines += [
        f"Crowd verification, ImageNet's way: workers saw one synset (lemmas, gloss, parent) and a grid of "
        f"candidate images, and ticked those that show it. Aggregation: {code(method)}, {METHODS.get(method, '')}. "
        f"Settings: {settings_text(settings)}.",
        "",
    ]
    if facts.first_round_report:
        packing = facts.first_round_report["settings"]["packing"]
        lines += [
            f"HITs (round 1): {packing['per_hit']} candidates plus {packing['positives']} known positives and "
            f"{packing['negatives']} known negatives, shuffled; {packing['votes']} votes per image "
            f"({packing['initial_votes']} for an initial {packing['initial']} images per synset); later rounds "
            f"ask {packing['votes_later']} more about the images still undecided.",
            "",
        ]
    asked = a["images_asked"]
    lines += table(
        ["", ""],
        [
            ["rounds", ", ".join(map(str, a["rounds"]))],
            ["votes imported", a["votes"]],
            ["votes on candidates counted", a["candidate_votes_counted"]],
            ["images asked about", asked],
            *([k, f"{a[k]:,} ({pct(a[k], asked)})"] for k in ("accepted", "rejected", "undecided")),
            ["mean votes per image", a["mean_votes_per_image"]],
        ],
    ) + [""]
    lines += _round_lines(facts) + _agreement_lines(facts) + _worker_lines(facts)
    lines += embed(figures, "annotation", "votes per image, selection frequency and worker accuracy")
    return lines


def _round_lines(facts: Facts) -> list[str]:
    if facts.votes is None:
        return [f"Votes per round: unknown (`{facts.name(facts.layout.votes)}` is absent).", ""]
    per_round = facts.votes.groupby("round").agg(
        votes=("image_id", "size"), workers=("worker_id", "nunique"), images=("image_id", "nunique")
    )
    return [
        "Per round:",
        "",
        *table(
            ["round", "votes", "images", "workers"],
            [[int(r), int(v.votes), int(v.images), int(v.workers)] for r, v in per_round.iterrows()],
        ),
        "",
    ]


def _agreement_lines(facts: Facts) -> list[str]:
    lines = ["### Agreement", ""]
    if facts.labels is not None and len(facts.labels):
        labels = facts.labels
        accepted = labels[labels.accepted]
        lines.append(
            f"- Mean selection frequency (share of votes that ticked an image, ImageNetV2's measure): "
            f"{labels.selection_frequency.mean():.3f} over all {len(labels):,} images, "
            f"{accepted.selection_frequency.mean() if len(accepted) else float('nan'):.3f} over the accepted ones."
        )
        lines.append(
            f"- Votes per image: median {labels.votes_total.median():g}, from {labels.votes_total.min()} to "
            f"{labels.votes_total.max()}."
        )
        in_set = facts.rows
        if in_set.confidence.notna().any():
            lines.append(
                f"- Confidence of the images in the splits: median {in_set.confidence.median():.4f}, lowest "
                f"{in_set.confidence.min():.4f}."
            )
    else:
        lines.append(f"- Selection frequencies: unknown (`{facts.name(facts.layout.labels)}` is absent).")
    stats = facts.annotation_report["agreement"]  # computed by annotation over the votes it counted
    if stats:
        lines.append(
            f"- Over the {stats['images']:,} images with two or more counted votes: "
            f"{stats['unanimous']:.1%} unanimous; {stats['observed']:.1%} of pairs of votes on one image agree "
            f"(chance alone, with {stats['yes_share']:.1%} yes votes: {stats['chance']:.1%}); "
            + (
                f"Fleiss' kappa {stats['kappa']:.3f}"
                if stats["kappa"] is not None
                else "Fleiss' kappa undefined (the votes are all one answer)"
            )
            + " (images weighted by their pairs of votes, as votes per image vary)."
        )
    return lines + [""]


def _worker_lines(facts: Facts) -> list[str]:
    lines = ["### Workers", ""]
    w = facts.workers
    if w is None:
        return lines + [f"Unknown: `{facts.name(facts.layout.workers)}` is absent.", ""]
    accuracy = w.accuracy.dropna()
    answers, correct = int(w.control_answers.sum()), int(w.control_correct.sum())
    lines.append(
        f"- {len(w):,} workers answered {int(w.assignments.sum()):,} HITs (median {w.assignments.median():g} each); "
        f"{int(w.excluded.sum()):,} were excluded for accuracy on the controls below the threshold, and "
        "their votes are not counted."
    )
    if len(accuracy):
        lines.append(
            f"- Accuracy on control images, {len(accuracy):,} workers who saw any: min {accuracy.min():.2f}, "
            f"median {accuracy.median():.2f}, mean {accuracy.mean():.2f}, max {accuracy.max():.2f}; "
            f"{correct:,} of {answers:,} control answers right ({pct(correct, answers)})."
        )
    no_controls = int(w.accuracy.isna().sum())
    if no_controls:
        lines.append(f"- {no_controls:,} workers saw no controls: their accuracy is unknown and their votes count.")
    return lines + [""]
