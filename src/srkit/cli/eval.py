"""``srkit eval``: PSNR/SSIM of a model on a benchmark set under a named protocol."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a model on a benchmark set (PSNR/SSIM)",
        description="Score a model on a benchmark set with a named evaluation protocol.",
    )
    p.add_argument("--model", default=None, help="'bicubic', a zoo name or a model file (default: the default model)")
    p.add_argument("--data", required=True, help="named set (Set5, Set14, BSD100, Set5:symmetric, DIV2K) or a folder with HR/")
    p.add_argument("--scale", type=float, required=True,
                   help="upscaling factor (a whole number, unless --lr-from-hr)")
    p.add_argument("--preset", default="benchmark",
                   help="evaluation protocol (default: benchmark = Y, crop scale; div2k = RGB, crop scale + 6)")
    p.add_argument("--lr-from-hr", nargs="?", const="matlab", default=None, choices=["matlab", "pil"],
                   metavar="matlab|pil",
                   help="make each LR image from its HR image the LIIF way (HR cropped to round(floor(H/s)*s), "
                   "bicubic down), ignoring LR files, at any scale (x6, x12, x30, x3.7): 'matlab' (default) "
                   "MATLAB bicubic, 'pil' Pillow bicubic exactly as the official LIIF test")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="score only the first N images")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no per-image lines")
    p.add_argument("--classsr-hard-bias", type=float, default=None, metavar="B",
                   help="ClassSR models: add B to the hard-class logit before routing (0 = the paper's routing)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from ..errors import SrkitError
    from ..evaluate import evaluate

    scale = int(args.scale) if float(args.scale).is_integer() else args.scale
    model = args.model
    if model is None:
        from ..zoo import DEFAULT_MODEL

        model = DEFAULT_MODEL

    def show(score) -> None:
        if not args.quiet:
            from tqdm import tqdm

            tqdm.write(f"{score.name:<24} {score.psnr:8.4f}  {score.ssim:.4f}", file=sys.stdout)

    if args.classsr_hard_bias is not None:
        from ..archs.classsr import set_hard_bias
        from ..inference import load

        if model == "bicubic":
            raise SrkitError("--classsr-hard-bias applies to ClassSR models only, not to bicubic")
        name = model
        model = load(str(model))
        model.name = str(name)
        set_hard_bias(model.net, args.classsr_hard_bias)
    if not args.quiet:
        print(f"{'image':<24} {'PSNR':>8}  SSIM")
    result = evaluate(model, args.data, scale, preset=args.preset, progress=not args.quiet, on_image=show,
                      lr_from_hr=args.lr_from_hr or False, limit=args.limit)
    print(f"{'mean':<24} {result.psnr:8.4f}  {result.ssim:.4f}")
    print(f"{result.model} on {result.data} x{scale} [{result.preset}]: "
          f"PSNR {result.psnr:.2f} dB  SSIM {result.ssim:.4f}  ({len(result.images)} images)")
    for key, value in result.extra_means().items():
        print(f"  mean {key}: {value:.6g}")
    if args.json:
        path = Path(args.json)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        tmp.replace(path)
    return 0
