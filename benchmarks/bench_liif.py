"""LIIF speed and memory: time per output pixel and peak RSS, fast query path vs the reference (official) one.

EDSR-baseline-LIIF with random weights (speed does not depend on the values). Each (case, path) runs in its
own subprocess so that its peak RSS (``ru_maxrss``) is its own. The reference path on the large cases would
take many minutes, so by default it is timed on the first ``--ref-max-pixels`` output pixels of the image
(same encoder, same per-pixel work, whole output tensor allocated) and marked "subset"; ``--fast-max-pixels``
does the same for the fast path. The reference path uses chunks of 30000 queries (the official eval_bsize).

    .venv/bin/python benchmarks/bench_liif.py                     # all cases, both paths
    .venv/bin/python benchmarks/bench_liif.py --cases 64x4 --paths fast --chunk-size 8192
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CASES = {  # name: (LR side, scale)
    "64x4": (64, 4),
    "64x12": (64, 12),
    "128x16": (128, 16),
    "128x30": (128, 30),
}


def run_one(case: str, path: str, threads: int, chunk_size: int | None, memory_budget: int | None,
            max_pixels: int, repeats: int) -> dict:
    import torch

    from srkit.archs.liif import LIIF

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    side, scale = CASES[case]
    model = LIIF("edsr_baseline").eval()
    lr = torch.rand(1, 3, side, side)
    size = side * scale
    reference = path == "reference"
    if chunk_size is None:
        chunk_size = 30000 if reference else model.chunk_size_for(memory_budget)  # 30000: official eval_bsize
    n = min(size * size, max_pixels)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), _cpu()
            if n == size * size:  # the public call
                model(lr, (size, size), reference=reference, chunk_size=chunk_size)
            else:
                # what forward does, with the whole output allocated, stopped after the first n pixels
                feat = model.encode(lr)
                latent = model._unfold(feat) if reference else model.precompute(feat)
                out = torch.zeros(1, 3, size, size)  # zeros: resident, as the finished output would be
                model._render(latent, out, 0, n, chunk_size, reference)
            times.append((time.perf_counter() - t0, _cpu() - c0))
    best, cpu = min(times)
    return {
        "case": case, "path": path, "lr": f"{side}x{side}", "out": f"{size}x{size}", "pixels": n,
        "subset": n < size * size, "seconds": best, "us_per_px": best / n * 1e6, "cpu_us_per_px": cpu / n * 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": threads,
        "chunk_size": chunk_size, "load_avg_1min": os.getloadavg()[0],
    }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--paths", nargs="+", default=["fast", "reference"], choices=["fast", "reference"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=None, help="queries per chunk (reference default 30000)")
    ap.add_argument("--memory-budget", type=int, default=None, help="bytes of query working memory (fast path)")
    ap.add_argument("--ref-max-pixels", type=int, default=262144,
                    help="reference path: time only the first N output pixels of larger images")
    ap.add_argument("--fast-max-pixels", type=int, default=None,
                    help="fast path: likewise (default: whole image)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        limit = args.ref_max_pixels if args.one[1] == "reference" else (args.fast_max_pixels or 1 << 62)
        res = run_one(args.one[0], args.one[1], args.threads, args.chunk_size, args.memory_budget, limit,
                      args.repeats)
        print(json.dumps(res))
        return
    rows = []
    for case in args.cases:
        for path in args.paths:
            cmd = [sys.executable, __file__, "--one", case, path, "--threads", str(args.threads),
                   "--ref-max-pixels", str(args.ref_max_pixels), "--repeats", str(args.repeats)]
            if args.fast_max_pixels:
                cmd += ["--fast-max-pixels", str(args.fast_max_pixels)]
            if args.chunk_size:
                cmd += ["--chunk-size", str(args.chunk_size)]
            if args.memory_budget:
                cmd += ["--memory-budget", str(args.memory_budget)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{r['case']:>7} {r['path']:>9} {r['out']:>10} {r['us_per_px']:8.2f} us/px "
                  f"(CPU {r['cpu_us_per_px']:7.2f} us/px, load {r['load_avg_1min']:.1f}) "
                  f"{r['seconds']:8.2f} s  peak RSS {r['peak_rss_mb']:7.0f} MB"
                  f"{'  (first ' + str(r['pixels']) + ' px timed)' if r['subset'] else ''}", flush=True)
    print("| case | LR | output | path | wall us / output px | CPU us / output px | wall time (s) | peak RSS (MB) "
          "| chunk | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sub = f" (first {r['pixels']} px)" if r["subset"] else ""
        print(f"| {r['case']} | {r['lr']} | {r['out']} | {r['path']}{sub} | {r['us_per_px']:.2f} | "
              f"{r['cpu_us_per_px']:.2f} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['chunk_size']} "
              f"| {r['load_avg_1min']:.1f} |")
    fast = {r["case"]: r for r in rows if r["path"] == "fast"}
    for r in rows:
        if r["path"] == "reference" and r["case"] in fast:
            f = fast[r["case"]]
            print(f"{r['case']}: fast path {r['us_per_px'] / f['us_per_px']:.2f}x faster per pixel (wall), "
                  f"{r['cpu_us_per_px'] / f['cpu_us_per_px']:.2f}x (CPU time)")


if __name__ == "__main__":
    main()
