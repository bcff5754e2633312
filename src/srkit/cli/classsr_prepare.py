"""``srkit classsr-prepare``: ClassSR's training data. Cut HR/LR pairs into sub-images and split them into
three classes by the PSNR that a reference model reaches on each.

Steps (the official ``extract_subimages_train.py`` and ``divide_sub_images_train.py``, for any folder):

0. Optionally (``--downscales``, official ``1,0.9,0.8,0.7,0.6``), each HR image is also used downscaled by
   each factor (MATLAB bicubic), which multiplies the data the way the official ``data_augmentation.py`` does.
1. Each HR image is cropped to a multiple of the scale; its LR is the given LR file or, without one (and
   always for a downscaled copy), MATLAB bicubic (``srkit.data.resize.imresize``) of that HR.
2. Sub-images: HR ``crop`` x ``crop`` at step ``step`` (official 128 / 64, i.e. LR 32 / 16); along each axis a
   last window flush with the border is added when more than ``thres`` pixels would be left over.
3. The reference model (an srkit model file or zoo name; ``bicubic`` for MATLAB bicubic) upscales each LR
   sub-image; PSNR on RGB, 8-bit, ``scale`` pixels shaved at each border (the official test's measure).
4. Thresholds: the 1/3 and 2/3 quantiles of all PSNRs (official: 27.17 / 35.15 dB on DIV2K with
   MSRResNet), or ``--thresholds LOW,HIGH``. PSNR >= HIGH -> ``class1`` (simple), < LOW -> ``class3`` (hard),
   else ``class2``.

Output (``OUT``): ``all/HR``, ``all/LR_bicubic/X{s}`` with every sub-image (``<image>_s<k>.png``, k from
001); ``class{1,2,3}/HR`` and ``class{1,2,3}/LR_bicubic/X{s}`` (hard links where possible, else copies), each a
folder that ``data.train`` / ``resolve_pairs`` accept; ``psnr.tsv`` (name, PSNR) and ``classes.json``
(thresholds, counts, settings).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classsr-prepare",
        help="cut HR/LR images into sub-images and split them into ClassSR's three PSNR classes",
        description=(
            "Cut HR/LR pairs into sub-images, upscale each LR sub-image with a reference model, and split "
            "the sub-images into class1 (simple, high PSNR), class2 and class3 (hard) by PSNR quantiles."
        ),
    )
    p.add_argument("input", help="image set: a folder of HR images, a folder with HR/ and LR_bicubic/X<s>/, "
                                 "or a named set")
    p.add_argument("-o", "--output", required=True, help="output folder (must be empty or absent)")
    p.add_argument("--model", required=True,
                   help="reference model: srkit model file or zoo name, or 'bicubic' (official: a trained MSRResNet)")
    p.add_argument("--scale", type=int, default=4, help="SR factor (default 4)")
    p.add_argument("--crop", type=int, default=128, help="HR sub-image side (default 128, LR 32)")
    p.add_argument("--step", type=int, default=64, help="HR step between sub-images (default 64)")
    p.add_argument("--thres", type=int, default=48,
                   help="add a border-flush window when more than this many HR pixels remain (default 48)")
    p.add_argument("--thresholds", default=None, metavar="LOW,HIGH",
                   help="PSNR thresholds in dB (default: the 1/3 and 2/3 quantiles of the PSNRs)")
    p.add_argument("--downscales", default="1", metavar="F,F,...",
                   help="also use each HR image downscaled by these factors in (0, 1] (official: 1,0.9,0.8,0.7,0.6; "
                        "default 1: the images as they are)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that cut and write sub-images while the model scores them (default 0: none)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--batch", type=int, default=32, help="sub-images per reference-model call (default 32)")
    p.add_argument("--copy", action="store_true", help="copy files into the class folders instead of hard-linking")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def window_starts(length: int, crop: int, step: int, thres: int) -> list[int]:
    """Official sub-image positions along one axis (empty when ``length < crop``)."""
    if length < crop:
        return []
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > thres:
        starts.append(length - crop)
    return starts


def parse_thresholds(text: str | None) -> tuple[float, float] | None:
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--thresholds expects LOW,HIGH in dB such as 27.17,35.15, got {text!r}") from None
    if not low <= high:
        raise ConfigError(f"--thresholds: LOW must not exceed HIGH, got {text!r}")
    return low, high


def split_by_psnr(psnrs: list[float], thresholds: tuple[float, float] | None = None) -> tuple[list[int], tuple[float, float]]:
    """Class (1 simple, 2 medium, 3 hard) of each PSNR and the thresholds used (default: 1/3 and 2/3
    quantiles, numpy's linear interpolation)."""
    import numpy as np

    if thresholds is None:
        if not psnrs:
            thresholds = (0.0, 0.0)
        else:
            a = np.minimum(np.asarray(psnrs, dtype=np.float64), 1e3)  # identical images give inf
            thresholds = (float(np.quantile(a, 1 / 3)), float(np.quantile(a, 2 / 3)))
    low, high = thresholds
    classes = [1 if v >= high else (3 if v < low else 2) for v in psnrs]
    return classes, (low, high)


def parse_downscales(text: str) -> list[float]:
    """``"1,0.9"`` -> [1.0, 0.9]; every factor in (0, 1], no repeats."""
    from ..errors import ConfigError

    try:
        factors = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--downscales expects factors such as 1,0.9,0.8,0.7,0.6, got {text!r}") from None
    if not factors or any(not 0 < f <= 1 for f in factors) or len(set(factors)) != len(factors):
        raise ConfigError(f"--downscales: factors must be distinct and in (0, 1], got {text!r}")
    return factors


def _cut_and_write(job: tuple) -> tuple[str, list[str], Any, Any]:
    """One HR image at one downscale factor: cut HR/LR sub-images, write them, return them stacked (uint8)."""
    import numpy as np

    from ..data.io import read_image, write_image
    from ..data.resize import imresize
    from ..errors import SrkitError

    hr_path, lr_path, name, factor, scale, crop, step, thres, all_hr, all_lr = job
    hr = read_image(hr_path)
    stem = name
    if factor != 1:
        hr = imresize(hr, scale=factor)
        stem = f"{name}_d{round(factor * 100):03d}"
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    hr = hr[:h, :w]
    if lr_path is not None and factor == 1:
        lr = read_image(lr_path)
        if lr.shape[:2] != (h // scale, w // scale):
            raise SrkitError(f"{lr_path} is {lr.shape[1]}x{lr.shape[0]}, expected "
                             f"{w // scale}x{h // scale} for {hr_path} at x{scale}")
    else:
        lr = imresize(hr, scale=1 / scale)
    ys, xs = window_starts(h, crop, step, thres), window_starts(w, crop, step, thres)
    boxes = [(y, x) for y in ys for x in xs]
    if not boxes:
        return stem, [], None, None
    lc = crop // scale
    hr_subs = np.stack([hr[y : y + crop, x : x + crop] for y, x in boxes])
    lr_subs = np.stack([lr[y // scale : y // scale + lc, x // scale : x // scale + lc] for y, x in boxes])
    names = [f"{stem}_s{k + 1:03d}.png" for k in range(len(boxes))]
    for n, a, b in zip(names, hr_subs, lr_subs):
        write_image(all_hr / n, a)
        write_image(all_lr / n, b)
    return stem, names, hr_subs, lr_subs


def _reference(model: str, scale: int, device: Any):
    """A function (N, 3, h, w) float [0, 1] -> (N, 3, s*h, s*w) for the reference model."""
    import torch

    if model == "bicubic":
        from ..data.resize import imresize

        return lambda x: imresize(x, scale=scale).clamp(0, 1)
    from ..model_file import load_model

    loaded = load_model(model, device=device)
    net = loaded.net.eval()
    if loaded.descriptor.scales and scale not in loaded.descriptor.scales:
        from ..errors import SrkitError

        raise SrkitError(f"the reference model {model} upscales by {loaded.descriptor.scales}, not {scale}")

    def fn(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(device)).float().clamp(0, 1).cpu()

    return fn


def prepare(
    input_spec: str,
    output: str | Path,
    model: str,
    *,
    scale: int = 4,
    crop: int = 128,
    step: int = 64,
    thres: int = 48,
    thresholds: tuple[float, float] | None = None,
    device: str = "auto",
    batch: int = 32,
    copy: bool = False,
    progress: bool = True,
    downscales: tuple[float, ...] = (1.0,),
    workers: int = 0,
) -> dict[str, Any]:
    """Run the preparation (see the module docstring); return the ``classes.json`` content."""
    import json
    import os
    import shutil

    import torch
    from tqdm import tqdm

    from ..data.sets import resolve_pairs
    from ..errors import ConfigError, SrkitError
    from ..metrics.psnr_ssim import psnr

    if crop % scale or step % scale or crop <= 0 or step <= 0:
        raise ConfigError(f"--crop ({crop}) and --step ({step}) must be positive multiples of the scale ({scale})")
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SrkitError(f"output folder {out} exists and is not empty")
    pairs = resolve_pairs(input_spec, scale)
    if not pairs:
        raise SrkitError(f"no images found in {input_spec}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    ref = _reference(model, scale, dev)
    all_hr, all_lr = out / "all" / "HR", out / "all" / "LR_bicubic" / f"X{scale}"
    all_hr.mkdir(parents=True)
    all_lr.mkdir(parents=True)
    names: list[str] = []
    psnrs: list[float] = []
    skipped: list[str] = []
    jobs = [(pair.hr_path, pair.lr_path, pair.name, f, scale, crop, step, thres, all_hr, all_lr)
            for pair in pairs for f in downscales]
    bar = tqdm(total=len(jobs), desc="classsr-prepare", unit="img", disable=not progress, dynamic_ncols=True)
    pool = None
    if workers > 0:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        cut = pool.imap(_cut_and_write, jobs)  # in order: names and PSNRs come out deterministic
    else:
        cut = map(_cut_and_write, jobs)
    try:
        for stem, sub_names, hr_subs, lr_subs in cut:
            bar.update(1)
            if not sub_names:
                skipped.append(stem)
                continue
            for start in range(0, len(sub_names), batch):
                x = torch.from_numpy(lr_subs[start : start + batch]).permute(0, 3, 1, 2).float() / 255
                with torch.inference_mode():
                    sr = ref(x)
                sr8 = (sr * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                for j, s8 in enumerate(sr8):
                    psnrs.append(float(psnr(s8, hr_subs[start + j], crop_border=scale)))
            names.extend(sub_names)
            bar.set_postfix(sub_images=len(names))
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    classes, (low, high) = split_by_psnr(psnrs, thresholds)
    for c in (1, 2, 3):
        (out / f"class{c}" / "HR").mkdir(parents=True)
        (out / f"class{c}" / "LR_bicubic" / f"X{scale}").mkdir(parents=True)

    def place(src: Path, dst: Path) -> None:
        if not copy:
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copyfile(src, dst)

    for name, c in zip(names, classes):
        place(all_hr / name, out / f"class{c}" / "HR" / name)
        place(all_lr / name, out / f"class{c}" / "LR_bicubic" / f"X{scale}" / name)
    with open(out / "psnr.tsv", "w") as f:
        f.write("name\tpsnr_db\tclass\n")
        for name, v, c in zip(names, psnrs, classes):
            f.write(f"{name}\t{v:.6f}\t{c}\n")
    summary = {
        "input": str(input_spec), "model": model, "scale": scale, "crop": crop, "step": step, "thres": thres,
        "downscales": list(downscales),
        "thresholds_db": [low, high], "thresholds_from": "given" if thresholds else "quantiles 1/3, 2/3",
        "counts": {f"class{c}": classes.count(c) for c in (1, 2, 3)}, "sub_images": len(names),
        "skipped_images": skipped,
    }
    (out / "classes.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(args: argparse.Namespace) -> int:
    summary = prepare(
        args.input, args.output, args.model, scale=args.scale, crop=args.crop, step=args.step, thres=args.thres,
        thresholds=parse_thresholds(args.thresholds), device=args.device, batch=args.batch, copy=args.copy,
        progress=not args.quiet, downscales=tuple(parse_downscales(args.downscales)),
        workers=args.workers,
    )
    low, high = summary["thresholds_db"]
    counts = summary["counts"]
    print(f"{summary['sub_images']} sub-images; thresholds {low:.3f} / {high:.3f} dB; "
          f"class1 (simple) {counts['class1']}, class2 {counts['class2']}, class3 (hard) {counts['class3']}")
    if summary["skipped_images"]:
        print(f"skipped (smaller than {args.crop} px): {', '.join(summary['skipped_images'])}")
    return 0
