"""Speed of srkit.data.resize.imresize on a DIV2K-sized RGB image: down x4 and back up x4.

Usage: python benchmarks/bench_resize.py [--threads 2] [--repeats 5] [--cuda]

Uses the first 2040x1356 image of $SRKIT_DATA/div2k/HR (default ../shared/data) when present, else random
pixels of that size (bicubic cost does not depend on content). Prints a Markdown table: best and median wall
time, and best process CPU time, of each pass for the numpy uint8 path (float64 inside, MATLAB-exact) and the
torch float32 NCHW path.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from srkit.data.resize import imresize

W, H = 2040, 1356


def load_image() -> tuple[np.ndarray, str]:
    root = Path(os.environ.get("SRKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    folder = root / "div2k" / "HR"
    if folder.is_dir():
        from PIL import Image

        for p in sorted(folder.glob("*.png")):
            with Image.open(p) as im:
                if im.size == (W, H):
                    return np.asarray(im.convert("RGB")), str(p.name)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "random"


def timeit(fn, repeats: int, sync=None) -> tuple[float, float, float, object]:
    out = fn()  # warm-up: fills the weight caches
    times, cpu = [], []
    for _ in range(repeats):
        if sync:
            sync()
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(times), statistics.median(times), min(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cuda", action="store_true", help="also time torch float32 on the GPU")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    img, name = load_image()
    rows = []

    def add(label, fn, sync=None):
        best, med, cpu, out = timeit(fn, args.repeats, sync)
        rows.append((label, best, med, cpu))
        return out

    lr = add("numpy uint8, down x4 (1356x2040 -> 339x510)", lambda: imresize(img, scale=0.25))
    add("numpy uint8, up x4 (339x510 -> 1356x2040)", lambda: imresize(lr, scale=4))
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float().div_(255)
    lt = add("torch float32 CPU, down x4", lambda: imresize(x, scale=0.25))
    add("torch float32 CPU, up x4", lambda: imresize(lt, scale=4))
    if args.cuda and torch.cuda.is_available():
        xc = x.cuda()
        ltc = add("torch float32 CUDA, down x4", lambda: imresize(xc, scale=0.25), torch.cuda.synchronize)
        add("torch float32 CUDA, up x4", lambda: imresize(ltc, scale=4), torch.cuda.synchronize)

    print(f"image: {name} {img.shape}; torch {torch.__version__}, numpy {np.__version__}, "
          f"{args.threads} threads, {platform.processor() or platform.machine()}, best/median of {args.repeats}")
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other jobs share the cores)")
    print()
    print("| pass | best wall (s) | median wall (s) | best CPU time, all threads (s) |")
    print("|---|---|---|---|")
    for label, best, med, cpu in rows:
        print(f"| {label} | {best:.3f} | {med:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
