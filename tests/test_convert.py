"""Checkpoint conversion against fixtures made by the official code (see fixtures/convert/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srkit.cli import main
from srkit.convert import canonicalize, convert_checkpoint, parse_set
from srkit.convert.common import CONVERTERS, get_converter
from srkit.errors import CheckpointError, ConfigError
from srkit.model_file import load_model, save_model

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "convert"

# fixture -> (arch, constructor arguments the converter must infer)
CASES = {
    "edsr_r2f32x2": ("edsr", {"n_resblocks": 2, "n_feats": 32, "scale": 2, "res_scale": 0.1, "img_range": 255.0}),
    "edsr_baseline_r2f16x3": (
        "edsr_baseline", {"n_resblocks": 2, "n_feats": 16, "scale": 3, "res_scale": 1.0, "img_range": 255.0}
    ),
    "rcan_g2b2f16x4": (
        "rcan", {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4, "scale": 4, "img_range": 255.0}
    ),
    "rdn_d2c2g8f16x3": ("rdn", {"G0": 16, "D": 2, "C": 2, "G": 8, "kernel_size": 3, "n_colors": 3, "scale": 3}),
    "fsrcnn_d16x4": ("fsrcnn", {"d": 16, "s": 12, "m": 4, "n_colors": 3, "scale": 4}),
    "carn_m_nf36x4": ("carn_m", {"nf": 36, "group": 4, "scale": 4}),
    "msrresnet_nf16nb2x4": ("msrresnet", {"in_nc": 3, "out_nc": 3, "nf": 16, "nb": 2, "scale": 4}),
}


def _io(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    io = load_file(str(FIXTURES / f"{name}_io.safetensors"))
    return io["input"], io["output"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_convert_save_load_matches_official_output(name, tmp_path):
    arch, kwargs = CASES[name]
    conv = convert_checkpoint(FIXTURES / f"{name}.pth", arch)
    assert conv.arch == arch and conv.arch_kwargs == kwargs
    assert conv.source["file"] == f"{name}.pth" and len(conv.source["sha256"]) == 64
    path = save_model(tmp_path / "m.safetensors", conv.net, conv.arch, conv.arch_kwargs, conv.metadata())
    loaded = load_model(path)
    assert loaded.arch_kwargs == kwargs and loaded.descriptor.scales == (kwargs["scale"],)
    x, want = _io(name)
    with torch.inference_mode():
        got = loaded.net(x)
    assert got.shape == want.shape == (1, 3, 10 * kwargs["scale"], 12 * kwargs["scale"])
    # outputs are in [0, 1] units; 1e-5 is ~0.003 of an 8-bit level
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def _official_state(name: str = "edsr_baseline_r2f16x3") -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / f"{name}.pth", weights_only=True)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"params_ema": sd, "params": {k: torch.zeros_like(v) for k, v in sd.items()}},  # BasicSR
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "meta": {"epoch": 3}},  # DDP/MMagic
        lambda sd: {"model": {"name": "edsr-baseline", "args": {"scale": 3}, "sd": sd}, "epoch": 7},  # LIIF layout
        lambda sd: {"net": {f"_orig_mod.{k}": v for k, v in sd.items()}},  # torch.compile prefix
    ],
    ids=["params_ema", "state_dict+module", "liif_model_sd", "orig_mod"],
)
def test_wrappers_are_unwrapped(wrap, tmp_path):
    sd = _official_state()
    f = tmp_path / "wrapped.pth"
    torch.save(wrap(sd), f)
    conv = convert_checkpoint(f, "edsr_baseline")
    x, want = _io("edsr_baseline_r2f16x3")
    with torch.inference_mode():
        torch.testing.assert_close(conv.net(x), want, atol=1e-5, rtol=0)


def test_canonicalize_reports_what_it_did():
    sd = {"module.a.weight": torch.zeros(1)}
    state, notes = canonicalize({"params_ema": sd, "params": {"x": torch.ones(1)}})
    assert list(state) == ["a.weight"] and notes == ["unwrapped 'params_ema'", "stripped prefix 'module.'"]
    with pytest.raises(CheckpointError, match="'iter' .*not tensors"):
        canonicalize({"a.weight": torch.zeros(1), "iter": 5})


def test_wrong_checkpoint_for_the_arch_names_keys(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not look like a rdn checkpoint: key 'SFENet1\.weight' is missing"):
        convert_checkpoint(FIXTURES / "edsr_r2f32x2.pth", "rdn")
    # an EDSR-PyTorch RCAN read as EDSR: same head and tail names, different body
    with pytest.raises(CheckpointError, match=r"does not fit the edsr network: missing keys: body\.0\.weight.*"
                                              r"unexpected keys: body\.0\.body\.0\.body\.0\.weight.*\(38 in all\)"):
        convert_checkpoint(FIXTURES / "rcan_g2b2f16x4.pth", "edsr")


def test_overrides_that_contradict_the_weights(tmp_path):
    with pytest.raises(CheckpointError, match=r"shape mismatches: head\.0\.weight \(checkpoint 32x3x3x3, network 8x3x3x3\)"):
        convert_checkpoint(FIXTURES / "edsr_r2f32x2.pth", "edsr", overrides={"n_feats": 8})
    with pytest.raises(CheckpointError, match="upsampler is for x2, not x4"):
        convert_checkpoint(FIXTURES / "edsr_r2f32x2.pth", "edsr", scale=4)
    with pytest.raises(ConfigError, match="unknown argument 'bogus'"):
        convert_checkpoint(FIXTURES / "edsr_r2f32x2.pth", "edsr", overrides={"bogus": 1})


def test_set_changes_what_shapes_cannot_tell():
    # res_scale is not stored: --set res_scale=1 changes the function, not the weights
    conv = convert_checkpoint(FIXTURES / "edsr_r2f32x2.pth", "edsr", overrides={"res_scale": 1.0})
    assert conv.arch_kwargs["res_scale"] == 1.0
    x, want = _io("edsr_r2f32x2")
    with torch.inference_mode():
        assert (conv.net(x) - want).abs().max() > 1e-3
    # FSRCNN's deconvolution stride is not stored either; --scale picks it
    conv = convert_checkpoint(FIXTURES / "fsrcnn_d16x4.pth", "fsrcnn", scale=2)
    assert conv.arch_kwargs["scale"] == 2 and conv.net(torch.rand(1, 3, 5, 6)).shape == (1, 3, 10, 12)


class _Payload:
    """Unpickling this would create a file: proof that conversion never runs pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_arbitrary_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.pth"
    torch.save({"state_dict": _official_state(), "extra": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        convert_checkpoint(f, "edsr_baseline")
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    f = tmp_path / "junk.pth"
    f.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        convert_checkpoint(f, "edsr")


def test_parse_set():
    assert parse_set(["n_feats=64", "res_scale=0.1", "no_upsampling=true", "name=abc", "dims=[1, 2]"]) == {
        "n_feats": 64, "res_scale": 0.1, "no_upsampling": True, "name": "abc", "dims": [1, 2]
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["n_feats"])


def test_converter_table_is_lazy_and_complete():
    assert all(isinstance(v, str) and ":" in v for v in CONVERTERS.values())
    for arch in ("edsr", "edsr_baseline", "rcan", "rdn", "carn_m", "msrresnet", "fsrcnn"):
        assert callable(get_converter(arch))
    with pytest.raises(ConfigError, match="no checkpoint converter for architecture 'nosuch'; known: carn_m"):
        get_converter("nosuch")


def test_cli_convert(tmp_path, capsys):
    out = tmp_path / "carn.safetensors"
    src = str(FIXTURES / "carn_m_nf36x4.pth")
    assert main(["convert", src, "--arch", "carn_m", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "carn_m(group=4, nf=36, scale=4)" in printed and "x4" in printed
    x, want = _io("carn_m_nf36x4")
    with torch.inference_mode():
        torch.testing.assert_close(load_model(out).net(x), want, atol=1e-5, rtol=0)

    assert main(["convert", src, "--arch", "carn_m", "-o", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", src, "--arch", "carn_m", "-o", str(out), "--force"]) == 0
    assert main(["convert", src, "--arch", "msrresnet", "-o", str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("srkit: error:") and "conv_first.weight" in err and err.count("\n") == 1
