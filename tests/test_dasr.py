"""DASR network: official key layout and parameter counts, equality with the official code, batching."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest
import torch

from srkit import archs
from srkit.archs.dasr import DASR
from srkit.errors import ConfigError

FIX = Path(__file__).resolve().parent / "fixtures" / "dasr"

# Exact counts of this implementation; the research notes give 4.54M / 4.73M / 4.69M and 1,278,784.
G_PARAMS = {2: 4_542_811, 3: 4_727_451, 4: 4_690_523}
ENCODER_PARAMS = 1_278_784


def deterministic_state(net: DASR) -> dict[str, torch.Tensor]:
    """The weights tests/fixtures/dasr/README.md describes (also used to run the official code).

    Each tensor is drawn from its own generator seeded by crc32 of its key. Gains in G are below 1 so
    that 25 residual blocks with representation-driven kernels stay in range, yet large enough that the
    representation changes the output by a few grey levels.
    """
    out = {}
    for k, v in net.state_dict().items():
        if "_mean." in k or k.endswith("num_batches_tracked"):
            out[k] = v.clone()
            continue
        u = torch.rand(v.shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())), dtype=torch.float64)
        if k.endswith("running_var"):
            t = 0.5 + u
        elif k.endswith("running_mean"):
            t = u - 0.5
        elif v.dim() == 1 and k.startswith("E.") and k.endswith("weight"):  # batch-norm scales
            t = 0.5 + u
        elif v.dim() == 1:  # biases
            t = 0.2 * (u - 0.5)
        else:
            gain = 1.0 if k.startswith("E.") else (0.2 if ".kernel.2." in k else 0.6)
            t = (2 * u - 1) * math.sqrt(3.0 / v[0].numel()) * gain
        out[k] = t.float()
    return out


@pytest.fixture(scope="module")
def official():
    from safetensors.torch import load_file

    return load_file(str(FIX / "dasr_official_io.safetensors"))


def _net(scale: int) -> DASR:
    net = DASR(scale)
    net.load_state_dict(deterministic_state(net))
    return net.eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_param_counts_and_official_key_layout(scale):
    net = archs.build("dasr", scale=scale)
    assert sum(p.numel() for p in net.G.parameters()) == G_PARAMS[scale]
    assert sum(p.numel() for p in net.encoder.parameters()) == ENCODER_PARAMS
    assert round(G_PARAMS[scale] / 1e6, 2) == {2: 4.54, 3: 4.73, 4: 4.69}[scale]
    official_keys = json.loads((FIX / "official_keys.json").read_text())[f"x{scale}"]
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == official_keys
    assert len(ours) == (471 if scale == 4 else 469)  # x4 has two upsampler convs


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matches_official_code(official, scale):
    net = _net(scale)
    x = official["input_255"] / 255.0
    with torch.inference_mode():
        fea = net.represent(x)
        sr = net(x) * 255.0
    assert sr.shape == (2, 3, 12 * scale, 12 * scale)
    assert (fea - official[f"fea_x{scale}"]).abs().max() < 1e-4
    assert (sr - official[f"sr_x{scale}"]).abs().max() < 1e-4
    # the representation matters at this size of weights: a wrong conditioning path would show
    with torch.inference_mode():
        other = net(x, fea.flip(0)) * 255.0
    assert (other - sr).abs().amax() > 1.0


def test_batch_equals_one_by_one():
    net = _net(2)
    x = torch.rand(3, 3, 10, 9, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        batched = net(x)
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
        # a sample's result must not depend on its neighbours' representation
        swapped = net(x[[1, 0, 2]])
    assert batched.shape == (3, 3, 20, 18)
    assert (batched - single).abs().max() < 1e-5
    assert (swapped[1] - single[0]).abs().max() < 1e-5


def test_representation_override_and_ranges():
    net = _net(4)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        rep = net.represent(x)
        assert rep.shape == (1, 256)
        assert torch.equal(net(x), net(x, rep))
        # G and the encoder themselves take [0, 255]
        direct = net.G(x * 255.0, net.encoder(x * 255.0)[0]) / 255.0
        assert (direct - net(x)).abs().max() < 1e-6
        emb = net.encoder(x * 255.0)[1]
        assert emb.shape == (1, 256) and not torch.allclose(emb, rep)


def test_registry_and_descriptor():
    d = archs.describe("dasr", scale=3)
    assert d.scales == (3,) and d.arch == "dasr"
    assert d.receptive_field == 109  # head 1 + 5 x (5 x 4 + 1) + 1, plus upsampler conv 1 and tail 1/3
    with pytest.raises(ConfigError, match="scale"):
        archs.build("dasr", scale=5)


# --- converter ------------------------------------------------------------------------------------


def _official_checkpoint(scale: int, full: bool = False) -> dict[str, torch.Tensor]:
    """A state_dict laid out as official model_600.pt (the key set is checked against official_keys.json
    above); ``full`` adds the MoCo key encoder and queue a full BlindSR state_dict would hold."""
    state = deterministic_state(DASR(scale))
    if full:
        for k, v in list(state.items()):
            if k.startswith("E.encoder_q."):
                state[k.replace("encoder_q", "encoder_k")] = v.clone()
        state["E.queue"] = torch.randn(256, 8192)
        state["E.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return state


@pytest.mark.parametrize("scale, full", [(2, False), (3, True), (4, False)])
def test_converter_reproduces_official_output(official, tmp_path, scale, full):
    from srkit.convert import convert_checkpoint

    path = tmp_path / "model_600.pt"
    torch.save(_official_checkpoint(scale, full), path)
    conv = convert_checkpoint(path, "dasr")
    assert conv.arch == "dasr" and conv.arch_kwargs == {"scale": scale}
    assert conv.descriptor.scales == (scale,)
    assert any("read from the upsampler" in n for n in conv.notes)
    assert any("training-only MoCo" in n for n in conv.notes) == full
    with torch.inference_mode():
        sr = conv.net(official["input_255"] / 255.0) * 255.0
    assert (sr - official[f"sr_x{scale}"]).abs().max() < 1e-4


def test_cli_convert_and_errors(official, tmp_path, capsys):
    from srkit.cli import main
    from srkit.model_file import load_model

    src = tmp_path / "model_600.pt"
    torch.save(_official_checkpoint(2), src)
    out = tmp_path / "dasr_x2.safetensors"
    assert main(["convert", str(src), "--arch", "dasr", "-o", str(out)]) == 0
    assert "dasr(scale=2)" in capsys.readouterr().out
    with torch.inference_mode():
        sr = load_model(out).net(official["input_255"] / 255.0) * 255.0
    assert (sr - official["sr_x2"]).abs().max() < 1e-4

    # an x2 checkpoint cannot be made x4, and a non-DASR checkpoint is named as such
    assert main(["convert", str(src), "--arch", "dasr", "--scale", "4", "-o", str(tmp_path / "a.safetensors")]) == 1
    assert "upsampler is for x2, not x4" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.save({"head.0.weight": torch.zeros(64, 3, 3, 3)}, other)
    assert main(["convert", str(other), "--arch", "dasr", "-o", str(tmp_path / "b.safetensors")]) == 1
    assert "does not look like a dasr checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("shape, tile", [((2, 3, 37, 45), 16), ((1, 3, 64, 29), 13), ((1, 3, 20, 20), 8)])
def test_tiled_representation_equals_whole_image(shape, tile):
    net = _net(2)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        whole = net.represent(x)
        tiled = net.represent(x, tile=tile)
        assert torch.equal(net.represent(x, tile=max(shape[2:])), whole)  # fits in one tile: the plain path
    assert (tiled - whole).abs().max() < 1e-4 * whole.abs().max()
    # without the context margin the tiles would see zero padding: the check above is not vacuous
    import srkit.archs.dasr as mod

    old = mod.ENCODER_CONTEXT
    mod.ENCODER_CONTEXT = 0
    try:
        with torch.inference_mode():
            assert (net.represent(x, tile=tile) - whole).abs().max() > 1e-3 * whole.abs().max()
    finally:
        mod.ENCODER_CONTEXT = old


def test_upscaler_gives_every_tile_the_whole_image_representation():
    from srkit.inference.upscaler import Upscaler

    torch.manual_seed(0)
    net = archs.build("dasr", scale=2).eval()
    up = Upscaler(net, archs.describe("dasr", scale=2), device="cpu", tile=24)
    up.overlap, up.margin = 8, 2  # the real receptive field would make a test image far larger
    seen = []
    g_forward = net.G.forward
    net.G.forward = lambda x, rep: (seen.append(rep.clone()), g_forward(x, rep))[1]
    img = torch.rand(1, 3, 40, 44, generator=torch.Generator().manual_seed(1))
    out = up(img)
    assert out.shape == (1, 3, 80, 88) and up.last_tile == (24, 24)
    whole = net.represent(img)
    assert len(seen) > 1 and all(torch.allclose(r, whole, atol=1e-5) for r in seen)
