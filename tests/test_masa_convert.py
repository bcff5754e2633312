"""MASA converter: an official-format checkpoint (``module.``-prefixed state_dict) converts to a srkit model
that reproduces the official network's output; wrong checkpoints are refused with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from test_masa import deterministic_state

FIX = Path(__file__).resolve().parent / "fixtures" / "masa"


@pytest.fixture(scope="module")
def official():
    from safetensors.torch import load_file

    return load_file(str(FIX / "masa_official_io.safetensors"))


def _official_state() -> dict[str, torch.Tensor]:
    keys = json.loads((FIX / "official_keys.json").read_text())
    return deterministic_state({k: torch.Size(v) for k, v in keys.items()})


def test_converter_reproduces_official_output(official, tmp_path):
    from srkit.cli import main
    from srkit.model_file import load_model

    torch.set_num_threads(1)
    src = tmp_path / "masa_rec.pth"
    # As saved by a DataParallel-wrapped trainer.
    torch.save({f"module.{k}": v for k, v in _official_state().items()}, src)
    out = tmp_path / "masa_rec.safetensors"
    assert main(["convert", str(src), "--arch", "masa", "-o", str(out)]) == 0
    model = load_model(out)
    assert model.descriptor.needs_ref and model.descriptor.scales == (4,)
    lr, ref, ref_down = (official[k].flip(1) for k in ("lr_bgr", "ref_bgr", "ref_down_bgr"))
    with torch.inference_mode():
        sr = model.net(lr, ref, ref_down).flip(1)
    # Measured max difference: 0.0.
    assert (sr - official["out_bgr"]).abs().max().item() <= 1e-5


def test_converter_errors(tmp_path, capsys):
    from srkit.cli import main
    from srkit.convert import convert_state_dict
    from srkit.errors import CheckpointError

    state = _official_state()
    conv = convert_state_dict(state, "masa")
    assert conv.arch == "masa" and conv.arch_kwargs == {} and set(conv.state_dict) == set(state)
    with pytest.raises(CheckpointError, match="upscale by 4, not by 2"):
        convert_state_dict(state, "masa", scale=2)
    small = dict(state, **{"enc.conv_L1.weight": torch.zeros(32, 3, 3, 3)})
    with pytest.raises(CheckpointError, match="64 features"):
        convert_state_dict(small, "masa")
    other = tmp_path / "other.pth"
    torch.save({"head.0.weight": torch.zeros(64, 3, 3, 3)}, other)
    assert main(["convert", str(other), "--arch", "masa", "-o", str(tmp_path / "b.safetensors")]) == 1
    assert "does not look like a masa checkpoint" in capsys.readouterr().err
    # A checkpoint missing a block is named precisely by the strict loader.
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("decoder.blk_x4.3.")}, partial)
    assert main(["convert", str(partial), "--arch", "masa", "-o", str(tmp_path / "c.safetensors")]) == 1
    assert "missing keys: decoder.blk_x4.3.conv1.weight" in capsys.readouterr().err
