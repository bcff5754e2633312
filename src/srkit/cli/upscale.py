"""``srkit upscale``: upscale image files or folders with a model, keeping alpha, grayscale, 16-bit and ICC.

Rules (all checked before any work starts):

* OUTPUT is a file when there is one input file, unless OUTPUT is an existing folder or ends with a path
  separator; it is a folder (created if needed) for several inputs or a folder input. In a folder each result
  is named ``<stem>_x<scale>.png`` (``<stem>_<W>x<H>.png`` with ``--size``): PNG always, because it is
  lossless and keeps 16-bit samples and alpha.
* An input is never overwritten (error), an existing output only with ``--overwrite``; results are written
  atomically (a temporary file renamed over the target).
* Folder inputs contribute their image files (``.png .jpg .jpeg .bmp .tif .tiff .webp``, not recursive).
  A file that cannot be read as an image is reported on one line of stderr; the rest of the batch still
  runs, and the exit status is 1 at the end.
* ``--half`` on the CPU prints a warning and runs in float32 (CPU half convolutions are slow or missing).
* Outputs larger than the memory budget (``--max-memory``, default half the available RAM on CPU) from a
  continuous-scale model (LIIF) are rendered and written to a PNG in horizontal strips
  (:mod:`srkit.inference.streaming`), so the whole result is never held in memory; the pixels are those the
  in-memory path would write.
"""

from __future__ import annotations

import argparse
import re

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_memory(text: str) -> int:
    """'2GB' -> 2e9 bytes. KB/MB/GB/TB are decimal; KiB/MiB/GiB/TiB and bare K/M/G/T are binary."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (examples: 2GB, 512MiB, 1.5G)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"memory size must be positive: {text!r}")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' (width x height) -> (1080, 1920) as (height, width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 1920x1080, not {text!r}")
    return int(m.group(2)), int(m.group(1))


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"scale must be a positive number, not {text!r}")
    return v


def _tile(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tile must be a whole number of pixels, not {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError("tile must be >= 0 (0 = no tiling)")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale",
        help="upscale images or folders of images",
        description="Upscale image files or folders. Keeps alpha, grayscale, 16-bit samples and ICC profiles. "
        "Never overwrites an input; overwrites an existing output only with --overwrite.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file (one input) or folder (several inputs, or a folder input; created if "
                   "needed); results in a folder are named <stem>_x<scale>.png")
    p.add_argument("--model", default=None, help="zoo name or model file (default: the default zoo model)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--scale", type=_positive_float, default=None,
                      help="magnification (default: the model's scale); other than the model's own scale, "
                      "the model runs at the next larger scale it has and MATLAB bicubic finishes")
    size.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                      help="exact output size, e.g. 1920x1080 (applied to every input)")
    p.add_argument("--ref", default=None, metavar="REF", help="reference image (reference-based models)")
    p.add_argument("--tile", type=_tile, default=None, metavar="N",
                   help="tile side in input pixels (default: from --max-memory; 0 = no tiling)")
    p.add_argument("--max-memory", type=parse_memory, default=None, metavar="SIZE",
                   help="device-memory budget for one tile, e.g. 2GB, 512MiB (default: 80%% of free GPU "
                   "memory, or half of the available RAM on CPU); LIIF outputs larger than it are written "
                   "to the PNG in strips")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--half", action="store_true", help="float16 on CUDA (ignored, with a warning, on CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--classsr-hard-bias", type=float, default=None, metavar="B",
                   help="ClassSR models: add B to the hard-class logit before routing (0 = the paper's routing; "
                        "B > 0 sends borderline patches to the big branch: more PSNR, more FLOPs)")
    p.set_defaults(run=run)


def _scale_label(scale: float | None, size: tuple[int, int] | None) -> str:
    if size is not None:
        return f"{size[1]}x{size[0]}"
    return f"x{scale:g}"


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    import warnings
    from pathlib import Path

    from ..data.io import IMAGE_EXTENSIONS
    from ..errors import SrkitError

    failures = 0

    def say(msg: str) -> None:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)

    # ---- inputs
    files: list[Path] = []
    folder_input = False
    for item in args.inputs:
        p = Path(item)
        if p.is_dir():
            folder_input = True
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                say(f"srkit: error: folder {p} holds no image files ({' '.join(IMAGE_EXTENSIONS)})")
                failures += 1
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            say(f"srkit: error: cannot read image {p}: no such file")
            failures += 1
    if not files:
        raise SrkitError("no input images")

    # ---- outputs
    out = Path(args.output)
    to_folder = (len(files) > 1 or folder_input or out.is_dir()
                 or args.output.endswith((os.sep, "/")) or (os.altsep and args.output.endswith(os.altsep)))
    if to_folder and out.exists() and not out.is_dir():
        raise SrkitError(f"output {out} is a file, but {len(files)} inputs need an output folder")
    if not to_folder and out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise SrkitError(f"output {out} has no image extension ({' '.join(IMAGE_EXTENSIONS)}); to write into a "
                         f"folder, create it first or end the name with '/'")

    device = args.device
    half = args.half
    import torch

    if half and (device == "cpu" or (device is None and not torch.cuda.is_available())):
        say("srkit: warning: --half needs CUDA; running in float32 on the CPU")
        half = False

    from ..inference import upscaler as upscaler_mod

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *a, **k: say(f"srkit: warning: {message}")
        up = upscaler_mod.load(args.model, device=device, half=half, max_memory=args.max_memory, tile=args.tile)
        if args.classsr_hard_bias is not None:
            from ..archs.classsr import set_hard_bias

            set_hard_bias(up.net, args.classsr_hard_bias)
        scale = args.scale
        if scale is None and args.size is None:
            scale = up.default_scale
        label = _scale_label(scale, args.size)

        jobs: list[tuple[Path, Path]] = []
        for f in files:
            target = out / f"{f.stem}_{label}.png" if to_folder else out
            jobs.append((f, target))
        _preflight(jobs, args.inputs, overwrite=args.overwrite)
        if to_folder:
            out.mkdir(parents=True, exist_ok=True)
        elif not out.parent.is_dir():
            raise SrkitError(f"cannot write {out}: folder {out.parent} does not exist")

        ref = None
        if args.ref is not None:
            from ..data.io import read_image

            ref = read_image(args.ref, mode="rgb")
        elif up.descriptor.needs_ref:  # one clear line before any work, instead of one error per image
            raise SrkitError(f"{up.name} is reference-based: give the reference image with --ref REF")

        written = 0
        from tqdm import tqdm

        for src, dst in tqdm(jobs, unit="image", disable=True if len(jobs) < 2 else None, file=sys.stderr):
            try:
                _upscale_file(up, src, dst, scale=args.scale if args.size is None else None, size=args.size,
                              ref=ref)
                written += 1
            except SrkitError as e:  # unreadable image, unwritable output, out of memory: report, go on
                say(f"srkit: error: {e}")
                failures += 1
    if len(jobs) > 1 or failures:
        say(f"srkit: wrote {written} of {len(jobs)} image(s)" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0


def _same_file(a, b) -> bool:
    import os

    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _preflight(jobs, raw_inputs, *, overwrite: bool) -> None:
    from pathlib import Path

    from ..errors import SrkitError

    inputs = [src for src, _ in jobs] + [Path(p) for p in raw_inputs]
    seen: dict = {}
    for src, dst in jobs:
        for i in inputs:
            if _same_file(dst, i):
                raise SrkitError(f"refusing to overwrite the input {i} with the result of {src}; choose another "
                                 f"output")
        key = dst.resolve()
        if key in seen:
            raise SrkitError(f"{seen[key]} and {src} would both be written to {dst}; upscale them separately")
        seen[key] = src
        if dst.exists() and not overwrite:
            raise SrkitError(f"{dst} already exists (pass --overwrite to replace it)")
        if dst.is_dir():
            raise SrkitError(f"{dst} is a folder, not an output file")


def _say(msg: str) -> None:
    import sys

    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def _upscale_file(up, src, dst, *, scale, size, ref) -> None:
    import numpy as np

    from ..data.io import load_image, write_image

    img = load_image(src)
    a = img.array
    gray_alpha = img.mode.startswith("LA") and a.shape[-1] == 4
    if gray_alpha:
        # load_image replicates gray into RGB; give the upscaler gray + alpha so the result stays exactly gray.
        a = np.ascontiguousarray(a[..., [0, 3]])
    from ..inference import streaming

    out_hw = up.output_size(a.shape[0], a.shape[1], scale, size)
    if ref is None and streaming.should_stream(up, out_hw):
        if dst.suffix.lower() == ".png":
            # too large for memory: the model renders strips that go straight into the PNG file
            _say(f"srkit: {src.name}: {streaming.describe_plan(up, a.shape[:2], out_hw)}")
            streaming.upscale_to_png(up, a, dst, scale=scale, size=size, icc_profile=img.icc_profile)
            return
        _say(f"srkit: warning: {src.name}: the {out_hw[1]}x{out_hw[0]} result may not fit in memory; only .png "
             f"outputs are written in strips")
    result = up.upscale(a, scale=scale, size=size, ref=ref)
    if gray_alpha:  # write_image takes 1, 3 or 4 channels: gray + alpha goes out as RGBA with equal RGB
        result = np.ascontiguousarray(result[..., [0, 0, 0, 1]])
    write_image(dst, result, icc_profile=img.icc_profile)
