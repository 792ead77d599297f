"""``python -m pipeline summary``: a table from whatever reports a dataset folder holds."""

from __future__ import annotations

import json

from pipeline import schemas
from pipeline.cli import main
from pipeline.layout import Layout
from pipeline.tables import write_report


def stage_report(declaration: schemas.Report, **figures) -> dict:
    """A report of ``declaration``'s shape: ``figures`` and an empty value for every other key."""
    empty = {dict: {}, list: [], str: "", int: 0, float: 0.0, bool: False}
    doc = {}
    for key, kinds in declaration.fields.items():
        kind = kinds[0] if isinstance(kinds, tuple) else kinds
        doc[key] = figures.pop(key) if key in figures else empty[kind]
    assert not figures, f"not declared: {figures}"
    return doc


def summary(tmp_path, capsys) -> dict[str, str]:
    assert main(["summary", "--data", str(tmp_path), "--subset", "set"]) == 0
    return {
        name: figures.strip()
        for name, figures in (line.split(None, 1) for line in capsys.readouterr().out.splitlines()[1:] if "  " in line)
    }


def test_the_summary_shows_each_stage_or_a_dash(tmp_path, capsys):
    layout = Layout(tmp_path / "set")
    download = stage_report(schemas.DOWNLOAD_REPORT, ok=8, candidates=10, ok_percent=80.0)
    download["statuses"] = {"ok": 8, "http_error": 2}
    write_report(layout.report("download"), schemas.DOWNLOAD_REPORT, download)
    dedupe = stage_report(schemas.DEDUPE_REPORT, kept=7, images=8, dropped={"near": 1}, conflicts=[])
    write_report(layout.report("dedupe"), schemas.DEDUPE_REPORT, dedupe)
    checks = {"labels": {"ok": True}, "counts": {"ok": False}}
    write_report(
        layout.report("validate"), schemas.VALIDATE_REPORT, stage_report(schemas.VALIDATE_REPORT, checks=checks)
    )
    boxes = stage_report(
        schemas.ANNOTATE_IMPORT_BOXES_REPORT,
        accepted=12,
        images=6,
        images_complete=5,
        rounds=[1, 2],
        mean_boxes_per_image=2.4,
        workers=9,
        workers_excluded=["w1"],
    )
    write_report(layout.report("annotate-import-boxes"), schemas.ANNOTATE_IMPORT_BOXES_REPORT, boxes)
    lines = summary(tmp_path, capsys)
    assert (
        lines["boxes"]
        == "12 boxes on 5 of 6 images fully boxed in 2 rounds (2.4 a boxed image), 1 of 9 workers excluded"
    )
    assert lines["download"] == "8 of 10 ok (80.0%); failures: 2 http_error"
    assert lines["dedupe"] == "7 of 8 kept; dropped: 1 near; 0 conflicts"
    assert lines["validate"] == "FAILED: counts"
    assert lines["synsets"] == lines["baseline"] == "-"


def test_a_report_with_a_renamed_key_is_an_error_not_a_wrong_figure(tmp_path, capsys):
    report = stage_report(schemas.DEDUPE_REPORT, kept=7, images=8)
    report["kept_images"] = report.pop("kept")
    path = Layout(tmp_path / "set").report("dedupe")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(report))
    assert main(["summary", "--data", str(tmp_path), "--subset", "set"]) != 0
    assert f"{path}: kept: key missing from the dedupe report" in capsys.readouterr().err
