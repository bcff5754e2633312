"""Training methods: how a model is trained (its networks, losses, optimisers, stages).

Methods are looked up by name and imported only when used. A method added later (ClassSR's two
stages, SMSR's schedules, LIIF's sampler, DASR's pre-training) adds one line here.
"""

from __future__ import annotations

import difflib
import importlib

from ..errors import ConfigError

# method name -> "module:Class"
METHODS: dict[str, str] = {
    "sr": "srkit.methods.sr:SRMethod",
    "smsr": "srkit.methods.smsr:SMSRMethod",
    "classsr": "srkit.methods.classsr:ClassSRMethod",
    "liif": "srkit.methods.liif:LIIFMethod",
    "dasr": "srkit.methods.dasr:DASRMethod",
    "masa": "srkit.methods.masa:MASAMethod",
    "crossmpi": "srkit.methods.crossmpi:CrossMPIMethod",
    "glean": "srkit.methods.glean:GLEANMethod",
}


def get_method(name: str) -> type:
    """The :class:`~srkit.methods.base.Method` subclass registered as ``name``."""
    try:
        target = METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(METHODS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(METHODS))})"
        raise ConfigError(f"unknown method.name '{name}'" + hint) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
