"""MASA-SR: Matching Acceleration and Spatial Adaptation for reference-based SR (Lu et al., CVPR 2021).

The network upscales an LR image by 4 with the help of a high-resolution reference image (Ref):

1. A shared encoder maps the LR image, the Ref and Ref-down (Ref shrunk by 4 with PIL's bicubic, so at the
   LR's scale) to features at three levels (x1, /2, /4 of each input).
2. The Match & Extraction Module finds, coarse to fine, where each LR position is in the Ref:

   * *block level*: the LR's level-1 features are cut into blocks of about 8x8; the central 3x3 patch of
     each block (at dilations 1, 2, 3) is compared by cosine similarity with every such patch of Ref-down
     (summed over the dilations); the best position is the centre of a window of Ref-down about 1.5 times
     the block's relative size, clamped inside the image;
   * *pixel level*: inside each block/window pair, dense 3x3 cosine matching; the best score is kept as a
     soft attention weight;
   * *extraction*: the matched Ref features (3x3, 6x6 and 12x12 patches of the Ref's /4, /2 and x1 levels,
     i.e. at LR x1, x2 and x4) are folded back (overlaps averaged) and scaled by the attention.

3. The decoder: a small U-Net over the LR features, then at x1, x2 and x4 a Spatial Adaptation Module
   (instance-normalised Ref features re-styled with the LR features' mean/std plus a learnt residual; one
   module shared by the three scales) and a Dual Residual Aggregation module that merges the LR path with
   the adapted Ref features; the output is added to the bicubic x4 of the LR.

Conventions (srkit): images are float32 RGB in [0, 1], NCHW. The official weights were trained on BGR
images in [0, 1] (read with OpenCV), so :meth:`MASA.forward` flips the channels in and out. The output is
not clamped.

Module and attribute names follow the official ``MASA`` so that its checkpoints (``masa_rec.pth``,
``masa.pth``) load key for key: ``enc.*``, ``decoder.*`` (with the shared SAM at ``decoder.pAda``).

Size rules: the matching needs LR sides that are multiples of 8 and at least 16, so :meth:`MASA.forward`
pads the LR with edge pixels, centred as the official test code pads its HR images, and crops the output
back (inputs that already fit run unpadded, exactly as the official network). The Ref is padded at the
bottom/right (edge pixels) to multiples of 16, also as the official code does, and Ref-down must be large
enough to hold the matching window of an LR block (see :func:`window_size`); a too-small Ref is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptor import ModelDescriptor
from ..data.pil_resize import pil_bicubic_resize
from ..errors import ConfigError, SrkitError

SCALE = 4
LR_BLOCK = 8
"""Nominal side of an LR block in the coarse search (the blocks are ``side // (side // 8)`` pixels)."""
REF_WINDOW_RATIO = 1.5
"""A block's Ref-down window is this times the block's share of the Ref-down, per axis."""
DILATIONS = (1, 2, 3)
PATCH = 3
REF_MULTIPLE = 16
"""The Ref is padded to a multiple of this (official test code) before it is shrunk by 4."""


# --- building blocks ---------------------------------------------------------------------------------------


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


class ResidualBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with 3x3 convs, no normalisation. Keys ``conv1``, ``conv2``."""

    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.conv1 = _conv(nf, nf)
        self.conv2 = _conv(nf, nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x))) + x


def _blocks(nf: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(nf) for _ in range(n)])


class Encoder(nn.Module):
    """Three-level feature pyramid shared by LR, Ref and Ref-down: (N, 3, H, W) -> [x1, /2, /4] features
    of ``nf`` channels (sizes ``H``, ``ceil(H/2)``, ``ceil(H/4)``)."""

    def __init__(self, in_chl: int = 3, nf: int = 64, n_blks: tuple[int, int, int] = (4, 4, 4)) -> None:
        super().__init__()
        self.conv_L1 = _conv(in_chl, nf)
        self.blk_L1 = _blocks(nf, n_blks[0])
        self.conv_L2 = _conv(nf, nf, stride=2)
        self.blk_L2 = _blocks(nf, n_blks[1])
        self.conv_L3 = _conv(nf, nf, stride=2)
        self.blk_L3 = _blocks(nf, n_blks[2])

    def level1(self, x: torch.Tensor) -> torch.Tensor:
        """The first level alone (all that matching needs of Ref-down)."""
        return self.blk_L1(F.relu(self.conv_L1(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.level1(x)
        f2 = self.blk_L2(F.relu(self.conv_L2(f1)))
        f3 = self.blk_L3(F.relu(self.conv_L3(f2)))
        return [f1, f2, f3]


class SAM(nn.Module):
    """Spatial Adaptation Module: re-styles the (instance-normalised) Ref features with the LR features'
    per-channel mean and (unbiased) std over the image, plus a learnt per-pixel residual computed from both.

    ``out = IN(ref) * (conv_gamma(s) + std(lr)) + (conv_beta(s) + mean(lr))``, ``s = relu(conv(cat(lr, ref)))``.
    ``conv_gamma``/``conv_beta`` start at zero, so an untrained SAM just transfers the LR statistics.
    """

    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.norm_layer = nn.InstanceNorm2d(nf, affine=False)
        self.conv_shared = nn.Sequential(_conv(nf * 2, nf), nn.ReLU(inplace=True))
        self.conv_gamma = _conv(nf, nf)
        self.conv_beta = _conv(nf, nf)
        for c in (self.conv_gamma, self.conv_beta):
            nn.init.zeros_(c.weight)
            nn.init.zeros_(c.bias)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        style = self.conv_shared(torch.cat([lr, ref], dim=1))
        flat = lr.flatten(2)
        mean = flat.mean(dim=-1)[..., None, None]
        std = flat.std(dim=-1)[..., None, None]
        gamma = self.conv_gamma(style) + std
        beta = self.conv_beta(style) + mean
        return self.norm_layer(ref) * gamma + beta


class DRAM(nn.Module):
    """Dual Residual Aggregation of LR-path features ``lr`` (N, nf, h, w) and adapted Ref features ``ref``
    (N, nf, 2h, 2w) -> (N, nf, 2h, 2w).

    One branch corrects the Ref with the back-projected LR residual, the other upsamples the LR corrected by
    the Ref's downsampled residual; a conv merges the two.
    """

    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.conv_down_a = _conv(nf, nf, stride=2)
        self.conv_up_a = nn.ConvTranspose2d(nf, nf, 3, 2, 1, output_padding=1)
        self.conv_down_b = _conv(nf, nf, stride=2)
        self.conv_up_b = nn.ConvTranspose2d(nf, nf, 3, 2, 1, output_padding=1)
        self.conv_cat = _conv(nf * 2, nf)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv_up_a(F.relu(self.conv_down_a(ref)) - lr)) + ref
        b = F.relu(self.conv_up_b((lr - F.relu(self.conv_down_b(ref))) + lr))
        return F.relu(self.conv_cat(torch.cat([a, b], dim=1)))


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    """LR U-Net (levels /4 -> /2 -> x1), then Ref fusion at x1 (SAM + conv), x2 and x4 (SAM + DRAM), with
    ``n_blks`` residual blocks after each stage (official: 2, 2, 2, 12, 8, 4)."""

    def __init__(self, nf: int = 64, out_chl: int = 3,
                 n_blks: tuple[int, int, int, int, int, int] = (2, 2, 2, 12, 8, 4)) -> None:
        super().__init__()
        self.conv_L3 = _conv(nf, nf)
        self.blk_L3 = _blocks(nf, n_blks[0])
        self.conv_L2 = _conv(nf * 2, nf)
        self.blk_L2 = _blocks(nf, n_blks[1])
        self.conv_L1 = _conv(nf * 2, nf)
        self.blk_L1 = _blocks(nf, n_blks[2])
        self.merge_warp_x1 = _conv(nf * 2, nf)
        self.blk_x1 = _blocks(nf, n_blks[3])
        self.dram_x2 = DRAM(nf)
        self.blk_x2 = _blocks(nf, n_blks[4])
        self.dram_x4 = DRAM(nf)
        self.blk_x4 = _blocks(nf, n_blks[5])
        self.conv_out = _conv(nf, out_chl)
        self.pAda = SAM(nf)  # one module for all three scales (official)

    def forward(self, lr_feats: list[torch.Tensor], ref_feats: list[torch.Tensor]) -> torch.Tensor:
        """``lr_feats`` = encoder levels [x1, /2, /4]; ``ref_feats`` = transferred Ref at [x4, x2, x1]."""
        f3 = self.blk_L3(F.relu(self.conv_L3(lr_feats[2])))
        f2 = self.blk_L2(F.relu(self.conv_L2(torch.cat([_up2(f3), lr_feats[1]], dim=1))))
        f1 = self.blk_L1(F.relu(self.conv_L1(torch.cat([_up2(f2), lr_feats[0]], dim=1))))

        r1 = self.pAda(f1, ref_feats[2])
        x1 = self.blk_x1(F.relu(self.merge_warp_x1(torch.cat([r1, f1], dim=1))))
        r2 = self.pAda(_up2(x1), ref_feats[1])
        x2 = self.blk_x2(self.dram_x2(x1, r2))
        r4 = self.pAda(_up2(x2), ref_feats[0])
        x4 = self.blk_x4(self.dram_x4(x2, r4))
        return self.conv_out(x4)


# --- matching ------------------------------------------------------------------------------------------------


def block_layout(h: int, w: int) -> tuple[int, int, int, int]:
    """(py, px, ky, kx): the LR (h, w) is cut into py x px blocks of ky x kx pixels (about 8x8)."""
    py, px = h // LR_BLOCK, w // LR_BLOCK
    if py < 1 or px < 1:
        raise SrkitError(f"masa: the LR image is {h}x{w}; it must be at least {LR_BLOCK}x{LR_BLOCK}")
    ky, kx = h // py, w // px
    if ky * py != h or kx * px != w:
        raise SrkitError(f"masa: the LR image is {h}x{w}; its height and width must be multiples of {LR_BLOCK}")
    return py, px, ky, kx


def window_size(lr_hw: tuple[int, int], ref_down_hw: tuple[int, int]) -> tuple[int, int]:
    """Height and width of the Ref-down window (with its 1-pixel margin) matched against each LR block:
    ``2 * int(R // (2 p) * 1.5) + 3`` per axis, R the Ref-down side and p the number of blocks on it."""
    py, px, _, _ = block_layout(*lr_hw)
    hd, wd = ref_down_hw
    dy = 2 * int(hd // (2 * py) * REF_WINDOW_RATIO) + 1
    dx = 2 * int(wd // (2 * px) * REF_WINDOW_RATIO) + 1
    return dy + 2, dx + 2


def _cosine_top1(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, D, M) and k (B, D, L) columns -> best cosine score and index of k for each q column: (B, M)."""
    q = F.normalize(q, dim=1).transpose(1, 2)
    k = F.normalize(k, dim=1)
    score, idx = torch.topk(torch.bmm(q, k), 1, dim=-1)
    return score[..., 0], idx[..., 0]


def _fold_back(src: torch.Tensor, index: torch.Tensor, att: torch.Tensor, s: int,
               out_hw: tuple[int, int]) -> torch.Tensor:
    """Gather (3s x 3s, stride s) patches of ``src`` (B, C, H, W) at ``index`` (B, ky*kx), fold them onto a
    (ky*s, kx*s) grid averaging the overlaps, and scale by the attention ``att`` (B, 1, ky, kx) resized."""
    k = PATCH * s
    cols = F.unfold(src, kernel_size=k, stride=s)
    cols = torch.gather(cols, 2, index[:, None, :].expand(-1, cols.shape[1], -1))
    out_hw = (out_hw[0] * s, out_hw[1] * s)
    out = F.fold(cols, out_hw, kernel_size=k, padding=s, stride=s)
    # Every channel overlaps identically, so one channel of ones gives the divisor.
    ones = torch.ones(1, k * k, cols.shape[2], dtype=cols.dtype, device=cols.device)
    count = F.fold(ones, out_hw, kernel_size=k, padding=s, stride=s)
    return out / count * F.interpolate(att, size=out_hw, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class MASAReference:
    """An encoded reference (:meth:`MASA.encode_reference`): the Ref's encoder levels [x1, /2, /4] and the
    level-1 features of Ref-down, (N, 64, ...) each, computed from the BGR images as the official network."""

    feats: list[torch.Tensor]
    down: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.down.shape[0])


class MASA(nn.Module):
    """MASA-SR x4 network (official configuration: nf 64, encoder 4/4/4 blocks, decoder 2/2/2/12/8/4).

    ``forward(lr, ref, ref_down=None)``:

    * ``lr``: (N, 3, h, w) RGB in [0, 1], any size (padded inside to multiples of 8, at least 16; the
      output is cropped back).
    * ``ref``: (N or 1, 3, H, W) RGB in [0, 1], the high-resolution reference (any size; padded at the
      bottom/right with edge pixels to multiples of 16).
    * ``ref_down``: optional Ref shrunk by 4, of size (H/4, W/4) of the *padded* Ref. By default it is
      computed with PIL-style bicubic (:func:`pil_bicubic_resize`), as the official data loader does (on
      8-bit images there; here in float).
    * ``ref`` may instead be a :class:`MASAReference` from :meth:`encode_reference` (batch 1 or N), so that
      a reference used for many images or tiles is encoded once.

    Returns (N, 3, 4h, 4w) RGB, nominally [0, 1], not clamped. A reference of batch 1 is encoded once and
    shared by the whole LR batch.
    """

    def __init__(self, nf: int = 64, scale: int = SCALE) -> None:
        super().__init__()
        if scale != SCALE:
            raise ConfigError(f"masa upscales by {SCALE} only, not {scale!r}")
        if nf != 64:
            # The official decoder hard-codes 64 channels in its last blocks and output conv.
            raise ConfigError(f"masa: nf must be 64 (the official decoder's x4 stage is fixed at 64), not {nf!r}")
        self.scale = scale
        self.enc = Encoder(3, nf, (4, 4, 4))
        self.decoder = Decoder(nf, 3, (2, 2, 2, 12, 8, 4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: convs N(0, 0.5 * sqrt(2 / (k*k*out))), zero bias; residual-block
        convs then scaled by 0.1; the SAM's gamma/beta convs zero."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, 0.5 * math.sqrt(2.0 / fan))
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    m.conv1.weight.mul_(0.1)
                    m.conv2.weight.mul_(0.1)
                elif isinstance(m, SAM):
                    nn.init.zeros_(m.conv_gamma.weight)
                    nn.init.zeros_(m.conv_beta.weight)

    # -- reference preparation --

    @staticmethod
    def prepare_ref(ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB Ref (N, 3, H, W) -> (padded Ref, Ref-down): replicate-padded at the bottom/right to multiples
        of 16, then shrunk by 4 with PIL-style bicubic. Both RGB in [0, 1]."""
        h, w = ref.shape[-2:]
        ph, pw = -h % REF_MULTIPLE, -w % REF_MULTIPLE
        if ph or pw:
            ref = F.pad(ref, (0, pw, 0, ph), mode="replicate")
        return ref, pil_bicubic_resize(ref, (ref.shape[-2] // SCALE, ref.shape[-1] // SCALE))

    # -- matching and transfer (features in, transferred Ref features out) --

    def match_and_extract(self, lr1: torch.Tensor, rd1: torch.Tensor,
                          ref_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Match & Extraction Module.

        ``lr1`` (N, C, h, w) and ``rd1`` (N, C, hd, wd): level-1 features of the LR and of Ref-down;
        ``ref_feats``: the Ref's encoder levels [x1, /2, /4] (sizes 4, 2, 1 times Ref-down).
        Returns the transferred Ref features at LR x4, x2, x1: [(N, C, 4h, 4w), (N, C, 2h, 2w), (N, C, h, w)].
        """
        n, c, h, w = lr1.shape
        hd, wd = rd1.shape[-2:]
        py, px, ky, kx = block_layout(h, w)
        wy, wx = window_size((h, w), (hd, wd))
        if wy > hd or wx > wd:
            raise SrkitError(
                f"masa: the reference is too small for a {h * SCALE}x{w * SCALE} output: each LR block is matched "
                f"in a {wy}x{wx} window of the reference shrunk by 4, which is only {hd}x{wd}; use a larger "
                "reference or a larger input (tile)")
        nb = py * px

        # Coarse: each block (with a 1-pixel edge margin) -> (N, nb, C, ky+2, kx+2).
        blocks = F.unfold(F.pad(lr1, (1, 1, 1, 1), mode="replicate"), (ky + 2, kx + 2), stride=(ky, kx))
        blocks = blocks.view(n, c, ky + 2, kx + 2, nb).permute(0, 4, 1, 2, 3)
        cy, cx = (ky + 2) // 2, (kx + 2) // 2
        corr: torch.Tensor | float = 0.0
        for d in DILATIONS:
            centre = blocks[:, :, :, cy - d: cy + d + 1: d, cx - d: cx + d + 1: d].reshape(n, nb, c * PATCH * PATCH)
            cand = F.unfold(rd1, PATCH, padding=d, dilation=d)  # every position of Ref-down, (N, C*9, hd*wd)
            corr = corr + torch.bmm(F.normalize(centre, dim=2), F.normalize(cand, dim=1))
        best = torch.topk(corr, 1, dim=-1)[1][..., 0]  # (N, nb)

        # Window of Ref-down around each best position, kept inside the image.
        y0 = (best // wd - (wy - 2) // 2 - 1).clamp(min=0).clamp(max=hd - wy)
        x0 = (best % wd - (wx - 2) // 2 - 1).clamp(min=0).clamp(max=wd - wx)

        def crop(feat: torch.Tensor, s: int) -> torch.Tensor:
            # (N, C, s*hd, s*wd) -> the windows scaled by s, (N*nb, C, s*wy, s*wx)
            ys = (y0 * s)[..., None] + torch.arange(wy * s, device=feat.device)
            xs = (x0 * s)[..., None] + torch.arange(wx * s, device=feat.device)
            b = torch.arange(n, device=feat.device)[:, None, None, None]
            win = feat[b, :, ys[:, :, :, None], xs[:, :, None, :]]  # (N, nb, s*wy, s*wx, C)
            return win.reshape(n * nb, s * wy, s * wx, c).permute(0, 3, 1, 2)

        # Fine: dense 3x3 matching of each block against its window.
        lr_blocks = blocks.reshape(n * nb, c, ky + 2, kx + 2)
        score, index = _cosine_top1(F.unfold(lr_blocks, PATCH), F.unfold(crop(rd1, 1), PATCH))
        att = score.view(n * nb, 1, ky, kx)

        out = []
        for s, feat in ((4, ref_feats[0]), (2, ref_feats[1]), (1, ref_feats[2])):
            t = _fold_back(crop(feat, s), index, att, s, (ky, kx))  # (N*nb, C, s*ky, s*kx)
            t = t.reshape(n, py, px, c, s * ky, s * kx).permute(0, 3, 1, 4, 2, 5)
            out.append(t.reshape(n, c, s * h, s * w))
        return out

    def encode_reference(self, ref: torch.Tensor, ref_down: torch.Tensor | None = None) -> MASAReference:
        """Encode a reference once, for reuse with many LR images or tiles: ``forward(lr, encoded)``.

        ``ref`` (N, 3, H, W) RGB in [0, 1]; ``ref_down`` as in :meth:`forward` (made here when None).
        """
        if ref.dim() != 4 or ref.shape[1] != 3:
            raise SrkitError(f"masa: the reference must be (N, 3, H, W) RGB, got {tuple(ref.shape)}")
        if ref_down is None:
            ref, ref_down = self.prepare_ref(ref)
        elif tuple(ref.shape[-2:]) != (ref_down.shape[-2] * SCALE, ref_down.shape[-1] * SCALE):
            raise SrkitError(f"masa: ref_down {tuple(ref_down.shape[-2:])} is not the reference "
                             f"{tuple(ref.shape[-2:])} shrunk by {SCALE}")
        # The official weights work on BGR. Only level 1 of Ref-down is used (for matching).
        return MASAReference(self.enc(ref.flip(1)), self.enc.level1(ref_down.flip(1)))

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | MASAReference,
                ref_down: torch.Tensor | None = None) -> torch.Tensor:
        n = lr.shape[0]
        if not isinstance(ref, MASAReference):
            ref = self.encode_reference(ref, ref_down)
        elif ref_down is not None:
            raise SrkitError("masa: ref_down goes with a reference image, not with an encoded reference")
        if ref.batch not in (1, n):
            raise SrkitError(f"masa: the reference must be (1 or {n}, 3, H, W), got a batch of {ref.batch}")
        h, w = lr.shape[-2:]
        pads = _centred_pad(h) + _centred_pad(w)  # (top, bottom, left, right)
        if any(pads):
            lr = F.pad(lr, (pads[2], pads[3], pads[0], pads[1]), mode="replicate")

        lr = lr.flip(1)  # BGR, as the official weights expect
        base = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
        lr_feats = self.enc(lr)
        ref_feats = [f.expand(n, -1, -1, -1) for f in ref.feats]
        warped = self.match_and_extract(lr_feats[0], ref.down.expand(n, -1, -1, -1), ref_feats)
        out = (self.decoder(lr_feats, warped) + base).flip(1)
        if any(pads):
            top, left = pads[0] * SCALE, pads[2] * SCALE
            out = out[..., top: top + h * SCALE, left: left + w * SCALE]
        return out


def _centred_pad(n: int) -> tuple[int, int]:
    # The official test pads centred, the odd pixel at the end; at least two blocks per axis.
    d = max(-(-n // LR_BLOCK) * LR_BLOCK, 2 * LR_BLOCK) - n
    return d // 2, d - d // 2


def describe(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    """Descriptor of :class:`MASA`: x4, needs a reference, any LR size (the network pads to multiples of 8,
    at least 16, itself: centred, as the official test code, rather than the upscaler's bottom/right pad).

    Receptive field of the conv path in LR pixels (3x3 convs): encoder 9 + 1 + 16 + 2 + 32 = 60, decoder
    U-Net 20 + 4 + 10 + 2 + 5 = 41, x1 fusion 25, x2 and x4 stages about 14, so about 140. Beyond that the
    network is not local: the SAM uses the whole LR feature map's mean/std and instance-normalises the
    transferred Ref, and the block grid starts at the input's corner, so tiles never equal the whole image
    exactly; the large receptive field makes the upscaler prefer big tiles. Half precision is not verified
    (cosine matching picks an argmax that rounding may flip), so the descriptor does not offer it.
    """
    if int(kw.get("scale", SCALE)) != SCALE:
        raise ConfigError(f"{name} upscales by {SCALE} only, not {kw['scale']!r}")
    return ModelDescriptor(arch=name, scales=(SCALE,), needs_ref=True, receptive_field=140,
                           supports_half=False, supports_bfloat16=False)
