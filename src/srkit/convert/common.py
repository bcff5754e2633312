"""The machinery every checkpoint converter shares: safe reading, unwrapping, strict loading, the table.

A converter is a function ``(state_dict, scale, overrides) -> Conversion`` registered in
:data:`CONVERTERS` as ``"srkit.convert.<module>:<function>"``; the module is imported only when its
architecture is converted, so each method (liif, smsr, classsr, dasr, masa, glean, crossmpi) adds one
module and one line to the table. The converter maps the official key layout to srkit's (often the
identity), infers constructor arguments from tensor shapes and returns them; this module builds the
network, loads it strictly and writes the model file.

Reading never unpickles arbitrary objects: ``.pth``/``.pt``/``.ckpt`` go through
``torch.load(weights_only=True)``, which accepts only tensors, containers and plain values.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ConfigError, SrkitError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..descriptor import ModelDescriptor

StateDict = dict[str, "torch.Tensor"]

# arch name -> "module:function". Backbones first; methods add their rows as their converters land.
CONVERTERS: dict[str, str] = {
    "edsr": "srkit.convert.backbones:convert_edsr",
    "edsr_baseline": "srkit.convert.backbones:convert_edsr_baseline",
    "rcan": "srkit.convert.backbones:convert_rcan",
    "rdn": "srkit.convert.backbones:convert_rdn",
    "carn_m": "srkit.convert.backbones:convert_carn_m",
    "msrresnet": "srkit.convert.backbones:convert_msrresnet",
    "fsrcnn": "srkit.convert.backbones:convert_fsrcnn",
    "liif": "srkit.convert.liif:convert_liif_state",
    "smsr": "srkit.convert.smsr:convert_smsr",
    "classsr": "srkit.convert.classsr:convert_classsr",
    "dasr": "srkit.convert.dasr:convert_dasr",
    "masa": "srkit.convert.masa:convert_masa",
    "glean": "srkit.convert.glean:convert_glean",
    "crossmpi": "srkit.convert.crossmpi:convert_crossmpi",
}

# Wrapper keys of common training frameworks, in order of preference: EMA weights before raw ones
# (BasicSR saves both as params_ema/params), then the generic names.
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net", "netG",
                "generator", "sd")
# Prefixes added by DataParallel/DistributedDataParallel, torch.compile and some GAN trainers.
STRIP_PREFIXES = ("module.", "_orig_mod.", "netG.")


@dataclass
class Conversion:
    """What a converter returns: the srkit architecture, its constructor arguments and the weights
    under srkit's key names."""

    arch: str
    arch_kwargs: dict[str, Any]
    state_dict: StateDict
    notes: list[str] = field(default_factory=list)
    """Human-readable remarks (e.g. which wrapper was unwrapped, which arguments were inferred)."""


@dataclass
class Converted:
    """A converted network, loaded and in eval mode, with its provenance."""

    net: nn.Module
    arch: str
    arch_kwargs: dict[str, Any]
    descriptor: ModelDescriptor
    source: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """Metadata for :func:`srkit.model_file.save_model` recording where the weights came from."""
        return {"source": dict(self.source)}


Converter = Callable[[StateDict, "int | None", dict[str, Any]], Conversion]


def register_converter(arch: str, target: str) -> None:
    """Add ``arch -> "package.module:function"`` to the table (for plugins and tests)."""
    if ":" not in target:
        raise ValueError(f"converter target must look like 'package.module:function', got {target!r}")
    CONVERTERS[arch] = target


def get_converter(arch: str) -> Converter:
    """Import and return the converter of ``arch``; :class:`ConfigError` listing the known ones."""
    try:
        target = CONVERTERS[arch]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise ConfigError(f"no checkpoint converter for architecture {arch!r}; known: {known}") from None
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Load a foreign checkpoint without executing code from it.

    ``.safetensors`` files are read with safetensors, ``.npz`` (TensorFlow variables dumped with numpy, keyed by
    variable name) with numpy; anything else with
    ``torch.load(map_location="cpu", weights_only=True)``, which refuses pickled objects other than
    tensors, dicts, lists and plain values. Returns the raw object (unwrap it with :func:`canonicalize`).
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise SrkitError(f"checkpoint {path} does not exist")
    if path.suffix.lower() == ".npz":
        from .crossmpi import read_npz  # TensorFlow variables dumped with numpy (Cross-MPI)

        return read_npz(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors' own error type for bad headers
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, which srkit refuses to unpickle "
            f"(torch.load weights_only=True said: {first}). Re-save the state_dict alone, e.g. "
            "torch.save(model.state_dict(), 'weights.pth'), in a session where you trust the file."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {e}") from None


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def canonicalize(obj: Any, source: str = "checkpoint") -> tuple[StateDict, list[str]]:
    """Unwrap a loaded checkpoint to a flat ``name -> tensor`` dict; return it and notes on what was done.

    Handles: a bare state_dict; wrappers ``params_ema``/``params`` (BasicSR; EMA preferred),
    ``state_dict`` (MMagic, Lightning), ``model``/``net``/...; LIIF's ``{'model': {'name', 'args', 'sd'}}``;
    a single-key dict around a state_dict; and ``module.``/``_orig_mod.``/``netG.`` key prefixes.
    Non-tensor entries next to the tensors (e.g. an iteration counter inside the state_dict) are an error.
    """
    import torch

    notes: list[str] = []
    for _ in range(4):  # wrappers nest at most a few levels deep
        if _is_state_dict(obj) or not isinstance(obj, Mapping):
            break
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                notes.append(f"unwrapped {key!r}")
                obj = obj[key]
                break
        else:
            if len(obj) == 1 and isinstance(next(iter(obj.values())), Mapping):
                (key,) = obj.keys()
                notes.append(f"unwrapped {key!r}")
                obj = obj[key]
            else:
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source} does not contain a state_dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(map(repr, bad[:6])) + (" ..." if len(bad) > 6 else "")
        raise CheckpointError(
            f"{source} does not hold a plain state_dict: entries {shown} are not tensors "
            f"(top-level keys: {', '.join(map(str, list(obj)[:8]))})"
        )
    state: StateDict = {str(k): v for k, v in obj.items()}
    for prefix in STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            notes.append(f"stripped prefix {prefix!r}")
    return state, notes


def parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    """``["n_feats=64", "res_scale=0.1", "name=abc"]`` -> ``{"n_feats": 64, "res_scale": 0.1, "name": "abc"}``.

    Values are Python literals (numbers, True/False/None, quoted strings, lists); anything else stays a
    string.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--set expects key=value with a Python identifier as key, got {item!r}")
        text = text.strip()
        lowered = {"true": True, "false": False, "none": None, "null": None}
        if text.lower() in lowered:
            out[key] = lowered[text.lower()]
            continue
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def build_net(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """``srkit.archs.build(arch, **kwargs)`` with constructor errors turned into :class:`ConfigError`."""
    from .. import archs

    try:
        return archs.build(arch, **kwargs)
    except TypeError as e:
        raise ConfigError(f"cannot build {arch} with {kwargs}: {e}") from None


def _shape(t: Any) -> str:
    return "x".join(map(str, tuple(t.shape))) or "scalar"


def load_strict(net: nn.Module, state: Mapping[str, torch.Tensor], source: str, arch: str | None = None) -> None:
    """Load ``state`` into ``net`` requiring exactly the same keys and shapes.

    Raises :class:`CheckpointError` naming missing keys, unexpected keys and shape mismatches (up to a few
    of each, with counts), so that a checkpoint of the wrong architecture or size is recognisable.
    """
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (checkpoint {_shape(state[k])}, network {_shape(own[k])})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
                parts.append(f"{label}: {shown}")
        what = f"the {arch} network" if arch else "the network"
        raise CheckpointError(f"{source} does not fit {what}: " + "; ".join(parts))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:  # dtype problems and the like that the checks above do not see
        raise CheckpointError(f"{source} does not fit the {arch or 'given'} network: {e}") from None


def convert_state_dict(
    state: StateDict, arch: str, scale: int | None = None, overrides: dict[str, Any] | None = None
) -> Conversion:
    """Run the converter of ``arch`` on an unwrapped state_dict (no network built yet)."""
    converter = get_converter(arch)
    return converter(dict(state), scale, dict(overrides or {}))


def convert_checkpoint(
    path: str | os.PathLike[str],
    arch: str,
    *,
    scale: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> Converted:
    """Read an official checkpoint, convert it for ``arch``, build the srkit network and load it strictly.

    ``scale`` and ``overrides`` (constructor arguments, like ``--set``) take precedence over what the
    converter infers from tensor shapes.
    """
    from .. import archs

    path = Path(path)
    raw = read_checkpoint(path)
    state, notes = canonicalize(raw, source=str(path))
    conv = convert_state_dict(state, arch, scale, overrides)
    net = build_net(conv.arch, conv.arch_kwargs)
    load_strict(net, conv.state_dict, source=str(path), arch=conv.arch)
    net.eval()
    source = {"file": path.name, "sha256": sha256_file(path), "converted_by": "srkit convert", "notes": notes + conv.notes}
    return Converted(net, conv.arch, conv.arch_kwargs, archs.describe(conv.arch, **conv.arch_kwargs), source,
                     notes + conv.notes)


def resolve_kwargs(
    arch: str,
    inferred: dict[str, Any],
    defaults: dict[str, Any],
    scale: int | None,
    overrides: dict[str, Any],
    scale_key: str = "scale",
) -> dict[str, Any]:
    """Merge constructor arguments: arch defaults < inferred from shapes < ``--scale`` < ``--set``.

    A ``--scale`` that contradicts the scale read from the upsampler's shapes is an error (the weights
    cannot upscale by another factor)."""
    kwargs = {**defaults, **inferred}
    if scale is not None:
        if scale_key in inferred and inferred[scale_key] is not None and inferred[scale_key] != scale:
            raise CheckpointError(
                f"the {arch} checkpoint's upsampler is for x{inferred[scale_key]}, not x{scale}"
            )
        kwargs[scale_key] = scale
    kwargs.update(overrides)
    return kwargs


def require(state: Mapping[str, Any], key: str, arch: str) -> Any:
    """``state[key]``, or a :class:`CheckpointError` saying the checkpoint is not a ``arch`` one."""
    try:
        return state[key]
    except KeyError:
        sample = ", ".join(list(state)[:6])
        raise CheckpointError(
            f"this does not look like a {arch} checkpoint: key {key!r} is missing (it starts with: {sample}, ...)"
        ) from None
