"""CARN-M (Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network",
ECCV 2018), the mobile variant in the form ClassSR trains it (BatchNorm in the 1x1 fusions, one residual
block shared three times per cascading block), with ClassSR's layer names."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .common import MeanShift, check_scale


def _fusion(in_channels: int, out_channels: int) -> nn.Sequential:
    """Cascade fusion: 1x1 conv without bias -> BatchNorm -> ReLU (keys ``0``, ``1``)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class EResidualBlock(nn.Module):
    """Efficient residual block: ``relu(x + conv1x1(relu(gconv3x3(relu(gconv3x3(x))))))`` with grouped 3x3
    convs. Keys ``body.0``, ``body.2`` (grouped 3x3), ``body.4`` (1x1)."""

    def __init__(self, nf: int, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(nf, nf, 3, padding=1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 3, padding=1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


def _cascade(x: torch.Tensor, blocks: list[nn.Module], fusions: list[nn.Module]) -> torch.Tensor:
    # Each stage appends the block output to everything seen so far, then a 1x1 fusion reduces it back
    # to nf channels; the fused map feeds the next block.
    concat = x
    out = x
    for block, fuse in zip(blocks, fusions):
        concat = torch.cat([concat, block(out)], dim=1)
        out = fuse(concat)
    return out


class CascadingBlock(nn.Module):
    """Local cascade of three applications of ONE shared ``EResidualBlock`` (``b1``; CARN-M's weight
    sharing) with fusions ``c1`` (2nf -> nf), ``c2`` (3nf -> nf), ``c3`` (4nf -> nf)."""

    def __init__(self, nf: int, group: int) -> None:
        super().__init__()
        self.b1 = EResidualBlock(nf, group)
        self.c1 = _fusion(2 * nf, nf)
        self.c2 = _fusion(3 * nf, nf)
        self.c3 = _fusion(4 * nf, nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _cascade(x, [self.b1, self.b1, self.b1], [self.c1, self.c2, self.c3])


class _SubPixel(nn.Module):
    """Grouped sub-pixel upsampler: per factor 2 a conv (nf -> 4nf) -> ReLU -> PixelShuffle(2); x3 one step
    with 9nf and PixelShuffle(3). Keys ``body.0`` (and ``body.3`` for x4)."""

    def __init__(self, nf: int, scale: int, group: int) -> None:
        super().__init__()
        steps = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
        layers: list[nn.Module] = []
        for r in steps:
            layers += [nn.Conv2d(nf, r * r * nf, 3, padding=1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(r)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpsampleBlock(nn.Module):
    """Wrapper that exists only for the key prefix ``upsample.up`` of ClassSR's single-scale CARN-M."""

    def __init__(self, nf: int, scale: int, group: int) -> None:
        super().__init__()
        self.up = _SubPixel(nf, scale, group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class CARN_M(nn.Module):  # noqa: N801 (the paper's name)
    """CARN-M as in ClassSR (``codes/models/archs/CARN_arch.py``, single-scale).

    Args:
        nf: feature channels (ClassSR branches 36 / 52 / 64; must be divisible by ``group``).
        group: groups of the 3x3 convs in the residual blocks and the upsampler (official 4).
        scale: upscaling factor, 2, 3 or 4.

    Works in [0, 1] like the official code (mean shift with range 1).
    Shapes: (N, 3, H, W) RGB in [0, 1] -> (N, 3, scale*H, scale*W) RGB, nominally [0, 1] (not clamped).
    BatchNorm layers sit in the fusions, so call ``.eval()`` before inference.

    State-dict keys: ``sub_mean``, ``add_mean``, ``entry``, ``b{1,2,3}.b1.body.{0,2,4}``,
    ``b{i}.c{j}.0`` (1x1, no bias), ``b{i}.c{j}.1.*`` (BatchNorm with running stats), ``c{1,2,3}.{0,1}``,
    ``upsample.up.body.{0,3}`` (x4; ``0`` for x2/x3), ``exit``.
    """

    def __init__(self, nf: int = 64, group: int = 4, scale: int = 4) -> None:
        super().__init__()
        self.scale = check_scale("carn_m", scale, (2, 3, 4))
        if nf % group:
            raise ConfigError(f"carn_m: nf={nf} is not divisible by group={group}")
        self.sub_mean = MeanShift(1.0, sign=-1)
        self.add_mean = MeanShift(1.0, sign=1)
        self.entry = nn.Conv2d(3, nf, 3, padding=1)
        self.b1 = CascadingBlock(nf, group)
        self.b2 = CascadingBlock(nf, group)
        self.b3 = CascadingBlock(nf, group)
        self.c1 = _fusion(2 * nf, nf)
        self.c2 = _fusion(3 * nf, nf)
        self.c3 = _fusion(4 * nf, nf)
        self.upsample = UpsampleBlock(nf, self.scale, group)
        self.exit = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(self.sub_mean(x))
        x = _cascade(x, [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3])
        return self.add_mean(self.exit(self.upsample(x)))
