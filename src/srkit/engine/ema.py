"""Exponential moving average of a network's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = d * shadow + (1 - d) * param`` after every update.

    With ``warmup`` (default) the decay of update ``n`` (1-based) is ``d = min(decay, (1 + n) / (10 + n))``,
    so that the random initial weights fade out within the first few hundred steps instead of
    dominating short runs (with decay 0.999 they would still weigh 22 % after 1500 steps); without
    it ``d = decay`` throughout. Floating-point buffers are averaged the same way; other buffers are
    copied. The shadow is a full copy of the network, in eval mode, never trained directly.
    """

    def __init__(self, net: nn.Module, decay: float, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = self.num_updates + 1
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        d = self.current_decay()
        self.num_updates += 1
        src = net.state_dict()
        for name, s in self.shadow.state_dict().items():
            p = src[name].detach()
            if s.is_floating_point():
                s.mul_(d).add_(p.to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(p)

    def state_dict(self) -> dict:
        return {"num_updates": self.num_updates, "weights": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])
        self.shadow.load_state_dict(state["weights"])
