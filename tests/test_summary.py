"""``python -m pipeline summary``: a table from whatever reports a dataset folder holds."""

from __future__ import annotations

import json

from pipeline.cli import main


def test_the_summary_shows_each_stage_or_a_dash(tmp_path, capsys):
    workdir = tmp_path / "set"
    (workdir / "dedupe").mkdir(parents=True)
    (workdir / "download_stats.json").write_text(
        json.dumps({"ok": 8, "candidates": 10, "ok_percent": 80.0, "statuses": {"ok": 8, "http_error": 2}})
    )
    (workdir / "dedupe" / "report.json").write_text(
        json.dumps({"kept": 7, "images": 8, "dropped": {"near": 1}, "conflicts": []})
    )
    (workdir / "validation.json").write_text(json.dumps({"checks": {"labels": {"ok": True}, "counts": {"ok": False}}}))
    assert main(["summary", "--data", str(tmp_path), "--subset", "set"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[1:] if "  " in line)
    assert lines["download"].strip() == "8 of 10 ok (80.0%); failures: 2 http_error"
    assert lines["dedupe"].strip() == "7 of 8 kept; dropped: 1 near; 0 conflicts"
    assert lines["validate"].strip() == "FAILED: counts"
    assert lines["synsets"].strip() == lines["baseline"].strip() == "-"
