"""Inference: the :class:`Upscaler` and tiled, memory-bounded execution.

    >>> import srkit
    >>> up = srkit.load()                      # the default zoo model, CUDA if available
    >>> sr = up.upscale(image, scale=4)        # numpy / PIL / tensor in, the same kind out
    >>> upscale_to_png(up, array, "big.png", scale=30)   # LIIF: strips straight to disk (see streaming)
"""

from __future__ import annotations

from .streaming import upscale_to_png
from .tiling import TilePlan, TilingOutOfMemoryError, run_tiled
from .upscaler import Upscaler, default_memory_budget, load

__all__ = ["Upscaler", "load", "default_memory_budget", "TilePlan", "TilingOutOfMemoryError", "run_tiled",
           "upscale_to_png"]
