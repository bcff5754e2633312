"""LAM: known answers from the authors' demo code, the Gini/DI formula, integrated-gradients completeness,
receptive-field locality, batched = sequential, every kind of srkit network, pictures, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import FIXTURES
from srkit import archs
from srkit.errors import SrkitError
from srkit.explain import lam as L
from srkit.explain import render as R

OFFICIAL = FIXTURES / "lam" / "official_demo.npz"


@pytest.fixture(scope="module")
def official():
    d = np.load(OFFICIAL)
    net = archs.build("edsr_baseline", n_resblocks=1, n_feats=8, scale=2).eval()
    net.load_state_dict({k[2:]: torch.from_numpy(d[k]) for k in d.files if k.startswith("w:")})
    return d, net


class SmoothNet(nn.Module):
    """x2, smooth (tanh), receptive field 2 LR pixels: enough for completeness checks, fast."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 12, 3, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.4

    def forward(self, x):
        return F.pixel_shuffle(self.c2(torch.tanh(self.c1(x))), 2)


class RefNet(nn.Module):
    """Stand-in for a reference-based network: forward(lr, ref), the ref at SR size."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, lr, ref):
        return torch.tanh(F.interpolate(self.a(lr), scale_factor=2, mode="bilinear") + self.b(ref))


def _target(net, x, window, ref=None):
    with torch.no_grad():
        out = net(x) if ref is None else net(x, ref)
        return L.gradient_target(out, *window).item()


# ------------------------------------------------------------------------------------------ formulas


def test_gini_and_di_known_values():
    assert L.gini(np.ones(10)) == pytest.approx(0.0, abs=1e-12)
    assert L.diffusion_index(np.full((4, 4), 0.3)) == pytest.approx(100.0)
    # one pixel holds everything: G = (n - 1) / n up to the 1e-7 the demo adds
    one = np.zeros(4)
    one[2] = 1.0
    assert L.gini(one) == pytest.approx(0.75, abs=1e-6)
    assert L.diffusion_index(one) == pytest.approx(25.0, abs=1e-4)
    # [1, 2, 3, 4]: sum |xi - xj| / (2 n^2 mean) = 20 / (2 * 16 * 2.5) = 0.25
    assert L.gini(np.array([4.0, 1.0, 3.0, 2.0])) == pytest.approx(0.25, abs=1e-7)
    # negatives are shifted up: [-1, 0, 1, 2] behaves as [0, 1, 2, 3] -> 20 / (2 * 16 * 1.5)
    assert L.gini(np.array([-1.0, 0.0, 1.0, 2.0])) == pytest.approx(20 / 48, abs=1e-6)
    rng = np.random.default_rng(0)
    x = rng.random(257)
    pair = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert L.gini(x) == pytest.approx(pair, rel=1e-5)


def test_kde_map_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    m = rng.random((13, 21)) ** 8
    yy, xx = np.mgrid[0:13, 0:21]
    pts = np.vstack([xx.ravel(), yy.ravel()])
    z = stats.gaussian_kde(pts, weights=m.ravel())(pts).reshape(m.shape)
    assert np.allclose(L.kde_map(m), z / z.max(), rtol=0, atol=1e-12)
    one = np.zeros((5, 5))
    one[2, 3] = 0.5  # singular covariance (SciPy raises): the map itself, normalised
    assert np.array_equal(L.kde_map(one), one * 2)
    assert not L.kde_map(np.zeros((4, 4))).any()


def test_count_pixels_and_abs_normalized():
    assert L.count_pixels(np.array([0.1, 0.5, 0.1, 0.3]), 0.95) == 3  # prefix sums 0.5, 0.8, 0.9 < 0.95
    assert L.count_pixels(np.array([1.0, 0, 0, 0]), 0.95) == 0  # the demo counts sums *below* the threshold
    a = np.zeros((3, 2, 2))
    a[0, 0, 0], a[1, 0, 0], a[2, 1, 1] = 2.0, -3.0, 0.5  # channels are summed before abs
    assert np.allclose(L.abs_normalized(a), [[1.0, 0.0], [0.0, 0.5]])
    assert not L.abs_normalized(np.zeros((3, 2, 2))).any()


def test_kernels_and_reflect101_filter():
    ndimage = pytest.importorskip("scipy.ndimage")

    k = L.gaussian_kernel(9, 1.2)
    assert k.shape == (9, 9) and k.sum() == pytest.approx(1.0) and np.allclose(k, k.T)
    assert k[4, 4] / k[4, 5] == pytest.approx(np.exp(1 / (2 * (1.2 + 1e-5) ** 2)))
    delta = L.gaussian_kernel(9, 0.0)
    assert delta[4, 4] == 1.0 and delta.sum() == 1.0
    img = torch.rand(2, 7, 6, dtype=torch.float64)
    out = L.filter_image(img, torch.from_numpy(np.stack([k, delta])))
    ref = np.stack([ndimage.correlate(c, k, mode="mirror") for c in img.numpy()])  # mirror = REFLECT_101
    assert np.allclose(out[0].numpy(), ref, atol=1e-12)
    assert torch.equal(out[1], img)
    with pytest.raises(SrkitError, match="larger than 4 pixels"):
        L.filter_image(torch.rand(3, 4, 9), torch.from_numpy(k[None]))


def test_blur_path_schedule():
    path = L.BlurPath()
    img = torch.rand(3, 12, 11)
    x, dx = path.points(img, 0, 50)
    assert x.shape == dx.shape == (50, 3, 12, 11)
    assert torch.equal(x[-1], img)  # the last point (sigma 0) is the image; the baseline is never evaluated
    # right Riemann sum: mean of the derivatives telescopes to image - blur(image, 1.2)
    assert torch.allclose(dx.double().mean(0), (img - path.baseline(img)).double(), atol=1e-6)
    # a batch of steps equals the same steps from the full run
    x2, dx2 = path.points(img, 17, 23)
    assert torch.equal(x2, x[17:23]) and torch.equal(dx2, dx[17:23])
    lin = L.LinearPath(5)
    xl, dxl = lin.points(img, 0, 5)
    assert torch.equal(xl[0], torch.zeros_like(img)) and torch.equal(xl[-1], img)
    assert torch.allclose(xl[2], img * 0.5) and torch.equal(dxl[1], img)


def test_gradient_target_is_nan_safe():
    flat = torch.full((1, 3, 10, 10), 0.5, requires_grad=True)
    (g,) = torch.autograd.grad(L.gradient_target(flat, 2, 2, 4).sum(), flat)
    assert torch.isfinite(g).all() and not g.any()
    x = torch.rand(2, 3, 9, 9)
    d = L.gradient_target(x, 1, 2, 3)
    dv = (x[:, :, :-1, :] - x[:, :, 1:, :]) ** 2
    dh = (x[:, :, :, :-1] - x[:, :, :, 1:]) ** 2
    manual = (dv[:, :, 2:5, 1:4] + dh[:, :, 2:5, 1:4]).sqrt().sum(dim=(1, 2, 3))
    assert d.shape == (2,) and torch.allclose(d, manual)


# ------------------------------------------------------------------------------- against the demo code


@pytest.mark.parametrize("name", ["blur", "linear"])
def test_matches_official_demo(official, name):
    d, net = official
    path = L.BlurPath() if name == "blur" else L.LinearPath()
    res = L.lam(net, torch.from_numpy(d["lr"]), tuple(int(v) for v in d["window"]), path=path, batch_size=16)
    grad = d[f"{name}_grad"]
    assert np.allclose(res.attribution.numpy(), grad, atol=1e-6 * np.abs(grad).max())
    assert res.di == pytest.approx(float(d[f"{name}_di"]), abs=1e-4)
    assert res.pixels(0.95) == int(d[f"{name}_count95"])
    if name == "blur":
        assert torch.allclose(res.sr[0], torch.from_numpy(d["blur_sr"]), atol=1e-6)
        # the demo fed float32 weights to SciPy; srkit works in float64
        assert np.allclose(L.kde_map(L.abs_normalized(grad)), d["blur_kde"], rtol=0, atol=1e-7)


def test_pictures_match_demo_drawing(official):
    d, _ = official
    assert np.array_equal(R.seismic(d["seismic_values"]), d["seismic_colours"])
    box = np.asarray(R.draw_window(np.zeros((16, 16, 3), np.uint8), 4, 3, 6))
    assert np.array_equal(box[..., 0] == 255, d["box_mask"]) and not box[..., 1:].any()
    heat = np.asarray(R.map_image(np.array([[0.0, 1.0], [0.5, 0.25]]), (4, 4)))
    assert heat.shape == (4, 4, 3)
    assert tuple(heat[0, 0]) == tuple(R.seismic(0.5)) and tuple(heat[3, 3]) == tuple(R.seismic(0.625))
    mixed = np.asarray(R.blend(R.Image.new("RGB", (2, 2), (255, 0, 11)), R.Image.new("RGB", (2, 2), (0, 255, 0))))
    assert tuple(mixed[0, 0]) == (127, 127, 5)  # truncated, not rounded


# ------------------------------------------------------------------------------- integrated gradients


def test_completeness_blur_path():
    net = SmoothNet().eval()
    lr = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(3))
    window = (6, 4, 6)
    path0 = L.BlurPath()
    delta = _target(net, lr, window) - _target(net, path0.baseline(lr[0])[None], window)
    errors = []
    for steps in (8, 32, 256):
        res = L.lam(net, lr, window, path=L.BlurPath(steps=steps))
        errors.append(abs(res.attribution.double().sum().item() - delta))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * abs(delta)


def test_completeness_linear_path_and_reference():
    net = RefNet().eval()
    g = torch.Generator().manual_seed(4)
    lr, ref = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    window = (3, 5, 8)
    full = _target(net, lr, window, ref)
    base = _target(net, torch.zeros_like(lr), window, torch.zeros_like(ref))
    res = L.lam(net, lr, window, ref=ref, path=L.LinearPath(steps=400))
    assert res.ref_attribution is not None and res.ref_attribution.shape == (3, 16, 16)
    total = res.attribution.double().sum() + res.ref_attribution.double().sum()
    assert total.item() == pytest.approx(full - base, rel=0.01)
    fixed = L.lam(net, lr, window, ref=ref, ref_path=False, path=L.LinearPath(steps=400))
    assert fixed.ref_attribution is None
    held = _target(net, torch.zeros_like(lr), window, ref)
    assert fixed.attribution.double().sum().item() == pytest.approx(full - held, rel=0.01)


def test_zero_attribution_outside_receptive_field():
    torch.manual_seed(5)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    net = nn.Sequential(conv, nn.Upsample(scale_factor=2, mode="nearest"))
    lr = torch.rand(1, 3, 16, 16)
    # SR window rows/cols 8..11 and the forward difference's +1 -> SR 8..12 -> LR 4..6 -> conv 3x3 -> LR 3..7
    res = L.lam(net, lr, (8, 8, 4), path=L.BlurPath(steps=10))
    a = res.attribution.abs().sum(0)
    inside = torch.zeros_like(a, dtype=torch.bool)
    inside[3:8, 3:8] = True
    assert not a[~inside].any()
    assert (a[inside] > 0).sum() > 15


def test_works_inside_inference_mode():
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Upsample(scale_factor=2))
    x = torch.rand(1, 3, 12, 12)
    plain = L.lam(net, x, (4, 4, 8), path=L.BlurPath(steps=4)).attribution
    with torch.inference_mode():
        inside = L.lam(net, x.clone(), (4, 4, 8), path=L.BlurPath(steps=4)).attribution
    assert plain.abs().max() > 0 and torch.equal(plain, inside)


def test_batched_equals_sequential(official):
    d, net = official
    lr = torch.from_numpy(d["lr"])
    window = (14, 16, 8)
    path = L.BlurPath(steps=12)
    seq = L.lam(net, lr, window, path=path, batch_size=1)
    for bs in (5, None):
        bat = L.lam(net, lr, window, path=path, batch_size=bs)
        assert torch.allclose(bat.attribution, seq.attribution, rtol=1e-5, atol=1e-7 * seq.attribution.abs().max())
        assert torch.allclose(bat.sr, seq.sr, atol=1e-6)  # conv kernels may differ by batch size in the last bit


def test_memory_bound_picks_batch_size(official, monkeypatch):
    d, net = official
    calls = []
    orig_points = L.BlurPath.points

    def points(self, image, start, stop):
        calls.append(stop - start)
        return orig_points(self, image, start, stop)

    monkeypatch.setattr(L.BlurPath, "points", points)
    res = L.lam(net, torch.from_numpy(d["lr"]), (14, 16, 8), path=L.BlurPath(steps=10), max_memory=1)
    assert calls[1:] == [1] * 10 and res.batch_size == 1  # a tiny budget: one step per pass (after the probe)
    calls.clear()
    res = L.lam(net, torch.from_numpy(d["lr"]), (14, 16, 8), path=L.BlurPath(steps=10), max_memory=1 << 30)
    assert calls[1:] == [10] and res.batch_size == 10


def test_liif_continuous_scale():
    torch.manual_seed(0)
    kw = {"encoder_args": {"n_resblocks": 1, "n_feats": 8}}
    net, desc = archs.build("liif", **kw).eval(), archs.describe("liif", **kw)
    lr = torch.rand(1, 3, 10, 10)
    res = L.lam(net, lr, (9, 9, 6), descriptor=desc, size=(27, 25), path=L.BlurPath(steps=4))
    seq = L.lam(net, lr, (9, 9, 6), descriptor=desc, size=(27, 25), path=L.BlurPath(steps=4), batch_size=1)
    assert res.sr.shape == (1, 3, 27, 25) and res.attribution.shape == (3, 10, 10)
    assert torch.allclose(res.attribution, seq.attribution, atol=1e-5 * seq.attribution.abs().max())
    assert 0 < res.di < 100
    with pytest.raises(SrkitError, match="continuous-scale"):
        L.lam(net, lr, (1, 1, 4), descriptor=desc)


# SMSR's CPU "sparse" inference kernels write with out= and cannot be differentiated; its default "auto"
# path switches to the dense hard-masked ops when the input needs gradients.
@pytest.mark.parametrize("name, kwargs", [("smsr", {"n_feats": 16, "n_blocks": 2}),
                                          ("classsr", {"widths": (4, 6, 8)})])
def test_sparse_and_routed_networks(name, kwargs):
    # SMSR (hard spatial/channel masks at inference) and ClassSR (routing of 32x32 patches) need nothing
    # special: the gradient flows through the chosen masks/branch, and the steps of a batch do not mix.
    torch.manual_seed(0)
    net, desc = archs.build(name, **kwargs).eval(), archs.describe(name, **kwargs)
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    res = L.lam(net, lr, (8, 8, 16), descriptor=desc, path=L.BlurPath(steps=3), batch_size=3)
    seq = L.lam(net, lr, (8, 8, 16), descriptor=desc, path=L.BlurPath(steps=3), batch_size=1)
    assert torch.isfinite(res.attribution).all() and res.attribution.abs().max() > 0
    assert torch.allclose(res.attribution, seq.attribution, atol=1e-5 * seq.attribution.abs().max())


def test_window_errors():
    net = SmoothNet().eval()
    with pytest.raises(SrkitError, match="does not fit"):
        L.lam(net, torch.rand(1, 3, 8, 8), (10, 2, 8))
    L.check_window(8, 8, 8, 16, 16)
    with pytest.raises(SrkitError, match="x must be in 0..8"):
        L.check_window(9, 0, 8, 16, 16)


def test_prepare_images_crops_like_the_demo():
    from PIL import Image

    hr = (np.random.default_rng(0).random((35, 42, 3)) * 255).astype(np.uint8)
    big, lr = L.prepare_images(hr, 4)
    assert big.shape == (32, 40, 3) and lr.shape == (8, 10, 3)
    assert np.array_equal(lr, np.asarray(Image.fromarray(hr[:32, :40]).resize((10, 8), Image.BICUBIC)))
    _, lr_m = L.prepare_images(hr, 4, method="matlab")
    assert lr_m.shape == lr.shape and not np.array_equal(lr_m, lr)
    big, lr = L.prepare_images(hr, 2.5)
    assert big.shape == hr.shape and lr.shape == (14, 16, 3)


# ----------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def hr_png(tmp_path):
    from srkit.data.io import write_image

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:48, 0:40]
    img = (127 + 100 * np.sin(xx / 3.0 + yy / 5.0))[..., None] + rng.normal(0, 10, (48, 40, 3))
    path = tmp_path / "hr.png"
    write_image(path, img.clip(0, 255).astype(np.uint8))
    return path


def _cli(argv):
    from srkit.cli import main

    return main([str(a) for a in argv])


def test_cli_single_model(hr_png, tmp_path, capsys):
    out, js = tmp_path / "lam.png", tmp_path / "lam.json"
    rc = _cli(["explain", hr_png, "--model", "arch:fsrcnn", "--window", "12,20,8", "-o", out, "--json", js,
               "--steps", "4", "--device", "cpu"])
    assert rc == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (5 * 40, 48)
    doc = json.loads(js.read_text())
    for key in ("di", "pixels_95", "pixels_total", "window", "model", "lr_size", "hr_size", "path"):
        assert key in doc
    assert doc["window"] == {"x": 12, "y": 20, "size": 8} and doc["lr_size"] == [10, 12]
    assert 0 < doc["di"] < 100 and 0 < doc["pixels_95"] < doc["pixels_total"] == 120
    assert "DI" in capsys.readouterr().out


def test_cli_compare(hr_png, tmp_path):
    out, js = tmp_path / "cmp.png", tmp_path / "cmp.json"
    rc = _cli(["explain", hr_png, "--compare", "arch:fsrcnn", "arch:edsr_baseline", "--window", "12,20", "-o", out,
               "--json", js, "--steps", "2", "--batch-size", "2", "--device", "cpu"])
    assert rc == 0
    doc = json.loads(js.read_text())
    assert [m["model"] for m in doc["models"]] == ["arch:fsrcnn", "arch:edsr_baseline"]
    assert all("di" in m and "pixels_95" in m for m in doc["models"])
    from PIL import Image

    with Image.open(out) as im:
        assert im.width == 4 * 40 and im.height > 2 * 48


def _describe_refnet(name, kw):
    from srkit.descriptor import ModelDescriptor

    return ModelDescriptor(arch=name, scales=(2,), needs_ref=True)


def test_cli_reference_model(hr_png, tmp_path, monkeypatch, capsys):
    from srkit.data.io import write_image

    monkeypatch.setitem(archs._REGISTRY, "lam_test_ref", archs.ArchEntry("test_lam", "RefNet", {}, _describe_refnet))
    ref = tmp_path / "ref.png"
    write_image(ref, (np.random.default_rng(2).random((48, 40, 3)) * 255).astype(np.uint8))
    out, js = tmp_path / "r.png", tmp_path / "r.json"
    args = ["explain", hr_png, "--model", "arch:lam_test_ref", "--window", "10,10,8", "-o", out, "--steps", "3"]
    assert _cli(args + ["--ref", ref, "--json", js]) == 0
    doc = json.loads(js.read_text())
    assert doc["lr_size"] == [20, 24] and 0 < doc["ref_di"] < 100 and 0 < doc["di"] < 100
    capsys.readouterr()
    assert _cli(args) == 1
    assert "reference-based: give the reference image with --ref" in capsys.readouterr().err


@pytest.mark.parametrize("window, message", [
    ("12", "--window must be X,Y"), ("a,b", "--window must be X,Y"), ("30,20,16", "does not fit inside the 40x48"),
])
def test_cli_bad_window(hr_png, tmp_path, capsys, window, message):
    rc = _cli(["explain", hr_png, "--model", "arch:fsrcnn", "--window", window, "-o", tmp_path / "x.png",
               "--steps", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_missing_image(tmp_path, capsys):
    rc = _cli(["explain", tmp_path / "nope.png", "--model", "arch:fsrcnn", "--window", "1,1", "-o",
               tmp_path / "x.png", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "nope.png" in err and err.count("\n") == 1
