"""``DATA`` as a filesystem URL (``s3://bucket/prefix``, ``gs://...``, any fsspec protocol).

The stages read and write local files; with a URL they work in a local copy of
``<url>/<subset>`` (the mirror, under ``DATA_CACHE``, default ``~/.cache/synsetforge``) that
each command brings in step with the URL before it runs and publishes after it succeeds:

- **pull**: files the URL's index lists and the mirror lacks (or holds at another size or
  time) are downloaded; mirror files the index does not list are removed. A URL with no
  index yet is empty, and the mirror is left as it is.
- **push**: changed files go up, data files first and the stage stamps (``.stages/``) after
  them; files gone from the mirror are deleted; the index goes last. A reader that finds a
  stamp in the index therefore finds every file the stamp names.

The index (``INDEX``) records each file's size and modification time, which object stores
do not keep: a mirror pulled on another machine gets the same times back, so the stamps and
fingerprints still match and finished stages skip there too. One writer at a time per
subset: two machines pushing the same subset at once would interleave their files.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import PipelineError
from .files import atomic_write_bytes
from .layout import CACHES, STAMPS
from .progress import progress

INDEX = ".synsetforge-index.json"
# Never mirrored: temporary and aside folders (.tmp-, .old-), locks, the index itself, and the work caches (.cache/),
# which only an interrupted run on this machine resumes from, and which hold hard links to
# the published files (the download's shards) that would go up twice.
SKIP = re.compile(r"(^|/)\.(tmp|old)-|\.lock$|^" + re.escape(CACHES) + "/|" + re.escape(INDEX) + "$")


def is_url(data: str | os.PathLike) -> bool:
    return "://" in str(data)


def data_location(value: str) -> Path | str:
    """``--data``: a local data root as a Path; a filesystem URL stays a string."""
    return value if is_url(value) else Path(value)


def cache_root() -> Path:
    return Path(os.environ.get("DATA_CACHE") or Path.home() / ".cache" / "synsetforge")


def local_copy(url: str) -> Path:
    """A file given as a URL (a results file in the bucket, say), downloaded under DATA_CACHE;
    the local copy is reused while the file's size and time at the URL are unchanged."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
        key = f"{info.get('size')}-{info.get('LastModified') or info.get('mtime') or info.get('ETag')}"
        target = cache_root() / "files" / re.sub(r"[^A-Za-z0-9._-]", "_", f"{url}-{key}")
        if not target.exists():
            atomic_write_bytes(target, fs.cat_file(path))
    except Exception as e:  # not found, no credentials...: each storage library has its own classes
        raise PipelineError(f"cannot read {url}: {type(e).__name__}: {e}") from None
    return target


@dataclass(frozen=True)
class Remote:
    """One subset at a URL and its local mirror."""

    url: str
    mirror: Path

    @classmethod
    def of(cls, data: str | os.PathLike, subset: str) -> Remote | None:
        """The mirror of ``<data>/<subset>`` when ``data`` is a URL; None for a local data root."""
        if not is_url(data):
            return None
        url = f"{str(data).rstrip('/')}/{subset}"
        protocol, _, rest = url.partition("://")
        return cls(url, cache_root() / protocol / re.sub(r"[^A-Za-z0-9._/-]", "_", rest).strip("/"))

    def _fs(self):
        try:
            import fsspec

            return fsspec.core.url_to_fs(self.url)
        except ImportError as e:  # fsspec names the package a protocol needs (s3fs, gcsfs...)
            raise PipelineError(f"DATA={self.url}: {e}") from None
        except ValueError as e:
            raise PipelineError(f"DATA={self.url}: {e}") from None

    def _remote_index(self, fs, root: str) -> dict[str, list[int]] | None:
        try:
            return json.loads(fs.cat_file(f"{root}/{INDEX}"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise PipelineError(f"cannot read {self.url}/{INDEX}: {e}") from None

    def local_index(self) -> dict[str, list[int]]:
        index = {}
        if self.mirror.is_dir():
            for path in sorted(self.mirror.rglob("*")):
                rel = path.relative_to(self.mirror).as_posix()
                if path.is_file() and not SKIP.search(rel):
                    st = path.stat()
                    index[rel] = [st.st_size, st.st_mtime_ns]
        return index

    def pull(self) -> int:
        """Bring the mirror to the URL's state; returns the number of files downloaded."""
        return self._speaking("read", self._pull)

    def push(self) -> int:
        """Publish the mirror's changes to the URL; returns the number of files uploaded."""
        return self._speaking("write to", self._push)

    def _speaking(self, verb: str, work) -> int:
        """``work()``, with a storage client's own errors (no credentials, no such bucket,
        access denied: each library has its own classes) said in one line."""
        try:
            return work()
        except PipelineError:
            raise
        except Exception as e:
            raise PipelineError(f"cannot {verb} {self.url}: {type(e).__name__}: {e}") from None

    def _pull(self) -> int:
        fs, root = self._fs()
        wanted = self._remote_index(fs, root)
        if wanted is None:
            return 0
        have = self.local_index()
        for rel in set(have) - set(wanted):
            (self.mirror / rel).unlink()
        missing = [rel for rel, state in wanted.items() if have.get(rel) != state]
        for rel in progress(missing, desc=f"pull {self.url}", unit="file", disable=not missing):
            size, mtime_ns = wanted[rel]
            target = self.mirror / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                data = fs.cat_file(f"{root}/{rel}")
            except (OSError, FileNotFoundError) as e:
                raise PipelineError(f"{self.url}/{rel} is in {INDEX} but cannot be read: {e}") from None
            if len(data) != size:
                raise PipelineError(
                    f"{self.url}/{rel} has {len(data)} bytes, {INDEX} says {size}: "
                    "another machine is writing this subset"
                )
            atomic_write_bytes(target, data)
            os.utime(target, ns=(mtime_ns, mtime_ns))
        return len(missing)

    def _push(self) -> int:
        fs, root = self._fs()
        before = self._remote_index(fs, root) or {}
        now = self.local_index()
        changed = sorted(
            (rel for rel, state in now.items() if before.get(rel) != state),
            key=lambda rel: (rel.startswith(STAMPS + "/"), rel),
        )  # stamps after the data
        for rel in progress(changed, desc=f"push {self.url}", unit="file", disable=not changed):
            fs.makedirs(f"{root}/{rel}".rpartition("/")[0], exist_ok=True)
            fs.put_file(str(self.mirror / rel), f"{root}/{rel}")
        for rel in sorted(set(before) - set(now)):
            fs.rm_file(f"{root}/{rel}")
        fs.pipe_file(f"{root}/{INDEX}", json.dumps(now, indent=0, sort_keys=True).encode())
        return len(changed)


def main(argv: list[str]) -> int:
    """``python -m pipeline.remote exists URL``: exit 0 when something is at URL (the Makefile's
    "run the stage before when its output is missing", for DATA URLs)."""
    if len(argv) != 2 or argv[0] != "exists":
        print("usage: python -m pipeline.remote exists URL", file=sys.stderr)
        return 2
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(argv[1])
        return 0 if fs.exists(path) else 1
    except Exception as e:  # "missing": the stage that runs next says why (no credentials...)
        print(f"cannot look at {argv[1]}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
