"""EDSR and EDSR-baseline (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017), with the layer names of EDSR-PyTorch so that its checkpoints (and LIIF's encoders) load as-is."""

from __future__ import annotations

import torch
from torch import nn

from .common import MeanShift, ResBlock, Upsampler, check_scale, conv


class EDSR(nn.Module):
    """EDSR: head conv, ``n_resblocks`` residual blocks + conv with a long skip, sub-pixel tail.

    Args:
        n_resblocks: residual blocks in the body (EDSR-baseline 16, EDSR 32).
        n_feats: feature channels (baseline 64, EDSR 256).
        res_scale: residual scaling inside each block (baseline 1, EDSR 0.1).
        scale: upscaling factor, 2, 3, 4 or 8 (ignored when ``no_upsampling``).
        img_range: pixel range the weights were trained in. EDSR-PyTorch uses 255: the input in [0, 1]
            is multiplied by it, the output divided by it, and the mean shift is ``img_range * DIV2K mean``.
        no_upsampling: encoder mode, as LIIF uses EDSR-baseline: no ``tail``; ``forward`` maps the input
            *as given* (LIIF feeds ``(x - 0.5) / 0.5``) to ``n_feats`` LR-resolution features, with no range
            scaling and no mean shift (LIIF does not apply it, but its checkpoints still hold
            ``sub_mean``/``add_mean``, so they are kept here too).

    Shapes: (N, 3, H, W) RGB in [0, 1] -> (N, 3, scale*H, scale*W) RGB, nominally [0, 1] (not clamped);
    encoder mode: (N, 3, H, W) -> (N, n_feats, H, W).

    State-dict keys: ``sub_mean``, ``add_mean``, ``head.0``, ``body.{i}.body.{0,2}``,
    ``body.{n_resblocks}``, ``tail.0.{0,2,..}`` (upsampler convs), ``tail.1``.
    """

    def __init__(
        self,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        scale: int = 4,
        img_range: float = 255.0,
        no_upsampling: bool = False,
    ) -> None:
        super().__init__()
        self.scale = scale if no_upsampling else check_scale("edsr", scale, (2, 3, 4, 8))
        self.img_range = float(img_range)
        self.no_upsampling = no_upsampling
        self.out_dim = n_feats if no_upsampling else 3
        self.sub_mean = MeanShift(self.img_range, sign=-1)
        self.add_mean = MeanShift(self.img_range, sign=1)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, 3, res_scale) for _ in range(n_resblocks)], conv(n_feats, n_feats, 3)
        )
        if not no_upsampling:
            self.tail = nn.Sequential(Upsampler(self.scale, n_feats), conv(n_feats, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.no_upsampling:
            x = self.head(x)
            return self.body(x) + x
        x = self.sub_mean(x * self.img_range)
        x = self.head(x)
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.img_range
