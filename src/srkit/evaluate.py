"""Evaluate a model on a benchmark set with a named protocol (``srkit eval``).

The protocol follows the field: HR is cropped top-left to a multiple of the scale, the LR image is the shipped
MATLAB-bicubic file when there is one (else made from HR with :func:`srkit.imresize`), the SR output is quantised
to uint8 like every official test script, and PSNR/SSIM are computed with the preset's colour space and border.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SrkitError


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    extra: dict[str, Any] = field(default_factory=dict)
    """Per-image extras a model reports (e.g. FLOPs or routing shares)."""


@dataclass
class EvalResult:
    model: str
    data: str
    scale: float
    preset: str
    images: list[ImageScore]

    @property
    def psnr(self) -> float:
        return _mean([s.psnr for s in self.images])

    @property
    def ssim(self) -> float:
        return _mean([s.ssim for s in self.images])

    def extra_means(self) -> dict[str, float]:
        """Mean over images of each numeric per-image extra (e.g. ``true_percent`` of ClassSR)."""
        keys = [k for k, v in (self.images[0].extra if self.images else {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return {k: _mean([float(s.extra[k]) for s in self.images if s.extra.get(k) is not None]) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "data": self.data,
            "scale": self.scale,
            "preset": self.preset,
            "psnr": self.psnr,
            "ssim": self.ssim,
            "images": [
                {"name": s.name, "psnr": s.psnr, "ssim": s.ssim, **s.extra} for s in self.images
            ],
        }
        means = self.extra_means()
        if means:
            out["means"] = means
        return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def crop_to_multiple(image: np.ndarray, scale: float) -> np.ndarray:
    """Crop HWC ``image`` top-left so that H and W are multiples of an integer ``scale``.

    For non-integer scales the image is kept whole (the LR size is then ``ceil(size / scale)``, as LIIF does).
    """
    if float(scale).is_integer():
        s = int(scale)
        h, w = image.shape[:2]
        return image[: h - h % s, : w - w % s]
    return image


def bicubic_upscaler(scale: float) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    """The ``bicubic`` reference model: MATLAB bicubic upsampling of the uint8 LR image to the HR size."""
    from .data.resize import imresize

    def run(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return imresize(lr, size=size)

    return run


def evaluate(
    model: str | Any,
    data: str | Path,
    scale: float,
    preset: str = "benchmark",
    progress: bool = True,
    on_image: Callable[[ImageScore], None] | None = None,
) -> EvalResult:
    """Score ``model`` on ``data`` at ``scale`` with the evaluation ``preset``.

    Args:
        model: ``"bicubic"``, a zoo name, a model-file path, or an already loaded :class:`srkit.Upscaler`.
        data: a named set (``Set5``, ``Set14``, ``BSD100``, ``Set5:symmetric``, ``DIV2K``, ...) or a folder with
            ``HR/`` and optionally ``LR_bicubic/X{scale}/``.
        scale: the upscaling factor.
        preset: the protocol name (see :data:`srkit.metrics.presets.PRESETS`).
        progress: show a progress bar on stderr.
        on_image: called with each image's score as soon as it is known.
    """
    from tqdm import tqdm

    from .data.io import read_image
    from .data.resize import imresize
    from .data.sets import resolve_pairs
    from .metrics.presets import get_preset

    protocol = get_preset(preset)  # fail on a bad preset before any work
    if scale <= 0:
        raise SrkitError(f"scale must be positive, got {scale:g}")
    pairs = resolve_pairs(str(data), scale)
    crop = protocol.crop_border(scale)

    image_stats = None
    if isinstance(model, str) and model == "bicubic":
        model_name = "bicubic"
        run = bicubic_upscaler(scale)
    else:
        from .inference import Upscaler, load

        upscaler = model if isinstance(model, Upscaler) else load(str(model))
        model_name = model if isinstance(model, str) else upscaler.name
        # networks that measure their own work (ClassSR routing shares, SMSR mask densities) report it per image
        image_stats = getattr(upscaler.net, "pop_image_stats", None)

        def run(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            return upscaler.upscale(lr, size=size)

    from .metrics import psnr as psnr_fn
    from .metrics import ssim as ssim_fn

    scores: list[ImageScore] = []
    bar = tqdm(pairs, desc=f"eval {model_name} x{scale:g}", unit="img", disable=not progress, leave=False)
    for pair in bar:
        hr = crop_to_multiple(read_image(pair.hr_path, mode="rgb"), scale)
        if pair.lr_path is not None:
            lr = read_image(pair.lr_path, mode="rgb")
            expected = (math.ceil(hr.shape[0] / scale), math.ceil(hr.shape[1] / scale))
            if lr.shape[:2] != expected:
                raise SrkitError(
                    f"{pair.lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} does not match HR {pair.hr_path} "
                    f"({hr.shape[1]}x{hr.shape[0]}) at scale {scale:g} (expected {expected[1]}x{expected[0]})"
                )
        else:
            lr = imresize(hr, scale=1 / scale)
        if image_stats is not None:
            image_stats()  # drop whatever an earlier call left behind
        sr = run(lr, hr.shape[:2])
        if sr.shape != hr.shape:
            raise SrkitError(
                f"{pair.name}: model output {sr.shape[1]}x{sr.shape[0]} does not match HR "
                f"{hr.shape[1]}x{hr.shape[0]}"
            )
        score = ImageScore(
            pair.name,
            float(psnr_fn(sr, hr, crop_border=crop, y_channel=protocol.y_channel)),
            float(ssim_fn(sr, hr, crop_border=crop, y_channel=protocol.y_channel)),
            image_stats() if image_stats is not None else {},
        )
        scores.append(score)
        if on_image is not None:
            on_image(score)
    return EvalResult(model_name, str(data), scale, protocol.name, scores)
