"""``srkit explain``: LAM local attribution maps and Diffusion Indices of SR models for one HR image.

    srkit explain HR.png --model M --window X,Y[,SIZE] -o lam.png [--json lam.json]
    srkit explain HR.png --compare M1 M2 ... --window X,Y[,SIZE] -o compare.png [--json compare.json]

IMAGE is the HR image. As in LAM's demo it is cropped to a multiple of the scale and shrunk with Pillow's
bicubic (``--downsample matlab`` uses srkit's MATLAB-exact resize instead); the window is in HR pixels
(X column, Y row of its top-left corner, SIZE 16 by default). M is a zoo name, a model file, or
``arch:NAME`` (that architecture with random weights, seeded by ``--seed``: for tests and demos).

The picture is the demo's: HR with the window, the map, the map over the LR, the KDE map over the LR, and
the SR output; ``--compare`` draws one labelled row per model. The JSON holds the DI and the number of LR
pixels holding 95 % of the attribution.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="LAM attribution maps and Diffusion Index of SR models",
        description="Local attribution map (LAM, Gu & Dong 2021) of an SR window: which LR pixels a model "
        "uses. IMAGE is the HR image; the LR is made from it as in the LAM demo.",
    )
    p.add_argument("image", metavar="IMAGE", help="the HR image")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="M", help="zoo name, model file, or arch:NAME (random weights)")
    which.add_argument("--compare", nargs="+", metavar="M", help="several models: one row (and DI) each")
    p.add_argument("--window", required=True, metavar="X,Y[,SIZE]",
                   help="SR window: column and row of its top-left corner in HR pixels, and its side (default 16)")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="picture to write")
    p.add_argument("--json", default=None, metavar="FILE", help="also write DI, pixel counts and settings as JSON")
    p.add_argument("--scale", type=float, default=None,
                   help="scale (default: the model's only scale; 4 for continuous-scale models)")
    p.add_argument("--ref", default=None, metavar="REF", help="reference image (reference-based models)")
    p.add_argument("--path", default="blur", choices=["blur", "linear", "gaussian-linear"],
                   help="integration path (default: LAM's progressive blurring)")
    p.add_argument("--sigma", type=float, default=1.2, help="blur sigma at the path start (default 1.2)")
    p.add_argument("--steps", type=int, default=50, help="path steps (default 50)")
    p.add_argument("--kernel-size", type=int, default=9, help="Gaussian kernel side (default 9)")
    p.add_argument("--downsample", default="pil", choices=["pil", "matlab"],
                   help="how the LR is made from IMAGE (default pil: as the LAM demo)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="path steps per forward/backward pass (default: from --max-memory)")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="activation-memory budget per pass, e.g. 2GB (default 1GiB)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights of arch:NAME models")
    p.set_defaults(run=run)


def parse_window(text: str) -> tuple[int, int, int]:
    """'X,Y' or 'X,Y,SIZE' -> (x, y, size); SIZE defaults to 16."""
    from ..errors import SrkitError

    parts = [t.strip() for t in text.split(",")]
    try:
        values = [int(t) for t in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or any(v < 0 for v in values) or (len(values) == 3 and values[2] < 1):
        raise SrkitError(f"--window must be X,Y or X,Y,SIZE with whole numbers >= 0 (SIZE >= 1), not {text!r}")
    return (values[0], values[1], values[2] if len(values) == 3 else 16)


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from ..data.io import read_image, to_tensor, write_image
    from ..errors import SrkitError
    from ..explain import lam as L
    from ..explain import render

    window = parse_window(args.window)
    max_memory = None
    if args.max_memory is not None:
        from .upscale import parse_memory

        try:
            max_memory = parse_memory(args.max_memory)
        except argparse.ArgumentTypeError as e:
            raise SrkitError(f"--max-memory: {e}") from None
    if args.batch_size is not None and args.batch_size < 1:
        raise SrkitError(f"--batch-size must be at least 1, not {args.batch_size}")
    out = Path(args.output)
    if not out.parent.is_dir():
        raise SrkitError(f"cannot write {out}: folder {out.parent} does not exist")
    if args.json is not None and not Path(args.json).parent.is_dir():
        raise SrkitError(f"cannot write {args.json}: folder {Path(args.json).parent} does not exist")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    image = read_image(args.image)  # one-line ImageReadError for a missing or broken file
    ref_image = read_image(args.ref) if args.ref is not None else None
    path = L.make_path(args.path, sigma=args.sigma, steps=args.steps, kernel_size=args.kernel_size)

    specs = args.compare or [args.model]
    records, results = [], []
    hr = lr = None
    for spec in specs:
        net, descriptor = L.resolve_model(spec, args.scale, device=device, seed=args.seed)
        scale = L.model_scale(descriptor, args.scale)
        m_hr, m_lr = L.prepare_images(image, scale, descriptor.multiple_of, args.downsample)
        if hr is None:
            hr, lr = m_hr, m_lr
        elif m_hr.shape != hr.shape or m_lr.shape != lr.shape:
            raise SrkitError(f"{spec} needs a different crop or LR size than {specs[0]}; compare models of one scale")
        ref = None
        if descriptor.needs_ref:
            if ref_image is None:
                raise SrkitError(f"{spec} is reference-based: give the reference image with --ref")
            ref = to_tensor(ref_image).to(device)
        height, width = hr.shape[:2]
        L.check_window(*window[:2], window[2], height, width)
        start = time.perf_counter()
        result = L.lam(net, to_tensor(lr).to(device), window, descriptor=descriptor, size=(height, width),
                       scale=scale, ref=ref, path=path, batch_size=args.batch_size, max_memory=max_memory)
        seconds = time.perf_counter() - start
        di = result.di
        if di != di:
            raise SrkitError(f"{spec}: the attribution is zero everywhere (is the window on a flat area?)")
        record = {"model": spec, "arch": descriptor.arch, "scale": scale, "di": di,
                  "pixels_95": result.pixels(0.95), "pixels_total": int(lr.shape[0] * lr.shape[1]),
                  "seconds": round(seconds, 3)}
        if result.ref_attribution is not None:
            ref_map = L.abs_normalized(result.ref_attribution)
            record["ref_di"] = L.diffusion_index(ref_map) if ref_map.any() else None
        records.append(record)
        results.append((spec, result))
        print(f"{spec}: DI {di:.2f}, {record['pixels_95']} LR pixels hold 95% of the attribution")
        del net

    if args.compare:
        picture = render.compare_figure(hr, lr, results)
    else:
        picture = render.lam_figure(hr, lr, results[0][1])
    write_image(out, np.asarray(picture))
    if args.json is not None:
        doc = {"image": str(args.image), "window": {"x": window[0], "y": window[1], "size": window[2]},
               "hr_size": [int(hr.shape[1]), int(hr.shape[0])], "lr_size": [int(lr.shape[1]), int(lr.shape[0])],
               "downsample": args.downsample, "path": repr(path), "picture": str(out)}
        if args.compare:
            doc["models"] = records
        else:
            doc.update(records[0])
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0
