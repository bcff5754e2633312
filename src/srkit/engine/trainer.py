"""The training loop: data order, mixed precision, EMA, clipping, validation, logs, checkpoints, resume.

Resuming from a checkpoint continues bit-identically on CPU: the data order is a function of
(seed, epoch) and the checkpoint records the position within the epoch; augmentation and crops are
functions of (seed, epoch, index); the learning rate is a function of the step; weights, optimiser
moments, EMA, AMP scaler and RNG states are all restored.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SrkitError
from . import checkpoint as ckpt
from . import distributed as D
from .config import Config, dump_config, to_dict
from .ema import EMA
from .optim import StepSchedule, build_optimizer

MODEL_FILE = "model.safetensors"
# files and folders a run writes; --force removes these and nothing else
RUN_ARTEFACTS = ("checkpoints", "tb", "log.jsonl", "train.log", "config.yaml", "metrics.json", MODEL_FILE)


def pick_device(name: str, info: D.DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and info.enabled:
        name = f"cuda:{info.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SrkitError("train.device asks for CUDA, but no CUDA device is available")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def build_train_set(cfg: Config):
    """The paired training dataset of ``data.train`` (set names or HR folders), cropped and augmented."""
    from ..data.datasets import PairedImageDataset
    from ..data.sets import train_images

    d = cfg.data
    ds = PairedImageDataset(
        train_images(d.train), d.scale, patch_size=d.patch_size, augment=d.augment,
        lr_border=d.lr_border, cache=d.cache, repeat=d.repeat, seed=cfg.seed,
    )
    if d.cache and d.workers > 0:
        ds.preload()  # decode once here so that forked workers share the images
    return ds


def build_val_set(cfg: Config):
    """Full-size validation pairs of ``data.val`` (None when validation is off)."""
    if not cfg.data.val:
        return None
    from ..data.datasets import PairedImageDataset
    from ..data.sets import resolve_pairs

    return PairedImageDataset(resolve_pairs(cfg.data.val, cfg.data.scale), cfg.data.scale,
                              lr_border=cfg.data.lr_border, cache=True)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


class Trainer:
    """Runs one training job described by a :class:`Config`.

    ``train_set`` / ``val_set`` replace the datasets the config names (any map-style dataset of
    ``{"lr", "hr", ...}`` float32 CHW [0, 1] items, optionally with ``set_epoch``). ``resume``
    continues from the newest checkpoint in the output directory; ``force`` allows writing into a
    non-empty output directory (removing the artefacts of the run that was there).
    """

    def __init__(self, cfg: Config, *, resume: bool = False, force: bool = False, train_set=None,
                 val_set=None, progress: bool = True) -> None:
        self.cfg = cfg
        self.resume = resume
        self.force = force
        self._train_set = train_set
        self._val_set = val_set
        self.progress = progress
        self.out = cfg.out_path
        self.ckpt_dir = self.out / "checkpoints"
        self.step = 0
        self.epoch = 0
        self.pos = 0
        self._tb = None
        self._log_files: list = []

    # ------------------------------------------------------------------ setup
    def _prepare_output(self) -> Path | None:
        """Check the output directory rule; return the checkpoint to resume from, if any."""
        out = self.out
        nonempty = out.is_dir() and any(out.iterdir())
        if self.resume:
            latest = ckpt.latest_checkpoint(self.ckpt_dir)
            if latest is None and nonempty:
                raise SrkitError(f"--resume: no checkpoint in {self.ckpt_dir}, and {out} is not empty")
            return latest
        if nonempty:
            if not self.force:
                raise SrkitError(
                    f"output directory {out} is not empty; use --resume to continue that run "
                    f"or --force to replace it"
                )
            if self.info.is_main:
                for name in RUN_ARTEFACTS:
                    p = out / name
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
        return None

    def _note(self, msg: str) -> None:
        if self.info.is_main:
            print(f"srkit train: {msg}", file=sys.stderr)
            self._text(msg)

    def _text(self, msg: str) -> None:
        if self.info.is_main and self._log_files:
            self._log_files[0].write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
            self._log_files[0].flush()

    def _jsonl(self, record: dict[str, Any]) -> None:
        if self.info.is_main and self._log_files:
            self._log_files[1].write(json.dumps(record) + "\n")
            self._log_files[1].flush()
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, record["step"])

    def _open_logs(self) -> None:
        if not self.info.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self._log_files = [open(self.out / "train.log", "a"), open(self.out / "log.jsonl", "a")]
        if self.cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._note("tensorboard is not installed: logging to log.jsonl and train.log only")
            else:
                self._tb = SummaryWriter(str(self.out / "tb"))

    def _close_logs(self) -> None:
        for f in self._log_files:
            f.close()
        self._log_files = []
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _amp(self) -> tuple[Any, torch.amp.GradScaler]:
        amp = self.cfg.train.amp
        on_gpu = self.device.type == "cuda"
        if amp != "none" and not on_gpu:
            self._note(f"train.amp={amp} needs a GPU; this CPU run trains in float32")
        if amp == "none" or not on_gpu:
            ctx = contextlib.nullcontext
        else:
            dtype = torch.bfloat16 if amp == "bf16" else torch.float16
            ctx = lambda: torch.autocast(device_type="cuda", dtype=dtype)  # noqa: E731
        scaler = torch.amp.GradScaler("cuda", enabled=(amp == "fp16" and on_gpu))
        return ctx, scaler

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "pos": self.pos,
            "world_size": self.info.world_size,
            "networks": {k: D.unwrap(v).state_dict() for k, v in self.method.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedules": {k: s.state_dict() for k, s in self.schedules.items()},
            "ema": self.ema.state_dict() if self.ema else None,
            "scaler": self.scaler.state_dict(),
            "method": self.method.state_dict(),
            "config": to_dict(self.cfg),
        }

    def save_checkpoint(self) -> None:
        rng = D.all_gather_object(ckpt.rng_state(), self.info)  # every rank's RNG, saved by rank 0
        if self.info.is_main:
            state = self.state_dict()
            state["rng"] = rng
            ckpt.atomic_save(state, ckpt.checkpoint_path(self.ckpt_dir, self.step))
            ckpt.prune(self.ckpt_dir, self.cfg.train.keep_checkpoints)
        D.barrier(self.info)

    def load_checkpoint(self, path: Path) -> None:
        state = ckpt.load_checkpoint(path)
        try:
            for k, net in self.method.networks.items():
                D.unwrap(net).load_state_dict(state["networks"][k])
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.schedules.items():
                s.load_state_dict(state["schedules"][k])
            if self.ema is not None:
                if state["ema"] is None:
                    self._note("the checkpoint has no EMA weights; EMA restarts from the current weights")
                else:
                    self.ema.load_state_dict(state["ema"])
            self.scaler.load_state_dict(state["scaler"])
            self.method.load_state_dict(state["method"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise SrkitError(f"checkpoint {path} does not fit this config: {e}") from None
        self.step, self.epoch, self.pos = state["step"], state["epoch"], state["pos"]
        rng = state["rng"]
        if len(rng) == self.info.world_size:
            ckpt.set_rng_state(rng[self.info.rank])
        else:
            self._note(f"checkpoint was written by {len(rng)} processes, now {self.info.world_size}: "
                       "RNG states re-seeded, the run is no longer bit-identical")
            self._seed(self.cfg.seed + 7919 * self.step + self.info.rank)
        changed = _diff(state.get("config", {}), to_dict(self.cfg))
        if changed:
            self._note(f"config differs from the checkpoint's in: {', '.join(changed)}")
        self._note(f"resumed from {path} at step {self.step}")

    def _load_init(self, net: nn.Module, path: str, partial: bool) -> None:
        """``model.init``: start from the weights in ``path`` (all of them, or the fitting ones if ``partial``)."""
        from ..convert.common import canonicalize, load_strict, read_checkpoint

        state, _ = canonicalize(read_checkpoint(path), source=path)
        if not partial:
            load_strict(net, state, source=path, arch=self.cfg.model.arch)
            self._note(f"model.init: all {len(state)} tensors loaded from {path}")
            return
        own = net.state_dict()
        fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        if not fits:
            raise SrkitError(f"model.init: no tensor of {path} fits the {self.cfg.model.arch} network")
        net.load_state_dict(fits, strict=False)
        kept = sorted(k for k in own if k not in fits)
        dropped = sorted(k for k in state if k not in fits)
        self._note(f"model.init: {len(fits)} of {len(own)} tensors loaded from {path}"
                   + (f"; kept as initialised: {', '.join(kept)}" if kept else "")
                   + (f"; not used: {', '.join(dropped)}" if dropped else ""))

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR/SSIM of the validated network (EMA weights when EMA is on) over the validation set."""
        if self.val_set is None:
            return {}
        from .. import metrics
        from ..metrics.presets import get_preset

        preset = get_preset(self.cfg.data.val_preset)
        scale = self.cfg.data.scale
        border, y = preset.crop_border(scale), preset.y_channel
        net = self.ema.shadow if self.ema else D.unwrap(self.method.networks["net"])
        was_training = net.training
        net.eval()
        psnrs, ssims = [], []
        for i in range(len(self.val_set)):
            item = self.val_set[i]
            lr = item["lr"].unsqueeze(0).to(self.device)
            hr = item["hr"].unsqueeze(0).to(self.device)
            sr = self.method.infer(net, lr).float().clamp(0, 1)
            sr = torch.round(sr * 255.0) / 255.0  # what an 8-bit output image would hold
            psnrs.append(float(metrics.psnr(sr, hr, crop_border=border, y_channel=y)))
            ssims.append(float(metrics.ssim(sr, hr, crop_border=border, y_channel=y)))
        net.train(was_training)
        return {"psnr": sum(psnrs) / len(psnrs), "ssim": sum(ssims) / len(ssims)}

    def _validate_and_log(self) -> dict[str, float]:
        self._val_step = self.step
        result = self.validate() if self.info.is_main else {}
        if result:
            name = self.cfg.data.val or "val"
            self._jsonl({"step": self.step, **{f"val/{name}/{k}": v for k, v in result.items()}})
            self._text(f"step {self.step} val {name}: PSNR {result['psnr']:.3f} dB, SSIM {result['ssim']:.4f}")
        D.barrier(self.info)
        return result

    # ------------------------------------------------------------------ main
    def run(self) -> dict[str, Any]:
        """Train to ``train.steps``; returns ``{"step", "metrics", "model_file"}``."""
        cfg = self.cfg
        want = cfg.train.device
        dev_type = "cuda" if want.startswith("cuda") or (want == "auto" and torch.cuda.is_available()) else "cpu"
        self.info = D.setup(dev_type)
        try:
            return self._run()
        finally:
            self._close_logs()
            D.teardown()

    def _run(self) -> dict[str, Any]:
        from ..methods import get_method

        cfg, info = self.cfg, self.info
        self.device = pick_device(cfg.train.device, info)
        # rank 0 checks the output directory; every rank learns the outcome (or the error)
        outcome: tuple[Path | None, str | None] = (None, None)
        if info.is_main:
            try:
                outcome = (self._prepare_output(), None)
            except SrkitError as e:
                outcome = (None, str(e))
        resume_from, error = D.broadcast_object(outcome, info)
        if error:
            raise SrkitError(error)
        D.barrier(info)
        self._open_logs()
        if info.is_main:
            (self.out / "config.yaml").write_text(dump_config(cfg))
        if self.device.type == "cuda" and cfg.train.deterministic:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

        # same initial weights on every rank (DDP also broadcasts rank 0's)
        self._seed(cfg.seed)
        self.method = get_method(cfg.method.name)(cfg, self.device)
        self.method.build()
        net = self.method.networks["net"]
        if cfg.model.init:
            self._load_init(net, cfg.model.init, cfg.model.init_partial)
        self.ema = EMA(net, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
        self.optimizers, self.schedules = {}, {}
        for name, (params, ocfg, scfg) in self.method.optimizers().items():
            self.optimizers[name] = build_optimizer(params, ocfg)
            self.schedules[name] = StepSchedule(self.optimizers[name], scfg)
        self.autocast, self.scaler = self._amp()
        for name, module in self.method.networks.items():
            module.train()
            self.method.runners[name] = D.wrap(module, info, self.device)

        train_set = self._train_set if self._train_set is not None else self.method.train_dataset()
        if train_set is None:
            train_set = build_train_set(cfg)
        self.val_set = self._val_set if self._val_set is not None else (build_val_set(cfg) if info.is_main else None)
        sampler = D.ShardedBatchSampler(len(train_set), cfg.data.batch_size, cfg.seed, info)
        loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=sampler, num_workers=cfg.data.workers, collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )

        self._seed(cfg.seed + 104729 * (1 + info.rank))  # training-time randomness, per rank
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        elif self.resume:
            self._note(f"--resume: nothing to resume in {self.out}, starting a new run")

        n_params = sum(p.numel() for p in net.parameters())
        self._note(
            f"{cfg.name}: {cfg.model.arch} ({n_params / 1e6:.3f} M params), {len(train_set)} training "
            f"samples, global batch {cfg.data.batch_size} over {info.world_size} process(es), "
            f"device {self.device}, {cfg.train.steps} steps"
        )
        self._val_step = -1
        metrics = self._loop(loader, sampler, train_set)
        if self._val_step != self.step:  # the same decision on every rank
            metrics = self._validate_and_log()
        model_file = self._save_model(metrics, len(train_set)) if info.is_main else None
        D.barrier(info)
        return {"step": self.step, "metrics": metrics, "model_file": model_file}

    def _loop(self, loader, sampler: D.ShardedBatchSampler, train_set) -> dict[str, float]:
        from tqdm import tqdm

        cfg, info = self.cfg, self.info
        steps = cfg.train.steps
        bar = tqdm(total=steps, initial=self.step, desc=cfg.name, dynamic_ncols=True,
                   disable=not (info.is_main and self.progress), file=sys.stderr)
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        deadline = t0 + 60.0 * cfg.train.time_limit if cfg.train.time_limit > 0 else math.inf
        metrics: dict[str, float] = {}
        while self.step < steps:
            if self.pos >= sampler.batches_per_epoch:
                self.epoch, self.pos = self.epoch + 1, 0
            sampler.set_epoch(self.epoch, self.pos)
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(self.epoch)
            for batch in loader:
                logs = self.train_step(batch)
                self.pos += 1
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                lr = self.schedules["net"].get_last_lr()[0]
                bar.update(1)
                bar.set_postfix(loss=f"{logs['total']:.4g}", lr=f"{lr:.3g}", refresh=False)
                if self.step % cfg.train.log_every == 0 or self.step == steps:
                    mean = D.mean_over_ranks({k: v / count for k, v in sums.items()}, info, self.device)
                    dt = time.perf_counter() - t0
                    self._jsonl({"step": self.step, "epoch": self.epoch, "lr": lr,
                                 **{f"loss/{k}": v for k, v in mean.items()}, "sec_per_step": dt / count})
                    self._text(f"step {self.step} lr {lr:.3g} " + " ".join(f"{k} {v:.5g}" for k, v in mean.items()))
                    sums, count, t0 = {}, 0, time.perf_counter()
                if self.step % cfg.train.val_every == 0:
                    metrics = self._validate_and_log()
                    if metrics:
                        bar.write(f"step {self.step}: val PSNR {metrics['psnr']:.3f} dB SSIM {metrics['ssim']:.4f}")
                out_of_time = deadline < math.inf and self._time_is_up(deadline)
                if self.step % cfg.train.ckpt_every == 0 or self.step == steps or out_of_time:
                    self.save_checkpoint()
                if out_of_time:
                    self._note(f"train.time_limit ({cfg.train.time_limit:g} min) reached at step {self.step} "
                               f"of {steps}; --resume continues")
                    steps = self.step  # leaves both loops
                if self.step >= steps:
                    break
        bar.close()
        return metrics

    def _time_is_up(self, deadline: float) -> bool:
        """The same answer on every rank: rank 0's clock decides (checked every 10 steps under DDP)."""
        if not self.info.enabled:
            return time.perf_counter() >= deadline
        if self.step % 10:
            return False
        return bool(D.broadcast_object(time.perf_counter() >= deadline, self.info))

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One iteration: every update the method asks for, then schedules, scaler and EMA."""
        batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                 for k, v in batch.items()}
        logs: dict[str, float] = {}
        for name in self.method.updates(self.step):
            opt = self.optimizers[name]
            opt.zero_grad(set_to_none=True)
            with self.autocast():
                losses = self.method.training_step(batch, self.step, name)
            total = losses["total"]
            if not torch.isfinite(total):
                raise SrkitError(f"the {name} loss is {total.item()} at step {self.step}; training diverged")
            self.scaler.scale(total).backward()
            own_lr = self.method.learning_rate(name, self.step)
            if own_lr is not None:
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] = own_lr  # the schedule (constant) then keeps it for the log
            if self.cfg.train.grad_clip > 0:
                self.scaler.unscale_(opt)
                params = [p for g in opt.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
            self.scaler.step(opt)
            prefix = "" if name == "net" else f"{name}_"
            logs.update({prefix + k: float(v.detach()) for k, v in losses.items()})
        self.scaler.update()
        for s in self.schedules.values():
            s.step()
        if self.ema is not None:
            self.ema.update(D.unwrap(self.method.networks["net"]))
        self.step += 1
        return logs

    def _save_model(self, metrics: dict[str, float], n_train: int) -> Path:
        from ..model_file import save_model

        cfg = self.cfg
        net: nn.Module = self.ema.shadow if self.ema else D.unwrap(self.method.networks["net"])
        metadata = {
            "recipe": to_dict(cfg),
            "data": {"train": list(cfg.data.train), "train_samples": n_train, "scale": cfg.data.scale,
                     "patch_size": cfg.data.patch_size, "lr_border": cfg.data.lr_border},
            "metrics": {cfg.data.val or "val": {"preset": cfg.data.val_preset, **metrics}} if metrics else {},
            "steps": self.step,
            "weights": "ema" if self.ema else "raw",
        }
        path = self.out / MODEL_FILE
        save_model(path, net, cfg.model.arch, self.method.arch_kwargs(), metadata=metadata, overwrite=True)
        if metrics:
            (self.out / "metrics.json").write_text(json.dumps({"step": self.step, **metrics}, indent=1))
        self._note(f"model written to {path}" + (f" (val PSNR {metrics['psnr']:.3f} dB)" if metrics else ""))
        return path


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b)) else [prefix]


def train(cfg: Config, *, resume: bool = False, force: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Run a training job; see :class:`Trainer`."""
    return Trainer(cfg, resume=resume, force=force, **kwargs).run()
