"""LIIF: Local Implicit Image Function (Chen, Liu, Wang, CVPR 2021), continuous-scale super-resolution.

An encoder (EDSR-baseline or RDN without upsampler) turns the LR image into a latent grid; an MLP decodes
the RGB value at any continuous coordinate from the nearest latent code(s), the offset to them and the size
of the output pixel ("cell").

Conventions (srkit): images are float32 RGB in [0, 1], NCHW. The official weights were trained on
``(x - 0.5) / 0.5`` inputs and targets, so :meth:`LIIF.encode` normalises its input and :meth:`LIIF.query`
de-normalises its output; neither clamps (the caller decides).

Coordinates follow the official code: ``coord[..., 0]`` is the row (y), ``coord[..., 1]`` the column (x),
both in [-1, 1] with pixel centres at ``-1 + (2k + 1) / n`` (:func:`make_coord`); ``cell`` is the output
pixel size in the same units, ``(2 / H_out, 2 / W_out)``.

Two query paths give the same numbers (within float rounding, tested to 1e-5):

* the fast path (default): the first MLP layer is linear in the 3x3-unfolded latent code, so its latent
  part is a 3x3 convolution evaluated once per LR pixel (:meth:`LIIF.precompute`); per query only the
  4-column coordinate/cell term and the other MLP layers remain. Queries run in chunks, so memory follows
  ``chunk_size`` (or ``memory_budget``), not the output size.
* the reference path (``reference=True``): the official computation (unfold, ``grid_sample`` of the
  576-channel map, concatenation, full MLP), kept for tests and benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..descriptor import ModelDescriptor
from ..errors import ConfigError, SrkitError

# Encoders are srkit backbones built with no_upsampling=True (they return the LR feature map). The paper
# uses "edsr_baseline" (16 blocks, 64 features) and "rdn" (configuration B). The official encoders were
# built with rgb_range 1; their (unused) mean-shift layers are kept so that official state dicts load.
ENCODER_DEFAULTS: dict[str, dict] = {"edsr_baseline": {"img_range": 1.0}, "edsr": {"img_range": 1.0}}

DEFAULT_MEMORY_BUDGET = 64 * 2**20
"""Bytes of per-chunk working memory for queries when neither ``chunk_size`` nor a budget is given."""

_ENSEMBLE_EPS = 1e-6  # the official shift that breaks nearest-neighbour ties between two latent codes
_CLAMP = 1e-6  # coordinates are clamped to (-1 + 1e-6, 1 - 1e-6) so a shifted query stays in the grid
_AREA_EPS = 1e-9  # keeps the ensemble weights defined when a query sits exactly on a latent centre


def make_coord(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Centres of ``n`` equal cells tiling [-1, 1], float32, shape (n,): ``-1 + (2k + 1) / n``.

    Evaluated with the same float operations as the official ``make_coord``, so the values are bitwise equal.
    """
    r = 1.0 / n  # half a cell: (1 - (-1)) / (2 n)
    return -1 + r + (2 * r) * torch.arange(n, device=device).float()


class MLP(nn.Module):
    """Linear-ReLU stack; ``layers`` holds Linear at even and ReLU at odd indices (official key layout)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]):
        super().__init__()
        mods: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            mods += [nn.Linear(last, width), nn.ReLU()]
            last = width
        mods.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*mods)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class LatentCache:
    """Per-image precomputation for the fast query path (from :meth:`LIIF.precompute`).

    ``hidden`` is the first MLP layer's latent term plus its bias at every LR pixel, rows ordered
    (batch, y, x): shape (B * h * w, hidden[0]). A *band* (from :meth:`LIIF.latent_band`) holds only LR rows
    ``row0 : row0 + rows`` of an image ``height`` rows tall: shape (B * rows * w, hidden[0]); queries must
    then fall on those rows.
    """

    hidden: torch.Tensor
    batch: int
    height: int
    width: int
    row0: int = 0
    rows: int | None = None
    """LR rows stored (None: all ``height``)."""


def _encoder_kwargs(name: str, args: dict | None) -> dict:
    return {**ENCODER_DEFAULTS.get(name, {}), **(args or {}), "no_upsampling": True}


def _encoder_receptive_field(name: str, args: dict | None) -> int:
    from . import describe as describe_arch

    try:
        return int(describe_arch(name, **_encoder_kwargs(name, args)).receptive_field)
    except Exception:  # noqa: BLE001 - an encoder without a descriptor: assume a generous context
        return 64


def _build_encoder(name: str, args: dict | None) -> nn.Module:
    from . import build  # the srkit architecture registry

    try:
        return build(name, **_encoder_kwargs(name, args))
    except ConfigError as e:
        raise ConfigError(f"LIIF encoder {name!r}: {e}") from None


def _feature_channels(encoder: nn.Module) -> int:
    for attr in ("out_dim", "out_channels", "n_feats", "num_feat", "G0"):
        value = getattr(encoder, attr, None)
        if isinstance(value, int):
            return value
    with torch.no_grad():  # fall back to a tiny dry run
        p = next(encoder.parameters())
        return encoder(torch.zeros(1, 3, 4, 4, dtype=p.dtype, device=p.device)).shape[1]


class LIIF(nn.Module):
    """LIIF super-resolution network.

    Args:
        encoder: ``"edsr_baseline"``, ``"rdn"``, another srkit backbone name that accepts
            ``no_upsampling=True``, or an ``nn.Module`` mapping (B, 3, h, w) to (B, C, h, w) features.
        encoder_args: constructor arguments for a named encoder (override its defaults).
        hidden: MLP hidden widths (paper: four layers of 256).
        local_ensemble: blend the four nearest latent codes with bilinear-like area weights.
        feat_unfold: concatenate each latent code with its 3x3 neighbourhood (9 C channels).
        cell_decode: give the MLP the output pixel size.

    ``forward(lr, size)`` takes RGB in [0, 1], (B, 3, h, w), and returns RGB (B, 3, H, W), not clamped.
    """

    def __init__(
        self,
        encoder: str | nn.Module = "edsr_baseline",
        encoder_args: dict | None = None,
        hidden: Sequence[int] = (256, 256, 256, 256),
        local_ensemble: bool = True,
        feat_unfold: bool = True,
        cell_decode: bool = True,
    ):
        super().__init__()
        if isinstance(encoder, nn.Module):
            self.encoder = encoder
        else:
            self.encoder = _build_encoder(encoder, encoder_args)
        if not hidden:
            raise ConfigError("LIIF needs at least one hidden MLP layer")
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.feat_dim = _feature_channels(self.encoder)
        # LR rows of context the encoder needs for exact features next to a cut (banded latents)
        self.encoder_context = 64 if isinstance(encoder, nn.Module) else _encoder_receptive_field(encoder, encoder_args)
        in_dim = self.feat_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = MLP(in_dim, 3, list(hidden))

    # ------------------------------------------------------------------ encoder
    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB in [0, 1], (B, 3, h, w) -> latent grid (B, C, h, w) (the official ``gen_feat``)."""
        return self.encoder((lr - 0.5) / 0.5)

    # ------------------------------------------------------------------ fast path
    def precompute(self, feat: torch.Tensor) -> LatentCache:
        """Latent term of the first MLP layer at every LR pixel: one 3x3 (or 1x1) convolution per image."""
        first = self.imnet.linears[0]
        b, c, h, w = feat.shape
        lat = first.weight[:, : c * (9 if self.feat_unfold else 1)]
        if self.feat_unfold:
            # F.unfold orders channels as (c, ky, kx): the weight reshapes into a 3x3 kernel, and the
            # zero padding of unfold equals the convolution's zero padding.
            hid = F.conv2d(feat, lat.reshape(-1, c, 3, 3), first.bias, padding=1)
        else:
            hid = F.conv2d(feat, lat.reshape(-1, c, 1, 1), first.bias)
        hid = hid.permute(0, 2, 3, 1).reshape(b * h * w, -1)
        return LatentCache(hid, b, h, w)

    def latent_band(self, lr: torch.Tensor, row0: int, row1: int) -> LatentCache:
        """The :meth:`precompute` cache of LR rows ``row0:row1`` only, from a slab of ``lr`` around them.

        The encoder runs on rows ``row0 - 1 - c : row1 + 1 + c`` (``c`` = :attr:`encoder_context`, its
        receptive field; clipped to the image), so the features of rows ``row0 - 1 : row1 + 1`` are those of
        the whole image (up to float rounding), and the 3x3 latent term of rows ``row0:row1`` is exact.
        Memory: the slab's encoder activations, not the whole image's.
        """
        b, _, h, w = lr.shape
        if not 0 <= row0 < row1 <= h:
            raise SrkitError(f"LIIF latent_band: rows {row0}:{row1} outside an image of {h} rows")
        pad = 1 if self.feat_unfold else 0
        f0, f1 = max(row0 - pad, 0), min(row1 + pad, h)
        e0, e1 = max(f0 - self.encoder_context, 0), min(f1 + self.encoder_context, h)
        feat = self.encode(lr[:, :, e0:e1])[:, :, f0 - e0 : f1 - e0]
        full = self.precompute(feat)
        hid = full.hidden.view(b, f1 - f0, w, -1)[:, row0 - f0 : row1 - f0].reshape(b * (row1 - row0) * w, -1)
        return LatentCache(hid, b, h, w, row0, row1 - row0)

    def lr_rows_needed(self, height: int, h: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi): per output row (of ``height``) the first and last of the ``h`` LR rows its queries use.

        Same shifted coordinates and nearest-code choice as the query, so exact; both are non-decreasing.
        """
        ys = make_coord(height, device).view(1, -1)
        eps = _ENSEMBLE_EPS if self.local_ensemble else 0.0
        lo = hi = None
        for vy in sorted({vy for vy, _ in self._corners()}):
            shifted = ys.clone()
            shifted += vy * (2 / h / 2) + eps
            shifted.clamp_(-1 + _CLAMP, 1 - _CLAMP)
            iy = _nearest_index(shifted, h)[0]
            lo = iy if lo is None else torch.minimum(lo, iy)
            hi = iy if hi is None else torch.maximum(hi, iy)
        return lo, hi

    def _corners(self) -> list[tuple[int, int]]:
        return [(-1, -1), (-1, 1), (1, -1), (1, 1)] if self.local_ensemble else [(0, 0)]

    def _query_fast(self, cache: LatentCache, coord: torch.Tensor, cell: torch.Tensor | None) -> torch.Tensor:
        """One chunk: coord (B, n, 2), cell (B, n, 2) -> normalised RGB (B, n, 3)."""
        b, n, _ = coord.shape
        h, w = cache.height, cache.width
        linears = self.imnet.linears
        w_first = linears[0].weight[:, -(4 if self.cell_decode else 2) :]  # columns of rel_coord (+ rel_cell)
        eps = _ENSEMBLE_EPS if self.local_ensemble else 0.0
        rows_h = make_coord(h, coord.device)
        cols_w = make_coord(w, coord.device)
        stored = h if cache.rows is None else cache.rows
        banded = stored != h or cache.row0 != 0
        batch_offset = (torch.arange(b, device=coord.device) * (stored * w)).view(b, 1)
        rel_cell = None
        if self.cell_decode:
            rel_cell = cell.clone()
            rel_cell[:, :, 0] *= h
            rel_cell[:, :, 1] *= w

        rels, areas, flats = [], [], []
        for vy, vx in self._corners():
            shifted = coord.clone()
            shifted[:, :, 0] += vy * (2 / h / 2) + eps  # half an LR cell, in the official float expression
            shifted[:, :, 1] += vx * (2 / w / 2) + eps
            shifted.clamp_(-1 + _CLAMP, 1 - _CLAMP)
            iy = _nearest_index(shifted[:, :, 0], h)
            ix = _nearest_index(shifted[:, :, 1], w)
            rel = torch.stack([coord[:, :, 0] - rows_h[iy], coord[:, :, 1] - cols_w[ix]], dim=-1)
            rel[:, :, 0] *= h
            rel[:, :, 1] *= w
            rels.append(rel)
            areas.append(torch.abs(rel[:, :, 0] * rel[:, :, 1]) + _AREA_EPS)
            if banded:
                iy = iy - cache.row0
                if bool(((iy < 0) | (iy >= stored)).any()):
                    raise SrkitError(f"LIIF query reaches LR rows outside the latent band {cache.row0}:"
                                     f"{cache.row0 + stored}")
            flats.append((batch_offset + iy * w + ix).reshape(-1))

        tot_area = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:  # each corner is weighted by the area of the diagonally opposite one
            areas = areas[::-1]

        out = None
        for rel, area, flat in zip(rels, areas, flats):
            small = torch.cat([rel, rel_cell], dim=-1) if rel_cell is not None else rel
            # gathered latent term (+ bias) plus the coordinate/cell term, added in place
            x = cache.hidden.index_select(0, flat).addmm_(small.reshape(b * n, -1), w_first.t())
            x = _mlp_tail(x, linears[1:])
            pred = x.view(b, n, -1)
            if self.local_ensemble:
                pred = pred * (area / tot_area).unsqueeze(-1)
            out = pred if out is None else out + pred
        return out

    # ------------------------------------------------------------------ reference path
    def _query_reference(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor | None) -> torch.Tensor:
        """The official ``query_rgb`` computation (slow), on an already unfolded ``feat``."""
        b, _, h, w = feat.shape
        eps = _ENSEMBLE_EPS if self.local_ensemble else 0.0
        feat_coord = torch.stack(torch.meshgrid(make_coord(h, feat.device), make_coord(w, feat.device), indexing="ij"))
        feat_coord = feat_coord.unsqueeze(0).expand(b, 2, h, w)
        preds, areas = [], []
        for vy, vx in self._corners():
            shifted = coord.clone()
            shifted[:, :, 0] += vy * (2 / h / 2) + eps
            shifted[:, :, 1] += vx * (2 / w / 2) + eps
            shifted.clamp_(-1 + _CLAMP, 1 - _CLAMP)
            grid = shifted.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            rel = coord - q_coord
            rel[:, :, 0] *= h
            rel[:, :, 1] *= w
            inp = torch.cat([q_feat, rel], dim=-1)
            if self.cell_decode:
                rel_cell = cell.clone()
                rel_cell[:, :, 0] *= h
                rel_cell[:, :, 1] *= w
                inp = torch.cat([inp, rel_cell], dim=-1)
            bq = coord.shape[:2]
            preds.append(self.imnet(inp.view(bq[0] * bq[1], -1)).view(*bq, -1))
            areas.append(torch.abs(rel[:, :, 0] * rel[:, :, 1]) + _AREA_EPS)
        tot_area = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:
            areas = areas[::-1]
        ret = 0
        for pred, area in zip(preds, areas):
            ret = ret + pred * (area / tot_area).unsqueeze(-1)
        return ret

    def _unfold(self, feat: torch.Tensor) -> torch.Tensor:
        if not self.feat_unfold:
            return feat
        b, c, h, w = feat.shape
        return F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)

    # ------------------------------------------------------------------ public query
    def query(
        self,
        feat: torch.Tensor | LatentCache,
        coord: torch.Tensor,
        cell: torch.Tensor | None = None,
        *,
        chunk_size: int | None = None,
        memory_budget: int | None = None,
        reference: bool = False,
    ) -> torch.Tensor:
        """RGB at continuous coordinates.

        Args:
            feat: latent grid from :meth:`encode` (B, C, h, w), or its :meth:`precompute` cache (fast path
                only; pass the cache when querying one image many times).
            coord: (B, Q, 2) query points (row, col) in [-1, 1].
            cell: (B, Q, 2) output pixel sizes (2 / H_out, 2 / W_out); required when ``cell_decode``.
            chunk_size: queries per chunk; default from ``memory_budget`` (bytes, default 64 MiB).
            reference: use the official (slow) computation instead of the fast path.

        Returns:
            (B, Q, 3) RGB in [0, 1] (not clamped).
        """
        if coord.dim() != 3 or coord.shape[-1] != 2:
            raise SrkitError(f"LIIF query coord must have shape (B, Q, 2), got {tuple(coord.shape)}")
        if self.cell_decode:
            if cell is None:
                raise SrkitError("this LIIF model decodes cells: query needs cell (B, Q, 2)")
            if cell.shape != coord.shape:
                raise SrkitError(f"LIIF query cell shape {tuple(cell.shape)} differs from coord {tuple(coord.shape)}")
        q = coord.shape[1]
        chunk = chunk_size or self.chunk_size_for(memory_budget, reference=reference)
        if reference:
            if isinstance(feat, LatentCache):
                raise SrkitError("the reference query path needs the latent grid, not a LatentCache")
            feat = self._unfold(feat)
            run = self._query_reference
        else:
            if not isinstance(feat, LatentCache):
                feat = self.precompute(feat)
            run = self._query_fast
        parts = [
            run(feat, coord[:, a : a + chunk], None if cell is None else cell[:, a : a + chunk])
            for a in range(0, q, chunk)
        ]
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return out * 0.5 + 0.5

    def chunk_size_for(self, memory_budget: int | None = None, *, reference: bool = False) -> int:
        """Queries per chunk so that one chunk's working memory stays within ``memory_budget`` bytes."""
        budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        width = max(self.imnet.linears[0].out_features, *(m.out_features for m in self.imnet.linears[1:]))
        corners = len(self._corners())
        if reference:  # official: per corner the gathered input and the MLP activations are kept
            per_query = 4 * corners * (2 * self.imnet.linears[0].in_features + 3 * width)
        else:  # fast: per corner small coordinate tensors; one corner's activations at a time
            per_query = 4 * (corners * 16 + 3 * width)
        return max(1, budget // per_query)

    # ------------------------------------------------------------------ whole image
    def forward(
        self,
        lr: torch.Tensor,
        size: int | tuple[int, int] | None = None,
        *,
        scale: float | tuple[float, float] | None = None,
        coord: torch.Tensor | None = None,
        cell: torch.Tensor | None = None,
        chunk_size: int | None = None,
        memory_budget: int | None = None,
        reference: bool = False,
    ) -> torch.Tensor:
        """Upscale ``lr`` (B, 3, h, w), RGB [0, 1], to ``size`` = (H, W) (or ``scale``): (B, 3, H, W).

        With ``scale`` the size is ``round(h * s), round(w * s)`` (Python rounding, as the official test
        wrapper). Every output pixel centre is queried with cell (2 / H, 2 / W), as the official demo.
        Coordinates are made chunk by chunk, so memory is the output plus one chunk's work.

        With ``coord`` (B, Q, 2) (and ``cell`` when the model decodes cells) instead of a size, returns the RGB
        at those points, (B, Q, 3), i.e. ``query(encode(lr), coord, cell)``: the training call, one forward
        through the whole model, so that a ``DistributedDataParallel`` wrapper sees every parameter used.
        """
        if coord is not None:
            if size is not None or scale is not None:
                raise SrkitError("LIIF forward takes either coord (and cell) or an output size/scale, not both")
            return self.query(self.encode(lr), coord, cell, chunk_size=chunk_size, memory_budget=memory_budget,
                              reference=reference)
        b, _, h, w = lr.shape
        height, width = _output_size(h, w, size, scale)
        latent = self._latent(lr, reference)
        out = torch.empty(b, 3, height, width, device=lr.device, dtype=lr.dtype)
        chunk = chunk_size or self.chunk_size_for(memory_budget, reference=reference)
        self._render(latent, out, 0, height * width, chunk, reference)
        return out

    def iter_rows(
        self,
        lr: torch.Tensor,
        size: int | tuple[int, int] | None = None,
        *,
        scale: float | tuple[float, float] | None = None,
        rows_per_strip: int | None = None,
        chunk_size: int | None = None,
        memory_budget: int | None = None,
        reference: bool = False,
        band_rows: int | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Upscale like :meth:`forward`, but yield the output as horizontal strips, top to bottom.

        Yields ``(row0, strip)`` with ``strip`` (B, 3, n, W) holding output rows ``row0 : row0 + n``
        (``rows_per_strip`` rows, fewer at the bottom; default: the rows one query chunk covers). The
        encoder and the latent precomputation run once on the whole LR image; the queries run in the same
        raster-order chunks as :meth:`forward` with the same ``chunk_size`` / ``memory_budget``, so the strips
        are exactly (bit for bit) the rows of ``forward``'s result. Memory: the latent grid, one chunk's work
        and one strip, whatever the output size. Each strip is a new tensor the caller may keep.

        ``band_rows`` (fast path only): compute the encoder and latents for ``band_rows`` LR rows at a time
        (:meth:`latent_band`, with the encoder's context around each band) instead of the whole LR image, so
        that memory follows the band, not the input height either. The result then equals ``forward`` up to
        float rounding (the encoder runs on slabs; the query chunks restart at each band), not bit for bit.
        """
        b, _, h, w = lr.shape
        height, width = _output_size(h, w, size, scale)
        chunk = chunk_size or self.chunk_size_for(memory_budget, reference=reference)
        rows = int(rows_per_strip) if rows_per_strip else max(1, math.ceil(chunk / width))
        if rows < 1:
            raise SrkitError(f"LIIF iter_rows: rows_per_strip must be at least 1, got {rows_per_strip}")
        if band_rows is not None and int(band_rows) < h:
            if reference:
                raise SrkitError("LIIF iter_rows: band_rows needs the fast query path")
            yield from self._iter_banded(lr, height, width, rows, chunk, max(int(band_rows), 1))
            return
        latent = self._latent(lr, reference)
        render = self._chunk_renderer(latent, b, height, width, lr.device, reference)
        total = height * width
        row0 = 0
        strip = torch.empty(b, 3, min(rows, height) * width, device=lr.device, dtype=lr.dtype)
        filled = 0  # pixels of the current strip already computed
        for a in range(0, total, chunk):
            vals = render(a, min(a + chunk, total))
            used = 0
            while used < vals.shape[-1]:
                take = min(vals.shape[-1] - used, strip.shape[-1] - filled)
                strip[:, :, filled : filled + take] = vals[:, :, used : used + take]
                filled += take
                used += take
                if filled == strip.shape[-1]:
                    n = strip.shape[-1] // width
                    yield row0, strip.view(b, 3, n, width)
                    row0 += n
                    filled = 0
                    if row0 < height:
                        strip = torch.empty(b, 3, min(rows, height - row0) * width, device=lr.device,
                                            dtype=lr.dtype)

    def _iter_banded(self, lr: torch.Tensor, height: int, width: int, rows: int, chunk: int,
                     band_rows: int) -> Iterator[tuple[int, torch.Tensor]]:
        """:meth:`iter_rows` with latents computed band by band (see there)."""
        b, _, h, _ = lr.shape
        lo, hi = self.lr_rows_needed(height, h, lr.device)
        lo, hi = lo.tolist(), hi.tolist()
        y = 0
        while y < height:
            a = lo[y]
            e = max(min(a + band_rows, h), hi[y] + 1)
            # output rows whose LR rows all lie in [a, e): a prefix from y, since hi is non-decreasing
            y_end = y
            while y_end < height and hi[y_end] < e:
                y_end += 1
            render = self._chunk_renderer(self.latent_band(lr, a, e), b, height, width, lr.device, False)
            for r0 in range(y, y_end, rows):
                r1 = min(r0 + rows, y_end)
                start, stop = r0 * width, r1 * width
                strip = torch.empty(b, 3, stop - start, device=lr.device, dtype=lr.dtype)
                for p in range(start, stop, chunk):
                    q = min(p + chunk, stop)
                    strip[:, :, p - start : q - start] = render(p, q)
                yield r0, strip.view(b, 3, r1 - r0, width)
            y = y_end

    def _latent(self, lr: torch.Tensor, reference: bool):
        feat = self.encode(lr)
        return self._unfold(feat) if reference else self.precompute(feat)

    def _chunk_renderer(self, latent, b: int, height: int, width: int, device, reference: bool):
        """``render(start, stop)`` -> (B, 3, stop - start) RGB of output pixels ``start:stop`` (raster order)."""
        run = self._query_reference if reference else self._query_fast
        ys = make_coord(height, device)
        xs = make_coord(width, device)
        cell_value = torch.ones(2, device=device)  # the official demo's cell: ones * (2 / H, 2 / W)
        cell_value[0] *= 2 / height
        cell_value[1] *= 2 / width

        def render(start: int, stop: int) -> torch.Tensor:
            idx = torch.arange(start, stop, device=device)
            coord = torch.stack([ys[idx // width], xs[idx % width]], dim=-1).unsqueeze(0).expand(b, -1, 2)
            cell = cell_value.expand(b, len(idx), 2) if self.cell_decode else None
            return (run(latent, coord, cell) * 0.5 + 0.5).transpose(1, 2)

        return render

    def _render(self, latent, out: torch.Tensor, start: int, stop: int, chunk: int, reference: bool) -> None:
        """Fill output pixels ``start:stop`` (raster order) of ``out`` (B, 3, H, W) in chunks of ``chunk``."""
        b, _, height, width = out.shape
        render = self._chunk_renderer(latent, b, height, width, out.device, reference)
        flat = out.view(b, 3, height * width)
        for a in range(start, stop, chunk):
            end = min(a + chunk, stop)
            flat[:, :, a:end] = render(a, end)


def _fused_linear_relu_available() -> bool:
    """oneDNN's linear with bias and ReLU fused in the GEMM epilogue (the op torch.compile uses on CPU)."""
    try:
        x = torch.ones(2, 3)
        w = torch.ones(4, 3)
        y = torch.ops.mkldnn._linear_pointwise(x, w, torch.zeros(4), "relu", [], "")
        return bool(torch.equal(y, torch.full((2, 4), 3.0)))
    except (AttributeError, RuntimeError):
        return False


_FUSED: bool | None = None


def _mlp_tail(x: torch.Tensor, linears: Sequence[nn.Linear]) -> torch.Tensor:
    """ReLU then the remaining Linear layers, on the first layer's pre-activation ``x`` (modified in place).

    Without autograd on CPU float32, hidden layers use oneDNN's fused linear + bias + ReLU, which saves two
    passes over the activations per layer (the bias broadcast and the separate ReLU); otherwise addmm.
    """
    global _FUSED
    x = x.relu_()
    fusable = x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
    if fusable and _FUSED is None:
        _FUSED = _fused_linear_relu_available()
    for i, lin in enumerate(linears):
        last = i == len(linears) - 1
        if fusable and _FUSED and not last:
            x = torch.ops.mkldnn._linear_pointwise(x, lin.weight, lin.bias, "relu", [], "")
        else:
            x = torch.addmm(lin.bias, x, lin.weight.t())
            if not last:
                x = x.relu_()
    return x


def _nearest_index(c: torch.Tensor, n: int) -> torch.Tensor:
    """Index of the cell that ``grid_sample(mode='nearest', align_corners=False)`` picks along one axis.

    Asks ``grid_sample`` itself, on a 1-D map of cell indices, so ties round exactly as in the official
    code on the same device. ``c``: (B, Q) coordinates in (-1, 1); returns int64 (B, Q).
    """
    b, q = c.shape
    index_map = torch.arange(n, device=c.device, dtype=c.dtype).view(1, 1, n, 1).expand(b, 1, n, 1)
    grid = torch.stack([torch.zeros_like(c), c], dim=-1).unsqueeze(1)  # (x = 0, y = c) on a width-1 map
    picked = F.grid_sample(index_map, grid, mode="nearest", align_corners=False)
    return picked.view(b, q).long()


def _output_size(h: int, w: int, size, scale) -> tuple[int, int]:
    if (size is None) == (scale is None):
        raise SrkitError("LIIF forward needs exactly one of size=(H, W) and scale")
    if size is not None:
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    else:
        sy, sx = (scale, scale) if isinstance(scale, (int, float)) else (float(scale[0]), float(scale[1]))
        if not (math.isfinite(sy) and math.isfinite(sx)) or sy <= 0 or sx <= 0:
            raise SrkitError(f"LIIF scale must be positive and finite, got {scale}")
        height, width = round(h * sy), round(w * sx)
    if height < 1 or width < 1:
        raise SrkitError(f"LIIF output size must be at least 1x1, got {height}x{width}")
    return height, width


def describe(name: str = "liif", kw: dict | None = None) -> ModelDescriptor:
    """Descriptor of ``LIIF(**kw)`` for the architecture registry (``describe_fn(name, kwargs)``).

    Continuous scales; the context for tiling is the encoder's receptive field plus one LR pixel for the
    3x3 unfolding and one for the local ensemble's neighbouring code.
    """
    from . import describe as describe_arch

    kw = dict(kw or {})
    encoder = kw.get("encoder", "edsr_baseline")
    if isinstance(encoder, str):
        rf = describe_arch(encoder, **_encoder_kwargs(encoder, kw.get("encoder_args"))).receptive_field
    else:
        rf = 64  # an encoder module passed directly: unknown, assume a generous context
    rf += int(kw.get("feat_unfold", True)) + int(kw.get("local_ensemble", True))
    return ModelDescriptor(
        arch=name,
        scale_range=(1.0, 64.0),
        receptive_field=rf,
        # coordinates need float32: half precision cannot even address the pixels of a large output
        supports_half=False,
        supports_bfloat16=False,
    )
