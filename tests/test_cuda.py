"""The GPU code paths: CUDA results against the CPU, half precision, tiling and its memory budget, AMP
training. Skipped without CUDA (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from srkit import archs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.png"


@pytest.fixture(autouse=True)
def exact_cuda_math():
    """No TF32: CUDA and CPU must agree to float32 rounding, not to TF32's 10-bit mantissa."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _sample(size: int = 96) -> np.ndarray:
    from srkit.data.io import read_image

    return np.ascontiguousarray(read_image(SAMPLE)[:size, :size, :3])


def test_default_model_on_cuda_equals_cpu_tiled_or_not_and_half_is_close():
    import srkit

    img = _sample()
    cpu = srkit.load(device="cpu", tile=0)(img).astype(np.int16)
    gpu = srkit.load(device="cuda", tile=0)
    out = gpu(img).astype(np.int16)
    assert out.shape == cpu.shape == (4 * 96, 4 * 96, 3)
    assert np.abs(out - cpu).max() <= 1
    tiled = srkit.load(device="cuda", tile=40)(img).astype(np.int16)
    assert np.abs(tiled - out).max() <= 1
    half = srkit.load(device="cuda", half=True, tile=0)
    assert half.dtype == torch.float16
    diff = np.abs(half(img).astype(np.int16) - out)
    assert diff.mean() < 0.05 and diff.max() <= 3


def test_cuda_memory_budget_picks_a_tile_that_fits():
    import srkit
    from srkit.inference.upscaler import default_memory_budget

    total = torch.cuda.mem_get_info()[1]
    budget = default_memory_budget(torch.device("cuda"))
    assert 0 < budget <= 0.8 * total
    up = srkit.load(device="cuda", max_memory=64 << 20)  # 64 MiB for a tile's working set
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    up(np.zeros((600, 500, 3), np.uint8))
    assert up.last_tile is not None and max(up.last_tile) < 600  # the budget forced tiling
    assert torch.cuda.max_memory_allocated() - before < 3 * (64 << 20)


def test_imresize_on_cuda_equals_cpu():
    from srkit.data.resize import imresize

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 37, 41, generator=g)
    torch.testing.assert_close(imresize(x.cuda(), scale=1 / 3).cpu(), imresize(x, scale=1 / 3), rtol=0, atol=1e-5)


def test_liif_smsr_classsr_on_cuda_equal_cpu():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 20, 22)
    liif = archs.build("liif", encoder_args={"n_resblocks": 2, "n_feats": 16}, hidden=(32, 32)).eval()
    smsr = archs.build("smsr", scale=2).eval()
    classsr = archs.build("classsr", backbone="fsrcnn").eval()
    with torch.inference_mode():
        for name, net, call in (
            ("liif", liif, lambda n, t: n(t, size=(57, 61))),
            ("smsr dense", smsr, lambda n, t: n(t, path="dense")),
            ("smsr sparse", smsr, lambda n, t: n(t, path="sparse")),
            ("classsr", classsr, lambda n, t: n(t)),
        ):
            ref = call(net, x)
            got = call(net.cuda(), x.cuda()).cpu()
            net.cpu()
            assert got.shape == ref.shape, name
            assert (got - ref).abs().max() < 1e-4, name


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_on_cuda_learns(tmp_path, amp):
    import torch.nn.functional as F

    from srkit.engine.config import from_dict
    from srkit.engine.trainer import Trainer

    class Pairs:
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            base = torch.rand(16, 3, 8, 8, generator=g)
            self.hr = F.interpolate(base, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
            self.lr = F.avg_pool2d(self.hr, 2)

        def __len__(self):
            return 16

        def __getitem__(self, i):
            return {"lr": self.lr[i], "hr": self.hr[i], "name": str(i)}

    cfg = from_dict({
        "name": "amp", "seed": 0, "output_dir": str(tmp_path / "run"),
        "model": {"arch": "edsr_baseline", "args": {"n_resblocks": 2, "n_feats": 16}},
        "data": {"scale": 2, "patch_size": 32, "batch_size": 8, "val": None},
        "train": {"steps": 60, "amp": amp, "device": "cuda", "log_every": 1, "tensorboard": False,
                  "optimizer": {"lr": 1e-3}, "ckpt_every": 1000},
    })
    result = Trainer(cfg, progress=False, train_set=Pairs()).run()
    import json

    losses = [json.loads(line)["loss/l1"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert result["step"] == 60
