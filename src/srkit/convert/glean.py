"""Official GLEAN checkpoints (MMagic / MMEditing ``glean_*.pth``) -> srkit's :class:`srkit.archs.glean.GLEAN`.

MMagic saves its ``SRGAN`` model: ``{'meta', 'state_dict', 'optimizer'}`` with the state_dict keys
``generator.*`` (the ``GLEANStyleGANv2`` network, whose StyleGAN2 latent bank sits under
``generator.generator.*``) and ``discriminator.*`` (the StyleGAN2 discriminator, training only). SRGAN keeps
no EMA copy of the generator, and MMagic evaluates ``generator``; should a checkpoint also hold
``generator_ema.*`` (as MMagic's StyleGAN2 checkpoints do), those weights are preferred, with a note. A
bare ``GLEANStyleGANv2`` state_dict (keys ``encoder.*``, ``generator.*``, ...) is accepted too.

srkit's network has the official key names, so the weights pass through unchanged once the prefix is
removed. The constructor arguments are read from the shapes: ``in_size`` from the number of fusion layers,
``out_size`` from the number of StyleGAN2 RGB layers, the encoder width and depth, the style width, the
mapping depth and (for ``out_size`` >= 64) the channel multiplier. ``lr_mlp`` (0.01) cannot be read from
the weights and is assumed; it only matters for the unused mapping MLP.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import CheckpointError
from .common import Conversion, StateDict, require

_PROBE = "encoder.0.0.conv_first.weight"


def _pick_generator(state: StateDict, notes: list[str]) -> StateDict:
    for prefix in ("generator_ema.", "generator."):
        if prefix + _PROBE in state:
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            others: dict[str, int] = {}
            for k in state:
                if not k.startswith(prefix):
                    top = k.split(".", 1)[0]
                    others[top] = others.get(top, 0) + 1
            if prefix == "generator_ema.":
                notes.append("used the EMA generator weights (generator_ema.*)")
            else:
                notes.append("used the generator weights (generator.*)")
            if others:
                dropped = ", ".join(f"{name}.* ({n})" for name, n in sorted(others.items()))
                notes.append(f"dropped entries not needed for inference: {dropped}")
            return sub
    if _PROBE in state:
        return dict(state)
    sample = ", ".join(list(state)[:6])
    raise CheckpointError(
        f"this does not look like a glean checkpoint: key 'generator.{_PROBE}' is missing "
        f"(it starts with: {sample}, ...)"
    )


def _count(state: StateDict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def convert_glean(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """``srkit convert --arch glean``: MMagic GLEAN checkpoint -> srkit GLEAN (identity key mapping after
    the ``generator.`` prefix; discriminator and other training entries dropped)."""
    notes: list[str] = []
    state = _pick_generator(state, notes)
    first = require(state, _PROBE, "glean")
    style = require(state, "generator.conv1.conv.style_modulation.linear.weight_orig", "glean")
    n_fusion = _count(state, r"fusion_out\.(\d+)\.weight$")
    n_rgb = _count(state, r"generator\.to_rgbs\.(\d+)\.")
    if n_fusion < 1 or n_rgb < 1:
        raise CheckpointError("this does not look like a glean checkpoint: no fusion_out or to_rgbs layers")
    in_size, out_size = 2 ** (n_fusion + 1), 2 ** (n_rgb + 2)
    inferred: dict[str, Any] = {
        "in_size": in_size,
        "out_size": out_size,
        "img_channels": int(first.shape[1]),
        "rrdb_channels": int(first.shape[0]),
        "num_rrdbs": _count(state, r"encoder\.0\.0\.body\.(\d+)\."),
        "style_channels": int(style.shape[1]),
        "num_mlps": _count(state, r"generator\.style_mapping\.(\d+)\.bias$"),
    }
    if out_size >= 64:
        last = require(state, f"generator.convs.{2 * n_rgb - 1}.conv.weight_orig", "glean")
        width = int(last.shape[1]) * out_size
        if width % 16384 or width < 16384:
            raise CheckpointError(f"glean: the {out_size}-px StyleGAN2 layer has {last.shape[1]} channels, "
                                  "which no channel multiplier gives")
        inferred["channel_multiplier"] = width // 16384
    else:
        notes.append("channel_multiplier cannot be read below 64 px output; the default (2) does not matter there")
    kernel = state.get("generator.convs.0.conv.blur.kernel")
    if kernel is not None and tuple(kernel.shape) != (4, 4):
        raise CheckpointError(f"glean: blur kernel of shape {tuple(kernel.shape)}; srkit supports 4-tap kernels")
    notes.append(f"in_size {in_size}, out_size {out_size} (x{out_size // in_size}) read from the layer counts")
    if scale is not None and scale * in_size != out_size:
        raise CheckpointError(f"the glean checkpoint maps {in_size} px to {out_size} px (x{out_size // in_size}), "
                              f"not x{scale}")
    kwargs = {**inferred, **overrides}
    return Conversion("glean", kwargs, state, notes)


def load_latent_bank(net: Any, source: Any, prefix: str = "generator_ema") -> list[str]:
    """Load a pretrained StyleGAN2 generator into ``net.generator`` (the latent bank of a GLEAN network),
    as official GLEAN training starts (``init_cfg`` with ``prefix='generator_ema'``).

    ``source``: a path to one of MMagic's converted StyleGAN2 checkpoints
    (``stylegan2-{ffhq,cat,car,...}-config-f-official_*.pth``: ``generator.*``, ``generator_ema.*`` and
    ``discriminator.*`` entries, possibly wrapped in ``state_dict``), or such a dict. ``prefix`` picks the
    copy (``generator_ema``, the official choice, or ``generator``). The keys must fit strictly (out_size,
    channel multiplier, style width); returns notes on what was done.
    """
    from pathlib import Path

    from .common import canonicalize, load_strict, read_checkpoint

    name = str(source) if isinstance(source, (str, Path)) else "state_dict"
    raw = read_checkpoint(source) if isinstance(source, (str, Path)) else source
    state, notes = canonicalize(raw, source=name)
    head = prefix.rstrip(".") + "."
    sub = {k[len(head):]: v for k, v in state.items() if k.startswith(head)}
    if not sub:
        tops = sorted({k.split(".", 1)[0] for k in state})
        raise CheckpointError(f"{name} has no '{head}*' entries (it has: {', '.join(tops[:8])})")
    load_strict(net.generator, sub, source=name, arch="StyleGAN2 latent bank")
    notes.append(f"loaded {len(sub)} '{head}*' entries into the latent bank")
    return notes
