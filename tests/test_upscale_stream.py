"""LIIF outputs written to PNG in strips: same pixels as the in-memory path, chosen from the memory budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srkit.cli import main
from srkit.data.io import load_image, read_image, write_image

KW = {"encoder": "edsr_baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16]}


@pytest.fixture(scope="module")
def liif_file(tmp_path_factory) -> str:
    from srkit import archs
    from srkit.model_file import save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "liif_tiny.safetensors"
    save_model(path, archs.build("liif", **KW), "liif", KW)
    return str(path)


@pytest.fixture(scope="module")
def up(liif_file):
    from srkit.inference import load

    return load(liif_file, device="cpu", tile=0)


def _img(h, w, c, dtype=np.uint8, seed=0):
    peak = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, peak + 1, (h, w, c)).astype(dtype)


@pytest.mark.parametrize("c,dtype", [(3, np.uint8), (4, np.uint8), (1, np.uint16), (2, np.uint8)])
def test_streamed_png_equals_in_memory(tmp_path, up, c, dtype):
    from srkit.inference.streaming import upscale_to_png

    a = _img(9, 11, c, dtype)
    ref = up.upscale(a, size=(40, 37))
    if c == 2:
        ref = ref[..., [0, 0, 0, 1]]
    write_image(tmp_path / "mem.png", ref)
    # a small budget: 11-row strips (boundaries inside the query chunk), latents of the whole input
    upscale_to_png(up, a, tmp_path / "strips.png", size=(40, 37), budget=200_000)
    np.testing.assert_array_equal(read_image(tmp_path / "strips.png", mode="unchanged"),
                                  read_image(tmp_path / "mem.png", mode="unchanged"))
    # a tiny budget: one-row strips and latents in bands of input rows: equal up to float rounding
    upscale_to_png(up, a, tmp_path / "bands.png", size=(40, 37), budget=1000)
    diff = read_image(tmp_path / "bands.png", mode="unchanged").astype(int) - read_image(tmp_path / "mem.png", mode="unchanged")
    assert np.abs(diff).max() <= 1


def test_chunks_across_strips_equal_forward(up):
    """Strips of 3 rows from chunks of 50 queries (boundaries never aligned) are forward's rows exactly."""
    lr = torch.rand(1, 3, 7, 9)
    with torch.inference_mode():
        whole = up.net(lr, (23, 17), chunk_size=50)
        strips = list(up.net.iter_rows(lr, (23, 17), rows_per_strip=3, chunk_size=50))
    assert [y for y, _ in strips] == list(range(0, 23, 3))
    assert [s.shape[2] for _, s in strips] == [3] * 7 + [2]
    assert torch.equal(torch.cat([s for _, s in strips], dim=2), whole)


def test_cli_streams_when_the_output_exceeds_the_budget(tmp_path, liif_file, capsys):
    write_image(tmp_path / "in.png", _img(10, 12, 3))
    base = ["upscale", str(tmp_path / "in.png"), "--model", liif_file, "--device", "cpu", "--scale", "3.5"]
    assert main([*base, "-o", str(tmp_path / "mem.png")]) == 0
    assert "strips" not in capsys.readouterr().err
    # 35x42 output x 48 bytes > 10 KiB: streamed with latents in bands of input rows
    assert main([*base, "-o", str(tmp_path / "str.png"), "--max-memory", "10KiB"]) == 0
    assert "latents in bands" in capsys.readouterr().err
    diff = read_image(tmp_path / "str.png").astype(int) - read_image(tmp_path / "mem.png")
    assert read_image(tmp_path / "str.png").shape == (35, 42, 3) and np.abs(diff).max() <= 1
    # x8: 80x96 output x 48 bytes > 256 KiB, latents of the whole input fit: exactly the in-memory pixels
    big = ["upscale", str(tmp_path / "in.png"), "--model", liif_file, "--device", "cpu", "--scale", "8"]
    assert main([*big, "-o", str(tmp_path / "mem8.png")]) == 0
    assert main([*big, "-o", str(tmp_path / "str8.png"), "--max-memory", "256KiB"]) == 0
    assert "latents of the whole input" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(tmp_path / "str8.png"), read_image(tmp_path / "mem8.png"))
    # --size WxH as well, gray input stays gray
    Image.fromarray(_img(10, 12, 1)[..., 0], "L").save(tmp_path / "g.png")
    g = ["upscale", str(tmp_path / "g.png"), "--model", liif_file, "--device", "cpu", "--size", "100x81"]
    assert main([*g, "-o", str(tmp_path / "g_mem.png")]) == 0
    assert main([*g, "-o", str(tmp_path / "g_str.png"), "--max-memory", "256KiB"]) == 0
    assert "strips" in capsys.readouterr().err
    with Image.open(tmp_path / "g_str.png") as im:
        assert im.mode == "L" and im.size == (100, 81)
    np.testing.assert_array_equal(load_image(tmp_path / "g_str.png").array, load_image(tmp_path / "g_mem.png").array)


def test_should_stream_follows_the_budget(up):
    from srkit.inference.streaming import IN_MEMORY_BYTES_PER_PIXEL, plan_strips, should_stream

    px = 3840 * 3840
    assert should_stream(up, (3840, 3840), budget=px * IN_MEMORY_BYTES_PER_PIXEL - 1)
    assert not should_stream(up, (3840, 3840), budget=px * IN_MEMORY_BYTES_PER_PIXEL)
    chunk, rows = plan_strips(up, (3840, 3840), 3, budget=64 * 2**20)
    assert rows * 3840 * 3 * 40 <= 16 * 2**20 and rows >= 1
    assert chunk == max(up.net.chunk_size_for(16 * 2**20), 16384)


def test_fixed_scale_models_do_not_stream(tmp_path):
    from srkit import archs
    from srkit.inference import Upscaler
    from srkit.inference.streaming import should_stream, upscale_to_png
    from srkit.errors import SrkitError

    kw = {"d": 8, "s": 4, "m": 1, "scale": 2}
    up = Upscaler(archs.build("fsrcnn", **kw), archs.describe("fsrcnn", **kw), device="cpu")
    assert not should_stream(up, (10**5, 10**5), budget=1)
    with pytest.raises(SrkitError, match="cannot write its output in strips"):
        upscale_to_png(up, _img(4, 4, 3), tmp_path / "x.png", scale=2)


@pytest.mark.parametrize("kw", [{}, {"local_ensemble": False}, {"feat_unfold": False}])
def test_banded_latents_match_forward(kw):
    """Latents computed band by band (encoder on slabs with its receptive field of context) give forward's
    output up to float rounding, for every band height; bands start where the output rows need them."""
    from srkit.archs.liif import LIIF

    torch.manual_seed(0)
    net = LIIF("edsr_baseline", encoder_args={"n_resblocks": 2, "n_feats": 8}, hidden=(16, 16), **kw).eval()
    assert net.encoder_context == 6  # head conv + 2 blocks x 2 convs + body-end conv
    lr = torch.rand(2, 3, 23, 9)
    with torch.inference_mode():
        ref = net(lr, (61, 20))
        for band in (1, 2, 5, 22):
            strips = list(net.iter_rows(lr, (61, 20), rows_per_strip=4, band_rows=band))
            ys = [y for y, _ in strips]
            assert ys == sorted(ys) and ys[0] == 0
            out = torch.cat([s for _, s in strips], dim=2)
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_a_band_refuses_queries_outside_it():
    from srkit.archs.liif import LIIF
    from srkit.errors import SrkitError

    torch.manual_seed(0)
    net = LIIF("edsr_baseline", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=(16,)).eval()
    lr = torch.rand(1, 3, 12, 8)
    band = net.latent_band(lr, 4, 8)
    whole = net.precompute(net.encode(lr))
    # rows 4..7 of the band equal those of the whole latent grid
    torch.testing.assert_close(band.hidden, whole.hidden.view(12, 8, -1)[4:8].reshape(32, -1), rtol=0, atol=1e-6)
    coord = torch.tensor([[[0.9, 0.0]]])  # LR row 11
    with pytest.raises(SrkitError, match="outside the latent band 4:8"):
        net.query(band, coord, torch.full((1, 1, 2), 0.05))
