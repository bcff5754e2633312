"""SMSR training: pixel loss + ramped sparsity loss, Gumbel-softmax temperature annealing.

Loss = sum of ``train.losses`` terms (L1 in the paper) + ``lambda(step) / pixel_range * mean(kept)``, where ``kept`` is the
fraction of each sparse mask module's convolution work that the soft masks keep (``spa * S + D``, averaged
over pixels, channels and layers; :meth:`srkit.archs.smsr.SMSR.forward` with ``return_sparsity=True``) and
``lambda(step) = sparsity_weight * min(step / sparsity_warmup_steps, 1)`` (:func:`sparsity_lambda`).

Why ``/ pixel_range``: the official trainer computes its L1 on [0, 255] images (``rgb_range 255``), so its
``0.1 * sparsity`` is weighed against an L1 255 times larger than srkit's L1 on [0, 1]. Dividing the sparsity term
by 255 gives the same balance, hence the same Adam updates (Adam does not see a common factor of the whole
loss). Without it the sparsity term is 255x too strong: fine-tuning the official x2 weights switched every
spatial mask off within 100 steps (benchmarks/results/zoo_gpu.md).

Temperature (``method.args.tau_schedule``):

* ``"paper"`` (default): linear from ``tau_start`` to ``tau_end`` over ``tau_decay_steps``, then constant:
  ``tau = max(tau_start - (tau_start - tau_end) * step / tau_decay_steps, tau_end)``. The official trainer's
  intended ``max(1 - (epoch - 1) / 500, 0.4)`` with 1000-iteration epochs is 1 -> 0.4 over 300000 steps.
* ``"official"``: the released code's behaviour. Its trainer sets the temperature through a method the modules
  do not have (``_set_tau`` vs ``_update_tau``), so the schedule never applies and tau stays 1 throughout.

All ``method.args`` (defaults = the official x2 recipe in iterations): ``tau_schedule`` ("paper"),
``tau_start`` (1.0), ``tau_end`` (0.4), ``tau_decay_steps`` (300000), ``sparsity_weight`` (0.1),
``sparsity_warmup_steps`` (50000), ``pixel_range`` (255: the pixel range of the L1 that ``sparsity_weight`` is
relative to; 1 weighs it against srkit's [0, 1] L1 directly).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .sr import SRMethod

DEFAULTS: dict[str, Any] = {
    "tau_schedule": "paper",
    "tau_start": 1.0,
    "tau_end": 0.4,
    "tau_decay_steps": 300_000,
    "sparsity_weight": 0.1,
    "sparsity_warmup_steps": 50_000,
    "pixel_range": 255.0,
}


def tau_at(step: int, schedule: str = "paper", start: float = 1.0, end: float = 0.4, decay_steps: int = 300_000) -> float:
    """Gumbel-softmax temperature at 0-based ``step``."""
    if schedule == "official":
        return 1.0
    return max(start - (start - end) * step / max(decay_steps, 1), end)


def sparsity_lambda(step: int, weight: float = 0.1, warmup_steps: int = 50_000) -> float:
    """Weight of the sparsity loss at 0-based ``step``: a linear ramp from 0 to ``weight``."""
    if warmup_steps <= 0:
        return weight
    return weight * min(step / warmup_steps, 1.0)


class SMSRMethod(SRMethod):
    """Sparse-mask SR training (``method.name: smsr``); the model must be ``arch: smsr``."""

    NAME, ARGS, ARCH, GAN = "smsr", DEFAULTS, "smsr", False

    def build(self) -> None:
        super().build()
        if self.opts["tau_schedule"] not in ("paper", "official"):
            raise ConfigError(f"method.args.tau_schedule must be 'paper' or 'official', got {self.opts['tau_schedule']!r}")
        if not float(self.opts["pixel_range"]) > 0:
            raise ConfigError(f"method.args.pixel_range must be positive, got {self.opts['pixel_range']!r}")

    def tau(self, step: int) -> float:
        o = self.opts
        return tau_at(step, o["tau_schedule"], o["tau_start"], o["tau_end"], o["tau_decay_steps"])

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        net = self.networks["net"]
        net.tau = self.tau(step)
        sr, kept = self.run("net", lr, True)
        total, out = self.pixel_terms(sr, hr)
        sparsity = kept.float().mean()
        lam = sparsity_lambda(step, self.opts["sparsity_weight"], self.opts["sparsity_warmup_steps"])
        total = total + lam / float(self.opts["pixel_range"]) * sparsity
        out["sparsity"] = sparsity.detach()
        out["tau"] = torch.tensor(net.tau)
        out["total"] = total
        return out
