"""RDN (Zhang et al., "Residual Dense Network for Image Super-Resolution", CVPR 2018) with the layer names of
EDSR-PyTorch's port, which LIIF uses as its encoder (``no_upsampling``)."""

from __future__ import annotations

import torch
from torch import nn

from .common import check_scale

CONFIGS = {"A": (20, 6, 32), "B": (16, 8, 64)}
"""The paper's two settings as (D, C, G): RDBs, conv layers per RDB, growth rate."""


class DenseLayer(nn.Module):
    """Conv + ReLU whose output is appended to its input (key ``conv.0``)."""

    def __init__(self, in_channels: int, growth: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, growth, kernel_size, padding=kernel_size // 2), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], dim=1)


class RDB(nn.Module):
    """Residual dense block: ``C`` dense layers, 1x1 local fusion back to ``G0`` channels, local skip.
    Keys ``convs.{0..C-1}.conv.0``, ``LFF``."""

    def __init__(self, G0: int, G: int, C: int, kernel_size: int = 3) -> None:  # noqa: N803 (paper names)
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(G0 + c * G, G, kernel_size) for c in range(C)])
        self.LFF = nn.Conv2d(G0 + C * G, G0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """RDN: two shallow convs, ``D`` residual dense blocks, global feature fusion, sub-pixel upsampling.

    Args:
        G0: feature channels between blocks (64).
        D, C, G: RDBs, dense layers per RDB, growth rate. Defaults are config B (16, 8, 64), the setting
            LIIF uses; config A is (20, 6, 32) (see ``CONFIGS``).
        kernel_size: kernel of the 3x3 convs (3).
        scale: 2, 3 (one conv to ``G * scale**2`` + PixelShuffle) or 4 (two convs to 4G + PixelShuffle(2));
            ignored when ``no_upsampling``.
        img_range: pixel range of the weights; the [0, 1] input is multiplied by it and the output divided
            by it (EDSR-PyTorch trains RDN in [0, 255]). RDN has no mean shift.
        no_upsampling: encoder mode, as LIIF uses RDN: no ``UPNet``; ``forward`` maps the input *as given*
            (LIIF feeds ``(x - 0.5) / 0.5``) to ``G0`` LR-resolution features, with no range scaling.
        n_colors: input and output channels (3).

    Shapes: (N, n_colors, H, W) in [0, 1] -> (N, n_colors, scale*H, scale*W), nominally [0, 1] (not
    clamped); encoder mode: (N, n_colors, H, W) -> (N, G0, H, W).

    State-dict keys: ``SFENet1``, ``SFENet2``, ``RDBs.{d}.convs.{c}.conv.0``, ``RDBs.{d}.LFF``,
    ``GFF.{0,1}``, ``UPNet.{0,2}`` (x2/x3) or ``UPNet.{0,2,4}`` (x4).
    """

    def __init__(
        self,
        G0: int = 64,  # noqa: N803 (paper names)
        D: int = 16,  # noqa: N803
        C: int = 8,  # noqa: N803
        G: int = 64,  # noqa: N803
        kernel_size: int = 3,
        scale: int = 4,
        img_range: float = 255.0,
        no_upsampling: bool = False,
        n_colors: int = 3,
    ) -> None:
        super().__init__()
        self.scale = scale if no_upsampling else check_scale("rdn", scale, (2, 3, 4))
        self.img_range = float(img_range)
        self.no_upsampling = no_upsampling
        self.out_dim = G0 if no_upsampling else n_colors
        pad = kernel_size // 2
        self.SFENet1 = nn.Conv2d(n_colors, G0, kernel_size, padding=pad)
        self.SFENet2 = nn.Conv2d(G0, G0, kernel_size, padding=pad)
        self.RDBs = nn.ModuleList([RDB(G0, G, C, kernel_size) for _ in range(D)])
        self.GFF = nn.Sequential(nn.Conv2d(D * G0, G0, 1), nn.Conv2d(G0, G0, kernel_size, padding=pad))
        if not no_upsampling:
            if self.scale == 4:
                layers = [
                    nn.Conv2d(G0, 4 * G, kernel_size, padding=pad),
                    nn.PixelShuffle(2),
                    nn.Conv2d(G, 4 * G, kernel_size, padding=pad),
                    nn.PixelShuffle(2),
                ]
            else:
                layers = [nn.Conv2d(G0, self.scale**2 * G, kernel_size, padding=pad), nn.PixelShuffle(self.scale)]
            self.UPNet = nn.Sequential(*layers, nn.Conv2d(G, n_colors, kernel_size, padding=pad))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """LR features (N, G0, H, W) of an input already in the weights' range."""
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, dim=1)) + shallow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.no_upsampling:
            return self.features(x)
        return self.UPNet(self.features(x * self.img_range)) / self.img_range
