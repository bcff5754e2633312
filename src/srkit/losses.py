"""Training losses: pixel losses, VGG perceptual loss, GAN losses, and a name -> class factory.

All losses are plain ``nn.Module``s taking float NCHW tensors (images RGB in [0, 1]) and returning a
scalar mean; each has a ``weight`` that multiplies its result (for GAN losses: the generator form only,
see there), so a method can sum ``build_loss(...)`` terms directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srkit.errors import ConfigError, SrkitError

# ImageNet statistics that torchvision's VGG weights were trained with (RGB, [0, 1] input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class L1Loss(nn.Module):
    """Mean absolute error, times ``weight``."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(pred, target)


class MSELoss(nn.Module):
    """Mean squared error, times ``weight``."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * F.mse_loss(pred, target)


class CharbonnierLoss(nn.Module):
    """Charbonnier (smooth L1) loss: mean of sqrt((pred - target)^2 + eps^2), times ``weight``.

    ``eps = 1e-3`` is the value of LapSRN (Lai et al., CVPR 2017, "robust Charbonnier penalty", eps 1e-3),
    which made the loss popular in SR. A zero error costs exactly ``eps``. Note that BasicSR writes the
    loss as sqrt(d^2 + eps) with eps = 1e-12, i.e. its ``eps`` is the square of this one.
    """

    def __init__(self, eps: float = 1e-3, weight: float = 1.0) -> None:
        super().__init__()
        if not eps > 0:
            raise ConfigError(f"CharbonnierLoss eps must be > 0, got {eps!r}")
        self.eps = eps
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = pred - target
        return self.weight * torch.sqrt(d * d + self.eps * self.eps).mean()


class PerceptualLoss(nn.Module):
    """Distance between VGG features of prediction and target, summed over layers with weights.

    Args:
        weights_path: torchvision-layout VGG weights (``features.N.weight``; ``.pth`` or ``.safetensors``),
            e.g. a saved ``torchvision.models.vgg19(weights=...).state_dict()``. Never downloaded.
        layer_weights: ``{layer name: weight}``; names as in ``srkit.archs.vgg`` (``conv5_4`` is the
            pre-activation layer ESRGAN uses, ``relu5_4`` the post-ReLU one). Default ``{"conv5_4": 1.0}``.
        arch: ``"vgg19"`` or ``"vgg16"``.
        criterion: ``"l1"`` (ESRGAN, MASA) or ``"l2"`` (SRGAN style mean squared error).
        weight: multiplies the result.

    Input: RGB in [0, 1], NCHW; it is normalised with ImageNet mean/std inside. The VGG is frozen and
    the target's features are computed without gradient.
    """

    def __init__(
        self,
        weights_path: str | Path,
        layer_weights: Mapping[str, float] | None = None,
        arch: str = "vgg19",
        criterion: str = "l1",
        weight: float = 1.0,
    ) -> None:
        super().__init__()
        from srkit.archs.vgg import VGGFeatures

        self.layer_weights = dict(layer_weights if layer_weights is not None else {"conv5_4": 1.0})
        if criterion not in ("l1", "l2"):
            raise ConfigError(f"PerceptualLoss criterion must be 'l1' or 'l2', got {criterion!r}")
        self.criterion = criterion
        self.weight = weight
        with torch.device("meta"):  # the file supplies every weight; skip the random init
            self.vgg = VGGFeatures(self.layer_weights, arch=arch)
        self.vgg.load_weights(weights_path)
        self.vgg.eval()
        for p in self.vgg.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.vgg.eval()  # a fixed feature extractor, whatever the loop does
        return self

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg((x - self.mean) / self.std)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self._features(pred)
        with torch.no_grad():
            ft = self._features(target.detach())
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        total = sum(w * dist(fp[name], ft[name]) for name, w in self.layer_weights.items())
        return self.weight * total


class GANLoss(nn.Module):
    """Standard adversarial losses on discriminator logits.

    ``kind``:
        * ``"vanilla"``: BCE with logits, target 1 for real and 0 for fake;
        * ``"lsgan"``: mean squared error to 1 (real) or 0 (fake);
        * ``"hinge"``: discriminator mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), generator -mean(D(fake)).

    ``forward(logits, target_is_real, is_disc=False)`` is the single term. Generator form:
    ``generator_loss(fake_logits)`` = term(fake, real target), times ``weight``. Discriminator form:
    ``discriminator_loss(real_logits, fake_logits)`` = term(real, real) + term(fake, fake), not weighted
    (as in BasicSR, the weight balances the generator's losses only).
    """

    KINDS = ("vanilla", "lsgan", "hinge")

    def __init__(self, kind: str = "vanilla", weight: float = 1.0) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ConfigError(f"unknown GAN loss kind {kind!r}; valid: {', '.join(self.KINDS)}")
        self.kind = kind
        self.weight = weight

    def forward(self, logits: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        if self.kind == "hinge":
            if is_disc:
                loss = F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()
            else:
                if not target_is_real:
                    raise SrkitError("hinge GAN loss: the generator term is defined for target_is_real=True only")
                loss = -logits.mean()
        else:
            target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
            if self.kind == "vanilla":
                loss = F.binary_cross_entropy_with_logits(logits, target)
            else:
                loss = F.mse_loss(logits, target)
        return loss if is_disc else self.weight * loss

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return self(fake_logits, True, is_disc=False)

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return self(real_logits, True, is_disc=True) + self(fake_logits, False, is_disc=True)


class RelativisticGANLoss(nn.Module):
    """Relativistic average GAN (RaGAN) with BCE-with-logits, as ESRGAN (and MASA-SR) train.

    With C(x) the discriminator logits and E the mean over the whole batch:
        D_ra(real) = C(real) - E[C(fake)],   D_ra(fake) = C(fake) - E[C(real)].
    Generator:      weight * (BCE(D_ra(real), 0) + BCE(D_ra(fake), 1)) / 2; ``real_logits`` are detached.
    Discriminator:  (BCE(D_ra(real), 1) + BCE(D_ra(fake), 0)) / 2, where in each half the other side's
                    mean is a constant (detached), as in BasicSR's ESRGAN model; not weighted.
    Call ``generator_loss(real_logits, fake_logits)`` in the G step and
    ``discriminator_loss(real_logits, fake_logits)`` in the D step (with ``fake`` from a detached output).
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    @staticmethod
    def _bce(x: torch.Tensor, real: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 if real else 0.0))

    def generator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real = real_logits.detach()
        loss = self._bce(real - fake_logits.mean(), False) + self._bce(fake_logits - real.mean(), True)
        return self.weight * loss / 2

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        loss_real = self._bce(real_logits - fake_logits.detach().mean(), True)
        loss_fake = self._bce(fake_logits - real_logits.detach().mean(), False)
        return (loss_real + loss_fake) / 2

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, is_disc: bool = False) -> torch.Tensor:
        if is_disc:
            return self.discriminator_loss(real_logits, fake_logits)
        return self.generator_loss(real_logits, fake_logits)


# Names for configs (``loss: {type: charbonnier, eps: 1e-3}``).
LOSSES: dict[str, type[nn.Module]] = {
    "l1": L1Loss,
    "mse": MSELoss,
    "l2": MSELoss,
    "charbonnier": CharbonnierLoss,
    "perceptual": PerceptualLoss,
    "gan": GANLoss,
    "relativistic_gan": RelativisticGANLoss,
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the loss registered as ``name`` in ``LOSSES`` with keyword arguments.

    Unknown names and arguments the loss does not take raise ConfigError.
    """
    try:
        cls = LOSSES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"loss {name!r}: bad arguments {sorted(kwargs)} ({e})") from None
