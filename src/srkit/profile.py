"""Cost of a network on one input: parameters, FLOPs, latency and peak memory.

Conventions (stated once, used by ``srkit profile`` and the benchmarks):

* **FLOPs** are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass: convolutions
  (transposed too), matrix products and attention, at **2 FLOPs per multiply-accumulate** (so
  FLOPs = 2 x MACs; many SR papers quote MACs and call them FLOPs: halve ours to compare). Bias additions,
  activations, pixel shuffles, interpolation and other element-wise work are not counted.
* **Latency** is the median wall time of ``runs`` forward passes under ``torch.inference_mode()``,
  after ``warmup`` untimed passes; on CUDA each pass ends with a synchronisation.
* **Peak memory** is what one forward pass needs *beyond* the weights and the input, which are already
  resident: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before the pass (PyTorch's
  caching allocator, not the driver's view); on CPU (Linux) the growth of the process's peak resident
  set (``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident set before the pass, after
  ``malloc_trim`` has returned the heap that the warm-up passes freed (otherwise the pass would reuse it
  and show no growth). The CPU figure therefore includes allocator and page granularity, and is ``None``
  where the kernel does not offer the reset (then the peak cannot be attributed to the pass).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SrkitError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class ProfileResult:
    """Measured cost of one forward pass at a given input size."""

    params: int
    """Trainable and frozen parameters (buffers such as BatchNorm statistics excluded)."""
    flops: int
    """FLOPs of one forward pass, 2 per multiply-accumulate (see the module docstring)."""
    latency_ms_median: float
    peak_memory_bytes: int | None
    """Memory one pass needs beyond weights and input; None where it cannot be measured."""
    input_size: tuple[int, int] = (0, 0)
    """(H, W) of the LR input."""
    output_shape: tuple[int, ...] = ()
    scale: float | None = None
    """The scale the caller asked for (informative; the network decides what it produces)."""
    device: str = "cpu"
    dtype: str = "float32"
    latency_ms_all: list[float] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["output_shape"] = list(self.output_shape)
        d["macs"] = self.macs
        return d


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_flops(net: nn.Module, x: torch.Tensor, call: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> int:
    """FLOPs (2 x MACs) of ``call(net, x)`` (default ``net(x)``), counted by ``FlopCounterMode``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    call = call or (lambda n, t: n(t))
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        call(net, x)
    return int(counter.get_total_flops())


def _read_status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _release_free_heap() -> None:
    """Hand memory that malloc keeps cached (freed by the warm-up passes) back to the kernel, so that the
    measured pass has to fault its working memory in again and shows up in the peak RSS (glibc only)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cpu_peak_growth(fn: Callable[[], Any]) -> int | None:
    import gc

    gc.collect()
    _release_free_heap()
    if _reset_peak_rss():
        before = _read_status_kib("VmRSS")
        fn()
        peak = _read_status_kib("VmHWM")
        if before is not None and peak is not None:
            return max(0, peak - before) * 1024
    fn()
    return None


def profile_model(
    net: nn.Module,
    input_size: tuple[int, int] = (64, 64),
    *,
    scale: float | None = None,
    device: str | torch.device = "cpu",
    runs: int = 5,
    warmup: int = 2,
    dtype: torch.dtype | None = None,
    batch: int = 1,
    in_channels: int = 3,
    call: Callable[[nn.Module, torch.Tensor], Any] | None = None,
    measure_memory: bool = True,
    x: torch.Tensor | None = None,
) -> ProfileResult:
    """Profile ``net`` on a random (batch, in_channels, H, W) input in [0, 1], or on ``x`` when given.

    ``input_size`` is the LR (H, W); ``x`` (N, C, H, W) in [0, 1] (a real image, for networks whose cost
    depends on the content) replaces the random input, and its size replaces ``input_size``. ``call(net, x)`` runs one pass (default ``net(x)``); pass one for
    networks with other signatures (reference-based, arbitrary-scale queries). ``scale`` is recorded in
    the result for such calls to use; a fixed-scale network upscales by what it was built for. The network is moved
    to ``device`` (and ``dtype``) in place and put in eval mode.
    """
    import torch

    if runs < 1:
        raise SrkitError(f"runs must be at least 1, got {runs}")
    if x is not None:
        if x.dim() != 4:
            raise SrkitError(f"profile input must be (N, C, H, W), got shape {tuple(x.shape)}")
        input_size = tuple(x.shape[-2:])
    h, w = (int(v) for v in input_size)
    if h < 1 or w < 1:
        raise SrkitError(f"input size must be positive, got {h}x{w} (HxW)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SrkitError("device 'cuda' requested but CUDA is not available")
    dtype = dtype or torch.float32
    net = net.to(device=dev, dtype=dtype).eval()
    if x is None:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(batch, in_channels, h, w, generator=gen)
    x = x.to(device=dev, dtype=dtype)
    call = call or (lambda n, t: n(t))

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def one() -> Any:
        with torch.inference_mode():
            out = call(net, x)
        sync()
        return out

    flops = count_flops(net, x, call)
    out = None
    for _ in range(max(warmup, 0)):
        out = one()
    if out is None:
        out = one()
    out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
    del out

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        one()
        times.append((time.perf_counter() - t0) * 1000.0)

    peak: int | None = None
    if measure_memory:
        if dev.type == "cuda":
            sync()
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            one()
            peak = max(0, torch.cuda.max_memory_allocated(dev) - base)
        elif dev.type == "cpu":
            peak = _cpu_peak_growth(one)
    return ProfileResult(
        params=count_params(net),
        flops=flops,
        latency_ms_median=float(statistics.median(times)),
        peak_memory_bytes=peak,
        input_size=(h, w),
        output_shape=out_shape,
        scale=scale,
        device=str(dev),
        dtype=str(dtype).replace("torch.", ""),
        latency_ms_all=[round(t, 4) for t in times],
    )


def format_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n}"


def format_count(n: float) -> str:
    """1234567 -> '1.23M' (SI prefixes, 3 significant digits)."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"
