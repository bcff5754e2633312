"""Paired LR/HR datasets for training and evaluation, and a plain image-folder dataset for inference.

Items are dicts of float32 CHW tensors in [0, 1] (RGB) plus the image name; a ``DataLoader`` stacks
them to NCHW. Randomness (crop position, flips) of item ``i`` in epoch ``e`` comes only from
``numpy.random.default_rng([seed, e, i])``, so a training run resumed at any step sees exactly the
patches it would have seen; no global random state is read or changed.
"""

from __future__ import annotations

import warnings

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import SrkitError
from .augment import apply_augment, crop_to_multiple, random_augment, random_crop_pair
from .io import read_image
from .sets import ImagePair, list_images, resolve_pairs

PairsArg = Union[str, Path, Sequence[ImagePair], Sequence[Union[str, Path]]]


def _to_uint8_rgb(a: np.ndarray) -> np.ndarray:
    """read_image(mode="rgb") output -> uint8 RGB (16-bit samples rounded to 8 bits: x / 257)."""
    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return a


def _chw(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0)


def _as_pairs(source: PairsArg, scale: int) -> list[ImagePair]:
    if isinstance(source, (str, Path)):
        return resolve_pairs(source, scale)
    items = list(source)
    if not items:
        raise SrkitError("the dataset was given an empty list of images")
    pairs = []
    for it in items:
        if isinstance(it, ImagePair):
            pairs.append(it)
        elif isinstance(it, (str, Path)):
            pairs.append(ImagePair(Path(it).stem, Path(it), None))
        else:
            raise SrkitError(f"dataset items must be ImagePair or image paths, got {type(it).__name__}")
    return pairs


def _drop_smaller_than(pairs: list[ImagePair], patch_size: int) -> list[ImagePair]:
    """Training sets mix sizes (T91 has a 78x78 image): images that cannot hold one HR patch are left out
    with a warning rather than failing the whole run; an empty result is an error."""
    from PIL import Image

    kept, dropped = [], []
    for pair in pairs:
        try:
            with Image.open(pair.hr_path) as im:  # header only, no decode
                w, h = im.size
        except Exception:  # unreadable files fail later with read_image's clear error
            kept.append(pair)
            continue
        (kept if min(w, h) >= patch_size else dropped).append(pair)
    if not kept:
        raise SrkitError(f"no training image is at least {patch_size}x{patch_size} pixels (the HR patch size)")
    if dropped:
        names = ", ".join(p.name for p in dropped[:5]) + (" ..." if len(dropped) > 5 else "")
        warnings.warn(f"{len(dropped)} image(s) smaller than the {patch_size}px patch left out: {names}", stacklevel=3)
    return kept


class PairedImageDataset:
    """LR/HR pairs, whole images or random aligned patches, with optional flips/rot90.

    Args:
        pairs_or_hr_folder: a spec for :func:`srkit.data.sets.resolve_pairs` (named set or folder), a
            list of :class:`ImagePair`, or a list of HR image paths (LR made on the fly).
        scale: integer SR factor.
        patch_size: HR patch side (LR patch = patch_size // scale); None returns whole images.
        augment: random horizontal flip, vertical flip and transpose ("rot90"), each with p = 1/2,
            applied identically to LR and HR.
        lr_border: border handling of the MATLAB bicubic that makes missing LR images
            (``imresize(hr, 1/scale, border=lr_border)`` on uint8, result uint8).
        cache: keep decoded (and generated) uint8 images in memory after first use. Call
            :meth:`preload` before creating DataLoader workers to share one decoded copy with them.
        repeat: the dataset is ``repeat`` times as long; each repetition gets its own random crops.
        seed: base seed of the (seed, epoch, index) randomness.

    Each item: ``{"lr": float32 (3, h, w), "hr": float32 (3, h*scale, w*scale), "name": str}``, values in
    [0, 1]. The HR image is first cropped at the bottom/right to a multiple of ``scale`` (the benchmark
    convention); an LR file must then be exactly HR / scale in size. Grayscale images become RGB, alpha
    is dropped, 16-bit images are rounded to 8 bits.

    Determinism: item ``i`` uses ``numpy.random.default_rng([seed, epoch, i])``. Set the epoch with
    :meth:`set_epoch` before iterating; DataLoader workers get a copy of the dataset when an iterator
    is created, so with ``persistent_workers=True`` the epoch must instead travel with the index:
    ``dataset[(epoch, i)]`` is also accepted (e.g. from a sampler that yields such tuples).
    """

    def __init__(
        self,
        pairs_or_hr_folder: PairsArg,
        scale: int,
        patch_size: Optional[int] = None,
        augment: bool = False,
        lr_border: str = "symmetric",
        cache: bool = True,
        repeat: int = 1,
        seed: int = 0,
    ) -> None:
        if isinstance(scale, bool) or int(scale) != scale or scale < 1:
            raise SrkitError(f"scale must be a positive whole number, got {scale!r}")
        self.scale = int(scale)
        if patch_size is not None:
            if isinstance(patch_size, bool) or int(patch_size) != patch_size or patch_size < 1:
                raise SrkitError(f"patch_size must be a positive whole number or None, got {patch_size!r}")
            if patch_size % self.scale:
                raise SrkitError(f"patch_size {patch_size} (HR) is not a multiple of the scale {self.scale}")
            patch_size = int(patch_size)
        if lr_border not in ("symmetric", "replicate"):
            raise SrkitError(f"lr_border must be 'symmetric' or 'replicate', got {lr_border!r}")
        if int(repeat) != repeat or repeat < 1:
            raise SrkitError(f"repeat must be a positive whole number, got {repeat!r}")
        self.pairs = _as_pairs(pairs_or_hr_folder, self.scale)
        if patch_size is not None:
            self.pairs = _drop_smaller_than(self.pairs, patch_size)
        self.patch_size = patch_size
        self.augment = bool(augment)
        self.lr_border = lr_border
        self.cache = bool(cache)
        self.repeat = int(repeat)
        self.seed = int(seed)
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips the next items use."""
        self.epoch = int(epoch)

    def load_pair(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Uint8 RGB (lr, hr) HWC arrays of pair ``k`` (HR cropped to a multiple of the scale), cached."""
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        pair = self.pairs[k]
        hr = crop_to_multiple(_to_uint8_rgb(read_image(pair.hr_path, mode="rgb")), self.scale)
        if hr.shape[0] == 0 or hr.shape[1] == 0:
            raise SrkitError(f"{pair.hr_path}: image smaller than the scale {self.scale}")
        hr = np.ascontiguousarray(hr)
        if pair.lr_path is not None:
            lr = _to_uint8_rgb(read_image(pair.lr_path, mode="rgb"))
            want = (hr.shape[0] // self.scale, hr.shape[1] // self.scale)
            if lr.shape[:2] != want:
                raise SrkitError(
                    f"LR {pair.lr_path} is {lr.shape[1]}x{lr.shape[0]} but HR {pair.hr_path} "
                    f"({hr.shape[1]}x{hr.shape[0]} after cropping to a multiple of {self.scale}) "
                    f"needs {want[1]}x{want[0]} at x{self.scale}"
                )
        else:
            from .resize import imresize

            lr = imresize(hr, scale=1.0 / self.scale, border=self.lr_border)
        if self.cache:
            self._cache[k] = (lr, hr)
        return lr, hr

    def preload(self) -> "PairedImageDataset":
        """Decode (and make LR for) every pair now, so forked DataLoader workers share the cache."""
        if self.cache:
            for k in range(len(self.pairs)):
                self.load_pair(k)
        return self

    def rng(self, index: int, epoch: Optional[int] = None) -> np.random.Generator:
        """The generator that drives item ``index`` of ``epoch`` (default: the current epoch)."""
        return np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch), int(index)])

    def __getitem__(self, item) -> dict:
        if isinstance(item, tuple):
            epoch, index = int(item[0]), int(item[1])
        else:
            epoch, index = self.epoch, int(item)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index %= n
        k = index % len(self.pairs)
        lr, hr = self.load_pair(k)
        name = self.pairs[k].name
        if self.patch_size is not None or self.augment:
            rng = self.rng(index, epoch)
            if self.patch_size is not None:
                lr, hr, _ = random_crop_pair(lr, hr, self.scale, self.patch_size, rng, name=str(self.pairs[k].hr_path))
            if self.augment:
                aug = random_augment(rng)
                lr, hr = apply_augment(lr, aug), apply_augment(hr, aug)
        return {"lr": _chw(lr), "hr": _chw(hr), "name": name}


class SingleImageDataset:
    """Images for inference only: ``{"lr": float32 (3, H, W) in [0, 1], "name": str, "path": str}``.

    ``source`` is a folder (its image files, sorted) or a list of paths. Grayscale becomes RGB, alpha
    is dropped and 16-bit is rounded to 8 bits; use :func:`srkit.data.io.load_image` where those matter.
    """

    def __init__(self, source: Union[str, Path, Sequence[Union[str, Path]]]) -> None:
        if isinstance(source, (str, Path)):
            self.paths = list_images(source)
        else:
            self.paths = [Path(p) for p in source]
            if not self.paths:
                raise SrkitError("SingleImageDataset was given an empty list of images")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        p = self.paths[index]
        return {"lr": _chw(_to_uint8_rgb(read_image(p, mode="rgb"))), "name": p.stem, "path": str(p)}
