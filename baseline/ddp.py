"""Training under torchrun: each process (rank) of a DistributedDataParallel run trains on its
own part of every epoch, and the ranks exchange a few small messages.

The parts: the split's row groups in an order drawn from (seed, epoch), the same on every
rank, their rows one after another, cut into as many equal runs as there are ranks
(``rank_rows``), so a streaming rank reads only its own row groups.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from pipeline.errors import PipelineError

from .transforms import View


def group_order(count: int, view: View) -> np.ndarray:
    """The order an epoch reads row groups in when training: drawn from (seed, epoch) alone."""
    return np.random.default_rng((view.seed, view.epoch, 7919)).permutation(count)


def rank_part(count: int, rank: int, world: int) -> np.ndarray:
    """The positions 0..count-1 of an epoch's order that ``rank`` of ``world`` takes: the order
    padded to a multiple of world by wrapping round (as torch's DistributedSampler pads), cut
    into world equal runs. Every rank gets as many rows, hence as many steps; the runs are
    disjoint but for the world - 1 padding rows at most, and together cover the order."""
    per = -(-count // world)
    return np.resize(np.arange(count), per * world)[rank * per : (rank + 1) * per]


def rank_rows(groups: list[tuple[tuple[int, int], list[int]]], view: View, rank: int, world: int) -> np.ndarray:
    """The split indices ``rank`` trains on in the view's epoch (``groups`` from
    ``dataset.row_groups``): the row groups in the epoch's order, the same on every rank, their
    rows one after another, and the rank's run of them (rank_part). A run of whole row groups,
    but for the two at its ends: a streaming rank reads only its own."""
    order = group_order(len(groups), view)
    rows = np.concatenate([np.asarray(groups[g][1], dtype=np.int64) for g in order])
    return rows[rank_part(len(rows), rank, world)]


# --------------------------------------------------------------------------- the process group


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Started by torchrun (WORLD_SIZE > 1), join the run's process group ("nccl" on GPUs,
    "gloo" on CPUs, one GPU per process: LOCAL_RANK's) for the block; else do nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or dist.is_initialized():
        yield
        return
    cuda = device.type == "cuda"
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise PipelineError(f"local rank {local}, but {torch.cuda.device_count()} GPUs here: one process per GPU")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank of world, processes on this machine, and a CPU
    channel for small messages (None: the default group, gloo already)."""

    rank: int = 0
    world: int = 1
    here: int = 1
    group: object = None
    log_rows: bool = False  # BASELINE_RANK_LOG: each rank prints its rows and weights (the tests read them)

    @property
    def ddp(self) -> bool:
        return self.world > 1

    @classmethod
    def current(cls, cuda: bool) -> Ranks:
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return cls()
        return cls(
            dist.get_rank(),
            dist.get_world_size(),
            int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
            dist.new_group(backend="gloo") if cuda else None,
            bool(os.environ.get("BASELINE_RANK_LOG")),
        )

    def log(self, **fields) -> None:
        if self.log_rows:
            print(
                "rank-log " + json.dumps({"rank": self.rank, "world": self.world, **fields}),
                file=sys.stderr,
                flush=True,
            )

    def every_rank(self, batches):
        """The rank's batches, as long as every rank has one: DDP's all-reduce in each step
        needs them all. The parts are equal, so every rank has as many batches, but for one
        that bad images emptied (--skip-bad) or, streaming, ranks with other worker counts."""
        if not self.ddp:
            yield from batches
            return
        more = torch.ones(1)
        for batch in batches:
            dist.all_reduce(more, op=dist.ReduceOp.MIN, group=self.group)
            if not more.item():
                return
            yield batch
        more.zero_()
        dist.all_reduce(more, op=dist.ReduceOp.MIN, group=self.group)  # tell the others this rank is out

    def from_rank_0(self, value):
        if not self.ddp:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def agree(self, value, what: str) -> None:
        """Stop unless every rank sees ``value`` alike (e.g. the run folder, on a shared file system)."""
        if not self.ddp:
            return
        values = [None] * self.world
        dist.all_gather_object(values, value, group=self.group)
        if any(v != values[0] for v in values):
            raise PipelineError(f"the ranks see {what} differently ({values}): put it on a file system they share")

    def total(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (in place)."""
        if self.ddp:
            dist.all_reduce(values)
        return values

    def union(self, members: set) -> None:
        """Add every rank's ``members`` to this rank's."""
        if self.ddp:
            met = [None] * self.world
            dist.all_gather_object(met, members, group=self.group)
            members.update(*met)


def weights_digest(state_dict: dict) -> str:
    """SHA-256 of a model's weights (names, values): equal on every rank of a DDP run."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
