"""LAM: Local Attribution Maps for super-resolution networks (Gu & Dong, CVPR 2021, arXiv 2011.11036).

LAM asks which LR pixels a network used to produce the texture inside a small window of its SR output.
It integrates the gradient of a target D (the summed gradient magnitude of the SR output inside the
window) along a path from a blurred copy of the LR image to the image itself:

    LAM(I) = integral_0^1  dD(F(gamma(a))) / dgamma(a)  *  dgamma(a) / da  da,   gamma(a) = I conv G(sigma (1 - a))

The numbers follow the authors' demo code (``X-Lowlevel-Vision/LAM_Demo`` and the settings of its
notebook), checked constant by constant:

* the path: 9x9 isotropic Gaussian kernels ``exp(-(x^2 + y^2) / (2 (s + 1e-5)^2))`` normalised to sum 1,
  ``s`` from 1.2 down to 0 in 50 steps (51 kernels, ``linspace(1.2, 0, 51)``), borders mirrored without
  repeating the edge pixel (OpenCV's default REFLECT_101, which is torch's ``"reflect"`` padding);
  step i (0..49) evaluates the gradient at the image blurred with kernel i + 1 and multiplies it by the
  image filtered with ``(k[i+1] - k[i]) * 50`` (a right Riemann sum: the fully blurred start point itself
  is never evaluated, the last point, sigma 0, is the image);
* the map is the mean over the steps of ``gradient * path derivative``: (C, h, w) at LR size;
* pictures and the Diffusion Index use ``|sum over channels| / max`` (channels summed *before* abs);
* DI = (1 - Gini) * 100 of that map, Gini as the demo computes it (shift negatives, add 1e-7, sorted form).

Everything here is batched: path points are generated on the fly, ``batch_size`` at a time, and each batch
is one forward and one backward pass (samples do not interact, the network is in eval mode), so a LAM
costs ``ceil(50 / batch_size)`` passes instead of 50 while memory stays bounded.

Images are float32 RGB in [0, 1], NCHW, as everywhere in srkit. Window coordinates are in SR (HR) pixels:
``x`` is the column and ``y`` the row of the top-left corner.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..descriptor import ModelDescriptor
from ..errors import SrkitError

SIGMA = 1.2
"""Standard deviation (LR pixels) of the blur at the start of the progressive-blurring path."""
STEPS = 50
"""Path steps ("fold" in the demo)."""
KERNEL_SIZE = 9
"""Side of the Gaussian kernels ("l" in the demo notebook; the library default there is 5, the notebook's 9)."""
WINDOW = 16
"""Default side of the analysed SR window (the paper's figures; the HAT authors use 24)."""
_SIGMA_EPS = 1e-5  # the demo's guard that makes sigma = 0 a delta kernel instead of a division by zero
_GINI_EPS = 1e-7  # the demo adds this to every value so that an all-zero map has a defined Gini
DEFAULT_MAX_MEMORY = 1 << 30
"""Bytes of activation memory per batch of path steps when neither ``batch_size`` nor a budget is given."""

ForwardFn = Callable[..., torch.Tensor]


# ------------------------------------------------------------------------------------------------ paths


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Isotropic Gaussian, ``size`` x ``size`` (centred; for even sizes the extra tap is on the positive
    side, as in the demo), normalised to sum 1, float64. ``sigma = 0`` gives a delta."""
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    k = np.exp(-(xx**2 + yy**2) / (2.0 * (sigma + _SIGMA_EPS) ** 2))
    return k / k.sum()


def filter_image(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each channel of ``image`` (C, h, w) with each kernel (K, k, k): (K, C, h, w).

    Borders as OpenCV's ``filter2D`` default (REFLECT_101). Needs h, w > k // 2.
    """
    c, h, w = image.shape
    k = kernels.shape[-1]
    lo, hi = (k - 1) // 2, k // 2  # OpenCV's anchor for an even kernel is k // 2: one more tap before it
    if min(h, w) <= max(lo, hi):
        raise SrkitError(f"LAM: the LR image ({w}x{h}) must be larger than {max(lo, hi)} pixels per side "
                         f"for {k}x{k} blur kernels")
    # OpenCV anchors a kernel at k // 2, so its taps reach k // 2 pixels back and (k - 1) // 2 ahead.
    x = F.pad(image.unsqueeze(1), (hi, lo, hi, lo), mode="reflect")  # (C, 1, h + k - 1, w + k - 1)
    out = F.conv2d(x, kernels.unsqueeze(1).to(image.dtype))  # (C, K, h, w)
    return out.transpose(0, 1)


class BlurPath:
    """The progressive-blurring path of LAM: from ``image conv G(sigma)`` to the image (``sigma`` -> 0).

    ``points(image, start, stop)`` gives the path images and their derivatives d gamma / d alpha for steps
    ``start..stop-1``, each (n, C, h, w); step i uses kernel i + 1 of ``linspace(sigma, 0, steps + 1)``.
    """

    def __init__(self, sigma: float = SIGMA, steps: int = STEPS, kernel_size: int = KERNEL_SIZE):
        _check_path_args(steps, sigma, kernel_size)
        self.sigma, self.steps, self.kernel_size = float(sigma), int(steps), int(kernel_size)
        sigmas = np.linspace(self.sigma, 0.0, self.steps + 1)
        kernels = np.stack([gaussian_kernel(self.kernel_size, s) for s in sigmas])
        self._kernels = torch.from_numpy(kernels)  # float64; cast when applied
        self._dkernels = torch.from_numpy((kernels[1:] - kernels[:-1]) * self.steps)

    def baseline(self, image: torch.Tensor) -> torch.Tensor:
        """The start of the path (never evaluated by the Riemann sum): ``image`` (C, h, w) blurred with sigma."""
        return filter_image(image, self._kernels[:1])[0]

    def points(self, image: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        img64 = image.double()  # filter in float64, then store float32 like the demo's astype(float32)
        x = filter_image(img64, self._kernels[start + 1 : stop + 1]).to(image.dtype)
        dx = filter_image(img64, self._dkernels[start:stop]).to(image.dtype)
        return x, dx

    def __repr__(self) -> str:
        return f"BlurPath(sigma={self.sigma:g}, steps={self.steps}, kernel_size={self.kernel_size})"


class LinearPath:
    """Straight line from a baseline (default black) to the image, as the demo's ``LinearPath``.

    The demo's points are ``baseline + a (image - baseline)`` for ``a = linspace(0, 1, steps)`` (both ends
    included), each with derivative ``image - baseline``; the map is their mean, as for the blur path.
    """

    def __init__(self, steps: int = STEPS):
        _check_path_args(steps)
        self.steps = int(steps)

    def baseline(self, image: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(image)

    def points(self, image: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.baseline(image)
        alphas = np.linspace(0.0, 1.0, self.steps)[start:stop]
        a = torch.tensor(alphas, dtype=torch.float64).view(-1, 1, 1, 1)
        diff = image.double() - base.double()
        x = (a * diff + base.double()).to(image.dtype)
        dx = diff.to(image.dtype).unsqueeze(0).expand(len(alphas), -1, -1, -1)
        return x, dx

    def __repr__(self) -> str:
        return f"LinearPath(steps={self.steps})"


class GaussianLinearPath(LinearPath):
    """Straight line from the image blurred with one Gaussian (``sigma``, ``kernel_size``) to the image."""

    def __init__(self, sigma: float = SIGMA, steps: int = STEPS, kernel_size: int = KERNEL_SIZE):
        _check_path_args(steps, sigma, kernel_size)
        super().__init__(steps)
        self.sigma, self.kernel_size = float(sigma), int(kernel_size)
        self._kernel = torch.from_numpy(gaussian_kernel(self.kernel_size, self.sigma))[None]

    def baseline(self, image: torch.Tensor) -> torch.Tensor:
        return filter_image(image.double(), self._kernel)[0].to(image.dtype)

    def __repr__(self) -> str:
        return f"GaussianLinearPath(sigma={self.sigma:g}, steps={self.steps}, kernel_size={self.kernel_size})"


Path = Union[BlurPath, LinearPath, GaussianLinearPath]
PATHS = {"blur": BlurPath, "linear": LinearPath, "gaussian-linear": GaussianLinearPath}
"""Path names (as ``srkit explain --path`` takes them) -> classes."""


def make_path(name: str = "blur", *, sigma: float = SIGMA, steps: int = STEPS, kernel_size: int = KERNEL_SIZE) -> Path:
    """A path by name: ``"blur"`` (LAM's default), ``"linear"`` (black baseline) or ``"gaussian-linear"``."""
    if name not in PATHS:
        raise SrkitError(f"unknown LAM path {name!r}; choose from {', '.join(PATHS)}")
    if name == "linear":
        return LinearPath(steps)
    return PATHS[name](sigma=sigma, steps=steps, kernel_size=kernel_size)


def _check_path_args(steps: int, sigma: float = 1.0, kernel_size: int = 1) -> None:
    if int(steps) != steps or steps < 1:
        raise SrkitError(f"LAM: steps must be a positive whole number, got {steps}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise SrkitError(f"LAM: sigma must be a finite number >= 0, got {sigma}")
    if int(kernel_size) != kernel_size or kernel_size < 1:
        raise SrkitError(f"LAM: kernel size must be a positive whole number, got {kernel_size}")


# ----------------------------------------------------------------------------------------------- target


def _safe_sqrt(s: torch.Tensor) -> torch.Tensor:
    # d sqrt(s) / ds is infinite at 0 and the chain rule then yields 0 * inf = NaN, which would poison
    # every input gradient behind that pixel. Take the subgradient 0 there instead (the value is exact).
    positive = s > 0
    return torch.where(positive, torch.where(positive, s, torch.ones_like(s)).sqrt(), torch.zeros_like(s))


def gradient_target(sr: torch.Tensor, x: int, y: int, size: int = WINDOW) -> torch.Tensor:
    """LAM's target D per sample: the sum over RGB and a ``size`` x ``size`` window (top-left column ``x``,
    row ``y``) of ``sqrt(dv^2 + dh^2)``, the forward differences of ``sr`` (B, C, H, W). Returns (B,).

    As in the demo the difference map is (H - 1) x (W - 1) (pixel (i, j) uses i + 1 and j + 1), so a window
    touching the bottom or right border loses its last row/column. No grayscale conversion (neither has the demo).
    """
    dv = (sr[:, :, :-1, :] - sr[:, :, 1:, :]) ** 2
    dh = (sr[:, :, :, :-1] - sr[:, :, :, 1:]) ** 2
    g = _safe_sqrt(dv[:, :, :, :-1] + dh[:, :, :-1, :])
    return g[:, :, y : y + size, x : x + size].sum(dim=(1, 2, 3))


def check_window(x: int, y: int, size: int, height: int, width: int) -> None:
    """Raise :class:`SrkitError` unless the window lies inside an SR image of ``height`` x ``width``."""
    if size < 1:
        raise SrkitError(f"LAM window size must be at least 1, got {size}")
    if x < 0 or y < 0 or x + size > width or y + size > height:
        raise SrkitError(
            f"LAM window {size}x{size} at x={x}, y={y} does not fit inside the {width}x{height} output "
            f"(x must be in 0..{width - size}, y in 0..{height - size})"
        )


# ------------------------------------------------------------------------------------------ integration


def forward_for(
    net: nn.Module | ForwardFn,
    descriptor: ModelDescriptor | None = None,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
) -> ForwardFn:
    """``fn(lr[, ref]) -> sr`` for a network, whatever its calling convention.

    Continuous-scale networks (``descriptor.continuous``, e.g. LIIF) are called with ``size=(H, W)`` (or
    ``scale``); fixed networks with several scales with ``scale=``; others with ``net(lr)`` or ``net(lr, ref)``.
    """
    if descriptor is None or (not descriptor.continuous and len(descriptor.scales) <= 1):
        return net
    if descriptor.continuous:
        if size is None and scale is None:
            raise SrkitError(f"{descriptor.arch} is a continuous-scale network: give the output size or scale")
        kw = {"size": tuple(size)} if size is not None else {"scale": float(scale)}
    else:
        if scale is None:
            raise SrkitError(f"{descriptor.arch} offers scales {descriptor.scales}: say which one")
        descriptor.check_scale(scale)
        kw = {"scale": int(scale)}
    return lambda *args: net(*args, **kw)


def _activation_bytes(fn: ForwardFn, args: Sequence[torch.Tensor], net: object) -> int:
    """Rough bytes kept for backward by one sample: the sum of every module output's size (plus the output)."""
    total = 0

    def hook(_m, _inp, out):
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    handle = nn.modules.module.register_module_forward_hook(hook) if isinstance(net, nn.Module) else None
    try:
        with torch.no_grad():
            out = fn(*args)
    finally:
        if handle is not None:
            handle.remove()
    return max(total, 4 * out.numel() * out.element_size())


def path_integrated_gradients(
    fn: ForwardFn,
    target: Callable[[torch.Tensor], torch.Tensor],
    lr: torch.Tensor,
    path: Path,
    ref: torch.Tensor | None = None,
    ref_path: bool = True,
    batch_size: int | None = None,
    max_memory: int | None = None,
    net: object = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, int]:
    """Mean over path steps of ``dD/dx * dx/da`` for the LR image (and the reference).

    Args:
        fn: ``fn(lr_batch[, ref_batch]) -> sr_batch``, differentiable, samples independent.
        target: ``target(sr_batch) -> (B,)`` values of D.
        lr: (1, C, h, w) or (C, h, w), RGB [0, 1], on the device to run on.
        path: a :class:`BlurPath`, :class:`LinearPath` or :class:`GaussianLinearPath`.
        ref: optional reference image (1, C, H', W'); with ``ref_path`` it follows the same path (its own
            blurred copies) and gets its own attribution, otherwise it is held fixed.
        batch_size: path steps per forward/backward pass; None picks it from ``max_memory`` (bytes,
            default :data:`DEFAULT_MAX_MEMORY`) and a dry run's activation size, halving on out-of-memory.
        net: the module behind ``fn`` (only to measure activations for the automatic batch size).

    Returns:
        (attribution of the LR (C, h, w), attribution of the reference or None, SR output at the last step
        (1, C, H, W), detached, the steps per pass finally used). NaNs in the gradients are set to 0, as
        in the demo.
    """
    lr = lr[0] if lr.dim() == 4 else lr
    ref = None if ref is None else (ref[0] if ref.dim() == 4 else ref)
    steps = path.steps
    with_ref = ref is not None and ref_path

    def batch(start: int, stop: int):
        x, dx = path.points(lr, start, stop)
        args, diffs = [x], [dx]
        if ref is not None:
            if ref_path:
                rx, rdx = path.points(ref, start, stop)
                args.append(rx)
                diffs.append(rdx)
            else:
                args.append(ref.unsqueeze(0).expand(stop - start, -1, -1, -1))
        return args, diffs

    if batch_size is None:
        args, _ = batch(steps - 1, steps)
        per_sample = _activation_bytes(fn, args, net)
        batch_size = max(1, min(steps, (max_memory or DEFAULT_MAX_MEMORY) // max(per_sample, 1)))
    batch_size = int(batch_size)
    if batch_size < 1:
        raise SrkitError(f"LAM: batch size must be at least 1, got {batch_size}")

    total = torch.zeros(lr.shape, dtype=torch.float64, device=lr.device)
    total_ref = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device) if with_ref else None
    last = None
    start = 0
    while start < steps:
        stop = min(start + batch_size, steps)
        try:
            # Gradients are needed even when the caller sits in no_grad or inference_mode.
            with torch.inference_mode(False), torch.enable_grad():
                args, diffs = batch(start, stop)
                inputs = [a.detach().clone().requires_grad_(True) for a in args]
                if not with_ref and ref is not None:
                    inputs[1].requires_grad_(False)
                out = fn(*inputs)
                d = target(out)
                wanted = inputs if with_ref else inputs[:1]
                grads = torch.autograd.grad(d.sum(), wanted, allow_unused=True)
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)  # retry this chunk with half as many steps
            continue
        except RuntimeError as e:
            if "differentiation" not in str(e) and "does not require grad" not in str(e):
                raise
            raise SrkitError(
                f"LAM needs gradients, but this network's forward is not differentiable ({e}); use an "
                "inference path built from ordinary ops (e.g. SMSR with inference='dense')"
            ) from None
        for k, (g, dx) in enumerate(zip(grads, diffs)):
            if g is None:  # the output does not depend on this input at all
                continue
            g = torch.nan_to_num(g, nan=0.0)  # the demo's NaN -> 0
            contrib = (g.double() * dx.double()).sum(0)
            if k == 0:
                total += contrib
            else:
                total_ref += contrib
        if stop == steps:
            last = out[-1:].detach()
        del out, d, grads, inputs
        start = stop
    attr = (total / steps).float()
    attr_ref = None if total_ref is None else (total_ref / steps).float()
    return attr, attr_ref, last, batch_size


# ------------------------------------------------------------------------------------------ the result


def abs_normalized(attribution: torch.Tensor | np.ndarray) -> np.ndarray:
    """The map LAM draws and measures: ``|sum over channels| / max``, (h, w) float64 in [0, 1].

    Channels are summed before the absolute value, as in the demo. An all-zero attribution gives zeros.
    """
    if isinstance(attribution, torch.Tensor):
        a = attribution.detach().cpu().double().numpy()
    else:
        a = np.asarray(attribution, np.float64)
    m = np.abs(a.sum(axis=0))
    peak = m.max()
    return m / peak if peak > 0 else m


def gini(values: np.ndarray) -> float:
    """Gini coefficient as LAM's demo computes it: negatives shifted up, 1e-7 added to every value, then
    ``sum_i (2 i - n - 1) x_(i) / (n sum x)`` over the ascending values ``x_(1..n)``."""
    a = np.asarray(values, dtype=np.float64).ravel().copy()
    if a.size == 0:
        raise SrkitError("gini: empty array")
    if a.min() < 0:
        a -= a.min()
    a = np.sort(a + _GINI_EPS)
    n = a.size
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * a) / (n * np.sum(a)))


def diffusion_index(saliency: np.ndarray) -> float:
    """DI = (1 - Gini) * 100 of an LR-size map (normally :func:`abs_normalized`): near 0 when one pixel
    holds all attribution, 100 when every pixel holds the same."""
    return (1.0 - gini(saliency)) * 100.0


def count_pixels(saliency: np.ndarray, fraction: float = 0.95) -> int:
    """Pixels that hold ``fraction`` of the attribution, the demo's way: with the values sorted from the
    largest, the number of prefix sums still below ``fraction`` of the total."""
    a = np.asarray(saliency, dtype=np.float64).ravel()
    cum = np.cumsum(np.sort(a)[::-1])
    return int(np.count_nonzero(cum < a.sum() * fraction))


def kde_map(saliency: np.ndarray) -> np.ndarray:
    """LAM's smoothed map: a Gaussian KDE of the pixel coordinates weighted by the map, evaluated at every
    pixel and divided by its maximum. (h, w) float64 in [0, 1].

    Same estimator as the demo's ``scipy.stats.gaussian_kde(coords, weights=map)``: Scott's factor
    ``n_eff ** (-1/6)`` with ``n_eff = 1 / sum(w^2)`` (w normalised), times the weighted coordinate covariance
    (``np.cov`` with ``aweights``). Because data and query points are the same pixel grid, the sum of
    Gaussians is a correlation of the map with one kernel over all pixel offsets, computed here without SciPy.
    A map whose weight sits on one pixel or one line (singular covariance, where SciPy raises) is returned
    as it is, normalised.
    """
    m = np.asarray(saliency, dtype=np.float64)
    h, w = m.shape
    total = m.sum()
    if not total > 0:
        return np.zeros((h, w))
    wts = m.ravel() / total
    yy, xx = np.mgrid[0:h, 0:w]
    coords = np.vstack([xx.ravel(), yy.ravel()]).astype(np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # one-pixel maps: zero degrees of freedom
        cov = np.cov(coords, aweights=wts, bias=False)
    n_eff = 1.0 / np.sum(wts**2)
    kcov = cov * n_eff ** (-2.0 / 6.0)  # Scott's factor squared, d = 2
    det = np.linalg.det(kcov) if np.all(np.isfinite(kcov)) else 0.0
    if not det > 1e-12 * max(1.0, np.abs(kcov).max()) ** 2:
        return m / m.max()
    inv = np.linalg.inv(kcov)
    dy, dx = np.mgrid[-(h - 1) : h, -(w - 1) : w].astype(np.float64)
    q = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy  # coords are (x, y)
    kernel = torch.from_numpy(np.exp(-0.5 * q))
    z = F.conv2d(torch.from_numpy(m)[None, None], kernel[None, None], padding=(h - 1, w - 1))[0, 0].numpy()
    return z / z.max()


@dataclass
class LamResult:
    """The outcome of :func:`lam`."""

    attribution: torch.Tensor
    """Path-integrated gradients of the LR image, (C, h, w) float32 on the CPU (signed, per channel)."""
    sr: torch.Tensor
    """The network's output for the LR image itself (the path's last point), (1, C, H, W), unclamped."""
    window: tuple[int, int, int]
    """(x, y, size) of the analysed SR window."""
    ref_attribution: Optional[torch.Tensor] = None
    """Path-integrated gradients of the reference image, when one was given and followed the path."""
    path: str = ""
    """The integration path used, e.g. ``BlurPath(sigma=1.2, steps=50, kernel_size=9)``."""
    batch_size: int = 0
    """Path steps per forward/backward pass that were used."""

    @property
    def saliency(self) -> np.ndarray:
        """:func:`abs_normalized` of the LR attribution, (h, w)."""
        return abs_normalized(self.attribution)

    @property
    def di(self) -> float:
        """Diffusion Index of the LR map; NaN when the attribution is zero everywhere."""
        s = self.saliency
        return float("nan") if not s.any() else diffusion_index(s)

    def pixels(self, fraction: float = 0.95) -> int:
        """LR pixels holding ``fraction`` of the attribution (:func:`count_pixels`)."""
        return count_pixels(self.saliency, fraction)


def lam(
    net: nn.Module | ForwardFn,
    lr: torch.Tensor,
    window: tuple[int, int] | tuple[int, int, int],
    *,
    descriptor: ModelDescriptor | None = None,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
    ref: torch.Tensor | None = None,
    ref_path: bool = True,
    path: Path | None = None,
    batch_size: int | None = None,
    max_memory: int | None = None,
) -> LamResult:
    """Local attribution map of the SR window ``(x, y[, size])`` (HR/SR pixels, top-left corner).

    Args:
        net: an srkit network (RGB [0, 1] NCHW in and out) or any ``fn(lr[, ref]) -> sr``.
        lr: the LR image (1, 3, h, w) or (3, h, w), float32 [0, 1], on the device to run on (the network
            must already be there).
        descriptor: the network's descriptor; needed for continuous-scale networks (then ``size`` = SR
            (H, W) or ``scale``) and networks with several scales (then ``scale``).
        ref: reference image for reference-based networks (called as ``net(lr, ref)``); with ``ref_path``
            it is blurred along the same path and attributed too (:attr:`LamResult.ref_attribution`).
        path: the integration path; default :class:`BlurPath` (sigma 1.2, 50 steps, 9x9).
        batch_size, max_memory: path steps per pass, or the activation-memory budget that picks it.

    A module is put in eval mode (LAM explains the deployed network: no dropout, fixed batch norm).
    """
    if len(window) not in (2, 3):
        raise SrkitError(f"LAM window must be (x, y) or (x, y, size), got {window}")
    x, y = int(window[0]), int(window[1])
    wsize = int(window[2]) if len(window) == 3 else WINDOW
    if lr.dim() == 3:
        lr = lr.unsqueeze(0)
    if lr.dim() != 4 or lr.shape[0] != 1:
        raise SrkitError(f"LAM explains one image at a time: lr must be (1, C, h, w), got {tuple(lr.shape)}")
    if isinstance(net, nn.Module):
        net.eval()
    fn = forward_for(net, descriptor, size, scale)
    path = path or BlurPath()
    # Check the window before the expensive part: one forward pass gives the SR size.
    with torch.no_grad():
        probe = fn(lr) if ref is None else fn(lr, ref if ref.dim() == 4 else ref.unsqueeze(0))
    check_window(x, y, wsize, probe.shape[-2], probe.shape[-1])
    del probe
    attr, attr_ref, sr, used = path_integrated_gradients(
        fn, lambda out: gradient_target(out, x, y, wsize), lr, path, ref=ref, ref_path=ref_path,
        batch_size=batch_size, max_memory=max_memory, net=net,
    )
    return LamResult(attr.cpu(), sr.cpu(), (x, y, wsize), None if attr_ref is None else attr_ref.cpu(), repr(path),
                     used)


# ------------------------------------------------------------------------------ inputs for whole images


def prepare_images(
    hr: np.ndarray, scale: float, multiple_of: int = 1, method: str = "pil"
) -> tuple[np.ndarray, np.ndarray]:
    """The demo's inputs from an HR image: (HR cropped, LR), both HWC uint8 RGB.

    The HR image (uint8, or uint16 rounded to 8 bits) is cropped at the bottom/right to a multiple of
    ``scale`` (times ``multiple_of``, the network's input constraint) and shrunk by ``scale``:
    ``method="pil"`` with Pillow's bicubic (antialiased; what LAM's ``prepare_images`` does, so DIs compare
    with the published ones), ``"matlab"`` with :func:`srkit.imresize` (MATLAB's bicubic, the usual SR
    benchmark degradation). A non-integer ``scale`` (continuous-scale networks) keeps the HR size and
    makes an LR of ``floor(H / scale)`` x ``floor(W / scale)``.
    """
    from PIL import Image

    a = np.asarray(hr)
    if a.dtype == np.uint16:
        a = np.round(a / 257.0).astype(np.uint8)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise SrkitError(f"LAM needs an 8- or 16-bit RGB image, got {a.dtype} with shape {a.shape}")
    if method not in ("pil", "matlab"):
        raise SrkitError(f"unknown downsampling {method!r}; choose pil or matlab")
    if not (math.isfinite(scale) and scale >= 1):
        raise SrkitError(f"LAM scale must be >= 1, got {scale}")
    height, width = a.shape[:2]
    if float(scale).is_integer():
        step = int(scale) * max(1, int(multiple_of))
        a = a[: height - height % step, : width - width % step]
        h, w = a.shape[0] // int(scale), a.shape[1] // int(scale)
    else:
        h, w = int(height // scale), int(width // scale)
        m = max(1, int(multiple_of))
        h, w = h - h % m, w - w % m
    if h < 1 or w < 1:
        raise SrkitError(f"the {width}x{height} image is too small for scale {scale:g}")
    a = np.ascontiguousarray(a)
    if method == "pil":
        lr = np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC))
    else:
        from ..data.resize import imresize

        lr = imresize(a, size=(h, w))
    return a, np.ascontiguousarray(lr)


def resolve_model(spec: str, scale: float | None = None, device: str | torch.device = "cpu", seed: int = 0):
    """``(net, descriptor)`` for a zoo name, a model file, or ``arch:NAME`` (random weights from ``seed``,
    for tests and demos; ``scale`` is passed to fixed-scale architectures)."""
    if spec.startswith("arch:"):
        from .. import archs

        name = spec[len("arch:"):]
        kwargs = {}
        if scale is not None and not archs.describe(name).continuous:
            if not float(scale).is_integer():
                raise SrkitError(f"{name} is a fixed-scale network; --scale must be a whole number, got {scale:g}")
            kwargs["scale"] = int(scale)
        descriptor = archs.describe(name, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = archs.build(name, **kwargs)
        return net.to(device).eval(), descriptor
    from ..model_file import load_model

    loaded = load_model(spec, device=device)
    return loaded.net.eval(), loaded.descriptor


def model_scale(descriptor: ModelDescriptor, scale: float | None) -> float:
    """The scale LAM runs a network at: ``scale`` if given (checked), else its only scale, else 4."""
    if scale is not None:
        descriptor.check_scale(scale)
        return float(scale)
    if descriptor.continuous:
        return 4.0
    if len(descriptor.scales) != 1:
        raise SrkitError(f"{descriptor.arch} offers scales {descriptor.scales}: choose one with --scale")
    return float(descriptor.scales[0])


__all__ = [
    "BlurPath", "DEFAULT_MAX_MEMORY", "GaussianLinearPath", "KERNEL_SIZE", "LamResult", "LinearPath", "PATHS",
    "SIGMA", "STEPS", "WINDOW", "abs_normalized", "check_window", "count_pixels", "diffusion_index",
    "filter_image", "forward_for", "gaussian_kernel", "gini", "gradient_target", "kde_map", "lam", "make_path",
    "model_scale", "path_integrated_gradients", "prepare_images", "resolve_model",
]
