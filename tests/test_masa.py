"""MASA-SR network: official key layout and parameter count, equality with the official code (fixture),
PIL-exact Ref-down, size rules, registry and descriptor."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from srkit import archs
from srkit.archs.masa import MASA, block_layout, pil_bicubic_resize, window_size
from srkit.errors import ConfigError, SrkitError

FIX = Path(__file__).resolve().parent / "fixtures" / "masa"

# Parameter count of the official MASA(nf=64) (models/archs/MASA_arch.py at 80d1bd8), counted on the
# official module when the fixture was made; srkit's network must have the same tensors.
OFFICIAL_PARAMS = 4_028_291
OFFICIAL_TENSORS = 210


def deterministic_state(keys_shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The weights of tests/fixtures/masa/README.md (also used to run the official code).

    Each tensor comes from its own generator seeded by crc32 of its key: uniform with the variance of
    He-style 0.5/sqrt(fan-in) for weights (so 50 residual blocks stay in range) and +-0.02 for biases.
    Every conv is non-zero, the SAM's gamma/beta included (they start at zero in the official init).
    """
    out = {}
    for k, shape in keys_shapes.items():
        u = torch.rand(shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())), dtype=torch.float64)
        if len(shape) == 1:
            t = 0.04 * (u - 0.5)
        else:
            fan_in = math.prod(shape[1:]) if "conv_up" not in k else shape[0] * shape[2] * shape[3] // 4
            t = (2 * u - 1) * math.sqrt(3.0 / fan_in) * 0.5
        out[k] = t.float()
    return out


@pytest.fixture(scope="module")
def official():
    from safetensors.torch import load_file

    return load_file(str(FIX / "masa_official_io.safetensors"))


@pytest.fixture(scope="module")
def official_keys() -> dict[str, list[int]]:
    import json

    return json.loads((FIX / "official_keys.json").read_text())


@pytest.fixture(scope="module")
def net(official_keys) -> MASA:
    torch.set_num_threads(1)
    m = MASA().eval()
    m.load_state_dict(deterministic_state({k: torch.Size(v) for k, v in official_keys.items()}), strict=True)
    return m


def test_parameter_count_and_official_key_layout(official_keys):
    m = MASA()
    assert sum(p.numel() for p in m.parameters()) == OFFICIAL_PARAMS
    sd = m.state_dict()
    assert len(sd) == OFFICIAL_TENSORS
    # Same names, order and shapes as the official module's state_dict.
    assert list(sd) == list(official_keys)
    assert all(list(sd[k].shape) == official_keys[k] for k in sd)
    assert "decoder.pAda.conv_shared.0.weight" in sd and "decoder.dram_x4.conv_up_b.weight" in sd


def test_official_init():
    m = MASA()
    assert m.decoder.pAda.conv_gamma.weight.abs().max() == 0 and m.decoder.pAda.conv_beta.bias.abs().max() == 0
    assert m.enc.conv_L2.bias.abs().max() == 0
    # Plain convs N(0, 0.5 sqrt(2 / (9 * 64))); residual-block convs a tenth of that.
    std = 0.5 * math.sqrt(2 / (9 * 64))
    assert abs(m.decoder.merge_warp_x1.weight.std().item() / std - 1) < 0.02
    assert abs(m.decoder.blk_x1[0].conv1.weight.std().item() / (0.1 * std) - 1) < 0.02


def test_fixture_weights_are_the_ones_used(official, official_keys):
    # Guards against a change in torch's generator: the fixture's output was made from these exact weights.
    state = deterministic_state({k: torch.Size(v) for k, v in official_keys.items()})
    total = float(sum(v.double().abs().sum() for v in state.values()))
    assert total == pytest.approx(official["weights_abs_sum"].item(), rel=1e-12)


def test_equals_official_output(net, official):
    # The official network in BGR; srkit's takes RGB. Max difference measured: 0.0 (bitwise equal).
    lr, ref, ref_down = (official[k].flip(1) for k in ("lr_bgr", "ref_bgr", "ref_down_bgr"))
    with torch.no_grad():
        out = net(lr, ref, ref_down).flip(1)
    assert out.shape == (2, 3, 64, 96)
    assert (out - official["out_bgr"]).abs().max().item() <= 1e-5
    # Without ref_down the network makes it with PIL-style bicubic (measured: 1.2e-7 from the official).
    with torch.no_grad():
        out2 = net(lr, ref).flip(1)
    assert (out2 - official["out_bgr"]).abs().max().item() <= 1e-5


def test_reference_matters_and_is_broadcast(net, official):
    lr, ref = official["lr_bgr"].flip(1), official["ref_bgr"].flip(1)
    with torch.no_grad():
        both = net(lr, ref[:1])  # one reference for the whole batch
        swapped = net(lr[1:], ref[1:])
    # Sample 0 with ref 0 is what the fixture holds; sample 1 with ref 0 differs from sample 1 with ref 1.
    assert (both[0].flip(0) - official["out_bgr"][0]).abs().max().item() <= 1e-5
    assert (both[1] - swapped[0]).abs().max().item() > 1e-3


def test_encoded_reference_is_reused(net, official):
    lr, ref = official["lr_bgr"].flip(1), official["ref_bgr"].flip(1)
    with torch.no_grad():
        enc = net.encode_reference(ref[:1])
        assert enc.batch == 1 and [f.shape[-1] for f in enc.feats] == [80, 40, 20] and enc.down.shape[-2:] == (12, 20)
        a = net(lr, enc)  # one encoding for the whole batch (and for every tile of an image)
        b = net(lr, ref[:1])
        with pytest.raises(SrkitError, match="encoded reference"):
            net(lr, enc, official["ref_down_bgr"][:1])
    assert torch.equal(a, b)
    assert (a[0].flip(0) - official["out_bgr"][0]).abs().max().item() <= 1e-5


def test_pil_bicubic_matches_pillow():
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    img = torch.rand(37, 50, generator=g)
    for size in ((9, 12), (37 // 3, 17), (50, 61)):  # shrink by 4, odd ratios, enlarge
        want = np.asarray(Image.fromarray(img.numpy(), mode="F").resize(size[::-1], Image.BICUBIC))
        got = pil_bicubic_resize(img[None, None], size)[0, 0].numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=2e-6)


def test_block_layout_and_window():
    assert block_layout(16, 24) == (2, 3, 8, 8)
    assert block_layout(72, 72) == (9, 9, 8, 8)
    assert block_layout(18, 9) == (2, 1, 9, 9)
    with pytest.raises(SrkitError, match="multiples of 8"):
        block_layout(17, 16)
    # Official: diameter 2 * int(R // (2 p) * 1.5) + 1, plus a 1-pixel margin each side.
    assert window_size((16, 24), (12, 20)) == (11, 11)
    assert window_size((40, 40), (40, 40)) == (2 * int(4 * 1.5) + 3,) * 2


def test_sizes_padding_and_errors(net):
    with torch.no_grad():
        out = net(torch.rand(1, 3, 10, 21), torch.rand(1, 3, 40, 90))  # LR padded to 16x24 inside
        assert out.shape == (1, 3, 40, 84)
        with pytest.raises(SrkitError, match="reference is too small"):
            net(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
        with pytest.raises(SrkitError, match="reference must be"):
            net(torch.rand(2, 3, 16, 16), torch.rand(3, 3, 64, 64))
        with pytest.raises(SrkitError, match="shrunk by 4"):
            net(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 15, 16))


def test_padding_is_centred_and_cropped(net):
    # An LR that needs padding gives the centre of what the padded LR gives.
    g = torch.Generator().manual_seed(3)
    lr, ref = torch.rand(1, 3, 14, 16, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    padded = torch.nn.functional.pad(lr, (0, 0, 1, 1), mode="replicate")
    with torch.no_grad():
        a, b = net(lr, ref), net(padded, ref)
    assert a.shape == (1, 3, 56, 64)
    assert torch.equal(a, b[..., 4:60, :])


def test_registry_and_descriptor():
    d = archs.describe("masa")
    assert d.needs_ref and d.scales == (4,) and d.multiple_of == 1 and d.receptive_field == 140
    with pytest.raises(ConfigError, match="by 4 only"):
        archs.describe("masa", scale=2)
    with pytest.raises(ConfigError, match="nf must be 64"):
        archs.build("masa", nf=32)


def test_upscaler_runs_with_reference(net):
    from srkit.inference.upscaler import Upscaler

    up = Upscaler(net, archs.describe("masa"), tile=0)
    lr = (np.random.default_rng(0).random((12, 20, 3)) * 255).astype(np.uint8)
    ref = (np.random.default_rng(1).random((60, 70, 3)) * 255).astype(np.uint8)
    out = up.upscale(lr, ref=ref)
    assert out.shape == (48, 80, 3) and out.dtype == np.uint8
    with pytest.raises(SrkitError, match="reference"):
        up.upscale(lr)


def test_upscaler_encodes_the_reference_once_and_the_cli_asks_for_it(tmp_path, capsys):
    from srkit import archs
    from srkit.cli import main
    from srkit.inference.upscaler import Upscaler
    from srkit.model_file import save_model

    torch.manual_seed(0)
    net = archs.build("masa").eval()
    up = Upscaler(net, archs.describe("masa"), device="cpu", tile=16)
    up.overlap, up.margin = 4, 1  # the real receptive field would need a far larger test image
    calls = []
    encode = net.encode_reference
    net.encode_reference = lambda *a, **k: (calls.append(1), encode(*a, **k))[1]
    lr, ref = torch.rand(1, 3, 24, 40), torch.rand(1, 3, 64, 64)
    out = up(lr, ref=ref)
    assert out.shape == (1, 3, 96, 160) and up.last_tile[1] < 40  # tiled
    assert len(calls) == 1
    del net.encode_reference
    path = save_model(tmp_path / "masa.safetensors", net, "masa", {})
    from srkit.data.io import write_image

    write_image(tmp_path / "lr.png", (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8))
    assert main(["upscale", str(tmp_path / "lr.png"), "--model", str(path), "-o", str(tmp_path / "o.png")]) == 1
    assert "--ref REF" in capsys.readouterr().err
