"""Pictures of local attribution maps, drawn the way LAM's demo draws them.

* map: ``seismic(m * 0.5 + 0.5)`` (0 white, 1 dark red), enlarged to the HR size with nearest neighbour;
* KDE map: the same colours for :func:`srkit.explain.lam.kde_map`, enlarged with Pillow's bicubic;
* blends: ``trunc(colours * (1 - alpha) + LR enlarged with Pillow's bicubic * alpha)``, alpha 0.5;
* the HR image with the window drawn as OpenCV's 2-pixel red rectangle (3 pixels wide, corners cut);
* the SR output clamped to [0, 1] and truncated to 8 bits (as ``torchvision``'s ``to_pil_image``).

The seismic colour map is matplotlib's (5 anchors, a 256-entry table, values looked up by truncation),
reproduced here so that srkit does not depend on matplotlib. All images are 8-bit RGB (PIL).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .lam import LamResult, kde_map

ALPHA = 0.5
"""Weight of the LR image in the blends."""
BOX_COLOUR = (255, 0, 0)

# matplotlib's "seismic": dark blue, blue, white, red, dark red at 0, 1/4, 1/2, 3/4, 1.
_SEISMIC = np.array([[0.0, 0.0, 0.3], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
_LUT_N = 256


def _seismic_table() -> np.ndarray:
    # Interpolated in table-index units with matplotlib's operation order, so that the entries agree to
    # the last bit (a 1-ulp difference flips some trunc(255 * c) values).
    n = _LUT_N - 1
    anchors = np.linspace(0.0, 1.0, len(_SEISMIC)) * n
    pos = n * np.linspace(0.0, 1.0, _LUT_N)
    inner = pos[1:-1]
    hi = np.searchsorted(anchors, inner)
    t = (inner - anchors[hi - 1]) / (anchors[hi] - anchors[hi - 1])
    mid = t[:, None] * (_SEISMIC[hi] - _SEISMIC[hi - 1]) + _SEISMIC[hi - 1]
    return np.clip(np.concatenate([_SEISMIC[:1], mid, _SEISMIC[-1:]]), 0.0, 1.0)


_TABLE = _seismic_table()


def seismic(values: np.ndarray) -> np.ndarray:
    """Colours of ``values`` in [0, 1] under the seismic map: uint8 (..., 3), ``trunc(255 * colour)``."""
    v = np.asarray(values, dtype=np.float64) * _LUT_N
    idx = np.clip(v, 0, _LUT_N - 1).astype(np.int64)  # 1.0 maps to the last entry, as in matplotlib
    return (255 * _TABLE[idx]).astype(np.uint8)


def map_image(saliency: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The abs-normalised map (h, w) in [0, 1] coloured and enlarged (nearest) to ``size`` = (W, H)."""
    return Image.fromarray(seismic(saliency * 0.5 + 0.5)).resize(size, Image.NEAREST)


def kde_image(kde: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A KDE map (h, w) in [0, 1] coloured and enlarged (bicubic) to ``size`` = (W, H)."""
    return Image.fromarray(seismic(kde * 0.5 + 0.5)).resize(size, Image.BICUBIC)


def blend(colours: Image.Image, image: Image.Image, alpha: float = ALPHA) -> Image.Image:
    """``trunc(colours * (1 - alpha) + image * alpha)``, both RGB of the same size."""
    a = np.asarray(colours.convert("RGB"), dtype=np.float64)
    b = np.asarray(image.convert("RGB"), dtype=np.float64)
    return Image.fromarray((a * (1.0 - alpha) + b * alpha).astype(np.uint8))


def draw_window(image: np.ndarray, x: int, y: int, size: int, colour=BOX_COLOUR) -> Image.Image:
    """``image`` (H, W, 3) uint8 with the window outlined as ``cv2.rectangle(..., thickness=2)`` draws it:
    3-pixel bands centred on the edges from (x, y) to (x + size, y + size), the outer corner pixels left out."""
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    x1, y1 = x + size, y + size
    yy, xx = np.mgrid[y - 1 : y1 + 2, x - 1 : x1 + 2]
    on_edge = (np.abs(yy - y) <= 1) | (np.abs(yy - y1) <= 1) | (np.abs(xx - x) <= 1) | (np.abs(xx - x1) <= 1)
    corner = ((yy == y - 1) | (yy == y1 + 1)) & ((xx == x - 1) | (xx == x1 + 1))
    keep = on_edge & ~corner & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    out[yy[keep], xx[keep]] = colour
    return Image.fromarray(out)


def sr_image(sr) -> Image.Image:
    """SR tensor (1, 3, H, W) or (3, H, W) -> 8-bit RGB, clamped and truncated (``to_pil_image``'s way)."""
    import torch

    t = sr.detach().cpu().float()
    t = t[0] if t.dim() == 4 else t
    a = (t.clamp(0, 1) * 255).to(torch.uint8)  # float -> uint8 truncates
    return Image.fromarray(a.permute(1, 2, 0).numpy())


def lam_panels(hr: np.ndarray, lr: np.ndarray, result: LamResult, alpha: float = ALPHA) -> list[Image.Image]:
    """The demo's five panels, each HR-sized: HR with the window, map, map blend, KDE blend, SR output.

    ``hr`` (H, W, 3) and ``lr`` (h, w, 3) are 8-bit RGB arrays (the images the LAM was computed from).
    """
    height, width = hr.shape[:2]
    size = (width, height)
    saliency = result.saliency
    x, y, win = result.window
    lr_big = Image.fromarray(np.asarray(lr, dtype=np.uint8)).resize(size, Image.BICUBIC)
    heat = map_image(saliency, size)
    kde = kde_image(kde_map(saliency), size)
    return [draw_window(hr, x, y, win), heat, blend(heat, lr_big, alpha), blend(kde, lr_big, alpha),
            sr_image(result.sr).resize(size, Image.BICUBIC) if tuple(result.sr.shape[-2:]) != (height, width)
            else sr_image(result.sr)]


def row(images: Sequence[Image.Image]) -> Image.Image:
    """Images of one height side by side."""
    width = sum(im.width for im in images)
    out = Image.new("RGB", (width, max(im.height for im in images)), (255, 255, 255))
    left = 0
    for im in images:
        out.paste(im, (left, 0))
        left += im.width
    return out


def lam_figure(hr: np.ndarray, lr: np.ndarray, result: LamResult, alpha: float = ALPHA) -> Image.Image:
    """The demo's picture: :func:`lam_panels` in a row."""
    return row(lam_panels(hr, lr, result, alpha))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def compare_figure(
    hr: np.ndarray, lr: np.ndarray, results: Sequence[tuple[str, LamResult]], alpha: float = ALPHA
) -> Image.Image:
    """One row per model (labelled with its name and DI): HR with the window, map blend, KDE blend, SR."""
    rows = []
    height = hr.shape[0]
    band = max(18, height // 12)
    font = _font(int(band * 0.7))
    for name, res in results:
        panels = lam_panels(hr, lr, res, alpha)
        body = row([panels[0], panels[2], panels[3], panels[4]])
        label = Image.new("RGB", (body.width, band), (255, 255, 255))
        di = res.di
        text = f"{name}    DI = {di:.2f}" if di == di else f"{name}    DI = n/a (zero attribution)"
        ImageDraw.Draw(label).text((4, band // 8), text, fill=(0, 0, 0), font=font)
        rows.append(label)
        rows.append(body)
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows)), (255, 255, 255))
    top = 0
    for r in rows:
        out.paste(r, (0, top))
        top += r.height
    return out


__all__ = ["ALPHA", "blend", "compare_figure", "draw_window", "kde_image", "lam_figure", "lam_panels", "map_image",
           "row", "seismic", "sr_image"]
