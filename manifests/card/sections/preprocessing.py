"""Preprocessing and cleaning (Gebru et al., "Datasheets for Datasets"): how the images
were normalised and re-encoded, and which near copies were dropped."""

from __future__ import annotations

from ..facts import Facts
from .markdown import SHOWN, code, embed, settings_text, table, text


def section_preprocessing(facts: Facts, figures) -> list[str]:
    lines = ["## Preprocessing and cleaning", "", "### Resizing and re-encoding", ""]
    if facts.download_report:
        normalise = facts.download_report["settings"]["normalise"]
        side = normalise["max_side"]
        lines.append(
            f"- Rule: EXIF orientation applied, converted to 8-bit RGB, the longer side brought down to {side} px"
            if side
            else "- Rule: EXIF orientation applied, converted to 8-bit RGB, size kept"
        )
        lines[-1] += (
            f", re-encoded as JPEG quality {normalise['quality']}; images under "
            f"{normalise['min_side']} px on the shorter side were refused"
            + (
                "; every original was kept byte for byte."
                if normalise["keep_original"]
                else "; an upright RGB JPEG needing no change was stored byte for byte."
            )
        )
    else:
        absent = facts.name(facts.layout.report("download"))
        lines.append(f"- Rule: unknown (`{absent}`, where the download stage records its settings, is absent).")
    store = facts.store
    if store:
        formats = ", ".join(f"{text(f)} {n:,}" for f, n in store["formats"].most_common())
        originals = ", ".join(f"{text(f)} {n:,}" for f, n in store["original_formats"].most_common())
        spread = store["original_longer_side"]
        lines += [
            f"- The dataset's {store['images']:,} images: stored as {formats}; fetched as {originals}; "
            f"{store['resized']:,} resized and {store['converted']:,} converted to another format.",
            *(
                [
                    f"- Longer side as fetched: {spread['min']:,.0f} to {spread['max']:,.0f} px, median "
                    f"{spread['median']:,.0f}."
                ]
                if spread
                else []
            ),
            "",
        ]
    else:
        absent = facts.name(facts.layout.images)
        lines += [f"- What was resized or converted: unknown (no image store `{absent}/`).", ""]
    lines += ["### Duplicates", ""]
    if not facts.dedupe_report:
        return lines + facts.missing("dedupe", facts.layout.report("dedupe"))
    return lines + _dedupe_lines(facts, figures)


def _dedupe_lines(facts: Facts, figures) -> list[str]:
    d = facts.dedupe_report
    meaning = d["reason_meaning"]
    dropped = d["dropped"]
    radii = settings_text({k: d["settings"][k] for k in ("radius", "verify")})
    lines = [
        f"{d['images']:,} images hashed (pHash and dHash of the image, its mirror and its inner part); "
        f"{d['kept']:,} kept, {sum(dropped.values()):,} dropped. Settings: {radii} "
        "(pHash bits for a pair, dHash bits to verify it). "
        f"{d['clusters_with_copies']:,} clusters hold copies; the largest has {d['largest_cluster']} images.",
        "",
    ]
    lines += table(
        ["reason", "images", "kept", "meaning"],
        [[text(r), n, "no" if r in dropped else "yes", text(meaning.get(r, ""))] for r, n in d["reasons"].items()],
    )
    lines += [""] + embed(figures, "dedupe", "dedupe counts by reason")
    conflicts = d["conflicts"]
    settled = [c for c in conflicts if c["settled_in"]]
    lines.append(
        f"Conflicts, clusters of copies under two or more classes: {len(conflicts):,}; {len(settled):,} settled "
        "by annotation labels, the rest dropped from every class."
    )
    if conflicts:
        lines += [
            "",
            *table(
                ["cluster", "classes", "images", "settled in"],
                [
                    [
                        c["cluster_id"],
                        ", ".join(map(code, c["wnids"])),
                        len(c["image_ids"]),
                        code(c["settled_in"]) if c["settled_in"] else "-",
                    ]
                    for c in conflicts[:SHOWN]
                ],
            ),
        ]
        if len(conflicts) > SHOWN:
            report, sheet = facts.name(facts.layout.report("dedupe")), facts.name(facts.layout.contact_sheet)
            lines.append(f"\n... and {len(conflicts) - SHOWN:,} more in `{report}` and `{sheet}`.")
    unreadable = d["unreadable_files"]
    if unreadable:
        lines.append(f"\n{len(unreadable):,} files could not be read and are not in the dataset.")
    return lines + [""]
