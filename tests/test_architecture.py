"""Stages meet only through tables: no stage imports another stage's code.

A stage knows its input and output tables (``pipeline.layout``, ``pipeline.schemas``,
``pipeline.store``) and the shared helpers, never the modules of the stage before it.
Read from the source with ``ast``, so a new import that crosses a stage line fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each stage area: the packages or modules that belong to it.
STAGES = {
    "synsets": ("wordnet",),
    "candidates": ("pipeline.candidates",),
    "download": ("pipeline.download",),
    "dedupe": ("pipeline.dedupe",),
    "annotation": ("annotation",),
    "manifests": ("manifests",),
    "baseline": ("baseline",),
    "imagehost": ("pipeline.imagehost",),
}


def area(module: str) -> str | None:
    for name, prefixes in STAGES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, package: list[str] | None = None) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package, at any depth
    (also inside functions)."""
    if package is None:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted(
    p for top in ("pipeline", "wordnet", "annotation", "manifests", "baseline") for p in (ROOT / top).rglob("*.py")
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_stage_imports_no_other_stage(path):
    own = area(module_name(path))
    crossing = sorted(m for m in imports(path) if area(m) not in (None, own) and module_name(path) != "pipeline.cli")
    assert not crossing, f"{path.relative_to(ROOT)} imports another stage's code: {crossing}"


def test_shared_modules_import_no_stage():
    """pipeline's own modules (layout, store, schemas, tables, runner...) sit below every stage;
    the command line is the one place that names the stages."""
    shared = [p for p in SOURCES if area(module_name(p)) is None and module_name(p) != "pipeline.cli"]
    crossing = {p.name: sorted(m for m in imports(p) if area(m)) for p in shared}
    assert not {k: v for k, v in crossing.items() if v}


def test_the_checker_sees_a_crossing(tmp_path):
    """The checks above can fail: an import of another stage, relative or absolute, is seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("from pipeline.dedupe.clusters import x\n\ndef f():\n    from ..annotation import y\n")
    assert {area(m) for m in imports(probe, ["manifests"])} == {"dedupe", "annotation"}
