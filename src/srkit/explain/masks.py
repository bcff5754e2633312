"""Pictures of SMSR's sparse masks: where each module computes its sparse channels, and how much.

:func:`mask_density_picture` draws one panel per sparse mask module, side by side: the LR input (dimmed,
grayscale) with the module's active pixels (hard spatial mask) in colour, and a bar under each panel whose
filled part is the module's share of conv work kept (``mask_flops`` ``flops / dense_flops``), labelled with the
pixel density and the sparse-channel counts per layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

_COLOUR = np.array([255, 80, 40], dtype=np.float32)


def mask_panels(net: Any, lr: Any) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """(gray LR image HxW in [0, 1], per-module HxW bool masks, ``net.mask_flops`` dict) for the first image
    of ``lr`` ((N, 3, H, W) RGB [0, 1] tensor)."""
    import torch

    lr = lr[:1]
    with torch.inference_mode():
        masks = net.masks(lr)
        flops = net.mask_flops(lr)
    h, w = lr.shape[-2:]
    gray = (lr[0].float().mean(0)).clamp(0, 1).cpu().numpy()
    spatial = [m["spatial"][0, 0, :h, :w].bool().cpu().numpy() for m in masks]
    return gray, spatial, flops


def mask_density_picture(net: Any, lr: Any, path: str | os.PathLike[str], zoom: int = 1) -> Path:
    """Write the per-module mask picture of ``net`` (an :class:`srkit.archs.smsr.SMSR`) on ``lr`` as a PNG;
    return the path. ``zoom`` enlarges every panel by pixel repetition."""
    from PIL import Image, ImageDraw

    gray, spatial, flops = mask_panels(net, lr)
    h, w = gray.shape
    gap, bar = 4, 22
    panels = []
    for mask, block in zip(spatial, flops["blocks"]):
        base = np.repeat((0.35 * gray * 255)[..., None], 3, axis=2)
        base[mask] = 0.4 * base[mask] + 0.6 * _COLOUR
        panel = np.kron(base, np.ones((zoom, zoom, 1))) if zoom > 1 else base
        panels.append((panel.astype(np.uint8), block))
    pw, ph = w * zoom, h * zoom
    canvas = Image.new("RGB", (len(panels) * (pw + gap) - gap, ph + bar), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (panel, block) in enumerate(panels):
        x0 = i * (pw + gap)
        canvas.paste(Image.fromarray(panel), (x0, 0))
        kept = block["flops"] / block["dense_flops"]
        draw.rectangle([x0, ph + 2, x0 + pw - 1, ph + 8], outline=(120, 120, 120))
        draw.rectangle([x0, ph + 2, x0 + max(1, int(kept * (pw - 1))), ph + 8], fill=(40, 120, 220))
        label = f"{block['spatial_density']:.0%} px, {kept:.0%} work"
        draw.text((x0 + 1, ph + 10), label, fill=(0, 0, 0))
    path = Path(path)
    canvas.save(path)
    return path
