"""MSRResNet: the "modified SRResNet" of BasicSR v0 / ClassSR (SRResNet of Ledig et al., CVPR 2017, without
batch norm, with LeakyReLU and a bilinear global skip), with ClassSR's layer names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import check_scale, scaled_kaiming_init_


class ResidualBlockNoBN(nn.Module):
    """``x + conv2(relu(conv1(x)))``; keys ``conv1``, ``conv2``; starts at He-normal x 0.1."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)
        scaled_kaiming_init_([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """MSRResNet as in ClassSR (``codes/models/archs/SRResNet_arch.py``).

    Args:
        in_nc: input channels (3).
        out_nc: output channels (3).
        nf: feature channels (official 64; ClassSR branches 36 / 52 / 64).
        nb: residual blocks (official 16).
        scale: 2 or 3 (one ``upconv1`` to ``scale**2 * nf`` channels + PixelShuffle), or 4 (``upconv1`` and
            ``upconv2``, each to 4nf + PixelShuffle(2)), each followed by LeakyReLU(0.1).

    Works in [0, 1] (no range scaling, no mean shift). Output = network branch + bilinear upscaling of the
    input (``align_corners=False``). Shapes: (N, in_nc, H, W) -> (N, out_nc, scale*H, scale*W).

    State-dict keys: ``conv_first``, ``recon_trunk.{0..nb-1}.conv{1,2}``, ``upconv1``, ``upconv2`` (x4 only),
    ``HRconv``, ``conv_last``.
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 16, scale: int = 4) -> None:
        super().__init__()
        self.scale = check_scale("msrresnet", scale, (2, 3, 4))
        self.conv_first = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.recon_trunk = nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(nb)])
        if self.scale == 4:
            self.upconv1 = nn.Conv2d(nf, 4 * nf, 3, padding=1)
            self.upconv2 = nn.Conv2d(nf, 4 * nf, 3, padding=1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(nf, self.scale**2 * nf, 3, padding=1)
            self.pixel_shuffle = nn.PixelShuffle(self.scale)
        self.HRconv = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, out_nc, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        init = [self.conv_first, self.upconv1, self.HRconv, self.conv_last]
        if self.scale == 4:
            init.append(self.upconv2)
        scaled_kaiming_init_(init, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.recon_trunk(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.HRconv(out)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
