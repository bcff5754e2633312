"""Image quality metrics: PSNR and SSIM with BasicSR/MATLAB semantics, per-paper evaluation presets, LPIPS.

    >>> from srkit import metrics
    >>> metrics.psnr(sr, hr, crop_border=4, y_channel=True)     # numpy uint8 HWC or torch [0, 1] tensors
    >>> metrics.evaluate_pair(sr, hr, scale=4, preset="benchmark")  # (psnr, ssim)

``LPIPS`` (torch) is imported on first use.
"""

from __future__ import annotations

from typing import Any

from srkit.metrics.presets import PRESETS, EvalPreset, evaluate_pair, get_preset
from srkit.metrics.psnr_ssim import psnr, rgb_to_y, ssim

__all__ = ["psnr", "ssim", "rgb_to_y", "EvalPreset", "PRESETS", "get_preset", "evaluate_pair", "LPIPS"]


def __getattr__(name: str) -> Any:
    if name == "LPIPS":
        from srkit.metrics.lpips import LPIPS

        return LPIPS
    raise AttributeError(f"module 'srkit.metrics' has no attribute {name!r}")
