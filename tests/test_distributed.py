"""Multi-process training: deterministic sharding, and 2 gloo processes == 1 process with the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from srkit.engine import checkpoint as ckpt
from srkit.engine.config import from_dict
from srkit.engine.distributed import DistInfo, ShardedBatchSampler, env_info, per_rank_batch
from srkit.errors import ConfigError


class Pairs:
    """Fixed LR/HR pairs (no cropping), so that any difference comes from the engine alone."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(1)
        self.hr = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(16, 16), mode="bicubic",
                                align_corners=False).clamp(0, 1)
        self.lr = F.avg_pool2d(self.hr, 2)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": self.lr[i], "hr": self.hr[i], "name": str(i)}


def _cfg(out: Path):
    return from_dict({
        "name": "ddp", "seed": 5, "output_dir": str(out),
        "model": {"arch": "fsrcnn", "args": {"d": 8, "s": 4, "m": 1}},
        "data": {"scale": 2, "patch_size": 16, "batch_size": 4, "val": None},
        "train": {"steps": 5, "ckpt_every": 5, "log_every": 1, "tensorboard": False, "grad_clip": 1.0,
                  "ema_decay": 0.5, "optimizer": {"lr": 5e-3}},
    })


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from srkit.engine.trainer import Trainer

    Trainer(_cfg(Path(out)), train_set=Pairs(), progress=False).run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sharded_batches_partition_the_global_batch():
    single = ShardedBatchSampler(10, 4, seed=7)
    single.set_epoch(3)
    ranks = [ShardedBatchSampler(10, 4, seed=7, info=DistInfo(rank=r, local_rank=r, world_size=2)) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(3)
    batches = list(single)
    assert len(batches) == 2 and all(len(b) == 4 for b in batches)  # the incomplete tail is dropped
    for b, (r0, r1) in zip(batches, zip(*ranks)):
        assert r0 + r1 == b
    # the order depends only on (seed, epoch); starting mid-epoch skips whole batches
    again = ShardedBatchSampler(10, 4, seed=7)
    again.set_epoch(3, start=1)
    assert list(again) == batches[1:]
    other = ShardedBatchSampler(10, 4, seed=7)
    other.set_epoch(4)
    assert list(other) != batches
    assert len(set(sum(batches, []))) == 8


def test_batch_split_and_env(monkeypatch):
    assert per_rank_batch(8, DistInfo(world_size=4)) == 2
    with pytest.raises(ConfigError, match=r"data.batch_size \(6\) is the global batch.*over 4 processes"):
        per_rank_batch(6, DistInfo(world_size=4))
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    info = env_info()
    assert (info.rank, info.local_rank, info.world_size, info.is_main, info.enabled) == (2, 0, 3, False, True)


def test_two_processes_match_one_process(tmp_path):
    import torch.multiprocessing as mp

    from srkit.engine.trainer import Trainer

    torch.set_num_threads(1)
    Trainer(_cfg(tmp_path / "one"), train_set=Pairs(), progress=False).run()
    # fork: the children inherit the imports the single run just paid for (torch.optim pulls in
    # torch._dynamo, ~10 s per fresh process on a busy 2-core machine); one intra-op thread keeps fork safe
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True,
                       start_method="fork")
    one = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "one" / "checkpoints", 5))
    two = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "two" / "checkpoints", 5))
    assert two["world_size"] == 2 and len(two["rng"]) == 2
    moved = False
    for k, w in one["networks"]["net"].items():
        torch.testing.assert_close(two["networks"]["net"][k], w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(two["ema"]["weights"][k], one["ema"]["weights"][k], rtol=1e-5, atol=1e-6)
        moved |= not torch.equal(w, _initial(k))
    assert moved
    # only rank 0 wrote logs and the model file
    assert (tmp_path / "two" / "model.safetensors").is_file()
    lines = (tmp_path / "two" / "log.jsonl").read_text().splitlines()
    assert len([ln for ln in lines if '"loss/total"' in ln]) == 5


def _initial(key: str) -> torch.Tensor:
    from srkit import archs

    torch.manual_seed(5)
    return archs.build("fsrcnn", d=8, s=4, m=1, scale=2).state_dict()[key]
