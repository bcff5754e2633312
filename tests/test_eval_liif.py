"""Evaluation with LR made from HR the LIIF way (``srkit eval --lr-from-hr``), at any scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from srkit.cli import main
from srkit.errors import SrkitError
from srkit.evaluate import evaluate, make_lr_from_hr


def _hr_folder(path, sizes=((50, 37), (41, 64)), seed=0):
    rng = np.random.default_rng(seed)
    (path / "HR").mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
        hr = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))  # some structure, not noise
        Image.fromarray(hr).save(path / "HR" / f"im{i}.png")
    return path


@pytest.mark.parametrize("scale,lr_hw,hr_hw", [
    (4, (12, 9), (48, 36)),          # integer: crop to a multiple of 4
    (2.5, (20, 14), (50, 35)),       # floor(50 / 2.5) = 20, floor(37 / 2.5) = 14 -> HR round(14 * 2.5) = 35
    (3.7, (13, 10), (48, 37)),       # 50 / 3.7 = 13.5 -> 13, round(13 * 3.7) = round(48.1) = 48
    (12, (4, 3), (48, 36)),
])
def test_sizes_follow_the_liif_wrapper(scale, lr_hw, hr_hw):
    hr = np.random.default_rng(1).integers(0, 256, (50, 37, 3)).astype(np.uint8)
    for method in ("matlab", "pil"):
        crop, lr = make_lr_from_hr(hr, scale, method)
        assert lr.shape == (*lr_hw, 3) and crop.shape == (*hr_hw, 3)
        assert lr.dtype == np.uint8 and crop.dtype == np.uint8
        np.testing.assert_array_equal(crop, hr[: hr_hw[0], : hr_hw[1]])  # top-left crop


def test_downsamplers():
    from srkit.data.resize import imresize

    hr = np.random.default_rng(2).integers(0, 256, (48, 40, 3)).astype(np.uint8)
    crop, lr_m = make_lr_from_hr(hr, 4, "matlab")
    np.testing.assert_array_equal(lr_m, imresize(hr, scale=0.25))  # integer scale: the usual MATLAB LR
    _, lr_p = make_lr_from_hr(hr, 4, "pil")
    np.testing.assert_array_equal(lr_p, np.asarray(Image.fromarray(hr).resize((10, 12), Image.BICUBIC)))
    # both antialiased bicubic: close in the interior, different at the border (PIL renormalises its kernel)
    assert not np.array_equal(lr_m, lr_p)
    assert np.abs(lr_m[2:-2, 2:-2].astype(int) - lr_p[2:-2, 2:-2]).max() <= 3
    with pytest.raises(SrkitError, match="unknown LR downsampler"):
        make_lr_from_hr(hr, 4, "bilinear")
    with pytest.raises(SrkitError, match="too small for scale 60"):
        make_lr_from_hr(hr, 60)


def test_integer_scale_equals_the_hr_only_path(tmp_path):
    data = _hr_folder(tmp_path / "set")
    plain = evaluate("bicubic", data, 4, progress=False)  # HR-only folder: LR made with imresize(scale=1/4)
    flagged = evaluate("bicubic", data, 4, progress=False, lr_from_hr=True)
    assert [s.psnr for s in flagged.images] == [s.psnr for s in plain.images]
    assert "LR from HR, matlab" in flagged.data


def test_non_integer_scale_and_presets(tmp_path):
    data = _hr_folder(tmp_path / "set")
    r = evaluate("bicubic", data, 2.5, preset="div2k", progress=False, lr_from_hr="pil")
    assert len(r.images) == 2 and all(np.isfinite([s.psnr for s in r.images]))
    one = evaluate("bicubic", data, 2.5, preset="div2k", progress=False, lr_from_hr="pil", limit=1)
    assert [s.name for s in one.images] == ["im0"] and one.images[0].psnr == r.images[0].psnr
    # the crop of div2k at x2.5 is ceil(2.5) + 6 = 9 pixels: by hand on the first image
    from srkit.data.resize import imresize
    from srkit.metrics import psnr

    hr = np.asarray(Image.open(data / "HR" / "im0.png"))
    crop, lr = make_lr_from_hr(hr, 2.5, "pil")
    sr = imresize(lr, size=crop.shape[:2])
    assert r.images[0].psnr == pytest.approx(psnr(sr, crop, crop_border=9, y_channel=False), abs=1e-9)


def test_missing_lr_files_say_to_use_the_flag(tmp_path, capsys):
    data = _hr_folder(tmp_path / "set")
    (data / "LR_bicubic" / "X2").mkdir(parents=True)
    with pytest.raises(SrkitError, match="whole number.*--lr-from-hr"):
        evaluate("bicubic", data, 2.5, progress=False)
    assert main(["eval", "--model", "bicubic", "--data", str(data), "--scale", "3.5", "--quiet"]) == 1
    assert "--lr-from-hr" in capsys.readouterr().err


def test_cli_lr_from_hr(tmp_path, capsys):
    data = _hr_folder(tmp_path / "set")
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "bicubic", "--data", str(data), "--scale", "6", "--lr-from-hr",
                 "--preset", "div2k", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["scale"] == 6 and r["preset"] == "div2k" and r["data"].endswith("(LR from HR, matlab)")
    assert main(["eval", "--model", "bicubic", "--data", str(data), "--scale", "3.7", "--lr-from-hr", "pil",
                 "--limit", "1", "--quiet"]) == 0
    assert "(1 images)" in capsys.readouterr().out


@pytest.mark.shared_data
def test_named_set_beyond_its_lr_files(shared_data, capsys):
    with pytest.raises(SrkitError, match="no LR files for x12.*--lr-from-hr"):
        evaluate("bicubic", "Set5", 12, progress=False)
    r = evaluate("bicubic", "Set5", 12, progress=False, lr_from_hr=True)
    assert len(r.images) == 5 and 15 < r.psnr < 30
