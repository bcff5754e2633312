"""Data: image I/O, MATLAB-exact resize, named sets, datasets and augmentations.

- :mod:`srkit.data.io`: ``read_image``, ``load_image``, ``write_image``, ``to_tensor``, ``to_array``
- :mod:`srkit.data.resize`: ``imresize`` (MATLAB bicubic)
- :mod:`srkit.data.sets`: ``data_root``, ``resolve_pairs``, ``list_named_sets``, ``train_images``
- :mod:`srkit.data.datasets`: ``PairedImageDataset``, ``SingleImageDataset``
- :mod:`srkit.data.augment`: flips/transpose and aligned crops shared by LR and HR
- :mod:`srkit.data.degrade`: ``degrade``, ``Degradation``, ``RandomDegradation`` (blind-SR blur, bicubic down, noise; DASR)

The names below are imported lazily, on first use, so ``import srkit.data`` stays cheap.
"""

from __future__ import annotations


from .._lazy import lazy_exports

_LAZY = {
    "read_image": "srkit.data.io",
    "load_image": "srkit.data.io",
    "write_image": "srkit.data.io",
    "to_tensor": "srkit.data.io",
    "to_array": "srkit.data.io",
    "ImageFile": "srkit.data.io",
    "imresize": "srkit.data.resize",
    "data_root": "srkit.data.sets",
    "resolve_pairs": "srkit.data.sets",
    "list_named_sets": "srkit.data.sets",
    "train_images": "srkit.data.sets",
    "ImagePair": "srkit.data.sets",
    "PairedImageDataset": "srkit.data.datasets",
    "SingleImageDataset": "srkit.data.datasets",
    "Degradation": "srkit.data.degrade",
    "RandomDegradation": "srkit.data.degrade",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
