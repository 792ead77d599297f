"""The Makefile's own recipes, run by a real make (only targets that need no setup)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from wordnet_facts import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> subprocess.CompletedProcess:
    """``make -C <repo> ARGS`` as a user types it; VENV names the existing one so nothing is set up."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args, f"VENV={REPO / '.venv'}"],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    for subset in ("demo", "dogs"):
        (root / subset / "manifests").mkdir(parents=True)
        (root / subset / "manifests" / "train.parquet").write_bytes(b"kept")
    return root


@pytest.mark.parametrize("subset", ["", " ", "dogs/..", "..", "../data", "a/b", ".", "-rf", "it's"])
def test_clean_refuses_a_subset_that_is_not_one_folder_and_removes_nothing(data_root, subset):
    done = make("clean", f"SUBSET={subset}", f"DATA={data_root}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "make clean: " in lines[0] and "SUBSET" in lines[0]
    assert "rm " not in done.stdout
    assert sorted(p.name for p in data_root.iterdir()) == ["demo", "dogs"]
    assert (data_root / "dogs" / "manifests" / "train.parquet").read_bytes() == b"kept"


def test_clean_refuses_an_empty_data_root(data_root):
    done = make("clean", "SUBSET=demo", "DATA=")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "DATA is empty" in done.stderr


def test_clean_removes_only_the_subset_folder(data_root):
    done = make("clean", "SUBSET=demo", f"DATA={data_root}")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in data_root.iterdir()] == ["dogs"]
    assert (data_root / "dogs" / "manifests" / "train.parquet").read_bytes() == b"kept"


def test_help_lists_every_target_and_the_common_settings_in_one_column():
    done = make("help")
    assert done.returncode == 0, done.stderr
    assert "\t" not in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    rows = [line.split(None, 1) for line in lines]
    columns = {line.index(text, 2 + len(name)) for line, (name, text) in zip(lines, rows)}
    assert len(columns) == 1, f"the descriptions start at columns {sorted(columns)}"
    phony = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith(".PHONY:"))
    assert [name for name, _ in rows if "=" not in name] == phony.split()[1:]
    settings = {name.split("=")[0] for name, _ in rows if "=" in name}
    assert settings >= {"DATA", "SUBSET", "FORCE", "PROGRESS_SECONDS"}
