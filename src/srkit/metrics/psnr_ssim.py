"""PSNR and SSIM with BasicSR / MATLAB semantics.

Accepted inputs (both arguments of the same kind and shape):

* numpy arrays, HWC or HW, RGB channel order: ``uint8`` in [0, 255] or floating point in [0, 1];
* torch tensors, CHW or NCHW, RGB, floating point in [0, 1] (``uint8`` tensors in [0, 255] are accepted too).

All arithmetic is float64 on the [0, 255] scale, in this order: crop ``crop_border`` pixels from every edge,
then (if ``y_channel``) convert RGB to the BT.601 studio-swing luma Y (unrounded float), then measure.
This equals BasicSR's ``calculate_psnr`` / ``calculate_ssim`` (numpy versions) given the same image in BGR
order (BasicSR's numpy Y conversion assumes cv2's BGR arrays); ``tests/test_metrics.py`` checks the
agreement on fixtures produced by running BasicSR itself.

Return types: numpy inputs and CHW tensors give a Python ``float``; NCHW tensors give a float64 tensor of
shape (N,) with one value per image (average it yourself if you want a batch mean).
PSNR of identical images is ``inf``. Tensors are detached: these are evaluation metrics, not losses.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from srkit.errors import SrkitError

# BT.601 studio-swing luma for RGB in [0, 1], giving Y in [16, 235] (MATLAB rgb2ycbcr, BasicSR to_y_channel).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

# MATLAB SSIM (Wang et al. 2004) constants on the [0, 255] scale.
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2
_SSIM_SIZE = 11
_SSIM_SIGMA = 1.5


def _is_tensor(x: Any) -> bool:
    # A tensor can only exist if torch is imported already; do not pay torch's import for numpy use.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _gaussian_1d() -> np.ndarray:
    """Normalised 11-tap Gaussian, sigma 1.5 (the same taps as cv2.getGaussianKernel(11, 1.5))."""
    x = np.arange(_SSIM_SIZE, dtype=np.float64) - (_SSIM_SIZE - 1) / 2
    g = np.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


# ---------------------------------------------------------------------------------------------- Y conversion


def rgb_to_y(img: Any) -> Any:
    """BT.601 studio-swing luma Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]), unrounded.

    * numpy HWC with 3 channels, ``uint8`` [0, 255] -> float64 HW on the [0, 255] scale (Y in [16, 235]);
    * numpy HWC float [0, 1] -> float64 HW on the [0, 1] scale (Y in [16/255, 235/255]);
    * torch (N)CHW float [0, 1] -> tensor (N)1HW of the same dtype on the [0, 1] scale.

    The channel order is RGB. The result is never rounded (rounding Y, as KAIR does for uint8, changes PSNR).
    """
    if _is_tensor(img):
        import torch

        if img.dim() not in (3, 4) or img.shape[-3] != 3:
            raise SrkitError(f"rgb_to_y expects a (N)CHW tensor with 3 channels, got shape {tuple(img.shape)}")
        x = img.double() / 255.0 if img.dtype == torch.uint8 else img
        w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
        y = (x * w).sum(dim=-3, keepdim=True) + _Y_OFFSET
        y = y / 255.0
        return y * 255.0 if img.dtype == torch.uint8 else y
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SrkitError(f"rgb_to_y expects an HWC array with 3 channels, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return _y_255(arr.astype(np.float64))
    return _y_255(arr.astype(np.float64) * 255.0) / 255.0


def _y_255(x: np.ndarray) -> np.ndarray:
    """Y of a float64 HWC RGB array on the [0, 255] scale, returned on the [0, 255] scale, shape HW."""
    return np.dot(x / 255.0, np.array(_Y_WEIGHTS)) + _Y_OFFSET


# ---------------------------------------------------------------------------------------------- preparation


def _check_crop(crop_border: int) -> int:
    if isinstance(crop_border, bool) or int(crop_border) != crop_border or crop_border < 0:
        raise SrkitError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    return int(crop_border)


def _prepare_numpy(a: Any, b: Any, crop_border: int, y_channel: bool, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 HWC on the [0, 255] scale, cropped, optionally reduced to Y (HW1)."""
    out = []
    for img in (a, b):
        arr = np.asarray(img)
        if arr.dtype == np.uint8:
            x = arr.astype(np.float64)
        elif np.issubdtype(arr.dtype, np.floating):
            x = arr.astype(np.float64) * 255.0
        else:
            raise SrkitError(f"{what}: expected uint8 [0, 255] or float [0, 1] images, got dtype {arr.dtype}")
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise SrkitError(f"{what}: expected an HWC or HW array, got shape {arr.shape}")
        out.append(x)
    x, y = out
    c = crop_border
    if c:
        x, y = x[c:-c, c:-c], y[c:-c, c:-c]
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise SrkitError(f"{what}: crop_border={c} leaves nothing of an image of shape {np.asarray(a).shape}")
    if y_channel:
        if x.shape[2] == 3:
            x, y = _y_255(x)[..., None], _y_255(y)[..., None]
        elif x.shape[2] != 1:
            raise SrkitError(f"{what}: y_channel needs RGB (3 channels) or gray images, got {x.shape[2]} channels")
    return x, y


def _prepare_torch(a: Any, b: Any, crop_border: int, y_channel: bool, what: str):
    """Both tensors as float64 NCHW on the [0, 255] scale, cropped, optionally reduced to Y (N1HW)."""
    import torch

    out = []
    for t in (a, b):
        if t.dim() not in (3, 4):
            raise SrkitError(f"{what}: expected a CHW or NCHW tensor, got shape {tuple(t.shape)}")
        x = t.detach().to(torch.float64)
        if t.dtype != torch.uint8:
            x = x * 255.0
        out.append(x if t.dim() == 4 else x.unsqueeze(0))
    x, y = out
    c = crop_border
    if c:
        x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise SrkitError(f"{what}: crop_border={c} leaves nothing of a tensor of shape {tuple(a.shape)}")
    if y_channel:
        if x.shape[1] == 3:
            x, y = rgb_to_y(x / 255.0) * 255.0, rgb_to_y(y / 255.0) * 255.0
        elif x.shape[1] != 1:
            raise SrkitError(f"{what}: y_channel needs RGB (3 channels) or gray tensors, got {x.shape[1]} channels")
    return x, y


def _prepare(a: Any, b: Any, crop_border: int, y_channel: bool, what: str):
    crop_border = _check_crop(crop_border)
    ta, tb = _is_tensor(a), _is_tensor(b)
    if ta != tb:
        raise SrkitError(f"{what}: both images must be numpy arrays or both torch tensors, got "
                         f"{type(a).__name__} and {type(b).__name__}")
    shape_a = tuple(a.shape) if ta else np.shape(a)
    shape_b = tuple(b.shape) if tb else np.shape(b)
    if shape_a != shape_b:
        raise SrkitError(f"{what}: image shapes differ: {shape_a} vs {shape_b}")
    if ta:
        return True, a.dim() == 4, *_prepare_torch(a, b, crop_border, y_channel, what)
    return False, False, *_prepare_numpy(a, b, crop_border, y_channel, what)


# ---------------------------------------------------------------------------------------------- metrics


def psnr(a: Any, b: Any, crop_border: int = 0, y_channel: bool = False) -> Any:
    """Peak signal-to-noise ratio in dB, peak 255, MSE in float64 over all kept pixels and channels.

    See the module docstring for the accepted inputs and the return type. Identical images give ``inf``.
    """
    is_t, batched, x, y = _prepare(a, b, crop_border, y_channel, "psnr")
    if is_t:
        import torch

        mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
        # mse == 0 gives inf, as in the numpy path (BasicSR's torch version adds 1e-8 to mse instead).
        val = 10.0 * torch.log10((255.0 * 255.0) / mse)
        return val if batched else float(val[0])
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def _valid_gauss_np(a: np.ndarray, axis: int, g: np.ndarray) -> np.ndarray:
    """'Valid' correlation with the symmetric 11-tap Gaussian ``g`` along ``axis``.

    Shifted sums, pairing the taps g[i] = g[10 - i] so each pair costs one multiply; in-place on one
    temporary. Faster than a 2-D 11x11 filter (22 instead of 121 taps per pixel) and than numpy convolve.
    """
    k, c = _SSIM_SIZE, _SSIM_SIZE // 2
    n = a.shape[axis] - k + 1
    idx = [slice(None)] * a.ndim

    def sl(i: int) -> np.ndarray:
        idx[axis] = slice(i, i + n)
        return a[tuple(idx)]

    out = sl(c) * g[c]
    tmp = np.empty_like(out)
    for i in range(c):
        np.add(sl(i), sl(k - 1 - i), out=tmp)
        tmp *= g[i]
        out += tmp
    return out


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two float64 HWC arrays in [0, 255], 'valid' region, averaged over channels."""
    g = _gaussian_1d()
    means = []
    for ch in range(x.shape[2]):  # one channel at a time bounds the memory of the five stacked maps
        a, b = x[..., ch], y[..., ch]
        s = np.stack([a, b, a * a, b * b, a * b])
        f = _valid_gauss_np(_valid_gauss_np(s, 1, g), 2, g)
        means.append(_ssim_map(*f).mean())
    return float(np.mean(means))


def _ssim_map(mu1, mu2, e11, e22, e12):
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    num = (2 * mu12 + _SSIM_C1) * (2 * s12 + _SSIM_C2)
    den = (mu1_sq + mu2_sq + _SSIM_C1) * (s1 + s2 + _SSIM_C2)
    return num / den


def _valid_gauss_torch(a, dim: int, g: list[float]):
    """Torch twin of ``_valid_gauss_np`` (the same paired shifted sums; any device, float64)."""
    import torch

    k, c = _SSIM_SIZE, _SSIM_SIZE // 2
    n = a.shape[dim] - k + 1
    out = a.narrow(dim, c, n) * g[c]
    tmp = torch.empty_like(out)
    for i in range(c):
        torch.add(a.narrow(dim, i, n), a.narrow(dim, k - 1 - i, n), out=tmp)
        out.add_(tmp, alpha=g[i])
    return out


def _ssim_torch(x, y):
    """Per-image mean SSIM of float64 NCHW tensors in [0, 255]; returns shape (N,).

    Separable shifted sums rather than conv2d: float64 conv2d is several times slower on CPU.
    """
    import torch

    g = _gaussian_1d().tolist()
    means = []
    for ch in range(x.shape[1]):  # per channel: smaller temporaries, faster on CPU
        a, b = x[:, ch], y[:, ch]
        s = torch.stack([a, b, a * a, b * b, a * b])  # 5, N, H, W
        f = _valid_gauss_torch(_valid_gauss_torch(s, 2, g), 3, g)
        means.append(_ssim_map(*f.unbind(0)).mean(dim=(1, 2)))
    return torch.stack(means, 1).mean(1)


def ssim(a: Any, b: Any, crop_border: int = 0, y_channel: bool = False) -> Any:
    """Structural similarity, the MATLAB algorithm of Wang et al. (as BasicSR's ``calculate_ssim``).

    11x11 Gaussian window, sigma 1.5, C1 = (0.01*255)^2, C2 = (0.03*255)^2, computed per channel on the
    [0, 255] scale over the 'valid' region (no padding) and averaged over the channels. Needs at least
    11x11 pixels after cropping. The Gaussian window is applied separably (two 11-tap passes), which is
    the same filter as the 2-D window to rounding (~1e-13). See the module docstring for inputs/return type.
    """
    is_t, batched, x, y = _prepare(a, b, crop_border, y_channel, "ssim")
    hw = tuple(x.shape[-2:]) if is_t else x.shape[:2]
    if min(hw) < _SSIM_SIZE:
        raise SrkitError(f"ssim: needs at least {_SSIM_SIZE}x{_SSIM_SIZE} pixels after cropping "
                         f"{crop_border} px, got {hw[0]}x{hw[1]}")
    if is_t:
        val = _ssim_torch(x, y)
        return val if batched else float(val[0])
    return _ssim_numpy(x, y)
