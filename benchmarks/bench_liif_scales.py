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
    # model on a GPU, bicubic on the CPU, one table:
    python benchmarks/bench_liif_scales.py --model M --device cuda --skip-bicubic --json liif.json
    .venv/bin/python benchmarks/bench_liif_scales.py --model bicubic --json bicubic.json
    .venv/bin/python benchmarks/bench_liif_scales.py --from-json liif.json bicubic.json --out RESULTS.md

``--limit SET=N`` scores the first N images of a set (sorted by name); the table says so. On a 2-core CPU the
EDSR-baseline-LIIF costs about 50 us per output pixel: all of BSD100 at five scales is about an hour, the 12
DIV2K images at x12-x30 (2.8 M output pixels each per scale) about two hours.
"""

from __future__ import annotations

import argparse
import datetime
import json
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
    ap.add_argument("--model", default=None,
                    help="LIIF model file (srkit .safetensors) or zoo name; 'bicubic' for the bicubic column only")
    ap.add_argument("--sets", nargs="*", default=list(BENCH_SETS), help="benchmark sets (preset benchmark)")
    ap.add_argument("--scales", nargs="*", type=float, default=list(BENCH_SCALES), help="scales for --sets")
    ap.add_argument("--div2k-scales", nargs="*", type=float, default=list(DIV2K_SCALES),
                    help="scales on the DIV2K images (preset div2k); none to skip")
    ap.add_argument("--downsample", choices=["pil", "matlab"], default="pil",
                    help="how LR is made from HR beyond the shipped LR files (default pil, as the official test)")
    ap.add_argument("--limit", nargs="*", default=[], metavar="SET=N", help="first N images of a set only")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (on CUDA, TF32 is switched off: float32 as on CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-bicubic", action="store_true", help="score the model only (bicubic from another run)")
    ap.add_argument("--json", default=None, help="write the raw results (list of entries) to this JSON file")
    ap.add_argument("--from-json", nargs="*", default=None, metavar="FILE",
                    help="no evaluation: render the table from results saved with --json (model runs and a "
                    "bicubic run are merged per set and scale)")
    ap.add_argument("--out", default=None, help="also write the markdown to this file")
    args = ap.parse_args(argv)

    if args.from_json is not None:
        entries = []
        for path in args.from_json:
            with open(path) as f:
                entries += json.load(f)
        md = render(entries, " ".join(sys.argv[1:]))
    else:
        if not args.model:
            ap.error("--model is required (or --from-json)")
        entries = run(args)
        md = render(entries, " ".join(sys.argv[1:]))
    print(md)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    return 0


def run(args) -> list[dict]:
    """Evaluate every (set, scale) job; one entry per job and scorer ("model" or "bicubic")."""
    import torch

    from srkit.evaluate import evaluate
    from srkit.inference import load

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    limits = _limits(args.limit)
    bicubic_only = args.model == "bicubic"
    up = None if bicubic_only else load(args.model, device=args.device)
    jobs = [(s, sc, "benchmark") for s in args.sets for sc in args.scales]
    jobs += [("DIV2K", sc, "div2k") for sc in args.div2k_scales]
    machine = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
               else f"{platform.machine()} CPU, {args.threads} threads")
    entries = []
    for data, scale, preset in jobs:
        scale = int(scale) if float(scale).is_integer() else scale
        paired = data != "DIV2K" and scale in PAPER_IN_DIST
        lr_from_hr = False if paired else args.downsample
        limit = limits.get(data.lower())
        scorers: list = []
        if not args.skip_bicubic or bicubic_only:
            scorers.append(("bicubic", "bicubic"))
        if not bicubic_only:
            scorers.append(("model", up))
        for kind, model in scorers:
            t0 = time.time()
            r = evaluate(model, data, scale, preset=preset, progress=False, lr_from_hr=lr_from_hr, limit=limit)
            e = {"set": data, "scale": scale, "preset": preset, "kind": kind,
                 "model": "bicubic" if kind == "bicubic" else args.model, "psnr": r.psnr, "ssim": r.ssim,
                 "n": len(r.images), "limit": limit, "seconds": time.time() - t0,
                 "lr": "LR files" if paired else f"from HR ({args.downsample})", "device": args.device,
                 "machine": machine, "torch": torch.__version__, "date": datetime.date.today().isoformat(),
                 "command": "python benchmarks/bench_liif_scales.py " + " ".join(sys.argv[1:])}
            entries.append(e)
            if args.json:  # after every job, so that an interrupted run keeps what it measured
                with open(args.json, "w") as f:
                    json.dump(entries, f, indent=1)
            print(f"{data:>7} x{scale:<4} {preset:>9} {e['lr']:>15}  {e['model']}: {e['psnr']:.2f} dB "
                  f"({e['n']} images, {e['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return entries


def render(entries: list[dict], argv_text: str) -> str:
    """Markdown tables (PSNR dB, LIIF / bicubic) from result entries."""
    models = sorted({e["model"] for e in entries if e["kind"] == "model"})
    what = "LIIF / bicubic" if models else "bicubic only"
    lines = [f"# LIIF at in- and out-of-distribution scales (PSNR dB, {what})", ""]
    lines += ["Commands and machines:", ""]
    for cmd, machine, torch_v, date in sorted({(e["command"], e["machine"], e["torch"], e["date"]) for e in entries}):
        lines.append(f"- `{cmd}` ({machine}, torch {torch_v}, {date})")
    lines.append("")
    if models:
        lines += [f"Model: {', '.join(f'`{m}`' for m in models)}.", ""]
    downs = sorted({e["lr"].removeprefix("from HR (").rstrip(")") for e in entries if e["lr"] != "LR files"})
    lines += ["Benchmark sets: preset `benchmark` (Y, crop s); x2-x4 from the shipped MATLAB-bicubic LR files, "
              f"larger scales (`*`) with LR made from HR ({', '.join(downs) or '-'} bicubic; HR cropped to "
              "round(floor(H/s)*s)). DIV2K: the 12 shared validation images (the paper uses all 100), preset `div2k` "
              "(RGB, crop s + 6), LR made from HR. SR quantised to uint8 before PSNR. Bicubic = MATLAB bicubic "
              "upsampling of the same LR images.", ""]
    table: dict[tuple[str, float], dict] = {}
    for e in entries:
        table.setdefault((e["set"], e["scale"]), {})[e["kind"]] = e
    sets = list(dict.fromkeys(e["set"] for e in entries))
    for group in ([s for s in sets if s != "DIV2K"], [s for s in sets if s == "DIV2K"]):
        if not group:
            continue
        scales = sorted({sc for (d, sc) in table if d in group})
        head = [f"x{sc:g}" + ("" if group != ["DIV2K"] and sc in PAPER_IN_DIST else "*") for sc in scales]
        lines.append("| set (images) | " + " | ".join(head) + " |")
        lines.append("|---|" + "---|" * len(scales))
        for d in group:
            cells, n, lim = [], 0, None
            for sc in scales:
                cell = table.get((d, sc), {})
                m, b = cell.get("model"), cell.get("bicubic")
                n = max(n, *(x["n"] for x in (m, b) if x)) if (m or b) else n
                lim = lim or next((x["limit"] for x in (m, b) if x and x["limit"]), None)
                if m and b and m["n"] != b["n"]:
                    raise SystemExit(f"{d} x{sc}: model and bicubic scored different image counts")
                if m and b:
                    cells.append(f"{m['psnr']:.2f} / {b['psnr']:.2f}")
                elif m or b:
                    cells.append(f"{(m or b)['psnr']:.2f}" + (" / -" if m else ""))
                else:
                    cells.append("-")
            lines.append(f"| {d} ({n}{', first ' + str(lim) if lim else ''}) | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["`*`: LR made from HR (the paper's out-of-distribution protocol).", ""]
    timed = [e for e in entries if e["kind"] == "model"]
    if timed:
        lines += ["Model evaluation time per set and scale (s, device as listed): " +
                  ", ".join(f"{e['set']} x{e['scale']:g} {e['seconds']:.0f}" for e in timed), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
