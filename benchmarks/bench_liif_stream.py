"""LIIF outputs larger than memory: peak RSS of ``srkit upscale`` with and without strip-by-strip writing.

Makes a random LR image and a LIIF model file (random weights, or ``--model``) in a temporary folder and runs
the real command line, each run in its own process, recording its peak RSS (``ru_maxrss`` of the child)
and wall time. ``--max-memory`` sets the budget: outputs whose in-memory estimate exceeds it are streamed
to the PNG in strips (see ``srkit.inference.streaming``); a large ``--max-memory`` forces the in-memory path.

    .venv/bin/python benchmarks/bench_liif_stream.py --cases 128x30 --budgets 256MiB 64GiB
    .venv/bin/python benchmarks/bench_liif_stream.py --arch tiny --cases 128x30 256x30 --budgets 256MiB

``--arch edsr`` is EDSR-baseline-LIIF (the paper's model, about 50 us per output pixel on 2 CPU threads);
``--arch tiny`` is a LIIF with a 1-block, 8-feature encoder and a 16-16 MLP, whose memory profile has the
same output-size-dependent parts (query chunks, strips, PNG encoding) at a fraction of the time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCHS = {
    "edsr": {"encoder": "edsr_baseline"},
    "tiny": {"encoder": "edsr_baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16]},
}


def _prepare(folder: Path, arch: str, sides: set[int]) -> str:
    import numpy as np
    import torch

    from srkit import archs
    from srkit.data.io import write_image
    from srkit.model_file import save_model

    torch.manual_seed(0)
    model = folder / f"liif_{arch}.safetensors"
    save_model(model, archs.build("liif", **ARCHS[arch]), "liif", ARCHS[arch])
    rng = np.random.default_rng(0)
    for side in sides:
        # smooth random content (a random image upscaled) so that PNG compression is realistic
        small = rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3)).astype(np.uint8)
        img = np.kron(small, np.ones((8, 8, 1), np.uint8))[:side, :side]
        write_image(folder / f"lr{side}.png", np.ascontiguousarray(img))
    return str(model)


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _measure(cmd: list[str], threads: int, max_seconds: float | None, tmp_glob: tuple[Path, str]) -> dict:
    """Run ``cmd`` as a child process and return its peak RSS (``ru_maxrss`` from ``wait4``) and wall time.

    With ``max_seconds`` the child is stopped after that long; the peak RSS is then the last ``VmHWM`` read
    from ``/proc`` and ``partial_mb`` the size of the PNG written so far (its temporary file).
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    hwm, partial = None, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:  # finished: the kernel's exact peak RSS of the child
            err = proc.stderr.read() if proc.stderr else ""
            return {"rc": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - t0,
                    "peak_rss_mb": usage.ru_maxrss / 1024, "stopped": False, "partial_mb": None,
                    "stderr": err.strip().splitlines()}
        hwm = _vm_hwm_mb(proc.pid) or hwm
        folder, pattern = tmp_glob
        sizes = [t.stat().st_size for t in folder.glob(pattern) if t.exists()]
        partial = sum(sizes) / 1e6 if sizes else partial
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            proc.kill()
            os.wait4(proc.pid, 0)
            return {"rc": None, "seconds": time.perf_counter() - t0, "peak_rss_mb": hwm, "stopped": True,
                    "partial_mb": partial, "stderr": []}
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["128x30"], help="LRSIDExSCALE, e.g. 128x30 256x30")
    ap.add_argument("--budgets", nargs="+", default=["256MiB"], help="--max-memory values to run each case with")
    ap.add_argument("--arch", choices=list(ARCHS), default="edsr")
    ap.add_argument("--model", default=None, help="a LIIF model file instead of random weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (prints its path)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop each run after this long and report the peak RSS so far (VmHWM) and the PNG bytes "
                    "written (for cases too slow to finish on a CPU)")
    args = ap.parse_args()

    cases = [(int(c.split("x")[0]), int(c.split("x")[1])) for c in args.cases]
    folder = Path(tempfile.mkdtemp(prefix="bench_liif_stream_"))
    model = _prepare(folder, args.arch, {s for s, _ in cases})
    if args.model:
        model = args.model
    rows = []
    for side, scale in cases:
        for budget in args.budgets:
            out = folder / f"out_{side}x{scale}_{budget}.png"
            cmd = ["srkit", "upscale", str(folder / f"lr{side}.png"), "--model", model, "--scale", str(scale),
                   "-o", str(out), "--device", "cpu", "--max-memory", budget, "--overwrite"]
            shown = " ".join(["srkit"] + cmd[1:])
            cmd = [sys.executable, "-c", f"import torch; torch.set_num_threads({args.threads}); "
                   "from srkit.cli import main; raise SystemExit(main())", *cmd[1:]]
            t0 = time.time()
            r = _measure(cmd, args.threads, args.max_seconds, (folder, f".{out.name}.*.tmp"))
            streamed = any("strips" in line for line in r["stderr"]) or (r["stopped"] and r["partial_mb"] is not None)
            r.update(case=f"{side}x{side} x{scale}", out=f"{side * scale}x{side * scale}", budget=budget,
                     streamed=streamed, file_mb=out.stat().st_size / 1e6 if out.exists() else None,
                     command=shown, load_avg=os.getloadavg()[0], started=t0)
            rows.append(r)
            how = f"stopped after {r['seconds']:.0f} s, {r['partial_mb'] or 0:.1f} MB of PNG written" if r["stopped"] \
                else f"{r['seconds']:.1f} s, rc {r['rc']}"
            print(f"{r['case']:>14} -> {r['out']:>9}  budget {budget:>7}  {'strips' if streamed else 'in memory':>9}  "
                  f"peak RSS {r['peak_rss_mb'] or 0:7.0f} MB  {how}", flush=True)
    print(f"\narch {args.arch}, {args.threads} threads; commands (model and image in {folder}):")
    for r in rows:
        print(f"  {r['command']}")
    print("\n| LR | output | --max-memory | path | peak RSS (MB) | wall (s) | PNG (MB) | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        wall = f"stopped at {r['seconds']:.0f}" if r["stopped"] else f"{r['seconds']:.1f}"
        png = f"{r['partial_mb'] or 0:.1f} (partial)" if r["stopped"] else f"{r['file_mb'] or 0:.1f}"
        print(f"| {r['case']} | {r['out']} | {r['budget']} | {'strips' if r['streamed'] else 'in memory'} | "
              f"{r['peak_rss_mb'] or 0:.0f} | {wall} | {png} | {r['load_avg']:.1f} |")
    if not args.keep:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
