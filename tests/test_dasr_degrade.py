"""SRMD-style degradations (srkit.data.degrade): kernels, blur, bicubic, noise, against the official DASR code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from srkit.data.degrade import (
    Degradation,
    RandomDegradation,
    anisotropic_gaussian_kernel,
    batch_blur,
    bicubic_downsample,
    degrade,
    isotropic_gaussian_kernel,
    official_ranges,
)
from srkit.data.resize import imresize
from srkit.errors import ConfigError, SrkitError

FIX = Path(__file__).resolve().parent / "fixtures" / "dasr"


@pytest.fixture(scope="module")
def off():
    from safetensors.torch import load_file

    return load_file(str(FIX / "degrade_official.safetensors"))


def _close_rounded(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Rounded [0, 255] images: float rounding may flip a value sitting on .5, nothing more."""
    diff = (ours - theirs).abs()
    assert diff.max() <= 1.0 + 1e-4
    assert (diff > 1e-4).float().mean() < 0.01


def test_kernels_sum_to_one_and_symmetry():
    k = isotropic_gaussian_kernel(torch.tensor([0.2, 1.0, 3.7]))
    assert k.shape == (3, 21, 21) and k.dtype == torch.float32
    torch.testing.assert_close(k.sum((1, 2)), torch.ones(3))
    for t in (k, k.flip(1), k.flip(2), k.transpose(1, 2)):
        torch.testing.assert_close(t, k, atol=0, rtol=0)
    assert k[1].argmax() == 10 * 21 + 10
    a = anisotropic_gaussian_kernel(torch.tensor([0.5, 3.0]), torch.tensor([3.0, 0.5]), torch.tensor([0.0, 0.0]))
    torch.testing.assert_close(a.sum((1, 2)), torch.ones(2))
    # lambda_1 is the spread along x (width) at theta = 0; swapping the lambdas transposes the kernel
    assert a[0, 14, 10] > a[0, 10, 14]  # lambda_1 = 0.5 across x, 3.0 along y
    torch.testing.assert_close(a[1], a[0].T, atol=1e-7, rtol=0)
    # point symmetry, and theta + pi is the same kernel; equal lambdas give the isotropic kernel
    b = anisotropic_gaussian_kernel(1.0, 2.5, 0.7)
    torch.testing.assert_close(b, b.flip(1).flip(2), atol=1e-8, rtol=0)
    torch.testing.assert_close(b, anisotropic_gaussian_kernel(1.0, 2.5, 0.7 + math.pi), atol=1e-7, rtol=0)
    torch.testing.assert_close(anisotropic_gaussian_kernel(1.7, 1.7, 0.4), isotropic_gaussian_kernel(1.7),
                               atol=1e-7, rtol=0)
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        isotropic_gaussian_kernel(0.0)


def test_kernels_match_official(off):
    torch.testing.assert_close(isotropic_gaussian_kernel(off["iso_sigma"]), off["iso_kernels"], atol=1e-7, rtol=1e-5)
    ours = anisotropic_gaussian_kernel(off["aniso_lambda_1"], off["aniso_lambda_2"], off["aniso_theta"])
    torch.testing.assert_close(ours, off["aniso_kernels"], atol=1e-7, rtol=1e-4)


def test_blur_and_bicubic_match_official(off):
    hr = off["hr_255"]
    k = isotropic_gaussian_kernel(1.3)
    blurred = batch_blur(hr[:1].reshape(1, 6, 24, 24), k).view(2, 3, 24, 24)
    torch.testing.assert_close(blurred, off["blur_sigma1.3"], atol=2e-4, rtol=0)
    for s in (2, 3, 4):
        torch.testing.assert_close(bicubic_downsample(off["blur_sigma1.3"], s), off[f"bicubic_x{s}_of_blur"],
                                   atol=2e-4, rtol=0)
    # the official port clamps taps at the border: "replicate", which differs from MATLAB's "symmetric"
    sym = imresize(off["blur_sigma1.3"], size=(6, 6), border="symmetric")
    assert (sym - off["bicubic_x4_of_blur"]).abs().max() > 1e-2


def test_random_training_degradations_match_official(off):
    hr = off["hr_255"] / 255.0
    iso = RandomDegradation(2, "iso", sigma_min=0.2, sigma_max=2.0)
    lr, d = iso(hr, torch.Generator().manual_seed(5))
    assert lr.shape == (2, 2, 3, 12, 12)
    torch.testing.assert_close(d.kernels, off["train_iso_x2_kernels"], atol=1e-7, rtol=1e-4)
    _close_rounded(lr * 255, off["train_iso_x2_lr"])
    assert torch.equal(lr * 255, (lr * 255).round())  # multiples of 1/255

    aniso = RandomDegradation.official(4, "aniso")
    assert (aniso.lambda_min, aniso.lambda_max, aniso.noise) == (0.2, 4.0, 25.0)
    lr, d = aniso(hr, torch.Generator().manual_seed(5))
    assert set(d.params) == {"lambda_1", "lambda_2", "theta"} and 0 <= d.noise.min() and d.noise.max() <= 25
    torch.testing.assert_close(d.kernels, off["train_aniso_noise25_x4_kernels"], atol=1e-7, rtol=1e-4)
    _close_rounded(lr * 255, off["train_aniso_noise25_x4_lr"])


def test_fixed_test_degradations_match_official(off):
    hr = off["hr_255"][:1, :1] / 255.0
    lr = degrade(hr, 3, Degradation.fixed(sigma=1.6))
    _close_rounded(lr * 255, off["test_iso1.6_x3_lr"])
    lr = degrade(hr, 2, Degradation.fixed(sigma=0))
    _close_rounded(lr * 255, off["test_iso0_x2_lr"])
    d = Degradation.fixed(lambda_1=0.2, lambda_2=4.0, theta_deg=30.0, noise=10.0)
    lr = degrade(hr, 4, d, torch.Generator().manual_seed(6))
    _close_rounded(lr * 255, off["test_aniso_0.2_4.0_30deg_noise10_x4_lr"])


def test_sigma_to_zero_is_pure_bicubic_and_patches_share_degradation():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 24, 24, generator=g)
    bic = (imresize(hr * 255, size=(12, 12), border="replicate").round().clamp(0, 255)) / 255
    assert torch.equal(degrade(hr, 2, Degradation.fixed(2, sigma=0)), bic)
    tiny = degrade(hr, 2, Degradation.fixed(2, sigma=0.05))  # the kernel is a delta to float precision
    assert (tiny - bic).abs().max() <= 1 / 255 + 1e-7 and (tiny != bic).float().mean() < 0.01
    # two identical patches of an image get the same blur and the same noise level (not the same noise)
    pair = torch.stack([hr, hr], 1)
    lr, d = RandomDegradation(2, "iso", noise=20.0)(pair, torch.Generator().manual_seed(1))
    clean = degrade(pair, 2, Degradation(d.kernels, torch.zeros(2)))
    assert torch.equal(clean[:, 0], clean[:, 1])
    assert not torch.equal(lr[:, 0], lr[:, 1])
    std0 = (lr - clean)[:, 0].std(dim=(1, 2, 3)) * 255
    std1 = (lr - clean)[:, 1].std(dim=(1, 2, 3)) * 255
    torch.testing.assert_close(std0, std1, atol=0, rtol=0.25)
    torch.testing.assert_close(std0, d.noise, atol=0, rtol=0.3)


def test_determinism_ranges_and_errors():
    hr = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    deg = RandomDegradation.official(4, "aniso")
    a, da = deg(hr, torch.Generator().manual_seed(9))
    b, db = deg(hr, torch.Generator().manual_seed(9))
    c, _ = deg(hr, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and torch.equal(da.kernels, db.kernels) and not torch.equal(a, c)
    assert official_ranges(2) == {"sigma_min": 0.2, "sigma_max": 2.0, "noise": 0.0}
    assert official_ranges(4)["sigma_max"] == 4.0
    s = RandomDegradation.official(3).sample(1000, torch.Generator().manual_seed(0)).params["sigma"]
    assert 0.2 <= s.min() < 0.25 and 2.95 < s.max() <= 3.0
    t = deg.sample(1000, torch.Generator().manual_seed(0)).params["theta"]
    assert t.max() > 3.0  # the fixed theta range [0, pi], not the early [0, pi/180]
    with pytest.raises(SrkitError, match="not a multiple of the scale 4"):
        degrade(torch.rand(1, 3, 18, 16), 4, Degradation.fixed())
    with pytest.raises(SrkitError, match="too small for reflection padding"):
        degrade(torch.rand(1, 3, 8, 8), 2, Degradation.fixed(sigma=1.0))
    with pytest.raises(ConfigError, match="blur must be"):
        RandomDegradation(2, "motion")
