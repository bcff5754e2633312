"""``srkit profile``: parameters, FLOPs, latency and peak memory of a model at a given input size.

``--model`` takes, in this order of interpretation:

* ``arch:NAME`` -- a bare architecture from the registry with random weights (fixed seed), built with
  ``--scale`` and ``--set KEY=VALUE`` constructor arguments (costs do not depend on the weights);
* a path to an srkit model file;
* a model-zoo name (the default model when ``--model`` is absent).
"""

from __future__ import annotations

import argparse

ARCH_PREFIX = "arch:"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="measure params, FLOPs, latency and peak memory of a model",
        description=(
            "Measure a model on one random LR input: parameters, FLOPs (2 x MACs, convolutions and matrix "
            "products only), median latency and peak memory of a forward pass. "
            "MODEL is 'arch:NAME' (registry architecture, random weights), a model file, or a zoo name."
        ),
    )
    p.add_argument("--model", default=None, help="arch:NAME, a model file or a zoo name (default: the default model)")
    p.add_argument("--size", default="256x256", metavar="WxH", help="LR input width x height (default 256x256)")
    p.add_argument("--image", metavar="FILE", default=None,
                   help="profile on this LR image instead of a random input of --size (its size is used); "
                        "networks whose work depends on the content (SMSR) report their mask-counted FLOPs "
                        "and per-module, per-layer densities for it")
    p.add_argument("--scale", type=float, default=None,
                   help="upscaling factor (arch: builds it; model files: checked; continuous-scale models: "
                        "the factor queried, default 4)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument for arch:NAME (repeatable)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(run=run)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W)."""
    from ..errors import ConfigError

    w, sep, h = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        width, height = int(w), int(h)
    except ValueError:
        raise ConfigError(f"--size expects WIDTHxHEIGHT such as 320x180, got {text!r}") from None
    if width < 1 or height < 1:
        raise ConfigError(f"--size must be positive, got {text!r}")
    return height, width


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from ..convert.common import build_net, parse_set
    from ..errors import ConfigError, SrkitError
    from ..profile import format_bytes, format_count, profile_model

    h, w = parse_size(args.size)
    scale = args.scale
    if scale is not None and float(scale).is_integer():
        scale = int(scale)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = args.model
    if model is None:
        from ..zoo import DEFAULT_MODEL

        model = DEFAULT_MODEL

    if model.startswith(ARCH_PREFIX):
        from .. import archs

        arch = model[len(ARCH_PREFIX):]
        kwargs = parse_set(args.sets)
        descriptor = archs.describe(arch, **kwargs)
        if scale is not None and not descriptor.continuous:  # continuous-scale nets take it per call
            kwargs["scale"] = scale
            descriptor = archs.describe(arch, **kwargs)
        torch.manual_seed(0)
        net = build_net(arch, kwargs)
        label = f"{model} (random weights)"
    else:
        if args.sets:
            raise ConfigError("--set applies only to arch:NAME models; a model file carries its own arguments")
        from ..model_file import load_model

        loaded = load_model(model)
        net, arch, descriptor = loaded.net, loaded.arch, loaded.descriptor
        if scale is not None:
            descriptor.check_scale(scale)
        label = str(loaded.path) if Path(model).exists() else f"{model} ({loaded.path})"
    call = None
    if descriptor.needs_ref:
        raise SrkitError(f"srkit profile measures single-input networks; {arch} needs a reference image")
    if descriptor.continuous:
        # arbitrary-scale networks (LIIF) take the factor as forward(lr, scale=s)
        scale = 4 if scale is None else scale
        descriptor.check_scale(scale)
        call = lambda n, x: n(x, scale=scale)  # noqa: E731
    elif not descriptor.scales:
        raise SrkitError(f"{arch} is a feature encoder without an upsampler; there is no image to profile")
    else:
        scale = descriptor.scales[0]
    image = None
    if args.image is not None:
        from ..data.io import read_image, to_tensor

        image = to_tensor(read_image(args.image, mode="rgb" if descriptor.in_channels == 3 else "unchanged"))
        if image.shape[1] != descriptor.in_channels:
            raise ConfigError(f"{args.image}: {image.shape[1]} channels, {arch} takes {descriptor.in_channels}")
        h, w = image.shape[-2:]
        args.size = f"{w}x{h}"
    if h < descriptor.min_size or w < descriptor.min_size:
        raise ConfigError(f"{arch} needs inputs of at least {descriptor.min_size} pixels, got {args.size}")
    if h % descriptor.multiple_of or w % descriptor.multiple_of:
        raise ConfigError(f"{arch} needs sizes that are multiples of {descriptor.multiple_of}, got {args.size}")

    dtype = getattr(torch, args.dtype)
    try:
        result = profile_model(net, (h, w), scale=scale, device=device, runs=args.runs, warmup=args.warmup,
                               dtype=dtype, in_channels=descriptor.in_channels, call=call, x=image)
    except RuntimeError as e:  # out of memory, or an op without a kernel for this device/dtype
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SrkitError(f"{arch} failed on {device} {args.dtype} at {args.size}: {first}") from None

    out = "x".join(map(str, result.output_shape))
    rows = [
        ("model", label),
        ("arch", f"{arch}, x{scale:g}" + (" (continuous-scale)" if descriptor.continuous else "")),
        ("input", f"{w}x{h} (WxH) -> output {out} (NCHW)"),
        ("device", f"{result.device}, {result.dtype}"),
        ("params", f"{format_count(result.params)} ({result.params:,})"),
        ("FLOPs", f"{format_count(result.flops)} (2 x MACs; {format_count(result.macs)} MACs)"),
        ("latency", f"{result.latency_ms_median:.2f} ms (median of {len(result.latency_ms_all)} runs)"),
        ("peak mem", f"{format_bytes(result.peak_memory_bytes)} above weights and input"),
    ]
    masked = None
    if hasattr(net, "mask_flops"):
        # SMSR: the work depends on the content. A random input gives dense masks that describe noise, not
        # photos, hence --image (srkit eval reports the same counts per image of a set)
        with torch.inference_mode():
            if image is None:
                x = torch.rand(1, descriptor.in_channels, h, w, generator=torch.Generator().manual_seed(0))
            else:
                x = image
            masked = net.to("cpu").float().eval().mask_flops(x)
        source = f"on {args.image}" if image is not None else "on random input; use --image for a real one"
        rows.append(("masked", f"{format_count(masked['total'])} FLOPs = {100 * masked['ratio']:.1f}% of "
                               f"{format_count(masked['dense_total'])} unmasked ({source})"))
        for k, b in enumerate(masked["blocks"]):
            layers = " ".join(f"{100 * d:.0f}%" for d in b["layer_density"])
            sparse = "/".join(str(v) for v in b["sparse_channels"])
            rows.append((f"  m{k}", f"active pixels {100 * b['spatial_density']:.1f}%, sparse channels {sparse}, "
                                   f"layer density {layers}, module {100 * b['flops'] / b['dense_flops']:.1f}%"))
    for key, value in rows:
        print(f"{key:<9} {value}")
    if args.json:
        doc = {"model": model, "arch": arch, **result.to_dict()}
        if masked is not None:
            doc["mask_flops"] = masked
        path = Path(args.json)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(path)
    return 0
