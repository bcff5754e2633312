"""DASR (Wang et al., "Unsupervised Degradation Representation Learning for Blind Super-Resolution",
CVPR 2021): blind SR conditioned on a degradation representation that an encoder reads from the LR image.

Two networks:

* :class:`DegradationEncoder` (official ``Encoder``): six 3x3 convs, each followed by batch norm and
  LeakyReLU(0.1) (3 -> 64 -> 64 -> 128 (stride 2) -> 128 -> 256 (stride 2) -> 256), global average pool
  -> the 256-d **representation**; an MLP head (256 -> 256, LeakyReLU(0.1), 256 -> 256) maps it to the
  embedding that the contrastive (MoCo) loss compares. Only the representation is used for SR.
* :class:`DASRNet` (official ``DASR``, the generator ``G``): head conv, five degradation-aware groups of five
  degradation-aware blocks, body-end conv, long skip, sub-pixel tail; MeanShift in and out. The
  representation is compressed once (linear 256 -> 64, LeakyReLU) and conditions every block through its two
  :class:`DAConv` layers: a per-sample depth-wise 3x3 kernel predicted from the representation, and a channel
  attention computed from it.

:class:`DASR` holds both (``G`` and ``E.encoder_q``) and does blind SR: ``net(lr)`` encodes the LR image,
then super-resolves it with that representation.

Conventions (srkit): input and output float32 RGB in [0, 1], NCHW. The official networks work on [0, 255]
(the encoder sees raw [0, 255] pixels, no mean shift; ``G`` subtracts 255 x the DIV2K mean), so
:class:`DASR` multiplies by 255 on the way in and divides on the way out. :class:`DASRNet` and
:class:`DegradationEncoder` themselves take [0, 255] tensors, as the official modules do.

Batches: the per-sample depth-wise kernels run as one grouped convolution with ``groups = B * C`` over the
batch folded into channels, so any batch size works and each sample sees only its own kernel. In eval mode
the encoder's batch norm uses running statistics, so a batch gives what its samples give one by one.

The representation pools over the whole input: a tile of an image gets a slightly different representation
than the whole image. :meth:`DASR.represent` computes it once for the whole LR image (tile by tile if asked,
with the same result) and ``forward(lr, representation)`` reuses it for every tile.

State-dict keys are the official ones (``BlindSR`` minus the training-only MoCo key encoder and queue):
``G.sub_mean``, ``G.add_mean``, ``G.head.0``, ``G.compress.0``, ``G.body.{g}.body.{b}.da_conv{1,2}.kernel.{0,2}``,
``G.body.{g}.body.{b}.da_conv{1,2}.conv``, ``G.body.{g}.body.{b}.da_conv{1,2}.ca.conv_du.{0,2}``,
``G.body.{g}.body.{b}.conv{1,2}``, ``G.body.{g}.body.5``, ``G.body.5``, ``G.tail.0.{0,2}``, ``G.tail.1``;
``E.encoder_q.E.{0,3,6,9,12,15}`` (convs), ``E.encoder_q.E.{1,4,...,16}`` (batch norms), ``E.encoder_q.mlp.{0,2}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptor import ModelDescriptor
from .common import MeanShift, Upsampler, check_scale, conv

SCALES = (2, 3, 4)
REPRESENTATION_DIM = 256
"""Width of the degradation representation (the encoder's pooled feature)."""
IMG_RANGE = 255.0
"""Pixel range of the official networks."""

ENCODER_CONTEXT = 16
"""LR pixels of context a tile of the degradation encoder needs (its receptive field reaches 11), a multiple of 4."""

_N_GROUPS = 5
_N_BLOCKS = 5
_N_FEATS = 64
_KERNEL = 3
_REDUCTION = 8


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1, inplace=True)


class DegradationEncoder(nn.Module):
    """Official ``Encoder``: [0, 255] RGB LR (B, 3, H, W) -> (representation (B, 256), embedding (B, 256)).

    Keys: ``E.{0,3,6,9,12,15}`` convs, ``E.{1,4,7,10,13,16}`` batch norms (the LeakyReLUs and the pool hold
    no weights), ``mlp.{0,2}`` linears.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        # (in, out, stride) of the six convs
        for c_in, c_out, stride in ((3, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2),
                                    (256, 256, 1)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), _lrelu()]
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.E = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(REPRESENTATION_DIM, REPRESENTATION_DIM), _lrelu(),
            nn.Linear(REPRESENTATION_DIM, REPRESENTATION_DIM),
        )

    def represent(self, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """The 256-d degradation representation of [0, 255] images (B, 3, H, W) -> (B, 256).

        ``tile`` (LR pixels, eval mode): run the convolutions on tiles of about that side, each with
        ``ENCODER_CONTEXT`` pixels of context, and average the final feature map's core pixels; the result is
        the whole-image representation (up to float summation order) at the memory cost of one tile.
        """
        p = next(self.parameters())
        if tile is None or (x.shape[-2] <= tile and x.shape[-1] <= tile):
            return self.E(x.to(p.device, p.dtype)).flatten(1)
        return self._represent_tiled(x, tile)

    def _represent_tiled(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        features = self.E[:-1]  # everything but the global pool
        # Tiles start at multiples of 4 so that the two stride-2 convs sample the whole image's grid.
        t, m = max(4, tile // 4 * 4), ENCODER_CONTEXT
        h, w = x.shape[-2:]
        p = next(self.parameters())  # x may stay on the CPU: only one tile at a time visits the device
        total = torch.zeros(x.shape[0], REPRESENTATION_DIM, device=p.device, dtype=p.dtype)
        for y0 in range(0, h, t):
            y1, ya, yb = min(y0 + t, h), max(y0 - m, 0), min(y0 + t + m, h)
            for x0 in range(0, w, t):
                x1, xa, xb = min(x0 + t, w), max(x0 - m, 0), min(x0 + t + m, w)
                f = features(x[..., ya:yb, xa:xb].to(p.device, p.dtype))
                # final-map pixel g sits over LR pixel 4g; keep those of this tile's core
                r0, c0 = (y0 - ya) // 4, (x0 - xa) // 4
                r1, c1 = r0 + -(-y1 // 4) - y0 // 4, c0 + -(-x1 // 4) - x0 // 4
                total += f[..., r0:r1, c0:c1].sum((2, 3))
        return total / (-(-h // 4) * -(-w // 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fea = self.represent(x)
        return fea, self.mlp(fea)


class CALayer(nn.Module):
    """Channel attention driven by the compressed representation, not by the feature map: 1x1 (C -> C/r,
    no bias), LeakyReLU(0.1), 1x1 (C/r -> C, no bias), sigmoid. Key: ``conv_du.{0,2}``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=False), _lrelu(),
            nn.Conv2d(channels // reduction, channels, 1, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(r[:, :, None, None])


class DAConv(nn.Module):
    """Degradation-aware convolution: ``conv1x1(lrelu(dwconv(x, k(r)))) + x * ca(r)``.

    ``k(r)``: linear (64 -> 64, no bias), LeakyReLU(0.1), linear (64 -> C*k*k, no bias), one k x k kernel per
    channel and sample. Keys: ``kernel.{0,2}``, ``conv`` (1x1 with bias), ``ca.conv_du.{0,2}``.
    """

    def __init__(self, channels: int, kernel_size: int, reduction: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.kernel = nn.Sequential(
            nn.Linear(_N_FEATS, _N_FEATS, bias=False), _lrelu(),
            nn.Linear(_N_FEATS, channels * kernel_size * kernel_size, bias=False),
        )
        self.conv = conv(channels, channels, 1)
        self.ca = CALayer(channels, reduction)
        self.act = _lrelu()

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.kernel_size
        weight = self.kernel(r).reshape(b * c, 1, k, k)
        # Fold the batch into channels so one grouped conv applies each sample's own kernels.
        y = F.conv2d(x.reshape(1, b * c, h, w), weight, groups=b * c, padding=k // 2)
        y = self.conv(self.act(y).reshape(b, c, h, w))
        return y + self.ca(x, r)


class DAB(nn.Module):
    """Degradation-aware block: DAConv, LReLU, conv, LReLU, DAConv, LReLU, conv, plus the block input.
    Keys: ``da_conv1``, ``da_conv2``, ``conv1``, ``conv2``."""

    def __init__(self, n_feats: int, kernel_size: int, reduction: int) -> None:
        super().__init__()
        self.da_conv1 = DAConv(n_feats, kernel_size, reduction)
        self.da_conv2 = DAConv(n_feats, kernel_size, reduction)
        self.conv1 = conv(n_feats, n_feats, kernel_size)
        self.conv2 = conv(n_feats, n_feats, kernel_size)
        self.act = _lrelu()

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        y = self.act(self.da_conv1(x, r))
        y = self.act(self.conv1(y))
        y = self.act(self.da_conv2(y, r))
        return self.conv2(y) + x


class DAG(nn.Module):
    """Degradation-aware group: ``n_blocks`` DABs, a conv, plus the group input. Key: ``body.{0..n_blocks}``
    (the last index is the conv)."""

    def __init__(self, n_feats: int, kernel_size: int, reduction: int, n_blocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[DAB(n_feats, kernel_size, reduction) for _ in range(n_blocks)], conv(n_feats, n_feats, kernel_size)
        )

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        y = x
        for block in self.body[:-1]:
            y = block(y, r)
        return self.body[-1](y) + x


class DASRNet(nn.Module):
    """The DASR generator (official ``DASR``): [0, 255] RGB LR (B, 3, H, W) and a representation (B, 256)
    -> [0, 255] RGB SR (B, 3, sH, sW). Five groups of five blocks, 64 features, hard-coded as officially."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = check_scale("dasr", scale, SCALES)
        self.sub_mean = MeanShift(IMG_RANGE, sign=-1)
        self.add_mean = MeanShift(IMG_RANGE, sign=1)
        self.head = nn.Sequential(conv(3, _N_FEATS, _KERNEL))
        self.compress = nn.Sequential(nn.Linear(REPRESENTATION_DIM, _N_FEATS, bias=False), _lrelu())
        self.body = nn.Sequential(
            *[DAG(_N_FEATS, _KERNEL, _REDUCTION, _N_BLOCKS) for _ in range(_N_GROUPS)],
            conv(_N_FEATS, _N_FEATS, _KERNEL),
        )
        self.tail = nn.Sequential(Upsampler(self.scale, _N_FEATS), conv(_N_FEATS, 3, _KERNEL))

    def forward(self, x: torch.Tensor, representation: torch.Tensor) -> torch.Tensor:
        r = self.compress(representation)
        x = self.head(self.sub_mean(x))
        y = x
        for group in self.body[:-1]:
            y = group(y, r)
        y = self.body[-1](y) + x
        return self.add_mean(self.tail(y))


class DASR(nn.Module):
    """Blind SR with DASR: float32 RGB [0, 1] LR (B, 3, H, W) -> float32 RGB SR (B, 3, sH, sW), not clipped.

    ``G`` is the generator, ``E.encoder_q`` the degradation encoder (the name keeps the official keys; the
    MoCo key encoder and queue are training state of :mod:`srkit.methods.dasr`, not part of the network).
    Put the network in ``eval()`` for inference: the encoder has batch norms.
    """

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = check_scale("dasr", scale, SCALES)
        self.G = DASRNet(self.scale)
        self.E = nn.ModuleDict({"encoder_q": DegradationEncoder()})

    @property
    def encoder(self) -> DegradationEncoder:
        return self.E["encoder_q"]  # type: ignore[return-value]

    def represent(self, lr: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Degradation representation (B, 256) of RGB [0, 1] LR images (B, 3, H, W); with ``tile``, computed
        tile by tile with the same result (eval mode), for images too large for one encoder pass."""
        return self.encoder.represent(lr * IMG_RANGE, tile)

    def forward(self, lr: torch.Tensor, representation: torch.Tensor | None = None) -> torch.Tensor:
        """SR of ``lr`` (RGB [0, 1]); ``representation`` (B, 256) from :meth:`represent`, by default that of
        ``lr`` itself."""
        x = lr * IMG_RANGE
        if representation is None:
            representation = self.encoder.represent(x)
        return self.G(x, representation) / IMG_RANGE


def describe(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    """Descriptor of :class:`DASR`: fixed scale, any input size. Receptive field of the conv path: head 1,
    five groups of (five blocks x four 3x3 convs + one conv), body-end 1, then the tail; the representation
    (global pool) makes every output pixel depend on the whole input, which :meth:`DASR.represent` lets a
    tiler compute once."""
    from . import _rf, _upsampler_terms

    scale = check_scale(name, kw["scale"], SCALES)
    lr = 1 + _N_GROUPS * (_N_BLOCKS * 4 + 1) + 1
    return ModelDescriptor(arch=name, scales=(scale,), receptive_field=_rf(lr, [*_upsampler_terms(scale), (1, scale)]))
