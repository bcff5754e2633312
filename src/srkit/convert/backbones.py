"""Converters for the classic backbones: EDSR/EDSR-baseline, RCAN and RDN (EDSR-PyTorch layout, also the
encoders inside LIIF checkpoints), CARN-M, MSRResNet and FSRCNN (ClassSR layout).

srkit's networks use the official key names, so the state_dict passes through unchanged; the work here is
reading the constructor arguments back from the tensor shapes, because the official files store weights
only. What shapes cannot tell (EDSR's residual scaling, FSRCNN's deconvolution stride) comes from the
architecture's defaults, ``--scale`` or ``--set``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import CheckpointError
from .common import Conversion, StateDict, require, resolve_kwargs

DIV2K_MEAN_R = 0.4488  # red-channel mean baked into the MeanShift bias of EDSR-PyTorch-style checkpoints


def count_indexed(state: Mapping[str, Any], pattern: str) -> int:
    """Number of consecutive indices ``i`` = 0, 1, ... for which ``pattern.format(i)`` is a key."""
    n = 0
    while pattern.format(n) in state:
        n += 1
    return n


def _subpixel_scale(state: Mapping[str, Any], prefix: str, n_feats: int, step: int, arch: str) -> int | None:
    """Scale of an EDSR-style upsampler whose convs sit at ``prefix.{0, step, 2*step, ...}.weight``:
    one conv to 9n channels means x3, k convs to 4n channels mean x2**k. None when there is none."""
    convs = []
    i = 0
    while f"{prefix}.{i}.weight" in state:
        convs.append(state[f"{prefix}.{i}.weight"].shape[0])
        i += step
    if not convs:
        return None
    if convs == [9 * n_feats]:
        return 3
    if all(c == 4 * n_feats for c in convs):
        return 2 ** len(convs)
    raise CheckpointError(f"cannot read the scale of the {arch} upsampler '{prefix}' (output channels {convs})")


def _img_range_from_mean_shift(state: Mapping[str, Any], notes: list[str]) -> float | None:
    """EDSR-PyTorch bakes ``-range * mean`` into ``sub_mean.bias``; read the range (255 or 1) back."""
    bias = state.get("sub_mean.bias")
    if bias is None or bias.numel() != 3:
        return None
    ratio = float(-bias[0]) / DIV2K_MEAN_R
    for candidate in (255.0, 1.0):
        if abs(ratio - candidate) < 0.01 * candidate:
            notes.append(f"img_range={candidate:g} read from sub_mean.bias")
            return candidate
    notes.append(f"sub_mean.bias implies an unusual pixel range ({ratio:.3g}); kept the default img_range")
    return None


def _edsr(state: StateDict, scale: int | None, overrides: dict[str, Any], arch: str, res_scale: float) -> Conversion:
    notes: list[str] = []
    n_feats = require(state, "head.0.weight", arch).shape[0]
    inferred: dict[str, Any] = {
        "n_resblocks": count_indexed(state, "body.{}.body.0.weight"),
        "n_feats": n_feats,
    }
    up_scale = _subpixel_scale(state, "tail.0", n_feats, 2, arch)
    if up_scale is None and "tail.1.weight" not in state:
        inferred["no_upsampling"] = True  # an encoder, e.g. from a LIIF checkpoint
        notes.append("no tail: encoder without upsampling")
    elif up_scale is None:
        raise CheckpointError(f"this {arch} checkpoint has 'tail.1' but no upsampler ('tail.0.0.weight')")
    else:
        inferred["scale"] = up_scale
    img_range = _img_range_from_mean_shift(state, notes)
    if img_range is not None:
        inferred["img_range"] = img_range
    defaults = {"res_scale": res_scale}
    if "res_scale" not in overrides:
        notes.append(f"res_scale={res_scale:g} is not stored in checkpoints: {arch}'s default (override with --set)")
    return Conversion(arch, resolve_kwargs(arch, inferred, defaults, scale, overrides), state, notes)


def _pixel_shuffle_scale(out_channels: int, nf: int, arch: str) -> int:
    """Scale of a single conv + PixelShuffle upsampler with ``out_channels`` = nf * s^2 (s = 2 or 3)."""
    ratio = out_channels // nf
    if ratio not in (4, 9):
        raise CheckpointError(f"cannot read the scale of the {arch} upsampler ({out_channels} channels)")
    return {4: 2, 9: 3}[ratio]


def convert_edsr(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """EDSR (EDSR-PyTorch ``model/edsr.py``): residual scaling 0.1 unless ``--set res_scale=...``."""
    return _edsr(state, scale, overrides, "edsr", 0.1)


def convert_edsr_baseline(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """EDSR-baseline (the same module with residual scaling 1), also LIIF's ``edsr-baseline`` encoder."""
    return _edsr(state, scale, overrides, "edsr_baseline", 1.0)


def convert_rcan(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """RCAN (EDSR-PyTorch ``model/rcan.py``): groups, blocks, features and reduction from the shapes."""
    notes: list[str] = []
    n_feats = require(state, "head.0.weight", "rcan").shape[0]
    squeeze = require(state, "body.0.body.0.body.3.conv_du.0.weight", "rcan").shape[0]
    inferred: dict[str, Any] = {
        "n_resgroups": count_indexed(state, "body.{}.body.0.body.0.weight"),
        "n_resblocks": count_indexed(state, "body.0.body.{}.body.0.weight"),
        "n_feats": n_feats,
        "reduction": n_feats // squeeze,
        "scale": _subpixel_scale(state, "tail.0", n_feats, 2, "rcan"),
    }
    img_range = _img_range_from_mean_shift(state, notes)
    if img_range is not None:
        inferred["img_range"] = img_range
    return Conversion("rcan", resolve_kwargs("rcan", inferred, {}, scale, overrides), state, notes)


def convert_rdn(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """RDN (EDSR-PyTorch ``model/rdn.py``; LIIF's ``rdn`` encoder when there is no ``UPNet``)."""
    notes: list[str] = []
    sfe = require(state, "SFENet1.weight", "rdn")
    G0, n_colors, kernel_size = sfe.shape[0], sfe.shape[1], sfe.shape[-1]  # noqa: N806 (paper names)
    G = require(state, "RDBs.0.convs.0.conv.0.weight", "rdn").shape[0]  # noqa: N806
    inferred: dict[str, Any] = {
        "G0": G0,
        "D": count_indexed(state, "RDBs.{}.LFF.weight"),
        "C": count_indexed(state, "RDBs.0.convs.{}.conv.0.weight"),
        "G": G,
        "kernel_size": kernel_size,
        "n_colors": n_colors,
    }
    if "UPNet.0.weight" not in state:
        inferred["no_upsampling"] = True
        notes.append("no UPNet: encoder without upsampling")
    elif "UPNet.4.weight" in state:
        inferred["scale"] = 4
    else:
        inferred["scale"] = _pixel_shuffle_scale(state["UPNet.0.weight"].shape[0], G, "rdn")
    return Conversion("rdn", resolve_kwargs("rdn", inferred, {}, scale, overrides), state, notes)


def convert_carn_m(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """CARN-M (ClassSR ``CARN_arch.py``, single-scale): features and groups from the shapes."""
    if any(k.startswith(("upsample.up2.", "upsample.up3.", "upsample.up4.")) for k in state):
        raise CheckpointError("multi-scale CARN-M checkpoints (upsample.up2/up3/up4) are not supported; "
                              "srkit's carn_m is single-scale")
    nf = require(state, "entry.weight", "carn_m").shape[0]
    group = nf // require(state, "b1.b1.body.0.weight", "carn_m").shape[1]
    if "upsample.up.body.3.weight" in state:
        up = 4
    else:
        up = _pixel_shuffle_scale(require(state, "upsample.up.body.0.weight", "carn_m").shape[0], nf, "carn_m")
    inferred = {"nf": nf, "group": group, "scale": up}
    return Conversion("carn_m", resolve_kwargs("carn_m", inferred, {}, scale, overrides), state, [])


def convert_msrresnet(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """MSRResNet (ClassSR/BasicSR-v0 ``SRResNet_arch.py``)."""
    first = require(state, "conv_first.weight", "msrresnet")
    nf = first.shape[0]
    if "upconv2.weight" in state:
        up = 4
    else:
        up = _pixel_shuffle_scale(require(state, "upconv1.weight", "msrresnet").shape[0], nf, "msrresnet")
    inferred = {
        "in_nc": first.shape[1],
        "out_nc": require(state, "conv_last.weight", "msrresnet").shape[0],
        "nf": nf,
        "nb": count_indexed(state, "recon_trunk.{}.conv1.weight"),
        "scale": up,
    }
    return Conversion("msrresnet", resolve_kwargs("msrresnet", inferred, {}, scale, overrides), state, [])


_FSRCNN_MAP = re.compile(r"^body_conv\.(\d+)\.weight$")


def convert_fsrcnn(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """FSRCNN (ClassSR ``FSRCNN_arch.py``). The deconvolution stride (= scale) is not stored: it is 4
    (the only scale ClassSR trains) unless ``--scale`` says otherwise."""
    head = require(state, "head_conv.0.weight", "fsrcnn")
    s = require(state, "body_conv.0.0.weight", "fsrcnn").shape[0]
    m = sum(1 for k, v in state.items() if _FSRCNN_MAP.match(k) and v.dim() == 4)
    inferred = {"d": head.shape[0], "s": s, "m": m, "n_colors": head.shape[1]}
    notes = [] if scale is not None or "scale" in overrides else [
        "scale=4 assumed: FSRCNN checkpoints do not record the deconvolution stride (use --scale)"
    ]
    kwargs = resolve_kwargs("fsrcnn", inferred, {"scale": 4}, scale, overrides)
    return Conversion("fsrcnn", kwargs, state, notes)
