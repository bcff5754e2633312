"""Evaluate a model on a benchmark set with a named protocol (``srkit eval``).

The protocol follows the field: HR is cropped top-left to a multiple of the scale, the LR image is the shipped
MATLAB-bicubic file when there is one (else made from HR with :func:`srkit.imresize`), the SR output is quantised
to uint8 like every official test script, and PSNR/SSIM are computed with the preset's colour space and border.

**LR made from HR** (``lr_from_hr``; ``srkit eval --lr-from-hr``): LIIF's protocol for scales without LR files
(its ``sr-implicit-downsampled`` test wrapper, used for x6 and x8 on the benchmarks and x6 to x30 on DIV2K).
For a scale ``s`` (any positive number, non-integer included) the LR size is ``floor(H / s + 1e-9)`` x
``floor(W / s + 1e-9)``, HR is cropped top-left to ``round(h_lr * s)`` x ``round(w_lr * s)``, and the LR
image is that crop resized to the LR size by

* ``"matlab"`` (default): MATLAB bicubic, antialiased, symmetric border (:func:`srkit.imresize`), rounded to
  uint8: what the shipped benchmark LR files are;
* ``"pil"``: Pillow's bicubic resize of the 8-bit image, exactly the official LIIF test
  (``transforms.Resize(size, Image.BICUBIC)`` on a ``ToPILImage``); Pillow clips its (antialiased) kernel at
  the border and renormalises instead of padding, so its LR differs slightly from MATLAB's.

At integer scales the crop is the usual multiple-of-``s`` crop. The model is asked for exactly the cropped HR
size. Differences from the official script that remain: srkit quantises SR to uint8 before PSNR (LIIF
measures the clamped float output; a few 0.001 dB), and srkit's Y weights (see
:mod:`srkit.metrics.presets`). The paper's presets: ``div2k`` (RGB, crop s + 6) on DIV2K, ``benchmark``
(Y, crop s) on Set5/Set14/B100/Urban100; non-integer scales crop ``ceil(s)``.
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


LR_FROM_HR = ("matlab", "pil")
"""Downsamplers for LR made from HR: MATLAB bicubic (srkit.imresize) or Pillow bicubic (the official LIIF test)."""


def make_lr_from_hr(hr: np.ndarray, scale: float, method: str = "matlab") -> tuple[np.ndarray, np.ndarray]:
    """LIIF's on-the-fly LR: ``(hr_cropped, lr)`` for a uint8 HWC ``hr`` at any positive ``scale``.

    LR size ``floor(H / s + 1e-9)`` x ``floor(W / s + 1e-9)``; HR cropped top-left to ``round(h_lr * s)`` x
    ``round(w_lr * s)``; LR = the crop resized to the LR size with ``method`` (``"matlab"`` or ``"pil"``, see
    the module docstring). Both returned arrays are uint8.
    """
    if method not in LR_FROM_HR:
        raise SrkitError(f"unknown LR downsampler {method!r}; use one of {', '.join(LR_FROM_HR)}")
    h, w = hr.shape[:2]
    h_lr, w_lr = math.floor(h / scale + 1e-9), math.floor(w / scale + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise SrkitError(f"a {w}x{h} image is too small for scale {scale:g} (LR would be {w_lr}x{h_lr})")
    hr = np.ascontiguousarray(hr[: round(h_lr * scale), : round(w_lr * scale)])
    if method == "matlab":
        from .data.resize import imresize

        lr = imresize(hr, size=(h_lr, w_lr))
    else:
        from PIL import Image

        lr = np.asarray(Image.fromarray(hr).resize((w_lr, h_lr), Image.BICUBIC))
    return hr, np.ascontiguousarray(lr)


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
    *,
    lr_from_hr: bool | str = False,
    limit: int | None = None,
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
        lr_from_hr: make every LR image from its HR image the LIIF way (see the module docstring), ignoring LR
            files; ``True`` or ``"matlab"`` for MATLAB bicubic, ``"pil"`` for the official LIIF test's Pillow
            bicubic. Any positive scale then works.
        limit: score only the first ``limit`` images (sorted by name).
    """
    from tqdm import tqdm

    from .data.io import read_image
    from .data.resize import imresize
    from .data.sets import resolve_pairs
    from .metrics.presets import get_preset

    protocol = get_preset(preset)  # fail on a bad preset before any work
    if scale <= 0:
        raise SrkitError(f"scale must be positive, got {scale:g}")
    method = None
    if lr_from_hr:
        method = "matlab" if lr_from_hr is True else str(lr_from_hr)
        if method not in LR_FROM_HR:
            raise SrkitError(f"unknown LR downsampler {method!r}; use one of {', '.join(LR_FROM_HR)}")
    pairs = resolve_pairs(str(data), scale, lr_from_hr=method is not None)
    if limit is not None:
        if limit < 1:
            raise SrkitError(f"limit must be at least 1, got {limit}")
        pairs = pairs[:limit]
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
        if method is not None:
            hr, lr = make_lr_from_hr(read_image(pair.hr_path, mode="rgb"), scale, method)
        else:
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
    label = str(data) if method is None else f"{data} (LR from HR, {method})"
    return EvalResult(model_name, label, scale, protocol.name, scores)

