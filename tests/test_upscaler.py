"""The Upscaler's handling of image kinds, channels, bit depths, scales, references and devices."""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from srkit.data.resize import imresize
from srkit.descriptor import ModelDescriptor
from srkit.errors import SrkitError
from srkit.inference import Upscaler



class Nearest(nn.Module):
    """Nearest-neighbour 'network': exact, so every conversion can be checked bit for bit. Records its inputs."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


def nearest_up(scale: int = 2, **kw) -> Upscaler:
    return Upscaler(Nearest(scale), ModelDescriptor(arch="nearest", scales=(scale,), receptive_field=0, **kw),
                    device="cpu", tile=0)


def rep(a: np.ndarray, s: int = 2) -> np.ndarray:
    return a.repeat(s, axis=0).repeat(s, axis=1)


def test_uint8_rgb() -> None:
    a = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = nearest_up().upscale(a)
    assert out.dtype == np.uint8 and out.shape == (14, 18, 3)
    np.testing.assert_array_equal(out, rep(a))


def test_uint16_keeps_all_16_bits() -> None:
    a = np.random.default_rng(1).integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    out = nearest_up().upscale(a)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rep(a))  # values like 1, 258, 65533 survive: no 8-bit bottleneck
    assert np.any(out % 257 != 0)


def test_float_array() -> None:
    a = np.random.default_rng(2).random((4, 6, 3)).astype(np.float64)
    out = nearest_up().upscale(a)
    assert out.dtype == np.float64 and out.shape == (8, 12, 3)
    np.testing.assert_allclose(out, rep(a), atol=1e-7)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_grayscale_stays_grayscale(shape) -> None:
    a = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    up = nearest_up()
    out = up.upscale(a)
    assert out.shape == (10, 14) + shape[2:] and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rep(a))
    seen = up.net.inputs[-1]
    assert seen.shape[1] == 3 and torch.equal(seen[:, 0], seen[:, 2])  # the network saw replicated RGB


def test_alpha_is_upscaled_by_bicubic_and_kept() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    up = nearest_up()
    out = up.upscale(a)
    assert out.shape == (16, 20, 4)
    np.testing.assert_array_equal(out[..., :3], rep(a[..., :3]))
    assert up.net.inputs[-1].shape[1] == 3  # alpha never reaches the network
    alpha = imresize(torch.from_numpy(a[..., 3].astype(np.float32) / 255)[None, None], size=(16, 20))
    expected = (alpha.clamp(0, 1)[0, 0] * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(out[..., 3], expected)
    assert not np.array_equal(out[..., 3], rep(a[..., 3]))  # bicubic, not the network's nearest neighbour


def test_gray_alpha() -> None:
    a = np.random.default_rng(5).integers(0, 65536, (6, 6, 2), dtype=np.uint16)
    out = nearest_up().upscale(a)
    assert out.shape == (12, 12, 2) and out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 0], rep(a[..., 0]))


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "I;16", "P"])
def test_pil_modes(mode) -> None:
    rng = np.random.default_rng(6)
    base = Image.fromarray(rng.integers(0, 256, (6, 8, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (6, 8), dtype=np.uint16))
    elif mode == "P":
        im = base.convert("RGB").convert("P")
    else:
        im = base.convert(mode)
    im.info["icc_profile"] = b"fake-icc"
    out = nearest_up().upscale(im)
    assert isinstance(out, Image.Image)
    assert out.size == (16, 12)
    assert out.mode == ("RGB" if mode == "P" else mode)
    assert out.info.get("icc_profile") == b"fake-icc"
    expected = np.asarray(im.convert("RGB") if mode == "P" else im)
    colour = {"RGBA": 3, "LA": 1}.get(mode)  # alpha is bicubic: compare the colour channels only
    got = np.asarray(out)
    if colour:
        got, expected = got[..., :colour], expected[..., :colour]
    np.testing.assert_array_equal(got, rep(expected))


def test_tensors_chw_nchw_and_dtype() -> None:
    x = torch.rand(3, 5, 6, dtype=torch.float64)
    out = nearest_up().upscale(x)
    assert out.shape == (3, 10, 12) and out.dtype == torch.float64
    xb = torch.rand(2, 4, 5, 6)
    outb = nearest_up().upscale(xb)
    assert outb.shape == (2, 4, 10, 12)
    assert torch.allclose(outb[:, :3], xb[:, :3].repeat_interleave(2, -2).repeat_interleave(2, -1))
    outb.add_(1)  # an ordinary tensor, not an inference tensor


class TwoFour(nn.Module):
    """Fixed scales 2 and 4, selected by ``scale=``: records what it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        self.asked.append(scale)
        return F.interpolate(x, scale_factor=scale, mode="nearest")


def test_other_scale_runs_next_larger_native_scale_then_bicubic() -> None:
    net = TwoFour()
    up = Upscaler(net, ModelDescriptor(arch="twofour", scales=(2, 4), receptive_field=0), tile=0)
    x = torch.rand(1, 3, 9, 10)
    y = up.upscale(x, scale=3)
    assert net.asked == [4] and y.shape == (1, 3, 27, 30)
    expected = imresize(x.repeat_interleave(4, -2).repeat_interleave(4, -1), size=(27, 30)).clamp(0, 1)
    assert torch.allclose(y, expected, atol=1e-6)
    y2 = up.upscale(x, scale=2)
    assert net.asked[-1] == 2 and torch.equal(y2, x.repeat_interleave(2, -2).repeat_interleave(2, -1))
    assert up.default_scale == 4


def test_size_and_scale_above_model() -> None:
    up = nearest_up(2)
    x = torch.rand(1, 3, 8, 8)
    assert up.upscale(x, size=(20, 13)).shape == (1, 3, 20, 13)  # x2 by the net, then bicubic to the size
    assert up.upscale(x, scale=3).shape == (1, 3, 24, 24)
    with pytest.raises(SrkitError, match="either scale or size"):
        up.upscale(x, scale=2, size=(16, 16))
    with pytest.raises(SrkitError, match="positive"):
        up.upscale(x, scale=-1)


class Continuous(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        self.sizes.append(tuple(size))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def test_continuous_scale_network_gets_the_exact_size() -> None:
    net = Continuous()
    up = Upscaler(net, ModelDescriptor(arch="cont", scale_range=(1.0, 8.0), receptive_field=2), tile=0)
    y = up.upscale(torch.rand(1, 3, 10, 12), scale=2.5)
    assert y.shape == (1, 3, 25, 30) and net.sizes == [(25, 30)]
    with pytest.raises(SrkitError, match="at most"):
        up.upscale(torch.rand(1, 3, 10, 12), scale=9)


class RefNet(nn.Module):
    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") * 0 + ref.mean()


def test_reference_required_and_used() -> None:
    up = Upscaler(RefNet(), ModelDescriptor(arch="ref", scales=(2,), needs_ref=True, receptive_field=0), tile=0)
    lr = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(SrkitError, match="reference"):
        up.upscale(lr)
    ref = np.full((9, 9, 3), 51, np.uint8)  # 0.2
    out = up.upscale(lr, ref=ref)
    assert out.shape == (8, 8, 3) and np.all(out == 51)
    with pytest.raises(SrkitError, match="does not take a reference"):
        nearest_up().upscale(lr, ref=ref)


def test_half_on_cpu_warns_and_uses_float32() -> None:
    with pytest.warns(UserWarning, match="float32"):
        up = Upscaler(Nearest(), ModelDescriptor(arch="n", scales=(2,)), device="cpu", half=True)
    assert up.dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message shown without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(SrkitError, match="CUDA is not available"):
        Upscaler(Nearest(), ModelDescriptor(arch="n", scales=(2,)), device="cuda")


def test_bad_inputs() -> None:
    up = nearest_up()
    with pytest.raises(SrkitError, match="cannot upscale a list"):
        up.upscale([[1, 2]])
    with pytest.raises(SrkitError, match="channel count 5"):
        up.upscale(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(SrkitError, match="dtype"):
        up.upscale(np.zeros((4, 4, 3), np.int64))


def test_load_wraps_the_model_file(monkeypatch) -> None:
    """``srkit.inference.load`` goes through ``srkit.model_file.load_model`` and the default zoo name."""
    calls = []

    def fake_load_model(path_or_name, device="cpu"):
        calls.append((path_or_name, device))
        return types.SimpleNamespace(net=Nearest(4), descriptor=ModelDescriptor(arch="n", scales=(4,)),
                                     arch="n", arch_kwargs={}, metadata={}, path=None)

    fake = types.ModuleType("srkit.model_file")
    fake.load_model = fake_load_model
    monkeypatch.setitem(sys.modules, "srkit.model_file", fake)
    from srkit.inference import load
    from srkit.zoo import DEFAULT_MODEL

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        up = load(device="cpu", tile=0)
    assert calls == [(DEFAULT_MODEL, "cpu")]
    assert up.scales == (4,) and up.default_scale == 4 and "tile=off" in repr(up)
    load("mine.safetensors", device="cpu", max_memory=10**8)
    assert calls[-1][0] == "mine.safetensors"


def test_srkit_backbone_tiles_exactly_with_its_descriptor() -> None:
    """A real srkit backbone with the receptive field its descriptor states: tiled == untiled."""
    from srkit import archs

    torch.manual_seed(0)
    kw = {"n_resblocks": 2, "n_feats": 8, "scale": 2}
    net, desc = archs.build("edsr_baseline", **kw), archs.describe("edsr_baseline", **kw)
    x = torch.rand(1, 3, 70, 83)
    full = Upscaler(net, desc, tile=0).upscale(x)
    side = 2 * (2 * desc.receptive_field + 8)
    up = Upscaler(net, desc, tile=side)
    tiled = up.upscale(x)
    assert side < 70 and up.last_tile == (side, side)
    assert (tiled - full).abs().max() < 1e-5


def test_continuous_network_liif_plugs_in() -> None:
    """srkit's LIIF (``forward(lr, size)``) through the upscaler; at an integer scale tiles are exact."""
    import dataclasses

    from srkit.archs.liif import LIIF, describe

    torch.manual_seed(0)
    net = LIIF(encoder="edsr_baseline", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=(16,))
    desc = dataclasses.replace(describe("edsr_baseline"), receptive_field=6)  # 1-block encoder: 4 + unfold/ensemble
    # (sizes chosen so that no output pixel sits on a nearest-neighbour tie of LIIF's local ensemble, where
    # float rounding in tile-relative and image-relative coordinates could pick different latent codes)
    x = torch.rand(1, 3, 50, 57)
    full = Upscaler(net, desc, tile=0).upscale(x, scale=3)
    up = Upscaler(net, desc, tile=40)  # 2 * overlap (2 * 6 + 8)
    tiled = up.upscale(x, scale=3)
    assert full.shape == (1, 3, 150, 171) and up.last_tile == (40, 40)
    assert (tiled - full).abs().max() < 1e-4
    assert Upscaler(net, desc, tile=0).upscale(x, size=(61, 70)).shape == (1, 3, 61, 70)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_runs_on_cpu_as_a_subpixel_channels_last_copy_with_the_same_output(scale):
    from srkit import archs

    torch.manual_seed(scale)
    net = archs.build("fsrcnn", d=16, m=2, scale=scale)
    up = Upscaler(net, archs.describe("fsrcnn", d=16, m=2, scale=scale), device="cpu", tile=0)
    fast = up._infer_net()
    # the copy has no transposed conv left, and is rebuilt when the network's weights change
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in fast.modules())
    assert any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    x = torch.rand(1, 3, 21, 17)
    with torch.inference_mode():
        ref = net(x)
        got = up.upscale(x[0])
    assert got.shape == ref[0].shape
    assert (got - ref[0].clamp(0, 1)).abs().max() < 1e-5
    with torch.no_grad():
        net.tail_conv.weight.mul_(0.5)
    fast2 = up._infer_net()
    assert fast2 is not fast
    with torch.inference_mode():
        assert (fast2(x) - net(x)).abs().max() < 1e-5
