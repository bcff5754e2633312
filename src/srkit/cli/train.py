"""``srkit train CONFIG [--resume] [--force] [key=value ...]``: train a model from a YAML recipe.

Under ``torchrun --nproc_per_node K -m srkit train ...`` (add ``--nnodes``/``--rdzv-endpoint`` for several machines)
the same command trains on K processes; ``data.batch_size`` is the global batch.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a super-resolution model from a YAML config. Settings can be overridden "
        "with dotted key=value pairs, e.g. train.steps=2000 data.batch_size=32 train.optimizer.lr=1e-4.",
    )
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output directory")
    p.add_argument("--force", action="store_true", help="write into a non-empty output directory, replacing its run")
    p.add_argument("--output-dir", help="shorthand for output_dir=...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the output directory)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.config import dump_config, load_config
    from ..errors import SrkitError

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if args.resume and args.force:
        raise SrkitError("--resume and --force contradict each other: pick one")
    from ..engine.trainer import train

    result = train(cfg, resume=args.resume, force=args.force, progress=not args.no_progress)
    if result.get("model_file"):
        m = result["metrics"]
        extra = f", {cfg.data.val} PSNR {m['psnr']:.3f} dB SSIM {m['ssim']:.4f}" if m else ""
        print(f"{result['model_file']} (step {result['step']}{extra})")
    return 0
