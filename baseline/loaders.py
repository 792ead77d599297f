"""A split as batches of normalised crops on the device: the torch Datasets and ``Batches``.

Images are read into memory once when they fit (``Blobs``), and a map-style dataset decodes
them in DataLoader workers; larger splits are streamed a Parquet row group at a time, each
worker reading its own share of row groups, shuffled within a window of them. For GPU
decoding the workers only read each image's header, to place its crops, and the bytes go to
the device whole.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from pipeline.errors import InputError

from .dataset import Blobs, DataSet, Split, row_groups, split_bytes
from .ddp import group_order, rank_rows
from .stats import Stats
from .transforms import View, crop, decode_batch, describe, open_image

WINDOW = 8  # row groups shuffled together when streaming


def sample(blob: bytes, split: Split, view: View, i: int):
    """(uint8 crops (k, 3, S, S), label, index, lighting alphas, error text or '')."""
    try:
        pixels, alpha = crop(blob, view, i)
        error = ""
    except Exception as e:  # noqa: BLE001  any decoder failure is the row's problem, reported by Batches
        pixels, alpha, error = (
            np.zeros((view.crops, view.size, view.size, 3), np.uint8),
            np.zeros(3, np.float32),
            describe(e),
        )
    return torch.from_numpy(pixels).permute(0, 3, 1, 2), int(split.labels[i]), i, torch.from_numpy(alpha), error


def raw_sample(blob: bytes, split: Split, view: View, i: int):
    """(bytes, crop boxes, flip, label, index, lighting alphas, error text: '' for nvJPEG,
    'cpu' for an image only Pillow decodes)."""
    try:
        image = open_image(blob)
        boxes, flip, alpha = view.boxes(*image.size, i)
        error = "" if image.format == "JPEG" and image.mode in ("RGB", "L") else "cpu"
    except Exception as e:  # noqa: BLE001
        boxes, flip, alpha, error = [(0.0, 0.0, 1.0, 1.0)] * view.crops, False, np.zeros(3, np.float32), describe(e)
    return (
        torch.frombuffer(bytearray(blob), dtype=torch.uint8),
        torch.tensor(boxes, dtype=torch.float32),
        flip,
        int(split.labels[i]),
        i,
        torch.from_numpy(alpha),
        error,
    )


def raw_collate(batch):
    blobs, boxes, flips, labels, indices, alphas, errors = zip(*batch)
    return (
        list(blobs),
        torch.stack(boxes),
        torch.tensor(flips),
        torch.tensor(labels),
        torch.tensor(indices),
        torch.stack(alphas),
        list(errors),
    )


class CropDataset(Dataset):
    """Map-style: blobs in memory, decoded and cropped in the worker."""

    def __init__(self, split: Split, blobs: Blobs, view: View):
        self.split, self.blobs, self.view = split, blobs, view

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return sample(self.blobs[i], self.split, self.view, i)


class RawDataset(CropDataset):
    """For GPU decoding: the worker only reads the header, to place the crops."""

    def __getitem__(self, i: int):
        return raw_sample(self.blobs[i], self.split, self.view, i)


class StreamDataset(IterableDataset):
    """Streamed: each worker reads its share of the split's row groups, WINDOW at a time, and
    yields their samples shuffled (train) or in file order (evaluation). Under torchrun
    (``part`` = (rank, world) for training) the rank's rows (rank_rows) are cut into one run
    per worker, of equal sizes on every rank, so that every rank makes as many steps."""

    def __init__(
        self, data: DataSet, split: Split, view: View, shuffle: bool, raw: bool = False, part: tuple[int, int] = (0, 1)
    ):
        self.data, self.split, self.view, self.shuffle, self.raw = data, split, view, shuffle, raw
        self.groups = row_groups(data, split)
        self.rank, self.world = part

    def __len__(self) -> int:
        return -(-len(self.split) // self.world)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        groups, order = self.groups, np.arange(len(self.groups))
        if self.shuffle:
            order = group_order(len(self.groups), self.view)
        mine, salt = order[worker::workers], ()
        if self.world > 1:  # this rank's rows, this worker's run of them, by row group
            groups = self.pieces(
                np.array_split(rank_rows(self.groups, self.view, self.rank, self.world), workers)[worker]
            )
            mine, salt = np.arange(len(groups)), (self.rank, worker)
        make = raw_sample if self.raw else sample
        for w in range(0, len(mine), WINDOW):
            window = [groups[g] for g in mine[w : w + WINDOW]]
            arrays = {(s, g): self.data.shards[s].read_groups([g]) for (s, g), _ in window}
            members = [(key, i) for key, indices in window for i in indices]
            if self.shuffle:
                rng = np.random.default_rng((self.view.seed, self.view.epoch, int(mine[w]), *salt))
                members = [members[k] for k in rng.permutation(len(members))]
            for (s, g), i in members:
                shard = self.data.shards[s]
                blob = arrays[(s, g)][int(self.split.shard_row[i] - shard.group_starts[g])].as_py()
                yield make(blob, self.split, self.view, i)

    def pieces(self, rows: np.ndarray) -> list[tuple[tuple[int, int], list[int]]]:
        """Consecutive rows as ((shard, group), indices), one piece per run of rows in one group."""
        group_of = np.empty(len(self.split), dtype=np.int64)
        for g, (_, members) in enumerate(self.groups):
            group_of[members] = g
        of = group_of[rows]
        starts = np.flatnonzero(np.r_[True, of[1:] != of[:-1]]) if len(rows) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(rows)]
        return [(self.groups[of[a]][0], rows[a:b].tolist()) for a, b in zip(starts, ends)]


class Batches:
    """A split as batches of normalised float crops on the device, for one epoch or one pass.

    Bad images (Pillow cannot decode them) raise an InputError naming the row, or with
    skip_bad are dropped from their batch and remembered in ``bad``. ``part`` = (rank,
    world) under torchrun: the rank's rows of the epoch (``ddp.rank_rows``)."""

    def __init__(
        self,
        data: DataSet,
        split: Split,
        blobs: Blobs | None,
        view: View,
        *,
        batch: int,
        workers: int,
        device: torch.device,
        stats: Stats,
        shuffle: bool,
        decode,
        skip_bad: bool,
        bad: set[int],
        part: tuple[int, int] = (0, 1),
    ):
        self.split, self.view, self.device, self.decode = split, view, device, decode
        self.skip_bad, self.bad = skip_bad, bad
        raw = decode is not None
        sampler = None
        if blobs is None:
            dataset = StreamDataset(data, split, view, shuffle, raw=raw, part=part)
        else:
            dataset = (RawDataset if raw else CropDataset)(split, blobs, view)
            if part[1] > 1:  # the rank's rows of the epoch, shuffled
                rows = rank_rows(row_groups(data, split), view, *part)
                sampler = np.random.default_rng((view.seed, view.epoch, part[0])).permutation(rows).tolist()
        generator = torch.Generator().manual_seed(view.seed * 100003 + view.epoch)
        self.loader = DataLoader(
            dataset,
            batch_size=batch,
            shuffle=shuffle and sampler is None and not isinstance(dataset, IterableDataset),
            sampler=sampler,
            generator=generator,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            collate_fn=raw_collate if raw else None,
            drop_last=False,
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )
        self.mean = torch.tensor(stats.mean, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(stats.std, device=device).view(1, 1, 3, 1, 1)
        self.eig = torch.tensor(stats.eigvec, device=device) * torch.tensor(stats.eigval, device=device)[None, :]

    def __len__(self) -> int:
        return len(self.split)

    def __iter__(self):
        """(images (B, k, 3, S, S) float, labels, indices) with k = 1, or 10 for 10-crop."""
        for batch in self.loader:
            if self.decode is not None:
                blobs, boxes, flips, labels, indices, alphas, errors = batch
                pixels, errors = decode_batch(blobs, boxes, flips, errors, self.view.size, self.device, self.decode)
            else:
                pixels, labels, indices, alphas, errors = batch
            ok = self.check(errors, indices)
            if not ok.all():
                pixels, labels, indices, alphas = pixels[ok], labels[ok], indices[ok], alphas[ok]
                if not len(labels):
                    continue
            x = pixels.to(self.device, non_blocking=True).float().div_(255)
            if self.view.mode == "train" and self.view.lighting:
                shift = alphas.to(self.device, non_blocking=True) @ self.eig.T  # (B, 3): eigvec @ (alpha * eigval)
                x += shift.view(-1, 1, 3, 1, 1)
            x = (x - self.mean) / self.std
            if self.view.mode == "tencrop":
                x = torch.cat([x, x.flip(-1)], dim=1)
            yield x, labels.to(self.device, non_blocking=True), indices

    def check(self, errors, indices) -> torch.Tensor:
        ok = torch.tensor([not e for e in errors], dtype=torch.bool)
        for k in np.flatnonzero(~ok.numpy()):
            index = int(indices[k])
            if not self.skip_bad:
                file, row = self.split.where(index)
                raise InputError(errors[k], file=file, row=row, field="image_id", value=self.split.image_ids[index])
            self.bad.add(index)
        return ok


class Feed:
    """What a run reads its batches from: the dataset, the splits held in memory (the others
    are streamed), the decoder and where the batches go; ``bad`` collects, per split, the
    rows skipped as unreadable (--skip-bad)."""

    def __init__(
        self,
        data: DataSet,
        *,
        memory: float,
        rank: int,
        stats: Stats,
        device: torch.device,
        workers: int,
        decode,
        skip_bad: bool,
        splits: tuple[str, ...] | None = None,
    ):
        self.data, self.stats, self.device, self.workers = data, stats, device, workers
        self.decode, self.skip_bad = decode, skip_bad
        self.bad: dict[str, set[int]] = {name: set() for name in data.splits}
        self.blobs: dict[str, Blobs | None] = {}
        for name, split in data.splits.items():  # in order, while they fit in ``memory`` bytes
            if splits is not None and name not in splits:
                continue
            read = rank == 0 or name == "train"  # val and test: rank 0 alone scores them
            size = split_bytes(data, split)
            self.blobs[name] = Blobs.load(data, split) if read and size <= memory else None
            memory -= size if self.blobs[name] is not None else 0

    @property
    def streamed(self) -> bool:
        return any(b is None for b in self.blobs.values())

    def batches(self, name: str, view: View, *, batch: int, shuffle: bool = False, part=(0, 1)) -> Batches:
        return Batches(
            self.data,
            self.data.splits[name],
            self.blobs[name],
            view,
            batch=batch,
            workers=self.workers,
            device=self.device,
            stats=self.stats,
            shuffle=shuffle,
            decode=self.decode,
            skip_bad=self.skip_bad,
            bad=self.bad[name],
            part=part,
        )
