"""PSNR/SSIM against BasicSR's own output, known answers, presets and LPIPS loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from srkit.errors import SrkitError
from srkit.metrics import PRESETS, EvalPreset, evaluate_pair, get_preset, psnr, rgb_to_y, ssim

from conftest import FIXTURES

FX = FIXTURES / "metrics"

# expected.json holds the values that BasicSR 8d56e3a (basicsr/metrics/psnr_ssim.py, numpy
# calculate_psnr / calculate_ssim) returned for the .npy pairs, computed once outside the repo. BasicSR
# was given the arrays in BGR order for test_y_channel=True (its numpy Y assumes cv2's BGR); float arrays
# (in [0, 1] here) were given to it multiplied by 255.
EXPECTED = json.loads((FX / "expected.json").read_text())
CASES = [(name, row) for name, rows in EXPECTED.items() for row in rows]


def _load(name):
    return np.load(FX / f"{name}_sr.npy"), np.load(FX / f"{name}_hr.npy")


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t[None]


def _tol(name: str, row: dict) -> float:
    # RGB: identical arithmetic, agreement to rounding. Y: BasicSR converts colour in float32 while srkit
    # stays in float64 (as MATLAB does); on uint8 input that moves PSNR by < 2e-7 dB, on float input
    # (not on the 8-bit grid, so float32 rounding bites more) by up to ~1.2e-6 dB.
    if not row["y_channel"]:
        return 1e-9
    return 1e-6 if not name.startswith("float") else 2e-6


@pytest.mark.parametrize("name,row", CASES, ids=[f"{n}-c{r['crop_border']}-{'y' if r['y_channel'] else 'rgb'}"
                                                 for n, r in CASES])
def test_matches_basicsr_numpy_and_torch(name, row):
    sr, hr = _load(name)
    crop, y = row["crop_border"], row["y_channel"]
    tol = _tol(name, row)
    assert psnr(sr, hr, crop, y) == pytest.approx(row["psnr"], abs=tol)
    assert ssim(sr, hr, crop, y) == pytest.approx(row["ssim"], abs=1e-8 if y else 1e-12)
    # The torch path (NCHW [0, 1]) gives the same numbers, one per image.
    tp = psnr(_as_tensor(sr), _as_tensor(hr), crop, y)
    ts = ssim(_as_tensor(sr), _as_tensor(hr), crop, y)
    assert tp.shape == (1,) and ts.shape == (1,)
    assert tp.item() == pytest.approx(row["psnr"], abs=tol)
    assert ts.item() == pytest.approx(row["ssim"], abs=1e-8 if y else 1e-12)


def test_fixtures_are_not_trivial():
    # Guards the golden test: the pairs differ, and Y changes the answer.
    for name, rows in EXPECTED.items():
        assert all(10 < r["psnr"] < 40 and 0.5 < r["ssim"] < 0.999 for r in rows), name
    rgb48 = {(r["crop_border"], r["y_channel"]): r["psnr"] for r in EXPECTED["rgb48x40"]}
    assert abs(rgb48[(0, True)] - rgb48[(0, False)]) > 1


def test_psnr_constant_offset_known_answer():
    hr = np.full((16, 16, 3), 100, np.uint8)
    for d in (1, 5, 20):
        sr = hr + np.uint8(d)
        assert psnr(sr, hr) == pytest.approx(20 * math.log10(255 / d), abs=1e-12)
        # Y of a grey offset d is d * 219/255 (the studio-swing range), so PSNR-Y gains 20log10(255/219).
        assert psnr(sr, hr, y_channel=True) == pytest.approx(20 * math.log10(255 / (d * 219 / 255)), abs=1e-9)
    # float [0, 1] input is the same image on the other scale
    assert psnr(hr / 255.0 + 20 / 255.0, hr / 255.0) == pytest.approx(20 * math.log10(255 / 20), abs=1e-9)


def test_identical_images():
    img = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img, img, crop_border=3, y_channel=True) == pytest.approx(1.0, abs=1e-12)
    t = _as_tensor(img).repeat(2, 1, 1, 1)
    assert torch.isinf(psnr(t, t)).all()
    assert torch.allclose(ssim(t, t), torch.ones(2, dtype=torch.float64))


def test_rgb_to_y_hand_worked():
    # R=255, G=128, B=0: Y = 16 + 65.481 + 128.553*128/255 = 16 + 65.481 + 64.5285... = 146.0095...
    px = np.array([[[255, 128, 0]]], np.uint8)
    expected = 16 + 65.481 + 128.553 * 128 / 255
    assert rgb_to_y(px)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert rgb_to_y(px / 255.0)[0, 0] == pytest.approx(expected / 255, abs=1e-14)
    t = torch.tensor([1.0, 128 / 255, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert rgb_to_y(t).shape == (1, 1, 1, 1)
    assert rgb_to_y(t).item() == pytest.approx(expected / 255, abs=1e-14)
    # black and white hit the studio-swing limits
    assert rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16)
    assert rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235)


def test_crop_happens_before_y_and_ignores_border():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:4] = 0  # damage only the top 4 rows
    assert psnr(sr, hr, crop_border=4) == math.inf
    assert psnr(sr, hr, crop_border=3) < 40
    assert ssim(sr, hr, crop_border=4, y_channel=True) == pytest.approx(1.0)


def test_batch_gives_one_value_per_image():
    rng = np.random.default_rng(2)
    hr = torch.from_numpy(rng.random((3, 3, 20, 22)))
    sr = (hr + torch.from_numpy(rng.normal(0, 0.05, hr.shape))).clamp(0, 1)
    sr[1] = hr[1]
    p, s = psnr(sr, hr, 2, True), ssim(sr, hr, 2, True)
    assert p.shape == (3,) and s.shape == (3,)
    assert torch.isinf(p[1]) and s[1].item() == pytest.approx(1.0)
    for i in (0, 2):
        a = sr[i].permute(1, 2, 0).numpy()
        b = hr[i].permute(1, 2, 0).numpy()
        assert p[i].item() == pytest.approx(psnr(a, b, 2, True), abs=1e-10)
        assert s[i].item() == pytest.approx(ssim(a, b, 2, True), abs=1e-12)
    # a CHW tensor gives a float
    assert isinstance(psnr(sr[0], hr[0]), float)


def test_errors():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(SrkitError, match=r"\(20, 20, 3\) vs \(20, 21, 3\)"):
        psnr(a, np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(SrkitError, match="shapes differ"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(SrkitError, match="at least 11x11"):
        ssim(a, a, crop_border=5)
    with pytest.raises(SrkitError, match="numpy arrays or both torch"):
        psnr(a, torch.zeros(20, 20, 3))
    with pytest.raises(SrkitError, match="crop_border"):
        psnr(a, a, crop_border=-1)
    with pytest.raises(SrkitError, match="y_channel"):
        psnr(np.zeros((20, 20, 4), np.uint8), np.zeros((20, 20, 4), np.uint8), y_channel=True)


# ---------------------------------------------------------------------------------------------- presets


def test_presets_crop_and_channel():
    expect = {  # name: (y_channel, crop at x2, x3, x4)
        "benchmark": (True, 2, 3, 4),
        "div2k": (False, 8, 9, 10),
        "classsr": (False, 2, 3, 4),
        "glean": (False, 0, 0, 0),
        "masa": (True, 0, 0, 0),
        "crossmpi": (False, 0, 0, 0),
    }
    assert set(PRESETS) == set(expect)
    for name, (y, *crops) in expect.items():
        p = get_preset(name)
        assert p.name == name and p.y_channel is y
        assert [p.crop_border(s) for s in (2, 3, 4)] == crops
        assert p.description
    # non-integer scales round up; integer-valued floats do not move
    assert get_preset("benchmark").crop_border(3.7) == 4
    assert get_preset("div2k").crop_border(3.7) == 10
    assert get_preset("div2k").crop_border(4.0) == 10
    with pytest.raises(Exception):
        get_preset("benchmark").name = "x"  # frozen


def test_unknown_preset_lists_names():
    with pytest.raises(SrkitError, match="benchmark, div2k, classsr, glean, masa, crossmpi"):
        get_preset("edsr")
    with pytest.raises(SrkitError, match="scale"):
        get_preset("benchmark").crop_border(0)


def test_evaluate_pair_uses_preset():
    sr, hr = _load("rgb48x40")
    rows = {(r["crop_border"], r["y_channel"]): r for r in EXPECTED["rgb48x40"]}
    p, s = evaluate_pair(sr, hr, 4, "benchmark")
    assert p == pytest.approx(rows[(4, True)]["psnr"], abs=1e-6)
    assert s == pytest.approx(rows[(4, True)]["ssim"], abs=1e-8)
    p, s = evaluate_pair(sr, hr, 2, get_preset("classsr"))
    assert p == pytest.approx(rows[(2, False)]["psnr"], abs=1e-9)
    p, _ = evaluate_pair(sr, hr, 4, "glean")
    assert p == pytest.approx(rows[(0, False)]["psnr"], abs=1e-9)
    custom = EvalPreset("mine", True, 0, 2, "test")
    assert evaluate_pair(sr, hr, 4, custom)[0] == pytest.approx(rows[(2, True)]["psnr"], abs=1e-6)
