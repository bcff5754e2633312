"""Train SMSR x4 from an SMSR x2 model on one lent GPU, one run per sparsity weight, side by side.

Every run is ``srkit train configs/smsr_x4_from_x2.yaml`` with ``method.args.sparsity_weight`` set to one value
of ``--weights`` (0.1 is the official recipe's). The step count is fitted to the time left, as in
``train_zoo_gpu.py``: a short probe of all runs at once measures seconds per step under the shared load, then
the real runs get the steps that fit, with the learning-rate milestones, the temperature decay and the
sparsity ramp scaled to them, and ``train.time_limit`` as a backstop. Model files and logs land in ``--out``.

    PYTHONPATH=src python benchmarks/train_smsr_x4_gpu.py --data DIR --init DIR/smsr_x2.safetensors --out OUT
``DIR`` holds ``train291/`` (T91 + BSD200 HR images); it becomes ``SRKIT_DATA``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from train_zoo_gpu import Job, archive_logs, probe_overrides, say, sec_per_step, train_cmd

T0 = time.time()
CONFIG = "configs/smsr_x4_from_x2.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--init", required=True, help="SMSR x2 model file (srkit safetensors)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/smsr_x4_work")
    ap.add_argument("--weights", default="0.1,0.5,2.5", help="sparsity weights, one run each")
    ap.add_argument("--budget", type=float, default=470.0, help="seconds from start until every run has ended")
    ap.add_argument("--probe", type=float, default=0.3, help="probe length in minutes")
    ap.add_argument("--workers", type=int, default=4, help="data-loader processes per run")
    ap.add_argument("--startup", type=float, default=20.0, help="seconds a run needs before its first step")
    args = ap.parse_args()

    data, out, work = Path(args.data).resolve(), Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, SRKIT_DATA=str(data), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    end = T0 + args.budget
    import torch

    say(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")
    weights = [float(w) for w in args.weights.split(",")]
    base = [f"data.train=[{data / 'train291'}]", f"model.init={Path(args.init).resolve()}",
            f"data.workers={args.workers}"]

    def name(w: float) -> str:
        return f"smsr_x4_w{w:g}"

    probes = {w: Job(f"probe_{name(w)}", train_cmd(CONFIG, work / f"probe_{name(w)}",
                                                   [*base, f"method.args.sparsity_weight={w}",
                                                    *probe_overrides(args.probe)]), work, env)
              for w in weights}
    rates = {}
    for w, job in probes.items():
        job.wait()
        rates[w] = sec_per_step(work / f"probe_{name(w)}")
    say(f"probe s/step: {rates}")

    avail = max(30.0, end - time.time() - args.startup)
    jobs = {}
    for w in weights:
        n = max(100, int(0.85 * avail / rates[w]))
        extra = [f"method.args.sparsity_weight={w}", f"train.steps={n}",
                 f"train.schedule.milestones=[{int(0.6 * n)},{int(0.8 * n)}]",
                 f"method.args.tau_decay_steps={n // 2}", f"method.args.sparsity_warmup_steps={n // 2}",
                 f"train.time_limit={avail / 60:.2f}", f"train.ckpt_every={n}", "train.val_every=10000000",
                 "data.val=null"]
        jobs[w] = Job(name(w), train_cmd(CONFIG, work / name(w), [*base, *extra]), work, env)
    for w, job in jobs.items():
        job.wait()
        model = work / name(w) / "model.safetensors"
        if model.is_file():
            shutil.copy(model, out / f"{name(w)}.safetensors")
            say(f"copied {name(w)}.safetensors")

    archive_logs(work, out)
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
