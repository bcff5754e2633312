"""`srkit eval`: the bicubic table of ../shared/data/README.md, the JSON schema, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srkit.cli import main

# ../shared/data/README.md: MATLAB bicubic, Y channel, crop = scale (BasicSR convention)
BICUBIC_TABLE = {
    ("Set5", 2): (33.67, 0.9303), ("Set5", 3): (30.40, 0.8689), ("Set5", 4): (28.43, 0.8111),
    ("Set14", 2): (30.33, 0.8699), ("Set14", 3): (27.63, 0.7759), ("Set14", 4): (26.09, 0.7048),
    ("BSD100", 2): (29.56, 0.8434), ("BSD100", 3): (27.21, 0.7391), ("BSD100", 4): (25.96, 0.6681),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("data,scale", sorted(BICUBIC_TABLE))
def test_bicubic_reproduces_published_table(shared_data, data, scale):
    from srkit.evaluate import evaluate

    result = evaluate("bicubic", data, scale, preset="benchmark", progress=False)
    want_psnr, want_ssim = BICUBIC_TABLE[(data, scale)]
    # the table prints 2 / 4 decimals: the acceptance bound is 0.005 dB and 0.0005 SSIM
    assert abs(result.psnr - want_psnr) <= 0.005 + 1e-9
    assert abs(result.ssim - want_ssim) <= 0.0005 + 1e-9


def _folder(tmp_path, n=2, size=(24, 20), scale=2, with_lr=True):
    rng = np.random.default_rng(0)
    (tmp_path / "HR").mkdir(parents=True)
    if with_lr:
        (tmp_path / "LR_bicubic" / f"X{scale}").mkdir(parents=True)
    from srkit.data.resize import imresize

    for i in range(n):
        hr = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        Image.fromarray(hr).save(tmp_path / "HR" / f"img{i}.png")
        if with_lr:
            Image.fromarray(imresize(hr, scale=1 / scale)).save(tmp_path / "LR_bicubic" / f"X{scale}" / f"img{i}.png")
    return tmp_path


def test_eval_json_schema_and_table(tmp_path, capsys):
    data = _folder(tmp_path / "set")
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "bicubic", "--data", str(data), "--scale", "2", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert set(r) == {"model", "data", "scale", "preset", "psnr", "ssim", "images"}
    assert r["model"] == "bicubic" and r["scale"] == 2 and r["preset"] == "benchmark"
    assert [im["name"] for im in r["images"]] == ["img0", "img1"]
    assert r["psnr"] == pytest.approx(np.mean([im["psnr"] for im in r["images"]]))
    assert 0 < r["ssim"] < 1
    assert "mean" in capsys.readouterr().out


def test_eval_makes_lr_from_hr_when_absent(tmp_path):
    from srkit.evaluate import evaluate

    with_lr = evaluate("bicubic", _folder(tmp_path / "a"), 2, progress=False)
    without = evaluate("bicubic", _folder(tmp_path / "b", with_lr=False), 2, progress=False)
    # LR made on the fly with the same resize equals the shipped LR
    assert [s.psnr for s in with_lr.images] == [s.psnr for s in without.images]


def _one_line_error(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_eval_missing_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    _one_line_error(capsys, ["eval", "--model", "bicubic", "--data", str(missing), "--scale", "2"], "nope")


def test_eval_unknown_preset(tmp_path, capsys):
    data = _folder(tmp_path / "set")
    _one_line_error(capsys, ["eval", "--model", "bicubic", "--data", str(data), "--scale", "2", "--preset", "bogus"],
                    "bogus")


def test_eval_size_mismatch_names_file(tmp_path, capsys):
    data = _folder(tmp_path / "set")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(data / "LR_bicubic" / "X2" / "img1.png")
    _one_line_error(capsys, ["eval", "--model", "bicubic", "--data", str(data), "--scale", "2", "--quiet"], "img1.png")


def test_eval_corrupt_image_names_file(tmp_path, capsys):
    data = _folder(tmp_path / "set")
    (data / "HR" / "img1.png").write_bytes(b"this is not a png")
    _one_line_error(capsys, ["eval", "--model", "bicubic", "--data", str(data), "--scale", "2", "--quiet"], "img1.png")


def test_eval_reports_classsr_routing_per_image(tmp_path):
    """A network with ``pop_image_stats`` (ClassSR) gets its routing shares and FLOPs into each image's row."""
    import torch

    from srkit import archs
    from srkit.evaluate import evaluate
    from srkit.model_file import save_model

    torch.manual_seed(0)
    net = archs.build("classsr", backbone="fsrcnn", scale=4)
    path = save_model(tmp_path / "classsr.safetensors", net, "classsr", {"backbone": "fsrcnn", "scale": 4})
    data = _folder(tmp_path / "set", n=2, size=(80, 72), scale=4)
    result = evaluate(str(path), data, 4, progress=False)
    for im in result.images:
        # 20x18 LR: one 32x32-patch grid position per axis -> at least one patch, shares of 3 classes sum to 1
        assert im.extra["patches"] >= 1 and sum(im.extra["counts"]) == im.extra["patches"]
        assert sum(im.extra["shares"]) == pytest.approx(1.0)
        # percent of the hard branch's cost; the classifier's overhead can push it past 100 when all is hard
        assert im.extra["true_percent"] > 0
        assert im.extra["true_flops_total"] == pytest.approx(im.extra["true_flops_per_patch"] * im.extra["patches"])
    means = result.to_dict()["means"]
    assert means["true_percent"] == pytest.approx(np.mean([im.extra["true_percent"] for im in result.images]))


@pytest.mark.shared_data
def test_default_model_figures_in_readme(shared_data):
    """The README's Set5 x4 row of the embedded default model (30.34 / 0.8596 vs bicubic 28.43)."""
    from srkit.evaluate import evaluate

    result = evaluate("srkit-default", "Set5", 4, preset="benchmark", progress=False)
    assert result.psnr == pytest.approx(30.34, abs=0.005)
    assert result.ssim == pytest.approx(0.8596, abs=0.0005)


def test_default_model_upscales_the_shipped_sample(tmp_path):
    from srkit.cli import main as cli_main
    from srkit.data.io import read_image

    sample = Path(__file__).resolve().parents[1] / "examples" / "sample.png"
    out = tmp_path / "sample_x4.png"
    assert cli_main(["upscale", str(sample), "-o", str(out)]) == 0
    lr, sr = read_image(sample), read_image(out)
    assert sr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
    # the x4 model keeps the colours: its mean matches the input's within a grey level
    assert abs(float(sr.mean()) - float(lr.mean())) < 1.0
