"""Official LIIF checkpoints (yinboc/liif) -> srkit's :class:`srkit.archs.liif.LIIF`.

The official trainer saves ``{'model': {'name': 'liif', 'args': {...}, 'sd': state_dict}, 'optimizer': ...,
'epoch': N}``, where ``args`` holds ``encoder_spec`` (``{'name': 'edsr-baseline' | 'edsr' | 'rdn', 'args':
{...}}``), ``imnet_spec`` (``{'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [...]}}``) and the
ablation flags ``local_ensemble``, ``feat_unfold``, ``cell_decode`` (default True). srkit's LIIF uses the
same key names (``encoder.*``, ``imnet.layers.{0,2,..}.*``), so the weights pass through unchanged; the
work is turning the spec into srkit constructor arguments and checking it against the tensor shapes.

Two entry points:

* :func:`convert_liif` takes the whole loaded checkpoint (spec included) and is exact;
* :func:`convert_liif_state` is the ``srkit convert --arch liif`` table entry, which sees only the
  unwrapped state_dict: it reads everything from the shapes except ``local_ensemble`` (True, as every
  released model; ``--set local_ensemble=False`` for the ``-e`` ablation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import CheckpointError
from .common import Conversion, StateDict, require

# official encoder name -> srkit registry name
ENCODER_NAMES = {"edsr-baseline": "edsr_baseline", "edsr": "edsr", "rdn": "rdn"}


def _split(state: Mapping[str, Any]) -> tuple[StateDict, StateDict]:
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    imnet = {k: v for k, v in state.items() if k.startswith("imnet.")}
    other = [k for k in state if k not in imnet and not k.startswith("encoder.")]
    if other:
        raise CheckpointError(f"not a LIIF state_dict: unexpected keys {', '.join(other[:5])}")
    if not enc:
        raise CheckpointError("not a LIIF state_dict: no 'encoder.*' keys")
    return enc, imnet


def _guess_encoder(enc: Mapping[str, Any]) -> str:
    if "SFENet1.weight" in enc:
        return "rdn"
    if "head.0.weight" in enc:
        return "edsr_baseline"
    raise CheckpointError(f"unknown LIIF encoder: its keys start with {', '.join(list(enc)[:4])}")


def _encoder_args(name: str, enc: StateDict, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """srkit constructor arguments of the encoder, read from its shapes (and ``res_scale`` from ``given``)."""
    from .backbones import convert_edsr, convert_edsr_baseline, convert_rdn

    overrides = {}
    if name in ("edsr", "edsr_baseline") and "res_scale" in given:
        overrides["res_scale"] = float(given["res_scale"])
    converter = {"edsr_baseline": convert_edsr_baseline, "edsr": convert_edsr, "rdn": convert_rdn}[name]
    conv = converter(dict(enc), None, overrides)
    if not conv.arch_kwargs.get("no_upsampling"):
        raise CheckpointError(f"the LIIF encoder ({name}) has an upsampler; LIIF needs a feature encoder")
    args = {k: v for k, v in conv.arch_kwargs.items() if k not in ("no_upsampling", "scale")}
    return args, conv.notes


def _mlp_shape(imnet: Mapping[str, Any]) -> tuple[int, list[int], int]:
    """(in_dim, hidden widths, out_dim) of ``imnet.layers.{0,2,..}``."""
    weights = []
    i = 0
    while f"imnet.layers.{i}.weight" in imnet:
        weights.append(imnet[f"imnet.layers.{i}.weight"])
        i += 2
    if len(weights) < 2 or len(imnet) != 2 * len(weights):
        raise CheckpointError(f"LIIF imnet must be Linear layers at imnet.layers.0, 2, 4, ...; found {sorted(imnet)}")
    for a, b in zip(weights, weights[1:]):
        if b.shape[1] != a.shape[0]:
            raise CheckpointError("LIIF imnet layers do not chain: widths " + ", ".join(str(tuple(w.shape)) for w in weights))
    return weights[0].shape[1], [w.shape[0] for w in weights[:-1]], weights[-1].shape[0]


def _flags_from_in_dim(in_dim: int, feat_dim: int) -> tuple[bool, bool]:
    """(feat_unfold, cell_decode) from the first layer's input width = feat*(9|1) + 2 + (2|0)."""
    for unfold in (True, False):
        for cell in (True, False):
            if in_dim == feat_dim * (9 if unfold else 1) + 2 + (2 if cell else 0):
                return unfold, cell
    raise CheckpointError(
        f"LIIF imnet input width {in_dim} does not fit {feat_dim} encoder features "
        f"(expected {9 * feat_dim + 4} with unfolding and cell decoding)"
    )


def _build(
    enc_name: str,
    state: Mapping[str, Any],
    enc_given: Mapping[str, Any],
    flags: Mapping[str, Any],
    hidden_given: list[int] | None,
) -> tuple[dict[str, Any], StateDict, list[str]]:
    enc, imnet = _split(state)
    enc_args, notes = _encoder_args(enc_name, enc, enc_given)
    feat_dim = enc_args.get("n_feats", enc_args.get("G0"))
    in_dim, hidden, out_dim = _mlp_shape(imnet)
    if out_dim != 3:
        raise CheckpointError(f"LIIF imnet outputs {out_dim} channels; srkit's LIIF decodes RGB (3)")
    if hidden_given is not None and list(hidden_given) != hidden:
        raise CheckpointError(f"LIIF checkpoint says hidden_list {list(hidden_given)} but its weights have {hidden}")
    unfold, cell = _flags_from_in_dim(in_dim, feat_dim)
    for key, found in (("feat_unfold", unfold), ("cell_decode", cell)):
        if key in flags and bool(flags[key]) != found:
            raise CheckpointError(f"LIIF checkpoint says {key}={flags[key]} but its imnet input width is {in_dim}")
    kwargs = {
        "encoder": enc_name,
        "encoder_args": enc_args,
        "hidden": hidden,
        "local_ensemble": bool(flags.get("local_ensemble", True)),
        "feat_unfold": unfold,
        "cell_decode": cell,
    }
    return kwargs, dict(state), notes


def convert_liif(checkpoint: Mapping[str, Any]) -> tuple[dict[str, Any], StateDict]:
    """Official LIIF checkpoint (as loaded by ``torch.load(path, weights_only=True)``) -> (arch_kwargs,
    state_dict) for ``srkit.archs.liif.LIIF(**arch_kwargs).load_state_dict(state_dict)``.

    Accepts the full training checkpoint or its ``['model']`` entry. Raises :class:`CheckpointError` for
    another model, an unsupported encoder, or a spec that contradicts the weights.
    """
    model = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(model, Mapping) or "sd" not in model or "args" not in model:
        raise CheckpointError("not an official LIIF checkpoint: expected {'model': {'name', 'args', 'sd'}}")
    if model.get("name") != "liif":
        raise CheckpointError(f"the checkpoint holds model {model.get('name')!r}, not 'liif'")
    args = model["args"]
    enc_spec = args.get("encoder_spec") or {}
    official = enc_spec.get("name")
    if official not in ENCODER_NAMES:
        raise CheckpointError(f"LIIF encoder {official!r} is not supported; srkit converts {', '.join(ENCODER_NAMES)}")
    imnet_spec = args.get("imnet_spec")
    if imnet_spec is None:
        raise CheckpointError("LIIF checkpoints without an imnet (imnet_spec None) are not supported")
    if imnet_spec.get("name") != "mlp":
        raise CheckpointError(f"LIIF imnet {imnet_spec.get('name')!r} is not supported (only 'mlp')")
    flags = {k: args[k] for k in ("local_ensemble", "feat_unfold", "cell_decode") if k in args}
    kwargs, state, _ = _build(
        ENCODER_NAMES[official], model["sd"], enc_spec.get("args") or {}, flags, imnet_spec.get("args", {}).get("hidden_list")
    )
    return kwargs, state


def convert_liif_state(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """``srkit convert --arch liif`` table entry: an unwrapped LIIF state_dict -> :class:`Conversion`.

    The encoder type, its size, the MLP widths, ``feat_unfold`` and ``cell_decode`` come from the shapes;
    ``local_ensemble`` defaults to True (``--set local_ensemble=False`` for models trained without it).
    ``scale`` is ignored: LIIF upscales by any factor.
    """
    require(state, "imnet.layers.0.weight", "liif")
    enc, _ = _split(state)
    enc_name = overrides.get("encoder") or _guess_encoder(enc)
    enc_given = dict(overrides.get("encoder_args") or {})
    kwargs, state, notes = _build(enc_name, state, enc_given, overrides, overrides.get("hidden"))
    if "local_ensemble" not in overrides:
        notes.append("local_ensemble=True is not stored in state_dicts (override with --set local_ensemble=False)")
    if scale is not None:
        notes.append(f"--scale {scale} ignored: LIIF upscales by any factor")
    return Conversion("liif", kwargs, state, notes)
