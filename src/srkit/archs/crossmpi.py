"""Cross-MPI: cross-scale stereo super-resolution with multiplane images (Zhou, Wu, Fang, Liu, Dai, Qiao,
CVPR 2021), the final official configuration ``guided_nnup_denseASPP_lowres_image_psv_lowresL1``.

A low-resolution *target* view (upsampled x8 to the output size, "LR-up") is super-resolved with the help of
a high-resolution *reference* view from a calibrated second camera:

1. **Plane-sweep volume (PSV).** The reference is warped into the target camera for D fronto-parallel
   planes (official D = 32, depths uniform in inverse depth, farthest first); see
   :mod:`srkit.archs.plane_sweep`. The network takes the PSV as an input.
2. **Plane-aware attention at 1/4 of the output resolution.** LR-up and every PSV plane are shrunk by 4
   with PIL's bicubic on uint8 images (as the official ``img_pil_downsampling``, truncating, not rounding,
   to uint8); a shared feature extractor (conv, residual block, a residual dense-ASPP module of three
   chained steps with dilations 1/4/8 whose 1x1 merge conv ``aspp0/co`` is shared by the three steps,
   residual block, conv, 1x1 to 8 channels) gives features; the per-pixel dot products of the LR-up
   features with each plane's features (D logits) go through three 3x3 convs and a 1x1 conv back to D,
   then a softmax over planes. ``init_syn`` is the attention-weighted sum of the shrunk PSV planes.
3. **Multiscale guided upsampling of the attention.** A guidance encoder reads ``[LR-up | PSV]``
   (3 + 3D channels) at full, 1/2 and 1/4 resolution (stride-2 convs between levels); the attention is
   refined at 1/4 with the 1/4 guidance, upsampled by nearest neighbour x2 twice, each time merged with the
   guidance of that level; a 1x1 conv and a softmax over planes give the full-resolution attention, and
   ``hr_syn`` is the attention-weighted sum of the full-resolution PSV planes.
4. **Fusion.** A residual network (32 channels, six residual blocks, a global skip from the LR-up branch)
   fuses LR-up and ``hr_syn``; a 1x1 conv with tanh gives the SR image.

Every "group" of the guided decoder is an input conv, three residual units of three 3x3 convs, and an
output conv. Every conv is followed by ReLU (TF-slim's default; the stride-2 guidance convs included) except
the feature extractor's 1x1 ``conv_out``, the attention logits ``attention_out`` and ``a_out1`` (none) and
``sr_output`` (tanh).
Convolutions use TensorFlow's "SAME" padding, which for the stride-2 convs pads only at the bottom/right
of even-sized inputs; srkit reproduces that.

Ranges (srkit at the boundary, official inside): inputs and outputs are float32 RGB in [0, 1], NCHW.
The official network works in [-1, 1]; :meth:`CrossMPI.forward` maps ``v -> 2 v - 1`` on entry and
``v -> (v + 1) / 2`` on every image it returns. PSV samples that fall outside the reference are 0.5 in
srkit's range (0 in the official one); :func:`srkit.archs.plane_sweep.plane_sweep_volume` does that.

Parameter names map one to one onto the official TF-slim variable names: the TF name is the PyTorch key
with ``.`` -> ``/``, ``weight`` -> ``weights``, ``bias`` -> ``biases`` (:func:`tf_name`), e.g.
``f_extract_net.module0.aspp2.c3d8.weight`` <-> ``f_extract_net/module0/aspp2/c3d8/weights``.
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
from ..data.pil_resize import pil_bicubic_resize_uint8
from ..errors import ConfigError, SrkitError
from . import plane_sweep

SCALE = 8
LOWRES_FACTOR = 4
"""The attention is estimated at 1/4 of the output resolution (2x the LR)."""
STAGES = ("lowres", "hr_syn", "full")
"""How far :meth:`CrossMPI.run_stage` runs: the outputs of the three official training stages."""


def official_pil_downsample(x: torch.Tensor, factor: int = LOWRES_FACTOR) -> torch.Tensor:
    """The official ``img_pil_downsampling`` on (N, C, H, W) float32 images in [-1, 1]: to uint8 by
    ``trunc((x + 1) / 2 * 255)``, PIL bicubic to ``(int(H / factor), int(W / factor))``, back by
    ``v / 255 * 2 - 1``. Returns float32 in [-1, 1]. Not differentiable (neither is the official py_func)."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        t = ((x.float() + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0).trunc()
        y = pil_bicubic_resize_uint8(t, (int(h / factor), int(w / factor)))
        return (y.to(torch.float32) / 255.0) * 2.0 - 1.0


# --- layers --------------------------------------------------------------------------------------------------


class Conv(nn.Conv2d):
    """TF-slim ``conv2d`` with "SAME" padding: stride 1 pads symmetrically; stride 2 pads
    ``max((ceil(n / 2) - 1) * 2 + k - n, 0)`` in all, the odd pixel at the bottom/right (as TensorFlow)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        pad = (k - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(cin, cout, k, stride, pad, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            pads = []
            for n, k in ((x.shape[-1], self.kernel_size[1]), (x.shape[-2], self.kernel_size[0])):
                total = max((math.ceil(n / self.stride[0]) - 1) * self.stride[0] + k - n, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _named(module: nn.Module, **children: nn.Module) -> nn.Module:
    # Children whose TF scope names are not Python identifiers (``in``) are added by name.
    for name, child in children.items():
        module.add_module(name, child)
    return module


class ResBlock2(nn.Module):
    """``x + relu(c2(relu(c1(x))))`` (keys ``c1``, ``c2``; 3x3)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = Conv(ch, ch)
        self.c2 = Conv(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.c2(F.relu(self.c1(x))))


class ResBlock3(nn.Module):
    """``x + relu(c3(relu(c2(relu(c1(x))))))`` (keys ``c1``..``c3``; 3x3)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = Conv(ch, ch)
        self.c2 = Conv(ch, ch)
        self.c3 = Conv(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.c3(F.relu(self.c2(F.relu(self.c1(x))))))


class ResGroup(nn.Module):
    """The official ``my_residue_block``: ``relu(out(b2(b1(b0(relu(in(x)))))))`` with ``b*`` =
    :class:`ResBlock3` (keys ``in``, ``b0``..``b2``, ``out``)."""

    def __init__(self, cin: int, ch: int, repeat: int = 3) -> None:
        super().__init__()
        self.add_module("in", Conv(cin, ch))
        for j in range(repeat):
            self.add_module(f"b{j}", ResBlock3(ch))
        self.repeat = repeat
        self.out = Conv(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(getattr(self, "in")(x))
        for j in range(self.repeat):
            x = getattr(self, f"b{j}")(x)
        return F.relu(self.out(x))


class ASPPStep(nn.Module):
    """Three parallel 3x3 convs with dilations 1, 4, 8 (keys ``c1d1``, ``c2d4``, ``c3d8``), each with ReLU."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1d1 = Conv(ch, ch, dilation=1)
        self.c2d4 = Conv(ch, ch, dilation=4)
        self.c3d8 = Conv(ch, ch, dilation=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.c1d1(x)), F.relu(self.c2d4(x)), F.relu(self.c3d8(x))], dim=1)


class FeatureExtractor(nn.Module):
    """The official ``f_extract_net(dense_res_aspp=True)``: (N, 3, h, w) in [-1, 1] -> (N, ngf // 8, h, w).

    ``relu(conv_in)``, a :class:`ResBlock2` ``res_in``; the residual dense-ASPP module: with ``a = net``,
    three times ``a = relu(aspp0.co(module0.aspp{j}(a)))`` (1x1 merge conv, the same weights each time),
    ``net = net + a``; then :class:`ResBlock2` ``res0`` and ``relu(res0.co)``; ``conv_out`` 1x1 without
    activation.
    """

    def __init__(self, ngf: int = 64, aspp_steps: int = 3) -> None:
        super().__init__()
        self.conv_in = Conv(3, ngf)
        self.res_in = ResBlock2(ngf)
        self.module0 = _named(nn.Module(), **{f"aspp{j}": ASPPStep(ngf) for j in range(aspp_steps)})
        self.aspp0 = _named(nn.Module(), co=Conv(3 * ngf, ngf, k=1))
        self.res0 = _named(ResBlock2(ngf), co=Conv(ngf, ngf))
        self.conv_out = Conv(ngf, ngf // 8, k=1)
        self.aspp_steps = aspp_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.res_in(F.relu(self.conv_in(x)))
        a = net
        for j in range(self.aspp_steps):
            a = F.relu(self.aspp0.co(getattr(self.module0, f"aspp{j}")(a)))
            net = net + a
        net = F.relu(self.res0.co(self.res0(net)))
        return self.conv_out(net)


class GuidedAttention(nn.Module):
    """The official ``guided_att_hr_syn_net`` (variable scope ``net``) with a low-res synthesis and
    nearest-neighbour upsampling: attention at 1/4 from feature dot products, guided upsampling to full
    resolution (:meth:`low_res_attention`, :meth:`upsample_attention`)."""

    def __init__(self, num_planes: int = 32, ngf: int = 64) -> None:
        super().__init__()
        n = num_planes
        self.attention_out_0 = Conv(n, ngf)
        self.attention_out_1 = Conv(ngf, ngf)
        self.attention_out_2 = Conv(ngf, ngf)
        self.attention_out = Conv(ngf, n, k=1)
        self.guid_lv0_res = ResGroup(3 * (n + 1), ngf)
        self.guid_lv1_down = Conv(ngf, ngf, stride=2)
        self.guid_lv1_res = ResGroup(ngf, ngf)
        self.guid_lv2_down = Conv(ngf, ngf, stride=2)
        self.guid_lv2_res = ResGroup(ngf, ngf)
        self.a_lv2_res0 = ResGroup(n, ngf)
        self.a_lv2_res_com2 = ResGroup(2 * ngf, ngf)
        self.a_lv1_res_com1 = ResGroup(2 * ngf, ngf)
        self.a_lv0_res_com0 = ResGroup(2 * ngf, ngf)
        self.a_out1 = Conv(ngf, n, k=1)

    def low_res_attention(self, f_lr: torch.Tensor, f_psv: torch.Tensor) -> torch.Tensor:
        """(N, c, h, w) LR-up features and (N, D, c, h, w) plane features -> (N, D, h, w) softmax weights."""
        logits = (f_lr[:, None] * f_psv).sum(dim=2)
        a = F.relu(self.attention_out_0(logits))
        a = F.relu(self.attention_out_1(a))
        a = F.relu(self.attention_out_2(a))
        return torch.softmax(self.attention_out(a), dim=1)

    def upsample_attention(self, att_low: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) low-res weights and (N, 3 + 3D, 4h, 4w) guidance -> (N, D, 4h, 4w) softmax weights."""
        g0 = self.guid_lv0_res(guidance)
        g1 = self.guid_lv1_res(F.relu(self.guid_lv1_down(g0)))
        g2 = self.guid_lv2_res(F.relu(self.guid_lv2_down(g1)))
        a = self.a_lv2_res0(att_low)
        a = self.a_lv2_res_com2(torch.cat([a, g2], dim=1))
        a = F.interpolate(a, scale_factor=2, mode="nearest")
        a = self.a_lv1_res_com1(torch.cat([a, g1], dim=1))
        a = F.interpolate(a, scale_factor=2, mode="nearest")
        a = self.a_lv0_res_com0(torch.cat([a, g0], dim=1))
        return torch.softmax(self.a_out1(a), dim=1)


class FuseNet(nn.Module):
    """The official ``res_fuse_net`` (scope ``fuse_part``): LR-up and ``hr_syn`` in [-1, 1] -> SR in (-1, 1).

    ``f = relu(in_f_lr(lr_up))``, ``g = relu(in_f_hr(hr_syn))``, ``relu(conv1_1([f, g]))``, six
    :class:`ResBlock2` (``conv2_1.b0``..``b5``), ``relu(conv3_2)``, ``+ f``, ``relu(conv4_1)``,
    ``tanh(sr_output)`` (1x1)."""

    def __init__(self, ngf: int = 32, n_blocks: int = 6) -> None:
        super().__init__()
        self.in_f_lr = Conv(3, ngf)
        self.in_f_hr = Conv(3, ngf)
        self.conv1_1 = Conv(2 * ngf, ngf)
        self.conv2_1 = _named(nn.Module(), **{f"b{i}": ResBlock2(ngf) for i in range(n_blocks)})
        self.conv3_2 = Conv(ngf, ngf)
        self.conv4_1 = Conv(ngf, ngf)
        self.sr_output = Conv(ngf, 3, k=1)
        self.n_blocks = n_blocks

    def forward(self, lr_up: torch.Tensor, hr_syn: torch.Tensor) -> torch.Tensor:
        f_lr = F.relu(self.in_f_lr(lr_up))
        net = F.relu(self.conv1_1(torch.cat([f_lr, F.relu(self.in_f_hr(hr_syn))], dim=1)))
        for i in range(self.n_blocks):
            net = getattr(self.conv2_1, f"b{i}")(net)
        net = f_lr + F.relu(self.conv3_2(net))
        return torch.tanh(self.sr_output(F.relu(self.conv4_1(net))))


# --- the network --------------------------------------------------------------------------------------------


@dataclass
class CrossMPIOutput:
    """What :meth:`CrossMPI.forward` returns. Images are RGB in srkit's [0, 1] range (mapped from the
    official [-1, 1] by ``(v + 1) / 2``), NCHW; H x W is the output (HR) size, h x w = H/4 x W/4."""

    init_syn: torch.Tensor
    """(N, 3, h, w) low-res synthesis from the 1/4 attention and the shrunk PSV (official ``init_syn``)."""
    init_attention: torch.Tensor
    """(N, D, h, w) low-res plane weights (softmax over dim 1) that make ``init_syn``."""
    hr_syn: torch.Tensor | None = None
    """(N, 3, H, W) attention-weighted sum of the PSV planes (the official ``hr_syn``); None only from
    :meth:`CrossMPI.run_stage` ``"lowres"``."""
    attention: torch.Tensor | None = None
    """(N, D, H, W) plane weights (softmax over dim 1) that make ``hr_syn``; None as ``hr_syn``."""
    sr: torch.Tensor | None = None
    """(N, 3, H, W) super-resolved target view (the official ``sr_out``); None only from
    :meth:`CrossMPI.run_stage` ``"lowres"`` and ``"hr_syn"``."""


class CrossMPI(nn.Module):
    """Cross-MPI (official ``guided_nnup_denseASPP_lowres_image_psv_lowresL1``), x8 stereo reference SR.

    Args:
        num_planes: D, planes of the plane-sweep volume (official 32).
        feat_ch: width of the shared feature extractor (official 64; its output has ``feat_ch // 8``).
        att_ch: width of the attention and guided upsampling nets (official 64).
        fuse_ch: width of the fusion net (official 32).
        scale: the LR -> HR factor the network was trained for (official 8; the network itself only needs
            the output size to be a multiple of 4).

    Submodules ``f_extract_net``, ``net`` and ``fuse_part`` carry the TF-slim scopes of the official
    checkpoint (see :func:`tf_name`).
    """

    def __init__(self, num_planes: int = 32, feat_ch: int = 64, att_ch: int = 64, fuse_ch: int = 32,
                 scale: int = SCALE) -> None:
        super().__init__()
        if num_planes < 2:
            raise ConfigError(f"crossmpi needs at least 2 planes, got num_planes={num_planes}")
        if feat_ch % 8:
            raise ConfigError(f"crossmpi: feat_ch must be a multiple of 8, got {feat_ch}")
        if scale != SCALE:
            raise ConfigError(f"crossmpi upscales by {SCALE} only, not {scale!r}")
        self.num_planes = num_planes
        self.scale = scale
        self.f_extract_net = FeatureExtractor(feat_ch)
        self.net = GuidedAttention(num_planes, att_ch)
        self.fuse_part = FuseNet(fuse_ch)
        # TF-slim's conv2d initialisers: Glorot-uniform kernels (fans include the kernel area), zero biases.
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, lr_up: torch.Tensor, psv: torch.Tensor, stage: str = "full") -> CrossMPIOutput:
        """Super-resolve the target view.

        Args:
            lr_up: (N, 3, H, W) target view upsampled to the output size (official: the LR shrunk x8 and
                enlarged x8 with PIL bicubic on uint8, see :func:`upsample_lr`), RGB in [0, 1].
                H and W must be multiples of 4.
            psv: (N, D, 3, H, W) plane-sweep volume of the HR reference in the target camera, planes in
                the order of :func:`srkit.archs.plane_sweep.inverse_depths` (farthest first), RGB in
                [0, 1] with 0.5 outside the reference (:func:`srkit.archs.plane_sweep.plane_sweep_volume`).

            stage: ``"full"`` (default) returns everything; the training stages ``"lowres"`` and
                ``"hr_syn"`` stop early (see :meth:`run_stage`).

        The 1/4-resolution inputs of the attention branch (the official ``net_input_lowres``) are made
        inside, with :func:`official_pil_downsample` (no gradient flows through them, as officially).
        """
        return self.run_stage(lr_up, psv, stage)

    def run_stage(self, lr_up: torch.Tensor, psv: torch.Tensor, stage: str = "full") -> CrossMPIOutput:
        """:meth:`forward` up to the output a training stage needs: ``"lowres"`` (official stage 1, only
        ``init_syn``), ``"hr_syn"`` (stage 2, adds ``hr_syn``; the fusion net is not run, as with the
        official ``--pretrain_hr_syn``) or ``"full"`` (everything). ``forward(lr_up, psv, stage)`` calls it."""
        if stage not in STAGES:
            raise ConfigError(f"crossmpi: unknown stage {stage!r}; known: {', '.join(STAGES)}")
        if psv.dim() == 4:
            raise SrkitError("crossmpi takes a plane-sweep volume (N, D, 3, H, W) made from the reference and the "
                             "camera calibration (srkit.archs.plane_sweep, or CrossMPI.super_resolve), not a "
                             "reference image: the generic upscaler cannot run it")
        n, c, hh, ww = lr_up.shape
        if c != 3 or psv.dim() != 5 or psv.shape[0] != n or psv.shape[2] != 3 or psv.shape[-2:] != lr_up.shape[-2:]:
            raise SrkitError(f"crossmpi expects lr_up (N, 3, H, W) and psv (N, D, 3, H, W) of the same N, H, W; "
                             f"got {tuple(lr_up.shape)} and {tuple(psv.shape)}")
        d = psv.shape[1]
        if d != self.num_planes:
            raise SrkitError(f"crossmpi was built for {self.num_planes} planes, the PSV has {d}")
        if hh % LOWRES_FACTOR or ww % LOWRES_FACTOR:
            raise SrkitError(f"crossmpi needs output sizes that are multiples of {LOWRES_FACTOR}, got {hh}x{ww}")
        # Official range from here on: [-1, 1].
        x = lr_up * 2.0 - 1.0
        v = psv * 2.0 - 1.0
        h, w = hh // LOWRES_FACTOR, ww // LOWRES_FACTOR
        x_low = official_pil_downsample(x).to(x.dtype)
        v_low = official_pil_downsample(v.reshape(n * d, 3, hh, ww)).to(x.dtype)
        f_lr = self.f_extract_net(x_low)
        f_psv = self.f_extract_net(v_low).reshape(n, d, -1, h, w)
        v_low = v_low.reshape(n, d, 3, h, w)
        att_low = self.net.low_res_attention(f_lr, f_psv)
        init_syn = (att_low[:, :, None] * v_low).sum(dim=1)
        out = CrossMPIOutput(init_syn=(init_syn + 1.0) / 2.0, init_attention=att_low)
        if stage == "lowres":
            return out
        guidance = torch.cat([x, v.reshape(n, d * 3, hh, ww)], dim=1)  # official net_input channel order
        att = self.net.upsample_attention(att_low, guidance)
        hr_syn = (att[:, :, None] * v).sum(dim=1)
        out.hr_syn, out.attention = (hr_syn + 1.0) / 2.0, att
        if stage == "full":
            out.sr = (self.fuse_part(x, hr_syn) + 1.0) / 2.0
        return out

    def super_resolve(self, lr: torch.Tensor, ref: torch.Tensor, pose: torch.Tensor, k_tgt: torch.Tensor,
                      k_ref: torch.Tensor | None = None, min_depth: float = plane_sweep.OFFICIAL_MIN_DEPTH,
                      max_depth: float = plane_sweep.OFFICIAL_MAX_DEPTH) -> CrossMPIOutput:
        """LR target view + HR reference + calibration -> :class:`CrossMPIOutput` (the official test path).

        Args:
            lr: (N, 3, H/8, W/8) LR target view in [0, 1].
            ref: (N, 3, H, W) HR reference view in [0, 1].
            pose: (4, 4) or (N, 4, 4) target-camera -> reference-camera transform
                (:func:`srkit.archs.plane_sweep.relative_pose` of the two world-to-camera poses).
            k_tgt, k_ref: pixel intrinsics of the target view *at the output resolution* and of the
                reference (default: the same).
            min_depth, max_depth: depth range of the sweep (official 1 and 100, in the poses' units).
        """
        hh, ww = lr.shape[-2] * self.scale, lr.shape[-1] * self.scale
        lr_up = upsample_lr(lr, self.scale)
        depths = plane_sweep.inverse_depths(min_depth, max_depth, self.num_planes)
        psv = plane_sweep.plane_sweep_volume(ref, depths, pose, k_tgt, k_ref, out_size=(hh, ww))
        return self(lr_up, psv)


def upsample_lr(lr: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """The official LR-up: (N, 3, h, w) images in [0, 1] quantised as ``trunc(v * 255)`` and enlarged by
    ``scale`` with PIL bicubic on uint8 (the loader's ``img_processing_lr_syn``); float32 in [0, 1]."""
    with torch.no_grad():
        t = (lr.float() * 255.0).clamp(0.0, 255.0).trunc()
        y = pil_bicubic_resize_uint8(t, (lr.shape[-2] * scale, lr.shape[-1] * scale))
        return y.to(torch.float32) / 255.0


def downsample_hr(hr: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """The official LR synthesis: (N, 3, H, W) in [0, 1] quantised as ``trunc(v * 255)`` and shrunk by
    ``scale`` with PIL bicubic on uint8 (the loader's ``img_pil_downsampling``); float32 in [0, 1]."""
    with torch.no_grad():
        t = (hr.float() * 255.0).clamp(0.0, 255.0).trunc()
        y = pil_bicubic_resize_uint8(t, (int(hr.shape[-2] / scale), int(hr.shape[-1] / scale)))
        return y.to(torch.float32) / 255.0


def tf_name(torch_key: str) -> str:
    """The official TF-slim variable name of a :class:`CrossMPI` state_dict key
    (``net.guid_lv0_res.in.weight`` -> ``net/guid_lv0_res/in/weights``)."""
    path, _, leaf = torch_key.rpartition(".")
    suffix = {"weight": "weights", "bias": "biases"}.get(leaf)
    if suffix is None:
        raise SrkitError(f"{torch_key!r} is not a conv weight or bias of CrossMPI")
    return path.replace(".", "/") + "/" + suffix


def tf_variable_shapes(**kwargs: Any) -> dict[str, tuple[int, ...]]:
    """``{TF variable name: TF shape}`` of the official checkpoint for ``CrossMPI(**kwargs)`` (weights are
    HWIO, biases 1-D), in the network's parameter order. Built on the meta device (no memory)."""
    with torch.device("meta"):
        net = CrossMPI(**kwargs)
    out: dict[str, tuple[int, ...]] = {}
    for key, t in net.state_dict().items():
        shape = tuple(t.shape)
        out[tf_name(key)] = (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else shape
    return out


def describe(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    """Descriptor of :class:`CrossMPI`: x8, needs a calibrated reference (and poses). Output sizes must be
    multiples of 4 (the LR of any size works for x8). The receptive field is an estimate in LR pixels
    along the longest conv path (feature extractor at 2x LR about 15, attention decoder about 16, fusion
    and resampling about 4), about 40; tiling is not meaningful anyway, since the plane sweep depends on
    the absolute pixel positions. Half precision is not verified."""
    if int(kw.get("scale", SCALE)) != SCALE:
        raise ConfigError(f"{name} upscales by {SCALE} only, not {kw['scale']!r}")
    return ModelDescriptor(arch=name, scales=(SCALE,), needs_ref=True, receptive_field=40,
                           supports_half=False, supports_bfloat16=False)


__all__ = ["CrossMPI", "CrossMPIOutput", "FeatureExtractor", "FuseNet", "GuidedAttention", "describe",
           "downsample_hr", "official_pil_downsample", "pil_bicubic_resize_uint8", "tf_name",
           "tf_variable_shapes", "upsample_lr"]
