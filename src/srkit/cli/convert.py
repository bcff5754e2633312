"""``srkit convert``: an official checkpoint -> an srkit model file (safetensors + metadata)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an official checkpoint into an srkit model file",
        description=(
            "Read an official checkpoint (.pth/.pt/.ckpt with torch.load(weights_only=True), .safetensors, or .npz: "
            "arrays keyed by TF variable name, see docs/methods/crossmpi.md), "
            "unwrap framework wrappers (params_ema, params, state_dict, model, LIIF's model.sd, 'module.' "
            "prefixes), infer the constructor arguments from tensor shapes, load strictly and write a model file."
        ),
    )
    p.add_argument("file", metavar="FILE", help="official checkpoint")
    p.add_argument("--arch", required=True, help="srkit architecture name (see `srkit models`)")
    p.add_argument("--scale", type=int, default=None, help="upscaling factor, where the weights do not show it")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument that overrides what is inferred (repeatable), e.g. --set res_scale=0.1")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="replace MODEL if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..convert import convert_checkpoint, parse_set
    from ..model_file import save_model
    from ..profile import count_params, format_count

    overrides = parse_set(args.sets)
    conv = convert_checkpoint(args.file, args.arch, scale=args.scale, overrides=overrides)
    path = save_model(args.output, conv.net, conv.arch, conv.arch_kwargs, conv.metadata(),
                      descriptor=conv.descriptor, overwrite=args.force)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(conv.arch_kwargs.items()))
    scales = ", ".join(f"x{s}" for s in conv.descriptor.scales) or "continuous/encoder"
    print(f"{args.file} -> {path}")
    print(f"  arch     {conv.arch}({kwargs})")
    print(f"  scales   {scales}")
    print(f"  params   {format_count(count_params(conv.net))}")
    for note in conv.notes:
        print(f"  note     {note}")
    return 0
