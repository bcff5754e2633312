"""MATLAB-exact bicubic ``imresize`` for numpy images and torch tensors.

Reproduces ``imresize(A, scale, 'bicubic')`` of MATLAB's Image Processing Toolbox, the function that made
nearly every bicubic super-resolution benchmark file:

* cubic convolution kernel with a = -0.5, 4 pixels wide;
* when shrinking (scale < 1) the kernel is stretched by 1/scale (antialiasing), so it is 4/scale wide and its
  height is multiplied by scale;
* output pixel x (1-based) samples input position u = x/scale + 0.5*(1 - 1/scale); the taps are
  floor(u - width/2) + 0 .. ceil(width) + 1, weighted by the kernel and normalised to sum 1 per output pixel;
* out-of-range taps are mirrored (``border="symmetric"``, MATLAB's behaviour for many years) or clamped
  (``border="replicate"``, the behaviour of the older MATLAB that made the SelfExSR/LapSRN-era files);
* the two axes are resized one after the other, the axis with the smaller scale first (MATLAB sorts the
  scales stably, so rows go first when both are equal);
* for uint8 input, MATLAB stores the first pass in uint8 (round half away from zero, saturate to 0..255)
  before the second pass; ``intermediate_rounding=False`` keeps it in floating point instead.

Every output pixel is accumulated tap by tap, in tap order, in float64 for numpy and uint8 input, so the
result matches MATLAB's bit for bit (verified on the Set5/Set14/BSD100 benchmark files). Per-axis weights and
indices are computed once per (input length, output length, scale, border) and cached.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Real
from typing import TYPE_CHECKING, Any, Sequence, Tuple, Union

import numpy as np

from srkit.errors import SrkitError

if TYPE_CHECKING:  # torch is optional for the numpy path; import it only when a tensor arrives
    import torch

__all__ = ["imresize", "output_size", "resize_weights"]

_BORDERS = ("symmetric", "replicate")
_KERNEL_WIDTH = 4.0  # the cubic kernel's support, in input pixels, before antialias stretching

ScaleArg = Union[float, Tuple[float, float], Sequence[float], None]
SizeArg = Union[Tuple[int, int], Sequence[int], None]


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, evaluated in float64 the way MATLAB writes it."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


@lru_cache(maxsize=256)
def _taps(in_len: int, out_len: int, scale: float, border: str) -> Tuple[np.ndarray, np.ndarray]:
    # MATLAB works with 1-based positions; u is the input position each output pixel samples.
    antialias = scale < 1.0
    width = _KERNEL_WIDTH / scale if antialias else _KERNEL_WIDTH
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    n_taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(n_taps, dtype=np.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if antialias else _cubic(dist)
    # Normalise with a left-to-right sum (MATLAB's sum order), not numpy's pairwise sum.
    total = w[:, 0].copy()
    for k in range(1, n_taps):
        total += w[:, k]
    w = w / total[:, None]
    idx = idx.astype(np.int64) - 1  # to 0-based
    if border == "symmetric":
        # Mirror with the edge pixel repeated: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
        period = 2 * in_len
        m = np.mod(idx, period)
        idx = np.where(m < in_len, m, period - 1 - m)
    else:
        idx = np.clip(idx, 0, in_len - 1)
    # Drop tap columns whose weight is zero for every output pixel (MATLAB does the same; saves work).
    keep = np.any(w != 0, axis=0)
    w = np.ascontiguousarray(w[:, keep])
    idx = np.ascontiguousarray(idx[:, keep])
    w.setflags(write=False)
    idx.setflags(write=False)
    return w, idx


def resize_weights(in_len: int, out_len: int, scale: float, border: str = "symmetric") -> Tuple[np.ndarray, np.ndarray]:
    """Per-axis resampling taps: ``(weights, indices)``, both of shape (out_len, n_taps).

    Output pixel i along the axis is ``sum_k weights[i, k] * input[indices[i, k]]`` (0-based indices, already
    mirrored or clamped into range). Weights are float64 and each row sums to 1. The arrays are cached and
    read-only.
    """
    if border not in _BORDERS:
        raise SrkitError(f"imresize: border must be one of {_BORDERS}, got {border!r}")
    return _taps(int(in_len), int(out_len), float(scale), border)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise SrkitError(f"imresize: {name} must be a positive number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise SrkitError(f"imresize: {name} must be a positive finite number, got {value!r}")
    return v


def _pair(name: str, value: Any) -> Tuple[Any, Any]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise SrkitError(f"imresize: {name} must be one value or a pair (height, width), got {value!r}")
        return value[0], value[1]
    if isinstance(value, np.ndarray) and value.shape == (2,):
        return value[0].item(), value[1].item()
    return value, value


def output_size(
    in_hw: Tuple[int, int], scale: ScaleArg = None, size: SizeArg = None
) -> Tuple[Tuple[int, int], Tuple[float, float]]:
    """``((out_h, out_w), (scale_h, scale_w))`` as MATLAB derives them.

    With ``scale``: out = ceil(in * scale) and the given scale drives the kernel. With ``size``:
    scale = out / in per axis. Exactly one of the two must be given.
    """
    if (scale is None) == (size is None):
        raise SrkitError("imresize: give exactly one of scale= or size=")
    in_h, in_w = int(in_hw[0]), int(in_hw[1])
    if in_h < 1 or in_w < 1:
        raise SrkitError(f"imresize: input must be at least 1x1 pixels, got {in_h}x{in_w}")
    if scale is not None:
        sh, sw = (_check_positive("scale", s) for s in _pair("scale", scale))
        out = (int(math.ceil(in_h * sh)), int(math.ceil(in_w * sw)))
        return out, (sh, sw)
    oh, ow = _pair("size", size)
    for v in (oh, ow):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SrkitError(f"imresize: size must be positive integers (height, width), got {size!r}")
    oh, ow = int(oh), int(ow)
    return (oh, ow), (oh / in_h, ow / in_w)


def _round_uint8_np(x: np.ndarray) -> np.ndarray:
    # MATLAB's double -> uint8: round half away from zero, saturate. floor(x + 0.5) would misround values just
    # below .5 (x + 0.5 rounds up in float), so test the fractional part exactly instead. Negatives clip to 0.
    f = np.floor(x)
    r = f + ((x - f) >= 0.5)
    return np.clip(r, 0, 255)


def _resize_axis_np(x: np.ndarray, axis: int, w: np.ndarray, idx: np.ndarray) -> np.ndarray:
    # Gather whole rows along a leading axis: contiguous copies are far cheaper than a strided gather along W.
    if axis != 0:
        x = np.ascontiguousarray(np.moveaxis(x, axis, 0))
    shape = (w.shape[0],) + (1,) * (x.ndim - 1)
    out = None
    for k in range(w.shape[1]):  # loop over taps (a handful), each a vectorised gather + multiply-add
        term = x[idx[:, k]]
        term *= w[:, k].reshape(shape)
        if out is None:
            out = term
        else:
            out += term
    if axis != 0:
        out = np.ascontiguousarray(np.moveaxis(out, 0, axis))
    return out


def _plan(in_hw: Tuple[int, int], scale: ScaleArg, size: SizeArg, border: str):
    if not isinstance(border, str) or border not in _BORDERS:
        raise SrkitError(f"imresize: border must be one of {_BORDERS}, got {border!r}")
    out_hw, scales = output_size(in_hw, scale, size)
    order = sorted((0, 1), key=lambda d: scales[d])  # stable: rows first on a tie, as MATLAB's sort
    steps = []
    cur = list(in_hw)
    for d in order:
        w, idx = _taps(int(cur[d]), out_hw[d], scales[d], border)
        steps.append((d, w, idx))
        cur[d] = out_hw[d]
    return steps


def _imresize_np(image: np.ndarray, scale: ScaleArg, size: SizeArg, border: str, rounding: bool) -> np.ndarray:
    if image.ndim not in (2, 3):
        raise SrkitError(f"imresize: numpy images must be HxW or HxWxC, got shape {image.shape}")
    is_u8 = image.dtype == np.uint8
    if not (is_u8 or np.issubdtype(image.dtype, np.floating)):
        raise SrkitError(f"imresize: numpy images must be uint8 or floating point, got dtype {image.dtype}")
    steps = _plan(image.shape[:2], scale, size, border)
    x = image.astype(np.float64)
    for i, (axis, w, idx) in enumerate(steps):
        x = _resize_axis_np(x, axis, w, idx)
        if is_u8 and (rounding or i == len(steps) - 1):
            x = _round_uint8_np(x)
    return x.astype(image.dtype)


_TORCH_TAPS: "dict[tuple, tuple]" = {}


def apply_taps(x: torch.Tensor, axis: int, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """One separable resize pass over NCHW ``x``: output line i along ``axis`` (0 = H, 1 = W) is
    ``sum_k w[i, k] * x[idx[i, k]]`` (``w``, ``idx``: (out_len, taps), from :func:`resize_weights`)."""
    # Always gather along dim 2 (whole contiguous rows); the W pass works on a transposed copy.
    if axis == 1:
        x = x.transpose(2, 3).contiguous()
    col = w.reshape(w.shape[0], w.shape[1], 1)
    out = None
    for k in range(w.shape[1]):
        term = x.index_select(2, idx[:, k]) * col[:, k]
        out = term if out is None else out + term
    return out.transpose(2, 3).contiguous() if axis == 1 else out


def _torch_taps(w_np: np.ndarray, idx_np: np.ndarray, device: "torch.device", dtype: "torch.dtype"):
    # The numpy taps are cached and shared, so their ids are stable keys; keep device copies next to them.
    import torch

    key = (id(w_np), id(idx_np), str(device), dtype)
    hit = _TORCH_TAPS.get(key)
    if hit is None or hit[0] is not w_np:
        if len(_TORCH_TAPS) > 256:
            _TORCH_TAPS.clear()
        w = torch.tensor(np.array(w_np), dtype=dtype, device=device)
        idx = torch.tensor(np.array(idx_np), device=device)
        hit = (w_np, w, idx)
        _TORCH_TAPS[key] = hit
    return hit[1], hit[2]


def _imresize_torch(t: "torch.Tensor", scale: ScaleArg, size: SizeArg, border: str, rounding: bool) -> "torch.Tensor":
    import torch

    if t.dim() != 4:
        raise SrkitError(f"imresize: tensors must be NCHW (4-D), got shape {tuple(t.shape)}")
    is_u8 = t.dtype == torch.uint8
    if not (is_u8 or t.is_floating_point()):
        raise SrkitError(f"imresize: tensors must be uint8 or floating point, got dtype {t.dtype}")
    steps = _plan((t.shape[2], t.shape[3]), scale, size, border)
    # uint8 goes through float64 so the result is MATLAB's, bit for bit; float32/float64 tensors stay in their
    # dtype; half precision accumulates in float32 (18+ taps summed in float16 would lose ~1e-2) and casts back.
    if is_u8:
        work = torch.float64
    elif t.dtype in (torch.float16, torch.bfloat16):
        work = torch.float32
    else:
        work = t.dtype
    x = t.to(work)
    for i, (axis, w_np, idx_np) in enumerate(steps):
        w, idx = _torch_taps(w_np, idx_np, t.device, work)
        x = apply_taps(x, axis, w, idx)
        if is_u8 and (rounding or i == len(steps) - 1):
            f = torch.floor(x)
            x = (f + ((x - f) >= 0.5).to(work)).clamp_(0, 255)
    return x.to(t.dtype)


def imresize(
    image: Union[np.ndarray, "torch.Tensor"],
    scale: ScaleArg = None,
    size: SizeArg = None,
    border: str = "symmetric",
    intermediate_rounding: bool = True,
) -> Union[np.ndarray, "torch.Tensor"]:
    """Resize like MATLAB's ``imresize(image, scale, 'bicubic')`` (antialiased when shrinking).

    Args:
        image: numpy array HxW or HxWxC (uint8 in 0..255, or float in any range), or torch tensor NCHW
            (float of any dtype, or uint8), on any device. Channels are resized independently.
        scale: one positive number or a pair (scale_h, scale_w). Output size is ceil(in * scale).
            Non-integer scales such as 1/3.7 are fine.
        size: output (height, width). Give exactly one of ``scale`` and ``size``.
        border: ``"symmetric"`` mirrors out-of-range taps (current MATLAB); ``"replicate"`` clamps them (the
            older MATLAB that produced the classic SelfExSR ``LR_bicubic`` files).
        intermediate_rounding: for uint8 input, round the first pass to uint8 as MATLAB does. ``False`` keeps
            it in floating point (only the final result is rounded). Ignored for float input.

    Returns:
        The resized image, same kind and dtype as the input (uint8 in -> uint8 out, rounded half away from
        zero and saturated; float in -> float out, not clipped). numpy computes in float64; torch computes in
        the tensor's float dtype (float64 for uint8 tensors, float32 for float16/bfloat16 ones) and is
        differentiable for float tensors.
    """
    if not isinstance(intermediate_rounding, bool):
        raise SrkitError(f"imresize: intermediate_rounding must be True or False, got {intermediate_rounding!r}")
    if isinstance(image, np.ndarray):
        return _imresize_np(image, scale, size, border, intermediate_rounding)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of srkit
        torch = None
    if torch is not None and isinstance(image, torch.Tensor):
        return _imresize_torch(image, scale, size, border, intermediate_rounding)
    raise SrkitError(f"imresize: image must be a numpy array or a torch tensor, got {type(image).__name__}")
