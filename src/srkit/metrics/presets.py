"""Evaluation protocols of the papers srkit reproduces, so that a number can be compared with its table.

Each preset fixes the two choices that move PSNR the most: the colour space (RGB or BT.601 Y) and the
border crop. The crop is ``scale_factor * ceil(scale) + offset`` pixels on every edge.

Non-integer scales: the only official evaluator that depends on the scale and is used with arbitrary
scales is LIIF's ``utils.calc_psnr``, and its ``test.py`` parses the scale with ``int()`` from an
``eval_type`` such as ``div2k-4`` / ``benchmark-4``, so it never evaluates a non-integer scale with
shaving. For such scales (LIIF x3.7, say) srkit rounds the scale **up**: ``crop = ceil(scale)`` for
``benchmark`` and ``ceil(scale) + 6`` for ``div2k``, so that no pixel whose content depends on the padded
border is counted. A float scale that is an integer (``4.0``) gives the integer crop.

Y differences between conventions: EDSR-PyTorch, SMSR, DASR and LIIF compute Y of the *difference* image
with weights (65.738, 129.057, 25.064) / 256; srkit uses BasicSR/MATLAB's (65.481, 128.553, 24.966) / 255
on each image. The weights agree to about 4e-6 relative, so PSNR agrees to about 1e-4 dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from srkit.errors import SrkitError


@dataclass(frozen=True)
class EvalPreset:
    """One paper's PSNR/SSIM protocol.

    Attributes:
        name: preset key in ``PRESETS``.
        y_channel: measure on BT.601 studio-swing Y (True) or on RGB (False).
        crop_scale_factor: 1 if the border crop grows with the scale, 0 if it is fixed.
        crop_offset: pixels added to the scale-dependent part (or the fixed crop).
        description: the protocol in words, with the official script it comes from.
    """

    name: str
    y_channel: bool
    crop_scale_factor: int
    crop_offset: int
    description: str

    def crop_border(self, scale: float) -> int:
        """Pixels to remove from every edge at this scale (non-integer scales round up, see module doc)."""
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
            raise SrkitError(f"scale must be a positive number, got {scale!r}")
        return self.crop_scale_factor * math.ceil(scale) + self.crop_offset


PRESETS: dict[str, EvalPreset] = {
    p.name: p
    for p in (
        EvalPreset(
            "benchmark", True, 1, 0,
            "Y channel, crop = scale. The Set5/Set14/B100/Urban100/Manga109 protocol of EDSR-PyTorch, used by "
            "SMSR and DASR (utility.py::calc_psnr, benchmark branch; SSIM on Y with border = scale) and LIIF "
            "(utils.py::calc_psnr, dataset='benchmark', eval_type benchmark-<s>).",
        ),
        EvalPreset(
            "div2k", False, 1, 6,
            "RGB, crop = scale + 6. DIV2K validation protocol of EDSR-PyTorch and LIIF "
            "(liif utils.py::calc_psnr, dataset='div2k', eval_type div2k-<s>); LIIF reports no SSIM.",
        ),
        EvalPreset(
            "classsr", False, 1, 0,
            "RGB, crop = scale (4 for every released ClassSR model). ClassSR codes/test_ClassSR.py crops "
            "opt['scale'] pixels (crop_border: ~ in the test options) and prints RGB PSNR via "
            "utils/util.py::calculate_psnr; PSNR is computed on the stitched 32x32-patch output.",
        ),
        EvalPreset(
            "glean", False, 0, 0,
            "RGB, no crop. GLEAN as released in MMagic (configs/glean/*: PSNR/SSIM with crop_border=0 on "
            "outputs de-normalised from [-1, 1]).",
        ),
        EvalPreset(
            "masa", True, 0, 0,
            "Y channel (BT.601 studio swing), no crop, uint8-quantised output. MASA-SR "
            "utils/calculate_PSNR_SSIM.py (after the 2021-06-08 channel-order fix); SSIM 11x11 Gaussian, "
            "sigma 1.5, valid region.",
        ),
        EvalPreset(
            "crossmpi", False, 0, 0,
            "RGB, whole image, no crop. Cross-MPI evaluate.py (tf.image.psnr / tf.image.ssim on RGB 0-255) and "
            "data_processing/metric_calculation.py (skimage, multichannel). srkit's SSIM is the MATLAB "
            "algorithm, which tf.image.ssim also follows (11x11 Gaussian, sigma 1.5, valid region).",
        ),
    )
}


def get_preset(name: str | EvalPreset) -> EvalPreset:
    """The preset called ``name`` (an ``EvalPreset`` is returned unchanged). Unknown names raise SrkitError."""
    if isinstance(name, EvalPreset):
        return name
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise SrkitError(f"unknown evaluation preset {name!r}; valid presets: {', '.join(PRESETS)}") from None


def evaluate_pair(sr: Any, hr: Any, scale: float, preset: str | EvalPreset = "benchmark") -> tuple[float, float]:
    """(PSNR, SSIM) of one SR/HR pair under a preset.

    ``sr`` and ``hr``: numpy HWC (or HW) arrays of the same shape, ``uint8`` [0, 255] (quantise SR first
    for the papers that do) or float [0, 1]; RGB order. ``scale`` sets the crop of scale-dependent presets.
    """
    from srkit.metrics.psnr_ssim import psnr, ssim

    p = get_preset(preset)
    crop = p.crop_border(scale)
    return psnr(sr, hr, crop, p.y_channel), ssim(sr, hr, crop, p.y_channel)
