"""Self-describing model files: safetensors weights plus the facts needed to rebuild the network.

An srkit model file is an ordinary ``.safetensors`` file. Its header metadata (a ``str -> str`` map, part
of the safetensors format) holds ``"format": "pt"`` and one key ``"srkit"`` whose value is a JSON document:

=================  ====================================================================================
``srkit_format``   integer version of this layout (:data:`FORMAT_VERSION`)
``arch``           architecture name in :mod:`srkit.archs`
``arch_kwargs``    keyword arguments for ``srkit.archs.build(arch, **arch_kwargs)``
``descriptor``     the :class:`~srkit.descriptor.ModelDescriptor` fields at save time (informative)
``scales``         the integer scales the network produces (empty for continuous-scale networks)
``input_range``    ``[0, 1]``: srkit networks take and return float RGB in this range
``color_order``    ``"RGB"``
``recipe``         training configuration, or ``null``
``data``           training data description, or ``null``
``metrics``        measured results, e.g. ``{"Set5": {"psnr_y": 32.1}}``, or ``null``
``source``         provenance of converted weights (original file name and SHA-256), or ``null``
``srkit_version``  version of srkit that wrote the file
``created``        UTC time of writing, ISO 8601
=================  ====================================================================================

Any other JSON-serialisable key given in ``metadata`` is kept as is. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SrkitError

if TYPE_CHECKING:  # keep ``import srkit.model_file`` free of torch
    import torch
    from torch import nn

    from .descriptor import ModelDescriptor

FORMAT_VERSION = 1
METADATA_KEY = "srkit"
# Keys that save_model writes itself; callers cannot override them through ``metadata``.
RESERVED_KEYS = frozenset(
    {"srkit_format", "arch", "arch_kwargs", "descriptor", "scales", "input_range", "color_order",
     "srkit_version", "created"}
)
FOREIGN_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


@dataclass
class LoadedModel:
    """A network rebuilt from a model file, ready for inference."""

    net: nn.Module
    """The network in eval mode on the requested device; float32 RGB [0, 1] in and out, NCHW."""
    arch: str
    arch_kwargs: dict[str, Any]
    descriptor: ModelDescriptor
    metadata: dict[str, Any] = field(default_factory=dict)
    """The whole JSON document of the file (see the module docstring); empty-ish for converted .pth."""
    path: Path | None = None


def _descriptor_dict(descriptor: ModelDescriptor) -> dict[str, Any]:
    d = dataclasses.asdict(descriptor)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def descriptor_from_dict(d: dict[str, Any]) -> ModelDescriptor:
    """Rebuild a descriptor from its stored form, ignoring fields this srkit version does not know."""
    from .descriptor import ModelDescriptor

    known = {f.name for f in dataclasses.fields(ModelDescriptor)}
    kwargs = {k: v for k, v in d.items() if k in known}
    for k in ("scales", "scale_range"):
        if isinstance(kwargs.get(k), list):
            kwargs[k] = tuple(kwargs[k])
    return ModelDescriptor(**kwargs)


def _tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that own their storage: safetensors refuses shared or partial storage
    (tied weights, views), so those are cloned; every key stays so that strict loading works."""
    import torch

    by_storage: dict[int, int] = {}
    for t in state.values():
        if t.device.type != "meta" and t.numel() > 0:
            ptr = t.untyped_storage().data_ptr()
            by_storage[ptr] = by_storage.get(ptr, 0) + 1
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        t = t.detach()
        if t.device.type == "meta":
            raise SrkitError(f"cannot save {key!r}: it is a meta tensor without data")
        t = t.cpu()
        shared = t.numel() > 0 and by_storage.get(t.untyped_storage().data_ptr(), 0) > 1
        partial = t.numel() * t.element_size() != t.untyped_storage().nbytes()
        if shared or partial or not t.is_contiguous():
            t = t.contiguous().clone()
        out[key] = t
    return out


def save_model(
    path: str | os.PathLike[str],
    net: nn.Module,
    arch: str,
    arch_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    descriptor: ModelDescriptor | None = None,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Write ``net``'s weights and metadata to one safetensors file and return its path.

    ``arch``/``arch_kwargs`` must rebuild ``net`` through ``srkit.archs.build``; ``descriptor`` defaults
    to ``srkit.archs.describe(arch, **arch_kwargs)``. ``metadata`` adds ``recipe``, ``data``, ``metrics``,
    ``source`` or other JSON-serialisable keys. An existing file is replaced only with ``overwrite=True``;
    the file appears atomically (written to a temporary file in the same directory, then renamed).
    With ``verify`` (default) the weights are loaded into a fresh ``build(arch, **arch_kwargs)`` first, so
    that a file which could not be loaded back is never written.
    """
    from safetensors.torch import save_file

    from . import __version__

    path = Path(path)
    if path.exists() and not overwrite:
        raise SrkitError(f"{path} already exists (pass overwrite=True, or --force on the command line)")
    if path.is_dir():
        raise SrkitError(f"{path} is a directory, not a model file path")
    arch_kwargs = dict(arch_kwargs or {})
    if descriptor is None:
        from . import archs

        descriptor = archs.describe(arch, **arch_kwargs)

    doc: dict[str, Any] = {"recipe": None, "data": None, "metrics": None, "source": None}
    for key, value in (metadata or {}).items():
        if key in RESERVED_KEYS:
            raise SrkitError(f"metadata key {key!r} is written by srkit itself and cannot be set")
        doc[key] = value
    doc.update(
        srkit_format=FORMAT_VERSION,
        arch=arch,
        arch_kwargs=arch_kwargs,
        descriptor=_descriptor_dict(descriptor),
        scales=list(descriptor.scales),
        input_range=[0.0, 1.0],
        color_order="RGB",
        srkit_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    )
    try:
        text = json.dumps(doc, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SrkitError(f"model metadata for {path} is not JSON-serialisable: {e}") from None

    tensors = _tensors_for_saving(net.state_dict())
    if verify:
        _verify_rebuild(arch, arch_kwargs, tensors, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", METADATA_KEY: text})
        from .data.io import _default_file_mode

        os.chmod(tmp, _default_file_mode())  # mkstemp's 0600 would make shared model files unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _verify_rebuild(arch: str, arch_kwargs: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path) -> None:
    # A CPU build (the meta device would avoid the allocation, but its first use imports torch's
    # reference decompositions, which costs seconds) compared by names and shapes only.
    from .convert.common import build_net, load_strict

    skeleton = build_net(arch, arch_kwargs)
    load_strict(skeleton, tensors, source=f"the weights for {path}", arch=arch)


def _header_metadata(path: Path) -> dict[str, str]:
    """The raw header metadata of a safetensors file, read without loading any tensor."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n <= 0 or 8 + n > size or n > 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except OSError as e:
        raise SrkitError(f"cannot read model file {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError):
        raise SrkitError(f"{path} is not a safetensors model file") from None
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The srkit JSON document of a model file, without building the network or reading weights."""
    path = Path(path)
    if not path.is_file():
        raise SrkitError(f"model file {path} {'is not a file' if path.exists() else 'does not exist'}")
    raw = _header_metadata(path).get(METADATA_KEY)
    if raw is None:
        raise SrkitError(
            f"{path} is a safetensors file without srkit metadata (not an srkit model file); "
            "make one with `srkit convert FILE --arch NAME -o MODEL`"
        )
    try:
        doc = json.loads(raw)
    except ValueError:
        raise SrkitError(f"{path}: the srkit metadata is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("arch"), str):
        raise SrkitError(f"{path}: the srkit metadata has no architecture name ('arch')")
    version = doc.get("srkit_format")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SrkitError(
            f"{path} uses srkit model format {version!r}; this srkit reads up to {FORMAT_VERSION} (upgrade srkit)"
        )
    if not isinstance(doc.get("arch_kwargs", {}), dict):
        raise SrkitError(f"{path}: 'arch_kwargs' in the srkit metadata is not an object")
    return doc


def tensor_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file (header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def count_params(path: str | os.PathLike[str]) -> int:
    """Number of values stored in a model file, read from the header (buffers such as BatchNorm
    statistics included, so it can exceed the trainable-parameter count by a little)."""
    import math

    return sum(math.prod(s) for s in tensor_shapes(path).values())


def resolve_model_path(path_or_name: str | os.PathLike[str]) -> Path:
    """The path as given when it exists (so a file shadows a zoo name), else the zoo file of the name."""
    p = Path(path_or_name)
    if p.exists():
        return p
    text = str(path_or_name)
    looks_like_path = (
        os.sep in text or bool(os.altsep and os.altsep in text) or p.suffix in (".safetensors", *FOREIGN_SUFFIXES)
    )
    from . import zoo

    try:
        return zoo.resolve(text)
    except SrkitError:
        if looks_like_path:
            raise SrkitError(f"model file {p} does not exist") from None
        raise


def load_model(
    path_or_name: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    arch: str | None = None,
    scale: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> LoadedModel:
    """Rebuild a network from an srkit model file or a zoo name.

    A foreign ``.pth``/``.pt``/``.ckpt`` checkpoint is accepted only through the converter, which reads
    it with ``torch.load(weights_only=True)``; it needs ``arch`` (and takes ``scale``/``overrides``
    like ``srkit convert``). For an srkit model file ``arch``, if given, must match the recorded one.
    Weights are loaded with strict key and shape matching.
    """
    import torch

    path = resolve_model_path(path_or_name)
    if path.suffix.lower() in FOREIGN_SUFFIXES:
        if arch is None:
            raise SrkitError(
                f"{path} is a foreign checkpoint; name its architecture (arch=...) or convert it first "
                "with `srkit convert FILE --arch NAME -o MODEL`"
            )
        from .convert import convert_checkpoint

        conv = convert_checkpoint(path, arch, scale=scale, overrides=overrides)
        net = conv.net.to(device).eval()
        return LoadedModel(net, conv.arch, conv.arch_kwargs, conv.descriptor, conv.metadata(), path)

    doc = read_metadata(path)
    from . import archs
    from .convert.common import build_net, load_strict

    arch_name = doc["arch"]
    if arch is not None and arch != arch_name:
        raise SrkitError(f"{path} holds a {arch_name} model, not {arch}")
    kwargs = dict(doc.get("arch_kwargs") or {})
    net = build_net(arch_name, kwargs)
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt data
        raise SrkitError(f"cannot read the weights in {path}: {e}") from None
    load_strict(net, state, source=str(path), arch=arch_name)
    try:
        descriptor = archs.describe(arch_name, **kwargs)
    except (SrkitError, TypeError, ValueError):  # describe() changed since: use what the file recorded
        if "descriptor" not in doc:
            raise
        descriptor = descriptor_from_dict(doc["descriptor"])
    net = net.to(torch.device(device)).eval()
    return LoadedModel(net, arch_name, kwargs, descriptor, doc, path)


__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "count_params",
    "descriptor_from_dict",
    "load_model",
    "read_metadata",
    "resolve_model_path",
    "save_model",
    "tensor_shapes",
]
