"""Draw the sample image that ships with srkit (examples/sample.png): a small procedural landscape with
fine detail (text, stripes, foliage noise) so that upscalers have something to show. Deterministic."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def make_sample(size: tuple[int, int] = (192, 128), seed: int = 2021) -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # sky: vertical gradient
    sky = np.stack([110 + 90 * yy / h, 160 + 60 * yy / h, 235 - 20 * yy / h], -1)
    img = sky.copy()
    # sun with a soft halo
    d = np.hypot(xx - 0.78 * w, yy - 0.22 * h)
    halo = np.clip(1 - d / (0.18 * h), 0, 1)[..., None]
    img = img * (1 - halo) + np.array([255, 236, 170]) * halo
    # two mountain ridges from smoothed random walks
    for level, colour, rough in ((0.55, (92, 108, 140), 1.6), (0.68, (58, 86, 70), 1.1)):
        walk = np.cumsum(rng.normal(0, rough, w))
        walk = np.convolve(walk - walk.mean(), np.ones(5) / 5, mode="same")
        ridge = level * h + walk
        mask = (yy > ridge[None, :])[..., None]
        shade = (1 - 0.25 * (yy - ridge[None, :]) / h)[..., None]
        img = np.where(mask, np.array(colour) * shade, img)
    # meadow with grass texture
    meadow = yy > 0.82 * h
    grass = rng.normal(0, 18, (h, w, 1)) + np.array([70, 140, 60])
    img = np.where(meadow[..., None], grass, img)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    # a small house: walls, roof, striped door, windows with bars
    x0, y0 = int(0.12 * w), int(0.62 * h)
    draw.rectangle([x0, y0, x0 + 40, y0 + 30], fill=(222, 205, 170), outline=(90, 60, 40))
    draw.polygon([(x0 - 4, y0), (x0 + 20, y0 - 18), (x0 + 44, y0)], fill=(160, 50, 40))
    for i in range(0, 10, 2):
        draw.line([(x0 + 16 + i, y0 + 12), (x0 + 16 + i, y0 + 30)], fill=(90, 55, 30))
    for wx in (x0 + 4, x0 + 28):
        draw.rectangle([wx, y0 + 8, wx + 8, y0 + 16], fill=(120, 170, 220), outline=(60, 40, 30))
        draw.line([(wx + 4, y0 + 8), (wx + 4, y0 + 16)], fill=(60, 40, 30))
        draw.line([(wx, y0 + 12), (wx + 8, y0 + 12)], fill=(60, 40, 30))
    # a fence of thin posts: aliasing-prone detail
    for fx in range(int(0.45 * w), w - 4, 4):
        draw.line([(fx, int(0.80 * h)), (fx, int(0.90 * h))], fill=(245, 245, 235))
    draw.line([(int(0.45 * w), int(0.83 * h)), (w - 4, int(0.83 * h))], fill=(245, 245, 235))
    draw.text((int(0.50 * w), int(0.05 * h)), "srkit", fill=(30, 30, 60))
    return pil.filter(ImageFilter.SMOOTH_MORE).filter(ImageFilter.SHARPEN)


if __name__ == "__main__":
    out = Path(__file__).with_name("sample.png")
    make_sample().save(out, optimize=True)
    print(f"wrote {out}")
