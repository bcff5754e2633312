"""Synthetic blind-SR degradations: Gaussian blur, bicubic downsampling, Gaussian noise (SRMD style).

The pipeline DASR trains and tests with (official ``utils/util.py``, ``SRMDPreprocessing``), per image:

1. blur the HR image with a 21 x 21 Gaussian kernel, the same for every channel (and for every patch cut from
   that image), with reflection padding;
2. downsample by 1/s with MATLAB's antialiased bicubic (:func:`srkit.data.resize.imresize`); the official
   PyTorch port clamps out-of-range taps to the edge pixel, i.e. ``border="replicate"``;
3. add white Gaussian noise of standard deviation ``noise`` (grey levels of [0, 255]);
4. round to integers and clamp to [0, 255].

Kernels:

* isotropic: ``exp(-(x^2 + y^2) / (2 sigma^2))``, normalised to sum 1; ``sigma = 0`` means no blur;
* anisotropic: ``exp(-v^T C^-1 v / 2)`` over offsets ``v = (x, y)`` (x along width, y along height, downwards)
  with covariance ``C = R(theta) diag(lambda_1^2, lambda_2^2) R(theta)^T``: ``lambda_1`` and ``lambda_2`` are
  the standard deviations along the principal axes, the first axis at angle ``theta`` (radians) from the x axis.

Random sampling (training), per image: sigma ~ U[sigma_min, sigma_max]; or lambda_1, lambda_2 ~
U[lambda_min, lambda_max] and theta ~ U[0, pi] (the official code's later fix; it first drew theta in
[0, pi/180]); noise level ~ U[0, noise]. Given a ``torch.Generator`` the draws are deterministic, and they are
made in the official order (kernel parameters, noise levels, noise), so a generator seeded like the official
run's global seed gives the same LR images on the CPU.

Images are srkit's float RGB in [0, 1]; the pipeline works in [0, 255] inside (noise levels and rounding are
in grey levels) and returns [0, 1] values that are multiples of 1/255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import ConfigError, SrkitError
from .resize import imresize

__all__ = [
    "Degradation",
    "RandomDegradation",
    "anisotropic_gaussian_kernel",
    "batch_blur",
    "bicubic_downsample",
    "degrade",
    "isotropic_gaussian_kernel",
    "official_ranges",
]

KERNEL_SIZE = 21
IMG_RANGE = 255.0


def _grid(size: int, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
    # Offsets from the centre pixel; x varies along the width (last axis), y along the height.
    ax = torch.arange(size, dtype=torch.float64, device=device) - size // 2
    return ax.view(1, 1, size), ax.view(1, size, 1)


def _as_batch(v: torch.Tensor | float, device: torch.device | None = None) -> torch.Tensor:
    return torch.as_tensor(v, dtype=torch.float64, device=device).reshape(-1)


def isotropic_gaussian_kernel(sigma: torch.Tensor | float, size: int = KERNEL_SIZE) -> torch.Tensor:
    """Isotropic Gaussian kernels (B, size, size), float32, each summing to 1, for sigmas of shape (B,)
    (a number gives B = 1). Sigma in HR pixels; must be > 0 (use no kernel for sigma = 0)."""
    s = _as_batch(sigma, sigma.device if isinstance(sigma, torch.Tensor) else None)
    if (s <= 0).any():
        raise ConfigError(f"Gaussian blur sigma must be > 0 (0 means no blur), got {s.tolist()}")
    x, y = _grid(size, s.device)
    k = torch.exp(-(x**2 + y**2) / (2.0 * s.view(-1, 1, 1) ** 2))
    return (k / k.sum((1, 2), keepdim=True)).float()


def anisotropic_gaussian_kernel(
    lambda_1: torch.Tensor | float,
    lambda_2: torch.Tensor | float,
    theta: torch.Tensor | float,
    size: int = KERNEL_SIZE,
) -> torch.Tensor:
    """Anisotropic Gaussian kernels (B, size, size), float32, each summing to 1.

    ``lambda_1``, ``lambda_2``: standard deviations (HR pixels, > 0) along the principal axes; ``theta``:
    angle of the first axis from the x (width) axis in radians, y pointing down. Shapes (B,) or numbers.
    """
    dev = next((v.device for v in (lambda_1, lambda_2, theta) if isinstance(v, torch.Tensor)), None)
    l1, l2, t = (_as_batch(v, dev) for v in (lambda_1, lambda_2, theta))
    if (l1 <= 0).any() or (l2 <= 0).any():
        raise ConfigError(f"anisotropic Gaussian lambdas must be > 0, got {l1.tolist()}, {l2.tolist()}")
    c, s = torch.cos(t).view(-1, 1, 1), torch.sin(t).view(-1, 1, 1)
    a, b = 1.0 / l1.view(-1, 1, 1) ** 2, 1.0 / l2.view(-1, 1, 1) ** 2
    # Inverse covariance R diag(a, b) R^T, written out.
    i_xx = a * c * c + b * s * s
    i_yy = a * s * s + b * c * c
    i_xy = (a - b) * c * s
    x, y = _grid(size, l1.device)
    k = torch.exp(-0.5 * (i_xx * x * x + 2.0 * i_xy * x * y + i_yy * y * y))
    return (k / k.sum((1, 2), keepdim=True)).float()


def batch_blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own kernel, the same for all its channels, reflection-padded.

    ``images``: (B, C, H, W) (fold patches of one image into C); ``kernels``: (B, k, k) with odd k, or
    (k, k) for all. Correlation (the kernel is not flipped; Gaussian kernels are point-symmetric anyway).
    """
    b, c, h, w = images.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, -1, -1)
    k = kernels.shape[-1]
    if kernels.shape != (b, k, k) or k % 2 == 0:
        raise ConfigError(f"batch_blur: need one odd square kernel per image, got kernels {tuple(kernels.shape)} "
                          f"for images {tuple(images.shape)}")
    pad = k // 2
    if h <= pad or w <= pad:
        raise SrkitError(f"batch_blur: images of {h}x{w} are too small for reflection padding of a {k}x{k} kernel "
                         f"(need at least {pad + 1} pixels per side)")
    x = F.pad(images.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    weight = kernels.to(images.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    return F.conv2d(x, weight, groups=b * c).view(b, c, h, w)


def bicubic_downsample(images: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-style antialiased bicubic downsampling by 1/``scale`` with edge-clamped taps, as DASR's
    PyTorch port; H and W must be multiples of ``scale``. (B, C, H, W) -> (B, C, H/s, W/s), float."""
    h, w = images.shape[-2:]
    if h % scale or w % scale:
        raise SrkitError(f"bicubic_downsample: {h}x{w} is not a multiple of the scale {scale}; crop the HR image first")
    return imresize(images, size=(h // scale, w // scale), border="replicate")


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    # torch.rand(n) * (hi - lo) + lo in float32, as the official sampler.
    return torch.rand(n, generator=generator) * (hi - lo) + lo


@dataclass
class Degradation:
    """Degradation parameters of a batch of B images.

    ``kernels``: (B, k, k) blur kernels or None (no blur); ``noise``: (B,) noise standard deviations in grey
    levels of [0, 255] (0 = none); the descriptive parameters are kept for logging.
    """

    kernels: torch.Tensor | None
    noise: torch.Tensor
    params: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def fixed(
        cls,
        batch: int = 1,
        sigma: float | None = None,
        lambda_1: float | None = None,
        lambda_2: float | None = None,
        theta_deg: float = 0.0,
        noise: float = 0.0,
        kernel_size: int = KERNEL_SIZE,
    ) -> Degradation:
        """One degradation for all ``batch`` images, as the official test (``random=False``): isotropic with
        ``sigma`` (0 or None: no blur), or anisotropic with ``lambda_1``, ``lambda_2`` and ``theta_deg``
        (degrees, as the official ``--theta``); noise level ``noise`` in grey levels."""
        params: dict[str, torch.Tensor] = {}
        if lambda_1 is not None or lambda_2 is not None:
            if lambda_1 is None or lambda_2 is None or sigma is not None:
                raise ConfigError("anisotropic blur needs both lambda_1 and lambda_2 (and no sigma)")
            theta = theta_deg / 180.0 * math.pi
            k = anisotropic_gaussian_kernel(lambda_1, lambda_2, theta, kernel_size).expand(batch, -1, -1)
            params = {"lambda_1": torch.full((batch,), lambda_1), "lambda_2": torch.full((batch,), lambda_2),
                      "theta": torch.full((batch,), theta)}
        elif sigma:
            k = isotropic_gaussian_kernel(sigma, kernel_size).expand(batch, -1, -1)
            params = {"sigma": torch.full((batch,), float(sigma))}
        else:
            k = None
        if noise < 0:
            raise ConfigError(f"noise level must be >= 0, got {noise}")
        return cls(k, torch.full((batch,), float(noise)), params)


def degrade(
    hr: torch.Tensor,
    scale: int,
    degradation: Degradation,
    generator: torch.Generator | None = None,
    quantize: bool = True,
) -> torch.Tensor:
    """Blur, bicubic-downsample, add noise, round and clamp (in [0, 255]), return [0, 1].

    ``hr``: RGB [0, 1], (B, C, H, W) or (B, N, C, H, W) (N patches of each image share its degradation),
    H and W multiples of ``scale``. Noise is drawn from ``generator`` as one (B*N, C, H/s, W/s) standard
    normal tensor (filled in width-major memory order, as the official code does). ``quantize=False`` skips rounding and clamping (for tests and analysis).
    """
    five = hr.dim() == 5
    if not five and hr.dim() != 4:
        raise SrkitError(f"degrade: hr must be (B, C, H, W) or (B, N, C, H, W), got {tuple(hr.shape)}")
    x = hr if five else hr.unsqueeze(1)
    b, n, c, h, w = x.shape
    if degradation.noise.numel() != b or (degradation.kernels is not None and degradation.kernels.shape[0] != b):
        raise ConfigError(f"degrade: degradation is for {degradation.noise.numel()} images, the batch has {b}")
    x = x.reshape(b, n * c, h, w) * IMG_RANGE
    if degradation.kernels is not None:
        x = batch_blur(x, degradation.kernels.to(x.device))
    lr = bicubic_downsample(x.reshape(b * n, c, h, w), scale)
    levels = degradation.noise.to(device=lr.device, dtype=lr.dtype)
    if (levels > 0).any():
        # Drawn into a buffer laid out width-major, like the output of the official bicubic port that the
        # official code calls randn_like on: on the CPU the same seed then gives the official noise.
        bn, _, lh, lw = lr.shape
        dev = generator.device if generator is not None else lr.device
        noise = torch.empty((bn, c, lw, lh), device=dev).transpose(2, 3).normal_(generator=generator).to(lr.device)
        lr = lr + noise * levels.repeat_interleave(n).view(-1, 1, 1, 1)
    if quantize:
        lr = lr.round().clamp(0, IMG_RANGE)
    lr = lr / IMG_RANGE
    return lr.view(b, n, c, h // scale, w // scale) if five else lr


def official_ranges(scale: int, blur: str = "iso") -> dict[str, float]:
    """DASR's training ranges: isotropic sigma in [0.2, 2 / 3 / 4] for x2 / x3 / x4 (paper, confirmed by
    the author; the shipped ``main.sh`` uses 4.0 at every scale), noise-free; anisotropic (the x4 "general"
    model) lambdas in [0.2, 4.0], theta in [0, pi], noise level in [0, 25]."""
    if blur == "iso":
        if scale not in (2, 3, 4):
            raise ConfigError(f"DASR's isotropic ranges are for scales 2, 3, 4, not {scale}")
        return {"sigma_min": 0.2, "sigma_max": float(scale), "noise": 0.0}
    if blur == "aniso":
        return {"lambda_min": 0.2, "lambda_max": 4.0, "noise": 25.0}
    raise ConfigError(f"blur must be 'iso' or 'aniso', got {blur!r}")


@dataclass(frozen=True)
class RandomDegradation:
    """Random SRMD-style degradations for training: sample per image, then :func:`degrade`.

    ``blur``: "iso" (sigma ~ U[sigma_min, sigma_max]) or "aniso" (lambdas ~ U[lambda_min, lambda_max],
    theta ~ U[0, pi]); noise level ~ U[0, noise] per image (grey levels; 0 = noise-free, no draw).
    """

    scale: int
    blur: str = "iso"
    sigma_min: float = 0.2
    sigma_max: float = 4.0
    lambda_min: float = 0.2
    lambda_max: float = 4.0
    noise: float = 0.0
    kernel_size: int = KERNEL_SIZE

    def __post_init__(self) -> None:
        if self.blur not in ("iso", "aniso"):
            raise ConfigError(f"blur must be 'iso' or 'aniso', got {self.blur!r}")
        if not 0 < self.sigma_min <= self.sigma_max or not 0 < self.lambda_min <= self.lambda_max:
            raise ConfigError("blur ranges must satisfy 0 < min <= max")
        if self.noise < 0:
            raise ConfigError(f"noise level must be >= 0, got {self.noise}")

    @classmethod
    def official(cls, scale: int, blur: str = "iso") -> RandomDegradation:
        """The DASR paper's ranges for ``scale`` and ``blur`` (:func:`official_ranges`)."""
        return cls(scale=scale, blur=blur, **official_ranges(scale, blur))

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Degradation:
        """Draw the kernels and noise levels of ``batch`` images (on the CPU)."""
        if self.blur == "iso":
            sigma = _uniform(batch, self.sigma_min, self.sigma_max, generator)
            params = {"sigma": sigma}
            kernels = isotropic_gaussian_kernel(sigma, self.kernel_size)
        else:
            theta = torch.rand(batch, generator=generator) * math.pi
            l1 = _uniform(batch, self.lambda_min, self.lambda_max, generator)
            l2 = _uniform(batch, self.lambda_min, self.lambda_max, generator)
            params = {"lambda_1": l1, "lambda_2": l2, "theta": theta}
            kernels = anisotropic_gaussian_kernel(l1, l2, theta, self.kernel_size)
        if self.noise > 0:
            noise = torch.rand(batch, generator=generator) * self.noise
        else:
            noise = torch.zeros(batch)
        return Degradation(kernels, noise, params)

    def __call__(
        self, hr: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Degradation]:
        """LR images of ``hr`` ((B, C, H, W) or (B, N, C, H, W), RGB [0, 1]) and the degradation drawn."""
        d = self.sample(hr.shape[0], generator)
        return degrade(hr, self.scale, d, generator), d
