"""Peak memory and time of x4 upscaling with and without tiling, on the CPU.

Each configuration runs in its own child process so that its peak resident set size (``ru_maxrss``) is its
own. The model is the trained default zoo model when installed (``--model``), otherwise an x4 backbone from
``srkit.archs`` with random weights (speed and memory do not depend on the weight values).

    python benchmarks/bench_tiling.py                       # DIV2K im_2 (2040x1356) x4, see --help
    python benchmarks/bench_tiling.py --configs tiled:1GB --crop 510x339

A configuration is ``untiled`` (tile=0, the whole image at once), ``tiled:<budget>`` (tile size from a
memory budget such as 1GB) or ``tile:<N>`` (fixed N x N tiles). When two configurations run on the same
image the largest absolute difference between their outputs is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "div2k" / "HR" / "im_2.png"


def _worker(opts: argparse.Namespace) -> None:
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(opts.threads)
    from srkit.cli.upscale import parse_memory
    from srkit.data.io import read_image
    from srkit.inference import Upscaler

    model_desc = ""
    try:
        from srkit.model_file import load_model

        loaded = load_model(opts.model)
        net, desc = loaded.net, loaded.descriptor
        model_desc = f"{opts.model} (trained)"
    except Exception:  # noqa: BLE001 - no trained model installed: a random-weight backbone
        from srkit import archs

        torch.manual_seed(0)
        net = archs.build(opts.arch, scale=4)
        desc = archs.describe(opts.arch, scale=4)
        model_desc = f"{opts.arch} x4, random weights"

    if opts.image.exists():
        img = read_image(opts.image)
        source = f"{opts.image.name} {img.shape[1]}x{img.shape[0]}"
    else:
        img = (np.random.default_rng(0).random((1356, 2040, 3)) * 255).astype(np.uint8)
        source = "random 2040x1356"
    if opts.crop:
        w, h = (int(v) for v in opts.crop.lower().split("x"))
        from srkit.data.resize import imresize

        # a smaller input made like a DIV2K LR file: MATLAB bicubic of the whole image
        img = imresize(img, size=(h, w))
        source += f" -> bicubic {w}x{h}"

    kind, _, arg = opts.config.partition(":")
    if kind == "untiled":
        up = Upscaler(net, desc, device="cpu", tile=0)
    elif kind == "tiled":
        up = Upscaler(net, desc, device="cpu", max_memory=parse_memory(arg))
    elif kind == "tile":
        up = Upscaler(net, desc, device="cpu", tile=int(arg))
    else:
        raise SystemExit(f"unknown config {opts.config}")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0, c0 = time.perf_counter(), time.process_time()
    out = up.upscale(img, scale=4)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if opts.save:
        np.save(opts.save, out)
    bpp = next(iter(up._bpp_cache.values()), None)
    print(json.dumps({
        "config": opts.config, "model": model_desc, "input": source,
        "lr": f"{img.shape[1]}x{img.shape[0]}", "sr": f"{out.shape[1]}x{out.shape[0]}",
        "tile": up.last_tile, "overlap": up.overlap, "bytes_per_lr_pixel": bpp,
        "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "peak_rss_mib": round(peak / 2**20),
        "rss_before_mib": round(rss_before / 2**20),
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--crop", default=None, metavar="WxH", help="bicubic-resize the input to this size first")
    ap.add_argument("--model", default="srkit-default")
    ap.add_argument("--arch", default="edsr_baseline")
    ap.add_argument("--configs", default="tiled:1GB,untiled", help="comma-separated configurations")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.worker:
        opts.config = opts.worker
        _worker(opts)
        return

    import numpy as np

    rows, saved = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(opts.configs.split(",")):
            save = os.path.join(tmp, f"{i}.npy")
            cmd = [sys.executable, __file__, "--worker", cfg, "--image", str(opts.image), "--model", opts.model,
                   "--arch", opts.arch, "--threads", str(opts.threads), "--save", save]
            if opts.crop:
                cmd += ["--crop", opts.crop]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                rows.append({"config": cfg, "error": (proc.stderr.strip().splitlines() or ["?"])[-1],
                             "returncode": proc.returncode})
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            saved.append((cfg, save))
        for r in rows:
            print(json.dumps(r))
        if len(saved) >= 2:
            a = np.load(saved[0][1]).astype(np.int16)
            for cfg, path in saved[1:]:
                d = np.abs(np.load(path).astype(np.int16) - a)
                print(f"max |{saved[0][0]} - {cfg}| = {int(d.max())} (uint8 levels), "
                      f"pixels differing: {float((d > 0).mean()) * 100:.4f} %")
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, torch threads {opts.threads}, python {platform.python_version()}")


if __name__ == "__main__":
    main()
