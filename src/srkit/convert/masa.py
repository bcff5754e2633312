"""Official MASA-SR checkpoints (dvlab-research/MASA-SR ``masa_rec.pth``, ``masa.pth``) -> srkit's
:class:`srkit.archs.masa.MASA`.

The official trainer saves ``net.state_dict()`` (a ``module.`` prefix from DataParallel, if any, is stripped
by :func:`srkit.convert.common.canonicalize`). srkit's network uses the same module names, so the weights pass
through unchanged: ``enc.*`` (shared encoder), ``decoder.*`` (U-Net, fusion blocks, ``dram_x2``/``dram_x4``,
``conv_out``) and ``decoder.pAda.*`` (the SAM shared by the three scales). The network is x4 with 64 feature
channels only; both are checked against the tensors.

The weights were trained on BGR images in [0, 1]; srkit's network flips RGB to BGR itself.
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from .common import Conversion, StateDict, require, resolve_kwargs

_SCALE = 4


def convert_masa(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """``srkit convert --arch masa``: official MASA state_dict -> srkit MASA (identity key mapping)."""
    first = require(state, "enc.conv_L1.weight", "masa")
    require(state, "decoder.pAda.conv_gamma.weight", "masa")
    out = require(state, "decoder.conv_out.weight", "masa")
    if tuple(first.shape) != (64, 3, 3, 3) or tuple(out.shape) != (3, 64, 3, 3):
        raise CheckpointError(
            f"the masa checkpoint has enc.conv_L1 {tuple(first.shape)} and decoder.conv_out {tuple(out.shape)}; "
            "srkit's MASA is the official configuration with 64 features on RGB images, "
            "(64, 3, 3, 3) and (3, 64, 3, 3)")
    if scale is not None and scale != _SCALE:
        raise CheckpointError(f"MASA checkpoints upscale by {_SCALE}, not by {scale}")
    kwargs = resolve_kwargs("masa", {}, {}, None, overrides)
    notes = ["official key names kept as they are (x4, 64 features; BGR weights, RGB flip inside the network)"]
    return Conversion("masa", kwargs, dict(state), notes)
