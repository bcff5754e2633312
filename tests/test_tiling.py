"""Tiled inference: equivalence with an untiled run, coverage, out-of-memory back-off, size constraints."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from srkit.descriptor import ModelDescriptor
from srkit.errors import SrkitError
from srkit.inference import TilingOutOfMemoryError, Upscaler, tiling



class ConvSR(nn.Module):
    """``depth`` 3x3 convolutions (receptive field ``depth`` LR pixels per side) and a pixel shuffle."""

    def __init__(self, depth: int = 5, scale: int = 2, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = [3] + [width] * (depth - 1) + [3 * scale * scale]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans, chans[1:]))
        for c in self.convs:
            with torch.no_grad():
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.4)
                c.bias.copy_(torch.randn(c.bias.shape, generator=g) * 0.1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, c in enumerate(self.convs):
            x = c(x)
            if i < len(self.convs) - 1:
                x = torch.tanh(x)
        return self.shuffle(x) + 0.5


def desc(rf: int, scale: int = 2, **kw) -> ModelDescriptor:
    return ModelDescriptor(arch="toy", scales=(scale,), receptive_field=rf, **kw)


def _image(h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("tile", [24, 31, 40])
def test_tiled_matches_untiled_when_margin_covers_receptive_field(scale: int, tile: int) -> None:
    net = ConvSR(depth=5, scale=scale)
    x = _image(57, 70)
    full = Upscaler(net, desc(5, scale), tile=0).upscale(x)
    up = Upscaler(net, desc(5, scale), tile=tile, overlap=12)  # margin 5 per side + 2 px ramp
    tiled = up.upscale(x)
    assert up.last_tile == (tile, tile)  # really tiled
    assert tiled.shape == full.shape == (1, 3, 57 * scale, 70 * scale)
    b = 8 * scale  # the interior; here even the border matches since no padding is involved
    assert (tiled - full)[..., b:-b, b:-b].abs().max() < 1 / 255
    assert (tiled - full).abs().max() < 1e-4


def test_no_overlap_no_blending_differs() -> None:
    """The same comparison with hard cuts and no context: the seams show (so the test above can fail)."""
    net = ConvSR(depth=5)
    x = _image(57, 70)
    full = Upscaler(net, desc(5), tile=0).upscale(x)
    up = Upscaler(net, desc(0), tile=24, overlap=0)
    tiled = up.upscale(x)
    assert up.last_tile == (24, 24)
    assert (tiled - full)[..., 16:-16, 16:-16].abs().max() > 1 / 255


def test_margin_smaller_than_receptive_field_is_not_exact() -> None:
    net = ConvSR(depth=5)
    x = _image(57, 70)
    full = Upscaler(net, desc(5), tile=0).upscale(x)
    short = Upscaler(net, desc(1), tile=24, overlap=4).upscale(x)  # context 1 < receptive field 5
    assert (short - full).abs().max() > 1e-4


@pytest.mark.parametrize("length", [1, 7, 41, 257])
@pytest.mark.parametrize("tile,overlap,margin", [(16, 8, 3), (20, 10, 5), (33, 12, 0), (40, 6, 4), (64, 20, 6)])
@pytest.mark.parametrize("scale", [1, 2, 3, 2.5])
def test_weights_cover_every_pixel_with_full_context(length, tile, overlap, margin, scale) -> None:
    out_len = round(length * scale)
    t = min(tile, length)
    starts = tiling.tile_starts(length, t, overlap)
    assert starts[0] == 0 and starts[-1] + t == length
    assert all(b - a <= t - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap
    parts = tiling.axis_weights(starts, t, length, out_len, margin, overlap)
    total = torch.zeros(out_len)
    m = math.ceil(margin * out_len / length - 1e-9)  # the margin in output pixels, rounded up
    for i, (a, b, w) in enumerate(parts):
        assert len(w) == b - a and bool((w >= 0).all()) and bool((w <= 1).all())
        total[a:b] += w
        # no weight within `margin` of a cut edge, where the network lacked context (when overlap allows it)
        # (at fractional scales rounding may eat one output pixel of the band, so ask for one LR pixel more)
        if overlap >= 2 * margin + (0 if float(scale).is_integer() else 1):
            if i > 0:
                assert float(w[:m].sum()) == 0.0
            if i < len(parts) - 1 and m > 0:
                assert float(w[-m:].sum()) == 0.0
    assert torch.allclose(total, torch.ones(out_len), atol=1e-6)


class SizeCheckedNet(nn.Module):
    """Nearest-neighbour x2 'network' that only accepts sizes that are multiples of ``k`` and >= ``min_size``,
    and records every input shape."""

    def __init__(self, k: int = 1, min_size: int = 1, scale: int = 2) -> None:
        super().__init__()
        self.k, self.min_size, self.scale = k, min_size, scale
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        self.seen.append((h, w))
        if h % self.k or w % self.k or min(h, w) < self.min_size:
            raise ValueError(f"bad size {h}x{w}")
        return torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


@pytest.mark.parametrize("tile", [0, 48])
@pytest.mark.parametrize("hw", [(37, 53), (64, 64), (5, 3), (97, 50)])
def test_odd_sizes_and_multiple_of(tile, hw) -> None:
    net = SizeCheckedNet(k=8, min_size=16)
    up = Upscaler(net, desc(4, multiple_of=8, min_size=16), tile=tile, overlap=16)
    x = _image(*hw)
    y = up.upscale(x)
    assert y.shape == (1, 3, 2 * hw[0], 2 * hw[1])
    # nearest neighbour is exact, so padding and cropping back must give exactly the repeated input
    # (blending can move a value by an ulp: w * v + (1 - w) * v)
    assert torch.allclose(y, x.repeat_interleave(2, -2).repeat_interleave(2, -1), rtol=0, atol=1e-6)
    assert all(h % 8 == 0 and w % 8 == 0 and min(h, w) >= 16 for h, w in net.seen)


def test_tiles_stream_one_at_a_time() -> None:
    net = SizeCheckedNet()
    up = Upscaler(net, desc(2), tile=32, overlap=8)
    up.upscale(_image(100, 90))
    assert len(net.seen) == 4 * 4 and max(max(s) for s in net.seen) <= 32  # never the whole image


class OOMNet(nn.Module):
    """Wraps a network and raises an out-of-memory error for inputs above ``limit`` pixels."""

    def __init__(self, inner: nn.Module, limit: int, kind: str = "torch") -> None:
        super().__init__()
        self.inner, self.limit, self.kind = inner, limit, kind
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if x.shape[-2] * x.shape[-1] > self.limit:
            if self.kind == "torch":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return self.inner(x)


@pytest.mark.parametrize("kind", ["torch", "runtime"])
def test_out_of_memory_halves_the_tile(kind) -> None:
    inner = ConvSR(depth=3)
    x = _image(90, 100)
    ref = Upscaler(inner, desc(3), tile=0).upscale(x)
    up = Upscaler(OOMNet(inner, limit=40 * 40, kind=kind), desc(3), tile=0, overlap=8)
    with pytest.warns(UserWarning, match="out of memory"):
        y = up.upscale(x)
    assert up.last_tile == (32, 32)  # 100 -> 50 (2500 px > 1600) -> 25, raised to the minimum 32
    assert (y - ref).abs().max() < 1e-5
    # later calls start from the tile that worked instead of failing again
    calls = up.net.calls
    up.upscale(x)
    n_tiles = len(tiling.tile_starts(90, up.last_tile[0], 8)) * len(tiling.tile_starts(100, up.last_tile[1], 8))
    assert up.net.calls - calls == n_tiles


def test_out_of_memory_gives_up_below_minimum() -> None:
    up = Upscaler(OOMNet(ConvSR(depth=3), limit=10), desc(3), tile=0, overlap=8)
    with pytest.warns(UserWarning):
        with pytest.raises(TilingOutOfMemoryError, match="out of memory on cpu even with"):
            up.upscale(_image(90, 100))
    assert issubclass(TilingOutOfMemoryError, SrkitError)


def test_other_errors_are_not_retried() -> None:
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch in layer 3")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        Upscaler(Broken(), desc(3), tile=0).upscale(_image(20, 20))


def test_is_oom() -> None:
    assert tiling.is_oom(torch.OutOfMemoryError("x"))
    assert tiling.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not tiling.is_oom(RuntimeError("size mismatch"))
    assert not tiling.is_oom(ValueError("out of memory"))


def test_measure_bytes_per_pixel_known_answer() -> None:
    # One 3->8 conv: the tile (3 floats) and the conv's output (8 floats) per pixel: 44 bytes.
    conv = nn.Conv2d(3, 8, 3, padding=1)
    bpp = tiling.measure_bytes_per_pixel(lambda x, hw: conv(x), 3, (1.0, 1.0), safety=1.0, probe=32)
    assert bpp == 44.0
    # conv -> tanh -> conv(8->4): at the peak the tile, the conv output and the tanh output are alive: 3 + 8 + 8
    seq = nn.Sequential(conv, nn.Tanh(), nn.Conv2d(8, 4, 3, padding=1))
    assert tiling.measure_bytes_per_pixel(lambda x, hw: seq(x), 3, (1.0, 1.0), safety=1.0) == 76.0
    # an in-place activation adds nothing
    seq = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Conv2d(8, 4, 3, padding=1))
    assert tiling.measure_bytes_per_pixel(lambda x, hw: seq(x), 3, (1.0, 1.0), safety=1.0) == 60.0
    assert tiling.measure_bytes_per_pixel(lambda x, hw: seq(x), 3, (1.0, 1.0)) == 60.0 * 1.25


def test_tile_for_budget() -> None:
    assert tiling.tile_for_budget(100 * 64 * 64, 100, (1000, 1000)) == (64, 64)
    assert tiling.tile_for_budget(100 * 64 * 64 + 500, 100, (1000, 1000), fixed_bytes=500, multiple_of=8) == (64, 64)
    assert tiling.tile_for_budget(100 * 70 * 70, 100, (1000, 1000), multiple_of=16) == (64, 64)
    assert tiling.tile_for_budget(1e12, 100, (300, 200)) == (300, 200)  # fits: untiled
    assert tiling.tile_for_budget(100 * 64 * 64, 100, (32, 1000)) == (32, 128)  # thin image: wider tiles
    assert tiling.tile_for_budget(10, 100, (1000, 1000), min_tile=40) == (40, 40)


def test_budget_drives_tile_size() -> None:
    net = ConvSR(depth=3)
    x = _image(120, 120)
    big = Upscaler(net, desc(3), max_memory=10**9)
    big.upscale(x)
    assert big.last_tile == (120, 120)
    small = Upscaler(net, desc(3), max_memory=400_000)
    y = small.upscale(x)
    th, tw = small.last_tile
    bpp = next(iter(small._bpp_cache.values()))
    weights = sum(p.numel() * 4 for p in net.parameters())
    assert th < 120 and th * tw * bpp + weights <= 400_000
    assert (y - big.upscale(x)).abs().max() < 1e-5
