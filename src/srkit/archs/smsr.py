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
  active pixels, and sparse channels are stored only there. Any batch size. The choice for CPUs.
  Per module it runs one kernel, chosen by the active-pixel share (:meth:`SMM.choose_kernel`):
  ``"igemm"`` (:meth:`SMB.forward_igemm`: a compiled implicit GEMM that reads each active pixel's neighbour
  rows by index as it multiplies; built on first use, see :func:`cpu_kernel`) or, where it cannot be built,
  ``"strip"`` (:meth:`SMB.forward_strip`: active pixels laid out as row strips and convolved by an ordinary
  3x3 convolution); on the densest masks ``"split"`` (:meth:`SMB.forward_split`, full convolutions with the
  masks applied). ``"gather"`` (:meth:`SMB.forward_sparse`: each active pixel's 3x3 neighbourhood gathered
  into a (pixels x 9 channels) matrix and one matrix product) is the plainest sparse form and a reference
  for the others. Each kernel can also be asked for by name.
* ``"auto"`` (default): sparse on CPU, dense elsewhere.
* ``"unmasked"``: ignores all masks (every channel dense, every pixel computed): the cost of the same network
  without SMSR's savings, for benchmarks only; its output is NOT SMSR's.

State-dict keys are the official ones: ``sub_mean``, ``add_mean``, ``head.{0,2}``,
``body.{k}.spa_mask.{0,3,5}``, ``body.{k}.body.ch_mask`` (1, C, 4, 2), ``body.{k}.body.body.{0..3}.weight``
(no bias), ``body.{k}.body.collect``, ``body.{k}.ca.conv_du.{0,2}``, ``collect.{0,2}``, ``tail.0``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptor import ModelDescriptor
from ..errors import ConfigError
from .common import MeanShift, check_scale

PATHS = ("auto", "dense", "split", "sparse", "gather", "strip", "igemm", "unmasked")
SPARSE_MAX_DENSITY = 0.0
"""The sparse path runs the ``gather`` kernel (per-pixel im2col) on modules whose active-pixel share is at most
this. Since the strip kernel keeps sparse channels in compact matrices it is as fast as the gather at every
share measured (0.03-0.17, official x2 weights on BSD100), so the default leaves the gather to empty masks;
it stays available as the ``gather`` path."""
STRIP_MAX_DENSITY = 0.7
"""Without the compiled kernel, the ``strip`` kernel runs up to this share and ``split`` above it (there the
strip, which computes about 1.1 times the active pixels and gathers three rows per strip pixel, is no faster
than the split)."""
IGEMM_MAX_DENSITY = 0.8
"""With the compiled CPU kernel (:func:`cpu_kernel`), the ``igemm`` kernel runs up to this share and ``split``
above it."""

_cpu_kernel: Any = None  # the compiled module once built; False when it cannot be


def cpu_kernel() -> Any:
    """The compiled implicit-GEMM kernel (``smsr_cpu.cpp``), or None where it cannot be had.

    Built on first use with the system C++ compiler through ``torch.utils.cpp_extension`` (about a minute,
    once; torch caches the build and rebuilds when the source changes). None without AVX2/FMA, without a
    compiler or ninja, or with ``SRKIT_NO_CPP_KERNELS=1``; the sparse path then uses the pure-PyTorch strip
    kernel, which gives the same numbers more slowly.
    """
    global _cpu_kernel
    if _cpu_kernel is None:
        _cpu_kernel = False
        if os.environ.get("SRKIT_NO_CPP_KERNELS", "") not in ("", "0"):
            return None
        if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
            return None
        try:
            from torch.utils.cpp_extension import load

            print("srkit: loading the SMSR CPU kernel (built on first use: about a minute)", file=sys.stderr,
                  flush=True)
            _cpu_kernel = load(
                name="srkit_smsr_cpu",
                sources=[str(Path(__file__).with_name("smsr_cpu.cpp"))],
                extra_cflags=["-O3", "-mavx2", "-mfma", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
        except Exception as e:  # no compiler, no ninja, a failed build: the PyTorch kernels still work
            warnings.warn(f"srkit: SMSR CPU kernel unavailable ({type(e).__name__}: {str(e)[:200]}); "
                          "using the PyTorch strip kernel", stacklevel=2)
    return _cpu_kernel or None


def igemm_usable(t: torch.Tensor) -> bool:
    """Whether the ``sparse`` path may run the compiled kernel on ``t``: a float32 CPU tensor, the kernel built
    (:func:`cpu_kernel`), and no dispatch mode active. The kernel is one opaque call, invisible to modes such as
    ``FlopCounterMode`` (``srkit profile``), so under one the PyTorch kernels run and are counted."""
    if t.device.type != "cpu" or t.dtype != torch.float32:
        return False
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        if _get_current_dispatch_mode() is not None:
            return False
    except ImportError:  # a torch without the helper: no way to tell, so stay countable
        return False
    return cpu_kernel() is not None


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
    """The kernel split of one SMB for hard-mask inference (derived from its weights and channel masks).

    Channels of every layer output are reordered as [dense | sparse]; ``n_dense[i]``/``n_sparse[i]`` count them.
    """

    n_dense: list[int]
    n_sparse: list[int]
    w_dd: list[torch.Tensor | None]  # (D, D_in, 3, 3) dense in -> dense out
    w_sd: list[torch.Tensor | None]  # (D, S_in, 3, 3) sparse in -> dense out
    w_full: list[torch.Tensor]  # (C, C_in, 3, 3) all in -> all out, both in [dense | sparse] order
    t_ds: list[torch.Tensor | None]  # (9 D_in, S) dense in -> sparse out, rows (kh, kw, channel)
    t_s: list[torch.Tensor | None]  # (9 S_in, D + S) sparse in -> [dense | sparse] out, same row order
    c_all: torch.Tensor  # (C, L*C, 1, 1) collect weight with input columns in [dense | sparse] order per layer
    c_d_layers: list[torch.Tensor | None]  # per layer (D, C): collect rows of its dense channels
    c_s: torch.Tensor | None  # (sum S, C) collect rows of the sparse channels
    bias: torch.Tensor
    w_strip: list[torch.Tensor | None]  # strip kernel: (S, C_in, 3, 3) when no input channel is sparse, else
    # (D + S, C_in, 3, 3) (the dense outputs' full value at active pixels); None when nothing is needed
    c_s_layers: list[torch.Tensor | None]  # per layer (S, C): collect rows of its sparse channels
    w_igemm: list[tuple[torch.Tensor, torch.Tensor] | None]  # igemm kernel: w_strip as (9, D_in, O16) and
    # (9, S_in, O16) taps, output channels zero-padded to a multiple of 16


def _taps(w: torch.Tensor) -> torch.Tensor | None:
    """(O, I, 3, 3) -> (9 I, O) with rows ordered (kh, kw, i), matching gathered 3x3 neighbourhoods."""
    if w.shape[0] == 0 or w.shape[1] == 0:
        return None
    return w.permute(2, 3, 1, 0).reshape(-1, w.shape[0]).contiguous()


def fuse_1x1(maps: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv1x1(cat(maps, 1), weight, bias)`` without the concatenation: on channels-last maps, one matrix
    product per map accumulated into the output rows (CPUs: about a third of cat + conv). Returns a
    channels-last (B, O, H, W) tensor; falls back to cat + conv for other layouts."""
    b, _, h, w = maps[0].shape
    if not all(m.is_contiguous(memory_format=torch.channels_last) for m in maps):
        return F.conv2d(torch.cat(maps, 1), weight, bias)
    wt = weight[:, :, 0, 0].t()
    out = None
    start = 0
    for m in maps:
        c = m.shape[1]
        rows = m.permute(0, 2, 3, 1).reshape(b * h * w, c)
        part = wt[start:start + c]
        if out is None:
            out = rows @ part if bias is None else torch.addmm(bias, rows, part)
        else:
            torch.addmm(out, rows, part, out=out)  # in place, in a form FlopCounterMode counts
        start += c
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)


def _collect_dense(rows: list[torch.Tensor], weights: list[torch.Tensor | None], bias: torch.Tensor) -> torch.Tensor:
    """``bias + sum(rows[i] @ weights[i])`` over the layers that have dense channels: the collect 1x1 of the
    dense channels, (P, C) rows. The first product takes the bias (no separate pass to fill it in); the rest
    accumulate in place, in a form FlopCounterMode counts."""
    res = None
    for r, cw in zip(rows, weights):
        if cw is None:
            continue
        if res is None:
            res = torch.addmm(bias, r, cw)
        else:
            torch.addmm(res, r, cw, out=res)
    return bias.expand(rows[0].shape[0], bias.shape[0]).clone() if res is None else res


def _igemm_taps(w: torch.Tensor | None, d_in: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(O, C_in, 3, 3) with inputs [dense | sparse] -> the igemm kernel's (9, D_in, O16), (9, S_in, O16) taps."""
    if w is None:
        return None
    o = w.shape[0]
    taps = F.pad(w.permute(2, 3, 1, 0).reshape(9, w.shape[1], o), (0, -o % 16))
    return taps[:, :d_in].contiguous(), taps[:, d_in:].contiguous()


def _neighbour_rows(flat: torch.Tensor, b: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For the active pixels ``flat`` (rows of (B*H*W, C) maps, raster order): the (N, 9) rows of their 3x3
    neighbours in (kh, kw) order, -1 beyond the image, and the same neighbours as rows of the compact (N + 1, S)
    matrices, N (the zero row) for inactive neighbours and those beyond the image."""
    hw, n = h * w, flat.numel()
    yi, xi = (flat % hw).div(w, rounding_mode="floor"), flat % w
    nbr = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ok = (yi + dy >= 0) & (yi + dy < h) & (xi + dx >= 0) & (xi + dx < w)
            nbr.append(torch.where(ok, flat + dy * w + dx, -1))
    dense_nbr = torch.stack(nbr, 1)
    slot = torch.full((b * hw + 1,), n, dtype=torch.long, device=flat.device)  # the last entry answers -1
    slot[flat] = torch.arange(n, device=flat.device)
    return dense_nbr, slot[dense_nbr]


def _nonempty(w: torch.Tensor) -> torch.Tensor | None:
    return w.contiguous() if w.shape[0] and w.shape[1] else None


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
            fea = conv(fea).relu_()  # in place, as an efficient dense network would: a fair baseline
            outs.append(fea)
        return fuse_1x1(outs, self.collect.weight, self.collect.bias)

    # ---------------------------------------------------------------------------------------- sparse form
    def _state_key(self) -> tuple:
        params = [*(c.weight for c in self.body), self.collect.weight, self.collect.bias, self.ch_mask]
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)

    def prepare(self) -> _Split:
        """The kernel split for hard-mask inference; cached, recomputed when any weight or mask logit changes
        (in place or by replacement), so it never has to be called by hand after loading weights."""
        key = self._state_key()
        if self._split is not None and self._split_key == key:
            return self._split
        with torch.no_grad():
            sparse_mask = self.hard_channel_mask()  # (L, C)
            ar = torch.arange(self.channels, device=sparse_mask.device)
            orders = [torch.cat([ar[~sparse_mask[i]], ar[sparse_mask[i]]]) for i in range(self.n_layers)]
            n_sparse = [int(sparse_mask[i].sum()) for i in range(self.n_layers)]
            n_dense = [self.channels - k for k in n_sparse]
            w_dd, w_sd, w_full, t_ds, t_s, w_strip = [], [], [], [], [], []
            for i, conv in enumerate(self.body):
                w = conv.weight.detach()[orders[i]]  # output channels [dense | sparse]
                if i == 0:
                    d_in = self.channels
                else:
                    w = w[:, orders[i - 1]]
                    d_in = n_dense[i - 1]
                nd = n_dense[i]
                w_dd.append(_nonempty(w[:nd, :d_in]))
                w_sd.append(_nonempty(w[:nd, d_in:]))
                w_full.append(w.contiguous())
                t_ds.append(_taps(w[nd:, :d_in]))
                t_s.append(_taps(w[:, d_in:]))
                s_in = self.channels - d_in
                w_strip.append(_nonempty(w if s_in else w[nd:]))
            c = self.channels
            cols = torch.cat([i * c + orders[i] for i in range(self.n_layers)])
            c_all = self.collect.weight.detach()[:, cols]
            cw = c_all[:, :, 0, 0]
            c_d_layers, c_s_layers, rows_s, start = [], [], [], 0
            for nd, ns in zip(n_dense, n_sparse):
                c_d_layers.append(cw[:, start:start + nd].t().contiguous() if nd else None)
                c_s_layers.append(cw[:, start + nd:start + nd + ns].t().contiguous() if ns else None)
                rows_s.append(torch.arange(start + nd, start + nd + ns, device=cw.device))
                start += nd + ns
            rows_s_t = torch.cat(rows_s)
            self._split = _Split(
                n_dense, n_sparse, w_dd, w_sd, w_full, t_ds, t_s, c_all.contiguous(), c_d_layers,
                cw[:, rows_s_t].t().contiguous() if len(rows_s_t) else None,
                self.collect.bias.detach().clone(), w_strip, c_s_layers,
                [_igemm_taps(ws, n_dense[i - 1] if i else self.channels) for i, ws in enumerate(w_strip)],
            )
        self._split_key = key
        return self._split

    def forward_split(self, x: torch.Tensor, spa: torch.Tensor) -> torch.Tensor:
        """Hard masks with dense convolutions, at about the cost of one unmasked pass.

        Channels in [dense | sparse] order. One full conv gives ``conv(X)``; the sparse outputs are that times
        the mask M. Off the mask the dense outputs must not see the sparse inputs: there they take the value
        of the small dense-to-dense conv ``conv_dd(X_d)`` when the layer has fewer dense than sparse inputs,
        else ``conv_sd(X_s)`` (sparse inputs to dense outputs) is taken off the full value.
        """
        sp = self.prepare()
        fea = x
        outs = []
        d_in = self.channels
        on = spa > 0
        for i in range(self.n_layers):
            nd = sp.n_dense[i]
            s_in = self.channels - d_in
            y = F.conv2d(fea, sp.w_full[i], padding=1)
            if nd and s_in:  # dense outputs must not see the sparse inputs off the mask
                if d_in == 0:
                    y[:, :nd] *= spa
                elif d_in <= s_in:
                    # fewer dense inputs: their small conv gives the off-mask value outright
                    y[:, :nd] = torch.where(on, y[:, :nd], F.conv2d(fea[:, :d_in], sp.w_dd[i], padding=1))
                else:
                    y[:, :nd] -= F.conv2d(fea[:, d_in:], sp.w_sd[i], padding=1) * ~on
            if nd < self.channels:
                y[:, nd:] *= spa
            fea = y.relu_()
            outs.append(fea)
            d_in = nd
        return fuse_1x1(outs, sp.c_all, sp.bias)

    def forward_sparse(self, x: torch.Tensor, spa: torch.Tensor) -> torch.Tensor:
        """Hard masks; sparse channels are computed and stored only at active pixels.

        ``x`` (B, C, H, W); ``spa`` (B, 1, H, W) with values 0/1. Dense channels live in channels-last maps, so
        the dense-to-dense conv runs on them directly and a pixel's channels are one row of the flattened map.
        Sparse channels live in compact (N + 1, S) matrices: one row per active pixel plus a zero row that
        stands for inactive neighbours. Everything that involves sparse channels is one gather of the 3x3
        neighbourhood rows of the N active pixels and one matrix product. Returns (B, C, H, W) channels-last,
        equal to :meth:`forward_masked` within float rounding.
        """
        sp = self.prepare()
        b, c, h, w = x.shape
        hw = h * w
        flat = spa.reshape(-1).nonzero().squeeze(1)  # active pixels as rows of the (B*H*W, C) maps
        n = flat.numel()
        dense_nbr, sparse_nbr = _neighbour_rows(flat, b, h, w)
        gidx_t = dense_nbr.reshape(-1)  # tap-major rows per active pixel
        outside = (gidx_t < 0).nonzero().squeeze(1)  # gathered rows that lie beyond the image border: zero them
        gidx_t = gidx_t.clamp(min=0)
        sidx = sparse_nbr.reshape(-1)  # rows of the compact matrices (n = the zero row)

        dense = x.contiguous(memory_format=torch.channels_last)
        comp = x.new_zeros(n + 1, 0)
        d_in, s_in = c, 0
        dense_rows, sparse_outs = [], []
        for i in range(self.n_layers):
            nd, ns = sp.n_dense[i], sp.n_sparse[i]
            rows_in = dense.permute(0, 2, 3, 1).reshape(b * hw, d_in)
            if sp.w_dd[i] is not None:
                out = F.conv2d(dense, sp.w_dd[i], padding=1).contiguous(memory_format=torch.channels_last)
            else:
                out = x.new_zeros(b, nd, h, w).contiguous(memory_format=torch.channels_last)
            rows = out.permute(0, 2, 3, 1).reshape(b * hw, nd)  # a view: channels-last
            t = None
            if n and sp.t_s[i] is not None:
                t = comp.index_select(0, sidx).view(n, 9 * s_in) @ sp.t_s[i]  # (N, D + S)
            if n and sp.t_ds[i] is not None:
                cols = rows_in.index_select(0, gidx_t)
                if outside.numel():
                    cols.index_fill_(0, outside, 0.0)
                # out-of-place products: FlopCounterMode (srkit profile) counts mm/addmm, not addmm_
                ds = cols.view(n, 9 * d_in) @ sp.t_ds[i]
                if t is None:
                    t = torch.cat([ds.new_zeros(n, nd), ds], 1) if nd else ds
                else:
                    t[:, nd:] += ds
            new_comp = x.new_empty(n + 1, ns)
            new_comp[n:].zero_()
            if t is not None:
                if nd and s_in:
                    rows.index_put_((flat,), t[:, :nd], accumulate=True)
                torch.clamp(t[:, nd:], min=0, out=new_comp[:n])
            else:
                new_comp[:n].zero_()
            rows.relu_()
            dense_rows.append(rows)
            sparse_outs.append(new_comp[:n])
            dense, comp, d_in, s_in = out, new_comp, nd, ns

        # collect (1x1): dense channels everywhere, sparse channels at active pixels
        res = _collect_dense(dense_rows, sp.c_d_layers, sp.bias)
        if sp.c_s is not None and n:
            res.index_put_((flat,), torch.cat(sparse_outs, 1) @ sp.c_s, accumulate=True)
        return res.view(b, h, w, c).permute(0, 3, 1, 2)


    def forward_strip(self, x: torch.Tensor, spa: torch.Tensor) -> torch.Tensor:
        """Hard masks; everything that involves sparse channels is computed on *row strips* of active pixels.

        The active pixels of each image row, widened by one pixel left and right, are laid side by side (in
        raster order) into one strip of height 3 (the row above, the row itself, the row below): a plain 3x3
        convolution over that strip gives, at every active pixel, exactly its value in the full image, since
        its left and right neighbours are its neighbours in the strip. So the work on sparse channels runs as
        one ordinary (fast) convolution whose width is the number of widened active pixels, about 1.1-1.2
        times the active pixels on SMSR's masks, and the gather copies 3 rows per strip pixel instead of the
        9 of a per-pixel im2col (:meth:`forward_sparse`).

        Storage: dense channels in channels-last maps (the dense-to-dense convolution runs on them directly),
        sparse channels in compact (N + 1, S) matrices, one row per active pixel plus a zero row for inactive
        neighbours. Each layer's strip gathers its dense input columns from the map and its sparse ones from
        the compact matrix, so no full map with every channel is ever written. Dense outputs are computed
        everywhere and replaced at active pixels by the strip's value (there the masked formula is the plain
        convolution). Returns (B, C, H, W) channels-last, equal to :meth:`forward_masked` within float rounding.
        """
        sp = self.prepare()
        b, c, h, w = x.shape
        hw, wq = h * w, w + 2
        dev = x.device
        mask = F.pad(spa.reshape(b, h, w) > 0, (1, 1))  # (B, H, W + 2): a zero column each side
        wide = mask.clone()  # active or next to an active pixel in its row
        wide[..., 1:] |= mask[..., :-1]
        wide[..., :-1] |= mask[..., 1:]
        strip = wide.reshape(-1).nonzero().squeeze(1)  # strip pixels, raster order, in (B, H, W + 2)
        width = strip.numel()
        at = mask.reshape(-1)[strip].nonzero().squeeze(1)  # active ones among them
        n = at.numel()
        if n:
            img, rem = strip.div(h * wq, rounding_mode="floor"), strip % (h * wq)
            row, col = rem.div(wq, rounding_mode="floor"), rem % wq - 1
            pix = img * hw + row * w + col  # rows of the (B*H*W, C) maps (out of range beyond the side edges)
            flat = pix[at]  # active pixels, raster order
            at -= 1  # their rows among the conv outputs (the conv has no padding)
            col_ok = (col >= 0) & (col < w)
            inside = torch.stack([col_ok & (row > 0), col_ok, col_ok & (row < h - 1)]).reshape(-1)
            rows3 = torch.where(inside, torch.stack([pix - w, pix, pix + w]).reshape(-1), 0)  # above, row, below
            outside = (~inside).nonzero().squeeze(1)  # gathered rows beyond the image: zeroed after the gather
            slot = torch.full((b * hw,), n, dtype=torch.long, device=dev)
            slot[flat] = torch.arange(n, device=dev)
            srows3 = torch.where(inside, slot[rows3], n)  # the same rows in the compact matrices (n: zero row)
            # one buffer for every layer's gather: a fresh large tensor per layer costs page faults that are a
            # sizeable share of this kernel's time on CPU
            gathered = x.new_empty(3 * width, c)
        else:
            flat = torch.zeros(0, dtype=torch.long, device=dev)

        def strip_conv(i: int, dense_src: torch.Tensor, comp: torch.Tensor, d_in: int) -> torch.Tensor:
            if d_in:
                g_dense = gathered[:, :d_in]
                torch.index_select(dense_src, 0, rows3, out=g_dense)
                if outside.numel():
                    g_dense.index_fill_(0, outside, 0.0)
            if d_in < c:
                torch.index_select(comp, 0, srows3, out=gathered[:, d_in:])
            y = F.conv2d(gathered.view(1, 3, width, c).permute(0, 3, 1, 2), sp.w_strip[i])
            return y.permute(0, 2, 3, 1).reshape(width - 2, -1).index_select(0, at)  # (N, O) at active pixels

        return self._sparse_layers(x, flat, strip_conv, sp)

    def _sparse_layers(self, x: torch.Tensor, flat: torch.Tensor, sparse_conv: Any, sp: _Split) -> torch.Tensor:
        """The layer loop of the strip and igemm kernels. Dense channels live in channels-last maps: the
        dense-to-dense conv runs everywhere and its value is replaced at the active pixels ``flat`` by the full
        one. Sparse channels live in compact (N + 1, S) matrices with a zero last row. Then comes the collect.
        ``sparse_conv(i, dense_src, comp, d_in)`` gives layer i's (N, O) pre-activation outputs at the active
        pixels from the (B*H*W, D_in) dense rows and the compact matrix; O covers the sparse outputs, and the
        dense ones too where the layer has sparse inputs. ``sp`` is the caller's :meth:`prepare`."""
        b, c, h, w = x.shape
        hw = h * w
        n = flat.numel()
        dense = x.contiguous(memory_format=torch.channels_last)
        dense_src = dense.permute(0, 2, 3, 1).reshape(b * hw, c)  # a view
        comp = x.new_zeros(n + 1, 0)
        d_in = c
        dense_rows, sparse_outs = [], []
        for i in range(self.n_layers):
            nd, ns = sp.n_dense[i], sp.n_sparse[i]
            if sp.w_dd[i] is not None:
                out = F.conv2d(dense, sp.w_dd[i], padding=1).contiguous(memory_format=torch.channels_last)
            else:
                out = x.new_zeros(b, nd, h, w).contiguous(memory_format=torch.channels_last)
            rows = out.permute(0, 2, 3, 1).reshape(b * hw, nd)  # a view: channels-last
            t = sparse_conv(i, dense_src, comp, d_in) if n and sp.w_strip[i] is not None else None
            if t is not None and t.shape[1] > ns:  # the kernel also gave the dense outputs' full value
                rows.index_copy_(0, flat, t[:, :nd])
            rows.relu_()
            comp = x.new_empty(n + 1, ns)
            comp[n:].zero_()
            if t is not None:
                torch.clamp(t[:, t.shape[1] - ns:], min=0, out=comp[:n])
            else:
                comp[:n].zero_()
            dense_rows.append(rows)
            sparse_outs.append(comp[:n])
            dense, dense_src, d_in = out, rows, nd

        res = _collect_dense(dense_rows, sp.c_d_layers, sp.bias)
        acc = None  # collect of the sparse channels at the active pixels, one product per layer
        for comp, cw in zip(sparse_outs, sp.c_s_layers):
            if cw is not None and n:
                acc = comp @ cw if acc is None else torch.addmm(acc, comp, cw, out=acc)
        if acc is not None:
            res.index_add_(0, flat, acc)
        return res.view(b, h, w, c).permute(0, 3, 1, 2)

    def forward_igemm(self, x: torch.Tensor, spa: torch.Tensor) -> torch.Tensor:
        """Hard masks; everything that involves sparse channels is computed at the active pixels only by the
        compiled implicit-GEMM kernel (:func:`cpu_kernel`), which reads each active pixel's 3x3 neighbour rows
        through an index while it multiplies: no strip, no im2col, no widened pixels. Same storage as
        :meth:`forward_strip` (dense channels in channels-last maps, sparse ones in compact (N + 1, S) matrices
        with a zero last row). Returns (B, C, H, W) channels-last, equal to :meth:`forward_masked` within
        float rounding. Raises RuntimeError where the kernel cannot be built."""
        kernel = cpu_kernel()
        if kernel is None:
            raise RuntimeError("smsr: the compiled CPU kernel is unavailable here; use path 'strip'")
        sp = self.prepare()
        b, c, h, w = x.shape
        flat = spa.reshape(-1).nonzero().squeeze(1)  # active pixels as rows of the (B*H*W, C) maps
        n = flat.numel()
        if n:
            dense_nbr, sparse_nbr = _neighbour_rows(flat, b, h, w)
            dense_nbr, sparse_nbr = dense_nbr.to(torch.int32), sparse_nbr.to(torch.int32)

        def igemm_conv(i: int, dense_src: torch.Tensor, comp: torch.Tensor, d_in: int) -> torch.Tensor:
            w_dense, w_sparse = sp.w_igemm[i]
            t = kernel.sparse_conv(dense_src, dense_nbr, w_dense, comp, sparse_nbr, w_sparse)
            return t[:, : sp.w_strip[i].shape[0]]  # (N, O) at the active pixels (weights padded to 16 outputs)

        return self._sparse_layers(x, flat, igemm_conv, sp)


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
        self.sparse_max_density = SPARSE_MAX_DENSITY
        self.strip_max_density = STRIP_MAX_DENSITY
        self.igemm_max_density = IGEMM_MAX_DENSITY
        self.last_kernel = ""
        self.last_active = 0.0

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

    def choose_kernel(self, spa: torch.Tensor) -> str:
        """The kernel the ``sparse`` path runs for spatial mask ``spa``: ``gather`` while the active-pixel share is
        at most :attr:`sparse_max_density` (by default only for empty masks); then, where the compiled CPU kernel
        can run (:func:`igemm_usable`), ``igemm`` while the share is at most :attr:`igemm_max_density`, else
        ``strip`` while it is at most :attr:`strip_max_density`; ``split`` above. The thresholds are per-module
        attributes; defaults measured on a 2-core CPU, see benchmarks/results/bench_smsr.md."""
        p = float(spa.mean())
        if p <= self.sparse_max_density:
            return "gather"
        if igemm_usable(spa):
            return "igemm" if p <= self.igemm_max_density else "split"
        return "strip" if p <= self.strip_max_density else "split"

    def forward_eval(self, x: torch.Tensor, path: str, spa: torch.Tensor | None = None) -> torch.Tensor:
        """Hard masks; ``spa`` overrides the generated spatial mask (tests)."""
        if spa is None:
            spa = self.hard_spatial_mask(x)  # the unmasked baseline pays for it too, as its FLOPs count does
        self.last_active = float(spa.sum())
        if path == "unmasked":
            return self.ca(self.body.forward_unmasked(x)) + x
        if path == "sparse":
            path = self.choose_kernel(spa)
        self.last_kernel = path
        if path == "gather":
            y = self.body.forward_sparse(x, spa)
        elif path == "strip":
            y = self.body.forward_strip(x, spa)
        elif path == "igemm":
            y = self.body.forward_igemm(x, spa)
        elif path == "split":
            y = self.body.forward_split(x, spa)
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
        self.channels_last = True
        self._stats: dict[str, Any] = {}
        """Eval mode runs on channels-last tensors (the sparse path's layout; mkldnn's fastest on CPUs)."""
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

    def resolve_path(self, device: torch.device, needs_grad: bool = False) -> str:
        """The eval path that :attr:`inference` selects on ``device``. The CPU sparse kernels write with
        ``out=`` and cannot be differentiated, so ``auto`` takes the dense path when gradients are needed
        (attribution maps, for instance)."""
        if self.inference == "auto":
            return "sparse" if device.type == "cpu" and not needs_grad else "dense"
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
        if not self.training and self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        feat = self.head(x0)
        fea = feat
        outs = []
        kept = []
        needs_grad = False
        if self.training:
            for m in self.body:
                fea, k = m.forward_train(fea)
                outs.append(fea)
                kept.append(k)
        else:
            needs_grad = torch.is_grad_enabled() and x.requires_grad
            p = self.resolve_path(x.device, needs_grad) if path in (None, "auto") else path
            if p not in PATHS:
                raise ConfigError(f"smsr: unknown inference path {path!r}; use one of {', '.join(PATHS)}")
            for i, m in enumerate(self.body):
                fea = m.forward_eval(fea, p, None if spatial_masks is None else spatial_masks[i])
                outs.append(fea)
            # what pop_image_stats reports (srkit eval calls it once per image; tiles add up)
            acc = self._stats
            acc["active"] = [a + m.last_active for a, m in zip(acc.get("active", [0.0] * len(self.body)), self.body)]
            acc["pixels"] = acc.get("pixels", 0) + x.shape[0] * x.shape[-2] * x.shape[-1]
            acc["images"] = acc.get("images", 0) + x.shape[0]
        if self.training or needs_grad:  # the fused 1x1 below writes with out=: no autograd
            fea = self.collect(torch.cat(outs, 1)) + feat
        else:
            fused = fuse_1x1(outs, self.collect[0].weight, self.collect[0].bias).relu_()
            fea = self.collect[2](fused) + feat
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
        h, w = x.shape[-2] + x.shape[-2] % 2, x.shape[-1] + x.shape[-1] % 2
        return self._flops([float(m["spatial"].sum()) for m in masks], x.shape[0] * h * w, x.shape[0])

    def pop_image_stats(self) -> dict[str, Any]:
        """Mask statistics of the eval passes since the last call (``srkit eval`` calls it once per image):
        ``flops`` and ``dense_flops`` (2 x MACs, as :meth:`mask_flops`), ``flops_pct`` and the active-pixel
        share of each module, ``density_m0`` .. ``density_m4`` (percent). Empty when nothing ran."""
        acc, self._stats = self._stats, {}
        if not acc:
            return {}
        f = self._flops(acc["active"], acc["pixels"], acc["images"])
        out = {"flops": f["total"], "dense_flops": f["dense_total"], "flops_pct": 100.0 * f["ratio"]}
        for k, b in enumerate(f["blocks"]):
            out[f"density_m{k}"] = 100.0 * b["spatial_density"]
        return out

    def _flops(self, active: list[float], hw: int, n: int) -> dict[str, Any]:
        """FLOPs of eval passes over ``hw`` pixels (``n`` images) with ``active[k]`` active pixels in module k."""
        c = self.head[2].out_channels
        q = c // 4
        # fixed parts, in MACs: head; fusion (1x1 + 3x3) and tail
        fixed = hw * 9 * (3 * c + c * c) + hw * (c * len(self.body) * c + 9 * c * c) + hw * 9 * c * 3 * self.scale**2
        # per module: mask generator (3x3 at full, 3x3 at half resolution, transposed 3x3 counted per input
        # pixel of the half-resolution map) and channel attention
        fixed += len(self.body) * (hw * 9 * c * q + (hw // 4) * 9 * q * q + (hw // 4) * 9 * q * 2 + n * 2 * c * (c // 16))
        total = dense_total = fixed
        blocks = []
        for m, act in zip(self.body, active):
            sparse = m.body.hard_channel_mask()
            layer_macs, layer_dense = [], []
            d_in, s_in = c, 0
            for i in range(sparse.shape[0]):
                ns = int(sparse[i].sum())
                nd = c - ns
                layer_macs.append(hw * 9 * d_in * nd + act * 9 * (d_in * ns + s_in * (nd + ns)))
                layer_dense.append(hw * 9 * c * c)
                d_in, s_in = nd, ns
            n_d = int((~sparse).sum())
            smb = sum(layer_macs) + hw * n_d * c + act * (sparse.numel() - n_d) * c
            smb_dense = sum(layer_dense) + hw * sparse.numel() * c
            total += smb
            dense_total += smb_dense
            blocks.append({
                "spatial_density": act / hw,
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
