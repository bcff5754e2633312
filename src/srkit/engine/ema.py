"""Exponential moving average of a network's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * param`` after every update.

    Floating-point buffers are averaged the same way; other buffers (counters) are copied.
    The shadow is a full copy of the network, in eval mode, never trained directly.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        src = net.state_dict()
        for name, s in self.shadow.state_dict().items():
            p = src[name].detach()
            if s.is_floating_point():
                s.mul_(self.decay).add_(p.to(s.dtype), alpha=1.0 - self.decay)
            else:
                s.copy_(p)

    def state_dict(self) -> dict:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state)
