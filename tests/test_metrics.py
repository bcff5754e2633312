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


# ---------------------------------------------------------------------------------------------- LPIPS


def _alex_reference(sd: dict, lins: list, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS-alex written out with functional ops from the torchvision AlexNet definition."""
    F = torch.nn.functional
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(x):
        x = ((2 * x - 1) - shift) / scale
        w = lambda i: (sd[f"features.{i}.weight"], sd[f"features.{i}.bias"])
        r1 = F.relu(F.conv2d(x, *w(0), stride=4, padding=2))
        r2 = F.relu(F.conv2d(F.max_pool2d(r1, 3, 2), *w(3), padding=2))
        r3 = F.relu(F.conv2d(F.max_pool2d(r2, 3, 2), *w(6), padding=1))
        r4 = F.relu(F.conv2d(r3, *w(8), padding=1))
        r5 = F.relu(F.conv2d(r4, *w(10), padding=1))
        return [r1, r2, r3, r4, r5]

    total = 0
    for fa, fb, lw in zip(feats(a), feats(b), lins):
        na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        total = total + ((na - nb) ** 2 * lw.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    return total


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """Random AlexNet backbone (torchvision layout, with a classifier key) and random v0.1 linear heads."""
    g = torch.Generator().manual_seed(3)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    sd = {}
    for i, s in shapes.items():
        fan_in = s[1] * s[2] * s[3]
        sd[f"features.{i}.weight"] = torch.randn(s, generator=g) / fan_in**0.5
        sd[f"features.{i}.bias"] = torch.randn(s[0], generator=g) * 0.01
    sd["classifier.1.weight"] = torch.zeros(4, 4)
    lins = [torch.rand(c, generator=g) for c in (64, 192, 384, 256, 256)]
    lin_sd = {f"lin{i}.model.1.weight": w.view(1, -1, 1, 1) for i, w in enumerate(lins)}
    d = tmp_path_factory.mktemp("lpips")
    torch.save(sd, d / "alexnet.pth")
    torch.save(lin_sd, d / "alex.pth")
    return d, sd, lins


def test_lpips_loads_and_matches_reference(lpips_files):
    from srkit.metrics import LPIPS

    d, sd, lins = lpips_files
    m = LPIPS(d / "alex.pth", net="alex", backbone_path=d / "alexnet.pth")
    assert torch.equal(m.features[3].weight, sd["features.3.weight"])
    assert torch.equal(m.lins[4].weight.flatten(), lins[4])
    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 3, 64, 64, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    dist = m(a, b)
    assert dist.shape == (2,) and (dist > 0).all()
    assert torch.allclose(dist, _alex_reference(sd, lins, a, b), rtol=1e-5, atol=1e-7)
    c = (a + 0.4 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    # one batch of 6: (b, a) x2, (a, a) x2, (a, c) x2
    out = m(torch.cat([b, a, a]), torch.cat([a, a, c]))
    assert torch.allclose(out[:2], dist, rtol=1e-5, atol=1e-7)  # symmetric
    assert torch.equal(out[2:4], torch.zeros(2))  # identical images
    assert (out[4:] > dist).all()  # more noise, larger distance


def test_lpips_full_module_layout_and_errors(lpips_files, tmp_path):
    from srkit.metrics import LPIPS

    d, sd, lins = lpips_files
    # an lpips.LPIPS state_dict: net.sliceK.N.* plus the heads and the scaling buffers
    slice_of = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    full = {f"net.slice{slice_of[int(k.split('.')[1])]}.{k.split('.')[1]}.{k.split('.')[2]}": v
            for k, v in sd.items() if k.startswith("features.")}
    full.update({f"lin{i}.model.1.weight": w.view(1, -1, 1, 1) for i, w in enumerate(lins)})
    full["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    torch.save(full, tmp_path / "lpips_full.pth")
    m = LPIPS(tmp_path / "lpips_full.pth")
    a = torch.rand(1, 3, 40, 40)
    b = torch.rand(1, 3, 40, 40)
    assert torch.allclose(m(a, b), _alex_reference(sd, lins, a, b), rtol=1e-5)

    with pytest.raises(SrkitError, match="holds no backbone weights; pass backbone_path"):
        LPIPS(d / "alex.pth")
    with pytest.raises(SrkitError, match="not found"):
        LPIPS(tmp_path / "missing.pth", backbone_path=d / "alexnet.pth")
    with pytest.raises(SrkitError, match="missing LPIPS linear head lin0.model.1.weight"):
        LPIPS(d / "alexnet.pth", backbone_path=d / "alexnet.pth")
    # AlexNet backbone in a VGG LPIPS
    with pytest.raises(SrkitError, match="backbone do not fit LPIPS"):
        LPIPS(d / "alex.pth", net="vgg", backbone_path=d / "alexnet.pth")
    with pytest.raises(SrkitError, match="alex, vgg"):
        LPIPS(d / "alex.pth", net="squeeze")


def test_lpips_vgg_random_weights(tmp_path):
    from srkit.archs.vgg import VGGFeatures
    from srkit.metrics import LPIPS

    torch.manual_seed(5)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VGGFeatures(["relu5_3"], "vgg16").state_dict().items()}
    torch.save({k: torch.randn(s) * (0.5 / s[1:].numel() ** 0.5 if len(s) == 4 else 0.01)
                for k, s in shapes.items()}, tmp_path / "vgg16.pth")
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))},
               tmp_path / "vgg.pth")
    m = LPIPS(tmp_path / "vgg.pth", net="vgg", backbone_path=tmp_path / "vgg16.pth")
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    d = m(torch.cat([a, b, a]), torch.cat([b, a, a]))
    assert d[0].item() > 0
    assert d[0].item() == pytest.approx(d[1].item(), rel=1e-6)
    assert d[2].item() == 0.0
