"""MATLAB-exact bicubic imresize: known answers, MATLAB-made benchmark files, torch/numpy agreement, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from srkit.data.resize import imresize, output_size, resize_weights
from srkit.errors import SrkitError


# ---------------------------------------------------------------- an independent scalar reference
def _keys_cubic(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def _ref_axis(vec: list, out_len: int, scale: float, border: str) -> list:
    """One axis, one output pixel at a time, straight from the MATLAB description (1-based positions)."""
    n = len(vec)
    aa = scale < 1
    width = 4 / scale if aa else 4
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        first = math.floor(u - width / 2)
        num = den = 0.0
        for j in range(first, first + math.ceil(width) + 2):
            wt = scale * _keys_cubic(scale * (u - j)) if aa else _keys_cubic(u - j)
            if border == "replicate":
                src = min(max(j, 1), n)
            else:  # mirror with the edge repeated: 0 -> 1, -1 -> 2, n+1 -> n
                src = j
                while src < 1 or src > n:
                    src = 1 - src if src < 1 else 2 * n + 1 - src
            num += wt * vec[src - 1]
            den += wt
        out.append(num / den)
    return out


def _ref_resize(img: np.ndarray, out_hw, scales, border) -> np.ndarray:
    """Float reference for a 2-D array: rows (H) first, then columns."""
    h, w = img.shape
    tmp = np.array([_ref_axis(list(img[:, c]), out_hw[0], scales[0], border) for c in range(w)]).T
    return np.array([_ref_axis(list(tmp[r]), out_hw[1], scales[1], border) for r in range(out_hw[0])])


# ---------------------------------------------------------------- known answers worked out by hand
# Shrinking by 2: the kernel is stretched to 8 px; for output pixel 1 of a length-4 axis, u = 1.5 and the taps at
# offsets +-0.5, +-1.5, +-2.5, +-3.5 get 0.5*cubic(0.25|0.75|1.25|1.75) = 0.43359375, 0.11328125, -0.03515625,
# -0.01171875 (these already sum to 1). Folding the out-of-range taps back gives these 2x4 matrices:
M_SYM = np.array([[0.546875, 0.3984375, 0.1015625, -0.046875], [-0.046875, 0.1015625, 0.3984375, 0.546875]])
M_REP = np.array([[0.5, 0.43359375, 0.11328125, -0.046875], [-0.046875, 0.11328125, 0.43359375, 0.5]])


@pytest.mark.parametrize("border,m", [("symmetric", M_SYM), ("replicate", M_REP)])
def test_4x4_to_2x2_matches_hand_computed_weights(border, m):
    x = np.arange(16, dtype=np.float64).reshape(4, 4) ** 2 % 7 * 10.0
    got = imresize(x, scale=0.5, border=border)
    np.testing.assert_allclose(got, m @ x @ m.T, rtol=0, atol=1e-12)
    w, idx = resize_weights(4, 2, 0.5, border)
    dense = np.zeros((2, 4))
    np.add.at(dense, (np.repeat(np.arange(2), w.shape[1]), idx.ravel()), w.ravel())
    np.testing.assert_allclose(dense, m, rtol=0, atol=1e-15)


def test_upscale_x2_interior_pixel_weights():
    # scale 2, output pixel 4 (1-based): u = 4/2 + 0.5*(1 - 1/2) = 2.25, so inputs 1..4 get
    # cubic(1.25), cubic(0.25), cubic(0.75), cubic(1.75) = -0.0703125, 0.8671875, 0.2265625, -0.0234375.
    v = np.array([3.0, -1.0, 7.0, 2.0, 5.0, 11.0])
    got = imresize(v[:, None], size=(12, 1))[:, 0]
    assert got[3] == pytest.approx(-0.0703125 * 3 + 0.8671875 * -1 + 0.2265625 * 7 - 0.0234375 * 2, abs=1e-13)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_integer_downscale_reproduces_a_ramp_in_the_interior(s):
    # Integer shrink factors centre the (symmetric) kernel on a pixel or a half-pixel, so a ramp stays a ramp:
    # output x samples the 1-based position u = s*x + (1 - s)/2, i.e. the value u - 1 of the 0-based ramp.
    n = 60
    ramp = np.tile(np.arange(n, dtype=np.float64)[None, :], (3, 1))
    got = imresize(ramp, scale=(1, 1 / s))[0]
    x = np.arange(1, n // s + 1)
    want = s * x + 0.5 * (1 - s) - 1
    inner = slice(3, -3)
    np.testing.assert_allclose(got[inner], want[inner], atol=1e-12)
    assert not np.allclose(got[:1], want[:1])  # the edge is not a ramp: the border rule shows there


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 1 / 3.7, 0.8, 1.0, 1.5, 2.5, 4])
@pytest.mark.parametrize("border", ["symmetric", "replicate"])
def test_constant_image_stays_constant(scale, border):
    img = np.full((13, 17, 3), 137, np.uint8)
    out = imresize(img, scale=scale, border=border)
    assert out.dtype == np.uint8 and (out == 137).all()
    f = imresize(np.full((13, 17), 0.25, np.float32), scale=scale, border=border)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, 0.25, atol=1e-6)


@pytest.mark.parametrize("border", ["symmetric", "replicate"])
@pytest.mark.parametrize("kw", [dict(scale=1 / 3.7), dict(scale=0.5), dict(scale=2.5), dict(size=(7, 19)),
                                dict(scale=(0.6, 1.7)), dict(size=(31, 5))])
def test_float_matches_scalar_reference(border, kw):
    rng = np.random.default_rng(0)
    img = rng.uniform(-1, 2, (15, 11))
    (oh, ow), scales = output_size(img.shape, **kw)
    got = imresize(img, border=border, **kw)
    assert got.shape == (oh, ow)
    np.testing.assert_allclose(got, _ref_resize(img, (oh, ow), scales, border), rtol=0, atol=1e-12)


def test_uint8_rounds_half_away_from_zero():
    # Row [1, 0, 0, 1] shrunk to 2 columns: 0.546875*1 - 0.046875*1 = 0.5 exactly in both outputs.
    img = np.array([[1, 0, 0, 1]], np.uint8)
    assert imresize(img.astype(np.float64), size=(1, 2)).tolist() == [[0.5, 0.5]]
    assert imresize(img, size=(1, 2)).tolist() == [[1, 1]]  # round-half-even would give 0


def test_uint8_saturates():
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 255  # a step overshoots on both sides when upscaled with a negative-lobe kernel
    f = imresize(img.astype(np.float64), scale=2)
    assert f.min() < 0 and f.max() > 255
    u = imresize(img, scale=2)
    np.testing.assert_array_equal(u, np.clip(np.floor(f + 0.5), 0, 255).astype(np.uint8))


def test_intermediate_rounding_and_axis_order():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    h, w = img.shape
    # Smaller scale first: here columns (0.25) before rows (0.5), each pass rounded to uint8.
    cols_first = imresize(imresize(img, size=(h, w // 4)), size=(h // 2, w // 4))
    rows_first = imresize(imresize(img, size=(h // 2, w)), size=(h // 2, w // 4))
    assert not np.array_equal(cols_first, rows_first)  # so the order really is being tested
    np.testing.assert_array_equal(imresize(img, scale=(0.5, 0.25)), cols_first)
    # Equal scales: rows first, as MATLAB's stable sort leaves them.
    rows_first_eq = imresize(imresize(img, size=(h // 2, w)), size=(h // 2, w // 2))
    np.testing.assert_array_equal(imresize(img, scale=0.5), rows_first_eq)
    # Without intermediate rounding: the float result rounded once.
    once = imresize(img, scale=(0.5, 0.25), intermediate_rounding=False)
    f = imresize(img.astype(np.float64), scale=(0.5, 0.25))
    np.testing.assert_array_equal(once, np.clip(np.floor(f + 0.5), 0, 255).astype(np.uint8))
    assert not np.array_equal(once, cols_first)


def test_borders_differ_only_near_the_edge():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    a = imresize(img, scale=0.25, border="symmetric")
    b = imresize(img, scale=0.25, border="replicate")
    np.testing.assert_array_equal(a[2:-2, 2:-2], b[2:-2, 2:-2])
    assert not np.array_equal(a, b)


# ---------------------------------------------------------------- shapes and dtypes
@pytest.mark.parametrize(
    "in_hw,kw,out_hw",
    [((255, 100), dict(scale=1 / 3), (85, 34)), ((100, 77), dict(scale=1 / 3.7), (28, 21)),
     ((10, 10), dict(scale=2.5), (25, 25)), ((10, 12), dict(scale=(0.5, 2)), (5, 24)),
     ((9, 9), dict(size=(4, 20)), (4, 20)), ((7, 5), dict(scale=1), (7, 5))],
)
def test_output_shapes(in_hw, kw, out_hw):
    assert imresize(np.zeros(in_hw, np.uint8), **kw).shape == out_hw
    assert imresize(np.zeros(in_hw + (3,), np.float32), **kw).shape == out_hw + (3,)
    t = imresize(torch.zeros((2, 3) + in_hw), **kw)
    assert tuple(t.shape) == (2, 3) + out_hw


def test_scale_one_is_identity_and_dtypes_kept():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, scale=1), img)
    for dt in (np.float16, np.float32, np.float64):
        assert imresize(img.astype(dt), scale=0.5).dtype == dt
    one = imresize(img[:, :, :1], scale=0.5)
    np.testing.assert_array_equal(one[:, :, 0], imresize(img[:, :, 0], scale=0.5))


# ---------------------------------------------------------------- torch
def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


@pytest.mark.parametrize("kw", [dict(scale=0.25), dict(scale=1 / 3.7), dict(scale=3), dict(size=(20, 9))])
@pytest.mark.parametrize("border", ["symmetric", "replicate"])
def test_torch_agrees_with_numpy(kw, border):
    rng = np.random.default_rng(4)
    u8 = rng.integers(0, 256, (33, 29, 3), dtype=np.uint8)
    ref_u8 = imresize(u8, border=border, **kw)
    got_u8 = imresize(_nchw(u8), border=border, **kw)
    assert got_u8.dtype == torch.uint8
    np.testing.assert_array_equal(got_u8[0].permute(1, 2, 0).numpy(), ref_u8)

    f64 = u8.astype(np.float64) / 255
    ref = imresize(f64, border=border, **kw)
    got64 = imresize(_nchw(f64), border=border, **kw)
    assert got64.dtype == torch.float64
    np.testing.assert_array_equal(got64[0].permute(1, 2, 0).numpy(), ref)  # bit-exact

    got32 = imresize(_nchw(f64).float(), border=border, **kw)
    assert got32.dtype == torch.float32
    assert np.abs(got32[0].permute(1, 2, 0).numpy() - ref).max() < 1e-5  # far below one grey level (1/255)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_half_precision_keeps_dtype_and_accuracy(dtype):
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.uniform(0, 1, (1, 3, 40, 44)))
    ref = imresize(x, scale=1 / 3.7)
    got = imresize(x.to(dtype), scale=1 / 3.7)
    assert got.dtype == dtype
    # Only the input and output are rounded to the half format (~0.3 eps here); accumulating the taps in the
    # half format itself would cost more than 1 eps.
    tol = 0.75 * torch.finfo(dtype).eps
    assert (got.double() - ref).abs().max().item() < tol


def test_torch_batch_is_per_image():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.uniform(0, 1, (3, 2, 12, 10)))
    y = imresize(x, scale=0.5)
    for i in range(3):
        torch.testing.assert_close(y[i : i + 1], imresize(x[i : i + 1], scale=0.5), rtol=0, atol=0)


@pytest.mark.parametrize("kw", [dict(scale=0.5), dict(scale=1.5), dict(size=(3, 7))])
@pytest.mark.parametrize("border", ["symmetric", "replicate"])
def test_gradcheck(kw, border):
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, border=border, **kw), (x,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(6)
    u8 = rng.integers(0, 256, (2, 3, 40, 36), dtype=np.uint8)
    cpu = imresize(torch.from_numpy(u8), scale=1 / 3.7)
    gpu = imresize(torch.from_numpy(u8).cuda(), scale=1 / 3.7)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)
    f = torch.from_numpy(u8).float() / 255
    torch.testing.assert_close(imresize(f.cuda(), scale=2.5).cpu(), imresize(f, scale=2.5), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kw,match",
    [(dict(), "exactly one of scale= or size="), (dict(scale=0.5, size=(2, 2)), "exactly one"),
     (dict(scale=0), "positive"), (dict(scale=-2), "positive"), (dict(scale=float("nan")), "positive finite"),
     (dict(scale=float("inf")), "positive finite"), (dict(scale=True), "positive number"),
     (dict(scale="2"), "positive number"), (dict(scale=(1, 2, 3)), "pair"), (dict(size=(0, 4)), "size must be"),
     (dict(size=(2.5, 4)), "size must be"), (dict(size=(2, 3, 4)), "pair"), (dict(scale=2, border="reflect"), "border"),
     (dict(scale=2, intermediate_rounding=1), "intermediate_rounding")],
)
def test_bad_arguments(kw, match):
    with pytest.raises(SrkitError, match=match):
        imresize(np.zeros((4, 4), np.uint8), **kw)


def test_bad_inputs():
    with pytest.raises(SrkitError, match="HxW or HxWxC"):
        imresize(np.zeros((1, 4, 4, 3), np.uint8), scale=2)
    with pytest.raises(SrkitError, match="uint8 or floating"):
        imresize(np.zeros((4, 4), np.int16), scale=2)
    with pytest.raises(SrkitError, match="NCHW"):
        imresize(torch.zeros(3, 4, 4), scale=2)
    with pytest.raises(SrkitError, match="uint8 or floating"):
        imresize(torch.zeros(1, 1, 4, 4, dtype=torch.int32), scale=2)
    with pytest.raises(SrkitError, match="numpy array or a torch tensor"):
        imresize([[1, 2], [3, 4]], scale=2)
    with pytest.raises(SrkitError, match="at least 1x1"):
        imresize(np.zeros((0, 4), np.uint8), scale=2)


# ---------------------------------------------------------------- the MATLAB-made benchmark files
def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def _crop(hr: np.ndarray, s: int) -> np.ndarray:
    h, w = hr.shape[:2]
    return hr[: h - h % s, : w - w % s]


def _assert_exact(out: np.ndarray, lr: np.ndarray, what: str) -> None:
    assert out.shape == lr.shape, f"{what}: shape {out.shape} != {lr.shape}"
    diff = np.abs(out.astype(int) - lr.astype(int))
    assert diff.max() == 0, f"{what}: {(diff > 0).sum()} pixels differ, max {diff.max()}"


@pytest.mark.parametrize("dataset", ["Set5", "Set14", "BSD100"])
@pytest.mark.parametrize("s", [2, 3, 4])
def test_reproduces_lr_bicubic_replicate(shared_data, dataset, s):
    folder = shared_data / "benchmark" / dataset
    files = sorted((folder / "LR_bicubic" / f"X{s}").glob("*.png"))
    if not files:
        pytest.skip(f"no files in {folder / 'LR_bicubic' / f'X{s}'}")
    for lr_path in files:
        hr = _crop(_read(folder / "HR" / lr_path.name), s)
        _assert_exact(imresize(hr, scale=1 / s, border="replicate"), _read(lr_path), f"{dataset} x{s} {lr_path.name}")


@pytest.mark.parametrize("s,rounding", [(2, True), (3, True), (4, True), (8, False)])
def test_reproduces_swinir_symmetric(shared_data, s, rounding):
    folder = shared_data / "benchmark" / "Set5"
    files = sorted((folder / "LR_bicubic_swinir" / f"X{s}").glob("*.png"))
    if not files:
        pytest.skip(f"no files in {folder / 'LR_bicubic_swinir' / f'X{s}'}")
    for lr_path in files:
        hr = _crop(_read(folder / "HR" / lr_path.name.replace(f"x{s}.png", ".png")), s)
        lr = _read(lr_path)
        out = imresize(hr, scale=1 / s, border="symmetric", intermediate_rounding=rounding)
        _assert_exact(out, lr, f"swinir x{s} {lr_path.name}")
        # The other rounding setting does not reproduce the file: the setting is a real property of the family.
        other = imresize(hr, scale=1 / s, border="symmetric", intermediate_rounding=not rounding)
        assert not np.array_equal(other, lr)
