"""GLEAN training (``method.name: glean``), MMagic's recipe for ``glean_cat_8x`` / ``glean_ffhq_16x``.

MMagic trains GLEAN with its ``SRGAN`` model (``mmedit/models/restorers/srgan.py``; the ``GLEAN`` model class only
changes how test outputs are de-normalised). Per iteration: the generator runs once; one generator step on
``MSE (1.0) + perceptual (1e-2) + GAN (1e-2)`` with the discriminator frozen; then one discriminator step on
``BCE(D(real), 1) + BCE(D(fake.detach()), 0)`` (not weighted). This class is :class:`SRMethod` with:

* **The official range.** Images are [-1, 1] inside MMagic (mean = std = 0.5 on [0, 1]); srkit's network takes
  and returns [0, 1] and converts inside. Every ``train.losses`` term is therefore computed on ``2 x - 1`` of the
  SR and HR images, so ``mse`` with weight 1.0 *is* the official pixel loss (four times srkit's [0, 1] MSE).
* **The perceptual quirk** (``method.args.norm_img``). MMagic's ``PerceptualLoss(norm_img=False)`` (cat and FFHQ
  x16 configs) feeds the [-1, 1] images straight to a VGG16 that applies ImageNet mean/std meant for [0, 1]
  data; ``norm_img=True`` (the blind in128out1024 config) first maps them back to [0, 1]. ``norm_img: false``
  (default) gives srkit's :class:`~srkit.losses.PerceptualLoss` the [-1, 1] images (it then normalises them
  with ImageNet mean/std, as MMagic does); ``true`` gives it the [0, 1] images. The official term is
  ``perceptual: {weight: 1e-2, args: {arch: vgg16, layer_weights: {conv4_3: 1.0}, criterion: l2}}``:
  VGG16 layer index 21 is ``conv4_3`` before its ReLU.
* **The discriminator** :class:`GLEANDiscriminator`: srkit's ``StyleGAN2Discriminator`` at the output size
  (MMagic's key layout), taking [0, 1] images and mapping them to [-1, 1] itself, initialised from the
  ``discriminator.*`` entries of the same StyleGAN2 checkpoint whose ``generator_ema.*`` entries fill the
  latent bank (``method.args.stylegan2``). The discriminator step evaluates the real and the fake half of its
  batch separately, as MMagic's two forward passes do, so the minibatch-standard-deviation layer never mixes
  real and fake images; both halves still go through one call of the (DDP-wrapped) module.
* **Both optimisers follow** ``train.schedule`` (mmcv's learning-rate hook sets every optimiser of a GAN model;
  the official one is ``CosineRestart(periods=[300000], min_lr=1e-7)``, srkit's ``cosine_restart``).
* **Frozen parts**: the StyleGAN2 latent bank (``requires_grad_(False)`` in the network, as officially) and the
  ``fusion_skip`` convs. The latter feed only the StyleGAN2 RGB branch, which does not reach GLEAN's output, so
  they never receive a gradient (MMagic needs ``find_unused_parameters=True`` for that); freezing them changes no
  update and lets DDP run without unused-parameter detection.
* **Data** (:class:`FixedSizePairs`): whole HR images of exactly ``out_size`` x ``out_size`` (no crops; GLEAN is
  fixed-size), LR made on the fly with MATLAB bicubic ``imresize`` by ``1 / scale`` (how GLEAN's ``BIx8`` /
  ``BIx16`` folders were made), random horizontal flip with p = 1/2 when ``data.augment`` (the official
  augmentation; no vertical flip, no rotation). ``method.args.resize_hr`` first resizes square HR images of
  another size to ``out_size`` (MATLAB bicubic; LSUN-cat's 256 px GT was made that way), for small settings
  such as ``configs/glean_faces_lite.yaml``.

``method.args`` (defaults in :data:`DEFAULTS`):

* ``stylegan2``: path of an MMagic (or official, converted) StyleGAN2 checkpoint, e.g.
  ``stylegan2-cat-config-f-official_20210327_172444-15bc485b.pth``. Nothing is downloaded.
* ``bank_prefix`` (``generator_ema``) and ``disc_prefix`` (``discriminator``): which entries of it are used.
* ``disc_init``: another file for the discriminator (default: ``stylegan2``).
* ``pretrained`` (true): require those files. ``false`` makes them optional: what no file gives (latent bank,
  discriminator) starts from random weights, which is only for tests and the CPU-sized lite config (GLEAN
  without its pretrained bank is not GLEAN).
* ``norm_img`` (false): the perceptual-loss range, see above.
* ``resize_hr`` (false): resize square HR images of another size to ``out_size``.

The generator's latent bank may also come with ``model.init`` (a whole GLEAN model or converted checkpoint,
loaded by the engine after :meth:`GLEANMethod.build`); ``stylegan2`` is then needed only for the discriminator.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..archs.stylegan2 import StyleGAN2Discriminator
from ..data.datasets import _chw, _to_uint8_rgb
from ..errors import CheckpointError, ConfigError, SrkitError
from .sr import SRMethod

DEFAULTS: dict[str, Any] = {
    "stylegan2": None,
    "bank_prefix": "generator_ema",
    "disc_prefix": "discriminator",
    "disc_init": None,
    "pretrained": True,
    "norm_img": False,
    "resize_hr": False,
}


# --- discriminator ---------------------------------------------------------------------------------------------


class GLEANDiscriminator(StyleGAN2Discriminator):
    """:class:`~srkit.archs.stylegan2.StyleGAN2Discriminator` (same parameters and state-dict keys, so MMagic's
    ``discriminator.*`` weights load) that takes srkit images.

    ``forward(img, groups=1)``: (N, C, S, S) RGB in [0, 1] (mapped to [-1, 1] inside, the range the StyleGAN2
    discriminator was trained on) -> (N, 1) logits. ``groups > 1`` splits the batch into that many equal parts
    and evaluates each on its own, so that the minibatch standard deviation is taken within a part only (the
    discriminator step passes ``cat([real, fake])`` with ``groups=2``). Each part must hold at most 4 images or
    a multiple of 4.
    """

    def forward(self, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
        x = x * 2.0 - 1.0
        if groups == 1:
            return super().forward(x)
        if x.shape[0] % groups:
            raise SrkitError(f"batch of {x.shape[0]} images does not split into {groups} equal groups")
        return torch.cat([super(GLEANDiscriminator, self).forward(part) for part in x.chunk(groups)])


def _read_state(source: Any) -> tuple[dict[str, torch.Tensor], str]:
    from ..convert.common import canonicalize, read_checkpoint

    name = str(source) if isinstance(source, (str, Path)) else "state_dict"
    raw = read_checkpoint(source) if isinstance(source, (str, Path)) else source
    state, _ = canonicalize(raw, source=name)
    return state, name


def load_discriminator(disc: nn.Module, source: Any, prefix: str = "discriminator") -> list[str]:
    """Load the ``prefix.*`` entries of a StyleGAN2 checkpoint (path or state dict; MMagic layout, possibly
    wrapped in ``state_dict``) strictly into ``disc``, as MMagic initialises GLEAN's discriminator
    (``prefix='discriminator'``). Sizes must fit (output size, channel multiplier); returns notes."""
    from ..convert.common import load_strict

    state, name = _read_state(source)
    head = prefix.rstrip(".") + "."
    sub = {k[len(head):]: v for k, v in state.items() if k.startswith(head)}
    if not sub:
        tops = sorted({k.split(".", 1)[0] for k in state})
        raise CheckpointError(f"{name} has no '{head}*' entries (it has: {', '.join(tops[:8])})")
    load_strict(disc, sub, source=name, arch="StyleGAN2 discriminator")
    return [f"loaded {len(sub)} '{head}*' entries of {name} into the discriminator"]


# --- data ------------------------------------------------------------------------------------------------------


class FixedSizePairs:
    """GLEAN's training pairs: whole HR images of ``out_size`` x ``out_size`` and their MATLAB-bicubic LR.

    Args:
        hr_paths: HR image files.
        in_size, out_size: the network's fixed LR and HR sides (scale ``out_size / in_size``).
        flip: horizontal flip of LR and HR together with probability 1/2 (MMagic's ``Flip``, horizontal).
        resize_hr: resize square HR images of another size to ``out_size`` first (MATLAB bicubic); off: any
            other size is a :class:`ConfigError` naming the file (checked from the file headers at construction).
        lr_border: border handling of the bicubic that makes the LR image.
        cache: keep decoded uint8 pairs in memory (leave off for large sets such as FFHQ).
        repeat: the set is ``repeat`` times as long.
        seed: the flip of item ``i`` in epoch ``e`` comes from ``numpy.random.default_rng([seed, e, i])``.

    Items: ``{"lr": float32 (3, in_size, in_size), "hr": float32 (3, out_size, out_size), "name": str}``, RGB
    in [0, 1].
    """

    def __init__(self, hr_paths: Sequence[str | Path], in_size: int, out_size: int, flip: bool = True,
                 resize_hr: bool = False, lr_border: str = "symmetric", cache: bool = True, repeat: int = 1,
                 seed: int = 0) -> None:
        from PIL import Image

        self.paths = [Path(p) for p in hr_paths]
        if not self.paths:
            raise SrkitError("GLEAN: no training images")
        if out_size % in_size:
            raise ConfigError(f"GLEAN: out_size {out_size} is not a multiple of in_size {in_size}")
        self.in_size, self.out_size, self.scale = int(in_size), int(out_size), out_size // in_size
        self.flip, self.resize_hr, self.lr_border = bool(flip), bool(resize_hr), lr_border
        self.cache, self.repeat, self.seed, self.epoch = bool(cache), int(repeat), int(seed), 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for p in self.paths:  # headers only: a wrong size fails now, not hours into a run
            try:
                with Image.open(p) as im:
                    w, h = im.size
            except Exception:  # unreadable: read_image gives its own clear error when the image is loaded
                continue
            self._check_size(p, h, w)

    def _check_size(self, path: Path, h: int, w: int) -> None:
        s = self.out_size
        if (h, w) == (s, s):
            return
        if not self.resize_hr:
            raise ConfigError(
                f"{path} is {w}x{h}, but GLEAN x{self.scale} trains on whole {s}x{s} HR images (model.args.out_size); "
                "prepare the data at that size or set method.args.resize_hr: true to resize square images")
        if h != w:
            raise ConfigError(f"{path} is {w}x{h}: method.args.resize_hr resizes square images only "
                              f"(to {s}x{s}); crop it square first")

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load_pair(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB (lr, hr) HWC arrays of image ``k`` (cached when ``cache``)."""
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        from ..data.io import read_image
        from ..data.resize import imresize

        path = self.paths[k]
        hr = _to_uint8_rgb(read_image(path, mode="rgb"))
        self._check_size(path, hr.shape[0], hr.shape[1])
        if hr.shape[:2] != (self.out_size, self.out_size):
            hr = imresize(hr, size=(self.out_size, self.out_size), border=self.lr_border)
        lr = imresize(hr, scale=1.0 / self.scale, border=self.lr_border)
        pair = (np.ascontiguousarray(lr), np.ascontiguousarray(hr))
        if self.cache:
            self._cache[k] = pair
        return pair

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (int(item[0]), int(item[1])) if isinstance(item, tuple) else (self.epoch, int(item))
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        k = index % len(self.paths)
        lr, hr = self.load_pair(k)
        if self.flip and np.random.default_rng([self.seed, epoch, index]).random() < 0.5:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        return {"lr": _chw(lr), "hr": _chw(hr), "name": self.paths[k].stem}


def resolve_train_images(names: Sequence[str]) -> list[Path]:
    """HR files of ``data.train``: set names and folders as the engine reads them (``srkit.data.sets``), and also
    folders relative to the shared data root (``faces/FFHQ_256``) when they are not folders from here."""
    from ..data.sets import data_root, train_images

    files: list[Path] = []
    for name in names:
        p = Path(name).expanduser()
        if not p.is_dir() and not p.is_absolute() and ("/" in str(name) or "\\" in str(name)):
            try:
                q = data_root() / p
            except SrkitError:
                q = p
            if q.is_dir():
                p = q
        files += train_images([p] if p.is_dir() else [str(name)])
    return files


# --- method ----------------------------------------------------------------------------------------------------


class GLEANMethod(SRMethod):
    """GLEAN's GAN training (``method.name: glean``, ``model.arch: glean``); see the module docstring."""

    NAME, ARGS, ARCH, GAN = "glean", DEFAULTS, "glean", True

    def arch_kwargs(self) -> dict[str, Any]:
        return dict(self.cfg.model.args)  # GLEAN's scale is out_size / in_size, not an argument

    def sizes(self) -> tuple[int, int]:
        """(in_size, out_size) of the configured network (checked by the architecture's descriptor)."""
        from .. import archs

        d = archs.describe("glean", **self.arch_kwargs())
        return int(d.fixed_size), int(d.fixed_size) * int(d.scales[0])

    def check_config(self) -> dict[str, Any]:
        """Everything that can be checked without building a network or reading a file."""
        cfg = self.cfg
        if cfg.model.arch != "glean":
            raise ConfigError(f"method 'glean' trains model.arch 'glean', not {cfg.model.arch!r}")
        opts = super().check_config()
        for key in ("pretrained", "norm_img", "resize_hr"):
            if not isinstance(opts[key], bool):
                raise ConfigError(f"method.args.{key} must be true or false, got {opts[key]!r}")
        for key in ("bank_prefix", "disc_prefix"):
            if not isinstance(opts[key], str) or not opts[key]:
                raise ConfigError(f"method.args.{key} must be a non-empty string, got {opts[key]!r}")
        for key in ("stylegan2", "disc_init"):
            if opts[key] is not None and not isinstance(opts[key], str):
                raise ConfigError(f"method.args.{key} must be a file path, got {opts[key]!r}")
        in_size, out_size = self.sizes()
        d = cfg.data
        if d.scale != out_size // in_size:
            raise ConfigError(f"data.scale ({d.scale}) must equal model.args out_size / in_size "
                              f"({out_size} / {in_size} = {out_size // in_size})")
        if d.patch_size != out_size:
            raise ConfigError(f"data.patch_size ({d.patch_size}) must be the HR image side, model.args.out_size "
                              f"= {out_size}: GLEAN trains on whole fixed-size images, without crops")
        gan_on = cfg.train.gan.weight > 0
        if opts["pretrained"]:
            if not opts["stylegan2"] and not cfg.model.init:
                raise ConfigError("method.args.stylegan2 is required: the path of the pretrained StyleGAN2 "
                                  "checkpoint whose generator is GLEAN's latent bank (or set model.init to a GLEAN "
                                  "model; method.args.pretrained: false starts from random weights, for tests only)")
            if gan_on and not (opts["disc_init"] or opts["stylegan2"]):
                raise ConfigError("method.args.stylegan2 (or method.args.disc_init) is required: the pretrained "
                                  "StyleGAN2 checkpoint the discriminator starts from (its 'discriminator.*' entries)")
        if gan_on:
            world = (torch.distributed.get_world_size()
                     if torch.distributed.is_available() and torch.distributed.is_initialized() else 1)
            per_rank = d.batch_size // max(world, 1)
            if per_rank > 4 and per_rank % 4:
                raise ConfigError(f"data.batch_size: {per_rank} images per process; the StyleGAN2 discriminator's "
                                  "minibatch standard deviation needs at most 4 or a multiple of 4")
        return opts

    def build(self) -> None:
        super().build()  # checks (check_config above), network, train.losses, GAN loss
        o = self.opts
        net = self.networks["net"]
        # fusion_skip feeds only the StyleGAN2 RGB branch, which never reaches the output: no gradient ever
        net.fusion_skip.requires_grad_(False)
        self.notes: list[str] = []
        bank_src = o["stylegan2"]
        cache: dict[str, Any] = {}

        def state_of(path: str) -> Any:
            if path not in cache:
                from ..convert.common import read_checkpoint

                cache[path] = read_checkpoint(path)
            return cache[path]

        if bank_src:
            from ..convert.glean import load_latent_bank

            self.notes += load_latent_bank(net, state_of(bank_src), prefix=o["bank_prefix"])
        if self.gan_on:
            in_size, out_size = self.sizes()
            cm = int(self.arch_kwargs().get("channel_multiplier", 2))
            channels = int(self.arch_kwargs().get("img_channels", 3))
            disc = GLEANDiscriminator(out_size, channels, channel_multiplier=cm,
                                      max_channels=self.arch_kwargs().get("max_channels"))
            disc_src = o["disc_init"] or o["stylegan2"]
            if disc_src:
                self.notes += load_discriminator(disc, state_of(disc_src), prefix=o["disc_prefix"])
            self.networks["disc"] = disc.to(self.device)
        unset = [what for what, src in (("latent bank", bank_src or self.cfg.model.init),
                                         ("discriminator", not self.gan_on or o["disc_init"] or o["stylegan2"]))
                  if not src]
        if unset:
            verb = "start" if len(unset) > 1 else "starts"
            self.notes.append(f"{' and '.join(unset)} {verb} from random weights (method.args.pretrained is false): "
                              "a pipeline check, not GLEAN")
        rank0 = not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
            or torch.distributed.get_rank() == 0
        for note in self.notes if rank0 else ():
            print(f"srkit train: glean: {note}", file=sys.stderr)

    def optimizers(self) -> dict[str, tuple[list, Any, Any]]:
        opts = super().optimizers()
        if self.gan_on:  # as mmcv's lr hook: the schedule applies to the discriminator's optimiser too
            params, ocfg, _ = opts["disc"]
            opts["disc"] = (params, ocfg, self.cfg.train.schedule)
        return opts

    def pixel_terms(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``train.losses`` on the official [-1, 1] images (the perceptual term on [0, 1] when ``norm_img``)."""
        from ..losses import PerceptualLoss

        sr = sr.float()
        sr_pm, hr_pm = sr * 2.0 - 1.0, hr * 2.0 - 1.0
        out: dict[str, torch.Tensor] = {}
        total = sr.new_zeros((), dtype=torch.float32)
        for name, (weight, loss) in self.losses.items():
            unit = self.opts["norm_img"] and isinstance(loss, PerceptualLoss)
            value = loss(sr, hr) if unit else loss(sr_pm, hr_pm)
            out[name] = value.detach()
            total = total + weight * value
        return total, out

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        if update != "disc":
            return super().training_step(batch, step, update)  # the generator step of SRMethod
        hr = batch["hr"]
        fake = self._sr if self._sr is not None else self.run("net", batch["lr"]).detach()
        self._sr = None
        # real and fake evaluated apart (minibatch stddev per half, as MMagic's two passes), in one DDP call
        logits = self.run("disc", torch.cat([hr, fake.to(hr.dtype)]), 2)
        real_logits, fake_logits = logits.split([hr.shape[0], fake.shape[0]])
        d_loss = self.gan_loss.discriminator_loss(real_logits, fake_logits)
        return {"total": d_loss, "d_real_logit": real_logits.mean().detach(),
                "d_fake_logit": fake_logits.mean().detach()}

    def train_dataset(self) -> FixedSizePairs:
        """Whole ``out_size`` HR images of ``data.train`` and their bicubic LR, horizontally flipped when
        ``data.augment``."""
        in_size, out_size = self.sizes()
        d = self.cfg.data
        return FixedSizePairs(resolve_train_images(d.train), in_size, out_size, flip=d.augment,
                              resize_hr=self.opts["resize_hr"], lr_border=d.lr_border, cache=d.cache,
                              repeat=d.repeat, seed=self.cfg.seed)

    @torch.no_grad()
    def infer(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        in_size, out_size = self.sizes()
        if tuple(lr.shape[-2:]) != (in_size, in_size):
            raise SrkitError(f"GLEAN validates on {out_size}x{out_size} HR images ({in_size}x{in_size} LR); data.val "
                             f"gave a {lr.shape[-1]}x{lr.shape[-2]} LR image (use such a set, or data.val: null)")
        return net(lr)
