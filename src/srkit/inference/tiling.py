"""Tiled, memory-bounded inference.

The low-resolution image stays on the CPU. It is cut into overlapping tiles; each tile alone is moved to the
device, run through the network, and its output is brought back and accumulated, with blending weights, into
a float32 buffer on the CPU. Only one tile's activations ever live on the device.

Overlap and blending
--------------------
Two neighbouring tiles share ``overlap`` LR pixels. Within that shared band the first ``margin`` pixels next to
either tile's cut edge are *context only*: a convolutional network sees zero padding there instead of the true
neighbours, so the output of those pixels is wrong and gets weight 0. Between the two margins the weight of
one tile ramps linearly down while the other's ramps up (the weights sum to 1 at every pixel), which hides any
residual seam from networks whose effective context exceeds ``margin``. With ``margin`` at least the network's
receptive field, every output pixel is taken only from tiles in which it had its full context, so the tiled
result equals the untiled one up to float rounding (``tests/test_tiling.py`` checks this). Hence
``overlap = 2 * margin + ramp``; a smaller overlap falls back to a hard cut in the middle of the band.

Tile positions along an axis are ``0, stride, 2 * stride, ...`` with ``stride = tile - overlap``, and the last
tile is aligned to the image edge. All tiles therefore have the same size (one compiled/cached shape on the
device), and a tile is smaller than ``tile`` only when the whole image is.

Memory budget
-------------
:func:`measure_bytes_per_pixel` runs the network once on a small probe tile (64 x 64 LR pixels) and records the
peak of the bytes held at once by the tile and the tensors its modules return, each followed until it is freed
(a global forward hook; on CUDA also ``torch.cuda.max_memory_allocated``). Dividing by the probe's pixel count
and multiplying by a safety factor of 1.25 gives bytes per LR pixel; :func:`tile_for_budget` turns a budget in bytes into the largest tile whose
working set fits. The budget covers the device working set of one tile (activations, the tile and its output)
plus the weights; it does not count the full-size CPU input and output buffers, which any method needs
(about ``4 * C`` bytes per output pixel for the float32 accumulator).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import register_module_forward_hook

from ..errors import SrkitError

TileFn = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]
"""``fn(x, out_hw)``: ``x`` is a padded tile on the device (N, C, h, w); ``out_hw`` the output size expected for
that padded tile. Returns (N, C_out, >= out_hw) on any device."""

# Phrases in the RuntimeError messages that allocators raise when they run out of memory.
_OOM_PHRASES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_oom(exc: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` and for RuntimeErrors whose message says memory ran out."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError):
        msg = str(exc).lower()
        return any(p in msg for p in _OOM_PHRASES)
    return False


class TilingOutOfMemoryError(SrkitError):
    """Raised when even the smallest allowed tile does not fit in the device's memory."""


@dataclass(frozen=True)
class TilePlan:
    """How one image is cut: tile size, overlap and context margin, all in LR pixels."""

    tile: tuple[int, int]
    """(height, width) of every tile fed to the network (before padding to ``multiple_of``)."""
    overlap: int
    """LR pixels shared by neighbouring tiles."""
    margin: int
    """LR pixels next to a cut edge that serve only as context (weight 0); at least the receptive field."""


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared pixels.

    The stride is ``tile - overlap``; the last tile is aligned to the end. One tile (start 0) when
    ``tile >= length``.
    """
    if tile >= length:
        return [0]
    if overlap >= tile:
        raise SrkitError(f"tile {tile} must be larger than the overlap {overlap}")
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def axis_weights(
    starts: Sequence[int], tile: int, length: int, out_length: int, margin: int, overlap: int
) -> list[tuple[int, int, torch.Tensor]]:
    """Blending weights along one axis, in output coordinates.

    Returns, per tile, ``(out_start, out_end, weight)`` with ``weight`` a float32 vector of length
    ``out_end - out_start``. Consecutive handover zones are disjoint and ordered, so the weights of all tiles
    sum to 1 at every output position.
    """
    scale = out_length / length
    bounds = [(round(s * scale), round(min(s + tile, length) * scale)) for s in starts]
    m = math.ceil(margin * scale - 1e-9)  # round up: never give weight to a pixel short of context
    ramp = max(round((overlap - 2 * margin) * scale), 0)
    weights = [torch.ones(b - a) for a, b in bounds]
    for i in range(len(bounds) - 1):
        (a0, b0), (a1, b1) = bounds[i], bounds[i + 1]
        width = b0 - a1  # the shared band [a1, b0)
        if width >= 2 * m:
            # Zone at the far end of the band: for regular neighbours it is exactly the middle between the two
            # margins; for the edge-aligned last tile (a wider band) it stays clear of the previous zone.
            r = min(ramp, width - 2 * m)
            z1 = b0 - m
            z0 = z1 - r
        else:
            # Overlap too small for full context on both sides: cut in the middle of the band.
            z0 = z1 = a1 + width // 2
            r = 0
        up = torch.zeros(b1 - a1)  # weight of tile i+1 in its own coordinates
        up[z1 - a1 :] = 1.0
        if r > 0:
            up[z0 - a1 : z1 - a1] = (torch.arange(r, dtype=torch.float32) + 0.5) / r
        down = torch.ones(b0 - a0)  # weight of tile i
        down[z1 - a0 :] = 0.0
        if r > 0:
            down[z0 - a0 : z1 - a0] = 1.0 - (torch.arange(r, dtype=torch.float32) + 0.5) / r
        weights[i + 1] *= up
        weights[i] *= down
    return [(a, b, w) for (a, b), w in zip(bounds, weights)]


def pad_to(x: torch.Tensor, multiple: int = 1, min_size: int = 1) -> torch.Tensor:
    """Pad an NCHW tensor at the bottom and right to a multiple of ``multiple`` and at least ``min_size``.

    Reflect padding where the tensor is large enough, replicate otherwise (reflect needs pad < size).
    """
    h, w = x.shape[-2:]
    th = max(math.ceil(h / multiple) * multiple, math.ceil(min_size / multiple) * multiple)
    tw = max(math.ceil(w / multiple) * multiple, math.ceil(min_size / multiple) * multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def run_tiled(
    fn: TileFn,
    lr: torch.Tensor,
    out_size: tuple[int, int],
    plan: TilePlan,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    multiple_of: int = 1,
    min_size: int = 1,
) -> torch.Tensor:
    """Upscale ``lr`` (N, C, H, W float in [0, 1], any device; normally CPU) to ``out_size`` tile by tile.

    Each tile is sliced from ``lr``, padded to the network's size constraints, moved to ``device`` as
    ``dtype``, run through ``fn``, cropped, and blended into a float32 CPU buffer. Returns (N, C_out, *out_size)
    float32 on the CPU (not clamped).
    """
    n, _, h, w = lr.shape
    oh, ow = out_size
    th, tw = min(plan.tile[0], h), min(plan.tile[1], w)
    for side, full in ((th, h), (tw, w)):
        # Consecutive handover zones stay disjoint only when the stride is at least the overlap.
        if side < full and side < 2 * plan.overlap:
            raise SrkitError(f"tile {side} is too small for the overlap {plan.overlap}: it must be at least "
                             f"{2 * plan.overlap}")
    y_starts, x_starts = tile_starts(h, th, plan.overlap), tile_starts(w, tw, plan.overlap)
    ys = axis_weights(y_starts, th, h, oh, plan.margin, plan.overlap)
    xs = axis_weights(x_starts, tw, w, ow, plan.margin, plan.overlap)
    sy, sx = oh / h, ow / w

    out: torch.Tensor | None = None
    for y0, (oy0, oy1, wy) in zip(y_starts, ys):
        for x0, (ox0, ox1, wx) in zip(x_starts, xs):
            piece = lr[:, :, y0 : y0 + th, x0 : x0 + tw]
            # copy=True: a network that works in place on its input must not touch the caller's image.
            padded = pad_to(piece.to(device=device, dtype=dtype, copy=True), multiple_of, min_size)
            ph, pw = padded.shape[-2:]
            want = (max(round(ph * sy), oy1 - oy0), max(round(pw * sx), ox1 - ox0))
            # The network and the per-tile weighting run in inference mode; the accumulator stays an ordinary
            # tensor that callers may modify in place.
            with torch.inference_mode():
                result = fn(padded, want)
                del padded
                if result.shape[-2] < oy1 - oy0 or result.shape[-1] < ox1 - ox0:
                    raise SrkitError(
                        f"the network returned {tuple(result.shape[-2:])} for a {ph}x{pw} tile; expected at "
                        f"least {oy1 - oy0}x{ox1 - ox0}"
                    )
                result = result[:, :, : oy1 - oy0, : ox1 - ox0].to(device="cpu", dtype=torch.float32)
                result = result * wy[:, None]
                result.mul_(wx[None, :])
            if out is None:
                out = torch.zeros(n, result.shape[1], oh, ow)
            out[:, :, oy0:oy1, ox0:ox1] += result
            del result
    assert out is not None
    # The weights already form a partition of unity; normalising by their sum guards against rounding.
    total_y = torch.zeros(oh)
    total_x = torch.zeros(ow)
    for a, b, wgt in ys:
        total_y[a:b] += wgt
    for a, b, wgt in xs:
        total_x[a:b] += wgt
    if not (bool((total_y > 0).all()) and bool((total_x > 0).all())):
        raise RuntimeError("tile weights leave output pixels uncovered (bug in the tiling plan)")
    out /= total_y[:, None]  # two broadcasts instead of one full-size weight map
    out /= total_x[None, :]
    return out


def free_device_memory(device: torch.device | str) -> None:
    """Return cached blocks to the driver after an out-of-memory error so that a retry can use them."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- memory probe


class _LiveModuleOutputs:
    """Follows every tensor a module returns, by storage, until it is freed, and records the peak of their bytes.

    A global forward hook sees the outputs of all modules, nested ones included. Tensors made by plain
    functions between modules (``x + y`` in a forward) are not seen; on srkit's backbones the result is within
    3 % of a count of every aten op's outputs (a ``TorchDispatchMode``), which costs a heavy one-off import.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._storages: dict[tuple[str, int], list[int]] = {}  # (device, data_ptr) -> [nbytes, live tensors]
        self._tensors: set[int] = set()

    def hook(self, module: nn.Module, args: Any, output: Any) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                self.track(t)

    def track(self, t: torch.Tensor) -> None:
        if id(t) in self._tensors:  # an in-place module returns its input
            return
        storage = t.untyped_storage()
        nbytes, ptr = storage.nbytes(), storage.data_ptr()
        if nbytes == 0 or ptr == 0:
            return
        key = (str(t.device), ptr)
        entry = self._storages.get(key)
        if entry is None:
            self._storages[key] = [nbytes, 1]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        else:
            entry[1] += 1
        self._tensors.add(id(t))
        weakref.finalize(t, self._release, key, id(t))

    def _release(self, key: tuple[str, int], tid: int) -> None:
        self._tensors.discard(tid)
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._storages[key]


def measure_peak_bytes(fn: TileFn, x: torch.Tensor, out_hw: tuple[int, int]) -> int:
    """Peak bytes of ``x`` plus the module outputs alive at once while ``fn(x, out_hw)`` runs (its output
    included).

    On CUDA the allocator's own peak is also taken (it sees workspaces and functional temporaries too), and
    the larger of the two is returned.
    """
    cuda = x.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
    counter = _LiveModuleOutputs()
    handle = register_module_forward_hook(counter.hook)
    try:
        y = fn(x, out_hw)
        counter.track(y)
        del y
    finally:
        handle.remove()
    peak = counter.peak + x.untyped_storage().nbytes()
    if cuda:
        torch.cuda.synchronize(x.device)
        peak = max(peak, torch.cuda.max_memory_allocated(x.device) - base + x.untyped_storage().nbytes())
    return int(peak)


def measure_bytes_per_pixel(
    fn: TileFn,
    channels: int,
    scale: tuple[float, float],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    probe: int = 64,
    multiple_of: int = 1,
    min_size: int = 1,
    safety: float = 1.25,
) -> float:
    """Device bytes needed per LR pixel of a tile, from one forward on a ``probe`` x ``probe`` random tile.

    ``safety`` covers allocator fragmentation and workspaces that the op-level count misses (measured on CPU in
    ``benchmarks/bench_tiling.py``).
    """
    side = max(probe, min_size)
    side = math.ceil(side / multiple_of) * multiple_of
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, side, side, generator=gen).to(device=device, dtype=dtype)
    out_hw = (round(side * scale[0]), round(side * scale[1]))
    with torch.inference_mode():
        peak = measure_peak_bytes(fn, x, out_hw)
    return safety * peak / (side * side)


def tile_for_budget(
    budget: float,
    bytes_per_pixel: float,
    image_hw: tuple[int, int],
    *,
    fixed_bytes: float = 0.0,
    multiple_of: int = 1,
    min_tile: int = 1,
) -> tuple[int, int]:
    """Largest (height, width) tile whose working set ``fixed_bytes + h * w * bytes_per_pixel`` fits ``budget``.

    Square unless the image is narrower than the square tile in one direction, in which case the other side
    grows to use the budget. Sides are multiples of ``multiple_of`` (unless they cover the whole image) and at
    least ``min_tile``; the result may exceed the budget when ``min_tile`` does (the caller warns).
    """
    h, w = image_hw
    area = max((budget - fixed_bytes) / max(bytes_per_pixel, 1e-9), 0.0)

    def fit(side: float, full: int) -> int:
        if side >= full:
            return full
        return max(int(side) // multiple_of * multiple_of, min_tile)

    side = math.sqrt(area)
    th, tw = fit(side, h), fit(side, w)
    if th == h and tw < w:
        tw = fit(area / h, w)
    elif tw == w and th < h:
        th = fit(area / w, h)
    return th, tw
