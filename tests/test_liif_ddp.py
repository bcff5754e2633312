"""LIIF training in two gloo processes (torchrun-style) equals one process with the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.nn.functional as F

from srkit.engine import checkpoint as ckpt
from srkit.engine.config import from_dict


class HRPatches:
    """Fixed smooth HR patches (the LR field is ignored by the LIIF method)."""

    def __init__(self, n: int = 8, patch: int = 24) -> None:
        g = torch.Generator().manual_seed(5)
        base = torch.rand(n, 3, patch // 4, patch // 4, generator=g)
        self.hr = F.interpolate(base, size=(patch, patch), mode="bicubic", align_corners=False).clamp(0, 1)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": F.avg_pool2d(self.hr[i], 4), "hr": self.hr[i], "name": str(i)}


def _cfg(out: Path):
    return from_dict({
        "name": "liif_ddp", "seed": 3, "output_dir": str(out),
        "model": {"arch": "liif", "args": {"encoder": "edsr_baseline",
                                            "encoder_args": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}},
        "method": {"name": "liif", "args": {"inp_size": 6, "scale_min": 1.0, "scale_max": 4.0, "sample_q": 36}},
        "data": {"train": ["unused"], "scale": 4, "patch_size": 24, "batch_size": 4, "augment": False, "val": None},
        "train": {"steps": 4, "log_every": 1, "ckpt_every": 4, "tensorboard": False, "ema_decay": 0.5,
                  "optimizer": {"lr": 3e-3}, "schedule": {"name": "constant"}},
    })


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from srkit.engine.trainer import Trainer

    Trainer(_cfg(Path(out)), train_set=HRPatches(), progress=False).run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    import torch.multiprocessing as mp

    from srkit.engine.trainer import Trainer

    torch.set_num_threads(1)
    Trainer(_cfg(tmp_path / "one"), train_set=HRPatches(), progress=False).run()
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True,
                       start_method="fork")
    one = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "one" / "checkpoints", 4))
    two = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "two" / "checkpoints", 4))
    assert two["world_size"] == 2
    torch.manual_seed(3)
    from srkit import archs

    initial = archs.build("liif", **_cfg(tmp_path).model.args).state_dict()
    moved = 0
    for k, w in one["networks"]["net"].items():
        torch.testing.assert_close(two["networks"]["net"][k], w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(two["ema"]["weights"][k], one["ema"]["weights"][k], rtol=1e-5, atol=1e-6)
        moved += not torch.equal(w, initial[k])
    # encoder and decoder both trained (DDP synchronised the gradients of the whole model)
    assert any(k.startswith("encoder.") and not torch.equal(w, initial[k]) for k, w in one["networks"]["net"].items())
    assert any(k.startswith("imnet.") and not torch.equal(w, initial[k]) for k, w in one["networks"]["net"].items())


def test_global_item_draws_do_not_depend_on_the_split():
    """Item i of rank r draws what item r * B + i of a single process draws."""
    from srkit.methods.liif import sample_generator, sample_implicit

    hr = HRPatches(4).hr
    kw = dict(inp_size=6, scale_min=1.0, scale_max=4.0, sample_q=36, augment=True)
    whole = sample_implicit(hr, [sample_generator(3, 7, i) for i in range(4)], **kw)
    halves = [sample_implicit(hr[2 * r : 2 * r + 2], [sample_generator(3, 7, 2 * r + i) for i in range(2)], **kw)
              for r in (0, 1)]
    for field in ("lr", "coord", "cell", "gt", "scales"):
        assert torch.equal(torch.cat([getattr(h, field) for h in halves]), getattr(whole, field))


def test_forward_with_coord_is_query_of_encode():
    from srkit.archs.liif import LIIF

    torch.manual_seed(0)
    net = LIIF("edsr_baseline", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=(16,))
    lr = torch.rand(2, 3, 6, 5)
    coord = torch.rand(2, 30, 2) * 2 - 1
    cell = torch.full((2, 30, 2), 0.1)
    assert torch.equal(net(lr, coord=coord, cell=cell), net.query(net.encode(lr), coord, cell))
    import pytest

    from srkit.errors import SrkitError

    with pytest.raises(SrkitError, match="either coord"):
        net(lr, (10, 10), coord=coord, cell=cell)
