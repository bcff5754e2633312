"""ClassSR (Kong et al., "ClassSR: A General Framework to Accelerate Super-Resolution Networks by Data
Characteristic", CVPR 2021): a small classifier sorts 32x32 LR sub-images into simple / medium / hard and
each class goes to a branch of the same backbone at a different width.

Conventions (srkit): RGB float32 in [0, 1], NCHW, in and out. The classifier always sees [0, 1] input
(the official RCAN variant feeds it ``x / 255`` of its [0, 255] input: the same numbers); each backbone
adapts its own range internally.

Modes of :class:`ClassSR`:

* ``train()``: :meth:`ClassSR.forward` returns the soft mixture ``sum_k p_k * branch_k(x)`` of all three
  branches, batched (the official FSRCNN/CARN/SRResNet wrappers loop over samples; the result is the same),
  and keeps the class probabilities in ``last_probs`` for the losses (:meth:`ClassSR.mix` returns both).
  With ``train_branch = k`` set (stage 1) it runs branch ``k`` alone.
* ``eval()``: ``forward`` routes. A 32x32 input (or a batch of them) goes through the classifier and each
  sample through the branch of its argmax, samples of one class batched together. A larger image is cut into
  32x32 patches at stride 28 and stitched (:func:`srkit.inference.classsr_routing.routed_upscale`), so
  ``net(lr)`` upscales whole images of any size.

State-dict keys are the official ones: ``classifier.CondNet.{0,2,4,6,8}``, ``classifier.lastOut``,
``net1.*`` (simple), ``net2.*`` (medium), ``net3.*`` (hard) with each backbone's own key layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptor import ModelDescriptor
from ..errors import ConfigError

# Which constructor argument sets a backbone's width, and the official ClassSR widths (branch 1/2/3).
WIDTH_ARG: dict[str, str] = {"fsrcnn": "d", "carn_m": "nf", "msrresnet": "nf", "rcan": "n_feats"}
OFFICIAL_WIDTHS: dict[str, tuple[int, int, int]] = {
    "fsrcnn": (16, 36, 56),
    "carn_m": (36, 52, 64),
    "msrresnet": (36, 52, 64),
    "rcan": (36, 50, 64),
}
# The official backbone arguments that are not srkit's defaults (ClassSR's RCAN branches are full RCANs).
OFFICIAL_BACKBONE_ARGS: dict[str, dict[str, Any]] = {
    "fsrcnn": {"s": 12, "m": 4},
    "carn_m": {"group": 4},
    "msrresnet": {"nb": 16},
    "rcan": {"n_resgroups": 10, "n_resblocks": 20, "reduction": 16},
}

PATCH_SIZE = 32
"""LR side of the sub-images ClassSR classifies (training crops and test patches)."""
PATCH_STRIDE = 28
"""Step between test patches (4 LR pixels of overlap), as in the official test."""


class Classifier(nn.Module):
    """The Class-Module: conv 4x4 stride 4 (3 -> 128), LeakyReLU(0.1), three 1x1 convs 128 -> 128 each
    followed by LeakyReLU(0.1), 1x1 conv 128 -> 32, global average pool, linear 32 -> ``n_classes``.

    Input (N, 3, H, W) RGB [0, 1] (H, W multiples of 4; 32x32 in ClassSR). Output: logits (N, n_classes).
    The official code pools with a window as tall as the feature map, which equals the global mean on the
    square patches it is used on; this module takes the global mean for any shape.
    """

    def __init__(self, n_classes: int = 3, width: int = 128, out_features: int = 32) -> None:
        super().__init__()
        act = lambda: nn.LeakyReLU(0.1, inplace=True)  # noqa: E731
        self.CondNet = nn.Sequential(  # noqa: N815 (official key name)
            nn.Conv2d(3, width, 4, 4), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, out_features, 1),
        )
        self.lastOut = nn.Linear(out_features, n_classes)  # noqa: N815
        # As in the official code: He-normal x 0.1 and zero bias for the convs; the linear keeps PyTorch's init.
        for m in self.CondNet:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastOut(self.CondNet(x).mean(dim=(2, 3)))


def branch_kwargs(backbone: str, width: int, scale: int, backbone_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """Constructor arguments of one branch: the official extras, the caller's ``backbone_args``, the width."""
    if backbone not in WIDTH_ARG and (not backbone_args or "width_arg" not in backbone_args):
        raise ConfigError(
            f"classsr: backbone {backbone!r} has no known width argument; known: {', '.join(WIDTH_ARG)} "
            "(for another srkit backbone give backbone_args={'width_arg': '<its width argument>', ...})"
        )
    extra = dict(backbone_args or {})
    width_arg = extra.pop("width_arg", WIDTH_ARG.get(backbone))
    kwargs = {**OFFICIAL_BACKBONE_ARGS.get(backbone, {}), **extra, width_arg: int(width), "scale": int(scale)}
    return kwargs


class ClassSR(nn.Module):
    """Classifier + three branches of one srkit backbone.

    Args:
        backbone: srkit architecture of the branches (``fsrcnn``, ``carn_m``, ``msrresnet``, ``rcan`` or any
            other registered one, whose width argument is then named by ``backbone_args['width_arg']``).
        widths: widths of branch 1 (simple), 2 (medium), 3 (hard); default the official ones of ``backbone``.
        scale: upscaling factor (the official models are x4; any scale the backbone supports works).
        backbone_args: further constructor arguments shared by the three branches (e.g. ``{"nb": 8}``).
        patch_size, stride: LR test patch side and step for whole-image inference (official 32 / 28).
        batch_size: patches per branch call in whole-image inference (memory versus speed).

    Shapes: (N, 3, H, W) -> (N, 3, scale*H, scale*W). In eval mode images of any size are routed patch-wise.
    """

    def __init__(
        self,
        backbone: str = "fsrcnn",
        widths: Sequence[int] | None = None,
        scale: int = 4,
        backbone_args: Mapping[str, Any] | None = None,
        patch_size: int = PATCH_SIZE,
        stride: int = PATCH_STRIDE,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        from . import build

        if widths is None:
            if backbone not in OFFICIAL_WIDTHS:
                raise ConfigError(f"classsr: give widths for backbone {backbone!r} (no official widths known)")
            widths = OFFICIAL_WIDTHS[backbone]
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3:
            raise ConfigError(f"classsr: widths must hold three values (simple, medium, hard), got {list(widths)}")
        if not 0 < stride <= patch_size or patch_size % 4:
            raise ConfigError(f"classsr: need 0 < stride <= patch_size and patch_size a multiple of 4, "
                              f"got patch_size={patch_size}, stride={stride}")
        self.backbone = backbone
        self.widths = widths
        self.scale = int(scale)
        self.backbone_args = dict(backbone_args or {})
        self.patch_size = int(patch_size)
        self.stride = int(stride)
        self.batch_size = int(batch_size)
        self.classifier = Classifier(3)
        self.net1 = build(backbone, **branch_kwargs(backbone, widths[0], scale, backbone_args))
        self.net2 = build(backbone, **branch_kwargs(backbone, widths[1], scale, backbone_args))
        self.net3 = build(backbone, **branch_kwargs(backbone, widths[2], scale, backbone_args))
        self.last_routing: Any = None
        """The :class:`~srkit.inference.classsr_routing.Routing` of the latest routed call (eval mode)."""
        self.last_probs: torch.Tensor | None = None
        """Class probabilities (N, 3) of the latest training-mode call (what the ClassSR losses need)."""
        self.routed_counts: list[int] = [0, 0, 0]
        """Patches per class summed over all routed (eval-mode) calls since :meth:`pop_routed_counts`: the
        counts of a whole image even when an upscaler feeds it in tiles."""
        self.train_branch: int | None = None
        """Training stage 1: when set (0, 1, 2), training-mode calls run only that branch."""
        self.hard_bias: float = 0.0
        """Test-time routing dial, not in the paper (0, the default, is the paper's argmax): added to the
        hard-class logit before the argmax, so that a positive value sends borderline patches to bigger
        branches (quality up, FLOPs up). Not saved with the weights; set it per run, calibrated on data that
        is not the test set (``benchmarks/bench_classsr.py --calibrate-on``)."""

    @property
    def branches(self) -> list[nn.Module]:
        return [self.net1, self.net2, self.net3]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 3) of LR patches (N, 3, h, w) in [0, 1]."""
        return self.classifier(x)

    def routing_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Class logits as test-time routing sees them: :attr:`hard_bias` added to the hard class."""
        if not self.hard_bias:
            return logits
        return logits + logits.new_tensor([0.0, 0.0, float(self.hard_bias)])

    def mix(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (soft mixture of the three branches' SR, class probabilities (N, 3))."""
        p = F.softmax(self.classifier(x), dim=1)
        out = sum(p[:, k, None, None, None] * net(x) for k, net in enumerate(self.branches))
        return out, p

    def route(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard routing of a batch of patches: (SR (N, 3, s*h, s*w), class index per sample (N,)).

        Samples of one class run together through their branch (in chunks of ``batch_size``). ``classes``
        forces the route (values 0, 1, 2) instead of the classifier's argmax.
        """
        if classes is None:
            classes = self.routing_logits(self.classifier(x)).argmax(dim=1)
        n, c, h, w = x.shape
        out = x.new_empty(n, 3, h * self.scale, w * self.scale)
        for k, net in enumerate(self.branches):
            idx = (classes == k).nonzero(as_tuple=True)[0]
            for start in range(0, idx.numel(), self.batch_size):
                sel = idx[start : start + self.batch_size]
                out[sel] = net(x[sel]).to(out.dtype)
        return out, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if self.train_branch is not None:
                self.last_probs = None
                return self.branches[self.train_branch](x)
            out, self.last_probs = self.mix(x)
            return out
        from ..inference.classsr_routing import routed_upscale

        out, routing = routed_upscale(self, x)
        self.last_routing = routing
        self.routed_counts = [a + b for a, b in zip(self.routed_counts, routing.counts)]
        return out

    def pop_routed_counts(self) -> list[int]:
        """Patches per class (simple, medium, hard) routed since the last call; resets the tally. Pass them to
        :func:`srkit.inference.classsr_routing.flops_from_counts` for the FLOPs of what was upscaled."""
        counts, self.routed_counts = self.routed_counts, [0, 0, 0]
        return counts

    def pop_image_stats(self) -> dict[str, Any]:
        """Statistics of what was upscaled since the last call (``srkit eval`` calls it once per image):
        patches and shares per class, official and true FLOPs per patch and their percentages."""
        from ..inference.classsr_routing import flops_from_counts

        return flops_from_counts(self, self.pop_routed_counts())

    def extra_repr(self) -> str:
        return f"backbone={self.backbone}, widths={self.widths}, scale={self.scale}"


def describe(name: str, kw: Mapping[str, Any]) -> ModelDescriptor:
    """Descriptor: the branches' scale; whole images are routed patch-wise, so a tile needs the context of
    one patch on each side to see the same patch grid nearly everywhere."""
    from .. import archs

    scale = int(kw["scale"])
    backbone = kw["backbone"]
    widths = kw.get("widths") or OFFICIAL_WIDTHS.get(backbone, (64, 64, 64))
    sub = archs.describe(backbone, **branch_kwargs(backbone, widths[-1], scale, kw.get("backbone_args")))
    return ModelDescriptor(arch=name, scales=(scale,), receptive_field=int(kw["patch_size"]),
                           supports_half=sub.supports_half, supports_bfloat16=sub.supports_bfloat16)


def set_hard_bias(net: nn.Module, value: float) -> None:
    """Set :attr:`ClassSR.hard_bias` on ``net``; a clear error for networks that are not ClassSR."""
    if not isinstance(net, ClassSR):
        raise ConfigError(f"--classsr-hard-bias applies to ClassSR models only, not to {type(net).__name__}")
    value = float(value)
    if value != value or abs(value) == float("inf"):
        raise ConfigError(f"classsr: hard_bias must be a finite number, got {value}")
    net.hard_bias = value

