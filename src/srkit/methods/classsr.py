"""ClassSR training (``method.name: classsr``, ``model.arch: classsr``), in the official stages.

``method.args``:

* ``stage``: ``"branch"`` (stage 1: train branch ``branch`` alone with L1 on its class's sub-images, e.g.
  ``data.train: [prepared/class1]`` from ``srkit classsr-prepare``), ``"classifier"`` (stage 2, the
  official ``fix_SR_module``: only parameters whose name contains "class" learn, on all sub-images) or
  ``"joint"`` (optional fine-tuning of classifier and branches together, mentioned in the paper).
* ``branch``: 1, 2 or 3 for stage ``branch`` (1 = simple = narrowest).
* ``branches``: three checkpoints loaded into net1/net2/net3 before training (official branch ``.pth``
  files, srkit model files of the backbone, or stage-1 ClassSR model files, whose ``net{k}`` is taken);
  ``null`` entries keep the initial weights.
* ``init``: a ClassSR checkpoint or model file to start from (all weights), loaded before ``branches``.
* ``l1_weight``, ``class_weight``, ``average_weight``: loss weights, official 1000 / 0.5 / 3 (RCAN: 250 for
  L1). The paper writes 2000 : 1 : 6, the same ratio.

Loss (stages classifier/joint): ``l1_weight * L1(SR, HR) + class_weight * L_class + average_weight * L_average``
with the soft-mixture SR (all branches run, weighted by the classifier's probabilities) and

* ``L_class = mean_n [(M - 1) - sum_{i<j} |p_ni - p_nj|]`` (M = 3 classes; 0 when p is one-hot),
* ``L_average = sum_k |sum_n p_nk - N/M| / (4 N / M)`` (0 when each class gets a third of the batch).

Frozen branches run in eval mode (BatchNorm of CARN-M keeps its running statistics), as the official RCAN
variant does; the official FSRCNN/CARN/SRResNet variants leave them in training mode.
Validation upscales whole images: stage ``branch`` with the trained branch alone, the others routed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Method, build_network

_ARGS = {"stage", "branch", "branches", "init", "l1_weight", "class_weight", "average_weight"}


def class_loss(p: torch.Tensor) -> torch.Tensor:
    """``mean_n [(M - 1) - sum_{i<j} |p_ni - p_nj|]`` of probabilities (N, M): pushes each p to one-hot."""
    m = p.shape[1]
    diffs = (p[:, :, None] - p[:, None, :]).abs().sum(dim=(1, 2)) / 2  # each pair counted twice
    return ((m - 1) - diffs).mean()


def average_loss(p: torch.Tensor) -> torch.Tensor:
    """``sum_k |sum_n p_nk - N/M| / (4 N / M)`` of probabilities (N, M): pushes equal use of the classes."""
    n, m = p.shape
    return (p.sum(dim=0) - n / m).abs().sum() / (4 * n / m)


class ClassSRMethod(Method):
    """The ClassSR stages (see the module docstring)."""

    def build(self) -> None:
        from ..convert.classsr import load_branch_states
        from ..convert.common import canonicalize, load_strict, read_checkpoint

        if self.cfg.model.arch != "classsr":
            raise ConfigError(f"method 'classsr' trains model.arch 'classsr', not {self.cfg.model.arch!r} "
                              "(a branch alone is plain 'sr' training of the backbone)")
        args = dict(self.cfg.method.args)
        unknown = set(args) - _ARGS
        if unknown:
            raise ConfigError(f"method 'classsr': unknown method.args {sorted(unknown)}; known: {sorted(_ARGS)}")
        self.stage = args.get("stage", "classifier")
        if self.stage not in ("branch", "classifier", "joint"):
            raise ConfigError(f"method 'classsr': stage must be 'branch', 'classifier' or 'joint', not {self.stage!r}")
        self.branch = None
        if self.stage == "branch":
            b = args.get("branch")
            if b not in (1, 2, 3):
                raise ConfigError(f"method 'classsr': stage 'branch' needs branch: 1, 2 or 3, got {b!r}")
            self.branch = b - 1
        self.weights = (float(args.get("l1_weight", 1000.0)), float(args.get("class_weight", 0.5)),
                        float(args.get("average_weight", 3.0)))
        net, self.descriptor = build_network("classsr", self.arch_kwargs())
        if args.get("init"):
            state, _ = canonicalize(read_checkpoint(args["init"]), source=str(args["init"]))
            load_strict(net, state, source=str(args["init"]), arch="classsr")
        branches = args.get("branches")
        if branches is not None:
            if not isinstance(branches, (list, tuple)):
                raise ConfigError("method 'classsr': branches must be a list of three paths (or nulls)")
            load_branch_states(net, list(branches))
        # Which parameters learn: the official rule for stage 2 is "the name contains 'class'".
        for name, p in net.named_parameters():
            if self.stage == "branch":
                p.requires_grad_(name.startswith(f"net{self.branch + 1}."))
            elif self.stage == "classifier":
                p.requires_grad_("class" in name)
            else:
                p.requires_grad_(True)
        net.train_branch = self.branch
        self.networks["net"] = net.to(self.device)

    def _frozen_to_eval(self) -> None:
        net = self.networks["net"]
        if self.stage == "classifier":
            for b in net.branches:
                b.eval()
        elif self.stage == "branch":
            net.classifier.eval()
            for k, b in enumerate(net.branches):
                if k != self.branch:
                    b.eval()

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        self._frozen_to_eval()
        sr = self.run("net", lr)
        l1 = F.l1_loss(sr.float(), hr)
        if self.stage == "branch":
            return {"total": l1, "l1": l1.detach()}
        p = self.networks["net"].last_probs.float()
        lc, la = class_loss(p), average_loss(p)
        w1, w2, w3 = self.weights
        total = w1 * l1 + w2 * lc + w3 * la
        shares = torch.bincount(p.argmax(1), minlength=3).float() / p.shape[0]
        return {"total": total, "l1": l1.detach(), "class_loss": lc.detach(), "average_loss": la.detach(),
                "share_simple": shares[0], "share_medium": shares[1], "share_hard": shares[2]}

    @torch.no_grad()
    def infer(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        if self.stage == "branch":
            return net.branches[self.branch](lr)
        return net(lr)  # eval mode: routed whole-image inference


__all__ = ["ClassSRMethod", "average_loss", "class_loss"]
