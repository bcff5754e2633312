"""LIIF training (Chen, Liu, Wang, CVPR 2021): random-scale sampling of query pixels from HR crops.

The engine's dataset yields ``{"lr", "hr"}`` pairs at the fixed ``data.scale``; this method uses only the
HR crop (``data.patch_size`` must hold the largest HR crop, ``round(inp_size * scale_max)``) and builds its
own training sample per item, as the official ``SRImplicitDownsampled`` wrapper does:

1. a scale ``s ~ U(scale_min, scale_max)``;
2. an HR crop of side ``round(inp_size * s)`` at a random position inside the batch's HR patch;
3. random horizontal flip, vertical flip and transpose (each with probability 1/2) of that crop;
4. the LR input: the crop resized to ``inp_size x inp_size`` by MATLAB bicubic (``srkit.imresize``,
   clamped to [0, 1] as the official 8-bit PIL resize is);
5. ``sample_q`` HR pixels drawn without replacement: their centre coordinates (row, col) in [-1, 1],
   their cells ``(2 / H_crop, 2 / W_crop)`` and their RGB values.

The loss is L1 on ``(x - 0.5) / 0.5`` normalised RGB, as the official ``train_liif.py``. Randomness comes
from one ``torch.Generator`` per batch item, seeded by ``(seed, step, index of the item in the global
batch)``, so a resumed run draws the same samples and a run over several processes (torchrun) draws exactly
the samples of a single-process run with the same global batch. The network is called once per step as
``net(lr, coord=..., cell=...)`` (encoder and decoder in one forward), so the engine's
``DistributedDataParallel`` wrapper synchronises every gradient. Validation upscales whole images to
``data.scale`` with ``net(lr, size=(h * s, w * s))``.

Method args (``method.args``): ``inp_size`` (48), ``scale_min`` (1.0), ``scale_max`` (4.0),
``sample_q`` (2304), ``augment`` (true).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Method, build_network


@dataclass
class ImplicitBatch:
    """One LIIF training batch.

    ``lr``: (B, 3, inp, inp) RGB [0, 1]; ``coord``: (B, Q, 2) pixel centres (row, col) in [-1, 1];
    ``cell``: (B, Q, 2) HR pixel size (2 / H, 2 / W); ``gt``: (B, Q, 3) RGB [0, 1] of those pixels;
    ``scales``: (B,) the drawn scales.
    """

    lr: torch.Tensor
    coord: torch.Tensor
    cell: torch.Tensor
    gt: torch.Tensor
    scales: torch.Tensor


def sample_generator(seed: int, step: int, index: int = 0) -> torch.Generator:
    """CPU generator for the draws of item ``index`` (in the global batch) of iteration ``step``."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7_919 + index * 104_729 + 12_345) % (2**63))
    return g


def pixel_coords(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Centres of an h x w pixel grid, (h * w, 2) as (row, col) in [-1, 1], raster order."""
    from ..archs.liif import make_coord

    ys, xs = make_coord(h, device), make_coord(w, device)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def sample_implicit(
    hr: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator],
    *,
    inp_size: int = 48,
    scale_min: float = 1.0,
    scale_max: float = 4.0,
    sample_q: int | None = 2304,
    augment: bool = True,
    border: str = "symmetric",
) -> ImplicitBatch:
    """Build LIIF training samples from HR patches ``hr`` (B, 3, P, P), RGB [0, 1].

    Each item gets its own scale, crop, flips and query pixels (see the module docstring); ``P`` must be
    at least ``round(inp_size * scale_max)``. ``sample_q=None`` keeps every pixel (then all crops must
    have the same size, i.e. ``scale_min == scale_max``). ``generator``: one for the whole batch, or one
    per item (then each item's draws depend on its own generator only).
    """
    from ..data.resize import imresize

    b, _, ph, pw = hr.shape
    largest = round(inp_size * scale_max)
    if min(ph, pw) < largest:
        raise ConfigError(f"LIIF sampling needs HR patches of at least {largest} px (inp_size {inp_size} x "
                          f"scale_max {scale_max}), got {ph}x{pw}")
    if isinstance(generator, torch.Generator):
        gens = [generator] * b
    else:
        gens = list(generator)
        if len(gens) != b:
            raise ConfigError(f"LIIF sampling got {len(gens)} generators for a batch of {b}")
    lrs, coords, cells, gts, scales = [], [], [], [], []
    for i, generator in enumerate(gens):
        s = scale_min + (scale_max - scale_min) * float(torch.rand((), generator=generator, dtype=torch.float64))
        side = round(inp_size * s)
        y0 = int(torch.randint(0, ph - side + 1, (), generator=generator))
        x0 = int(torch.randint(0, pw - side + 1, (), generator=generator))
        crop = hr[i : i + 1, :, y0 : y0 + side, x0 : x0 + side]
        if augment:
            hflip, vflip, dflip = (torch.rand(3, generator=generator) < 0.5).tolist()
            if hflip:
                crop = crop.flip(-2)  # the official "hflip" flips the first spatial axis
            if vflip:
                crop = crop.flip(-1)
            if dflip:
                crop = crop.transpose(-2, -1)
        lr = imresize(crop, size=(inp_size, inp_size), border=border).clamp_(0, 1)
        coord = pixel_coords(side, side, hr.device)
        rgb = crop[0].reshape(3, -1).t()
        if sample_q is not None:
            if sample_q > side * side:
                raise ConfigError(f"LIIF sample_q {sample_q} exceeds the {side}x{side} HR crop's pixels")
            pick = torch.randperm(side * side, generator=generator)[:sample_q].to(hr.device)
            coord, rgb = coord[pick], rgb[pick]
        cell = torch.empty_like(coord)
        cell[:, 0] = 2 / side
        cell[:, 1] = 2 / side
        lrs.append(lr[0])
        coords.append(coord)
        cells.append(cell)
        gts.append(rgb)
        scales.append(s)
    return ImplicitBatch(torch.stack(lrs), torch.stack(coords), torch.stack(cells), torch.stack(gts),
                         torch.tensor(scales, dtype=torch.float64))


_ARGS = {"inp_size": 48, "scale_min": 1.0, "scale_max": 4.0, "sample_q": 2304, "augment": True}


class LIIFMethod(Method):
    """LIIF with the paper's random-scale query sampler and L1 on normalised RGB."""

    def build(self) -> None:
        unknown = sorted(set(self.cfg.method.args) - set(_ARGS))
        if unknown:
            raise ConfigError(f"method 'liif' has no args {unknown} (valid: {', '.join(_ARGS)})")
        a = {**_ARGS, **self.cfg.method.args}
        self.inp_size, self.sample_q = int(a["inp_size"]), a["sample_q"]
        self.scale_min, self.scale_max = float(a["scale_min"]), float(a["scale_max"])
        self.augment = bool(a["augment"])
        if not 0 < self.scale_min <= self.scale_max:
            raise ConfigError(f"method.args: need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        if self.sample_q is not None and int(self.sample_q) > round(self.inp_size * self.scale_min) ** 2:
            raise ConfigError(f"method.args.sample_q ({self.sample_q}) exceeds the pixels of the smallest HR crop "
                              f"({round(self.inp_size * self.scale_min)}^2)")
        largest = round(self.inp_size * self.scale_max)
        if self.cfg.data.patch_size < largest:
            raise ConfigError(f"data.patch_size ({self.cfg.data.patch_size}) must hold the largest LIIF HR crop, "
                              f"round(inp_size * scale_max) = {largest}")
        net, self.descriptor = build_network(self.cfg.model.arch, self.arch_kwargs())
        self.networks["net"] = net.to(self.device)

    def arch_kwargs(self) -> dict[str, Any]:
        """LIIF is scale-free: ``model.args`` as given, without ``scale``."""
        return dict(self.cfg.model.args)

    def sample(self, hr: torch.Tensor, step: int) -> ImplicitBatch:
        """The training samples of iteration ``step`` from this process's share of the batch's HR patches.

        Item ``i`` of rank ``r`` is item ``r * B + i`` of the global batch (the engine's sharded sampler gives
        each rank a contiguous, equal share), and its draws come from that global index.
        """
        rank = torch.distributed.get_rank() if torch.distributed.is_available() and \
            torch.distributed.is_initialized() else 0
        b = hr.shape[0]
        gens = [sample_generator(self.cfg.seed, step, rank * b + i) for i in range(b)]
        return sample_implicit(
            hr, gens, inp_size=self.inp_size, scale_min=self.scale_min,
            scale_max=self.scale_max, sample_q=None if self.sample_q is None else int(self.sample_q),
            augment=self.augment, border=self.cfg.data.lr_border,
        )

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        if update != "net":
            raise KeyError(update)
        s = self.sample(batch["hr"], step)
        # one forward through the whole model (the DDP wrapper under torchrun, else the network itself)
        pred = self.run("net", s.lr, coord=s.coord, cell=s.cell)
        # official loss: L1 between (pred - 0.5) / 0.5 and (gt - 0.5) / 0.5
        loss = F.l1_loss((pred.float() - 0.5) / 0.5, (s.gt - 0.5) / 0.5)
        return {"total": loss, "l1": loss.detach(), "scale": s.scales.mean().to(loss.device).float()}

    @torch.no_grad()
    def infer(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """Whole-image SR at ``data.scale``: every output pixel centre queried, RGB [0, 1] (not clamped)."""
        s = self.cfg.data.scale
        h, w = lr.shape[-2:]
        return net(lr, size=(h * s, w * s))
