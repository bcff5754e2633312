"""srkit: super-resolution toolkit.

The public API is imported lazily so that ``import srkit`` stays fast:

    >>> import srkit
    >>> lr = srkit.imresize(hr, scale=1 / 4)          # MATLAB-exact bicubic
    >>> srkit.metrics.psnr(sr, hr, crop_border=4, y_channel=True)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "imresize": ("srkit.data.resize", "imresize"),
    "read_image": ("srkit.data.io", "read_image"),
    "write_image": ("srkit.data.io", "write_image"),
    "load_image": ("srkit.data.io", "load_image"),
    "load_model": ("srkit.model_file", "load_model"),
    "save_model": ("srkit.model_file", "save_model"),
    "profile_model": ("srkit.profile", "profile_model"),
    "evaluate": ("srkit.evaluate", "evaluate"),
    "metrics": ("srkit.metrics", None),
    "load": ("srkit.inference", "load"),
    "Upscaler": ("srkit.inference", "Upscaler"),
    "ModelDescriptor": ("srkit.descriptor", "ModelDescriptor"),
    "SrkitError": ("srkit.errors", "SrkitError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'srkit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
