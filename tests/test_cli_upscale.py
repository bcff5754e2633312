"""``srkit upscale`` end to end on tiny files with a tiny saved model."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from srkit.cli import main
from srkit.cli.upscale import parse_memory, parse_size
from srkit.data.io import load_image, write_image



@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    from srkit import archs
    from srkit.model_file import save_model

    torch.manual_seed(0)
    kwargs = {"d": 8, "s": 4, "m": 1, "scale": 2}
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, archs.build("fsrcnn", **kwargs), "fsrcnn", kwargs)
    return str(path)


def _rgb(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _run(model: str, *argv: str) -> int:
    return main(["upscale", *argv, "--model", model, "--device", "cpu"])


def test_rgb_file_to_file(tmp_path, model) -> None:
    write_image(tmp_path / "a.png", _rgb())
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png")) == 0
    out = load_image(tmp_path / "out.png")
    assert out.array.shape == (24, 20, 3) and out.bit_depth == 8


def test_alpha_kept(tmp_path, model) -> None:
    a = np.dstack([_rgb(), np.full((12, 10), 77, np.uint8)])
    a[:6, :, 3] = 200
    write_image(tmp_path / "a.png", a)
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png")) == 0
    out = load_image(tmp_path / "o.png")
    assert out.has_alpha and out.array.shape == (24, 20, 4)
    alpha = out.array[..., 3]
    assert np.all(alpha[:8] == 200) and np.all(alpha[-8:] == 77)  # flat regions stay exact (bicubic)


def test_grayscale_kept(tmp_path, model) -> None:
    Image.fromarray(_rgb()[..., 0], "L").save(tmp_path / "g.png")
    assert _run(model, str(tmp_path / "g.png"), "-o", str(tmp_path / "o.png")) == 0
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "L" and im.size == (20, 24)


def test_gray_alpha_stays_gray(tmp_path, model) -> None:
    Image.fromarray(np.dstack([_rgb()[..., 0], _rgb(seed=1)[..., 0]]), "LA").save(tmp_path / "ga.png")
    assert _run(model, str(tmp_path / "ga.png"), "-o", str(tmp_path / "o.png")) == 0
    out = load_image(tmp_path / "o.png").array
    assert out.shape == (24, 20, 4)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_kept(tmp_path, model, channels) -> None:
    a = np.random.default_rng(2).integers(0, 65536, (12, 10, channels), dtype=np.uint16)
    write_image(tmp_path / "d.png", a)
    assert _run(model, str(tmp_path / "d.png"), "-o", str(tmp_path / "o.png")) == 0
    out = load_image(tmp_path / "o.png")
    assert out.bit_depth == 16 and out.array.dtype == np.uint16 and out.array.shape == (24, 20, channels)
    assert np.any(out.array % 257 != 0)  # real 16-bit values, not 8-bit ones scaled up


def test_icc_profile_kept(tmp_path, model) -> None:
    try:
        from PIL import ImageCms

        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except ImportError:  # pragma: no cover - Pillow without littlecms
        icc = b"\x00\x00\x01\x00fake icc profile"
    write_image(tmp_path / "c.png", _rgb(), icc_profile=icc)
    assert _run(model, str(tmp_path / "c.png"), "-o", str(tmp_path / "o.png")) == 0
    assert load_image(tmp_path / "o.png").icc_profile == icc


def test_input_is_never_overwritten(tmp_path, model, capsys) -> None:
    src = tmp_path / "a.png"
    write_image(src, _rgb())
    before = src.read_bytes()
    assert _run(model, str(src), "-o", str(src), "--overwrite") == 1
    assert "refusing to overwrite the input" in capsys.readouterr().err
    # a folder run whose output name collides with another input
    write_image(tmp_path / "a_x2.png", _rgb(seed=3))
    before2 = (tmp_path / "a_x2.png").read_bytes()
    assert _run(model, str(tmp_path), "-o", str(tmp_path), "--overwrite") == 1
    assert src.read_bytes() == before and (tmp_path / "a_x2.png").read_bytes() == before2


def test_existing_output_needs_overwrite(tmp_path, model, capsys) -> None:
    write_image(tmp_path / "a.png", _rgb())
    (tmp_path / "o.png").write_bytes(b"keep me")
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png")) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "o.png").read_bytes() == b"keep me"
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--overwrite") == 0
    assert load_image(tmp_path / "o.png").array.shape == (24, 20, 3)


def test_bad_file_in_batch(tmp_path, model, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", _rgb())
    (src / "broken.png").write_bytes(b"this is not a png")
    write_image(src / "c.jpg", _rgb(seed=4))
    (src / "notes.txt").write_text("ignored: not an image extension")
    assert _run(model, str(src), "-o", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "broken.png" in ln]
    assert len(lines) == 1 and "srkit: error: cannot read image" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]
    assert load_image(tmp_path / "out" / "c_x2.png").array.shape == (24, 20, 3)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_several_files_and_size(tmp_path, model) -> None:
    for name in ("a", "b"):
        write_image(tmp_path / f"{name}.png", _rgb())
    assert _run(model, str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "o"),
                "--size", "25x31", "--tile", "0") == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_25x31.png", "b_25x31.png"]
    assert load_image(tmp_path / "o" / "a_25x31.png").array.shape == (31, 25, 3)


def test_other_scale_and_tiling_options(tmp_path, model) -> None:
    write_image(tmp_path / "a.png", _rgb(40, 44))
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "o") + "/", "--scale", "3",
                "--max-memory", "20MB") == 0
    assert load_image(tmp_path / "o" / "a_x3.png").array.shape == (120, 132, 3)


def test_half_on_cpu_warns(tmp_path, model, capsys) -> None:
    write_image(tmp_path / "a.png", _rgb())
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--half") == 0
    assert "warning: --half needs CUDA" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_cuda(tmp_path, model, capsys) -> None:
    write_image(tmp_path / "a.png", _rgb())
    code = main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model", model,
                 "--device", "cuda"])
    assert code == 1 and "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_missing_input_and_bad_output_name(tmp_path, model, capsys) -> None:
    assert _run(model, str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")) == 1
    assert "no such file" in capsys.readouterr().err
    write_image(tmp_path / "a.png", _rgb())
    assert _run(model, str(tmp_path / "a.png"), "-o", str(tmp_path / "result")) == 1
    assert "no image extension" in capsys.readouterr().err


def test_parsers() -> None:
    assert parse_memory("2GB") == 2_000_000_000
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory("1.5G") == int(1.5 * 2**30)
    assert parse_memory("1000") == 1000
    assert parse_size("1920x1080") == (1080, 1920)
    for bad in ("2XB", "", "-1GB"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_memory(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("1920*1080")
