"""Optimisers and learning-rate schedules.

Schedules are pure functions of the step (``lr_factor(step)``), so that resuming only needs the step
count and gives exactly the learning rate of an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..errors import ConfigError
from .config import OptimConfig, ScheduleConfig


def build_optimizer(params: Iterable[torch.nn.Parameter] | list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over ``params`` (tensors or param-group dicts) with the config's lr/betas/decay."""
    kwargs = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, **kwargs)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    raise ConfigError(f"unknown optimizer {cfg.name!r}")  # pragma: no cover (Literal-checked)


def lr_factor(cfg: ScheduleConfig, step: int, base_lr: float) -> float:
    """Learning rate at ``step`` (0-based: the rate used for the update that makes step ``step + 1``),
    returned as a multiple of ``base_lr``.

    - constant: 1.
    - multistep: ``gamma ** (number of milestones <= step)``.
    - cosine_restart: within cycle i of length ``periods[i]`` starting at step ``s_i``,
      ``lr = eta_min + w_i * (base_lr - eta_min) * (1 + cos(pi * (step - s_i) / periods[i])) / 2``;
      after the last cycle the rate stays at ``eta_min``.
    A linear warm-up, ``min(1, (step + 1) / warmup_steps)``, multiplies any of them.
    """
    if cfg.name == "constant":
        f = 1.0
    elif cfg.name == "multistep":
        f = cfg.gamma ** sum(1 for m in cfg.milestones if step >= m)
    elif cfg.name == "cosine_restart":
        weights = cfg.restart_weights or [1.0] * len(cfg.periods)
        start = 0
        f = cfg.eta_min / base_lr
        for period, w in zip(cfg.periods, weights):
            if step < start + period:
                t = (step - start) / period
                lr = cfg.eta_min + w * (base_lr - cfg.eta_min) * 0.5 * (1.0 + math.cos(math.pi * t))
                f = lr / base_lr
                break
            start += period
    else:  # pragma: no cover (Literal-checked)
        raise ConfigError(f"unknown schedule {cfg.name!r}")
    if cfg.warmup_steps > 0:
        f *= min(1.0, (step + 1) / cfg.warmup_steps)
    return f


class StepSchedule:
    """Sets every param group's lr to ``initial_lr * lr_factor(step)``; call :meth:`step` after each update."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, step: int = 0) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.last_step = step
        self._apply()

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * lr_factor(self.cfg, self.last_step, g["initial_lr"])

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.last_step = int(state["last_step"])
        self._apply()
