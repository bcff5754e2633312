"""Official ClassSR checkpoints (``ClassSR_{FSRCNN,CARN,SRResNet,RCAN}.pth``, keys ``classifier.*``,
``net1.*``, ``net2.*``, ``net3.*``) and the per-branch checkpoints (``{FSRCNN,CARN,SRResNet,RCAN}_branch{1,2,3}.pth``).

srkit's :class:`~srkit.archs.classsr.ClassSR` keeps the official key names, so the weights pass through
unchanged; the backbone is recognised from the keys of ``net3`` and the three widths (and any non-official
backbone argument) are read from the shapes with the backbone converters of :mod:`srkit.convert.backbones`.

Branch checkpoints are plain backbone checkpoints: convert one alone with ``srkit convert --arch fsrcnn``
(etc.), or put three into a ClassSR network with :func:`load_branch_states` (ClassSR's stage 2 starts so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError
from .common import Conversion, StateDict, canonicalize, get_converter, load_strict, read_checkpoint

if TYPE_CHECKING:
    import torch

    from ..archs.classsr import ClassSR

# A key that only this backbone's state_dict has (the first match wins; RCAN before EDSR-like layouts).
_BACKBONE_MARKERS = (
    ("fsrcnn", "head_conv.0.weight"),
    ("carn_m", "b1.b1.body.0.weight"),
    ("msrresnet", "conv_first.weight"),
    ("rcan", "body.0.body.0.body.3.conv_du.0.weight"),
)


def detect_backbone(state: Mapping[str, Any]) -> str:
    """srkit backbone name of a bare branch state_dict (keys without ``netK.``)."""
    for name, key in _BACKBONE_MARKERS:
        if key in state:
            return name
    sample = ", ".join(list(state)[:6])
    raise CheckpointError(f"cannot tell the ClassSR backbone from the keys ({sample}, ...); "
                          "known: fsrcnn, carn_m, msrresnet, rcan")


def split_branches(state: Mapping[str, Any]) -> tuple[StateDict, list[StateDict]]:
    """(classifier keys without prefix, [net1, net2, net3] keys without prefix) of a ClassSR state_dict."""
    parts: dict[str, StateDict] = {p: {} for p in ("classifier", "net1", "net2", "net3")}
    other = []
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head in parts and rest:
            parts[head][rest] = v
        else:
            other.append(k)
    if other:
        shown = ", ".join(other[:5])
        raise CheckpointError(f"not a ClassSR checkpoint: keys outside classifier/net1/net2/net3 ({shown})")
    for p, sub in parts.items():
        if not sub:
            raise CheckpointError(f"not a ClassSR checkpoint: no '{p}.*' keys")
    return parts["classifier"], [parts["net1"], parts["net2"], parts["net3"]]


def convert_classsr(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """ClassSR checkpoint -> ``classsr`` with ``backbone``, ``widths``, ``scale`` and, only where the shapes
    differ from the official configuration, ``backbone_args``. ``overrides`` (``--set``) win."""
    from .. import archs
    from ..archs.classsr import OFFICIAL_BACKBONE_ARGS, WIDTH_ARG

    _, branches = split_branches(state)
    backbone = overrides.get("backbone") or detect_backbone(branches[2])
    width_arg = WIDTH_ARG[backbone]
    convert_branch = get_converter(backbone)
    kwargs_list = [convert_branch(dict(b), scale, {}).arch_kwargs for b in branches]
    rest = [{k: v for k, v in kw.items() if k not in (width_arg, "scale")} for kw in kwargs_list]
    for k in (0, 1):
        if rest[k] != rest[2]:
            raise CheckpointError(f"ClassSR branches {k + 1} and 3 differ beyond their width: {rest[k]} vs {rest[2]}")
    scales = {kw["scale"] for kw in kwargs_list}
    if len(scales) != 1:
        raise CheckpointError(f"ClassSR branches upscale by different factors: {sorted(scales)}")
    # Keep only what differs from the official configuration (so official files stay recognisable).
    reference = {**archs._merged_kwargs(backbone, {}), **OFFICIAL_BACKBONE_ARGS.get(backbone, {})}
    backbone_args = {k: v for k, v in rest[2].items() if reference.get(k) != v}
    notes = [f"backbone {backbone} (from net3's keys)"]
    if backbone == "fsrcnn" and scale is None:
        notes.append("scale=4 assumed: FSRCNN checkpoints do not record the deconvolution stride (use --scale)")
    kwargs: dict[str, Any] = {
        "backbone": backbone,
        "widths": [int(kw[width_arg]) for kw in kwargs_list],
        "scale": int(scales.pop()),
    }
    if backbone_args:
        kwargs["backbone_args"] = backbone_args
    kwargs.update(overrides)
    return Conversion("classsr", kwargs, dict(state), notes)


def _branch_state(source: str | os.PathLike[str] | Mapping[str, Any], k: int) -> tuple[StateDict, str]:
    """The bare state_dict of branch ``k`` (0-based) from a file or a mapping: an official branch
    checkpoint, an srkit model file of the backbone, or anything holding ``net{k+1}.*`` keys (a ClassSR
    checkpoint or model file, e.g. a stage-1 result)."""
    if isinstance(source, Mapping):
        state, name = dict(source), "given state_dict"
    else:
        name = str(source)
        if not Path(name).is_file():
            raise CheckpointError(f"branch checkpoint {name} does not exist")
        state, _ = canonicalize(read_checkpoint(name), source=name)
    prefix = f"net{k + 1}."
    if any(key.startswith(prefix) for key in state):
        state = {key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)}
    return state, name


def load_branch_states(
    net: ClassSR,
    sources: Sequence[str | os.PathLike[str] | Mapping[str, torch.Tensor] | None],
    classifier: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Load three branch checkpoints (None = leave that branch as it is) and optionally a classifier
    (from a ClassSR checkpoint, keys ``classifier.*``) into ``net``, each strictly."""
    if len(sources) != 3:
        raise CheckpointError(f"ClassSR needs three branch checkpoints (simple, medium, hard), got {len(sources)}")
    for k, src in enumerate(sources):
        if src is None:
            continue
        state, name = _branch_state(src, k)
        load_strict(net.branches[k], state, source=f"{name} (branch {k + 1})", arch=net.backbone)
    if classifier is not None:
        if isinstance(classifier, Mapping):
            state, name = dict(classifier), "given state_dict"
        else:
            name = str(classifier)
            state, _ = canonicalize(read_checkpoint(name), source=name)
        if any(key.startswith("classifier.") for key in state):
            state = {key[len("classifier."):]: v for key, v in state.items() if key.startswith("classifier.")}
        load_strict(net.classifier, state, source=f"{name} (classifier)", arch="ClassSR classifier")


__all__ = ["convert_classsr", "detect_backbone", "load_branch_states", "split_branches"]
