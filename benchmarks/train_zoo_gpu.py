"""Train the project's GPU zoo weights in one time-boxed run (a lent GPU is held for minutes, not hours).

What it trains, side by side on one GPU, all with ``srkit train`` and the configs in ``configs/``:

* ClassSR-FSRCNN and its baseline FSRCNN-O: ``srkit classsr-prepare`` cuts the training images (with the
  official downscaled copies) and splits the sub-images into three classes by the PSNR of the default model;
  FSRCNN-O (all sub-images) and the three branches (each on its class) train for the same number of steps;
  then the Class-Module learns with the branches frozen.
* EDSR-baseline-LIIF (``configs/liif_edsr_baseline_291.yaml``).
* SMSR x4 fine-tuned from an SMSR x2 model (``configs/smsr_x4_from_x2.yaml``), when ``--smsr-init`` is given.

Every run's step count is fitted to the time left: a short probe run measures seconds per step under the
same load, then the real run gets the steps that fit (its schedule scaled to them) and ``train.time_limit``
as a backstop. Model files and logs are copied to ``--out`` as soon as each run ends.

    PYTHONPATH=src python benchmarks/train_zoo_gpu.py --data DIR --out OUT --budget 470
``DIR`` holds ``train291/`` (T91 + BSD200 HR images) and ``benchmark/Set5`` (validation); it becomes
``SRKIT_DATA``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

T0 = time.time()


def say(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


class Job:
    def __init__(self, name: str, cmd: list[str], work: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = work / f"{name}.log"
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env)
        say(f"start {name}: {' '.join(cmd[3:])}")

    def wait(self) -> int:
        rc = self.proc.wait()
        say(f"{self.name} ended rc={rc}" + ("" if rc == 0 else f"; log tail:\n{tail(self.log)}"))
        return rc


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").replace("\r", "\n").splitlines()[-n:])
    except OSError:
        return ""


def train_cmd(config: str, out: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "srkit", "train", config, f"output_dir={out}", *overrides, "--force", "--no-progress"]


def sec_per_step(run_dir: Path) -> float:
    """Median seconds per step of a probe run, leaving out the first logged interval (warm-up)."""
    log = run_dir / "log.jsonl"
    recs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    vals = [r["sec_per_step"] for r in recs if "sec_per_step" in r]
    vals = sorted(vals[1:] if len(vals) > 1 else vals)
    if not vals:
        say(f"no timing in {log}; assuming 1 s per step")
        return 1.0
    return vals[len(vals) // 2]


def probe_overrides(minutes: float) -> list[str]:
    return ["train.steps=10000000", f"train.time_limit={minutes}", "train.log_every=10", "data.val=null",
            "train.ckpt_every=10000000", "train.tensorboard=false"]


def collect(run_dir: Path, out: Path, name: str) -> None:
    model = run_dir / "model.safetensors"
    if model.is_file():
        shutil.copy(model, out / f"{name}.safetensors")
        say(f"copied {name}.safetensors ({model.stat().st_size / 1e6:.1f} MB)")


def archive_logs(work: Path, out: Path, extra: tuple[str, ...] = (), keep_model=lambda run: False) -> None:
    """``out/logs.tar.gz``: the job logs in ``work`` and each run folder's log, metrics and config files
    (``extra`` names more), plus its ``model.safetensors`` where ``keep_model(run folder name)``."""
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for p in sorted(work.glob("*.log")):
            tar.add(p, arcname=p.name)
        for run in sorted(q for q in work.iterdir() if q.is_dir()):
            names = ["train.log", "log.jsonl", "config.yaml", *extra]
            if keep_model(run.name):
                names.append("model.safetensors")
            for name in names:
                if (run / name).is_file():
                    tar.add(run / name, arcname=f"{run.name}/{name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/zoo_work")
    ap.add_argument("--budget", type=float, default=470.0, help="seconds from start until every run has ended")
    ap.add_argument("--probe", type=float, default=0.3, help="probe length in minutes")
    ap.add_argument("--stage2", type=float, default=100.0, help="seconds kept for ClassSR stage 2")
    ap.add_argument("--smsr-init", default=None, help="SMSR x2 model file to fine-tune x4 from")
    ap.add_argument("--startup", type=float, default=20.0, help="seconds a run needs before its first step")
    args = ap.parse_args()

    data, out, work = Path(args.data).resolve(), Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SRKIT_DATA=str(data), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    end = T0 + args.budget
    train291 = str(data / "train291")
    import torch

    say(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")

    # ---- phase A: ClassSR data preparation, probes of LIIF and SMSR
    prep = work / "classsr_prep"
    shutil.rmtree(prep, ignore_errors=True)
    prep_job = Job("classsr_prepare", [sys.executable, "-m", "srkit", "classsr-prepare", train291, "-o", str(prep),
                                       "--model", "srkit-default", "--downscales", "1,0.9,0.8,0.7,0.6",
                                       "--workers", "8", "--batch", "512", "--quiet"], work, env)
    long_runs = {"liif": ("configs/liif_edsr_baseline_291.yaml", [f"data.train=[{train291}]"])}
    if args.smsr_init:
        long_runs["smsr_x4"] = ("configs/smsr_x4_from_x2.yaml",
                                [f"data.train=[{train291}]", f"model.init={args.smsr_init}"])
    probes = {k: Job(f"probe_{k}", train_cmd(cfg, work / f"probe_{k}", ov + probe_overrides(args.probe)), work, env)
              for k, (cfg, ov) in long_runs.items()}
    rates = {}
    for k, job in probes.items():
        job.wait()
        rates[k] = sec_per_step(work / f"probe_{k}")
    say(f"probe s/step: {rates}")

    # ---- phase B: LIIF and SMSR to the end of the budget
    long_jobs = {}
    for k, (cfg, ov) in long_runs.items():
        avail = max(30.0, end - time.time() - args.startup)
        n = max(100, int(0.85 * avail / rates[k]))
        extra = [f"train.steps={n}", f"train.schedule.milestones=[{int(0.6 * n)},{int(0.8 * n)}]",
                 f"train.time_limit={avail / 60:.2f}", f"train.ckpt_every={n}", "train.val_every=10000000"]
        if k == "smsr_x4":
            extra.append(f"method.args.tau_decay_steps={n // 2}")
        long_jobs[k] = Job(k, train_cmd(cfg, work / k, ov + extra), work, env)

    # ---- ClassSR stage 1: FSRCNN-O and three branches, the same steps
    if prep_job.wait() != 0:
        return 1
    say("classes: " + (prep / "classes.json").read_text().replace("\n", " "))
    stage1 = {"fsrcnn_o": ("configs/classsr_fsrcnn_o.yaml", "all")}
    for b in (1, 2, 3):
        stage1[f"branch{b}"] = (f"configs/classsr_fsrcnn_branch{b}.yaml", f"class{b}")
    common = ["data.workers=3", "train.deterministic=false", "data.val=Set5"]
    probes = {k: Job(f"probe_{k}", train_cmd(cfg, work / f"probe_{k}",
                                             [f"data.train=[{prep / sub}]", *common, *probe_overrides(args.probe)]),
                     work, env)
              for k, (cfg, sub) in stage1.items()}
    for k, job in probes.items():
        job.wait()
        rates[k] = sec_per_step(work / f"probe_{k}")
    slowest = max(rates[k] for k in stage1)
    avail = max(30.0, end - time.time() - args.stage2 - 2 * args.startup)
    n1 = max(100, int(0.85 * avail / slowest))
    say(f"probe s/step: {rates}; stage 1: {n1} steps each in {avail:.0f} s")
    jobs1 = {k: Job(k, train_cmd(cfg, work / k, [f"data.train=[{prep / sub}]", *common, f"train.steps={n1}",
                                                 f"train.schedule.periods=[{n1}]", f"train.time_limit={avail / 60:.2f}",
                                                 f"train.ckpt_every={n1}", "train.val_every=10000000"]), work, env)
             for k, (cfg, sub) in stage1.items()}
    for k, job in jobs1.items():
        job.wait()
    collect(work / "fsrcnn_o", out, "fsrcnn_o_x4")  # the branches travel inside the ClassSR model and logs

    # ---- ClassSR stage 2: the Class-Module with the branches frozen, until the end (official: stops at
    # 40 % of its cosine period, so the period is 2.5x the steps expected)
    avail = max(30.0, end - time.time() - args.startup)
    guess = max(100, int(avail / (rates["fsrcnn_o"] * 4)))
    branches = ",".join(str(work / f"branch{b}" / "model.safetensors") for b in (1, 2, 3))
    j2 = Job("classifier", train_cmd("configs/classsr_fsrcnn_classifier.yaml", work / "classifier", [
        f"data.train=[{prep / 'all'}]", *common, f"method.args.branches=[{branches}]", f"train.steps={guess}",
        f"train.schedule.periods=[{math.ceil(2.5 * guess)}]", f"train.time_limit={avail / 60:.2f}",
        f"train.ckpt_every={guess}", "train.val_every=10000000", "train.log_every=50"]), work, env)
    j2.wait()
    collect(work / "classifier", out, "classsr_fsrcnn_x4")
    for k, job in long_jobs.items():
        job.wait()
        collect(work / k, out, {"liif": "liif_edsr_baseline", "smsr_x4": "smsr_x4"}[k])

    # ---- logs and configs of every run (and the ClassSR branches' models), one archive
    archive_logs(work, out, ("metrics.json", "classes.json"), lambda run: run.startswith("branch"))
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
