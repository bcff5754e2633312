"""Official checkpoints -> srkit model files.

``convert_checkpoint(path, arch)`` reads a foreign checkpoint safely (``torch.load(weights_only=True)``),
unwraps framework wrappers, maps keys with the architecture's converter (table
:data:`srkit.convert.common.CONVERTERS`), infers constructor arguments from tensor shapes and loads the
srkit network strictly. ``srkit convert`` then writes it with :func:`srkit.model_file.save_model`.
"""

from __future__ import annotations

from .common import (
    CONVERTERS,
    Conversion,
    Converted,
    canonicalize,
    convert_checkpoint,
    convert_state_dict,
    load_strict,
    parse_set,
    read_checkpoint,
    register_converter,
)

__all__ = [
    "CONVERTERS",
    "Conversion",
    "Converted",
    "canonicalize",
    "convert_checkpoint",
    "convert_state_dict",
    "load_strict",
    "parse_set",
    "read_checkpoint",
    "register_converter",
]
