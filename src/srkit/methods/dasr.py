"""DASR training (Wang et al., CVPR 2021): contrastive degradation representation learning, then blind SR.

Per iteration, as the official ``trainer.py``:

1. From each HR item of the batch cut **two** patches (``method.args.patch_size``, default 48 x scale) at
   independent random positions. The official code cuts them from the whole (augmented) image; here they
   come from the engine's HR crop of ``data.patch_size`` (augmented by the dataset), so make that crop larger
   than the patches (e.g. twice as large).
2. Degrade both patches of an image with the **same** random degradation (:mod:`srkit.data.degrade`: 21 x 21
   Gaussian blur, bicubic x1/s, noise, rounding); the first is the query, the second the key.
3. MoCo (:class:`MoCo`): the query encoder (the network's ``E.encoder_q``) embeds the query patches; the key
   encoder, a momentum copy (m = 0.999, updated before it runs), embeds the key patches; logits are the
   positive pair ``q . k`` and the negatives ``q . queue`` (queue of 8192 normalised keys), divided by
   T = 0.07; InfoNCE = cross-entropy with the positive as the class. The keys then replace the oldest queue
   entries.
4. **Stage 1** (the first ``encoder_epochs`` epochs): the contrastive loss only; ``G`` is not run. **Stage 2**:
   ``G`` super-resolves the query patches with the query representation (not detached: the SR loss also
   trains the encoder) and the loss is ``contrast_weight * InfoNCE + train.losses`` on the query's HR patch.
   The official L1 is on [0, 255] pixels with weight 1, i.e. ``train.losses: {l1: {weight: 255}}`` on srkit's
   [0, 1] images (the official config in ``configs/dasr_x4_iso.yaml`` does so).

One Adam optimiser over all trainable weights (G and the query encoder, as the official one; G gets no
gradient in stage 1, so Adam leaves it alone). The learning rate is the official step function of the epoch
(``epoch = step // epoch_steps + 1``): ``lr_encoder * gamma_encoder ** (epoch // lr_decay_encoder)`` while
``epoch <= encoder_epochs``, then ``lr_sr * gamma_sr ** ((epoch - encoder_epochs) // lr_decay_sr)``. The
method sets it itself (``learning_rate``, applied by the engine before each update), so ``train.schedule`` must be
``constant``. With the official 970 iterations per
epoch (3450 DF2K images x 9 repeats / batch 32, last batch dropped) the 600 epochs are 582,000 steps.

Randomness (patch positions, degradations, noise) comes from a generator seeded by ``(seed, step)``, so a
resumed run draws what an uninterrupted one does. The key encoder and the queue are method state, saved in
checkpoints; only ``G`` and ``E.encoder_q`` go into the model file. One process only: stage 1 leaves ``G``
without gradients and the queue is not gathered across processes, so torchrun (DDP) is refused.

``method.args`` (defaults = the official recipe): ``epoch_steps`` (970), ``encoder_epochs`` (100),
``lr_encoder`` (1e-3), ``lr_decay_encoder`` (60), ``gamma_encoder`` (0.1), ``lr_sr`` (1e-4), ``lr_decay_sr``
(125), ``gamma_sr`` (0.5), ``queue_size`` (8192), ``momentum`` (0.999), ``temperature`` (0.07),
``contrast_weight`` (1.0), ``patch_size`` (48 x scale), ``blur`` ("iso" or "aniso"), and the degradation
ranges ``sigma_min``, ``sigma_max``, ``lambda_min``, ``lambda_max``, ``noise`` (default: the paper's for the
scale and blur type, :func:`srkit.data.degrade.official_ranges`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..archs.dasr import IMG_RANGE, REPRESENTATION_DIM, DegradationEncoder
from ..data.degrade import RandomDegradation, official_ranges
from ..errors import ConfigError
from .sr import SRMethod

DEFAULTS: dict[str, Any] = {
    "epoch_steps": 970,
    "encoder_epochs": 100,
    "lr_encoder": 1e-3,
    "lr_decay_encoder": 60,
    "gamma_encoder": 0.1,
    "lr_sr": 1e-4,
    "lr_decay_sr": 125,
    "gamma_sr": 0.5,
    "queue_size": 8192,
    "momentum": 0.999,
    "temperature": 0.07,
    "contrast_weight": 1.0,
    "patch_size": None,
    "blur": "iso",
    "sigma_min": None,
    "sigma_max": None,
    "lambda_min": None,
    "lambda_max": None,
    "noise": None,
}


def official_lr(step: int, opts: dict[str, Any]) -> tuple[float, int]:
    """(learning rate, stage 1 or 2) at 0-based ``step`` under the official epoch-wise step function."""
    epoch = step // int(opts["epoch_steps"]) + 1
    if epoch <= opts["encoder_epochs"]:
        return opts["lr_encoder"] * opts["gamma_encoder"] ** (epoch // opts["lr_decay_encoder"]), 1
    return opts["lr_sr"] * opts["gamma_sr"] ** ((epoch - opts["encoder_epochs"]) // opts["lr_decay_sr"]), 2


class MoCo(nn.Module):
    """The training-only half of DASR's MoCo: the momentum key encoder and the queue of negative keys.

    The query encoder stays in the network and is passed to :meth:`forward`. ``queue``: (dim, K) unit
    columns, initialised ``normalize(randn)``; ``queue_ptr``: where the next keys go.
    """

    def __init__(self, encoder_q: DegradationEncoder, queue_size: int = 8192, momentum: float = 0.999,
                 temperature: float = 0.07, dim: int = REPRESENTATION_DIM,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.encoder_k = copy.deepcopy(encoder_q).requires_grad_(False)
        queue = torch.randn(dim, queue_size, generator=generator)
        self.register_buffer("queue", F.normalize(queue, dim=0).to(next(encoder_q.parameters()).device))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long, device=self.queue.device))

    @torch.no_grad()
    def momentum_update(self, encoder_q: nn.Module) -> None:
        """``k = m * k + (1 - m) * q`` for every parameter (buffers, e.g. batch-norm statistics, are not)."""
        for pk, pq in zip(self.encoder_k.parameters(), encoder_q.parameters()):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (B, dim) over the oldest entries; K must be a multiple of B, as officially."""
        b, k = keys.shape[0], self.queue.shape[1]
        if k % b:
            raise ConfigError(f"MoCo queue size {k} is not a multiple of the batch size {b}")
        ptr = int(self.queue_ptr)
        self.queue[:, ptr : ptr + b] = keys.t().to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + b) % k

    def forward(self, encoder_q: DegradationEncoder, im_q: torch.Tensor,
                im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query representation (B, 256) and logits (B, 1 + K) (positive first, divided by T) of [0, 255]
        query and key images; updates the key encoder before using it and enqueues the keys after."""
        fea, q = encoder_q(im_q)
        q = F.normalize(q, dim=1)
        with torch.no_grad():
            self.momentum_update(encoder_q)
            k = F.normalize(self.encoder_k(im_k)[1], dim=1)
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone()
        logits = torch.cat([pos, neg], 1) / self.temperature
        self.enqueue(k)
        return fea, logits


def two_patches(hr: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Two ``size`` x ``size`` crops at independent random positions of each HR item: (B, 3, P, P) ->
    (B, 2, 3, size, size)."""
    b, _, ph, pw = hr.shape
    if ph < size or pw < size:
        raise ConfigError(f"DASR patches of {size} px do not fit the {ph}x{pw} HR crops; raise data.patch_size")
    out = []
    for i in range(b):
        pair = []
        for _ in range(2):
            y = int(torch.randint(0, ph - size + 1, (), generator=generator))
            x = int(torch.randint(0, pw - size + 1, (), generator=generator))
            pair.append(hr[i, :, y : y + size, x : x + size])
        out.append(torch.stack(pair))
    return torch.stack(out)


class DASRMethod(SRMethod):
    """DASR's two-stage training (``method.name: dasr``); the model must be ``arch: dasr``."""

    NAME, ARGS, ARCH, GAN = "dasr", DEFAULTS, "dasr", False

    def build(self) -> None:
        if self.cfg.train.schedule.name != "constant":
            raise ConfigError("method 'dasr' sets the learning rate itself (method.args lr_encoder, lr_sr, ...); "
                              f"set train.schedule.name to constant, not {self.cfg.train.schedule.name!r}")
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise ConfigError("method 'dasr' trains in one process only (no torchrun)")
        super().build()  # checks method.args, arch and GAN; builds the network and the pixel losses
        o = self.opts
        scale = int(self.cfg.data.scale)
        if o["blur"] not in ("iso", "aniso"):
            raise ConfigError(f"method.args.blur must be 'iso' or 'aniso', got {o['blur']!r}")
        ranges = official_ranges(scale, o["blur"])
        for key, value in ranges.items():
            if o.get(key) is None:
                o[key] = value
        o["patch_size"] = int(o["patch_size"] or 48 * scale)
        if o["patch_size"] % scale:
            raise ConfigError(f"method.args.patch_size {o['patch_size']} is not a multiple of the scale {scale}")
        deg = {k: float(o[k]) for k in ("sigma_min", "sigma_max", "lambda_min", "lambda_max", "noise")
               if o[k] is not None}
        self.degradation = RandomDegradation(scale, o["blur"], **deg)
        self.moco: MoCo | None = None  # made at the first step, from the (possibly model.init) weights
        self._moco_state: dict[str, Any] | None = None

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step * 7_919 + 271_828) % 2**63)

    def _ensure_moco(self) -> MoCo:
        if self.moco is None:
            net = self.networks["net"]
            g = torch.Generator().manual_seed(self.cfg.seed + 31_337)
            self.moco = MoCo(net.encoder, int(self.opts["queue_size"]), float(self.opts["momentum"]),
                             float(self.opts["temperature"]), generator=g)
            if self._moco_state is not None:
                self.moco.load_state_dict(self._moco_state)
                self._moco_state = None
            self.moco.train()
        return self.moco

    def lr_and_stage(self, step: int) -> tuple[float, int]:
        return official_lr(step, self.opts)

    def learning_rate(self, update: str, step: int) -> float | None:
        return self.lr_and_stage(step)[0]

    def make_batch(self, hr: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR (B, 2, 3, p/s, p/s), HR (B, 2, 3, p, p)), RGB [0, 1], of iteration ``step``: two patches per
        item with one random degradation per item."""
        g = self._generator(step)
        patches = two_patches(hr, self.opts["patch_size"], g)
        lr, _ = self.degradation(patches, g)
        return lr, patches

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        if update != "net":
            raise KeyError(update)
        _, stage = self.lr_and_stage(step)  # the engine applies the rate through learning_rate()
        net = self.networks["net"]
        moco = self._ensure_moco()
        # the degradation is data preparation: full precision even when the engine runs under autocast
        with torch.autocast(batch["hr"].device.type, enabled=False):
            lr, hr = self.make_batch(batch["hr"].float(), step)
        im_q, im_k = lr[:, 0] * IMG_RANGE, lr[:, 1] * IMG_RANGE
        fea, logits = moco(net.encoder, im_q, im_k)
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        contrast = F.cross_entropy(logits.float(), target)
        out: dict[str, torch.Tensor] = {"contrast": contrast.detach(), "stage": torch.tensor(float(stage))}
        total = self.opts["contrast_weight"] * contrast
        if stage == 2:
            sr = net.G(im_q, fea) / IMG_RANGE
            pixel, terms = self.pixel_terms(sr, hr[:, 0])
            out.update(terms)
            total = total + pixel
        out["total"] = total
        return out

    def state_dict(self) -> dict[str, Any]:
        if self.moco is not None:
            return {"moco": {k: v.detach().cpu() for k, v in self.moco.state_dict().items()}}
        return {"moco": self._moco_state} if self._moco_state is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        moco = state.get("moco")
        if moco is None:
            return
        if self.moco is not None:
            self.moco.load_state_dict(moco)
        else:
            self._moco_state = moco
