"""Profiling (params, FLOPs, latency, memory) and the `srkit profile` / `srkit models` commands."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from torch import nn

from srkit import archs
from srkit.cli import main
from srkit.model_file import save_model
from srkit.profile import count_flops, format_bytes, format_count, profile_model


def test_flops_of_one_conv_is_hand_computed():
    # output pixels x output channels x (in_channels x k x k) MACs, 2 FLOPs each; bias not counted
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, torch.rand(1, 3, 16, 20)) == 2 * (16 * 20) * 8 * (3 * 3 * 3) == 138_240


def test_flops_of_grouped_and_transposed_convs():
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)  # each output channel sees 2 input channels
    assert count_flops(grouped, torch.rand(2, 8, 6, 7)) == 2 * 2 * (6 * 7) * 8 * (2 * 3 * 3)
    # a transposed conv scatters every input pixel through a full k x k x out kernel
    deconv = nn.ConvTranspose2d(4, 2, 3, stride=2)
    assert count_flops(deconv, torch.rand(1, 4, 5, 5)) == 2 * (5 * 5) * 4 * 2 * 3 * 3


def test_profile_model_fields():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 12, 3, padding=1), nn.PixelShuffle(2))
    r = profile_model(net, (12, 10), runs=3, warmup=1)
    assert r.params == sum(p.numel() for p in net.parameters()) == 3 * 16 * 9 + 16 + 16 * 12 * 9 + 12
    assert r.flops == 2 * 12 * 10 * (16 * 27 + 12 * 16 * 9) and r.macs == r.flops // 2
    assert r.output_shape == (1, 3, 24, 20) and r.input_size == (12, 10)
    assert len(r.latency_ms_all) == 3 and r.latency_ms_median > 0
    assert r.latency_ms_median == pytest.approx(statistics.median(r.latency_ms_all), abs=1e-3)
    assert r.device == "cpu" and r.dtype == "float32" and not net.training
    d = r.to_dict()
    assert d["flops"] == r.flops and d["output_shape"] == [1, 3, 24, 20]
    json.dumps(d)


def test_cpu_peak_memory_sees_the_activations():
    # 64 channels at 256x256 in float32: each activation is 16 MiB, and a pass holds at least one
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 3, 3, padding=1))
    r = profile_model(net, (256, 256), runs=1, warmup=1)
    if r.peak_memory_bytes is None:
        pytest.skip("peak RSS cannot be reset on this platform (/proc/self/clear_refs)")
    activation = 64 * 256 * 256 * 4
    assert activation * 0.9 <= r.peak_memory_bytes < activation * 20


def test_profile_rejects_bad_arguments():
    from srkit.errors import SrkitError

    with pytest.raises(SrkitError, match="runs"):
        profile_model(nn.Identity(), (4, 4), runs=0)
    with pytest.raises(SrkitError, match="positive"):
        profile_model(nn.Identity(), (0, 4))


def test_formatting():
    assert format_count(1_234_567) == "1.23M" and format_count(999) == "999" and format_count(8.4e9) == "8.4G"
    assert format_bytes(512) == "512 B" and format_bytes(3 * 1024**2) == "3.0 MiB" and format_bytes(None) == "n/a"


def test_cli_profile_arch(tmp_path, capsys):
    out = tmp_path / "p.json"
    code = main(["profile", "--model", "arch:fsrcnn", "--set", "d=16", "--scale", "4", "--size", "20x12",
                 "--device", "cpu", "--runs", "2", "--warmup", "0", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "fsrcnn, x4" in text and "20x12 (WxH) -> output 1x3x48x80" in text and "2 x MACs" in text
    doc = json.loads(out.read_text())
    torch.manual_seed(0)
    net = archs.build("fsrcnn", d=16, scale=4)
    assert doc["flops"] == count_flops(net, torch.rand(1, 3, 12, 20))
    assert doc["params"] == sum(p.numel() for p in net.parameters())
    assert doc["arch"] == "fsrcnn" and doc["input_size"] == [12, 20]


def test_cli_profile_model_file_and_errors(tmp_path, capsys, monkeypatch):
    net = archs.build("msrresnet", nf=8, nb=1, scale=2)
    path = save_model(tmp_path / "tiny.safetensors", net, "msrresnet", {"nf": 8, "nb": 1, "scale": 2})
    assert main(["profile", "--model", str(path), "--size", "8x8", "--device", "cpu", "--runs", "1"]) == 0
    assert "msrresnet, x2" in capsys.readouterr().out
    monkeypatch.setenv("SRKIT_MODEL_PATH", str(tmp_path))
    assert main(["profile", "--model", "tiny", "--size", "8x8", "--device", "cpu", "--runs", "1"]) == 0
    assert "tiny (" in capsys.readouterr().out

    for argv, message in [
        (["--model", str(path), "--size", "8x8", "--scale", "3"], "upscales by 2, not by 3"),
        (["--model", str(path), "--size", "8by8"], "WIDTHxHEIGHT"),
        (["--model", str(path), "--size", "8x8", "--set", "nf=4"], "--set applies only to arch:NAME"),
        (["--model", "arch:nosuch"], "unknown architecture 'nosuch'"),
        (["--model", "nosuch-model"], "unknown model 'nosuch-model'"),
    ]:
        assert main(["profile", *argv, "--device", "cpu"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("srkit: error:") and message in err, err


def test_cli_models_lists_zoo_and_architectures(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SRKIT_MODEL_PATH", str(tmp_path))
    net = archs.build("msrresnet", nf=8, nb=1, scale=2)
    save_model(tmp_path / "tiny-x2.safetensors", net, "msrresnet", {"nf": 8, "nb": 1, "scale": 2},
               {"metrics": {"Set5": {"psnr_y": 30.5}}})
    (tmp_path / "broken.safetensors").write_bytes(b"junk")
    out_json = tmp_path / "models.json"
    assert main(["models", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if "tiny-x2" in line)
    n_values = sum(t.numel() for t in net.state_dict().values())
    assert "msrresnet" in row and "x2" in row and format_count(n_values) in row and "Set5 psnr_y 30.5" in row
    assert "broken" in text and "not a safetensors model file" in text
    for name in archs.names():
        assert any(line.split()[:1] == [name] for line in text.splitlines()), name
    doc = json.loads(out_json.read_text())
    tiny = next(r for r in doc["zoo"] if r["name"] == "tiny-x2")
    assert tiny["params"] == n_values and tiny["metrics"] == {"Set5": {"psnr_y": 30.5}}
    assert {r["name"] for r in doc["architectures"]} == set(archs.names())


@pytest.mark.parametrize(
    "arch, kwargs, published",
    [
        ("msrresnet", {"nf": 36}, 1.66e9),
        ("msrresnet", {"nf": 64}, 5.20e9),
        ("carn_m", {"nf": 64}, 1.15e9),
    ],
)
def test_flops_agree_with_classsr_published_branch_costs(arch, kwargs, published):
    # ClassSR's cal_FLOPs hard-codes the cost of each branch per 32x32 LR patch, as 2 x MACs. Conv FLOPs
    # are proportional to the pixel count, so an 8x8 pass times 16 gives the 32x32 figure cheaply.
    net = archs.build(arch, **kwargs)
    flops_32 = 16 * count_flops(net, torch.rand(1, 3, 8, 8))
    assert flops_32 == pytest.approx(published, abs=0.01e9)  # published to 2 decimals, rounded loosely


def test_cli_profile_reports_smsr_mask_flops(tmp_path, capsys):
    import json

    from srkit.cli import main

    out = tmp_path / "p.json"
    assert main(["profile", "--model", "arch:smsr", "--set", "n_feats=16", "--set", "n_blocks=2", "--size", "24x24",
                 "--runs", "1", "--warmup", "0", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())["mask_flops"]
    assert 0 < doc["ratio"] <= 1 and doc["total"] == pytest.approx(doc["ratio"] * doc["dense_total"])
    assert len(doc["blocks"]) == 2
    assert "masked" in capsys.readouterr().out


def test_cli_profile_smsr_on_an_image_reports_its_mask_flops(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from srkit.convert.common import build_net

    # a flat image with one textured corner: the masks (and so the FLOPs) depend on it
    rng = np.random.default_rng(0)
    img = np.full((18, 26, 3), 120, np.uint8)
    img[:8, :10] = rng.integers(0, 256, (8, 10, 3))
    path = tmp_path / "lr.png"
    Image.fromarray(img).save(path)
    out = tmp_path / "p.json"
    assert main(["profile", "--model", "arch:smsr", "--set", "n_feats=16", "--set", "n_blocks=2", "--image", str(path),
                 "--runs", "1", "--warmup", "0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["input_size"] == [18, 26] and "26x18 (WxH)" in text
    torch.manual_seed(0)  # the CLI builds arch: models with seed 0
    net = build_net("smsr", {"n_feats": 16, "n_blocks": 2}).eval()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    expected = net.mask_flops(x)
    assert doc["mask_flops"]["total"] == expected["total"] and doc["mask_flops"]["blocks"] == expected["blocks"]
    assert str(path) in text
    for k, b in enumerate(expected["blocks"]):
        line = next(s for s in text.splitlines() if s.strip().startswith(f"m{k} "))
        assert f"active pixels {100 * b['spatial_density']:.1f}%" in line
        assert "layer density " + " ".join(f"{100 * d:.0f}%" for d in b["layer_density"]) in line
    # a random input of the same size gives other counts
    assert main(["profile", "--model", "arch:smsr", "--set", "n_feats=16", "--set", "n_blocks=2", "--size", "26x18",
                 "--runs", "1", "--warmup", "0", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mask_flops"]["total"] != expected["total"]
    assert "use --image" in capsys.readouterr().out
    # errors name the file
    assert main(["profile", "--model", "arch:smsr", "--image", str(tmp_path / "none.png")]) == 1
    assert "none.png" in capsys.readouterr().err
