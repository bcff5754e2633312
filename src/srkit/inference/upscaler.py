"""The :class:`Upscaler`: a loaded network plus everything needed to apply it to real images.

What it handles so that callers do not have to:

* **Image kinds.** numpy arrays (HW or HWC, uint8 / uint16 / float in [0, 1]), PIL images and torch tensors
  (CHW or NCHW float in [0, 1]) go in, and the same kind comes back (same dtype, same channel count, same
  PIL mode where Pillow has one: ``P`` and ``CMYK``-like modes come back as ``RGB``/``RGBA``). Internally the
  network always sees float32 (or half) RGB in [0, 1], NCHW; each network adapts ranges, mean shifts and
  channel order itself.
* **Grayscale** input is replicated to RGB for the network and the output is averaged back to one channel.
* **Alpha** is not shown to the network: it is upscaled separately with MATLAB bicubic
  (:func:`srkit.data.resize.imresize`) and clipped to [0, 1]. Networks trained on natural images invent
  texture in flat alpha masks; bicubic keeps edges smooth and costs nothing.
* **16-bit** input is processed in float32 and written back as 16-bit (no 8-bit bottleneck).
* **Scales.** A fixed-scale network asked for another scale, or for an exact ``size``, runs at the smallest
  of its scales that is >= the needed factor (its largest scale if none is), and the result is resized to
  the exact size with MATLAB bicubic (downscaling, antialiased, when the network overshoots). A
  continuous-scale network (``descriptor.scale_range``) is asked for the exact size directly.
* **Size constraints.** Tiles are padded at the bottom/right to ``multiple_of`` and ``min_size`` (reflect,
  or replicate when the tile is too small to reflect) and the output is cropped back.
* **Memory.** Tiled inference (:mod:`srkit.inference.tiling`): the image stays on the CPU, tiles go to the
  device one at a time, overlaps are blended, the tile size follows a memory budget, and an out-of-memory
  error halves the tile and starts again.

Calling conventions for networks (the descriptor says which applies):
``net(lr)`` for fixed single-scale networks; ``net(lr, scale=s)`` for networks with several fixed scales;
``net(lr, size=(H, W))`` for continuous-scale networks (LIIF); ``net(lr, ref)`` (plus ``size=`` when
continuous) for reference-based networks. Reference-based networks are tiled over the LR image with the
whole reference passed to every tile (encoded once per call when the network has ``encode_reference``,
as MASA-SR). Networks conditioned on the whole image (a ``represent(lr, tile=)``
method, e.g. DASR's degradation representation) get that computed once per image, tile by tile within the
same budget, and passed to every tile as ``net(tile, representation)``: tiles agree on one degradation.

Tiling a continuous-scale network asks it for ``round(tile * scale)`` pixels per tile. When ``tile_start *
scale`` is an integer (always at integer scales) each tile's sampling grid is exactly the untiled one and
the result is identical (checked with srkit's LIIF at x3: 4e-6, except at output pixels where LIIF's choice
of the nearest latent code is a float tie, which tile-relative coordinates may break differently); at other fractional scales the grids of a
tile and of the whole image differ by up to half an output pixel, which the cross-fade hides but does not
remove (LIIF at x2.5: 7e-3). Exact fractional tiling would query global coordinates through the network's
``encode``/``query``; it is not done yet.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.io import to_tensor
from ..descriptor import ModelDescriptor
from ..errors import SrkitError
from . import tiling

_RAMP = 8
"""LR pixels over which neighbouring tiles cross-fade, beyond the context margins."""
_MIN_TILE = 32
"""No tile side goes below this many LR pixels (besides 2 * overlap) when backing off from out-of-memory."""


def _parse_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise SrkitError(f"unknown device {device!r} (use 'cpu', 'cuda' or 'cuda:N')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SrkitError(f"device {device!r} requested but CUDA is not available in this torch build/machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SrkitError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SrkitError(f"device {device!r} requested but MPS is not available")
    return dev


def default_memory_budget(device: torch.device) -> int:
    """Bytes the upscaler may use per tile when no ``max_memory`` is given.

    CUDA: 80 % of the memory free on the device now. CPU: half of ``MemAvailable`` from ``/proc/meminfo``
    (4 GiB where that cannot be read).
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 * 1024**3


@dataclass
class _Prepared:
    """An input image split into what the network sees and what is restored afterwards."""

    rgb: torch.Tensor  # (N, 3 or 1, H, W) float32 in [0, 1], CPU (or the caller's device for tensor input)
    alpha: torch.Tensor | None  # (N, 1, H, W) float32
    gray: bool  # the input had one colour channel
    kind: str  # "numpy", "pil", "tensor"
    info: dict[str, Any]


class Upscaler:
    """A super-resolution network ready to upscale images of any kind, size and bit depth.

    Build one with :func:`srkit.inference.load` (from a model file or zoo name), or directly from a network and
    its descriptor. ``upscale`` (or calling the object) does the work.

    Args:
        net: the network; float32 RGB [0, 1] NCHW in and out (see the module docstring for its signature).
        descriptor: what the network needs and supports.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available. Asking for CUDA without
            it raises :class:`SrkitError`.
        half: run in float16. Honoured only on CUDA and when ``descriptor.supports_half``; otherwise a warning
            is issued and float32 is used (half convolutions on CPU are slow or missing, and some networks give
            garbage in half).
        max_memory: device-memory budget in bytes for one tile's working set (see :mod:`tiling`); None uses
            :func:`default_memory_budget`.
        tile: fixed tile side in LR pixels, overriding the budget; 0 disables tiling (still backs off on
            out-of-memory).
        overlap: LR pixels shared by neighbouring tiles; default ``2 * receptive_field + 8``.
        name: a label for ``repr`` and messages (the model file or zoo name).
    """

    net: nn.Module
    """The network, in eval mode, on :attr:`device`, in :attr:`dtype`."""
    descriptor: ModelDescriptor
    """Static facts about the network: scales, size constraints, reference, receptive field, dtypes."""
    device: torch.device
    """Where the network runs. Images stay on the CPU; tiles visit this device one at a time."""
    dtype: torch.dtype
    """float32, or float16 when half precision was requested and is honoured."""
    max_memory: int | None
    """The memory budget in bytes given by the caller (None: :func:`default_memory_budget` at each call)."""
    tile: int | None
    """Fixed tile side (LR pixels), 0 for untiled, None to derive it from the memory budget."""
    overlap: int
    """LR pixels shared by neighbouring tiles (``2 * margin`` of context plus a cross-fade ramp)."""
    margin: int
    """LR pixels of context next to each cut edge that get no weight; equals the receptive field."""
    name: str
    """Model name or path, for messages."""
    last_tile: tuple[int, int] | None
    """(height, width) of the tiles used by the most recent ``upscale`` call (None before the first)."""

    def __init__(
        self,
        net: nn.Module,
        descriptor: ModelDescriptor,
        *,
        device: str | torch.device | None = None,
        half: bool = False,
        max_memory: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        name: str = "",
    ) -> None:
        self.descriptor = descriptor
        self.device = _parse_device(device)
        self.dtype = torch.float32
        if half:
            if self.device.type != "cuda":
                warnings.warn(f"half precision is only used on CUDA; running {descriptor.arch} in float32 on "
                              f"{self.device}", stacklevel=2)
            elif not descriptor.supports_half:
                warnings.warn(f"{descriptor.arch} does not support float16; running in float32", stacklevel=2)
            else:
                self.dtype = torch.float16
        if max_memory is not None and max_memory <= 0:
            raise SrkitError(f"max_memory must be a positive number of bytes, got {max_memory}")
        if tile is not None and tile < 0:
            raise SrkitError(f"tile must be >= 0 (0 = no tiling), got {tile}")
        self.max_memory = max_memory
        self.tile = tile
        self.margin = max(int(descriptor.receptive_field), 0)
        self.overlap = 2 * self.margin + _RAMP if overlap is None else int(overlap)
        if self.overlap < 0:
            raise SrkitError(f"overlap must be >= 0, got {overlap}")
        self.name = name or descriptor.arch
        self.net = net.eval().requires_grad_(False).to(device=self.device, dtype=self.dtype)
        self._fast: dict = {}  # the CPU inference copy of _infer_net, with its parameter key
        self.last_tile = None
        self._bpp_cache: dict[Any, float] = {}
        self._tile_cap: int | None = None  # smallest side that ran out of memory, halved: a ceiling for later

    # ------------------------------------------------------------------------------------------ properties
    @property
    def scales(self) -> tuple[int, ...]:
        """Fixed scales of the network (empty for continuous-scale networks)."""
        return tuple(self.descriptor.scales)

    @property
    def default_scale(self) -> float:
        """Scale used when neither ``scale`` nor ``size`` is given: the largest fixed scale, or 4 clipped to the
        continuous range."""
        if self.descriptor.scale_range is not None:
            lo, hi = self.descriptor.scale_range
            return float(min(max(4.0, lo), hi))
        if not self.scales:
            raise SrkitError(f"{self.name}: the descriptor lists no scales")
        return float(max(self.scales))

    def __repr__(self) -> str:
        if self.descriptor.scale_range is not None:
            sc = "x{:g}-{:g}".format(*self.descriptor.scale_range)
        else:
            sc = "x" + "/".join(map(str, self.scales))
        tile = "auto" if self.tile is None else ("off" if self.tile == 0 else str(self.tile))
        return (f"Upscaler({self.name!r}, {sc}, device={self.device}, dtype={str(self.dtype).replace('torch.', '')}, "
                f"tile={tile}, overlap={self.overlap})")

    # ------------------------------------------------------------------------------------------ public API
    def __call__(self, image: Any, scale: float | None = None, size: tuple[int, int] | None = None,
                 ref: Any = None) -> Any:
        return self.upscale(image, scale=scale, size=size, ref=ref)

    def output_size(self, height: int, width: int, scale: float | None = None,
                    size: tuple[int, int] | None = None) -> tuple[int, int]:
        """(height, width) of the result for an input of ``height`` x ``width``: ``size`` as given, or
        ``round(side * scale)``."""
        if scale is not None and size is not None:
            raise SrkitError("give either scale or size, not both")
        if size is not None:
            try:
                oh, ow = (int(size[0]), int(size[1]))
            except (TypeError, ValueError, IndexError):
                raise SrkitError(f"size must be (height, width), got {size!r}") from None
            if oh < 1 or ow < 1:
                raise SrkitError(f"size must be positive, got {oh}x{ow}")
            return oh, ow
        s = self.default_scale if scale is None else float(scale)
        if not math.isfinite(s) or s <= 0:
            raise SrkitError(f"scale must be a positive number, got {scale!r}")
        return max(round(height * s), 1), max(round(width * s), 1)

    def upscale(self, image: Any, scale: float | None = None, size: tuple[int, int] | None = None,
                ref: Any = None) -> Any:
        """Upscale ``image`` by ``scale`` or to ``size`` = (height, width); returns the same kind of image.

        Args:
            image: numpy HW/HWC (uint8, uint16, float in [0, 1]; 1-4 channels: gray, gray+alpha, RGB, RGBA),
                a PIL image, or a tensor CHW/NCHW float in [0, 1] (1, 3 or 4 channels).
            scale: magnification; default :attr:`default_scale`.
            size: exact output (height, width) instead of ``scale``.
            ref: the reference image for reference-based networks (any of the same kinds; alpha ignored).

        Raises:
            SrkitError: a reference is missing or not expected, the image kind/shape is unsupported, or memory
                runs out even with the smallest tiles.
        """
        if self.descriptor.needs_ref and ref is None:
            raise SrkitError(f"{self.name} is reference-based: pass ref=<reference image>")
        if not self.descriptor.needs_ref and ref is not None:
            raise SrkitError(f"{self.name} does not take a reference image")
        prep = _prepare(image)
        n, _, h, w = prep.rgb.shape
        fs = self.descriptor.fixed_size
        if fs is not None and (h, w) != (fs, fs):
            raise SrkitError(f"{self.name} takes exactly {fs}x{fs} images, not {w}x{h}; resize or crop the image "
                             f"to {fs}x{fs} first")
        out_hw = self.output_size(h, w, scale, size)
        ref_t = None
        if ref is not None:
            r = _prepare(ref)
            ref_t = r.rgb.expand(-1, 3, -1, -1) if r.gray else r.rgb
            ref_t = ref_t.to(device=self.device, dtype=self.dtype)

        rgb = prep.rgb
        if prep.gray and self.descriptor.in_channels == 3:
            rgb = rgb.expand(-1, 3, -1, -1)
        sr = self._run(rgb, out_hw, ref_t)
        if prep.gray and sr.shape[1] == 3:
            sr = sr.mean(dim=1, keepdim=True)
        sr = sr.clamp_(0, 1)
        alpha = None
        if prep.alpha is not None:
            from ..data.resize import imresize

            alpha = imresize(prep.alpha.float().cpu(), size=out_hw).clamp_(0, 1)
        return _restore(prep, sr, alpha)

    # ------------------------------------------------------------------------------------------ internals
    def _native_scale(self, h: int, w: int, out_hw: tuple[int, int]) -> float | None:
        """Scale to ask the network for; None for continuous networks (they get the exact size)."""
        if self.descriptor.scale_range is not None:
            lo, hi = self.descriptor.scale_range
            need = max(out_hw[0] / h, out_hw[1] / w)
            if need > hi + 1e-9:
                raise SrkitError(f"{self.name} upscales by at most x{hi:g}; x{need:.4g} was asked for")
            return None
        need = max(out_hw[0] / h, out_hw[1] / w)
        fitting = [s for s in self.scales if s >= need - 1e-9]
        return float(min(fitting) if fitting else max(self.scales))

    def _infer_net(self) -> nn.Module:
        """The network that runs. On CPU, FSRCNN runs as a copy whose transposed-conv tail is rewritten as an
        ordinary conv + pixel shuffle, in channels-last layout (same outputs up to float rounding, about 2x
        faster; PyTorch's transposed conv on CPU scatters column by column). The copy is rebuilt when a
        parameter of :attr:`net` changes; other networks and devices run :attr:`net` itself."""
        if self.device.type != "cpu" or self.descriptor.arch != "fsrcnn":
            return self.net
        from .classsr_routing import cached_fast_copy

        return cached_fast_copy(self.net, self._fast, "net", channels_last=True)

    def _tile_fn(self, scale: float | None, ref: torch.Tensor | None,
                 cond: torch.Tensor | None = None) -> tiling.TileFn:
        net, d = self._infer_net(), self.descriptor
        multi = d.scale_range is None and len(d.scales) > 1

        def fn(x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
            args = (x,) if ref is None else (x, ref)
            if cond is not None and x.shape[0] == cond.shape[0]:  # (the memory probe runs without it)
                args = (*args, cond)
            if d.scale_range is not None:
                return net(*args, size=out_hw)
            if multi:
                return net(*args, scale=int(scale))
            return net(*args)

        return fn

    def _bytes_per_pixel(self, fn: tiling.TileFn, key: Any, scale: tuple[float, float]) -> float:
        if key not in self._bpp_cache:
            self._bpp_cache[key] = tiling.measure_bytes_per_pixel(
                fn, 3, scale, device=self.device, dtype=self.dtype,
                multiple_of=self.descriptor.multiple_of, min_size=self.descriptor.min_size,
            )
        return self._bpp_cache[key]

    def _min_tile(self) -> int:
        k = max(self.descriptor.multiple_of, 1)
        side = max(2 * self.overlap, _MIN_TILE, self.descriptor.min_size)
        return math.ceil(side / k) * k

    def _plan_tile(self, h: int, w: int, fn: tiling.TileFn, key: Any, scale: tuple[float, float]) -> tuple[int, int]:
        k = max(self.descriptor.multiple_of, 1)
        if self.tile == 0 or self.descriptor.fixed_size is not None:
            th, tw = h, w
        elif self.tile is not None:
            side = max(self.tile, 2 * self.overlap)
            if side != self.tile and self.tile < min(h, w):
                warnings.warn(f"tile {self.tile} is smaller than twice the overlap; using {side}", stacklevel=3)
            side = math.ceil(side / k) * k
            th, tw = min(side, h), min(side, w)
        else:
            budget = self.max_memory if self.max_memory is not None else default_memory_budget(self.device)
            bpp = self._bytes_per_pixel(fn, key, scale)
            weights = sum(p.numel() * p.element_size() for p in self.net.parameters())
            weights += sum(b.numel() * b.element_size() for b in self.net.buffers())
            # On the CPU the weights already sit in the budgeted memory; on CUDA too. Count them once.
            th, tw = tiling.tile_for_budget(budget, bpp, (h, w), fixed_bytes=weights, multiple_of=k,
                                            min_tile=self._min_tile())
            if (th < h or tw < w) and (th * tw * bpp + weights > budget):
                warnings.warn(
                    f"max_memory {budget / 2**20:.0f} MiB is below what the smallest tile ({th}x{tw}) needs "
                    f"(about {(th * tw * bpp + weights) / 2**20:.0f} MiB); using it anyway", stacklevel=3)
        if self._tile_cap is not None:
            th, tw = min(th, self._tile_cap), min(tw, self._tile_cap)
        return th, tw

    def _run(self, rgb: torch.Tensor, out_hw: tuple[int, int], ref: torch.Tensor | None) -> torch.Tensor:
        """(N, C, h, w) float32 -> (N, C, *out_hw) float32 on the CPU, not clamped."""
        _, _, h, w = rgb.shape
        s = self._native_scale(h, w, out_hw)
        net_hw = out_hw if s is None else (round(h * s), round(w * s))
        fn = self._tile_fn(s, ref)
        key = (s if s is not None else round(max(out_hw[0] / h, out_hw[1] / w), 3),
               None if ref is None else tuple(ref.shape))
        scale_hw = (net_hw[0] / h, net_hw[1] / w)
        th, tw = self._plan_tile(h, w, fn, key, scale_hw)
        with torch.no_grad():
            if ref is not None and hasattr(self.net, "encode_reference"):
                # the reference's features and matching index, once per call instead of once per tile
                fn = self._tile_fn(s, self.net.encode_reference(ref))
            if hasattr(self.net, "represent"):
                tile = None if (th >= h and tw >= w) else max(th, tw)
                fn = self._tile_fn(s, ref, self.net.represent(rgb, tile=tile))
            out = self._run_with_backoff(fn, rgb, net_hw, th, tw)
        if tuple(out.shape[-2:]) != tuple(out_hw):
            from ..data.resize import imresize

            out = imresize(out, size=out_hw)
        return out

    def _run_with_backoff(self, fn: tiling.TileFn, rgb: torch.Tensor, net_hw: tuple[int, int],
                          th: int, tw: int) -> torch.Tensor:
        _, _, h, w = rgb.shape
        k = max(self.descriptor.multiple_of, 1)
        min_tile = self._min_tile()
        while True:
            plan = tiling.TilePlan(tile=(th, tw), overlap=self.overlap, margin=self.margin)
            failed = False
            try:
                out = tiling.run_tiled(fn, rgb, net_hw, plan, device=self.device, dtype=self.dtype,
                                       multiple_of=self.descriptor.multiple_of, min_size=self.descriptor.min_size)
                self.last_tile = (th, tw)
                return out
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not tiling.is_oom(e):
                    raise
                failed = True
            # Outside the except block, so the traceback (and the tensors its frames hold) is already released.
            if failed:
                tiling.free_device_memory(self.device)
                if max(th, tw) <= min_tile:
                    raise tiling.TilingOutOfMemoryError(
                        f"{self.name}: out of memory on {self.device} even with {th}x{tw} tiles (the smallest "
                        f"allowed is {min_tile}); free device memory, use --half on CUDA, or run on another device")
                side = max(max(th, tw) // 2 // k * k, min_tile)  # halve, but try the minimum once
                th, tw = min(th, side), min(tw, side)
                self._tile_cap = side
                warnings.warn(f"out of memory on {self.device}; retrying with {th}x{tw} tiles", stacklevel=3)


# ---------------------------------------------------------------------------------------------- conversions


def _split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """NCHW with 1-4 channels -> (colour, alpha or None, gray)."""
    c = t.shape[1]
    if c == 1:
        return t, None, True
    if c == 2:
        return t[:, :1], t[:, 1:2], True
    if c == 3:
        return t, None, False
    if c == 4:
        return t[:, :3], t[:, 3:4], False
    raise SrkitError(f"unsupported channel count {c}: expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")


_PIL_CONVERT = {"1": "L", "P": None, "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB",
                "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def _prepare(image: Any) -> _Prepared:
    if isinstance(image, np.ndarray):
        a = image[:, :, None] if image.ndim == 2 else image
        if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
            raise SrkitError(f"expected an HxW or HxWxC image array, got shape {image.shape}")
        rgb, alpha, gray = _split(to_tensor(a))
        return _Prepared(rgb, alpha, gray, "numpy", {"dtype": image.dtype, "ndim": image.ndim})
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4) or image.shape[-1] == 0 or image.shape[-2] == 0:
            raise SrkitError(f"expected a CHW or NCHW image tensor, got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise SrkitError(f"expected a float tensor in [0, 1], got {image.dtype}")
        t = image.detach().unsqueeze(0) if image.dim() == 3 else image.detach()
        # Keep the image where the caller has it (tiles are sliced from it); compute in float32.
        rgb, alpha, gray = _split(t.float())
        return _Prepared(rgb, alpha, gray, "tensor",
                         {"dtype": image.dtype, "ndim": image.dim(), "device": image.device})
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        im, mode = image, image.mode
        if mode in _PIL_CONVERT:
            target = _PIL_CONVERT[mode]
            if target is None:  # palette: keep transparency if it has any
                target = "RGBA" if "transparency" in im.info else "RGB"
            im = im.convert(target)
        if im.mode in ("I", "F"):
            a = np.asarray(im)
            if im.mode == "I":
                a = np.clip(a, 0, 65535).astype(np.uint16)
            else:
                a = a.astype(np.float32)
        else:
            a = np.asarray(im)
            if im.mode.startswith("I;16"):
                a = a.astype(np.uint16)
        a = a[:, :, None] if a.ndim == 2 else a
        rgb, alpha, gray = _split(to_tensor(a))
        return _Prepared(rgb, alpha, gray, "pil", {"mode": im.mode, "info": dict(image.info)})
    raise SrkitError(f"cannot upscale a {type(image).__name__}: pass a numpy array, a PIL image or a torch tensor")


def _to_numpy(t: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> HWC array of ``dtype`` (rounded half to even for integers).

    Works in place on ``t`` (the upscaler's own result) so that no second full-size float copy is made.
    """
    if dtype == np.uint8:
        q = t.mul_(255.0).round_().to(torch.uint8)
    elif dtype == np.uint16:
        q = t.mul_(65535.0).round_().to(torch.uint16)
    else:
        return np.ascontiguousarray(t.permute(1, 2, 0).numpy(), dtype=dtype)
    return np.ascontiguousarray(q.permute(1, 2, 0).numpy())


def _restore(prep: _Prepared, sr: torch.Tensor, alpha: torch.Tensor | None) -> Any:
    full = sr if alpha is None else torch.cat([sr, alpha.to(sr.device)], dim=1)
    if prep.kind == "tensor":
        out = full.to(device=prep.info["device"], dtype=prep.info["dtype"])
        return out[0] if prep.info["ndim"] == 3 else out
    arr = _to_numpy(full[0], np.dtype(prep.info.get("dtype", np.uint8)) if prep.kind == "numpy" else
                    _pil_dtype(prep.info["mode"]))
    if prep.kind == "numpy":
        return arr[:, :, 0] if prep.info["ndim"] == 2 else arr
    from PIL import Image

    mode = prep.info["mode"]
    if arr.shape[-1] == 1:
        arr = arr[:, :, 0]
    if mode.startswith("I;16"):
        out = Image.fromarray(arr.astype(np.uint16))
        if out.mode != mode:
            out = out.convert(mode) if mode in ("I;16",) else out
    elif mode == "I":
        out = Image.fromarray(arr.astype(np.int32))
    elif mode == "F":
        out = Image.fromarray(arr.astype(np.float32))
    else:
        out = Image.fromarray(arr)
    icc = prep.info["info"].get("icc_profile")
    if icc:
        out.info["icc_profile"] = icc
    return out


def _pil_dtype(mode: str) -> np.dtype:
    if mode.startswith("I;16") or mode == "I":
        return np.dtype(np.uint16)
    if mode == "F":
        return np.dtype(np.float32)
    return np.dtype(np.uint8)


# ---------------------------------------------------------------------------------------------- loading


def load(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    half: bool = False,
    max_memory: int | None = None,
    tile: int | None = None,
) -> Upscaler:
    """Load a model file or zoo model and wrap it in an :class:`Upscaler`.

    Args:
        name_or_path: a ``.safetensors`` srkit model file or a zoo name; None means :data:`srkit.zoo.DEFAULT_MODEL`.
        device: ``"cpu"``, ``"cuda"``, ...; None picks CUDA when available.
        half: float16 on CUDA when the model supports it (otherwise a warning and float32).
        max_memory: device-memory budget in bytes for tiled inference (None: automatic).
        tile: fixed tile side in LR pixels (0: no tiling; None: from the budget).
    """
    from ..model_file import load_model
    from ..zoo import DEFAULT_MODEL

    target = DEFAULT_MODEL if name_or_path is None else name_or_path
    loaded = load_model(target, device="cpu")
    return Upscaler(loaded.net, loaded.descriptor, device=device, half=half, max_memory=max_memory, tile=tile,
                    name=str(target))
