"""SMSR: Sparse Mask Super-Resolution (Wang et al., "Exploring Sparsity in Image Super-Resolution for
Efficient Inference", CVPR 2021).

The body is five *sparse mask modules* (SMM). Each SMM predicts a **spatial mask** (which pixels are "hard")
from its input and holds learnable **channel-mask** logits that split every output channel of its four 3x3
convolutions into a *dense* part (computed everywhere) and a *sparse* part (computed only where the spatial
mask is on). A 1x1 ``collect`` conv fuses the four layer outputs, a channel-attention layer reweights them and
a residual connection closes the module. The five module outputs are concatenated and fused, a sub-pixel
tail upsamples, and a bicubic upsampling of the (mean-subtracted) input is added.

Conventions (srkit): input and output are float32 RGB in [0, 1], NCHW. The official weights work on
[0, 255] with the DIV2K mean subtracted; the network scales and shifts internally (``img_range``,
``sub_mean``/``add_mean``). Any H and W are accepted: the mask generator halves and doubles the resolution,
so odd sizes are reflect-padded by one pixel and the output is cropped back (official code: even sizes only).

Masks. In training mode masks are soft, drawn with Gumbel-softmax at temperature :attr:`SMSR.tau`, and
``forward(x, return_sparsity=True)`` also returns the per-image, per-module fraction of the work kept
(the quantity the sparsity loss penalises). In eval mode masks are hard: a pixel is sparse-active where its
second mask logit exceeds the first, a channel is sparse where its second channel logit exceeds the first.

Inference paths (eval mode; all give the same numbers within float rounding, see tests/test_smsr.py):

* ``"dense"``: every convolution runs on the whole image with the masks applied by multiplication. Any batch
  size; the choice for GPUs.
* ``"sparse"``: channels are reordered into a dense group and a sparse group (the "kernel split", prepared
  once and re-prepared automatically when the weights change). The dense-to-dense part runs as an ordinary
  convolution over the dense channels only; everything that involves sparse channels is computed only at the
  active pixels, by gathering their 3x3 neighbourhoods into a compact (pixels x 9 channels) matrix and one
  matrix product. Features live in zero-bordered channels-last buffers so the gather is a plain row
  ``index_select``. Any batch size. The choice for CPUs.
* ``"auto"`` (default): sparse on CPU, dense elsewhere.
* ``"unmasked"``: ignores all masks (every channel dense, every pixel computed): the cost of the same network
  without SMSR's savings, for benchmarks only; its output is NOT SMSR's.

State-dict keys are the official ones: ``sub_mean``, ``add_mean``, ``head.{0,2}``,
``body.{k}.spa_mask.{0,3,5}``, ``body.{k}.body.ch_mask`` (1, C, 4, 2), ``body.{k}.body.body.{0..3}.weight``
(no bias), ``body.{k}.body.collect``, ``body.{k}.ca.conv_du.{0,2}``, ``collect.{0,2}``, ``tail.0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptor import ModelDescriptor
from ..errors import ConfigError
from .common import MeanShift, check_scale

PATHS = ("auto", "dense", "sparse", "unmasked")


def gumbel_softmax(logits: torch.Tensor, dim: int, tau: float) -> torch.Tensor:
    """Soft Gumbel-softmax sample (no straight-through): ``softmax((logits + g) / tau)``, g ~ Gumbel(0, 1)."""
    u = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)  # log(0) would give inf
    g = -torch.log(-torch.log(u))
    return ((logits + g) / tau).softmax(dim)


class CALayer(nn.Module):
    """RCAN channel attention: global average -> 1x1 (C -> C/r) -> ReLU -> 1x1 (C/r -> C) -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


@dataclass
class _Split:
    """The kernel split of one SMB for the sparse path (derived from its weights and hard channel masks)."""

    dense: list[torch.Tensor]  # per layer: indices of dense output channels
    sparse: list[torch.Tensor]  # per layer: indices of sparse output channels
    w_dd: list[torch.Tensor | None]  # (D_out, D_in, 3, 3) conv weight, dense in -> dense out
    w_ds: list[torch.Tensor | None]  # (9 D_in, S_out) dense in -> sparse out, rows tap-major
    w_s: list[torch.Tensor | None]  # (9 S_in, D_out + S_out) sparse in -> [dense | sparse] out
    c_d: torch.Tensor | None  # (sum D, C) collect rows of the dense channels
    c_s: torch.Tensor | None  # (sum S, C) collect rows of the sparse channels
    bias: torch.Tensor


def _taps(w: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) -> (9 I, O) with rows ordered (kh, kw, i), matching the gathered neighbourhood columns."""
    return w.permute(2, 3, 1, 0).reshape(-1, w.shape[0]).contiguous()


class SMB(nn.Module):
    """Sparse mask block: ``n_layers`` 3x3 convs (no bias) + ReLU with per-layer channel masks, then a 1x1
    ``collect`` over the concatenated layer outputs.

    ``ch_mask`` (1, C, n_layers, 2) holds the channel-mask logits ([..., 0] dense, [..., 1] sparse).
    """

    def __init__(self, channels: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.n_layers = n_layers
        self.tau = 1.0
        self.train_formula = "inference"
        self.ch_mask = nn.Parameter(torch.rand(1, channels, n_layers, 2))
        self.body = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(n_layers)])
        self.collect = nn.Conv2d(channels * n_layers, channels, 1)
        self._split: _Split | None = None
        self._split_key: tuple | None = None

    # -------------------------------------------------------------------------------------------- masks
    def hard_channel_mask(self) -> torch.Tensor:
        """(n_layers, C) bool, True where the channel is sparse (its sparse logit exceeds its dense one)."""
        logits = self.ch_mask[0]  # (C, L, 2)
        return (logits[..., 1] > logits[..., 0]).t()

    def _soft_channel_mask(self) -> torch.Tensor:
        """(n_layers, C, 2) Gumbel-softmax channel masks ([..., 0] dense, [..., 1] sparse)."""
        return gumbel_softmax(self.ch_mask[0], dim=-1, tau=self.tau).transpose(0, 1)

    # ------------------------------------------------------------------------------ masked (dense) forms
    def forward_masked(self, x: torch.Tensor, spa: torch.Tensor, ch: torch.Tensor) -> torch.Tensor:
        """Dense evaluation with masks applied by multiplication.

        ``spa`` (B, 1, H, W) spatial mask, ``ch`` (n_layers, C, 2) channel masks ([..., 0] dense, [..., 1]
        sparse), hard (0/1) or soft. Layer i with input X, the previous layer's channel masks (D_in, S_in)
        (layer 0: every input channel dense), its own (D, S) and spatial mask M computes
        ``relu(conv(X D_in) (D + S M) + conv(X S_in M) M)`` -- what the sparse computation yields.
        """
        outs = []
        fea = x
        for i, conv in enumerate(self.body):
            d, s = ch[i, :, 0].view(1, -1, 1, 1), ch[i, :, 1].view(1, -1, 1, 1)
            if i == 0:
                y = conv(fea) * (d + s * spa)
            elif self.training and self.train_formula == "official":
                # the released trainer splits the input by the *current* layer's masks
                y = conv(fea * d) * (d + s * spa) + conv(fea * s) * spa
            else:
                d_in, s_in = ch[i - 1, :, 0].view(1, -1, 1, 1), ch[i - 1, :, 1].view(1, -1, 1, 1)
                w = conv.weight
                if self.training:
                    a = F.conv2d(fea * d_in, w, padding=1)
                    b = F.conv2d(fea * (s_in * spa), w, padding=1)
                else:
                    # hard masks: the sparse input channels are already zero off the mask; one conv
                    # with both weight halves stacked costs the same as two and launches once
                    a, b = F.conv2d(fea, torch.cat([w * d_in, w * s_in]), padding=1).split(self.channels, 1)
                y = a * (d + s * spa) + b * spa
            fea = F.relu(y)
            outs.append(fea)
        return self.collect(torch.cat(outs, 1))

    def forward_unmasked(self, x: torch.Tensor) -> torch.Tensor:
        """Every channel dense, every pixel computed (cost baseline; not SMSR's output)."""
        outs = []
        fea = x
        for conv in self.body:
            fea = F.relu(conv(fea))
            outs.append(fea)
        return self.collect(torch.cat(outs, 1))

    # ---------------------------------------------------------------------------------------- sparse form
    def _state_key(self) -> tuple:
        params = [*(c.weight for c in self.body), self.collect.weight, self.collect.bias, self.ch_mask]
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)

    def prepare(self) -> _Split:
        """The kernel split for the sparse path; cached, recomputed when any weight or mask logit changes
        (in place or by replacement), so calling it after loading weights is never needed by hand."""
        key = self._state_key()
        if self._split is not None and self._split_key == key:
            return self._split
        with torch.no_grad():
            sparse_mask = self.hard_channel_mask()  # (L, C)
            ar = torch.arange(self.channels, device=sparse_mask.device)
            dense = [ar[~sparse_mask[i]] for i in range(self.n_layers)]
            sparse = [ar[sparse_mask[i]] for i in range(self.n_layers)]
            w_dd: list[torch.Tensor | None] = []
            w_ds: list[torch.Tensor | None] = []
            w_s: list[torch.Tensor | None] = []
            for i, conv in enumerate(self.body):
                w = conv.weight.detach()
                d_in, s_in = (ar, ar[:0]) if i == 0 else (dense[i - 1], sparse[i - 1])
                order = torch.cat([dense[i], sparse[i]])
                w_dd.append(w[dense[i]][:, d_in].contiguous() if len(dense[i]) and len(d_in) else None)
                w_ds.append(_taps(w[sparse[i]][:, d_in]) if len(sparse[i]) and len(d_in) else None)
                w_s.append(_taps(w[order][:, s_in]) if len(s_in) else None)
            cw = self.collect.weight.detach()[:, :, 0, 0]  # (C, L*C)
            c = self.channels
            rows_d = torch.cat([i * c + dense[i] for i in range(self.n_layers)])
            rows_s = torch.cat([i * c + sparse[i] for i in range(self.n_layers)])
            self._split = _Split(
                dense, sparse, w_dd, w_ds, w_s,
                cw[:, rows_d].t().contiguous() if len(rows_d) else None,
                cw[:, rows_s].t().contiguous() if len(rows_s) else None,
                self.collect.bias.detach().clone(),
            )
        self._split_key = key
        return self._split

    def forward_sparse(self, x: torch.Tensor, spa: torch.Tensor) -> torch.Tensor:
        """Hard-mask evaluation that computes sparse channels only at active pixels.

        ``x`` (B, C, H, W); ``spa`` (B, 1, H, W) with values 0/1. Returns (B, C, H, W), equal to
        :meth:`forward_masked` with the hard masks (within float rounding).
        """
        sp = self.prepare()
        b, c, h, w = x.shape
        hp, wp = h + 2, w + 2
        nz = spa[:, 0].nonzero()  # (N, 3): image, row, column of every active pixel
        n = nz.shape[0]
        pidx = nz[:, 0] * (hp * wp) + (nz[:, 1] + 1) * wp + (nz[:, 2] + 1)  # row in the padded buffers
        offs = torch.tensor([dy * wp + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=x.device)
        gidx = (pidx[:, None] + offs[None, :]).reshape(-1)  # 3x3 neighbourhood rows, tap-major

        # zero-bordered channels-last buffer of the input: (B, H+2, W+2, C)
        buf = x.new_zeros(b, hp, wp, c)
        buf[:, 1:-1, 1:-1].copy_(x.permute(0, 2, 3, 1))
        d_in, s_in = c, 0
        bufs = []
        for i in range(self.n_layers):
            nd, ns = len(sp.dense[i]), len(sp.sparse[i])
            out = x.new_zeros(b, hp, wp, nd + ns)
            if sp.w_dd[i] is not None:
                # dense -> dense over the whole image; the zero border of the buffer is the padding
                inp = buf[..., :d_in].permute(0, 3, 1, 2)
                out.permute(0, 3, 1, 2)[:, :nd, 1:-1, 1:-1].copy_(F.conv2d(inp, sp.w_dd[i]))
            if n and ns + (nd if s_in else 0):
                cols = buf.view(-1, d_in + s_in).index_select(0, gidx).view(n, 9, d_in + s_in)
                if s_in:
                    # sparse input reaches dense and sparse outputs, at active pixels only
                    t = cols[..., d_in:].reshape(n, 9 * s_in) @ sp.w_s[i]
                    if sp.w_ds[i] is not None:
                        t[:, nd:].addmm_(cols[..., :d_in].reshape(n, 9 * d_in), sp.w_ds[i])
                    out.view(-1, nd + ns).index_add_(0, pidx, t)
                elif sp.w_ds[i] is not None:
                    t = cols.reshape(n, 9 * d_in) @ sp.w_ds[i]
                    out.view(-1, nd + ns)[:, nd:].index_add_(0, pidx, t)
            out.relu_()
            bufs.append(out)
            buf, d_in, s_in = out, nd, ns

        # collect (1x1): dense channels everywhere, sparse channels at active pixels
        res = sp.bias.expand(b * h * w, c).clone()
        dense_parts = [bf[:, 1:-1, 1:-1, : len(sp.dense[i])] for i, bf in enumerate(bufs) if len(sp.dense[i])]
        if sp.c_d is not None:
            res.addmm_(torch.cat(dense_parts, -1).reshape(b * h * w, -1), sp.c_d)
        if sp.c_s is not None and n:
            rows = [bf.view(-1, bf.shape[-1]).index_select(0, pidx)[:, len(sp.dense[i]):]
                    for i, bf in enumerate(bufs) if len(sp.sparse[i])]
            uidx = nz[:, 0] * (h * w) + nz[:, 1] * w + nz[:, 2]
            res.index_add_(0, uidx, torch.cat(rows, 1) @ sp.c_s)
        return res.view(b, h, w, c).permute(0, 3, 1, 2)


class SMM(nn.Module):
    """Sparse mask module: spatial-mask generator ``spa_mask``, SMB ``body``, channel attention ``ca``, residual."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        q = channels // 4
        self.spa_mask = nn.Sequential(
            nn.Conv2d(channels, q, 3, padding=1), nn.ReLU(inplace=True), nn.AvgPool2d(2),
            nn.Conv2d(q, q, 3, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(q, 2, 3, stride=2, padding=1, output_padding=1),
        )
        self.body = SMB(channels, 4)
        self.ca = CALayer(channels)

    def hard_spatial_mask(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) float 0/1: 1 where the 'sparse' logit exceeds the 'dense' one (H, W even)."""
        logits = self.spa_mask(x)
        return (logits[:, 1:] > logits[:, :1]).to(x.dtype)

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft (Gumbel) masks. Returns the output and the (B,) fraction of the block's conv work kept."""
        spa = gumbel_softmax(self.spa_mask(x), dim=1, tau=self.body.tau)[:, 1:]
        ch = self.body._soft_channel_mask()  # (L, C, 2)
        out = self.ca(self.body.forward_masked(x, spa, ch)) + x
        # mean over (layer, channel, pixel) of spa * S + D, which factorises
        kept = spa.mean(dim=(1, 2, 3)) * ch[..., 1].mean() + ch[..., 0].mean()
        return out, kept

    def forward_eval(self, x: torch.Tensor, path: str, spa: torch.Tensor | None = None) -> torch.Tensor:
        """Hard masks; ``spa`` overrides the generated spatial mask (tests)."""
        if path == "unmasked":
            return self.ca(self.body.forward_unmasked(x)) + x
        if spa is None:
            spa = self.hard_spatial_mask(x)
        if path == "sparse":
            y = self.body.forward_sparse(x, spa)
        else:
            sparse = self.body.hard_channel_mask().to(x.dtype)
            y = self.body.forward_masked(x, spa, torch.stack([1 - sparse, sparse], -1))
        return self.ca(y) + x


class SMSR(nn.Module):
    """SMSR network (x2/x3/x4; the official release has x2 weights).

    Args:
        scale: upscaling factor, 2, 3 or 4.
        n_feats: feature channels (64 in the paper; the official ``collect`` hard-codes 64 * 5).
        n_blocks: sparse mask modules (5 in the paper).
        img_range: pixel range of the weights (255 for the official ones).
        inference: eval-mode path, one of ``"auto"``, ``"dense"``, ``"sparse"``, ``"unmasked"`` (see module
            docstring); can be changed later through the ``inference`` attribute.
        train_formula: ``"inference"`` (default) trains with the same layer formula that inference computes,
            soft masks in place of hard ones; ``"official"`` uses the released trainer's formula, which splits
            each layer's input by the layer's own channel mask instead of the previous layer's.

    Shapes: (N, 3, H, W) RGB in [0, 1] -> (N, 3, scale*H, scale*W) RGB, nominally [0, 1] (not clamped).
    """

    def __init__(
        self,
        scale: int = 2,
        n_feats: int = 64,
        n_blocks: int = 5,
        img_range: float = 255.0,
        inference: str = "auto",
        train_formula: str = "inference",
    ) -> None:
        super().__init__()
        self.scale = check_scale("smsr", scale, (2, 3, 4))
        if inference not in PATHS:
            raise ConfigError(f"smsr: inference must be one of {', '.join(PATHS)}, got {inference!r}")
        if train_formula not in ("inference", "official"):
            raise ConfigError(f"smsr: train_formula must be 'inference' or 'official', got {train_formula!r}")
        self.img_range = float(img_range)
        self.inference = inference
        self.sub_mean = MeanShift(self.img_range, sign=-1)
        self.add_mean = MeanShift(self.img_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.body = nn.Sequential(*[SMM(n_feats) for _ in range(n_blocks)])
        for m in self.body:
            m.body.train_formula = train_formula
        self.collect = nn.Sequential(nn.Conv2d(n_feats * n_blocks, n_feats, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(n_feats, 3 * self.scale**2, 3, padding=1), nn.PixelShuffle(self.scale))

    # ------------------------------------------------------------------------------------------ settings
    @property
    def tau(self) -> float:
        """Gumbel-softmax temperature of every module (training mode only)."""
        return self.body[0].body.tau

    @tau.setter
    def tau(self, value: float) -> None:
        for m in self.body:
            m.body.tau = float(value)

    def resolve_path(self, device: torch.device) -> str:
        """The eval path that :attr:`inference` selects on ``device``."""
        if self.inference == "auto":
            return "sparse" if device.type == "cpu" else "dense"
        return self.inference

    # ------------------------------------------------------------------------------------------ forward
    def _pad_even(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        ph, pw = h % 2, w % 2
        if ph or pw:
            mode = "reflect" if min(h, w) > 1 else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def forward(
        self,
        x: torch.Tensor,
        return_sparsity: bool = False,
        path: str | None = None,
        spatial_masks: list[torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """SR of ``x`` (N, 3, H, W) in [0, 1].

        Training mode: soft masks; with ``return_sparsity`` returns ``(sr, kept)`` where ``kept`` (N, n_blocks)
        is the fraction of each module's conv work that the masks keep (mean of ``spa * S + D``).
        Eval mode: hard masks through ``path`` (default :attr:`inference`); ``spatial_masks`` (one (N, 1, H', W')
        0/1 tensor per module, at the padded-to-even size) replaces the generated masks (tests, analysis).
        """
        x, h, w = self._pad_even(x)
        x0 = self.sub_mean(x * self.img_range)
        feat = self.head(x0)
        fea = feat
        outs = []
        kept = []
        if self.training:
            for m in self.body:
                fea, k = m.forward_train(fea)
                outs.append(fea)
                kept.append(k)
        else:
            p = self.resolve_path(x.device) if path in (None, "auto") else path
            if p not in PATHS:
                raise ConfigError(f"smsr: unknown inference path {path!r}; use one of {', '.join(PATHS)}")
            for i, m in enumerate(self.body):
                fea = m.forward_eval(fea, p, None if spatial_masks is None else spatial_masks[i])
                outs.append(fea)
        fea = self.collect(torch.cat(outs, 1)) + feat
        up = F.interpolate(x0, scale_factor=self.scale, mode="bicubic", align_corners=False)
        sr = self.add_mean(self.tail(fea) + up) / self.img_range
        sr = sr[..., : h * self.scale, : w * self.scale]
        if self.training and return_sparsity:
            return sr, torch.stack(kept, 1)
        return sr

    # ------------------------------------------------------------------------------------ analysis
    @torch.no_grad()
    def masks(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Hard masks of every module for input ``x`` (N, 3, H, W) in [0, 1]: per module a dict with
        ``spatial`` (N, 1, H', W') 0/1 (H', W' = H, W padded to even) and ``sparse_channels`` (4, C) bool."""
        was = self.training
        self.eval()
        try:
            x, _, _ = self._pad_even(x)
            fea = self.head(self.sub_mean(x * self.img_range))
            res = []
            for m in self.body:
                spa = m.hard_spatial_mask(fea)
                res.append({"spatial": spa, "sparse_channels": m.body.hard_channel_mask()})
                fea = m.forward_eval(fea, "dense", spa)
            return res
        finally:
            self.train(was)

    @torch.no_grad()
    def mask_flops(self, x: torch.Tensor) -> dict[str, Any]:
        """FLOPs (2 x multiply-accumulates, srkit's convention) of one eval pass on ``x`` with the hard masks.

        Counts every convolution and matrix product of the sparse computation exactly (each output value of a
        masked layer costs 9 * (input channels that reach it) MACs; the spatial-mask generators, channel
        attention and fixed layers at full cost). Returns ``total``, ``dense_total`` (the same network without
        masks), ``ratio`` = total / dense_total, and ``blocks``: per module ``spatial_density`` (fraction of
        active pixels), ``sparse_channels`` (per layer), ``layer_density`` (per layer: the layer's FLOPs
        relative to its dense FLOPs) and ``flops``/``dense_flops`` of its SMB.
        """
        masks = self.masks(x)
        n = x.shape[0]
        h, w = x.shape[-2] + x.shape[-2] % 2, x.shape[-1] + x.shape[-1] % 2
        hw = n * h * w
        c = self.head[2].out_channels
        q = c // 4
        # fixed parts, in MACs: head; fusion (1x1 + 3x3) and tail
        fixed = hw * 9 * (3 * c + c * c) + hw * (c * len(self.body) * c + 9 * c * c) + hw * 9 * c * 3 * self.scale**2
        # per module: mask generator (3x3 at full, 3x3 at half resolution, transposed 3x3 counted per input
        # pixel of the half-resolution map) and channel attention
        fixed += len(self.body) * (hw * 9 * c * q + (hw // 4) * 9 * q * q + (hw // 4) * 9 * q * 2 + n * 2 * c * (c // 16))
        total = dense_total = fixed
        blocks = []
        for mk in masks:
            active = float(mk["spatial"].sum())
            sparse = mk["sparse_channels"]
            layer_macs, layer_dense = [], []
            d_in, s_in = c, 0
            for i in range(sparse.shape[0]):
                ns = int(sparse[i].sum())
                nd = c - ns
                layer_macs.append(hw * 9 * d_in * nd + active * 9 * (d_in * ns + s_in * (nd + ns)))
                layer_dense.append(hw * 9 * c * c)
                d_in, s_in = nd, ns
            n_d = int((~sparse).sum())
            smb = sum(layer_macs) + hw * n_d * c + active * (sparse.numel() - n_d) * c
            smb_dense = sum(layer_dense) + hw * sparse.numel() * c
            total += smb
            dense_total += smb_dense
            blocks.append({
                "spatial_density": active / hw,
                "sparse_channels": [int(v) for v in sparse.sum(1)],
                "layer_density": [m / d for m, d in zip(layer_macs, layer_dense)],
                "flops": int(2 * smb),
                "dense_flops": int(2 * smb_dense),
            })
        total, dense_total = int(2 * total), int(2 * dense_total)
        return {"total": total, "dense_total": dense_total, "ratio": total / dense_total, "blocks": blocks}


def describe(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    """Descriptor of :class:`SMSR`: fixed scale, any size (odd sizes padded inside), receptive field of the
    conv path (head 2, five modules of 4-5 pixels each, collect 1, tail 1, bicubic 2); channel attention and
    the mask generators make masks and weights depend on more, as in RCAN."""
    return ModelDescriptor(arch=name, scales=(int(kw["scale"]),), receptive_field=32, multiple_of=1)
