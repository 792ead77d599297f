"""Maintenance (Gebru et al., "Datasheets for Datasets"): when and how the dataset was
built and can be rebuilt, its validation, the sections whose facts are unknown, and what the
maintainers must complete."""

from __future__ import annotations

from pipeline.layout import report_name

from ..facts import Facts
from .markdown import code, text


def section_maintenance(facts: Facts, figures) -> list[str]:
    lines = [
        "## Maintenance",
        "",
        f"- Built {text(facts.meta.get('synsetforge.built_at', 'at an unknown time'))} with synsetforge "
        f"{text(facts.meta.get('synsetforge.version', '(version unknown)'))}; manifests fingerprint "
        f"{code(facts.meta.get('synsetforge.fingerprint', 'unknown'))}.",
        f"- Rebuild: run the stages again with {code(f'SUBSET={facts.dataset}')} (`make synsets candidates download dedupe`, the "
        "annotation rounds, `make manifests`), then `python -m pipeline card`; each stage's settings are in "
        f"`{report_name('<stage>')}`. Source URLs go dead over time; the image store keeps the bytes.",
    ]
    validation = facts.name(facts.layout.report("validate"))
    if facts.validate_report:
        checks = facts.validate_report["checks"]
        failed = [n for n, c in checks.items() if not c["ok"]]
        lines.append(
            f"- Validation (`{validation}`): {len(checks) - len(failed)} of {len(checks)} checks passed"
            + (f"; failed: {', '.join(map(text, failed))}." if failed else ".")
        )
    else:
        lines.append(f"- Validation: not run (`python -m pipeline validate` writes `{validation}`).")
    if facts.unknown:
        lines.append(f"- Sections with unknown facts: {', '.join(facts.unknown)}.")
    lines += [
        "- **To complete by the maintainers**: who maintains the dataset, how to reach them, how errors and "
        "takedown requests are handled, and whether it will be updated.",
        "",
    ]
    return lines
