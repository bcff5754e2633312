"""The small interface between the training engine and a method.

The engine owns the loop, devices, mixed precision, DDP, EMA, checkpoints and logs. A method owns
what is specific to a recipe: which networks exist, which losses they learn from, which optimisers
update what, and in which order within one iteration.

Per iteration the engine calls, for each name in ``updates(step)``: zero the grads of optimiser
``name``, ``losses = training_step(batch, step, name)`` under autocast, back-propagate
``losses["total"]``, clip, step that optimiser. The other entries of ``losses`` are logged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..descriptor import ModelDescriptor
from ..engine.config import Config, OptimConfig, ScheduleConfig


def build_network(arch: str, kwargs: dict[str, Any]) -> tuple[nn.Module, ModelDescriptor]:
    """An srkit architecture and its descriptor (``srkit.archs.build`` / ``describe``)."""
    from .. import archs

    return archs.build(arch, **kwargs), archs.describe(arch, **kwargs)


class Method:
    """Base class of training methods. Subclasses set ``self.networks`` in :meth:`build`.

    ``networks["net"]`` is the network that validation runs, that EMA tracks and that the model
    file stores. ``runners`` holds the same networks as the forward pass should call them (the
    engine replaces entries by their DDP wrappers); use ``self.run(name, x)`` in training steps.
    """

    def __init__(self, cfg: Config, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.networks: dict[str, nn.Module] = {}
        self.runners: dict[str, nn.Module] = {}
        self.descriptor: ModelDescriptor | None = None

    # -- construction
    def build(self) -> None:
        """Create ``self.networks`` (with key "net"), the descriptor and the losses."""
        raise NotImplementedError

    def arch_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the saved network: ``model.args`` plus ``scale`` from the data section."""
        kwargs = dict(self.cfg.model.args)
        kwargs.setdefault("scale", self.cfg.data.scale)
        return kwargs

    gan_on: bool = False
    """Whether ``networks["disc"]`` is trained adversarially (``train.gan.weight > 0``); set in :meth:`build`."""

    def optimizers(self) -> dict[str, tuple[list, OptimConfig, ScheduleConfig]]:
        """Optimiser name -> (parameters or param groups, optimiser config, schedule config). With
        :attr:`gan_on`, also "disc": the discriminator with ``train.gan.optimizer`` at a constant rate."""
        params = [p for p in self.networks["net"].parameters() if p.requires_grad]
        opts = {"net": (params, self.cfg.train.optimizer, self.cfg.train.schedule)}
        if self.gan_on:
            opts["disc"] = (list(self.networks["disc"].parameters()), self.cfg.train.gan.optimizer,
                            ScheduleConfig(name="constant"))
        return opts

    def adversarial(self, step: int) -> bool:
        """Whether iteration ``step`` (0-based) trains adversarially (``train.gan.start_step`` on)."""
        return self.gan_on and step >= self.cfg.train.gan.start_step

    # -- training
    def updates(self, step: int) -> list[str]:
        """Names of the optimisers that step in iteration ``step`` (0-based), in order."""
        return ["net"]

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        """Loss terms for optimiser ``update``; key "total" is the one back-propagated."""
        raise NotImplementedError

    def train_dataset(self) -> Any:
        """The training set when the method's samples are not the engine's LR/HR pairs (e.g. LR + reference +
        HR for RefSR); None: the engine builds pairs from ``data.train``."""
        return None

    def learning_rate(self, update: str, step: int) -> float | None:
        """The learning rate of optimiser ``update`` at iteration ``step`` when the method sets it itself (for
        recipes that ``train.schedule`` cannot state, e.g. DASR's per-stage rates); None: the schedule's."""
        return None

    def run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call network ``name`` as the forward pass should (through its DDP wrapper under torchrun)."""
        return self.runners.get(name, self.networks[name])(*args, **kwargs)

    # -- evaluation
    @torch.no_grad()
    def infer(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """SR of a full LR image (float32 RGB [0, 1], NCHW), padded to the descriptor's constraints."""
        k = self.descriptor.multiple_of if self.descriptor else 1
        h, w = lr.shape[-2:]
        ph, pw = (-h) % k, (-w) % k
        if ph or pw:
            lr = nn.functional.pad(lr, (0, pw, 0, ph), mode="reflect")
        sr = net(lr)
        s = self.cfg.data.scale
        return sr[..., : h * s, : w * s]

    # -- extra state of the method itself (counters, temperatures), saved in checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
