"""CPU wall-clock of SMSR's sparse inference versus the same network run densely, and the FLOPs saving.

For every image of each set, in one process and alternating so that load from other jobs hits all of them
alike, times one forward pass (x2, batch 1, ``torch.inference_mode``) of:

* ``sparse``: srkit's sparse path (gathered active pixels, compact sparse channels; default on CPU);
* ``unmasked``: the same network with every channel dense and every pixel computed (100 % of the FLOPs;
  the "no trick" baseline; its output is not SMSR's);
* ``split``: hard masks evaluated with dense convolutions at unmasked cost (srkit's exact dense path).

Each path runs ``--rounds`` times per image (after one warm-up pass on the first image); the minimum per
image is kept. FLOPs come from ``SMSR.mask_flops`` (2 x MACs). Goal: measured saving
``1 - t_sparse / t_unmasked`` >= half the FLOPs saving ``1 - flops / dense_flops``.

    python benchmarks/bench_smsr.py --weights /tmp/model_1000.pt --sets Set5 BSD100 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def load_net(weights: str | None):
    from srkit.archs.smsr import SMSR

    net = SMSR(2)
    if weights:
        from srkit.convert.common import canonicalize, read_checkpoint

        state, _ = canonicalize(read_checkpoint(weights))
        net.load_state_dict(state)
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="official SMSR x2 checkpoint (model_1000.pt); random weights if absent")
    ap.add_argument("--sets", nargs="+", default=["Set5", "BSD100"])
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (0 = all)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", nargs="+", default=["sparse", "unmasked", "split"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from srkit.data.io import read_image
    from srkit.data.sets import resolve_pairs

    net = load_net(args.weights)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, weights: {args.weights or 'random'}")
    for name in args.sets:
        pairs = resolve_pairs(name, 2)
        if args.limit:
            pairs = pairs[: args.limit]
        tot = {p: 0.0 for p in args.paths}
        flops = dense_flops = 0
        warm = False
        for pair in pairs:
            if pair.lr_path is None:
                raise SystemExit(f"{name}: no LR file for {pair.name}")
            img = np.asarray(read_image(pair.lr_path, mode="rgb"))
            x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float()
            x = x / 255.0 if img.dtype == np.uint8 else x
            f = net.mask_flops(x)
            flops += f["total"]
            dense_flops += f["dense_total"]
            best = {p: float("inf") for p in args.paths}
            with torch.inference_mode():
                if not warm:
                    for p in args.paths:
                        net(x, path=p)
                    warm = True
                for _ in range(args.rounds):
                    for p in args.paths:
                        t0 = time.perf_counter()
                        net(x, path=p)
                        best[p] = min(best[p], time.perf_counter() - t0)
            for p in args.paths:
                tot[p] += best[p]
            print(f"  {name}/{pair.name} {x.shape[-1]}x{x.shape[-2]}: FLOPs {f['ratio']:.1%} "
                  + " ".join(f"{p} {best[p]:.3f}s" for p in args.paths), flush=True)
        flops_saving = 1 - flops / dense_flops
        line = f"{name} ({len(pairs)} images): FLOPs {flops / 1e9:.1f}G of {dense_flops / 1e9:.1f}G " \
               f"(saving {flops_saving:.1%}); " + ", ".join(f"{p} {tot[p]:.2f}s" for p in args.paths)
        if "sparse" in tot and "unmasked" in tot:
            saving = 1 - tot["sparse"] / tot["unmasked"]
            line += f"; measured saving sparse vs unmasked {saving:.1%} = {saving / flops_saving:.2f} of the FLOPs saving"
        print(line, flush=True)


if __name__ == "__main__":
    main()
