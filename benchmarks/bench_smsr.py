"""CPU wall-clock of SMSR's sparse inference versus the same network run densely, and the FLOPs saving.

For every image of each set, in one process and alternating so that load from other jobs hits all of them
alike, times one forward pass (batch 1, ``torch.inference_mode``) of:

* ``sparse``: srkit's sparse path (default on CPU): per module the ``gather``, ``strip`` or ``split`` kernel,
  picked by the module's active-pixel share (see ``srkit.archs.smsr``);
* ``unmasked``: the same network with every channel dense and every pixel computed (100 % of the FLOPs;
  the "no trick" baseline; its output is not SMSR's);
* optionally ``split``, ``gather``, ``strip`` (one kernel for every module) or ``dense``.

Each path runs ``--rounds`` times per image (after one warm-up pass on the first image); the minimum per
image is kept (wall clock; the process's CPU time, summed over its threads, is reported beside it as a
cross-check that is less sensitive to other jobs on a shared machine). FLOPs come from ``SMSR.mask_flops`` (2 x MACs). Goal: measured saving
``1 - t_sparse / t_unmasked`` >= half the FLOPs saving ``1 - flops / dense_flops``. The load average is
printed before and after each set (the machine is shared).

    python benchmarks/bench_smsr.py --weights /tmp/smsr_off/smsr_x2.safetensors --sets Set5 BSD100 --threads 2

``--weights`` takes an srkit model file (.safetensors) or an official checkpoint (converted on the fly);
the scale is the model's.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone

import numpy as np
import torch


def load_net(weights: str | None):
    """The SMSR network of ``weights`` (srkit model file or official checkpoint); random x2 weights if None."""
    from srkit.archs.smsr import SMSR

    if not weights:
        return SMSR(2).eval()
    if weights.endswith(".safetensors"):
        from srkit.model_file import load_model

        return load_model(weights).net.eval()
    from srkit.convert.common import convert_checkpoint

    return convert_checkpoint(weights, "smsr").net.eval()


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="SMSR model file or official checkpoint; random x2 weights if absent")
    ap.add_argument("--sets", nargs="+", default=["Set5", "BSD100"])
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (0 = all)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", nargs="+", default=["sparse", "unmasked"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from srkit.data.io import read_image, to_tensor
    from srkit.data.sets import resolve_pairs

    net = load_net(args.weights)
    scale = net.scale
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, x{scale}, weights: {args.weights or 'random'}, rounds {args.rounds}")
    for name in args.sets:
        pairs = resolve_pairs(name, scale)
        if args.limit:
            pairs = pairs[: args.limit]
        print(f"{name}: load average before {load_average()}", flush=True)
        tot = {p: 0.0 for p in args.paths}
        tot_cpu = {p: 0.0 for p in args.paths}
        flops = dense_flops = 0
        kernels: dict[str, int] = {}
        warm = False
        for pair in pairs:
            if pair.lr_path is None:
                raise SystemExit(f"{name}: no LR file for {pair.name}")
            x = to_tensor(read_image(pair.lr_path, mode="rgb"))
            f = net.mask_flops(x)
            flops += f["total"]
            dense_flops += f["dense_total"]
            best = {p: float("inf") for p in args.paths}
            cpu = {p: float("inf") for p in args.paths}
            used = ""
            with torch.inference_mode():
                if not warm:
                    for p in args.paths:
                        net(x, path=p)
                    warm = True
                for _ in range(args.rounds):
                    for p in args.paths:
                        c0, t0 = time.process_time(), time.perf_counter()
                        net(x, path=p)
                        best[p] = min(best[p], time.perf_counter() - t0)
                        cpu[p] = min(cpu[p], time.process_time() - c0)
                        if p == "sparse":
                            used = "/".join(m.last_kernel for m in net.body)
            for k in used.split("/") if used else []:
                kernels[k] = kernels.get(k, 0) + 1
            for p in args.paths:
                tot[p] += best[p]
                tot_cpu[p] += cpu[p]
            active = "/".join(f"{100 * b['spatial_density']:.0f}" for b in f["blocks"])
            print(f"  {name}/{pair.name} {x.shape[-1]}x{x.shape[-2]}: FLOPs {f['ratio']:.1%} active% {active} "
                  + " ".join(f"{p} {best[p]:.3f}s" for p in args.paths) + (f" ({used})" if used else ""),
                  flush=True)
        flops_saving = 1 - flops / dense_flops
        line = f"{name} ({len(pairs)} images): FLOPs {flops / 1e9:.1f}G of {dense_flops / 1e9:.1f}G " \
               f"(saving {flops_saving:.1%}); " + ", ".join(f"{p} {tot[p]:.2f}s" for p in args.paths)
        if "sparse" in tot and "unmasked" in tot:
            saving = 1 - tot["sparse"] / tot["unmasked"]
            line += f"; measured saving sparse vs unmasked {saving:.1%} = {saving / flops_saving:.2f} of the FLOPs saving"
        line += "; CPU time " + ", ".join(f"{p} {tot_cpu[p]:.2f}s" for p in args.paths)
        if "sparse" in tot and "unmasked" in tot:
            saving = 1 - tot_cpu["sparse"] / tot_cpu["unmasked"]
            line += f" (saving {saving:.1%} = {saving / flops_saving:.2f})"
        if kernels:
            line += "; modules: " + ", ".join(f"{k} {v}" for k, v in sorted(kernels.items()))
        print(line, flush=True)
        print(f"{name}: load average after {load_average()}", flush=True)


if __name__ == "__main__":
    main()
