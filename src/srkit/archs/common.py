"""Building blocks shared by the classic backbones (EDSR, RCAN, CARN-M, ...).

Module and attribute names here are part of the checkpoint format: they decide the ``state_dict`` keys,
which must equal those of the official implementations (EDSR-PyTorch, ClassSR) so that official
weights load without renaming.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
"""Per-channel RGB mean of DIV2K in [0, 1]; the mean shift of EDSR, RCAN and CARN-M subtracts it."""


def conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """Stride-1 convolution with 'same' zero padding (odd ``kernel_size``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias, groups=groups)


def check_scale(arch: str, scale: int, allowed: Iterable[int]) -> int:
    """Return ``scale`` as int, or raise :class:`ConfigError` when ``arch`` cannot upscale by it."""
    allowed = tuple(allowed)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale in allowed:
        return int(scale)
    raise ConfigError(f"{arch} supports scale {', '.join(map(str, allowed))}, not {scale!r}")


class MeanShift(nn.Conv2d):
    """Frozen 1x1 convolution that adds (``sign=+1``) or subtracts (``sign=-1``) ``img_range * mean``.

    Written as a convolution, not a buffer, because the official checkpoints store it as one
    (``sub_mean.weight`` of shape (3, 3, 1, 1) and ``sub_mean.bias`` of shape (3,)); loading a checkpoint
    overwrites the constructor's values, so whatever the checkpoint holds is what runs. The parameters
    never receive gradients.
    """

    def __init__(
        self,
        img_range: float,
        mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        sign: int = -1,
    ) -> None:
        super().__init__(3, 3, kernel_size=1)
        std_t = torch.tensor(std, dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(torch.diag(1.0 / std_t).view(3, 3, 1, 1))
            self.bias.copy_(sign * img_range * torch.tensor(mean, dtype=torch.float32) / std_t)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)


class ResBlock(nn.Module):
    """EDSR residual block: ``x + res_scale * conv(relu(conv(x)))``, no batch norm.

    Keys: ``body.0`` and ``body.2`` (``body.1`` is the ReLU).
    """

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feats, n_feats, kernel_size), nn.ReLU(inplace=True), conv(n_feats, n_feats, kernel_size)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return res + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler of EDSR-PyTorch: per factor 2 a conv (n -> 4n) then PixelShuffle(2); x3 one conv
    (n -> 9n) then PixelShuffle(3). No activation. Keys: ``0`` (and ``2``, ``4`` for x4, x8)."""

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
        elif scale in (2, 4, 8):
            for _ in range(scale.bit_length() - 1):
                layers += [conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
        else:
            raise ConfigError(f"sub-pixel upsampler supports scale 2, 3, 4, 8, not {scale!r}")
        super().__init__(*layers)


def scaled_kaiming_init_(modules: Iterable[nn.Module], scale: float) -> None:
    """He-normal (fan-in) init of every Conv2d/Linear weight under ``modules``, multiplied by ``scale``;
    biases zero; BatchNorm to identity. The ClassSR/BasicSR-v0 networks start this way with ``scale=0.1``,
    which keeps deep residual stacks near the identity at the start of training."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, MeanShift):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                with torch.no_grad():
                    m.weight.mul_(scale)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
