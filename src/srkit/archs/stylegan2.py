"""StyleGAN2 generator (Karras et al., CVPR 2020) with the module and state-dict names of MMagic's
``StyleGAN2Generator``, so that MMagic's converted config-f weights (and GLEAN checkpoints, which embed one
as their latent bank) load without renaming.

Everything is plain PyTorch: ``upfirdn2d`` and the fused bias + LeakyReLU are written with standard ops
(MMagic uses CUDA kernels for them, whose CPU fallbacks compute the same thing).

Equalized learning rate: each weight is stored unscaled as ``weight_orig`` and multiplied at run time by
``gain * lr_mul / sqrt(fan_in)`` (gain 1 here); the stored tensors are therefore those of the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

BLUR_KERNEL = (1, 3, 3, 1)
"""Taps of the separable FIR filter used after every upsampling (outer product, normalised to sum 1)."""


def stylegan2_channels(channel_multiplier: int = 2, max_channels: int | None = None) -> dict[int, int]:
    """Feature channels per resolution: 512 up to 32 px, then ``16384 * channel_multiplier / res``; with
    ``max_channels``, none wider than that (not in any released model: small banks for CPU runs and tests)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512}
    for res in (64, 128, 256, 512, 1024):
        table[res] = 16384 * channel_multiplier // res
    if max_channels is not None:
        if int(max_channels) < 1:
            raise ConfigError(f"StyleGAN2 max_channels must be a positive number, not {max_channels!r}")
        table = {r: min(c, int(max_channels)) for r, c in table.items()}
    return table


def make_blur_kernel(taps: Sequence[float], gain: float = 1.0) -> torch.Tensor:
    """2D FIR kernel ``outer(taps, taps) / sum * gain`` (float32)."""
    k = torch.tensor(list(taps), dtype=torch.float32)
    k = k[:, None] * k[None, :] if k.dim() == 1 else k
    return k / k.sum() * gain


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: Sequence[int] = (0, 0, 0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad (x0, x1, y0, y1; negative crops), convolve each channel with
    ``kernel`` (true convolution, i.e. the kernel flipped), keep every ``down``-th pixel. (N, C, H, W)."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [int(p) for p in pad])
    k = kernel.to(x.dtype).flip(0, 1).expand(c, 1, *kernel.shape)
    x = F.conv2d(x, k, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def fused_leaky_relu(
    x: torch.Tensor, bias: torch.Tensor, slope: float = 0.2, scale: float = math.sqrt(2)
) -> torch.Tensor:
    """``leaky_relu(x + bias, slope) * scale``, bias per channel (dim 1); the sqrt(2) keeps the variance."""
    shape = [1] * x.dim()
    shape[1] = -1
    return F.leaky_relu(x + bias.to(x.dtype).view(shape), slope) * scale


class PixelNorm(nn.Module):
    """``x / (rms(x over dim 1) + eps)``: the normalisation in front of the mapping MLP."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True) / math.sqrt(x.shape[1])
        return x / (rms + self.eps)


class EqualizedLinearWeight(nn.Module):
    """Bias-free linear map whose weight ``weight_orig`` (out, in) is scaled by ``lr_mul / sqrt(in)``."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        # Stored at 1/lr_mul scale so that the effective weight starts at N(0, 1/in), as in StyleGAN2.
        self.weight_orig = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.scale = lr_mul / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_orig * self.scale)


class EqualLinear(nn.Module):
    """Equalized-lr linear layer with its bias kept outside (keys ``linear.weight_orig``, ``bias``), optionally
    followed by the fused bias + LeakyReLU(0.2) x sqrt(2). The bias is scaled by ``lr_mul`` too."""

    def __init__(
        self, in_features: int, out_features: int, lr_mul: float = 1.0, bias_init: float = 0.0, activate: bool = False
    ) -> None:
        super().__init__()
        self.linear = EqualizedLinearWeight(in_features, out_features, lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.reshape(x.shape[0], -1)
        x = self.linear(x)
        if self.activate:
            return fused_leaky_relu(x, self.bias * self.lr_mul)
        return x + self.bias * self.lr_mul


class Blur(nn.Module):
    """FIR blur (key ``kernel``, a buffer) applied with ``upfirdn2d`` and symmetric padding ``pad``."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(taps, gain=upsample_factor**2))
        self.pad = (pad[0], pad[1], pad[0], pad[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 upsampling of the RGB skip: zero insertion and the blur kernel x 4 (key ``kernel``)."""

    def __init__(self, taps: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(taps, gain=factor**2))
        self.factor = factor
        p = self.kernel.shape[0] - factor
        a, b = (p + 1) // 2 + factor - 1, p // 2
        self.pad = (a, b, a, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose per-sample weight is the shared one scaled per input channel by a style
    (``style_modulation``, an affine map of the latent with bias 1), then (``demodulate``) renormalised per
    output channel to unit L2 norm. ``upsample``: a stride-2 transposed convolution followed by a blur.

    Keys: ``weight_orig`` (1, out, in, k, k), ``style_modulation.linear.weight_orig`` (in, style),
    ``style_modulation.bias``, and ``blur.kernel`` when upsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_channels: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps
        self.style_modulation = EqualLinear(style_channels, in_channels, bias_init=1.0)
        self.weight_orig = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        if upsample:
            # Pads that make the transposed conv + blur map H to exactly 2H.
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, ((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.kernel_size
        s = self.style_modulation(style).view(n, 1, c, 1, 1)
        weight = self.weight_orig * self.scale * s  # (n, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps).view(n, self.out_channels, 1, 1, 1)
        # One grouped convolution for the whole batch: the batch is folded into the channels.
        x = x.reshape(1, n * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * c, self.out_channels, k, k)
            x = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(x.reshape(n, self.out_channels, *x.shape[-2:]))
        x = F.conv2d(x, weight.reshape(n * self.out_channels, c, k, k), padding=k // 2, groups=n)
        return x.reshape(n, self.out_channels, *x.shape[-2:])


class NoiseInjection(nn.Module):
    """Adds ``weight * noise`` (one learned scalar, key ``weight``); noise (N or 1, 1, H, W) is given by the
    caller, or drawn from N(0, 1) when None."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, *x.shape[2:]).normal_()
        return x + self.weight.to(x.dtype) * noise.to(x.dtype)


class BiasLeakyReLU(nn.Module):
    """Per-channel bias (key ``bias``), LeakyReLU(0.2), x sqrt(2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2), noise injection, bias + LeakyReLU.
    Keys ``conv.*``, ``noise_injector.weight``, ``activate.bias``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_channels: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_channels, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise_injector = NoiseInjection()
        self.activate = BiasLeakyReLU(out_channels)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None, add_noise: bool = True
    ) -> torch.Tensor:
        x = self.conv(x, style)
        if add_noise:
            x = self.noise_injector(x, noise)
        return self.activate(x)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, plus a bias, plus the upsampled previous RGB.
    Keys ``conv.*``, ``bias`` (1, C, 1, 1), ``upsample.kernel`` when ``upsample``."""

    def __init__(
        self,
        in_channels: int,
        style_channels: int,
        out_channels: int = 3,
        upsample: bool = True,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_channels, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias.to(x.dtype)
        if skip is not None:
            if hasattr(self, "upsample"):
                skip = self.upsample(skip)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4x4 start tensor (key ``input``), repeated over the batch."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 (config-f) generator with MMagic's key layout.

    Args:
        out_size: output resolution, a power of two from 8 to 1024.
        style_channels: latent (z and w) width (512).
        num_mlps: layers of the mapping MLP (8).
        channel_multiplier: widens the layers from 64 px up (2 = config-f; see :func:`stylegan2_channels`).
        max_channels: caps every layer's width (None = config-f's 512; smaller banks for CPU runs and tests).
        blur_kernel: FIR taps of the up-sampling filter.
        lr_mlp: learning-rate multiplier of the mapping MLP (0.01; part of how its weights are stored).
        out_channels: image channels (3).
        noise_seed: seed of the fixed noise buffers ``injected_noise_{k}`` (1, 1, 2**((k + 5) // 2), same)
            drawn at construction; loading a checkpoint replaces them.

    ``forward(styles)``: z (N, style_channels), mapped by the MLP, or with ``input_is_latent`` a w
    (N, style_channels) or W+ (N, num_latents, style_channels); returns the image (N, out_channels, out_size,
    out_size), nominally in [-1, 1]. Noise: the fixed buffers by default (deterministic), fresh N(0, 1)
    draws with ``randomize_noise=True``.

    Keys: ``style_mapping.{1..num_mlps}.*`` (index 0 is the parameter-free pixel norm), ``constant_input``,
    ``conv1``, ``to_rgb1``, ``convs.{0..}`` (pairs: upsampling conv, conv), ``to_rgbs.{0..}``,
    ``injected_noise_{k}``.
    """

    def __init__(
        self,
        out_size: int = 1024,
        style_channels: int = 512,
        num_mlps: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        lr_mlp: float = 0.01,
        out_channels: int = 3,
        noise_seed: int = 0,
        max_channels: int | None = None,
    ) -> None:
        super().__init__()
        log_size = int(out_size).bit_length() - 1
        if out_size != 2**log_size or not 8 <= out_size <= 1024:
            raise ConfigError(f"StyleGAN2 out_size must be a power of two from 8 to 1024, not {out_size!r}")
        self.out_size, self.style_channels, self.log_size = int(out_size), style_channels, log_size
        self.channels = stylegan2_channels(channel_multiplier, max_channels)
        self.style_mapping = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_channels, style_channels, lr_mul=lr_mlp, activate=True) for _ in range(num_mlps)],
        )
        ch = self.channels
        self.constant_input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_channels, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_channels, out_channels, upsample=False, blur_kernel=blur_kernel)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        prev = ch[4]
        for i in range(3, log_size + 1):
            c = ch[2**i]
            self.convs.append(StyledConv(prev, c, 3, style_channels, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(c, c, 3, style_channels, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(c, style_channels, out_channels, upsample=True, blur_kernel=blur_kernel))
            prev = c
        self.num_latents = 2 * log_size - 2
        self.num_injected_noises = self.num_latents - 1
        g = torch.Generator().manual_seed(noise_seed)
        for k in range(self.num_injected_noises):
            side = 2 ** ((k + 5) // 2)
            self.register_buffer(f"injected_noise_{k}", torch.randn(1, 1, side, side, generator=g))

    def injected_noise(self) -> list[torch.Tensor]:
        """The fixed noise buffers, one per styled conv (conv1 first)."""
        return [getattr(self, f"injected_noise_{k}") for k in range(self.num_injected_noises)]

    def forward(
        self,
        styles: torch.Tensor,
        input_is_latent: bool = False,
        randomize_noise: bool = False,
        add_noise: bool = True,
    ) -> torch.Tensor:
        if not input_is_latent:
            if styles.dim() != 2:
                raise ValueError(f"z must be (N, {self.style_channels}); W+ codes need input_is_latent=True")
            styles = self.style_mapping(styles)
        latent = styles if styles.dim() == 3 else styles.unsqueeze(1).expand(-1, self.num_latents, -1)
        noise: list[torch.Tensor | None] = (
            [None] * self.num_injected_noises if randomize_noise else list(self.injected_noise())
        )
        out = self.conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0], add_noise)
        skip = self.to_rgb1(out, latent[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 2 * j + 1
            out = self.convs[2 * j](out, latent[:, i], noise[i], add_noise)
            out = self.convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1], add_noise)
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip


# --- discriminator (needed to train GLEAN, which starts from the pretrained StyleGAN2 discriminator) ---------


class EqualizedConvWeight(nn.Module):
    """Convolution whose weight ``weight_orig`` (out, in, k, k) is scaled by ``1 / sqrt(in * k * k)``;
    optional bias ``bias`` (unscaled)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 bias: bool) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight_orig * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualizedConv(nn.Module):
    """Wrapper giving the conv the key prefix ``conv.`` (MMagic's ``EqualizedLRConvModule``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 bias: bool) -> None:
        super().__init__()
        self.conv = EqualizedConvWeight(in_channels, out_channels, kernel_size, stride, padding, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvDownLayer(nn.Sequential):
    """[blur, when ``downsample``] -> equalized conv (stride 2 when downsampling) -> [bias + LeakyReLU x sqrt 2,
    when ``activate``; the conv then has no bias of its own]. Keys by position, as MMagic's."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = BLUR_KERNEL, bias: bool = True, activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, ((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualizedConv(in_channels, out_channels, kernel_size, stride, padding, bias and not activate))
        if activate:
            layers.append(BiasLeakyReLU(out_channels))
        super().__init__(*layers)


class DiscriminatorResBlock(nn.Module):
    """3x3 conv, 3x3 conv with x2 downsampling, plus a 1x1 downsampling skip; sum / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        self.conv1 = ConvDownLayer(in_channels, in_channels, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvDownLayer(in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvDownLayer(in_channels, out_channels, 1, downsample=True, blur_kernel=blur_kernel,
                                  bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class MinibatchStddev(nn.Module):
    """Appends one channel: the standard deviation over groups of ``group_size`` samples, averaged over
    channels and pixels (per channel group), broadcast over the image."""

    def __init__(self, group_size: int = 4, channel_groups: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size, self.channel_groups, self.eps = group_size, channel_groups, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(n, self.group_size)
        if n % g:
            raise ValueError(f"batch size {n} must be at most, or a multiple of, the group size {self.group_size}")
        y = x.reshape(g, -1, self.channel_groups, c // self.channel_groups, h, w)
        y = torch.sqrt(y.var(dim=0, unbiased=False) + self.eps)
        y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
        return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 (config-f) residual discriminator with MMagic's key layout (``convs.*``, ``final_conv.*``,
    ``final_linear.*``), so that the ``discriminator.*`` entries of MMagic's StyleGAN2 checkpoints load.

    ``forward(img)``: (N, img_channels, in_size, in_size), the generator's range ([-1, 1]) -> (N, 1) logits.
    The batch must be at most 4 or a multiple of 4 (minibatch standard deviation groups).
    """

    def __init__(self, in_size: int = 1024, img_channels: int = 3, channel_multiplier: int = 2,
                 blur_kernel: Sequence[float] = BLUR_KERNEL, group_size: int = 4, channel_groups: int = 1,
                 max_channels: int | None = None) -> None:
        super().__init__()
        log_size = int(in_size).bit_length() - 1
        if in_size != 2**log_size or not 8 <= in_size <= 1024:
            raise ConfigError(
                f"StyleGAN2 discriminator in_size must be a power of two from 8 to 1024, not {in_size!r}"
            )
        ch = stylegan2_channels(channel_multiplier, max_channels)
        layers: list[nn.Module] = [ConvDownLayer(img_channels, ch[in_size], 1)]
        prev = ch[in_size]
        for i in range(log_size, 2, -1):
            layers.append(DiscriminatorResBlock(prev, ch[2 ** (i - 1)], blur_kernel))
            prev = ch[2 ** (i - 1)]
        self.convs = nn.Sequential(*layers)
        self.mbstd_layer = MinibatchStddev(group_size, channel_groups)
        self.final_conv = ConvDownLayer(prev + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activate=True), EqualLinear(ch[4], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.mbstd_layer(self.convs(x)))
        return self.final_linear(x.reshape(x.shape[0], -1))
