"""GLEAN (Chan, Wang, Xu, Gu, Loy, "GLEAN: Generative Latent Bank for Large-Factor Image Super-Resolution",
CVPR 2021) with the state-dict layout of MMagic's ``GLEANStyleGANv2``.

An RRDB encoder turns the (fixed-size) LR image into multi-scale features and, at 4x4, into one latent code
per StyleGAN2 layer (W+). A pretrained, frozen StyleGAN2 generator (the "latent bank") is run on those
codes with the encoder features fused into its coarse layers; its finer features feed a pixel-shuffle
decoder, which produces the image. The StyleGAN2 mapping MLP and RGB branch are kept (their weights are in
every checkpoint) although the output does not come from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptor import ModelDescriptor
from ..errors import ConfigError, SrkitError
from .stylegan2 import BLUR_KERNEL, StyleGAN2Generator


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualDenseBlock(nn.Module):
    """ESRGAN dense block: five 3x3 convs (keys ``conv1``..``conv5``), each seeing all earlier outputs,
    LeakyReLU(0.2) after the first four; output ``x + 0.2 * conv5``."""

    def __init__(self, channels: int = 64, growth: int = 32) -> None:
        super().__init__()
        for i in range(5):
            out = channels if i == 4 else growth
            self.add_module(f"conv{i + 1}", nn.Conv2d(channels + i * growth, out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Three dense blocks (``rdb1``..``rdb3``) with a 0.2-scaled residual around them."""

    def __init__(self, channels: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(channels, growth)
        self.rdb2 = ResidualDenseBlock(channels, growth)
        self.rdb3 = ResidualDenseBlock(channels, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBFeatureExtractor(nn.Module):
    """ESRGAN's trunk without upsampling: ``f + conv_body(body(f))`` with ``f = conv_first(x)``.
    Keys ``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``, ``conv_body``."""

    def __init__(self, in_channels: int = 3, channels: int = 64, num_blocks: int = 23, growth: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(channels, growth) for _ in range(num_blocks)])
        self.conv_body = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        return feat + self.conv_body(self.body(feat))


class PixelShufflePack(nn.Module):
    """3x3 conv to ``out * 4`` channels (key ``upsample_conv``), then PixelShuffle(2); no activation."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample_conv = nn.Conv2d(in_channels, out_channels * 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), 2)


def _log2(value: Any, what: str) -> int:
    n = int(value).bit_length() - 1 if isinstance(value, int) and not isinstance(value, bool) and value > 0 else -1
    if n < 0 or value != 2**n:
        raise ConfigError(f"glean: {what} must be a power of two, not {value!r}")
    return n


class GLEAN(nn.Module):
    """GLEAN with a StyleGAN2 latent bank (MMagic ``GLEANStyleGANv2``).

    Args:
        in_size: side of the (square) LR input, a power of two from 4 up, below ``out_size``. Official
            models: 16 and 32 (cat, out 256), 64 and 128 (faces, out 1024).
        out_size: side of the output, the StyleGAN2 resolution (8..1024). The scale is ``out_size / in_size``.
        img_channels: image channels (3, RGB).
        rrdb_channels, num_rrdbs: width and depth of the RRDB encoder trunk (64, 23; growth 32).
        style_channels, num_mlps, channel_multiplier, blur_kernel, lr_mlp: of the StyleGAN2 generator
            (512, 8, 2, [1, 3, 3, 1], 0.01: config-f).
        max_channels: caps the width of every bank layer, and so of the encoder, fusion and decoder layers that
            match it (None: config-f's 512, as every released model). For small CPU runs and tests.
        randomize_noise: False (default, as official GLEAN): the StyleGAN2 layers add their fixed noise
            buffers ``generator.injected_noise_{k}`` (stored in checkpoints), so the output is deterministic.
            True draws fresh N(0, 1) noise per call, as StyleGAN2 sampling does (not what GLEAN was
            trained or evaluated with).

    ``forward(lr)``: (N, img_channels, in_size, in_size) RGB in [0, 1] -> (N, img_channels, out_size,
    out_size), nominally [0, 1] (not clamped). Internally GLEAN works in [-1, 1] (MMagic normalises with
    mean = std = 127.5); :meth:`forward_official` is that interface. Any other input size is an error: GLEAN
    has a fixed input size (resize or crop to ``in_size`` first).

    The latent bank is frozen (``requires_grad_(False)``), as in the official model. State-dict keys equal
    those of MMagic's ``GLEANStyleGANv2`` (``encoder.*``, ``fusion_out.*``, ``fusion_skip.*``,
    ``decoder.*``, ``generator.*``).
    """

    def __init__(
        self,
        in_size: int = 64,
        out_size: int = 1024,
        img_channels: int = 3,
        rrdb_channels: int = 64,
        num_rrdbs: int = 23,
        style_channels: int = 512,
        num_mlps: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        lr_mlp: float = 0.01,
        randomize_noise: bool = False,
        max_channels: int | None = None,
    ) -> None:
        super().__init__()
        log_in, log_out = _log2(in_size, "in_size"), _log2(out_size, "out_size")
        if not 2 <= log_in < log_out <= 10:
            raise ConfigError(
                f"glean: need 4 <= in_size < out_size <= 1024, got in_size {in_size}, out_size {out_size}"
            )
        self.in_size, self.out_size = in_size, out_size
        self.scale = out_size // in_size
        self.style_channels = style_channels
        self.randomize_noise = randomize_noise
        self.generator = StyleGAN2Generator(out_size, style_channels, num_mlps, channel_multiplier, blur_kernel,
                                            lr_mlp, out_channels=img_channels, max_channels=max_channels)
        self.generator.requires_grad_(False)
        ch = self.generator.channels
        num_styles = 2 * log_out - 2

        # encoder: RRDB trunk at in_size, then stride-2 stages down to 4x4, then the W+ head
        self.encoder = nn.ModuleList([
            nn.Sequential(RRDBFeatureExtractor(img_channels, rrdb_channels, num_rrdbs),
                          nn.Conv2d(rrdb_channels, ch[in_size], 3, padding=1), _lrelu())
        ])
        encoder_res = [2**i for i in range(log_in, 1, -1)]  # in_size, ..., 4
        for res in encoder_res:
            c = ch[res]
            if res > 4:
                c2 = ch[res // 2]
                block = nn.Sequential(nn.Conv2d(c, c2, 3, stride=2, padding=1), _lrelu(),
                                      nn.Conv2d(c2, c2, 3, padding=1), _lrelu())
            else:
                block = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), _lrelu(), nn.Flatten(),
                                      nn.Linear(16 * c, num_styles * style_channels))
            self.encoder.append(block)

        # fusion of encoder features into the generator at 4, 8, ..., in_size
        self.fusion_out = nn.ModuleList([nn.Conv2d(2 * ch[r], ch[r], 3, padding=1) for r in encoder_res[::-1]])
        self.fusion_skip = nn.ModuleList([nn.Conv2d(ch[r] + 3, 3, 3, padding=1) for r in encoder_res[::-1]])

        # decoder: x2 pixel-shuffle stages from in_size to out_size, then two convs to the image
        self.decoder = nn.ModuleList()
        for i in range(log_in, log_out + 1):
            res = 2**i
            c_in = ch[res] if res == in_size else 2 * ch[res]
            if res < out_size:
                self.decoder.append(PixelShufflePack(c_in, ch[2 * res]))
            else:
                self.decoder.append(nn.Sequential(nn.Conv2d(c_in, 64, 3, padding=1), _lrelu(),
                                                  nn.Conv2d(64, img_channels, 3, padding=1)))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return (self.forward_official(lr * 2 - 1) + 1) / 2

    def forward_official(self, lq: torch.Tensor) -> torch.Tensor:
        """The official interface: (N, C, in_size, in_size) in [-1, 1] -> (N, C, out_size, out_size) in [-1, 1]."""
        n, _, h, w = lq.shape
        if h != self.in_size or w != self.in_size:
            raise SrkitError(
                f"GLEAN x{self.scale} takes exactly {self.in_size}x{self.in_size} inputs (its StyleGAN2 latent bank "
                f"fixes the output at {self.out_size}x{self.out_size}), got {h}x{w}; resize the LR image first"
            )
        feats = []
        x = lq
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        latent = feats[-1].view(n, -1, self.style_channels)  # W+: one code per StyleGAN2 layer
        enc = feats[-2::-1]  # 4x4, 8x8, ..., in_size

        g = self.generator
        noise: list[torch.Tensor | None] = (
            [None] * g.num_injected_noises if self.randomize_noise else list(g.injected_noise())
        )
        out = g.conv1(g.constant_input(n), latent[:, 0], noise[0])
        skip = g.to_rgb1(out, latent[:, 1])
        bank_feats = []
        for j, to_rgb in enumerate(g.to_rgbs):
            i = 2 * j + 1
            if out.shape[2] <= self.in_size:
                f = enc[j]
                out = self.fusion_out[j](torch.cat([out, f], 1))
                skip = self.fusion_skip[j](torch.cat([skip, f], 1))
            out = g.convs[2 * j](out, latent[:, i], noise[i])
            out = g.convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            # The RGB skip is kept as official (it feeds the fusions) though the image comes from the decoder.
            skip = to_rgb(out, latent[:, i + 2], skip)
            if out.shape[2] > self.in_size:
                bank_feats.append(out)

        hr = enc[-1]
        for i, block in enumerate(self.decoder):
            if i > 0:
                hr = torch.cat([hr, bank_feats[i - 1]], 1)
            hr = block(hr)
        return hr


def describe(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    """Descriptor of :class:`GLEAN`: scale ``out_size / in_size``; the input must be exactly ``in_size``
    square (``fixed_size``: the upscaler neither tiles nor pads it and refuses other sizes).
    Every output pixel depends on the whole input (the latent codes come from a fully connected layer), so
    the receptive field is the input side. Half precision is not claimed (untested with real weights)."""
    in_size, out_size = int(kw["in_size"]), int(kw["out_size"])
    _log2(in_size, "in_size")
    _log2(out_size, "out_size")
    if not 4 <= in_size < out_size <= 1024:
        raise ConfigError(f"glean: need 4 <= in_size < out_size <= 1024, got in_size {in_size}, out_size {out_size}")
    return ModelDescriptor(arch=name, scales=(out_size // in_size,), in_channels=int(kw["img_channels"]),
                           min_size=in_size, fixed_size=in_size, receptive_field=in_size, supports_half=False)
