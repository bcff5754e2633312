"""Plain supervised super-resolution: pixel losses, optional perceptual loss, optional GAN phase.

Generator loss = sum of ``train.losses`` terms (each ``weight * loss(sr, hr)``) plus, from
``train.gan.start_step`` on and when ``train.gan.weight > 0``, ``weight * adversarial(D(sr))``.
The discriminator then steps once per iteration on the real HR batch and the detached SR batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .base import Method, build_network


class VGGDiscriminator(nn.Module):
    """VGG-style discriminator: ten 3x3 convs (stride 1/2 alternating, width c..8c), LeakyReLU 0.2,
    global average pooling, two linear layers -> one logit per image. Input: RGB [0, 1], NCHW,
    any size >= 32. Without batch norm, so that the real and fake halves of a batch stay independent
    and DDP needs no synchronised statistics."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        widths = [channels, channels, 2 * channels, 2 * channels, 4 * channels, 4 * channels,
                  8 * channels, 8 * channels, 8 * channels, 8 * channels]
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(widths):
            layers += [nn.Conv2d(c_in, c, 3, stride=1 + i % 2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c_in, 100), nn.LeakyReLU(0.2, inplace=True), nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x * 2.0 - 1.0).mean(dim=(2, 3))
        return self.head(f).squeeze(1)


class SRMethod(Method):
    """LR -> SR with pixel (+ perceptual) losses; an adversarial phase when ``train.gan.weight > 0``.

    Subclasses that add a recipe on top declare it here rather than re-checking the config themselves:
    ``NAME`` (for messages), ``ARGS`` (the ``method.args`` they know, with defaults; :meth:`build` checks
    them and leaves the merged options in ``self.opts``), ``ARCH`` (the one architecture they train, or
    None) and ``GAN`` (whether the adversarial phase is allowed).
    """

    NAME = "sr"
    ARGS: dict[str, Any] = {}
    ARCH: str | None = None
    GAN = True

    def check_config(self) -> dict[str, Any]:
        """``method.args`` merged over :attr:`ARGS`, after checking them, the architecture and the GAN phase."""
        args = dict(self.cfg.method.args)
        unknown = sorted(set(args) - set(self.ARGS))
        if unknown and not self.ARGS:
            raise ConfigError(f"method '{self.NAME}' takes no method.args, got {unknown}")
        if unknown:
            raise ConfigError(f"method '{self.NAME}': unknown method.args {unknown}; known: {sorted(self.ARGS)}")
        if self.ARCH is not None and self.cfg.model.arch != self.ARCH:
            raise ConfigError(f"method '{self.NAME}' trains arch '{self.ARCH}', not {self.cfg.model.arch!r}")
        if not self.GAN and self.cfg.train.gan.weight > 0:
            raise ConfigError(f"method '{self.NAME}' has no GAN phase; set train.gan.weight to 0")
        return {**self.ARGS, **args}

    def build(self) -> None:
        from ..losses import build_loss

        self.opts = self.check_config()
        net, self.descriptor = build_network(self.cfg.model.arch, self.arch_kwargs())
        self.networks["net"] = net.to(self.device)
        self.losses: dict[str, tuple[float, nn.Module]] = {}
        for name, term in self.cfg.train.losses.items():
            loss = build_loss(name, **term.args)
            if isinstance(loss, nn.Module):
                loss = loss.to(self.device).eval().requires_grad_(False)
            self.losses[name] = (term.weight, loss)
        gan = self.cfg.train.gan
        self.gan_on = gan.weight > 0
        if self.gan_on:
            # srkit.losses weights the generator term itself, the discriminator term not
            if gan.loss == "relativistic":
                self.gan_loss = build_loss("relativistic_gan", weight=gan.weight)
            else:
                self.gan_loss = build_loss("gan", kind=gan.loss, weight=gan.weight)
            self.networks["disc"] = VGGDiscriminator(gan.channels).to(self.device)
        self._sr: torch.Tensor | None = None

    def updates(self, step: int) -> list[str]:
        return ["net", "disc"] if self.adversarial(step) else ["net"]

    def _relativistic(self) -> bool:
        return self.cfg.train.gan.loss == "relativistic"

    def pixel_terms(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of the configured pixel/perceptual losses, and each term (detached) by name."""
        out: dict[str, torch.Tensor] = {}
        total = sr.new_zeros((), dtype=torch.float32)
        for name, (weight, loss) in self.losses.items():
            value = loss(sr.float(), hr)
            out[name] = value.detach()
            total = total + weight * value
        return total, out

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        if update == "net":
            sr = self.run("net", lr)
            total, out = self.pixel_terms(sr, hr)
            if self.adversarial(step):
                disc = self.networks["disc"]  # unwrapped: D is not updated (nor synced) in the G step
                disc.requires_grad_(False)
                fake_logits = disc(sr)
                if self._relativistic():
                    with torch.no_grad():
                        real_logits = disc(hr)
                    g_adv = self.gan_loss.generator_loss(real_logits, fake_logits)
                else:
                    g_adv = self.gan_loss.generator_loss(fake_logits)
                disc.requires_grad_(True)
                out["gan"] = g_adv.detach()
                total = total + g_adv
                self._sr = sr.detach()
            out["total"] = total
            return out
        if update == "disc":
            fake = self._sr if self._sr is not None else self.run("net", lr).detach()
            self._sr = None
            # one forward over real and fake together: DDP sees a single pass per backward
            logits = self.run("disc", torch.cat([hr, fake.to(hr.dtype)]))
            real_logits, fake_logits = logits.split([hr.shape[0], fake.shape[0]])
            d_loss = self.gan_loss.discriminator_loss(real_logits, fake_logits)
            return {"total": d_loss, "d_real_logit": real_logits.mean().detach(),
                    "d_fake_logit": fake_logits.mean().detach()}
        raise KeyError(update)
