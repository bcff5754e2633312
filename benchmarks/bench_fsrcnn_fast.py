"""CPU time of an FSRCNN model as built (transposed-conv tail) against the copy the Upscaler runs on CPU
(sub-pixel tail, channels-last; ``Upscaler._infer_net``), on one image, untiled; also their largest difference.

    python benchmarks/bench_fsrcnn_fast.py --model fsrcnn-o-x4 --image ../shared/data/benchmark/BSD100/HR/101085.png
"""

from __future__ import annotations

import argparse
import time

import torch


def best_ms(fn, runs: int) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1000 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fsrcnn-o-x4", help="zoo name or model file of an FSRCNN model")
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from srkit.data.io import read_image, to_tensor
    from srkit.inference import load

    up = load(args.model, device="cpu", tile=0)
    x = to_tensor(read_image(args.image, mode="rgb"))
    fast = up._infer_net()
    with torch.inference_mode():
        t_plain = best_ms(lambda: up.net(x), args.runs)
        t_fast = best_ms(lambda: fast(x), args.runs)
        diff = float((fast(x) - up.net(x)).abs().max())
    print(f"{args.model} on {args.image} ({x.shape[-1]}x{x.shape[-2]}), {args.threads} threads, best of {args.runs}: "
          f"as built {t_plain:.1f} ms, Upscaler's CPU copy {t_fast:.1f} ms ({t_plain / t_fast:.2f}x), "
          f"max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
