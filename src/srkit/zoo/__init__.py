"""The model zoo: ready-to-use srkit model files, found by name.

A zoo model is an srkit model file (``<name>.safetensors``, see :mod:`srkit.model_file`). Names are
looked up, in order, in

1. every directory listed in the environment variable ``SRKIT_MODEL_PATH`` (``os.pathsep``-separated),
   so that users and tests can add their own models without touching the installation;
2. the files shipped inside the package (``srkit/zoo/*.safetensors``).

The first match wins. No network access happens here: downloading is deliberately not part of the zoo.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SrkitError

DEFAULT_MODEL = "srkit-default"
"""Name of the model that ``srkit upscale`` and ``srkit.load()`` use when none is given."""

SUFFIX = ".safetensors"
ENV_PATH = "SRKIT_MODEL_PATH"


def search_dirs() -> list[Path]:
    """Directories searched for zoo models, highest priority first."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p.strip()]
    dirs.append(Path(__file__).resolve().parent)
    return dirs


def _index() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in search_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.glob(f"*{SUFFIX}")):
            found.setdefault(f.name[: -len(SUFFIX)], f)
    return found


def list_models() -> list[str]:
    """Names of all zoo models, sorted."""
    return sorted(_index())


def resolve(name: str) -> Path:
    """Path of the zoo model ``name``; :class:`SrkitError` listing the known names if there is none."""
    index = _index()
    key = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if key in index:
        return index[key]
    known = ", ".join(sorted(index)) or "none installed"
    hint = f" (add directories with ${ENV_PATH})"
    raise SrkitError(f"unknown model {name!r}: not a file and not in the model zoo; known models: {known}{hint}")
