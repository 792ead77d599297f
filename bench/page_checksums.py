"""What Parquet page checksums cost the image store: one shard of 800 images of 110 KB
(random bytes: images do not compress), written and read with and without them, best of 5.

Every table is written with checksums (``tables.write_table``, ``TableWriter``) and read with
their verification (``tables.read_table``, ``store.ShardFile``): flipped bytes in an
uncompressed image page otherwise read back as other bytes without an error.

    python bench/page_checksums.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

IMAGES, IMAGE_BYTES, ROW_GROUP, ROUNDS = 800, 110_000, 128, 5


def best(action, *args, **options) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        action(*args, **options)
        times.append(time.perf_counter() - start)
    return min(times)


def read(path: Path, checksums: bool) -> None:
    pq.ParquetFile(path, page_checksum_verification=checksums).read()


def main() -> None:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "image_id": [f"{i:016x}" for i in range(IMAGES)],
            "image": pa.array([rng.bytes(IMAGE_BYTES) for _ in range(IMAGES)], pa.binary()),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        for checksums in (False, True):
            path = Path(folder, f"shard-{checksums}.parquet")
            written = best(
                pq.write_table,
                table,
                path,
                row_group_size=ROW_GROUP,
                compression="none",
                write_page_checksum=checksums,
            )
            done = best(read, path, checksums)
            print(
                f"checksums {'on ' if checksums else 'off'}: write {written * 1000:5.0f} ms, read {done * 1000:5.0f} ms "
                f"for {path.stat().st_size / 2**20:.0f} MiB ({written / IMAGES * 1e3:.3f} + {done / IMAGES * 1e3:.3f} ms an image)"
            )


if __name__ == "__main__":
    main()
