"""LIIF at in- and out-of-distribution scales, next to bicubic, the way the paper evaluates it.

For a LIIF model file (``--model``), scores:

* Set5, Set14, BSD100 at x2, x3, x4 (the shipped MATLAB-bicubic LR files, as LIIF's paired test sets) and
  x6, x8 (LR made from HR, LIIF's ``sr-implicit-downsampled`` protocol), preset ``benchmark`` (Y, crop s);
* the 12 shared DIV2K validation images at x12, x18, x24, x30 (LR made from HR), preset ``div2k``
  (RGB, crop s + 6), as the paper's Table 1 (which uses all 100 DIV2K validation images).

Bicubic (MATLAB bicubic upsampling of the same LR images) is scored on exactly the same pairs. The LR made from
HR uses Pillow bicubic by default, exactly as the official test (``--downsample matlab`` for srkit's MATLAB
resize). The markdown table goes to stdout and, with ``--out``, to a file.

    .venv/bin/python benchmarks/bench_liif_scales.py --model /tmp/zoo/liif_edsr_baseline.safetensors \\
        --limit BSD100=20 --out benchmarks/results/bench_liif_scales.md

``--limit SET=N`` scores the first N images of a set (sorted by name); the table says so. On a 2-core CPU the
EDSR-baseline-LIIF costs about 50 us per output pixel: all of BSD100 at five scales is about an hour, the 12
DIV2K images at x12-x30 (2.8 M output pixels each per scale) about two hours.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time

BENCH_SETS = ("Set5", "Set14", "BSD100")
BENCH_SCALES = (2, 3, 4, 6, 8)
DIV2K_SCALES = (12, 18, 24, 30)
PAPER_IN_DIST = (2, 3, 4)  # scales with shipped LR files (paired evaluation in the paper)


def _limits(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--limit takes SET=N with N >= 1, got {item!r}")
        out[name.lower()] = int(n)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="LIIF model file (srkit .safetensors) or zoo name")
    ap.add_argument("--sets", nargs="*", default=list(BENCH_SETS), help="benchmark sets (preset benchmark)")
    ap.add_argument("--scales", nargs="*", type=float, default=list(BENCH_SCALES), help="scales for --sets")
    ap.add_argument("--div2k-scales", nargs="*", type=float, default=list(DIV2K_SCALES),
                    help="scales on the DIV2K images (preset div2k); none to skip")
    ap.add_argument("--downsample", choices=["pil", "matlab"], default="pil",
                    help="how LR is made from HR beyond the shipped LR files (default pil, as the official test)")
    ap.add_argument("--limit", nargs="*", default=[], metavar="SET=N", help="first N images of a set only")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the markdown to this file")
    args = ap.parse_args(argv)

    import torch

    from srkit.evaluate import evaluate
    from srkit.inference import load

    torch.set_num_threads(args.threads)
    limits = _limits(args.limit)
    up = load(args.model, device=args.device)
    jobs = [(s, sc, "benchmark") for s in args.sets for sc in args.scales]
    jobs += [("DIV2K", sc, "div2k") for sc in args.div2k_scales]
    results: dict[tuple[str, float], dict] = {}
    t_start = time.time()
    for data, scale, preset in jobs:
        scale = int(scale) if float(scale).is_integer() else scale
        paired = data != "DIV2K" and scale in PAPER_IN_DIST
        lr_from_hr = False if paired else args.downsample
        limit = limits.get(data.lower())
        t0 = time.time()
        model = evaluate(up, data, scale, preset=preset, progress=False, lr_from_hr=lr_from_hr, limit=limit)
        t_model = time.time() - t0
        bic = evaluate("bicubic", data, scale, preset=preset, progress=False, lr_from_hr=lr_from_hr, limit=limit)
        results[(data, scale)] = {"liif": model.psnr, "liif_ssim": model.ssim, "bicubic": bic.psnr,
                                  "n": len(model.images), "seconds": t_model,
                                  "lr": "LR files" if paired else f"from HR ({args.downsample})"}
        r = results[(data, scale)]
        print(f"{data:>7} x{scale:<4} {preset:>9} {r['lr']:>15}  LIIF {r['liif']:.2f} dB  bicubic {r['bicubic']:.2f} dB "
              f"({r['n']} images, {t_model:.0f} s)", file=sys.stderr, flush=True)

    md = _markdown(args, results, limits, time.time() - t_start)
    print(md)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    return 0


def _markdown(args, results, limits, seconds) -> str:
    import torch

    lines = ["# LIIF at in- and out-of-distribution scales (PSNR dB, LIIF / bicubic)", ""]
    cmd = "python benchmarks/bench_liif_scales.py " + " ".join(sys.argv[1:])
    lines += [f"Command: `{cmd}`", "",
              f"Model: `{args.model}`. Machine: {platform.machine()} CPU ({args.device}, {args.threads} threads), "
              f"torch {torch.__version__}. Date: {datetime.date.today().isoformat()}. Total time {seconds / 60:.1f} min.",
              "",
              f"Benchmark sets: preset `benchmark` (Y, crop s); x2-x4 from the shipped MATLAB-bicubic LR files, larger "
              f"scales with LR made from HR ({args.downsample} bicubic, HR cropped to round(floor(H/s)*s)). "
              "DIV2K: the 12 shared validation images, preset `div2k` (RGB, crop s + 6), LR made from HR "
              f"({args.downsample}). SR quantised to uint8 before PSNR.", ""]
    sets = list(dict.fromkeys(d for d, _ in results))
    for group in (["DIV2K"], [s for s in sets if s != "DIV2K"]):
        rows = [s for s in sets if s in group]
        if not rows:
            continue
        scales = sorted({sc for d, sc in results if d in rows})
        lines.append("| set (images) | " + " | ".join(f"x{sc:g}" + ("*" if rows != ["DIV2K"] and sc not in PAPER_IN_DIST
                                                                      or rows == ["DIV2K"] else "")
                                                         for sc in scales) + " |")
        lines.append("|---|" + "---|" * len(scales))
        for d in rows:
            n = max(results[(d, sc)]["n"] for sc in scales if (d, sc) in results)
            lim = f", first {limits[d.lower()]}" if d.lower() in limits else ""
            cells = []
            for sc in scales:
                r = results.get((d, sc))
                cells.append("-" if r is None else f"{r['liif']:.2f} / {r['bicubic']:.2f}")
            lines.append(f"| {d} ({n}{lim}) | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["`*`: LR made from HR (out-of-distribution protocol of the paper).", "",
              "Time for the LIIF model per set and scale (s): " +
              ", ".join(f"{d} x{sc:g} {r['seconds']:.0f}" for (d, sc), r in results.items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
