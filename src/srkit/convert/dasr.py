"""Official DASR checkpoints (LongguangWang/DASR ``experiment/*/model/model_600.pt``) -> srkit's
:class:`srkit.archs.dasr.DASR`.

The official trainer saves the ``state_dict`` of its ``BlindSR`` (generator ``G`` plus MoCo wrapper ``E``)
after deleting every entry of the MoCo key encoder (``E.encoder_k.*``) and the queue (``E.queue``,
``E.queue_ptr``): training state, never needed for SR. srkit's network uses the same key names for what
remains (``G.*``, ``E.encoder_q.*``), so the weights pass through unchanged. A full ``BlindSR`` state_dict
(e.g. saved by a modified script) is accepted too: the key encoder and queue are dropped, with a note.

The scale is read from the upsampler: one conv to 9 x 64 channels is x3, one or two convs to 4 x 64
channels are x2 or x4.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CheckpointError
from .common import Conversion, StateDict, require, resolve_kwargs

_TRAINING_ONLY = ("E.encoder_k.", "E.queue")


def _scale(state: StateDict) -> int:
    first = require(state, "G.tail.0.0.weight", "dasr")
    n = int(first.shape[0])
    if n == 9 * 64:
        return 3
    if n == 4 * 64:
        return 4 if "G.tail.0.2.weight" in state else 2
    raise CheckpointError(f"DASR G.tail.0.0 has {n} output channels; expected 256 (x2, x4) or 576 (x3)")


def convert_dasr(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """``srkit convert --arch dasr``: official DASR (``BlindSR``) state_dict -> srkit DASR (identity key
    mapping; training-only MoCo entries dropped)."""
    notes: list[str] = []
    require(state, "G.head.0.weight", "dasr")
    require(state, "E.encoder_q.E.0.weight", "dasr")
    dropped = [k for k in state if k.startswith(_TRAINING_ONLY)]
    for k in dropped:
        del state[k]
    if dropped:
        notes.append(f"dropped {len(dropped)} training-only MoCo entries (key encoder, queue)")
    # Batch-norm step counters do not affect inference; checkpoints from very old PyTorch lack them.
    added = []
    for k in [k for k in state if k.startswith("E.encoder_q.E.") and k.endswith(".running_mean")]:
        counter = k[: -len("running_mean")] + "num_batches_tracked"
        if counter not in state:
            state[counter] = torch.zeros((), dtype=torch.long)
            added.append(counter)
    if added:
        notes.append(f"added {len(added)} missing batch-norm num_batches_tracked counters (unused at inference)")
    inferred = {"scale": _scale(state)}
    notes.append(f"scale x{inferred['scale']} read from the upsampler")
    return Conversion("dasr", resolve_kwargs("dasr", inferred, {}, scale, overrides), state, notes)
