"""ClassSR-FSRCNN routing speed versus FSRCNN-O on the shared DIV2K images at x4 (CPU).

What is timed, per LR image (MATLAB bicubic x4 of the DIV2K HR image, about 510x339):

* ``whole``: FSRCNN-O (d = 56, ClassSR's branch 3) on the whole image, no patches, as srkit's ``fsrcnn`` runs.
* ``whole-fast``: the same with its x4 transposed conv rewritten as conv + pixel shuffle
  (``classsr_routing.accelerated``), which the routed path uses for FSRCNN branches: the fair baseline.
* ``grid-O``: FSRCNN-O on the ClassSR patch grid (32x32 LR patches, stride 28, whole image covered), every
  patch through branch 3, batched: the paper's FSRCNN-O protocol, the FLOPs baseline.
* ``routed`` at forced class shares (simple/medium/hard): srkit's batched routing, classifier included.
* ``per-patch``: the official execution (each patch alone through its branch), at the first share setting.

The weights are random (seed 0): timings do not depend on them, and the routes are forced to the given
shares, so this measures speed only; no PSNR is claimed. Forced routes skip the Class-Module: times and FLOPs
are the branches' alone. FLOPs: true counts (srkit.profile, 2 x MACs) and the official per-patch constants
(cal_FLOPs), both relative to FSRCNN-O (= branch 3) on the same grid.

    python benchmarks/bench_classsr.py --images 3 --runs 3 --threads 2

With ``--classsr MODEL --baseline MODEL`` (trained srkit model files of ClassSR-FSRCNN and FSRCNN-O) it measures
the trained pair instead, on all 12 images by default: PSNR of each (``classsr`` preset: RGB, crop 4, 8-bit
output; ClassSR covering the whole image with its learned routes, FSRCNN-O on the whole image), the routes'
FLOPs relative to FSRCNN-O on the same patch grid (true counts and the official constants), and wall-clock:
ClassSR routed (classifier included) against FSRCNN-O on the same grid (grid-O) and on the whole image.

    python benchmarks/bench_classsr.py --classsr classsr.safetensors --baseline fsrcnn_o.safetensors --runs 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


CLOCK = time.perf_counter


def timed(fn, runs: int) -> float:
    """Median seconds of ``runs`` calls after one warm-up, on :data:`CLOCK` (wall, or process CPU time)."""
    fn()
    ts = []
    for _ in range(runs):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return statistics.median(ts)


def lr_pair(hr):
    """(HR cropped to a multiple of 4, its MATLAB bicubic x4 LR as a (1, 3, h, w) float tensor in [0, 1])."""
    import torch

    from srkit.data.resize import imresize

    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    return hr, torch.from_numpy(imresize(hr, scale=0.25)).permute(2, 0, 1)[None].float() / 255


def to8(t):
    """(1, 3, H, W) [0, 1] tensor -> uint8 HWC array."""
    return (t[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=3, help="how many of the 12 DIV2K images (default 3)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement; the median is kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64, help="patches per branch call")
    ap.add_argument("--shares", default="0.56/0.20/0.24,1/0/0,0.34/0.33/0.33,0/0/1",
                    help="comma-separated simple/medium/hard shares to force")
    ap.add_argument("--no-per-patch", action="store_true", help="skip the (slow) official per-patch timing")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time (all threads) instead of wall time: steadier on a busy machine")
    ap.add_argument("--classsr", help="trained ClassSR model file (with --baseline: the trained-pair benchmark)")
    ap.add_argument("--baseline", help="trained FSRCNN-O model file")
    ap.add_argument("--hard-bias", type=float, default=0.0,
                    help="trained pair: ClassSR.hard_bias (added to the hard-class logit; 0 = the paper's argmax)")
    ap.add_argument("--calibrate-on", metavar="SET",
                    help="trained pair: choose hard_bias on this benchmark set (e.g. BSD100; never the test images) "
                         "as the smallest value in steps of 0.1 whose mean PSNR is within --target-gap dB of "
                         "FSRCNN-O on whole images")
    ap.add_argument("--target-gap", type=float, default=0.05, help="PSNR gap for --calibrate-on (dB)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter

    import torch

    from srkit import archs
    from srkit.data.io import read_image
    from srkit.data.sets import data_root, list_images
    from srkit.inference.classsr_routing import (accelerated, flops_report, forced_classes, official_patch_flops,
                                                 routed_upscale, true_patch_flops)

    torch.set_num_threads(args.threads)
    if args.classsr or args.baseline:
        if not (args.classsr and args.baseline):
            ap.error("--classsr and --baseline go together")
        trained_pair(args)
        return
    torch.manual_seed(0)
    net = archs.build("classsr", backbone="fsrcnn").eval()
    net.batch_size = args.batch
    fast3 = accelerated(net.net3)
    shares = [tuple(float(v) for v in s.split("/")) for s in args.shares.split(",")]
    files = list_images(data_root() / "div2k" / "HR")[: args.images]
    rows = []
    totals: dict[str, float] = {}
    for f in files:
        hr = read_image(f)
        _, lr = lr_pair(hr)
        with torch.inference_mode():
            _, routing = routed_upscale(net, lr)
            n = routing.classes.numel()
            t_whole = timed(lambda: net.net3(lr), args.runs)
            t_fast = timed(lambda: fast3(lr), args.runs)
            all3 = torch.full((n,), 2, dtype=torch.long)
            t_grid = timed(lambda: routed_upscale(net, lr, classes=all3), args.runs)
            res = {"image": f.stem, "lr": f"{lr.shape[-1]}x{lr.shape[-2]}", "patches": n, "whole": t_whole,
                   "whole_fast": t_fast, "grid": t_grid}
            # Forced routes skip the Class-Module, so time and FLOPs here are the branches' alone, each over
            # branch 3 (= FSRCNN-O) on the same grid.
            tru, off = true_patch_flops(net), official_patch_flops(net)
            for sh in shares:
                cls = forced_classes(n, sh)
                t = timed(lambda: routed_upscale(net, lr, classes=cls), args.runs)
                r = type(routing)(routing.positions, cls[None], routing.image_size, routing.covered, 32, 28, 4)
                rep = flops_report(net, r)
                res[sh] = (t, (rep["true_flops_per_patch"] - tru[3]) / tru[2],
                           (rep["official_flops_per_patch"] - off[3]) / off[2])
            if not args.no_per_patch and f == files[0]:
                cls = forced_classes(n, shares[0])
                res["per_patch"] = timed(lambda: routed_upscale(net, lr, classes=cls, per_patch=True), 1)
        rows.append(res)
        for k in ("whole", "whole_fast", "grid"):
            totals[k] = totals.get(k, 0.0) + res[k]
        for sh in shares:
            totals[str(sh)] = totals.get(str(sh), 0.0) + res[sh][0]
        print(f"{res['image']} {res['lr']} {n} patches: whole {t_whole:.3f}s, whole-fast {t_fast:.3f}s, "
              f"grid-O {t_grid:.3f}s, "
              + ", ".join(f"{'/'.join(f'{v:g}' for v in sh)} {res[sh][0]:.3f}s" for sh in shares)
              + (f", per-patch {res['per_patch']:.3f}s" if "per_patch" in res else ""), flush=True)

    print()
    print("| shares simple/medium/hard | true FLOPs vs FSRCNN-O | official FLOPs vs FSRCNN-O | "
          "time vs grid-O | time vs whole-image FSRCNN-O | time vs whole-fast |")
    print("|---|---|---|---|---|---|")
    for sh in shares:
        tf = statistics.mean(r[sh][1] for r in rows)
        of = statistics.mean(r[sh][2] for r in rows)
        t = totals[str(sh)]
        print(f"| {'/'.join(f'{v:g}' for v in sh)} | {tf:.1%} | {of:.1%} | {t / totals['grid']:.1%} | "
              f"{t / totals['whole']:.1%} | {t / totals['whole_fast']:.1%} |")
    print(f"\nclock: {'process CPU time' if args.cpu_time else 'wall'}, {args.threads} thread(s), batch {args.batch}")
    print(f"sum over {len(rows)} images: whole-image FSRCNN-O {totals['whole']:.2f}s, whole-fast "
          f"{totals['whole_fast']:.2f}s, grid-O {totals['grid']:.2f}s")
    if "per_patch" in rows[0]:
        sh = shares[0]
        print(f"{rows[0]['image']}: official per-patch execution {rows[0]['per_patch']:.2f}s vs batched "
              f"{rows[0][sh][0]:.2f}s at shares {'/'.join(f'{v:g}' for v in sh)}")


def trained_pair(args) -> None:
    import torch

    from srkit.data.io import read_image
    from srkit.data.sets import data_root, list_images
    from srkit.inference.classsr_routing import accelerated, flops_report, routed_upscale
    from srkit.metrics.presets import evaluate_pair
    from srkit.model_file import load_model

    net = load_model(args.classsr).net.eval()
    net.batch_size = args.batch
    base = load_model(args.baseline).net.eval()
    # FSRCNN-O on ClassSR's patch grid (for its PSNR): a copy of the ClassSR network whose branch 3 is FSRCNN-O
    grid_o = copy.deepcopy(net)
    grid_o.net3.load_state_dict(base.state_dict())
    if args.calibrate_on:
        net.hard_bias = calibrate_hard_bias(net, base, args.calibrate_on, args.target_gap)
    else:
        net.hard_bias = args.hard_bias
    # the fairest whole-image baseline: the same transposed-conv rewrite and channels-last layout as the
    # routed path uses on CPU (channels-last halves FSRCNN-O's whole-image time here)
    base_fast = accelerated(base).to(memory_format=torch.channels_last)
    n_images = 12 if args.images == 3 else args.images  # the trained pair defaults to all 12
    files = list_images(data_root() / "div2k" / "HR")[:n_images]

    rows = []
    for f in files:
        hr, lr = lr_pair(read_image(f))
        lr_cl = lr.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            sr_c, routing = routed_upscale(net, lr)
            sr_o = base_fast(lr_cl)
            n = routing.classes.numel()
            all3 = torch.full((n,), 2, dtype=torch.long)
            sr_g, _ = routed_upscale(grid_o, lr, classes=all3)
            rep = flops_report(net, routing)  # its percentages: branches + Class-Module over branch 3 alone
            t_c = timed(lambda: routed_upscale(net, lr), args.runs)
            t_grid = timed(lambda: routed_upscale(net, lr, classes=all3), args.runs)
            t_whole = timed(lambda: base_fast(lr_cl), args.runs)
        p_c = evaluate_pair(to8(sr_c), hr, 4, "classsr")[0]
        p_o = evaluate_pair(to8(sr_o), hr, 4, "classsr")[0]
        p_g = evaluate_pair(to8(sr_g), hr, 4, "classsr")[0]
        row = {"image": f.stem, "patches": n, "shares": rep["shares"], "psnr_classsr": p_c, "psnr_o": p_o,
               "psnr_grid_o": p_g,
               "true_ratio": rep["true_percent"] / 100, "official_ratio": rep["official_percent"] / 100,
               "t_classsr": t_c, "t_grid": t_grid, "t_whole": t_whole}
        rows.append(row)
        print(f"{f.stem}: {n} patches, shares {'/'.join(f'{v:.2f}' for v in rep['shares'])}, PSNR ClassSR "
              f"{p_c:.3f} vs FSRCNN-O {p_o:.3f} dB, true FLOPs {row['true_ratio']:.1%}, time ClassSR {t_c:.3f}s, "
              f"grid-O {t_grid:.3f}s, whole-O {t_whole:.3f}s", flush=True)

    mean = lambda k: statistics.mean(r[k] for r in rows)  # noqa: E731
    tot = lambda k: sum(r[k] for r in rows)  # noqa: E731
    shares = [statistics.mean(r["shares"][i] for r in rows) for i in range(3)]
    patches = tot("patches")
    true_ratio = sum(r["true_ratio"] * r["patches"] for r in rows) / patches
    official_ratio = sum(r["official_ratio"] * r["patches"] for r in rows) / patches
    print()
    print("| | FSRCNN-O | ClassSR-FSRCNN | difference / ratio |")
    print("|---|---|---|---|")
    print(f"| PSNR (RGB, crop 4), mean of {len(rows)}, FSRCNN-O on whole images | {mean('psnr_o'):.3f} dB | "
          f"{mean('psnr_classsr'):.3f} dB | {mean('psnr_classsr') - mean('psnr_o'):+.3f} dB |")
    print(f"| PSNR, FSRCNN-O on the same patch grid | {mean('psnr_grid_o'):.3f} dB | {mean('psnr_classsr'):.3f} dB | "
          f"{mean('psnr_classsr') - mean('psnr_grid_o'):+.3f} dB |")
    print(f"| FLOPs per patch, true counts (srkit.profile; Class-Module included) | 100 % | {true_ratio:.1%} | "
          f"{true_ratio:.1%} |")
    print(f"| FLOPs per patch, official constants | 100 % | {official_ratio:.1%} | {official_ratio:.1%} |")
    print(f"| wall clock, same patch grid (sum) | {tot('t_grid'):.2f} s | {tot('t_classsr'):.2f} s | "
          f"{tot('t_classsr') / tot('t_grid'):.1%} |")
    print(f"| wall clock vs FSRCNN-O on the whole image (sum) | {tot('t_whole'):.2f} s | {tot('t_classsr'):.2f} s | "
          f"{tot('t_classsr') / tot('t_whole'):.1%} |")
    print(f"\npatch shares simple/medium/hard (mean over images): {'/'.join(f'{v:.3f}' for v in shares)}; "
          f"clock: {'process CPU time' if args.cpu_time else 'wall'}, {args.threads} thread(s), batch {args.batch}, "
          f"median of {args.runs} runs; ClassSR hard_bias {net.hard_bias:g}")


def calibrate_hard_bias(net, base, set_name: str, target_gap: float, max_bias: float = 3.0) -> float:
    """The smallest ``hard_bias`` in steps of 0.1 (up to ``max_bias``) at which ClassSR's mean PSNR on the
    benchmark set ``set_name`` (RGB HR images, LR = MATLAB bicubic x4, ``classsr`` preset) is within
    ``target_gap`` dB of FSRCNN-O on whole images; prints the sweep."""
    import numpy as np
    import torch

    from srkit.data.io import read_image
    from srkit.data.sets import data_root, list_images
    from srkit.inference.classsr_routing import accelerated, flops_report, routed_upscale
    from srkit.metrics.presets import evaluate_pair

    pairs = []
    for f in list_images(data_root() / "benchmark" / set_name / "HR"):
        hr = read_image(f)
        if hr.ndim != 3 or hr.shape[2] != 3:
            continue  # ClassSR is RGB: grey images are skipped
        pairs.append(lr_pair(hr))
    fast = accelerated(base)
    with torch.inference_mode():
        p_o = float(np.mean([evaluate_pair(to8(fast(lr)), hr, 4, "classsr")[0] for hr, lr in pairs]))
        bias = 0.0
        while True:
            net.hard_bias = bias
            ps, true, patches = [], 0.0, 0
            for hr, lr in pairs:
                sr, routing = routed_upscale(net, lr)
                ps.append(evaluate_pair(to8(sr), hr, 4, "classsr")[0])
                rep = flops_report(net, routing)
                true += rep["true_percent"] * rep["patches"]
                patches += rep["patches"]
            gap = float(np.mean(ps)) - p_o
            print(f"calibration on {set_name} ({len(pairs)} RGB images): hard_bias {bias:.1f}: ClassSR "
                  f"{np.mean(ps):.3f} dB vs FSRCNN-O {p_o:.3f} dB ({gap:+.3f}), true FLOPs {true / patches:.1f} %",
                  flush=True)
            if gap >= -target_gap or bias >= max_bias - 1e-9:
                return bias
            bias = round(bias + 0.1, 1)


if __name__ == "__main__":
    main()
