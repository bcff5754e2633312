"""FSRCNN (Dong et al., "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016) in the
form ClassSR trains it, with ClassSR's layer names (``head_conv``, ``body_conv``, ``tail_conv``)."""

from __future__ import annotations

import torch
from torch import nn

from .common import check_scale, scaled_kaiming_init_


def deconv_padding(scale: int, kernel_size: int = 9) -> tuple[int, int]:
    """(padding, output_padding) that make the stride-``scale`` transposed conv give exactly ``scale * H``.

    The output size is ``(H - 1) * s - 2p + k + op``; equal to ``s * H`` when ``2p - op = k - s``. The
    smallest such p with ``op >= 0`` gives ClassSR's (3, 1) at x4.
    """
    p = (kernel_size - scale + 1) // 2
    return p, 2 * p - (kernel_size - scale)


class FSRCNN(nn.Module):
    """FSRCNN as in ClassSR (``codes/models/archs/FSRCNN_arch.py``).

    Layout: feature extraction 5x5 (3 -> d) + PReLU; shrink 1x1 (d -> s) + PReLU; ``m`` 3x3 maps
    (s -> s) with *no* activation between them and one PReLU after the last; expand 1x1 (s -> d) + PReLU;
    9x9 transposed conv (d -> 3, stride ``scale``). Each PReLU has one shared slope.

    Args:
        d: feature channels (FSRCNN-O / ClassSR branch 3: 56; branches 1 / 2: 16 / 36).
        s: shrunk channels (12).
        m: mapping layers (4).
        scale: 2, 3 or 4. At x4 the deconv padding equals ClassSR's (3, output_padding 1); at x2 and x3 it
            is chosen so that the output is exactly ``scale * H`` (ClassSR only trains x4).
        n_colors: input and output channels (3).

    Works in [0, 1] (no range scaling, no mean shift, no global skip).
    Shapes: (N, n_colors, H, W) -> (N, n_colors, scale*H, scale*W).

    State-dict keys: ``head_conv.{0,1}``, ``body_conv.0.{0,1}`` (shrink + PReLU), ``body_conv.{1..m}``
    (maps), ``body_conv.{m+1}`` (PReLU), ``body_conv.{m+2}.{0,1}`` (expand + PReLU), ``tail_conv``
    (weight (d, n_colors, 9, 9), the ConvTranspose2d layout).
    """

    def __init__(self, d: int = 56, s: int = 12, m: int = 4, scale: int = 4, n_colors: int = 3) -> None:
        super().__init__()
        self.scale = check_scale("fsrcnn", scale, (2, 3, 4))
        self.head_conv = nn.Sequential(nn.Conv2d(n_colors, d, 5, padding=2), nn.PReLU())
        self.body_conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(d, s, 1), nn.PReLU()),
            *[nn.Conv2d(s, s, 3, padding=1) for _ in range(m)],
            nn.PReLU(),
            nn.Sequential(nn.Conv2d(s, d, 1), nn.PReLU()),
        )
        pad, out_pad = deconv_padding(self.scale)
        self.tail_conv = nn.ConvTranspose2d(
            d, n_colors, 9, stride=self.scale, padding=pad, output_padding=out_pad
        )
        # As in ClassSR: the Conv2d layers start at He-normal x 0.1; the transposed conv keeps PyTorch's default.
        scaled_kaiming_init_([self.head_conv, self.body_conv], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail_conv(self.body_conv(self.head_conv(x)))
