"""MASA-SR training (dvlab-research/MASA-SR ``train.py``, ``models/trainer.py``, ``models/losses.py``).

Two recipes, both on CUFED (11,871 input/reference pairs of 160x160 images, whole images, batch 9):

* **MASA-rec**: L1 only (``train.losses: {l1: {weight: 1}}``), Adam lr 1e-4 (0.9, 0.999),
  ``CosineAnnealingLR(T_max=500)`` stepped once per *epoch* at the start of the epoch (so epoch ``e`` runs at
  ``1e-4 * (1 + cos(pi * (e + 1) / 500)) / 2``); 160 (train.sh) to 250 (README) epochs.
* **MASA (GAN)**: continues from MASA-rec (weights, optimiser and schedule) for 50 epochs with
  L1 (1) + perceptual (1; VGG19 ``conv5_4`` before ReLU, L1, ImageNet normalisation) + adversarial (5e-3).
  The adversarial loss is a relativistic-average GAN with BCE, both halves weighted 0.5 (the official
  ``--gan_type WGAN_GP`` flag is ignored by its code); the discriminator (:class:`Discriminator160`, VGG style
  with batch norm) is trained with Adam lr 1e-4, betas (0, 0.9), **one D step before each G step** on the same
  generator output, and the G step then uses the updated D.

What this module reproduces and how:

* the per-epoch cosine learning rate through :meth:`MASAMethod.learning_rate` (``method.args``:
  ``steps_per_epoch`` 1319 = 11,871 / 9, ``t_max_epochs`` 500, ``start_epoch`` for the GAN phase);
* the official model sees BGR; srkit's network flips inside, and the loss inputs are flipped to BGR for the
  VGG and the discriminator (``bgr_losses``, default true) so that the perceptual loss is the official one
  (ImageNet's RGB mean/std applied to a BGR image, as the official code does);
* the data (:class:`RefPairs`): input/ref swapped with probability 0.5, both padded to multiples of 16 (edge
  pixels), brightness/contrast jitter (``|a x + b|`` saturated to 8 bits, a in [0.7, 1.3], b in [-20, 20]) on
  the HR *or* the Ref, LR and Ref-down by PIL bicubic /4 of the 8-bit images, and random flips / rot90 drawn
  independently for the (HR, LR) pair and the (Ref, Ref-down) pair.

Differences (documented in docs/methods/masa.md): the official flips/rotations are drawn once per batch, here
per item; the official turns augmentation on only after the first new best test-set PSNR past epoch 30 (model
selection on the test set), here ``RefPairs(augment=...)`` is fixed for a run.

Validation: the engine validates on plain LR/HR pairs, so :meth:`MASAMethod.infer` uses the LR image as its
own reference (the official Urban100 protocol: Ref = LR, Ref-down = LR / 4).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import _chw, _to_uint8_rgb
from ..errors import ConfigError, SrkitError
from .base import Method, build_network

DEFAULTS: dict[str, Any] = {
    "steps_per_epoch": 1319,  # 11,871 CUFED pairs / batch 9
    "t_max_epochs": 500,
    "start_epoch": 0,
    "bgr_losses": True,
    "disc_size": 160,
    "input_dir": None,
    "ref_dir": None,
    "augment": True,
}


def official_lr(base: float, step: int, steps_per_epoch: int, t_max: int, start_epoch: int = 0) -> float:
    """Learning rate of the official ``CosineAnnealingLR(T_max)`` stepped at the start of each epoch:
    ``base * (1 + cos(pi * (epoch + 1) / T_max)) / 2`` with ``epoch = start_epoch + step // steps_per_epoch``."""
    epoch = start_epoch + step // steps_per_epoch
    return base * (1.0 + math.cos(math.pi * (epoch + 1) / t_max)) / 2.0


class Discriminator160(nn.Module):
    """The VGG-style discriminator MASA trains against (BasicSR's ``VGGStyleDiscriminator160`` design, with its
    parameter names, so the official ``D_state_dict`` loads as it is): ``conv0_0`` 3x3 (bias), then five stages
    ``conv{i}_0`` 3x3 (not in stage 0) and ``conv{i}_1`` 4x4 stride 2, each conv without bias and followed by
    batch norm ``bn{i}_{j}`` and LeakyReLU 0.2; widths c, 2c, 4c, 8c, 8c; then ``linear1`` (8c * (size/32)^2
    -> 100), LeakyReLU, ``linear2`` (100 -> 1).

    Input (N, 3, size, size) in [0, 1] (any channel order; MASA feeds BGR); output (N, 1) logits.
    ``size`` is 160 for CUFED; other multiples of 32 are allowed for small tests.
    """

    def __init__(self, channels: int = 64, size: int = 160) -> None:
        super().__init__()
        if size % 32:
            raise ConfigError(f"Discriminator160: size must be a multiple of 32, got {size}")
        self.size = size
        c = channels
        self.conv0_0 = nn.Conv2d(3, c, 3, 1, 1)
        self._order: list[tuple[str, str]] = []  # (conv name, bn name) in forward order
        c_in = c
        for i, c_out in enumerate((c, 2 * c, 4 * c, 8 * c, 8 * c)):
            if i > 0:
                self._add(f"{i}_0", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), c_out)
            self._add(f"{i}_1", nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False), c_out)
            c_in = c_out
        side = size // 32
        self.linear1 = nn.Linear(c_in * side * side, 100)
        self.linear2 = nn.Linear(100, 1)

    def _add(self, tag: str, conv: nn.Conv2d, width: int) -> None:
        setattr(self, f"conv{tag}", conv)
        setattr(self, f"bn{tag}", nn.BatchNorm2d(width))
        self._order.append((f"conv{tag}", f"bn{tag}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise SrkitError(f"the MASA discriminator takes {self.size}x{self.size} images, got {tuple(x.shape[-2:])}")
        f = F.leaky_relu(self.conv0_0(x), 0.2)
        for conv, bn in self._order:
            f = F.leaky_relu(getattr(self, bn)(getattr(self, conv)(f)), 0.2)
        return self.linear2(F.leaky_relu(self.linear1(f.flatten(1)), 0.2))


def _bce(x: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 if real else 0.0))


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The official D step's loss: ``0.5 BCE(D(real) - mean D(fake), 1) + 0.5 BCE(D(fake) - mean D(real), 0)``,
    the other side's mean held constant. ``fake`` must be detached. D runs on fake, real, fake in that order,
    as the official code does (the first pass only moves batch-norm running statistics, as there)."""
    d_fake_const = disc(fake).detach()
    d_real = disc(real)
    d_fake = disc(fake)
    loss = 0.5 * _bce(d_real - d_fake_const.mean(), True) + 0.5 * _bce(d_fake - d_real.detach().mean(), False)
    return {"total": loss, "d_real_logit": d_real.mean().detach(), "d_fake_logit": d_fake.mean().detach()}


def generator_adversarial_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The official generator term (unweighted): ``0.5 BCE(D(real) - mean D(fake), 0) + 0.5 BCE(D(fake) -
    mean D(real), 1)`` with D(real) constant; D's parameters get no gradient."""
    disc.requires_grad_(False)
    try:
        d_real = disc(real).detach()
        d_fake = disc(fake)
    finally:
        disc.requires_grad_(True)
    return 0.5 * _bce(d_real - d_fake.mean(), False) + 0.5 * _bce(d_fake - d_real.mean(), True)


# --- data ------------------------------------------------------------------------------------------------------


def _pil_bicubic_u8(img: np.ndarray, factor: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w // factor, h // factor), Image.BICUBIC))


def _pad16(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")


def _jitter(img: np.ndarray, a: float, b: float) -> np.ndarray:
    # OpenCV's convertScaleAbs: |a x + b|, rounded half to even, saturated to 8 bits.
    return np.clip(np.rint(np.abs(img.astype(np.float64) * a + b)), 0, 255).astype(np.uint8)


def _geometry(imgs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    # Same draws for every image of a group: vertical flip, horizontal flip, then maybe rot90 k times.
    if rng.integers(0, 2):
        imgs = [i[::-1] for i in imgs]
    if rng.integers(0, 2):
        imgs = [i[:, ::-1] for i in imgs]
    if rng.integers(0, 2):
        k = int(rng.integers(0, 4))
        imgs = [np.rot90(i, k) for i in imgs]
    return imgs


class RefPairs(torch.utils.data.Dataset):
    """CUFED-style training pairs: ``input_dir/NAME`` with its reference ``ref_dir/NAME`` (same file names).

    Items: ``{"lr", "hr", "ref", "ref_down"}``, float32 RGB CHW in [0, 1]; ``hr``/``ref`` padded to multiples
    of 16, ``lr``/``ref_down`` their PIL-bicubic /``scale`` (from the 8-bit images). Whole images, no crop (all
    images of a batch must have the same size, as CUFED's 160x160). Item ``i`` of epoch ``e`` draws from
    ``numpy.random.default_rng([seed, e, i])``.
    """

    def __init__(self, input_dir: str | Path, ref_dir: str | Path, scale: int = 4, augment: bool = True,
                 swap: bool = True, seed: int = 0) -> None:
        self.inputs = sorted(p for p in Path(input_dir).iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp"))
        if not self.inputs:
            raise SrkitError(f"no training images in {input_dir}")
        self.refs = [Path(ref_dir) / p.name for p in self.inputs]
        missing = [str(r) for r in self.refs if not r.is_file()]
        if missing:
            raise SrkitError(f"{len(missing)} reference images are missing, e.g. {missing[0]}")
        self.scale, self.augment, self.swap, self.seed, self.epoch = scale, augment, swap, seed, 0

    def __len__(self) -> int:
        return len(self.inputs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from ..data.io import read_image

        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        # the recipe works on 8-bit images (OpenCV reads); 16-bit files are rounded to 8 bits
        hr, ref = _to_uint8_rgb(read_image(self.inputs[index])), _to_uint8_rgb(read_image(self.refs[index]))
        if self.swap and rng.random() < 0.5:
            hr, ref = ref, hr
        hr, ref = _pad16(hr), _pad16(ref)
        if self.augment:
            a, b = rng.uniform(0.7, 1.3), rng.uniform(-20, 20)
            if rng.random() < 0.5:
                ref = _jitter(ref, a, b)
            else:
                hr = _jitter(hr, a, b)
        lr, ref_down = _pil_bicubic_u8(hr, self.scale), _pil_bicubic_u8(ref, self.scale)
        if self.augment:
            hr, lr = _geometry([hr, lr], rng)
            ref, ref_down = _geometry([ref, ref_down], rng)
        return {"lr": _chw(lr), "hr": _chw(hr), "ref": _chw(ref), "ref_down": _chw(ref_down)}


# --- method ----------------------------------------------------------------------------------------------------


class MASAMethod(Method):
    """MASA-rec (pixel losses) or MASA (pixel + perceptual + RaGAN) on reference batches
    ``{"lr", "hr", "ref"[, "ref_down"]}``."""

    def build(self) -> None:
        from ..losses import build_loss

        unknown = set(self.cfg.method.args) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"method 'masa': unknown method.args {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.args = {**DEFAULTS, **self.cfg.method.args}
        if self.cfg.data.scale != 4:
            raise ConfigError(f"method 'masa' trains x4 only, not data.scale={self.cfg.data.scale}")
        net, self.descriptor = build_network(self.cfg.model.arch, self.arch_kwargs())
        if not self.descriptor.needs_ref:
            raise ConfigError(f"method 'masa' trains reference-based networks; {self.cfg.model.arch} is not one")
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
            if gan.loss != "relativistic":
                raise ConfigError(f"MASA's adversarial loss is the relativistic one (train.gan.loss: relativistic), "
                                  f"not {gan.loss!r}")
            self.networks["disc"] = Discriminator160(gan.channels, int(self.args["disc_size"])).to(self.device)
        self._sr: torch.Tensor | None = None

    def arch_kwargs(self) -> dict[str, Any]:
        return dict(self.cfg.model.args)  # MASA's scale is fixed

    def train_dataset(self) -> RefPairs:
        """The reference pairs of ``method.args.input_dir`` / ``ref_dir`` (the engine's paired LR/HR sets have
        no references)."""
        if not self.args["input_dir"] or not self.args["ref_dir"]:
            raise ConfigError("method 'masa' needs method.args.input_dir and method.args.ref_dir "
                              "(CUFED train/input and train/ref)")
        return RefPairs(self.args["input_dir"], self.args["ref_dir"], self.cfg.data.scale,
                        augment=bool(self.args["augment"]), seed=self.cfg.seed)

    def updates(self, step: int) -> list[str]:
        # Official order: the discriminator steps first on this batch's output, then the generator.
        return ["disc", "net"] if self.adversarial(step) else ["net"]

    def learning_rate(self, update: str, step: int) -> float | None:
        if update != "net":
            return None
        a = self.args
        return official_lr(self.cfg.train.optimizer.lr, step, int(a["steps_per_epoch"]), int(a["t_max_epochs"]),
                           int(a["start_epoch"]))

    def _loss_view(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) if self.args["bgr_losses"] else x

    def _forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if "ref" not in batch:
            raise SrkitError("MASA training batches need a 'ref' image (use RefPairs / method.args.input_dir and "
                             "ref_dir; the engine's LR/HR sets have no references)")
        return self.run("net", batch["lr"], batch["ref"], batch.get("ref_down"))

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        hr = batch["hr"]
        if update == "disc":
            # The generator output of this iteration; its graph is kept for the generator step that follows.
            self._sr = self._forward(batch)
            disc = self.runners.get("disc", self.networks["disc"])
            return discriminator_loss(disc, self._loss_view(hr), self._loss_view(self._sr.detach()))
        if update != "net":
            raise KeyError(update)
        sr = self._sr if self._sr is not None else self._forward(batch)
        self._sr = None
        out: dict[str, torch.Tensor] = {}
        total = sr.new_zeros((), dtype=torch.float32)
        for name, (weight, loss) in self.losses.items():
            value = loss(self._loss_view(sr.float()), self._loss_view(hr))
            out[name] = value.detach()
            total = total + weight * value
        if self.adversarial(step):
            # unwrapped: D is not updated (nor synced) in the G step
            g_adv = generator_adversarial_loss(self.networks["disc"], self._loss_view(hr), self._loss_view(sr))
            out["gan"] = (self.cfg.train.gan.weight * g_adv).detach()
            total = total + self.cfg.train.gan.weight * g_adv
        out["total"] = total
        return out

    @torch.no_grad()
    def infer(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """SR of a validation LR image with the LR itself as the reference (official Urban100 protocol)."""
        return net(lr, lr)
