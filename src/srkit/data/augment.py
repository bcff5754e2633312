"""Geometric augmentations and aligned crops that act identically on an LR image and its HR image.

An :class:`Augment` is one of the 8 orientations of the square (dihedral group): an optional
horizontal flip, an optional vertical flip, then an optional transpose (swapping height and width;
BasicSR calls this step "rot90"). The functions work on HWC numpy arrays and on torch tensors whose
last two dimensions are (H, W) (CHW or NCHW), so the same draw can be applied on the CPU or the device.
Randomness always comes from a ``numpy.random.Generator`` that the caller passes in; nothing here
touches a global random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, TypeVar

import numpy as np

from ..errors import SrkitError

T = TypeVar("T")


@dataclass(frozen=True)
class Augment:
    """Which of the three flips to apply, in the order hflip, vflip, transpose."""

    hflip: bool = False
    vflip: bool = False
    transpose: bool = False


def random_augment(rng: np.random.Generator, hflip: bool = True, vflip: bool = True, rot90: bool = True) -> Augment:
    """Draw each enabled flip with probability 1/2.

    Always consumes exactly three uniform draws from ``rng``, whatever is enabled, so the draws that
    follow do not depend on these switches.
    """
    u = rng.random(3)
    return Augment(hflip=bool(hflip and u[0] < 0.5), vflip=bool(vflip and u[1] < 0.5), transpose=bool(rot90 and u[2] < 0.5))


def _is_numpy(x) -> bool:
    return isinstance(x, np.ndarray)


def apply_augment(image: T, aug: Augment) -> T:
    """Apply ``aug`` to an HWC (or HW) numpy array, or to a tensor laid out (..., H, W).

    numpy results are contiguous copies.
    """
    if _is_numpy(image):
        a = image
        if aug.hflip:
            a = a[:, ::-1]
        if aug.vflip:
            a = a[::-1]
        if aug.transpose:
            a = a.swapaxes(0, 1)
        return np.ascontiguousarray(a)
    t = image
    if aug.hflip:
        t = t.flip(-1)
    if aug.vflip:
        t = t.flip(-2)
    if aug.transpose:
        t = t.transpose(-1, -2)
    return t.contiguous()


def undo_augment(image: T, aug: Augment) -> T:
    """The inverse of :func:`apply_augment` (for test-time self-ensembles): transpose, then the flips."""
    if _is_numpy(image):
        a = image.swapaxes(0, 1) if aug.transpose else image
        if aug.vflip:
            a = a[::-1]
        if aug.hflip:
            a = a[:, ::-1]
        return np.ascontiguousarray(a)
    t = image.transpose(-1, -2) if aug.transpose else image
    if aug.vflip:
        t = t.flip(-2)
    if aug.hflip:
        t = t.flip(-1)
    return t.contiguous()


def all_augments() -> list[Augment]:
    """The 8 orientations, identity first (the x8 self-ensemble of EDSR and successors)."""
    return [Augment(h, v, t) for t in (False, True) for v in (False, True) for h in (False, True)]


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Crop an HWC array at the bottom and right so that H and W are multiples of ``multiple``."""
    h, w = image.shape[:2]
    return image[: h - h % multiple, : w - w % multiple]


def random_crop_pair(
    lr: np.ndarray, hr: np.ndarray, scale: int, patch_size: int, rng: np.random.Generator, name: str = "image"
) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
    """Crop aligned patches: an HR patch of ``patch_size`` and the LR patch of ``patch_size // scale``
    covering the same area.

    The LR top-left corner (top, left) is drawn uniformly (two ``rng.integers`` draws: top, then left);
    the HR patch starts at (top * scale, left * scale). Returns ``(lr_patch, hr_patch, (top, left))``.
    Raises SrkitError when ``patch_size`` is not a multiple of ``scale``, the sizes disagree, or the
    image is smaller than the patch.
    """
    if patch_size % scale:
        raise SrkitError(f"patch_size {patch_size} (HR) is not a multiple of the scale {scale}")
    lp = patch_size // scale
    h, w = lr.shape[:2]
    if hr.shape[0] != h * scale or hr.shape[1] != w * scale:
        raise SrkitError(f"{name}: HR size {hr.shape[1]}x{hr.shape[0]} is not {scale} x LR size {w}x{h}")
    if h < lp or w < lp:
        raise SrkitError(
            f"{name}: HR image {hr.shape[1]}x{hr.shape[0]} is smaller than the HR patch size {patch_size}"
        )
    top = int(rng.integers(0, h - lp + 1))
    left = int(rng.integers(0, w - lp + 1))
    lr_patch = lr[top : top + lp, left : left + lp]
    hr_patch = hr[top * scale : (top + lp) * scale, left * scale : (left + lp) * scale]
    return lr_patch, hr_patch, (top, left)
