"""Official SMSR checkpoints (LongguangWang/SMSR) -> srkit's :class:`srkit.archs.smsr.SMSR`.

The official trainer saves the bare ``state_dict`` in PyTorch's legacy (pre-1.6, non-zip) format, with the
tensors tagged for CUDA; :func:`srkit.convert.common.read_checkpoint` reads it on the CPU without unpickling
anything but tensors. srkit uses the official key names, so the weights pass through unchanged; this module
checks the layout and reads the constructor arguments from the shapes (scale from ``tail.0``, features from
``head.0``, modules from ``body.{k}``, range from ``sub_mean.bias``).

The official code must call ``_prepare()`` after loading, which splits every SMB's kernels into
dense-to-dense, dense-to-sparse and sparse-to-all parts by the rounded channel masks, and must call it again
after any weight change. In srkit the split is derived from the weights (:meth:`SMB.prepare`) on first use
and re-derived automatically when a weight or mask logit changes, so nothing of it is stored; the
conversion records the resulting per-layer sparse-channel counts in its notes.
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from .backbones import _img_range_from_mean_shift, count_indexed
from .common import Conversion, StateDict, require, resolve_kwargs

# attributes that a modified official script might have left in a state_dict after _prepare(); never needed
_RUNTIME_KEYS = ("ch_mask_round", "spa_mask_buffer")


def convert_smsr(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """``srkit convert --arch smsr``: official SMSR state_dict -> srkit SMSR (identity key mapping)."""
    notes: list[str] = []
    head = require(state, "head.0.weight", "smsr")
    n_feats = int(head.shape[0])
    n_blocks = count_indexed(state, "body.{}.body.ch_mask")
    if n_blocks == 0:
        raise CheckpointError("this does not look like an SMSR checkpoint: no 'body.0.body.ch_mask'")
    tail = require(state, "tail.0.weight", "smsr")
    out = int(tail.shape[0])
    s = round((out / 3) ** 0.5)
    if 3 * s * s != out:
        raise CheckpointError(f"SMSR tail.0 has {out} output channels, not 3 * scale^2")
    dropped = [k for k in state if k.rsplit(".", 1)[-1] in _RUNTIME_KEYS]
    for k in dropped:
        del state[k]
    if dropped:
        notes.append(f"dropped runtime entries {', '.join(dropped)}")
    inferred: dict[str, Any] = {"scale": s, "n_feats": n_feats, "n_blocks": n_blocks}
    img_range = _img_range_from_mean_shift(state, notes)
    if img_range is not None:
        inferred["img_range"] = img_range
    counts = []
    for k in range(n_blocks):
        logits = state[f"body.{k}.body.ch_mask"][0]  # (C, L, 2)
        counts.append([int(v) for v in (logits[..., 1] > logits[..., 0]).sum(0)])
    notes.append("sparse channels per layer (kernel split, derived at first use): "
                 + "; ".join(f"module {k}: {c}" for k, c in enumerate(counts)))
    return Conversion("smsr", resolve_kwargs("smsr", inferred, {}, scale, overrides), state, notes)
