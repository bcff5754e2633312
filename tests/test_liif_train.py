"""LIIF training: the random-scale query sampler, the method through the engine, the configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from srkit.engine import Trainer
from srkit.engine.config import from_dict, load_config
from srkit.errors import ConfigError
from srkit.methods import get_method
from srkit.methods.liif import LIIFMethod, pixel_coords, sample_generator, sample_implicit

ROOT = Path(__file__).resolve().parents[1]



def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def test_method_is_registered():
    assert get_method("liif") is LIIFMethod


def test_sampler_shapes_coords_cells_and_values():
    hr = torch.rand(6, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    b = sample_implicit(hr, sample_generator(0, 5), inp_size=10, scale_min=1.0, scale_max=4.0, sample_q=64,
                        augment=False)
    assert b.lr.shape == (6, 3, 10, 10)
    assert b.coord.shape == b.cell.shape == (6, 64, 2)
    assert b.gt.shape == (6, 64, 3)
    assert ((b.scales >= 1.0) & (b.scales <= 4.0)).all()
    assert b.lr.min() >= 0 and b.lr.max() <= 1
    for i in range(6):
        side = round(10 * float(b.scales[i]))
        # cells are the HR crop's pixel size; coords are its pixel centres -1 + (2k + 1) / side
        assert torch.allclose(b.cell[i], torch.full((64, 2), 2 / side))
        k = (b.coord[i] + 1) * side / 2 - 0.5
        assert torch.allclose(k, k.round(), atol=1e-4)
        assert (b.coord[i].abs() < 1).all()
        # 64 distinct pixels
        assert len({tuple(r) for r in k.round().long().tolist()}) == 64


def test_sampler_gt_matches_the_crop_and_lr_is_its_bicubic_resize():
    from srkit import imresize

    # an HR patch of exactly one crop size: the crop is the whole patch (no position to draw)
    hr = smooth_images(3, 20, seed=2)
    b = sample_implicit(hr, sample_generator(1, 0), inp_size=10, scale_min=2.0, scale_max=2.0, sample_q=None,
                        augment=False)
    assert b.coord.shape == (3, 400, 2)
    assert torch.equal(b.coord[0], pixel_coords(20, 20))
    assert torch.equal(b.gt, hr.reshape(3, 3, -1).transpose(1, 2))
    assert torch.allclose(b.lr, imresize(hr, size=(10, 10)).clamp(0, 1))

    # with query sampling and augmentation, each gt value is the crop pixel at its coordinate: find the
    # flipped/transposed crop among the 8 symmetries of the whole patch
    b = sample_implicit(hr, sample_generator(1, 3), inp_size=10, scale_min=2.0, scale_max=2.0, sample_q=50,
                        augment=True)
    for i in range(3):
        yx = ((b.coord[i] + 1) * 20 / 2 - 0.5).round().long()
        candidates = []
        for t in (False, True):
            for fy in (False, True):
                for fx in (False, True):
                    c = hr[i]
                    c = c.flip(-2) if fy else c
                    c = c.flip(-1) if fx else c
                    candidates.append(c.transpose(-2, -1) if t else c)
        hits = [c for c in candidates if torch.equal(c[:, yx[:, 0], yx[:, 1]].t(), b.gt[i])]
        assert hits, f"item {i}: gt does not match the crop at the sampled coordinates"
        assert torch.allclose(b.lr[i], imresize(hits[0][None], size=(10, 10))[0].clamp(0, 1), atol=1e-6)


def test_sampler_crops_are_whole_blocks_inside_the_patch():
    # every pixel holds its own position: a crop of side n at (y0, x0) must read back as that block
    p = 40
    pos = torch.arange(p * p, dtype=torch.float64).reshape(p, p)
    hr = pos.expand(8, 3, p, p).clone()
    b = sample_implicit(hr, sample_generator(4, 2), inp_size=10, scale_min=1.0, scale_max=4.0, sample_q=100,
                        augment=False)
    for i in range(8):
        side = round(10 * float(b.scales[i]))
        yx = ((b.coord[i] + 1) * side / 2 - 0.5).round().long()  # pixel indices inside the crop
        v = b.gt[i, :, 0].long()
        y, x = v // p, v % p
        y0, x0 = y - yx[:, 0], x - yx[:, 1]
        assert (y0 == y0[0]).all() and (x0 == x0[0]).all()  # one rigid offset for all samples
        assert 0 <= int(y0[0]) <= p - side and 0 <= int(x0[0]) <= p - side


def test_sampler_is_determined_by_seed_and_step():
    hr = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kw = dict(inp_size=8, sample_q=32)
    a = sample_implicit(hr, sample_generator(7, 11), **kw)
    b = sample_implicit(hr, sample_generator(7, 11), **kw)
    c = sample_implicit(hr, sample_generator(7, 12), **kw)
    d = sample_implicit(hr, sample_generator(8, 11), **kw)
    for f in ("lr", "coord", "cell", "gt", "scales"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.scales, c.scales)
    assert not torch.equal(a.scales, d.scales)


def test_sampler_scales_cover_the_range():
    hr = torch.rand(64, 3, 16, 16)
    b = sample_implicit(hr, sample_generator(0, 0), inp_size=4, scale_min=1.0, scale_max=4.0, sample_q=16,
                        augment=False)
    assert b.scales.min() >= 1.0 and b.scales.max() <= 4.0
    assert b.scales.min() < 1.5 and b.scales.max() > 3.5


def test_sampler_rejects_too_small_patches():
    with pytest.raises(ConfigError, match="at least 40 px"):
        sample_implicit(torch.rand(1, 3, 32, 32), sample_generator(0, 0), inp_size=10, scale_max=4.0, sample_q=8)


class HRPatches:
    """Fixed HR patches of smooth images, with an LR field the LIIF method ignores."""

    def __init__(self, n: int = 8, patch: int = 32) -> None:
        self.hr = smooth_images(n, patch, seed=5)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": F.avg_pool2d(self.hr[i], 4), "hr": self.hr[i], "name": str(i)}


def tiny_liif_cfg(out: Path, steps: int = 30, **data):
    d = {"train": ["unused"], "scale": 4, "patch_size": 32, "batch_size": 4, "augment": False, "val": None}
    d.update(data)
    return from_dict({
        "name": "liif_tiny", "seed": 2, "output_dir": str(out),
        "model": {"arch": "liif", "args": {"encoder": "edsr_baseline",
                                            "encoder_args": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}},
        "method": {"name": "liif", "args": {"inp_size": 8, "scale_min": 1.0, "scale_max": 4.0, "sample_q": 64}},
        "data": d,
        "train": {"steps": steps, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "tensorboard": False,
                  "optimizer": {"lr": 3e-3}, "schedule": {"name": "constant"}},
    })


def test_training_through_the_engine_lowers_the_loss(tmp_path):
    out = tmp_path / "run"
    result = Trainer(tiny_liif_cfg(out, steps=40), progress=False, train_set=HRPatches()).run()
    assert result["step"] == 40
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss/l1"] for r in logs if "loss/l1" in r]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8
    # the saved model is a scale-free LIIF that upscales to any size
    from srkit.model_file import load_model

    loaded = load_model(result["model_file"])
    assert loaded.arch == "liif" and "scale" not in loaded.arch_kwargs
    net = loaded.net
    with torch.no_grad():
        y = net(torch.rand(1, 3, 6, 7), size=(15, 20))
    assert y.shape == (1, 3, 15, 20)


def test_resume_continues_identically(tmp_path):
    full = tmp_path / "full"
    Trainer(tiny_liif_cfg(full, steps=6), progress=False, train_set=HRPatches()).run()
    part = tmp_path / "part"
    cfg = tiny_liif_cfg(part, steps=3)
    cfg.train.ckpt_every = 3
    Trainer(cfg, progress=False, train_set=HRPatches()).run()
    Trainer(tiny_liif_cfg(part, steps=6), resume=True, progress=False, train_set=HRPatches()).run()

    def losses(out):
        logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss/l1"] for r in logs if "loss/l1" in r}

    a, b = losses(full), losses(part)
    assert [a[k] for k in range(4, 7)] == [b[k] for k in range(4, 7)]


def test_validation_upscales_by_data_scale(tmp_path):
    from srkit.archs import build

    cfg = tiny_liif_cfg(tmp_path / "v", scale=3, patch_size=33)
    m = LIIFMethod(cfg, torch.device("cpu"))
    m.build()
    assert "scale" not in m.arch_kwargs()
    net = m.networks["net"].eval()
    lr = torch.rand(1, 3, 5, 7)
    sr = m.infer(net, lr)
    assert sr.shape == (1, 3, 15, 21)
    with torch.no_grad():
        assert torch.equal(sr, net(lr, size=(15, 21)))
    assert isinstance(net, type(build("liif", encoder="edsr_baseline", encoder_args={"n_resblocks": 1})))


def test_method_checks_its_args(tmp_path):
    cfg = tiny_liif_cfg(tmp_path / "c", patch_size=24)  # 24 < round(8 * 4)
    with pytest.raises(ConfigError, match="patch_size"):
        LIIFMethod(cfg, torch.device("cpu")).build()
    cfg = tiny_liif_cfg(tmp_path / "c")
    cfg.method.args["sample_q"] = 65  # more than the 8x8 pixels of a scale-1 crop
    with pytest.raises(ConfigError, match="sample_q"):
        LIIFMethod(cfg, torch.device("cpu")).build()
    cfg.method.args = {"inp_sz": 8}
    with pytest.raises(ConfigError, match="inp_sz"):
        LIIFMethod(cfg, torch.device("cpu")).build()


@pytest.mark.parametrize("name", ["liif_lite.yaml", "liif_edsr_baseline.yaml"])
def test_configs_load_and_build(name, tmp_path):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.method.name == "liif" and cfg.model.arch == "liif"
    inp, smax = cfg.method.args["inp_size"], cfg.method.args["scale_max"]
    assert cfg.data.patch_size >= round(inp * smax)
    if name == "liif_edsr_baseline.yaml":
        assert cfg.train.steps == 1_000_000 and cfg.data.batch_size == 16 and cfg.data.repeat == 20
        assert cfg.train.schedule.milestones == [200_000, 400_000, 600_000, 800_000]
        assert cfg.train.optimizer.lr == 1e-4 and cfg.method.args["sample_q"] == 2304
    else:
        m = LIIFMethod(cfg, torch.device("cpu"))
        m.build()  # the lite network and the args are consistent
        assert sum(p.numel() for p in m.networks["net"].parameters()) < 200_000
