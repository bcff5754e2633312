"""GLEAN converter: MMagic checkpoints (SRGAN wrapper with generator./discriminator. prefixes) -> srkit GLEAN,
reproducing the official output of tests/fixtures/glean; argument inference and errors."""

from __future__ import annotations

import pytest
import torch

from srkit.archs.glean import GLEAN
from srkit.convert.common import convert_state_dict
from srkit.errors import CheckpointError
from test_glean import FIX, SMALL, deterministic_state


@pytest.fixture(scope="module")
def official():
    from safetensors.torch import load_file

    return load_file(str(FIX / "glean_official_io.safetensors"))


@pytest.fixture(scope="module")
def gen_state():
    return deterministic_state(GLEAN(**SMALL))


def _mmagic_checkpoint(gen: dict[str, torch.Tensor], ema: dict[str, torch.Tensor] | None = None) -> dict:
    """What MMagic/MMEditing's CheckpointHook writes for the SRGAN model around GLEAN (the discriminator
    entries shortened to two; their names are those of StyleGANv2Discriminator)."""
    state = {f"generator.{k}": v for k, v in gen.items()}
    if ema is not None:
        state.update({f"generator_ema.{k}": v for k, v in ema.items()})
    state["discriminator.convs.0.0.conv.weight"] = torch.zeros(32, 3, 1, 1)
    state["discriminator.final_linear.1.bias"] = torch.zeros(1)
    return {"meta": {"mmedit_version": "0.8.0", "iter": 300000}, "state_dict": state,
            "optimizer": {"generator": {"state": {}, "param_groups": []}}}


def _expected_kwargs() -> dict:
    return {**SMALL, "img_channels": 3, "style_channels": 512, "num_mlps": 8}


def test_checkpoint_reproduces_official_output(official, gen_state, tmp_path):
    from srkit.convert import convert_checkpoint

    path = tmp_path / "glean_small.pth"
    torch.save(_mmagic_checkpoint(gen_state), path)
    conv = convert_checkpoint(path, "glean", scale=4)
    assert conv.arch == "glean" and conv.arch_kwargs == _expected_kwargs()
    assert conv.descriptor.scales == (4,) and conv.descriptor.min_size == 16
    assert any("discriminator.* (2)" in n for n in conv.notes)
    assert any("used the generator weights" in n for n in conv.notes)
    assert not any(p.requires_grad for p in conv.net.generator.parameters())
    with torch.inference_mode():
        sr = conv.net(official["input"])
    assert (sr * 2 - 1 - official["output_pm1"]).abs().max() < 1e-4


def test_ema_preferred_and_bare_state_dicts(official, gen_state):
    # generator.* perturbed, generator_ema.* the fixture weights: the EMA copy must be the one used
    spoiled = {k: v * 1.1 if k.startswith("encoder.") else v for k, v in gen_state.items()}
    conv = convert_state_dict(_mmagic_checkpoint(spoiled, ema=gen_state)["state_dict"], "glean")
    assert any("EMA" in n for n in conv.notes)
    assert conv.state_dict["encoder.0.0.conv_first.weight"] is gen_state["encoder.0.0.conv_first.weight"]
    bare = convert_state_dict(dict(gen_state), "glean")
    assert bare.arch_kwargs == _expected_kwargs() and set(bare.state_dict) == set(gen_state)


@pytest.mark.parametrize("in_size, out_size, scale", [(64, 1024, 16), (32, 256, 8)])
def test_full_size_inference_from_shapes(in_size, out_size, scale):
    with torch.device("meta"):  # shapes only
        state = GLEAN(in_size, out_size).state_dict()
    conv = convert_state_dict({f"generator.{k}": v for k, v in state.items()}, "glean")
    assert conv.arch_kwargs == {"in_size": in_size, "out_size": out_size, "img_channels": 3, "rrdb_channels": 64,
                                "num_rrdbs": 23, "style_channels": 512, "num_mlps": 8, "channel_multiplier": 2}
    assert any(f"x{scale}" in n for n in conv.notes)


def test_errors(gen_state):
    state = {f"generator.{k}": v for k, v in gen_state.items()}
    with pytest.raises(CheckpointError, match="maps 16 px to 64 px \\(x4\\), not x8"):
        convert_state_dict(state, "glean", scale=8)
    with pytest.raises(CheckpointError, match="does not look like a glean checkpoint"):
        convert_state_dict({"head.0.weight": torch.zeros(1)}, "glean")


def test_load_latent_bank_from_stylegan2_checkpoint(tmp_path):
    from srkit.archs.stylegan2 import StyleGAN2Generator
    from srkit.convert.glean import load_latent_bank

    prior = StyleGAN2Generator(32).state_dict()
    other = {k: v + 1 if v.is_floating_point() else v for k, v in prior.items()}
    path = tmp_path / "stylegan2-cat-config-f-official.pth"
    ckpt = {f"generator_ema.{k}": v for k, v in prior.items()}
    ckpt.update({f"generator.{k}": v for k, v in other.items()})
    ckpt["discriminator.final_linear.1.bias"] = torch.zeros(1)
    torch.save({"state_dict": ckpt, "meta": {"epoch": 1}}, path)
    net = GLEAN(8, 32, rrdb_channels=8, num_rrdbs=1)
    notes = load_latent_bank(net, path)
    assert any("generator_ema" in n for n in notes)
    assert all(torch.equal(net.generator.state_dict()[k], v) for k, v in prior.items())
    load_latent_bank(net, ckpt, prefix="generator")
    assert torch.equal(net.generator.constant_input.input, other["constant_input.input"])
    # a prior of another resolution does not fit
    with pytest.raises(CheckpointError, match="does not fit the StyleGAN2 latent bank"):
        load_latent_bank(GLEAN(8, 64, rrdb_channels=8, num_rrdbs=1, channel_multiplier=1), ckpt)
    with pytest.raises(CheckpointError, match="no 'g_ema.\\*' entries"):
        load_latent_bank(net, ckpt, prefix="g_ema")
