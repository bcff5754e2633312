"""GLEAN network: official (MMagic) key layout and parameter counts, equality with the official code on a
small configuration, the StyleGAN2 latent bank on its own, noise handling, input-size errors, registry."""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from pathlib import Path

import pytest
import torch

from srkit import archs
from srkit.archs.glean import GLEAN
from srkit.archs.stylegan2 import StyleGAN2Generator, make_blur_kernel, upfirdn2d
from srkit.errors import ConfigError, SrkitError

FIX = Path(__file__).resolve().parent / "fixtures" / "glean"

SMALL = {"in_size": 16, "out_size": 64, "rrdb_channels": 16, "num_rrdbs": 1, "channel_multiplier": 1}
"""The configuration of the official-output fixture (the StyleGAN2 layers up to 32 px stay 512 wide)."""

# (in_size, out_size) -> (all parameters, of which the StyleGAN2 bank); equal to the official module's counts
# (tests/fixtures/glean/README.md).
FULL_PARAMS = {
    (16, 256): (171_903_649, 30_034_338),
    (32, 256): (162_479_861, 30_034_338),
    (64, 1024): (175_516_723, 30_370_060),
    (128, 1024): (174_196_615, 30_370_060),
}


def deterministic_state(net: GLEAN) -> dict[str, torch.Tensor]:
    """Weights used for the fixtures (also loaded into the official module to make them).

    Each tensor is drawn from its own generator seeded by crc32 of its key (float32 uniform, rescaled). Blur kernels
    keep their constructed values. Noise buffers, the constant input and the equalized-lr weights have unit
    variance (the mapping MLP's 1/lr_mul = 100 larger, as stored officially); plain convs/linears have
    variance 1/fan_in; modulation biases are near 1, other biases small; the noise strengths are non-zero
    (0.1..0.3) so that the noise path shows in the output.
    """
    out = {}
    for k, v in net.state_dict().items():
        if k.endswith(".kernel"):
            out[k] = v.clone()
            continue
        u = torch.rand(v.shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())))
        if ".injected_noise_" in k or k.endswith("constant_input.input"):
            t = u.mul_(2 * math.sqrt(3.0)).sub_(math.sqrt(3.0))
        elif k.endswith("weight_orig"):
            gain = 100.0 if ".style_mapping." in k else 1.0
            t = u.mul_(2 * math.sqrt(3.0) * gain).sub_(math.sqrt(3.0) * gain)
        elif k.endswith("style_modulation.bias"):
            t = u.sub_(0.5).mul_(0.2).add_(1.0)
        elif k.endswith("noise_injector.weight"):
            t = u.mul_(0.2).add_(0.1)
        elif k.endswith("bias") or v.dim() <= 1:
            t = u.sub_(0.5).mul_(0.2)
        else:  # uniform with variance 1 / fan_in
            bound = math.sqrt(3.0 / v[0].numel())
            t = u.mul_(2 * bound).sub_(bound)
        out[k] = t
    return out


def small_net(**kw) -> GLEAN:
    net = GLEAN(**{**SMALL, **kw})
    net.load_state_dict(deterministic_state(net))
    return net.eval()


@pytest.fixture(scope="module")
def official():
    from safetensors.torch import load_file

    return load_file(str(FIX / "glean_official_io.safetensors"))


@pytest.fixture(scope="module")
def net():
    return small_net()


def _layout(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def _layout_hash(layout: dict[str, list[int]]) -> str:
    text = "\n".join(f"{k}:{'x'.join(map(str, s))}" for k, s in sorted(layout.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def test_matches_official_code(official, net):
    x = official["input"]
    with torch.inference_mode():
        sr = net(x)
        signed = net.forward_official(x * 2 - 1)
    assert sr.shape == (2, 3, 64, 64)
    # forward is the official [-1, 1] network wrapped in the [0, 1] convention
    assert (signed - official["output_pm1"]).abs().max() < 1e-4
    assert (sr - (official["output_pm1"] + 1) / 2).abs().max() < 1e-4
    # the two images give different results, and each output uses the whole value range of the fixture
    assert (sr[0] - sr[1]).abs().max() > 0.05


def test_batch_equals_one_by_one(net, official):
    x = official["input"]
    with torch.inference_mode():
        single = torch.cat([net(x[i : i + 1]) for i in range(2)])
        swapped = net(x.flip(0))
    assert (swapped.flip(0) - single).abs().max() < 1e-5


def test_latent_bank_alone_matches_official_stylegan2(official, net):
    g = net.generator
    with torch.inference_mode():
        img = g(official["z"])  # mapping MLP, then synthesis with the fixed noise buffers
        img_wplus = g(official["wplus"], input_is_latent=True)
    assert img.shape == (2, 3, 64, 64)
    assert (img - official["stylegan2_from_z"]).abs().max() < 1e-4
    assert (img_wplus - official["stylegan2_from_wplus"]).abs().max() < 1e-4


def test_noise_is_fixed_by_default_and_matters(net, official):
    x = official["input"][:1]
    with torch.inference_mode():
        a, b = net(x), net(x)
        assert torch.equal(a, b)  # deterministic: the noise buffers, not fresh draws
        net.randomize_noise = True
        try:
            torch.manual_seed(0)
            c = net(x)
        finally:
            net.randomize_noise = False
    assert (c - a).abs().max() > 1e-3  # the noise path is live with these weights
    # two untrained builds share their noise buffers (seeded), so they are deterministic too
    a8, b8 = StyleGAN2Generator(8), StyleGAN2Generator(8)
    assert all(torch.equal(p, q) for p, q in zip(a8.injected_noise(), b8.injected_noise()))
    assert len(a8.injected_noise()) == 3 and a8.injected_noise_2.shape == (1, 1, 8, 8)


def test_upfirdn2d_known_answers():
    # x2 upsampling of a constant keeps it constant away from the border (kernel sums to 4 = up**2)
    k = make_blur_kernel((1, 3, 3, 1), gain=4)
    y = upfirdn2d(torch.ones(1, 1, 6, 6), k, up=2, pad=(2, 1, 2, 1))
    assert y.shape == (1, 1, 12, 12)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.ones(1, 1, 8, 8))
    # an impulse gives the kernel itself (flipped, which the symmetric kernel hides: check with an asymmetric one)
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[..., 2, 2] = 1
    asym = torch.arange(1.0, 7.0).view(2, 3)
    z = upfirdn2d(impulse, asym, pad=(1, 1, 0, 1))
    assert z.shape == (1, 1, 5, 5)
    assert torch.equal(z[0, 0, 1:3, 1:4], asym)


def test_input_size_and_config_errors(net):
    with pytest.raises(SrkitError, match=r"exactly 16x16 inputs .* got 16x20"):
        net(torch.rand(1, 3, 16, 20))
    with pytest.raises(ConfigError, match="power of two"):
        GLEAN(in_size=24, out_size=256)
    with pytest.raises(ConfigError, match="in_size < out_size"):
        GLEAN(in_size=64, out_size=64)
    with pytest.raises(ConfigError, match="power of two"):
        archs.describe("glean", in_size=20)


def test_registry_descriptor_and_frozen_bank():
    d = archs.describe("glean")
    assert d.arch == "glean" and d.scales == (16,) and d.min_size == 64 and d.multiple_of == 1
    assert d.receptive_field == 64 and not d.supports_half
    assert archs.describe("glean", in_size=32, out_size=256).scales == (8,)
    small = archs.build("glean", **SMALL)
    assert isinstance(small, GLEAN) and small.scale == 4
    assert not any(p.requires_grad for p in small.generator.parameters())
    assert all(p.requires_grad for p in small.encoder.parameters())


def test_full_size_parameter_counts_and_official_key_layout():
    """Official configurations: parameter counts and state-dict layout equal the official module's (key
    names and shapes: in full for 64 -> 1024, as a hash for all four)."""
    keys = json.loads((FIX / "official_keys.json").read_text())
    for (i, o), (total, bank) in FULL_PARAMS.items():
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            net = GLEAN(i, o)
        assert sum(p.numel() for p in net.parameters()) == total
        assert sum(p.numel() for p in net.generator.parameters()) == bank
        layout = _layout(net)
        assert _layout_hash(layout) == keys["sha256"][f"{i}_{o}"]
        if (i, o) == (64, 1024):
            assert layout == keys["in64_out1024"]
            # the W+ head: 16 x 512 -> 18 latents x 512, the largest single layer (~75.5 M)
            assert layout["encoder.5.3.weight"] == [18 * 512, 16 * 512]
    with torch.device("meta"):
        assert _layout(GLEAN(**SMALL)) == keys["small"]
    # a real (CPU) build once, as users get it: the same count
    assert sum(p.numel() for p in GLEAN(16, 256).parameters()) == FULL_PARAMS[(16, 256)][0]


def test_upscaler_runs_glean_untiled(net, official):
    """Through srkit's Upscaler (untiled: GLEAN cannot be tiled) an in_size image gives the network's output,
    clamped to [0, 1] as the Upscaler does."""
    from srkit.inference import Upscaler

    expected = ((official["output_pm1"][:1] + 1) / 2).clamp(0, 1)
    for tile in (0, None, 8):  # fixed_size: whatever the tile setting, one untiled, unpadded pass
        up = Upscaler(net, archs.describe("glean", **SMALL), device="cpu", tile=tile, max_memory=1 << 20)
        y = up(official["input"][:1])
        assert y.shape == (1, 3, 64, 64)
        assert (y - expected).abs().max() < 1e-4
    with pytest.raises(SrkitError, match="takes exactly 16x16 images, not 20x16"):
        up(torch.rand(1, 3, 16, 20))


def test_stylegan2_discriminator_matches_official():
    """The StyleGAN2 discriminator GLEAN trains against: official layout, counts and logits."""
    from safetensors.torch import load_file

    from srkit.archs.stylegan2 import StyleGAN2Discriminator

    official = load_file(str(FIX / "discriminator_official_io.safetensors"))
    d = StyleGAN2Discriminator(64, channel_multiplier=1)
    d.load_state_dict(deterministic_state(d))
    with torch.inference_mode():
        logits = d.eval()(official["input_pm1"])
    assert logits.shape == (4, 1)
    assert (logits - official["logits"]).abs().max() < 1e-6
    assert logits.std() > 0.003  # the logits of the four images differ (0.012 .. 0.025)
    with torch.device("meta"):
        assert sum(p.numel() for p in StyleGAN2Discriminator(256).parameters()) == 28_864_129
        assert sum(p.numel() for p in StyleGAN2Discriminator(1024).parameters()) == 29_012_513
    with pytest.raises(ValueError, match="group size"):
        d(official["input_pm1"][:3].repeat(2, 1, 1, 1))


def test_max_channels_caps_every_bank_width_and_the_network_still_runs():
    from srkit.archs.glean import GLEAN
    from srkit.archs.stylegan2 import StyleGAN2Discriminator, stylegan2_channels
    from srkit.errors import ConfigError

    assert stylegan2_channels(2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64,
                                     1024: 32}
    assert stylegan2_channels(2, 64) == {4: 64, 8: 64, 16: 64, 32: 64, 64: 64, 128: 64, 256: 64, 512: 64, 1024: 32}
    with pytest.raises(ConfigError, match="max_channels"):
        stylegan2_channels(2, 0)

    kw = dict(in_size=8, out_size=32, style_channels=16, num_mlps=1, channel_multiplier=1, rrdb_channels=8,
              num_rrdbs=1)
    torch.manual_seed(0)
    small = GLEAN(**kw, max_channels=32)
    widths = [m.weight.shape[0] for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(widths) <= 32 * 4  # the x2 pixel-shuffle convs write 4x their output width
    assert small.generator.channels[4] == 32
    n_small = sum(p.numel() for p in small.parameters())
    n_full = sum(p.numel() for p in GLEAN(**kw).parameters())
    assert n_small < n_full / 50
    with torch.no_grad():
        y = small(torch.rand(2, 3, 8, 8))
    assert y.shape == (2, 3, 32, 32) and torch.isfinite(y).all()
    d = StyleGAN2Discriminator(32, channel_multiplier=1, max_channels=16)
    conv_weights = [v for v in d.state_dict().values() if v.dim() == 4 and v.shape[1] > 3]
    assert conv_weights and max(max(v.shape[:2]) for v in conv_weights) <= 17  # + the minibatch-std channel
    assert d(torch.rand(4, 3, 32, 32)).shape == (4, 1)
