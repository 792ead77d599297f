"""Find WordNet 3.0 on this machine, or assemble it from Debian's packages, for nltk to read.

ImageNet's wnids are byte offsets into WordNet 3.0's ``data.noun``, so any other version
would silently name other synsets: every source is checked for the version before use.

Where WordNet comes from, first found wins:

1. ``WORDNET_DIR``: a WordNet 3.0 dict folder (an nltk corpus folder, Princeton's
   ``dict/`` or Debian's ``/usr/share/wordnet``);
2. an nltk_data folder that already holds WordNet 3.0 (``corpora/wordnet`` or its zip);
3. Debian's ``wordnet-base`` and ``wordnet-sense-index`` (installed here when we are root),
   copied into a project-local nltk_data folder with the ``lexnames`` file Debian lacks.

nltk only opens corpora inside the folders on ``nltk.data.path``, so the chosen folder is
registered there before the reader is made.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

DEBIAN_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
VERSION = "3.0"
NOUN_SYNSETS = 82115
LEXNAMES = Path(__file__).with_name("data") / "lexnames"
# The files nltk's WordNet reader opens; lexnames is ours, the rest must come from the source.
DICT_FILES = (
    "data.noun",
    "data.verb",
    "data.adj",
    "data.adv",
    "index.noun",
    "index.verb",
    "index.adj",
    "index.adv",
    "noun.exc",
    "verb.exc",
    "adj.exc",
    "adv.exc",
)
OPTIONAL_FILES = ("index.sense", "cntlist.rev")
_VERSION_RE = re.compile(rb"WordNet (\d+\.\d+|\d+\+?) Copyright")


class WordNetNotFound(PipelineError):
    pass


@dataclass(frozen=True)
class WordNetCopy:
    """A WordNet corpus nltk can open: ``data_root`` goes on nltk.data.path, ``corpus`` is
    ``corpora/wordnet`` (or the zip member) below it."""

    data_root: Path
    corpus: str
    origin: str

    @property
    def path(self) -> str:
        return str(self.data_root / self.corpus)

    @property
    def is_zip(self) -> bool:
        return ".zip/" in self.corpus


def local_nltk_data() -> Path:
    """The project-local nltk_data: ``.nltk_data`` in a source checkout, else the user cache."""
    if env := os.environ.get("SYNSETFORGE_NLTK_DATA"):
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / ".nltk_data"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "synsetforge" / "nltk_data"


def header_version(header: bytes) -> str | None:
    """The version in a WordNet data file's licence header ("WordNet 3.0 Copyright 2006")."""
    match = _VERSION_RE.search(header)
    return match.group(1).decode() if match else None


def dict_version(folder: Path) -> str | None:
    """The version a dict folder declares in ``data.noun``'s header, or None without one."""
    try:
        with open(folder / "data.noun", "rb") as f:
            return header_version(f.read(4096))
    except FileNotFoundError:
        return None


def _refuse_version(version: str | None, where: str) -> None:
    if version != VERSION:
        raise WordNetNotFound(
            f"{where} holds WordNet {version or 'of unknown version'}, not {VERSION}: ImageNet's wnids "
            f"are offsets into WordNet {VERSION}'s data.noun and name other synsets in any other version"
        )


def assemble(dict_dir: Path, target: Path, origin: str) -> WordNetCopy:
    """Copy a WordNet dict folder into ``target/corpora/wordnet`` with our ``lexnames`` file.

    Copies rather than links: nltk resolves links and refuses files outside its data roots.
    Written to a temporary folder and renamed, so an interrupted copy is never used.
    """
    missing = [name for name in DICT_FILES if not (dict_dir / name).exists()]
    if missing:
        raise WordNetNotFound(f"{dict_dir} is not a complete WordNet dict folder: {', '.join(missing)} missing")
    _refuse_version(dict_version(dict_dir), str(dict_dir))
    corpus = target / "corpora" / "wordnet"
    tmp = corpus.with_name(f".wordnet-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for folder in (target, corpus.parent, tmp):
        os.chmod(folder, 0o755)  # nltk refuses data folders that others can write to
    for name in DICT_FILES + OPTIONAL_FILES:
        if (dict_dir / name).exists():
            shutil.copyfile(dict_dir / name, tmp / name)
    if (dict_dir / "lexnames").exists():
        shutil.copyfile(dict_dir / "lexnames", tmp / "lexnames")
    else:
        shutil.copyfile(LEXNAMES, tmp / "lexnames")
    (tmp / "ORIGIN").write_text(origin + "\n")
    shutil.rmtree(corpus, ignore_errors=True)
    os.replace(tmp, corpus)
    return WordNetCopy(target, "corpora/wordnet", origin)


def _nltk_data_copies() -> list[WordNetCopy]:
    """WordNet corpora already in the user's nltk_data folders (nltk's own search path)."""
    import nltk

    found = []
    for root in map(Path, nltk.data.path):
        if (root / "corpora" / "wordnet" / "data.noun").exists():
            found.append(WordNetCopy(root, "corpora/wordnet", f"nltk_data {root}"))
        elif (root / "corpora" / "wordnet.zip").exists():
            found.append(WordNetCopy(root, "corpora/wordnet.zip/wordnet/", f"nltk_data {root} (zip)"))
    return found


def _copy_version(copy: WordNetCopy) -> str | None:
    if copy.is_zip:
        import zipfile

        with zipfile.ZipFile(copy.data_root / "corpora" / "wordnet.zip") as z:
            with z.open("wordnet/data.noun") as f:
                return header_version(f.read(4096))
    return dict_version(Path(copy.path))


def _from_wordnet_dir(folder: Path) -> WordNetCopy:
    if not (folder / "data.noun").exists():
        raise WordNetNotFound(f"WORDNET_DIR={folder} holds no data.noun: point it at a WordNet {VERSION} dict folder")
    _refuse_version(dict_version(folder), f"WORDNET_DIR={folder}")
    if (folder / "lexnames").exists():
        return WordNetCopy(folder, ".", f"WORDNET_DIR {folder}")
    return assemble(folder, local_nltk_data(), f"WORDNET_DIR {folder}")


def _local_copy() -> WordNetCopy | None:
    local = local_nltk_data()
    corpus = local / "corpora" / "wordnet"
    if (corpus / "lexnames").exists() and dict_version(corpus) == VERSION:
        origin = (corpus / "ORIGIN").read_text().strip() if (corpus / "ORIGIN").exists() else str(corpus)
        return WordNetCopy(local, "corpora/wordnet", origin)
    return None


def install_debian_packages() -> None:
    """``apt-get install`` Debian's WordNet 3.0 packages; only as root, where apt exists."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise WordNetNotFound(
            "WordNet 3.0 not found. Install Debian's packages (sudo apt-get install "
            f"{' '.join(DEBIAN_PACKAGES)}), or set WORDNET_DIR to a WordNet {VERSION} dict folder, "
            "or put WordNet 3.0 in an nltk_data folder (python -m nltk.downloader wordnet)"
        )
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(cmd, env=env).returncode != 0:
            raise WordNetNotFound(f"could not install {' '.join(DEBIAN_PACKAGES)} with apt-get")
    if not (DEBIAN_DIR / "data.noun").exists():
        raise WordNetNotFound(f"{' and '.join(DEBIAN_PACKAGES)} installed, yet {DEBIAN_DIR}/data.noun is missing")


def locate(*, install: bool = False, notes: list[str] | None = None) -> WordNetCopy:
    """The WordNet 3.0 to use, in the order of the module docstring.

    With ``install``, Debian's packages are installed when nothing else is found. nltk_data
    folders holding another version are passed over; why goes into ``notes``.
    """
    notes = notes if notes is not None else []
    if folder := os.environ.get("WORDNET_DIR"):
        return _from_wordnet_dir(Path(folder))
    for copy in _nltk_data_copies():
        version = _copy_version(copy)
        if version == VERSION:
            return copy
        notes.append(f"passed over {copy.path}: WordNet {version}, not {VERSION}")
    if local := _local_copy():
        return local
    if not (DEBIAN_DIR / "data.noun").exists():
        if not install:
            raise WordNetNotFound(
                "WordNet 3.0 not found: run `make setup` (installs Debian's "
                f"{' and '.join(DEBIAN_PACKAGES)} as root), or set WORDNET_DIR to a WordNet {VERSION} dict folder"
            )
        install_debian_packages()
    return assemble(DEBIAN_DIR, local_nltk_data(), f"Debian {' + '.join(DEBIAN_PACKAGES)} ({DEBIAN_DIR})")
