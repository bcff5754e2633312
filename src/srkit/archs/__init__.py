"""Architecture registry: name -> network class, default arguments and descriptor, imported lazily.

    >>> from srkit import archs
    >>> archs.names()
    ['carn_m', 'classsr', 'dasr', 'edsr', 'edsr_baseline', 'fsrcnn', 'glean', 'liif', 'liif_rdn', 'masa', 'msrresnet',
     'rcan', 'rdn', 'smsr']
    >>> net = archs.build("msrresnet", nf=36)          # a torch.nn.Module, RGB [0, 1] in and out
    >>> archs.describe("msrresnet", nf=36).scales
    (4,)

Nothing here imports torch or an architecture module until ``build`` (or ``describe``, which checks the
arguments against the constructor) needs it. Method packages add their networks with :func:`register`.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..descriptor import ModelDescriptor
from ..errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

DescribeFn = Callable[[str, Mapping[str, Any]], ModelDescriptor]
"""``describe_fn(name, kwargs)``: the descriptor of the network built by ``build(name, **kwargs)``;
``kwargs`` holds the registered defaults merged with the caller's overrides and the constructor's
remaining defaults. May also be given as ``"package.module:function"``, imported on first use."""


@dataclass(frozen=True)
class ArchEntry:
    """One registry row."""

    module: str
    """Dotted module path, imported on first use."""
    cls: str
    """Class (or factory function) name inside ``module``."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments applied before the caller's (e.g. ``edsr`` = 32 blocks of 256 features)."""
    describe_fn: DescribeFn | str | None = None
    """Descriptor function, or its ``"module:function"`` path; None gives a plain fixed-scale descriptor."""


_REGISTRY: dict[str, ArchEntry] = {}


def register(
    name: str,
    module: str,
    cls: str,
    defaults: Mapping[str, Any] | None = None,
    describe_fn: DescribeFn | str | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Add an architecture under ``name`` (lower case, underscores), built as ``module.cls(**defaults, **kw)``.

    Registering an existing name raises :class:`ConfigError` unless ``overwrite`` (re-registering the same
    entry is allowed, so a module that registers itself on import may be imported twice).
    """
    entry = ArchEntry(module, cls, dict(defaults or {}), describe_fn)
    old = _REGISTRY.get(name)
    if old is not None and old != entry and not overwrite:
        raise ConfigError(f"architecture {name!r} is already registered (as {old.module}.{old.cls})")
    _REGISTRY[name] = entry


def names() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> ArchEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}; known: {', '.join(names())}") from None


def _constructor(name: str) -> Callable[..., Any]:
    entry = _entry(name)
    return getattr(importlib.import_module(entry.module), entry.cls)


def _merged_kwargs(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    ctor = _constructor(name)
    params = inspect.signature(ctor).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in kwargs:
            if key not in accepted:
                raise ConfigError(f"{name}: unknown argument {key!r}; accepted: {', '.join(accepted)}")
    merged = dict(_entry(name).defaults)
    merged.update(kwargs)
    # Fill in the constructor's own defaults so that describe functions see every value.
    for key, p in params.items():
        if key not in merged and p.default is not inspect.Parameter.empty:
            merged[key] = p.default
    return merged


def build(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate architecture ``name`` with its registered defaults overridden by ``kwargs``.

    Raises :class:`ConfigError` (a :class:`SrkitError`) for an unknown name or argument, or a value the
    network does not support (e.g. an unsupported scale).
    """
    return _constructor(name)(**_merged_kwargs(name, kwargs))


def describe(name: str, **kwargs: Any) -> ModelDescriptor:
    """Descriptor of ``build(name, **kwargs)`` (without building it)."""
    entry = _entry(name)
    merged = _merged_kwargs(name, kwargs)
    fn = entry.describe_fn
    if fn is None:
        return ModelDescriptor(arch=name, scales=(int(merged["scale"]),) if "scale" in merged else ())
    if isinstance(fn, str):
        module, _, attr = fn.partition(":")
        fn = getattr(importlib.import_module(module), attr)
    return fn(name, merged)


# --- descriptors of the built-in backbones -------------------------------------------------------------
# receptive_field: LR pixels of context on each side of an output pixel, counted along the longest conv
# path (k x k conv at LR adds k // 2; a conv at scale r adds (k // 2) / r, rounded up at the end), checked
# against the gradient support of small instances in tests/test_archs.py.


def _rf(lr: float, hr_terms: list[tuple[int, int]]) -> int:
    """``lr`` LR pixels plus, for each (radius, resolution factor) of a conv after upsampling, radius/factor."""
    return math.ceil(lr + sum(r / f for r, f in hr_terms) - 1e-9)


def _upsampler_terms(scale: int) -> list[tuple[int, int]]:
    # Convs of a sub-pixel upsampler: the first runs at LR, further ones after each x2 shuffle.
    if scale == 3:
        return [(1, 1)]
    return [(1, 2**i) for i in range(scale.bit_length() - 1)]


def _fixed(name: str, scale: int, rf: int, encoder: bool = False, **extra: Any) -> ModelDescriptor:
    # Encoder mode yields features, not an image: no scale to offer.
    return ModelDescriptor(arch=name, scales=() if encoder else (int(scale),), receptive_field=rf, **extra)


def _describe_edsr(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    scale = int(kw["scale"])
    lr = 1 + 2 * kw["n_resblocks"] + 1  # head, two convs per block, body-end conv
    if kw["no_upsampling"]:
        return _fixed(name, scale, _rf(lr, []), encoder=True)
    return _fixed(name, scale, _rf(lr, [*_upsampler_terms(scale), (1, scale)]))


def _describe_rcan(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    # Channel attention pools over the whole image, so strictly every output pixel sees every input
    # pixel; the conv path below is the context that matters locally (tiles differ slightly, not badly).
    scale = int(kw["scale"])
    lr = 1 + kw["n_resgroups"] * (2 * kw["n_resblocks"] + 1) + 1
    return _fixed(name, scale, _rf(lr, [*_upsampler_terms(scale), (1, scale)]))


def _describe_carn_m(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    scale = int(kw["scale"])
    lr = 1 + 3 * 3 * 2  # entry conv; 3 blocks x 3 residual-block passes x two 3x3 convs
    return _fixed(name, scale, _rf(lr, [*_upsampler_terms(scale), (1, scale)]))


def _describe_msrresnet(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    scale = int(kw["scale"])
    lr = 1 + 2 * kw["nb"]
    # upconv(s), then HRconv and conv_last at full resolution; the bilinear skip needs only 1 pixel.
    return _fixed(name, scale, _rf(lr, [*_upsampler_terms(scale), (1, scale), (1, scale)]))


def _describe_fsrcnn(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    scale = int(kw["scale"])
    lr = 2 + kw["m"]  # 5x5 head, m 3x3 maps (the 1x1 convs add nothing)
    # The 9-tap transposed conv gathers, for each output pixel, the LR pixels within 4 HR pixels, i.e.
    # within 4 / s + 1 LR pixels: at most 2 for s >= 2 (wherever the padding puts the phase).
    return _fixed(name, scale, _rf(lr + 2, []))


def _describe_rdn(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    scale = int(kw["scale"])
    k = kw["kernel_size"] // 2
    lr = 2 * k + kw["D"] * kw["C"] * k + k  # SFENet1/2, dense layers, GFF 3x3
    if kw["no_upsampling"]:
        return _fixed(name, scale, _rf(lr, []), encoder=True)
    if scale == 4:
        hr = [(k, 1), (k, 2), (k, 4)]
    else:
        hr = [(k, 1), (k, scale)]
    return _fixed(name, scale, _rf(lr, hr))


for _name, _module, _cls, _defaults, _fn in [
    ("edsr_baseline", "edsr", "EDSR", {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0}, _describe_edsr),
    ("edsr", "edsr", "EDSR", {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1}, _describe_edsr),
    ("rcan", "rcan", "RCAN", {}, _describe_rcan),
    ("carn_m", "carn_m", "CARN_M", {}, _describe_carn_m),
    ("msrresnet", "msrresnet", "MSRResNet", {}, _describe_msrresnet),
    ("fsrcnn", "fsrcnn", "FSRCNN", {}, _describe_fsrcnn),
    ("rdn", "rdn", "RDN", {}, _describe_rdn),
    # Method networks (their modules own the descriptor; named by path so nothing is imported here).
    ("liif", "liif", "LIIF", {"encoder": "edsr_baseline"}, "srkit.archs.liif:describe"),
    ("liif_rdn", "liif", "LIIF", {"encoder": "rdn"}, "srkit.archs.liif:describe"),
    ("smsr", "smsr", "SMSR", {}, "srkit.archs.smsr:describe"),
    ("classsr", "classsr", "ClassSR", {}, "srkit.archs.classsr:describe"),
    ("dasr", "dasr", "DASR", {}, "srkit.archs.dasr:describe"),
    ("masa", "masa", "MASA", {}, "srkit.archs.masa:describe"),
    ("glean", "glean", "GLEAN", {}, "srkit.archs.glean:describe"),
    ("crossmpi", "crossmpi", "CrossMPI", {}, "srkit.archs.crossmpi:describe"),
]:
    register(_name, f"srkit.archs.{_module}", _cls, _defaults, _fn)
del _name, _module, _cls, _defaults, _fn

__all__ = ["ArchEntry", "DescribeFn", "build", "describe", "names", "register"]
