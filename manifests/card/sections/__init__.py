"""The card's Markdown, one module per part of a datasheet (Gebru et al., "Datasheets for
Datasets", CACM 2021), each section a function returning its lines.

Every number comes from the facts (``facts.Facts``); a section whose stage left nothing says
which file is absent instead of guessing, and parts only a person can tell are marked "to
complete".
"""

from __future__ import annotations

from ..facts import Facts
from ..hub import front_matter, yaml_block
from .baseline import section_baseline
from .collection import section_collection
from .composition import section_composition
from .labelling import section_labelling
from .licences import section_licences
from .maintenance import section_maintenance
from .motivation import section_motivation
from .overview import section_header, section_summary
from .preprocessing import section_preprocessing
from .uses import section_uses

# In the card's order. Maintenance comes last: it lists the sections before it that found their
# facts unknown (``Facts.missing`` records them as they render).
SECTIONS = (
    section_header,
    section_summary,
    section_motivation,
    section_composition,
    section_collection,
    section_preprocessing,
    section_labelling,
    section_baseline,
    section_uses,
    section_licences,
    section_maintenance,
)


def render(
    facts: Facts,
    figures: dict[str, list[str]],
    metadata: dict | None = None,
    usage: list[str] | None = None,
    license_link: str | None = None,
) -> str:
    """The card: the Hub's front matter (``hub.front_matter``, then ``metadata``'s keys, such as
    the ``configs`` that ``datasets`` reads), every section's lines in order with ``usage`` (how
    to load a layout) after the glance table, ending in one newline."""
    lines = yaml_block(front_matter(facts, license_link) | (metadata or {}))
    for section in SECTIONS:
        lines += section(facts, figures)
        if section is section_summary:
            lines += usage or []
    return "\n".join(lines).rstrip() + "\n"
