"""Time and peak memory of one LAM (50 blur-path steps) of a 256x256 HR image with EDSR-baseline x4.

Each configuration runs in a fresh subprocess: the model is built (random weights, seed 0; the cost does
not depend on the weights), one no-grad forward warms up, the peak-RSS counter is reset, then one LAM is
timed. Reported: wall and CPU time (CPU time is the steadier figure on a shared machine), the peak RSS
during the LAM, and its increase over the RSS before it.

    .venv/bin/python benchmarks/bench_lam.py                       # sequential, auto, all 50 at once
    .venv/bin/python benchmarks/bench_lam.py --modes 1 auto --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(mode: str, threads: int, device: str) -> dict:
    import time

    import numpy as np
    import torch

    from srkit import archs
    from srkit.explain import lam as L

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = archs.build("edsr_baseline", scale=4).eval().to(device)
    yy, xx = np.mgrid[0:256, 0:256]
    hr = (127 + 100 * np.sin(xx / 3.0 + yy / 7.0))[..., None] + np.random.default_rng(0).normal(0, 8, (256, 256, 3))
    hr, lr = L.prepare_images(hr.clip(0, 255).astype(np.uint8), 4)
    x = torch.from_numpy(lr.transpose(2, 0, 1).copy()).float().div(255).unsqueeze(0).to(device)
    with torch.no_grad():
        net(x)
    batch = None if mode == "auto" else int(mode)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS
        f.write("5")
    before = _rss_kib("VmRSS")
    t, cpu = time.perf_counter(), time.process_time()
    res = L.lam(net, x, (110, 150, 16), batch_size=batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = _rss_kib("VmHWM")
    out = {"mode": mode, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": peak / 1024,
           "extra_rss_mib": (peak - before) / 1024,
           "di": res.di, "batch": res.batch_size, "attr_sum": float(res.attribution.double().sum())}
    if device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", nargs="+", default=["1", "auto", "50"],
                    help="batch sizes ('1' = 50 sequential passes, 'auto' = from the 1 GiB default budget)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.threads, args.device)))
        return
    import torch

    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    print("| steps per pass | passes | wall (s) | CPU (s) | peak RSS (MiB) | RSS added by LAM (MiB) | DI |")
    print("|---|---|---|---|---|---|---|")
    for mode in args.modes:
        cmd = [sys.executable, __file__, "--child", mode, "--threads", str(args.threads), "--device", args.device]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        passes = str(-(-50 // r["batch"]))
        mode = f"auto ({r['batch']})" if mode == "auto" else mode
        extra = f" (CUDA peak {r['peak_cuda_mib']:.0f} MiB)" if "peak_cuda_mib" in r else ""
        print(f"| {mode} | {passes} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_mib']:.0f} "
              f"| {r['extra_rss_mib']:.0f}{extra} "
              f"| {r['di']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
