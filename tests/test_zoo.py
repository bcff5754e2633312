"""The project's own trained zoo models: they load by name, carry their training history, and beat
bicubic on real images (Set5 when the shared data is there, the shipped sample otherwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import srkit
from srkit.data.io import read_image
from srkit.data.resize import imresize
from srkit.metrics.psnr_ssim import psnr
from srkit.model_file import read_metadata
from srkit.zoo import list_models, resolve

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.png"
TRAINED = ["srkit-default", "liif-edsr-baseline", "classsr-fsrcnn-x4", "fsrcnn-o-x4"]


def test_trained_models_are_in_the_zoo_with_their_recipe():
    assert set(TRAINED) <= set(list_models())
    for name in TRAINED:
        meta = read_metadata(resolve(name))
        assert meta["recipe"]["train"]["steps"] > 0 and meta["steps"] > 0, name
        assert meta["metrics"]["Set5"]["psnr"] > 28.43 + 0.9, name  # Set5 x4 bicubic is 28.43 dB
    history = read_metadata(resolve("classsr-fsrcnn-x4"))["history"]
    assert [h["stage"] for h in history][:3] == ["stage 1 branch 1", "stage 1 branch 2", "stage 1 branch 3"]


def _hr_images(shared_root: Path | None) -> list[np.ndarray]:
    if shared_root is not None:
        return [read_image(p) for p in sorted((shared_root / "benchmark" / "Set5" / "HR").glob("*.png"))[:2]]
    return [read_image(SAMPLE)[..., :3]]


@pytest.mark.parametrize("name", ["liif-edsr-baseline", "classsr-fsrcnn-x4", "fsrcnn-o-x4"])
def test_trained_model_beats_bicubic_at_x4(name):
    from srkit.data.sets import data_root

    try:
        root = data_root()
    except Exception:
        root = None
    torch.manual_seed(0)
    up = srkit.load(name, device="cpu")
    for hr in _hr_images(root):
        hr = hr[: min(hr.shape[0], 160) // 4 * 4, : min(hr.shape[1], 160) // 4 * 4]
        lr = imresize(hr, scale=0.25)
        sr = up(lr, scale=4)
        bic = np.clip(np.round(imresize(lr, scale=4)), 0, 255).astype(np.uint8)
        assert sr.shape == hr.shape
        assert psnr(sr, hr, 4, True) > psnr(bic, hr, 4, True) + 0.5, name


def test_zoo_liif_gives_exact_sizes_at_any_scale():
    up = srkit.load("liif-edsr-baseline", device="cpu")
    lr = read_image(SAMPLE)[:24, :30, :3]
    assert up(lr, scale=3.7).shape == (round(24 * 3.7), round(30 * 3.7), 3)
    assert up(lr, size=(100, 47)).shape == (100, 47, 3)  # (height, width), asymmetric
