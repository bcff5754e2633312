"""Upscaling straight to a PNG file in horizontal strips, for outputs too large to hold in memory.

A continuous-scale network with an ``iter_rows`` method (srkit's LIIF) can produce its output top to bottom:
the encoder and the latent precomputation run once on the LR image, the output pixels are queried in
raster-order chunks, and every finished strip of rows is converted to 8/16-bit samples and handed to a
:class:`srkit.data.io.PngStreamWriter`, which filters and compresses it at once. Memory therefore follows
the budget (one query chunk and one strip) plus the LR-sized latent grid, not the output size: a 3840x3840
or 7680x7680 result never exists in memory as a whole.

The values written are exactly those of the in-memory path (:meth:`Upscaler.upscale` followed by
``write_image``) when the query chunks are the same: same network calls in the same order, the same
gray averaging, clamping and rounding, and the alpha channel resized with MATLAB bicubic one strip at a
time with the same per-axis taps and float operations as :func:`srkit.data.resize.imresize`.

When even the encoder's activations and the latent grid of the whole LR image would exceed a quarter of the
budget, they are computed in bands of LR rows (``LIIF.latent_band``, with the encoder's receptive field of
context around each band), so memory follows the budget for large inputs too; the values then agree with
the in-memory path up to float rounding.

:func:`should_stream` decides from the memory budget (the Upscaler's ``max_memory``, else half the available
RAM, :func:`default_memory_budget` of the CPU) whether the in-memory path would exceed it.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
import numpy as np
import torch

from ..errors import SrkitError
from .upscaler import Upscaler, _split, _to_numpy, default_memory_budget

IN_MEMORY_BYTES_PER_PIXEL = 48
"""Bytes per output pixel the in-memory path holds at its peak (float32 result, its quantised copies and the
PNG encoder's filter temporaries), a conservative estimate used by :func:`should_stream`."""

_STRIP_BYTES_PER_SAMPLE = 40
"""Bytes per output sample (pixel x channel) of one strip while it is converted, filtered and compressed."""

_MIN_CHUNK = 16384
"""Smallest query chunk used when streaming (about 54 MB for EDSR-baseline-LIIF): small budgets do not fall
into tiny-matrix code paths, and outputs up to this many pixels are one chunk in both paths."""

_PROBE = 32
"""Side of the LR probe on which the encoder + latent memory per LR pixel is measured."""

_LATENT_BPP: "weakref.WeakKeyDictionary[torch.nn.Module, float]" = weakref.WeakKeyDictionary()
"""Measured encoder + latent bytes per LR pixel, per network (measured once)."""


def can_stream(up: Upscaler) -> bool:
    """True when ``up``'s network can render strips (a continuous-scale network with ``iter_rows``)."""
    return (up.descriptor.scale_range is not None and not up.descriptor.needs_ref
            and callable(getattr(up.net, "iter_rows", None)))


def memory_budget(up: Upscaler) -> int:
    """The budget in bytes streaming works within: the Upscaler's ``max_memory``, else half the available RAM.

    The result lives in host memory whatever the device, so the default is the CPU's budget.
    """
    return up.max_memory if up.max_memory is not None else default_memory_budget(torch.device("cpu"))


def should_stream(up: Upscaler, out_hw: tuple[int, int], budget: int | None = None) -> bool:
    """Whether the in-memory result of size ``out_hw`` (about :data:`IN_MEMORY_BYTES_PER_PIXEL` bytes per
    pixel) would exceed ``budget`` (default :func:`memory_budget`) and the network can stream."""
    if not can_stream(up):
        return False
    budget = memory_budget(up) if budget is None else budget
    return out_hw[0] * out_hw[1] * IN_MEMORY_BYTES_PER_PIXEL > budget


def latent_bytes_per_pixel(up: Upscaler) -> float:
    """Peak bytes per LR pixel of the encoder and the latent precomputation (measured once on a small probe)."""
    cached = _LATENT_BPP.get(up.net)
    if cached is None:
        from .tiling import measure_peak_bytes

        net = up.net
        x = torch.rand(1, 3, _PROBE, _PROBE, generator=torch.Generator().manual_seed(0)).to(up.device, up.dtype)
        with torch.inference_mode():
            peak = measure_peak_bytes(lambda t, _hw: net.precompute(net.encode(t)).hidden, x, (_PROBE, _PROBE))
        cached = 1.25 * peak / (_PROBE * _PROBE)  # the tiling module's safety factor
        _LATENT_BPP[up.net] = cached
    return cached


def plan_band(up: Upscaler, in_hw: tuple[int, int], budget: int | None = None) -> int | None:
    """LR rows per latent band so that the encoder + latents stay within a quarter of ``budget``; None when the
    whole LR image fits (then the latents are computed once, exactly as the in-memory path)."""
    budget = memory_budget(up) if budget is None else int(budget)
    per_row = in_hw[1] * latent_bytes_per_pixel(up)
    if in_hw[0] * per_row <= budget // 4:
        return None
    context = 2 * (int(getattr(up.net, "encoder_context", 0)) + 1)  # slab rows beyond the band
    return max(int((budget // 4) // per_row) - context, 8)


def plan_strips(up: Upscaler, out_hw: tuple[int, int], channels: int, budget: int | None = None) -> tuple[int, int]:
    """(query chunk, rows per strip) for streaming ``out_hw`` within ``budget`` bytes.

    A quarter of the budget goes to the query chunk (at most the network's default working memory, so that a
    generous budget gives the same chunks as the in-memory path) and a quarter to the strip.
    """
    budget = memory_budget(up) if budget is None else int(budget)
    net = up.net
    from ..archs.liif import DEFAULT_MEMORY_BUDGET

    default_chunk = net.chunk_size_for(None)
    chunk = max(net.chunk_size_for(min(DEFAULT_MEMORY_BUDGET, budget // 4)), min(default_chunk, _MIN_CHUNK))
    per_row = out_hw[1] * max(channels, 3) * _STRIP_BYTES_PER_SAMPLE
    rows = max(1, min(out_hw[0], (budget // 4) // per_row))
    return chunk, rows


class _AlphaRows:
    """Rows ``y0:y1`` of ``imresize(alpha, size=out_hw)`` (MATLAB bicubic, symmetric border), strip by strip.

    Same per-axis taps, pass order and float32 operations as :func:`srkit.data.resize.imresize` on a tensor,
    so every strip equals the corresponding rows of the whole resize bit for bit. A pass along the width
    that comes first is done once for all LR rows (LR height x output width, small).
    """

    def __init__(self, alpha: torch.Tensor, out_hw: tuple[int, int], border: str = "symmetric") -> None:
        from ..data.resize import output_size, resize_weights

        self.out_hw = out_hw
        in_hw = (alpha.shape[2], alpha.shape[3])
        _, scales = output_size(in_hw, size=out_hw)
        order = sorted((0, 1), key=lambda d: scales[d])  # imresize's order: smaller scale first, rows on a tie
        self.rows_first = order[0] == 0
        self.w_h, self.i_h = (torch.tensor(np.array(a)) for a in resize_weights(in_hw[0], out_hw[0], scales[0], border))
        self.w_h = self.w_h.float()
        width_in = in_hw[1]
        self.w_w, self.i_w = (torch.tensor(np.array(a)) for a in resize_weights(width_in, out_hw[1], scales[1], border))
        self.w_w = self.w_w.float()
        x = alpha.float()
        self.src = x if self.rows_first else self._pass(x, 1, self.w_w, self.i_w)

    @staticmethod
    def _pass(x: torch.Tensor, axis: int, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        from ..data.resize import apply_taps

        return apply_taps(x, axis, w, idx)

    def __call__(self, y0: int, y1: int) -> torch.Tensor:
        rows = self._pass(self.src, 0, self.w_h[y0:y1], self.i_h[y0:y1])
        return self._pass(rows, 1, self.w_w, self.i_w) if self.rows_first else rows


def upscale_to_png(
    up: Upscaler,
    image: np.ndarray,
    path: str | os.PathLike[str],
    *,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    icc_profile: bytes | None = None,
    budget: int | None = None,
    chunk_size: int | None = None,
    rows_per_strip: int | None = None,
    band_rows: int | None | str = "auto",
    compress_level: int = 6,
) -> Path:
    """Upscale ``image`` and write the result to the PNG ``path`` strip by strip (atomically).

    Args:
        up: an Upscaler whose network can stream (:func:`can_stream`).
        image: HWC (or HW) numpy array, uint8 or uint16, 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)
            channels. Gray + alpha is written as RGBA with equal colour channels.
        scale, size: as :meth:`Upscaler.upscale` (size is (height, width)).
        budget: bytes to work within (default :func:`memory_budget`); sets the query chunk and strip height.
        chunk_size, rows_per_strip: override the planned values.
        band_rows: LR rows per latent band (``"auto"``: :func:`plan_band`, None: the whole LR image at once).

    Returns the path. The result equals ``write_image(path, up.upscale(image, ...))`` pixel for pixel when
    the query chunks agree and the latents are not banded (always for outputs up to 16384 pixels and LR images
    whose latents fit a quarter of the budget); banded latents agree up to float rounding.
    """
    from ..data.io import PngStreamWriter

    if not can_stream(up):
        raise SrkitError(f"{up.name} cannot write its output in strips (only continuous-scale models such as "
                         f"LIIF can); give it more memory (--max-memory) instead")
    a = image[:, :, None] if image.ndim == 2 else image
    if a.ndim != 3 or a.dtype not in (np.uint8, np.uint16):
        raise SrkitError(f"streamed upscaling takes HxWxC uint8/uint16 arrays, got {image.shape} {image.dtype}")
    h, w, c = a.shape
    out_hw = up.output_size(h, w, scale, size)
    up._native_scale(h, w, out_hw)  # refuses factors beyond the network's range, as upscale() does
    from ..data.io import to_tensor

    colour, alpha, gray = _split(to_tensor(a))
    rgb = colour.expand(-1, 3, -1, -1) if gray else colour
    out_c = 4 if alpha is not None else (1 if gray else 3)
    chunk, rows = plan_strips(up, out_hw, out_c, budget)
    chunk = chunk_size or chunk
    rows = rows_per_strip or rows
    if band_rows == "auto":
        band_rows = plan_band(up, (h, w), budget)
    alpha_rows = _AlphaRows(alpha, out_hw) if alpha is not None else None
    with PngStreamWriter(path, out_hw[0], out_hw[1], out_c, a.dtype, icc_profile=icc_profile,
                         compress_level=compress_level) as writer, torch.inference_mode():
        x = rgb.to(device=up.device, dtype=up.dtype)
        for y0, strip in up.net.iter_rows(x, out_hw, rows_per_strip=rows, chunk_size=chunk, band_rows=band_rows):
            sr = strip.to(device="cpu", dtype=torch.float32)
            if gray:
                sr = sr.mean(dim=1, keepdim=True)
            sr = sr.clamp_(0, 1)
            if alpha_rows is not None:
                sr = torch.cat([sr, alpha_rows(y0, y0 + sr.shape[2]).clamp_(0, 1)], dim=1)
            arr = _to_numpy(sr[0], a.dtype)
            if gray and alpha is not None:
                arr = np.ascontiguousarray(arr[..., [0, 0, 0, 1]])
            writer.write_rows(arr)
    return Path(path)


def describe_plan(up: Upscaler, in_hw: tuple[int, int], out_hw: tuple[int, int], budget: int | None = None) -> str:
    """One line for messages: the output size, the in-memory estimate and the strip plan."""
    budget = memory_budget(up) if budget is None else budget
    chunk, rows = plan_strips(up, out_hw, 3, budget)
    band = plan_band(up, in_hw, budget)
    est = out_hw[0] * out_hw[1] * IN_MEMORY_BYTES_PER_PIXEL
    latents = "latents of the whole input" if band is None else f"latents in bands of {band} input rows"
    return (f"{in_hw[1]}x{in_hw[0]} -> {out_hw[1]}x{out_hw[0]}: about {est / 2**30:.2f} GiB in memory exceeds "
            f"the budget of {budget / 2**30:.2f} GiB; writing {rows}-row strips ({chunk} queries per chunk, "
            f"{latents})")
