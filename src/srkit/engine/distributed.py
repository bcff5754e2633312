"""Multi-process training under ``torchrun``: environment, process group, sharding, DDP.

One process per device. ``torchrun`` sets RANK, LOCAL_RANK and WORLD_SIZE (and the rendezvous
address); without them srkit runs as a single process. The config states the *global* batch; each
process takes an equal, disjoint slice of every global batch, so K processes with batch B/K each see
exactly the samples one process with batch B would see, and DDP's gradient average equals the
single-process gradient of a mean loss.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, local rank and world size from the environment (single process when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ConfigError(f"bad torchrun environment variable: {e}") from None
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def setup(device_type: str) -> DistInfo:
    """Join the process group if launched by torchrun: NCCL for CUDA, gloo for CPU."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_gather_object(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average scalar logs over processes (for logging only)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist()))


def wrap(net: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP-wrap a network with trainable parameters when running under torchrun, else return it."""
    if not info.enabled or not any(p.requires_grad for p in net.parameters()):
        return net
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def per_rank_batch(global_batch: int, info: DistInfo) -> int:
    if global_batch % info.world_size:
        raise ConfigError(
            f"data.batch_size ({global_batch}) is the global batch and must divide evenly over "
            f"{info.world_size} processes"
        )
    return global_batch // info.world_size


class ShardedBatchSampler:
    """Deterministic batches of dataset indices for one process.

    Epoch ``e`` visits ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``, cut into
    global batches of ``global_batch`` (the incomplete tail is dropped); this process takes its
    contiguous slice ``[rank * b, (rank + 1) * b)`` of each global batch. ``start`` skips the first
    batches of the epoch (resume mid-epoch).
    """

    def __init__(self, n: int, global_batch: int, seed: int, info: DistInfo = DistInfo()) -> None:
        if n < global_batch:
            raise ConfigError(f"the training set has {n} samples, fewer than one batch of {global_batch}")
        self.n = n
        self.global_batch = global_batch
        self.local_batch = per_rank_batch(global_batch, info)
        self.seed = seed
        self.info = info
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def __len__(self) -> int:
        return max(0, self.n // self.global_batch - self.start)

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.global_batch

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        perm = self.order(self.epoch)
        lo = self.info.rank * self.local_batch
        for b in range(self.start, self.batches_per_epoch):
            chunk = perm[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[lo : lo + self.local_batch].tolist()
