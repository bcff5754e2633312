"""Explaining super-resolution networks: LAM local attribution maps and the Diffusion Index.

    >>> from srkit.explain.lam import lam
    >>> result = lam(net, lr, window=(110, 150, 16))      # LR (1, 3, h, w) RGB [0, 1]; window in SR pixels
    >>> result.di, result.pixels(0.95)

:mod:`srkit.explain.lam` computes, :mod:`srkit.explain.render` draws. The names below are re-exported
lazily; the function ``lam`` is not (``srkit.explain.lam`` is its module).
"""

from __future__ import annotations


from .._lazy import lazy_exports

_LAZY = {
    "LamResult": "srkit.explain.lam",
    "BlurPath": "srkit.explain.lam",
    "LinearPath": "srkit.explain.lam",
    "GaussianLinearPath": "srkit.explain.lam",
    "make_path": "srkit.explain.lam",
    "gini": "srkit.explain.lam",
    "diffusion_index": "srkit.explain.lam",
    "count_pixels": "srkit.explain.lam",
    "lam_figure": "srkit.explain.render",
    "compare_figure": "srkit.explain.render",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
