"""Train the example backbone configs on T91 + BSD200 and compare their Set5 PSNR with bicubic.

    python benchmarks/train_backbones.py                       # every config below, as written
    python benchmarks/train_backbones.py --steps 1500 --configs configs/msrresnet_x4_small.yaml

Writes runs under runs/bench/<name> (replacing earlier benchmark runs) and prints a Markdown table
row per config: steps, wall time, Set5 PSNR/SSIM (Y, crop = scale, 8-bit output) of the final
(EMA) weights, and bicubic on the same LR files (28.43 dB at x4 with this protocol).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/msrresnet_x4_small.yaml", "configs/fsrcnn_x4.yaml"]


def bicubic_set5(scale: int) -> tuple[float, float]:
    """Mean Y PSNR/SSIM of MATLAB-bicubic upsampling of the Set5 LR files (crop = scale)."""
    from srkit.data.datasets import PairedImageDataset
    from srkit.data.resize import imresize
    from srkit.data.sets import resolve_pairs
    from srkit.metrics import psnr, ssim

    ds = PairedImageDataset(resolve_pairs("Set5", scale), scale)
    ps, ss = [], []
    for i in range(len(ds)):
        item = ds[i]
        up = imresize(item["lr"].unsqueeze(0), scale=scale).clamp(0, 1)
        up = torch.round(up * 255) / 255
        hr = item["hr"].unsqueeze(0)
        ps.append(float(psnr(up, hr, crop_border=scale, y_channel=True)))
        ss.append(float(ssim(up, hr, crop_border=scale, y_channel=True)))
    return sum(ps) / len(ps), sum(ss) / len(ss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=CONFIGS)
    ap.add_argument("--steps", type=int, help="override train.steps (the schedule is not rescaled)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every config")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from srkit.engine.config import load_config
    from srkit.engine.trainer import train

    rows = []
    for path in args.configs:
        over = list(args.overrides)
        name = Path(path).stem
        if args.steps:
            over += [f"train.steps={args.steps}"]
        over += [f"output_dir=runs/bench/{name}"]
        cfg = load_config(REPO / path, over)
        t0 = time.perf_counter()
        result = train(cfg, force=True)
        minutes = (time.perf_counter() - t0) / 60
        bp, bs = bicubic_set5(cfg.data.scale)
        m = result["metrics"]
        rows.append(
            f"| {path} | {cfg.model.arch} {cfg.model.args} | x{cfg.data.scale} | {result['step']} | {minutes:.1f} "
            f"| {m['psnr']:.2f} / {m['ssim']:.4f} | {bp:.2f} / {bs:.4f} | {m['psnr'] - bp:+.2f} |"
        )
        print(rows[-1], flush=True)
    print()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads")
    print("| config | model | scale | steps | minutes | Set5 PSNR / SSIM (Y) | bicubic | gain (dB) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
