"""srkit model files (safetensors + JSON metadata) and the model zoo lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from srkit import archs
from srkit.errors import CheckpointError, SrkitError
from srkit.model_file import (
    FORMAT_VERSION,
    METADATA_KEY,
    _tensors_for_saving,
    count_params,
    load_model,
    read_metadata,
    save_model,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "convert"
KW = {"nf": 8, "nb": 1, "scale": 2}


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return archs.build("msrresnet", **KW)


def test_round_trip_weights_metadata_descriptor(tmp_path):
    net = _net()
    meta = {
        "recipe": {"lr": 2e-4, "iters": 1000, "loss": "l1"},
        "data": {"train": "DIV2K", "patch": 48},
        "metrics": {"Set5": {"psnr_y": 30.25, "ssim_y": 0.875}},
        "notes": "unit test",
    }
    path = save_model(tmp_path / "m.safetensors", net, "msrresnet", KW, meta)
    loaded = load_model(path)

    assert loaded.arch == "msrresnet" and loaded.arch_kwargs == KW and loaded.path == path
    assert not loaded.net.training
    want = net.state_dict()
    got = loaded.net.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    for k, v in meta.items():
        assert loaded.metadata[k] == v
    assert loaded.descriptor == archs.describe("msrresnet", **KW)
    assert loaded.descriptor.scales == (2,)
    doc = loaded.metadata
    assert doc["srkit_format"] == FORMAT_VERSION
    assert doc["input_range"] == [0.0, 1.0] and doc["color_order"] == "RGB"
    assert doc["scales"] == [2] and doc["descriptor"]["scales"] == [2]
    assert doc["created"].endswith("+00:00") and doc["srkit_version"]
    # same function of the input
    x = torch.rand(1, 3, 6, 7)
    with torch.inference_mode():
        assert torch.equal(loaded.net(x), net.eval()(x))
    # header-only readers agree
    assert read_metadata(path) == doc
    with pytest.raises(SrkitError, match="holds a msrresnet model, not edsr"):
        load_model(path, arch="edsr")
    assert count_params(path) == sum(t.numel() for t in want.values())


def test_metadata_lives_in_the_safetensors_header(tmp_path):
    path = save_model(tmp_path / "m.safetensors", _net(), "msrresnet", KW, {"metrics": {"x": 1}})
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    assert header["format"] == "pt"
    assert json.loads(header[METADATA_KEY])["arch"] == "msrresnet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # one file, no temp left


def test_overwrite_refused_unless_asked(tmp_path):
    path = save_model(tmp_path / "m.safetensors", _net(0), "msrresnet", KW)
    before = path.read_bytes()
    with pytest.raises(SrkitError, match="already exists"):
        save_model(path, _net(1), "msrresnet", KW)
    assert path.read_bytes() == before
    save_model(path, _net(1), "msrresnet", KW, overwrite=True)
    assert path.read_bytes() != before
    assert torch.equal(load_model(path).net.conv_first.weight, _net(1).conv_first.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from srkit.engine.checkpoint import atomic_save

    umask = os.umask(0o022)
    os.umask(umask)
    path = save_model(tmp_path / "m.safetensors", _net(0), "msrresnet", KW)
    atomic_save({"x": torch.zeros(1)}, tmp_path / "c.pt")
    for p in (path, tmp_path / "c.pt"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p  # not mkstemp's 0600


def test_bad_metadata_leaves_no_file(tmp_path):
    with pytest.raises(SrkitError, match="not JSON-serialisable"):
        save_model(tmp_path / "m.safetensors", _net(), "msrresnet", KW, {"recipe": {"fn": object()}})
    with pytest.raises(SrkitError, match="'arch' is written by srkit"):
        save_model(tmp_path / "m.safetensors", _net(), "msrresnet", KW, {"arch": "other"})
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_weights_that_do_not_rebuild(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing keys: recon_trunk\.1\.conv1\.weight"):
        save_model(tmp_path / "m.safetensors", _net(), "msrresnet", {**KW, "nb": 2})
    assert list(tmp_path.iterdir()) == []


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a model file at all")
    with pytest.raises(SrkitError, match="is not a safetensors model file"):
        load_model(bad)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(SrkitError, match="is not a safetensors model file"):
        load_model(empty)


def test_safetensors_without_srkit_metadata(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(SrkitError, match="without srkit metadata.*srkit convert"):
        load_model(plain)


def test_newer_format_and_broken_metadata(tmp_path):
    f = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(f), metadata={METADATA_KEY: json.dumps({"arch": "edsr", "srkit_format": 99})})
    with pytest.raises(SrkitError, match="format 99.*upgrade"):
        load_model(f)
    g = tmp_path / "broken.safetensors"
    save_file({"w": torch.zeros(2)}, str(g), metadata={METADATA_KEY: "{not json"})
    with pytest.raises(SrkitError, match="not valid JSON"):
        load_model(g)


def test_weights_that_do_not_fit_the_recorded_arch(tmp_path):
    path = save_model(tmp_path / "m.safetensors", _net(), "msrresnet", KW)
    # rewrite the header so the metadata claims a wider network than the weights hold
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata()
    doc = json.loads(header[METADATA_KEY])
    doc["arch_kwargs"]["nf"] = 16
    save_file(tensors, str(path), metadata={**header, METADATA_KEY: json.dumps(doc)})
    with pytest.raises(CheckpointError, match=r"shape mismatches: conv_first\.weight \(checkpoint 8x3x3x3, network 16x3x3x3\)"):
        load_model(path)


def test_missing_file_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKIT_MODEL_PATH", str(tmp_path))
    with pytest.raises(SrkitError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(SrkitError, match="is not a file"):
        load_model(tmp_path)
    from srkit import zoo

    # the package ships srkit-default; an empty zoo is one whose only search directory is empty
    monkeypatch.setattr(zoo, "search_dirs", lambda: [tmp_path])
    with pytest.raises(SrkitError, match="unknown model 'nope'.*known models: none installed"):
        load_model("nope")


def test_shared_and_noncontiguous_tensors_are_saved():
    base = torch.arange(12.0).reshape(3, 4)
    state = {
        "a": base,
        "tied": base,  # same storage under two names
        "view": base[1],  # part of another tensor's storage
        "t": torch.arange(6.0).reshape(2, 3).t(),  # non-contiguous
    }
    out = _tensors_for_saving(state)
    ptrs = [t.untyped_storage().data_ptr() for t in out.values()]
    assert len(set(ptrs)) == len(ptrs)
    assert all(t.is_contiguous() for t in out.values())
    for k in state:
        assert torch.equal(out[k], state[k])


def test_tied_weights_round_trip(tmp_path):
    net = _net()
    # tie two same-shaped convs, as weight sharing would
    net.HRconv.weight = net.recon_trunk[0].conv1.weight
    path = save_model(tmp_path / "tied.safetensors", net, "msrresnet", KW)
    loaded = load_model(path)
    assert torch.equal(loaded.net.HRconv.weight, net.recon_trunk[0].conv1.weight)


def test_zoo_lookup(tmp_path, monkeypatch):
    from srkit import zoo

    assert zoo.DEFAULT_MODEL == "srkit-default"
    monkeypatch.setenv("SRKIT_MODEL_PATH", str(tmp_path))
    save_model(tmp_path / "tiny-x2.safetensors", _net(), "msrresnet", KW, {"metrics": {"Set5": {"psnr_y": 1.5}}})
    save_model(tmp_path / "another.safetensors", _net(), "msrresnet", KW)
    assert {"another", "tiny-x2"} <= set(zoo.list_models())
    assert zoo.list_models() == sorted(zoo.list_models())
    assert zoo.resolve("tiny-x2") == tmp_path / "tiny-x2.safetensors"
    loaded = load_model("tiny-x2")
    assert loaded.arch == "msrresnet" and loaded.metadata["metrics"]["Set5"]["psnr_y"] == 1.5
    with pytest.raises(SrkitError, match="unknown model 'nope'.*known models: another, .*srkit-default, tiny-x2"):
        zoo.resolve("nope")


def test_foreign_checkpoint_goes_through_the_converter():
    pth = FIXTURES / "msrresnet_nf16nb2x4.pth"
    with pytest.raises(SrkitError, match="foreign checkpoint.*srkit convert"):
        load_model(pth)
    loaded = load_model(pth, arch="msrresnet")
    assert loaded.arch_kwargs == {"in_nc": 3, "out_nc": 3, "nf": 16, "nb": 2, "scale": 4}
    assert loaded.metadata["source"]["file"] == pth.name
    assert not loaded.net.training
