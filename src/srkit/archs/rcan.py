"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV 2018),
laid out as in EDSR-PyTorch and in ClassSR's RCAN branches, so that their checkpoints load as-is."""

from __future__ import annotations

import torch
from torch import nn

from .common import MeanShift, Upsampler, check_scale, conv, scaled_kaiming_init_


class CALayer(nn.Module):
    """Channel attention: global average pool -> 1x1 (C -> C/r) -> ReLU -> 1x1 (C/r -> C) -> sigmoid gate.

    Keys: ``conv_du.0``, ``conv_du.2``. The pooling makes every output depend on the whole input, so
    RCAN has no finite receptive field (tiled inference differs slightly from whole-image inference).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel-attention block: ``x + CA(conv(relu(conv(x))))``; keys ``body.{0,2}`` (convs),
    ``body.3`` (CA). The official code ignores ``res_scale`` here, and so does this one."""

    def __init__(self, n_feats: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feats, n_feats, 3), nn.ReLU(inplace=True), conv(n_feats, n_feats, 3), CALayer(n_feats, reduction)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a conv, with a skip: keys ``body.{0..n-1}`` (RCABs), ``body.{n}`` (conv)."""

    def __init__(self, n_feats: int, reduction: int, n_resblocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(n_feats, reduction) for _ in range(n_resblocks)], conv(n_feats, n_feats, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(nn.Module):
    """RCAN: head conv, ``n_resgroups`` residual groups + conv with a long skip, sub-pixel tail.

    Args:
        n_resgroups: residual groups (official 10).
        n_resblocks: RCABs per group (official 20).
        n_feats: feature channels (official 64; ClassSR branches 36 / 50 / 64).
        reduction: channel-attention reduction ratio (official 16).
        scale: upscaling factor, 2, 3, 4 or 8.
        img_range: pixel range of the weights. EDSR-PyTorch and ClassSR's RCAN branches work in [0, 255]:
            the [0, 1] input is multiplied by it and the output divided by it; the mean shift is
            ``img_range * DIV2K mean``.

    Shapes: (N, 3, H, W) RGB in [0, 1] -> (N, 3, scale*H, scale*W) RGB, nominally [0, 1] (not clamped).

    State-dict keys: ``sub_mean``, ``add_mean``, ``head.0``, ``body.{g}.body.{b}.body.{0,2}`` (RCAB convs),
    ``body.{g}.body.{b}.body.3.conv_du.{0,2}`` (attention), ``body.{g}.body.{n_resblocks}`` (group conv),
    ``body.{n_resgroups}``, ``tail.0.{0,2,..}``, ``tail.1``.

    Weights start as in ClassSR (He-normal x 0.1, zero bias), which keeps the 200-conv stack stable.
    The mean shifts are frozen here, as in EDSR-PyTorch; ClassSR's version leaves them trainable (it sets a
    module attribute instead of freezing the parameters), so its checkpoints may hold slightly moved
    ``sub_mean``/``add_mean`` values; they load and run as stored.
    """

    def __init__(
        self,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        scale: int = 4,
        img_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = check_scale("rcan", scale, (2, 3, 4, 8))
        self.img_range = float(img_range)
        self.sub_mean = MeanShift(self.img_range, sign=-1)
        self.add_mean = MeanShift(self.img_range, sign=1)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(
            *[ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)],
            conv(n_feats, n_feats, 3),
        )
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), conv(n_feats, 3, 3))
        scaled_kaiming_init_([self.head, self.body, self.tail], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x * self.img_range)
        x = self.head(x)
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.img_range
