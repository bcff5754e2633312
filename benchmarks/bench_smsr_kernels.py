"""Per-module CPU time of each SMSR sparse kernel relative to the unmasked module, on real masks.

For every sparse mask module of every image, runs the module's sparse-mask block with each kernel
(``igemm``, ``strip``, ``split``, ``gather``) and without masks (``unmasked``), alternating, and prints the minimum over
``--rounds`` of each, divided by the unmasked time, beside the module's active-pixel share p. This is how the
default thresholds between the strip or igemm kernel and the split kernel (``srkit.archs.smsr.STRIP_MAX_DENSITY``,
``IGEMM_MAX_DENSITY``) were chosen: the share at which each stops being faster than the split. ``igemm`` is
measured where the compiled kernel can be built (``srkit.archs.smsr.cpu_kernel``).

    python benchmarks/bench_smsr_kernels.py --weights /tmp/smsr_off/smsr_x2.safetensors --images 6
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_smsr import load_net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="SMSR model file or official checkpoint; random x2 weights if absent")
    ap.add_argument("--set", default="BSD100")
    ap.add_argument("--images", type=int, default=6, help="first N images of the set")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kernels", nargs="+", help="default: igemm (where it builds), strip, split, gather")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from srkit.data.io import read_image, to_tensor
    from srkit.data.sets import resolve_pairs

    net = load_net(args.weights)
    pairs = resolve_pairs(args.set, net.scale)[: args.images]
    from srkit.archs.smsr import cpu_kernel

    if not args.kernels:
        args.kernels = (["igemm"] if cpu_kernel() else []) + ["strip", "split", "gather"]
    kernels = {"gather": "forward_sparse", "strip": "forward_strip", "split": "forward_split",
               "igemm": "forward_igemm"}
    print(f"{args.set} x{net.scale}, {torch.get_num_threads()} threads, weights: {args.weights or 'random'}; "
          "time of each kernel / unmasked module (minimum of the rounds)")
    with torch.inference_mode():
        for pair in pairs:
            lr = to_tensor(read_image(pair.lr_path, mode="rgb"))
            x, _, _ = net._pad_even(lr)
            fea = net.head(net.sub_mean(x * net.img_range).contiguous(memory_format=torch.channels_last))
            for k, m in enumerate(net.body):
                spa = m.hard_spatial_mask(fea)
                runs = {"unmasked": lambda: m.body.forward_unmasked(fea)}
                for name in args.kernels:
                    runs[name] = lambda f=getattr(m.body, kernels[name]): f(fea, spa)
                best = {name: float("inf") for name in runs}
                for f in runs.values():
                    f()
                for _ in range(args.rounds):
                    for name, f in runs.items():
                        t0 = time.perf_counter()
                        f()
                        best[name] = min(best[name], time.perf_counter() - t0)
                ratios = " ".join(f"{n} {best[n] / best['unmasked']:.3f}" for n in args.kernels)
                print(f"  {pair.name} module {k}: p {float(spa.mean()):.3f}  unmasked {best['unmasked'] * 1e3:.1f} ms  "
                      f"{ratios}", flush=True)
                fea = m.forward_eval(fea, "sparse", spa)


if __name__ == "__main__":
    main()
