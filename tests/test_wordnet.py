"""Finding, assembling and verifying WordNet 3.0, each source in a process of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from wordnet_facts import data_noun_path

from pipeline.layout import Layout
from wordnet import provision

DICT = data_noun_path().parent


def dict_copy(target: Path, *, version: str = "3.0", nouns: int | None = None, lexnames: bool = False) -> Path:
    """A WordNet dict folder made from this machine's, with its header's version and data.noun changed."""
    target.mkdir(parents=True)
    for name in provision.DICT_FILES + provision.OPTIONAL_FILES:
        if (DICT / name).exists():
            shutil.copyfile(DICT / name, target / name)
    if lexnames:
        shutil.copyfile(provision.LEXNAMES, target / "lexnames")
    lines = (DICT / "data.noun").read_bytes().splitlines(keepends=True)
    header = [
        line.replace(b"WordNet 3.0 Copyright", f"WordNet {version} Copyright".encode())
        for line in lines
        if line.startswith(b"  ")
    ]
    body = [line for line in lines if not line.startswith(b"  ")]
    (target / "data.noun").write_bytes(b"".join(header + body[:nouns]))
    return target


def run_isolated(*args, **env: str):
    """``python -m pipeline ARGS`` that sees only the WordNet locations named in ``env``."""
    return run_cli(*args, env=env, unset=("WORDNET_DIR", "NLTK_DATA"))


def test_the_loaded_wordnet_is_30_with_all_82115_noun_synsets(facts):
    from wordnet.hierarchy import load

    wordnet = load()
    assert wordnet.version == "3.0"
    assert wordnet.noun_count() == len(facts.entries) == 82115
    assert b"WordNet 3.0 Copyright" in facts.header


@pytest.mark.slow
def test_a_dict_folder_without_lexnames_is_assembled_for_nltk(tmp_path):
    source = dict_copy(tmp_path / "dict")
    local = tmp_path / "nltk_data"
    done = run_isolated("wordnet", WORDNET_DIR=str(source), SYNSETFORGE_NLTK_DATA=str(local))
    assert done.returncode == 0, done.stderr
    assert f"WordNet 3.0, 82115 noun synsets, from WORDNET_DIR {source}" in done.stderr
    assert (local / "corpora" / "wordnet" / "lexnames").read_bytes() == provision.LEXNAMES.read_bytes()
    done = run_isolated(
        "synsets", "--data", tmp_path / "data", WORDNET_DIR=str(source), SYNSETFORGE_NLTK_DATA=str(local)
    )
    assert done.returncode == 0, done.stderr
    assert Layout(tmp_path / "data" / "demo").synsets.exists()


def test_another_wordnet_version_is_refused(tmp_path):
    source = dict_copy(tmp_path / "wn31", version="3.1")
    done = run_isolated("wordnet", WORDNET_DIR=str(source), SYNSETFORGE_NLTK_DATA=str(tmp_path / "nd"))
    assert done.returncode == 1
    assert f"WORDNET_DIR={source} holds WordNet 3.1, not 3.0" in done.stderr
    assert not (tmp_path / "nd").exists()


@pytest.mark.slow
def test_a_damaged_copy_is_refused_by_its_noun_count(tmp_path):
    source = dict_copy(tmp_path / "short", nouns=1000, lexnames=True)
    done = run_isolated("wordnet", WORDNET_DIR=str(source))
    assert done.returncode == 1
    assert "has 1000 noun synsets; WordNet 3.0 has 82115" in done.stderr


@pytest.mark.slow
def test_an_nltk_data_that_holds_wordnet_30_is_used(tmp_path):
    nltk_data = tmp_path / "nltk_data"
    dict_copy(nltk_data / "corpora" / "wordnet", lexnames=True)
    done = run_isolated("wordnet", NLTK_DATA=str(nltk_data), SYNSETFORGE_NLTK_DATA=str(tmp_path / "local"))
    assert done.returncode == 0, done.stderr
    assert f"from nltk_data {nltk_data}" in done.stderr
    assert not (tmp_path / "local").exists()


@pytest.mark.slow
def test_an_nltk_data_with_another_version_is_passed_over(tmp_path):
    nltk_data = tmp_path / "nltk_data"
    dict_copy(nltk_data / "corpora" / "wordnet", version="3.1", lexnames=True)
    if not (provision.DEBIAN_DIR / "data.noun").exists():
        pytest.skip("Debian's WordNet is not installed: no fallback to pass over to")
    local = tmp_path / "local"
    done = run_isolated("wordnet", NLTK_DATA=str(nltk_data), SYNSETFORGE_NLTK_DATA=str(local))
    assert done.returncode == 0, done.stderr
    assert f"passed over {nltk_data}/corpora/wordnet: WordNet 3.1, not 3.0" in done.stderr
    assert "from Debian" in done.stderr
    assert (local / "corpora" / "wordnet" / "data.noun").exists()


@pytest.mark.slow
def test_wordnet_zip_as_nltk_downloader_leaves_it_is_used(tmp_path):
    import zipfile

    folder = dict_copy(tmp_path / "wordnet", lexnames=True)
    nltk_data = tmp_path / "nltk_data"
    (nltk_data / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(nltk_data / "corpora" / "wordnet.zip", "w") as z:
        for file in folder.iterdir():
            z.write(file, f"wordnet/{file.name}")
    done = run_isolated(
        "synsets", "--data", tmp_path / "data", NLTK_DATA=str(nltk_data), SYNSETFORGE_NLTK_DATA=str(tmp_path / "local")
    )
    assert done.returncode == 0, done.stderr
    assert f"WordNet 3.0 from nltk_data {nltk_data} (zip)" in done.stderr
    assert not (tmp_path / "local").exists()
