"""PIL-compatible bicubic resampling (``Image.resize(..., Image.BICUBIC)``), for the methods whose official code
resizes with Pillow: MASA makes its Ref-down on float images, Cross-MPI downsamples uint8 images.

Pillow centres output pixel i at input position ``(i + 0.5) * in / out``, widens Keys' cubic (a = -0.5) by
``in / out`` when shrinking, keeps only the taps inside the image and renormalises them to sum 1 (no mirroring or
clamping). On 8-bit images it then rounds the coefficients to fixed point with 22 fractional bits and runs a
horizontal pass (rounded and clipped to uint8) before the vertical one.
"""

from __future__ import annotations

import torch

_PRECISION_BITS = 32 - 8 - 2
"""Fractional bits of Pillow's 8-bit resampling coefficients."""


def _pil_cubic(x: float) -> float:
    # Keys' cubic with a = -0.5, the kernel of PIL's BICUBIC filter.
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def pil_bicubic_matrix(in_len: int, out_len: int) -> torch.Tensor:
    """(out_len, in_len) float64 matrix of PIL's bicubic resampling along one axis.

    PIL centres output pixel i at input position ``(i + 0.5) * in/out``, widens the kernel by ``in/out``
    when shrinking (antialiasing), keeps only the taps inside the image and renormalises them to sum 1
    (no mirroring or clamping at the border).
    """
    scale = in_len / out_len
    fscale = max(scale, 1.0)
    support = 2.0 * fscale
    m = torch.zeros(out_len, in_len, dtype=torch.float64)
    for i in range(out_len):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), in_len)
        w = [_pil_cubic((x - centre + 0.5) / fscale) for x in range(lo, hi)]
        total = sum(w)
        if total != 0.0:
            w = [v / total for v in w]
        m[i, lo:hi] = torch.tensor(w, dtype=torch.float64)
    return m


def pil_bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, C, H, W) float images to ``size`` = (h, w) as PIL's ``Image.resize(..., BICUBIC)`` does on
    float ('F' mode) images: separable, computed in float64, returned in ``x``'s dtype. No clamping."""
    h, w = size
    my = pil_bicubic_matrix(x.shape[-2], h).to(x.device)
    mx = pil_bicubic_matrix(x.shape[-1], w).to(x.device)
    y = torch.matmul(my, torch.matmul(x.double(), mx.t()))
    return y.to(x.dtype)


def pil_fixed_point_matrix(in_len: int, out_len: int) -> torch.Tensor:
    """(out_len, in_len) int64 matrix of Pillow's 8-bit bicubic coefficients along one axis: the float weights
    of :func:`pil_bicubic_matrix` scaled to 22 fractional bits and rounded half away from zero (C's ``(int)``
    cast after adding +-0.5)."""
    v = pil_bicubic_matrix(in_len, out_len) * float(1 << _PRECISION_BITS)
    return torch.where(v < 0, v - 0.5, v + 0.5).trunc().to(torch.int64)


def _pil_pass(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    # x: (..., L) integers 0..255 along the last axis; m: (out, L) fixed-point coefficients. float64 holds
    # every partial sum exactly (|sum| < 2^53), and unlike int64 matmul it runs on GPUs too.
    acc = torch.matmul(x.double(), m.t().double().to(x.device)) + float(1 << (_PRECISION_BITS - 1))
    return torch.floor(acc / float(1 << _PRECISION_BITS)).clamp_(0, 255)


def pil_bicubic_resize_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``PIL.Image.resize((w, h), Image.BICUBIC)`` of (N, C, H, W) uint8-valued images (any integer or
    float dtype holding integers 0..255), bit-exact; returns int64 values 0..255 of shape (N, C, h, w).

    The fixed-point sums are computed exactly (integers in float64), so the result does not depend on the
    device or on float rounding."""
    h, w = size
    xi = x.double()
    hi, wi = xi.shape[-2:]
    if w != wi:
        xi = _pil_pass(xi, pil_fixed_point_matrix(wi, w))
    if h != hi:
        xi = _pil_pass(xi.transpose(-1, -2), pil_fixed_point_matrix(hi, h)).transpose(-1, -2)
    return xi.to(torch.int64)
