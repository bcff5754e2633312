"""srkit.data.io: file formats and modes, 16-bit PNG, atomic writes, read errors, tensor conversions."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from srkit.data import io as sio
from srkit.data.io import load_image, read_image, to_array, to_tensor, write_image
from srkit.errors import ImageReadError, SrkitError

RNG = np.random.default_rng(1234)


def _rand(h, w, c, dtype=np.uint8):
    return RNG.integers(0, np.iinfo(dtype).max + 1, (h, w, c)).astype(dtype)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]


def _png16_unfiltered(a: np.ndarray, interlaced: bool = False) -> bytes:
    """A 16-bit PNG written the simplest possible way (filter type 0 on every row, optionally Adam7
    interlaced), independent of srkit."""
    h, w, c = a.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    passes = [a[y0::dy, x0::dx] for y0, x0, dy, dx in _ADAM7] if interlaced else [a]
    data = b""
    for sub in passes:
        if sub.size:
            rows = sub.astype(">u2").reshape(sub.shape[0], -1).view(np.uint8)
            data += b"".join(b"\x00" + r.tobytes() for r in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, int(interlaced)))
        + _chunk(b"IDAT", zlib.compress(data))
        + _chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "ext,channels", [(e, c) for e in (".png", ".bmp", ".tif") for c in (1, 3, 4) if (e, c) != (".bmp", 4)]
)
def test_lossless_roundtrip_uint8(tmp_path, ext, channels):
    a = _rand(23, 31, channels)
    p = write_image(tmp_path / f"x{ext}", a)
    b = read_image(p, mode="unchanged")
    assert b.dtype == np.uint8 and b.shape == a.shape
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png16_roundtrip(tmp_path, channels):
    # Smooth + noisy content so every PNG filter type gets chosen somewhere.
    ramp = np.linspace(0, 65535, 40 * 29).reshape(29, 40, 1)
    a = np.clip(ramp + RNG.integers(-300, 300, (29, 40, channels)), 0, 65535).astype(np.uint16)
    a[:5] = _rand(5, 40, channels, np.uint16)
    p = write_image(tmp_path / "x.png", a)
    f = load_image(p)
    assert f.array.dtype == np.uint16 and f.bit_depth == 16
    np.testing.assert_array_equal(f.array, a)
    assert f.has_alpha == (channels == 4)
    # Independent check of the writer: Pillow's own decoder sees the same high bytes (or all 16 bits for gray).
    with Image.open(p) as im:
        ref = np.asarray(im)
    if channels == 1:
        np.testing.assert_array_equal(ref, a[..., 0])
    else:
        np.testing.assert_array_equal(ref, (a >> 8).astype(np.uint8))


@pytest.mark.parametrize("interlaced", [False, True])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_reader_on_independent_file(tmp_path, channels, interlaced):
    a = _rand(13, 11, channels, np.uint16)
    p = tmp_path / "in.png"
    p.write_bytes(_png16_unfiltered(a, interlaced))
    u = read_image(p, mode="unchanged")
    r = read_image(p, mode="rgb")
    assert u.dtype == r.dtype == np.uint16 and r.shape == (13, 11, 3)
    if channels == 1:
        np.testing.assert_array_equal(u, a)
        np.testing.assert_array_equal(r, np.repeat(a, 3, axis=-1))
    elif channels == 2:  # gray + alpha -> RGBA with gray replicated
        np.testing.assert_array_equal(u, np.concatenate([a[..., :1]] * 3 + [a[..., 1:]], axis=-1))
        np.testing.assert_array_equal(r, np.repeat(a[..., :1], 3, axis=-1))
        assert load_image(p).mode == "LA;16"
    else:
        np.testing.assert_array_equal(u, a)
        np.testing.assert_array_equal(r, a[..., :3])


def test_png16_gray_written_by_pillow(tmp_path):
    a = _rand(6, 11, 1, np.uint16)[..., 0]
    Image.fromarray(a).save(tmp_path / "g.png")
    f = load_image(tmp_path / "g.png")
    assert f.array.shape == (6, 11, 1) and f.bit_depth == 16
    np.testing.assert_array_equal(f.array[..., 0], a)


def test_tiff16_gray_roundtrip(tmp_path):
    a = _rand(6, 11, 1, np.uint16)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "g.tif", a), mode="unchanged"), a)


@pytest.mark.parametrize("ext", [".jpg", ".webp"])
def test_lossy_roundtrip_close(tmp_path, ext):
    y, x = np.mgrid[0:48, 0:64]
    a = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    b = read_image(write_image(tmp_path / f"x{ext}", a))
    assert b.shape == a.shape and b.dtype == np.uint8
    assert np.abs(b.astype(int) - a).mean() < 2.0


def test_rgb_mode_conversions(tmp_path):
    gray = _rand(5, 6, 1)
    rgba = _rand(5, 6, 4)
    write_image(tmp_path / "g.png", gray)
    write_image(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(gray, 3, axis=-1))
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])
    assert read_image(tmp_path / "g.png", mode="unchanged").shape == (5, 6, 1)


def test_palette_la_bilevel_cmyk(tmp_path):
    rgb = _rand(8, 8, 3)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", mode="unchanged"), np.asarray(pal.convert("RGB")))
    pal.save(tmp_path / "pt.png", transparency=0)
    u = read_image(tmp_path / "pt.png", mode="unchanged")
    assert u.shape == (8, 8, 4) and set(np.unique(u[..., 3])) <= {0, 255}
    assert (u[..., 3] == 0).any()

    la = np.stack([_rand(8, 8, 1)[..., 0], _rand(8, 8, 1)[..., 0]], axis=-1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    u = read_image(tmp_path / "la.png", mode="unchanged")
    np.testing.assert_array_equal(u, np.stack([la[..., 0]] * 3 + [la[..., 1]], axis=-1))

    bits = (_rand(8, 8, 1)[..., 0] > 127)
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    u = read_image(tmp_path / "b.png", mode="unchanged")
    np.testing.assert_array_equal(u[..., 0], bits.astype(np.uint8) * 255)

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    c = read_image(tmp_path / "c.jpg")
    assert c.shape == (8, 8, 3) and load_image(tmp_path / "c.jpg").mode == "CMYK"
    ref = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    np.testing.assert_array_equal(c, ref)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, orientation):
    a = _rand(4, 7, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    got = read_image(tmp_path / "o.png")
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    np.testing.assert_array_equal(got, want)
    assert got.shape[:2] == ((4, 7) if orientation <= 4 else (7, 4))


@pytest.mark.parametrize("ext,dtype", [(".png", np.uint8), (".png", np.uint16), (".jpg", np.uint8)])
def test_icc_profile_kept(tmp_path, ext, dtype):
    icc = bytes(range(256)) * 3  # opaque bytes: srkit only carries them
    p = write_image(tmp_path / f"x{ext}", _rand(4, 5, 3, dtype), icc_profile=icc)
    assert load_image(p).icc_profile == icc
    assert load_image(write_image(tmp_path / f"y{ext}", _rand(4, 5, 3, dtype))).icc_profile is None


# ---------------------------------------------------------------------------------------------- writing


def test_atomic_write_no_temp_and_failure_keeps_old(tmp_path, monkeypatch):
    dst = tmp_path / "out.png"
    write_image(dst, _rand(4, 4, 3))
    old = dst.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]

    def boom(src, dst_):
        raise OSError("disk full")

    monkeypatch.setattr(sio.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image(dst, _rand(4, 4, 3))
    monkeypatch.undo()
    assert dst.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # temp file removed
    # An encoding error happens before anything is written.
    with pytest.raises(SrkitError, match="alpha"):
        write_image(tmp_path / "out.jpg", _rand(4, 4, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_written_file_mode_follows_umask(tmp_path):
    p = write_image(tmp_path / "m.png", _rand(2, 2, 3))
    old = os.umask(0o022)
    os.umask(old)
    assert (os.stat(p).st_mode & 0o777) == (0o666 & ~old)


def test_write_errors(tmp_path):
    with pytest.raises(SrkitError, match=r"x\.gif.*extension"):
        write_image(tmp_path / "x.gif", _rand(2, 2, 3))
    with pytest.raises(SrkitError, match="float32"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(SrkitError, match="does not exist"):
        write_image(tmp_path / "nope" / "x.png", _rand(2, 2, 3))
    with pytest.raises(SrkitError, match="16-bit.*PNG"):
        write_image(tmp_path / "x.jpg", _rand(2, 2, 3, np.uint16))
    with pytest.raises(SrkitError, match="shape"):
        write_image(tmp_path / "x.png", _rand(2, 2, 2))
    with pytest.raises(SrkitError, match="BMP"):
        write_image(tmp_path / "x.bmp", _rand(2, 2, 4))
    with pytest.raises(SrkitError, match="compress_level"):
        write_image(tmp_path / "x.png", _rand(2, 2, 3), compress_level=10)
    assert list(tmp_path.iterdir()) == []


def test_compress_level_changes_size_not_pixels(tmp_path):
    y, x = np.mgrid[0:64, 0:64]
    a = np.stack([x * 4, y * 4, (x * y) % 256], axis=-1).astype(np.uint16) * 257
    fast = write_image(tmp_path / "f.png", a, compress_level=0)
    small = write_image(tmp_path / "s.png", a, compress_level=9)
    assert small.stat().st_size < fast.stat().st_size
    np.testing.assert_array_equal(read_image(fast), read_image(small))


# ---------------------------------------------------------------------------------------------- reading errors


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere\.png: no such file"):
        read_image(tmp_path / "nothere.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=r"notes\.png: not a recognised image"):
        read_image(p)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_truncated_file(tmp_path, ext):
    a = _rand(64, 80, 3)
    p = write_image(tmp_path / f"t{ext}", a)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=rf"t\{ext}: truncated"):
        read_image(p)


def test_truncated_png16(tmp_path):
    p = write_image(tmp_path / "t.png", _rand(64, 80, 3, np.uint16))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(p)


def test_corrupt_png_data(tmp_path):
    p = write_image(tmp_path / "c.png", _rand(64, 80, 3))
    data = bytearray(p.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 2 : start + 200] = bytes(198)  # wreck the deflate stream
    p.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"c\.png"):
        read_image(p)


def test_pixel_limit(tmp_path, monkeypatch):
    # A header claiming 100000 x 100000 pixels, no data: refused before decoding, with the numbers.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + _chunk(b"IEND", b"")
    )
    with pytest.raises(ImageReadError, match=r"bomb\.png: 100000x100000 = 10,000,000,000 pixels.*SRKIT_MAX_PIXELS"):
        read_image(bomb)
    small = write_image(tmp_path / "s.png", _rand(10, 20, 3))
    with pytest.raises(ImageReadError, match="200 pixels exceeds the limit of 199") as info:
        read_image(small, max_pixels=199)
    from srkit.errors import ImageTooLargeError

    assert isinstance(info.value, ImageTooLargeError)  # callers (the web server's 413) tell it apart by type
    assert read_image(small, max_pixels=200).shape == (10, 20, 3)
    monkeypatch.setenv("SRKIT_MAX_PIXELS", "150")
    with pytest.raises(ImageReadError, match="limit of 150"):
        read_image(small)
    assert read_image(small, max_pixels=0).shape == (10, 20, 3)  # the argument wins; 0 disables
    monkeypatch.setenv("SRKIT_MAX_PIXELS", "none")
    with pytest.raises(ImageReadError, match="truncated"):  # no limit: it gets as far as decoding
        read_image(bomb)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's global guard is restored


def test_bad_mode_argument(tmp_path):
    p = write_image(tmp_path / "x.png", _rand(2, 2, 3))
    with pytest.raises(SrkitError, match="mode"):
        read_image(p, mode="bgr")


# ---------------------------------------------------------------------------------------------- tensors


def test_tensor_roundtrip_exact_uint8_and_uint16():
    a8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=-1)
    t = to_tensor(a8)
    assert t.shape == (1, 3, 16, 16) and t.dtype == torch.float32
    assert float(t.max()) == 1.0 and float(t.min()) == 0.0
    np.testing.assert_array_equal(to_array(t), a8)
    a16 = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1)
    np.testing.assert_array_equal(to_array(to_tensor(a16), dtype=np.uint16), a16)
    assert to_tensor(a16[..., 0]).shape == (1, 1, 256, 256)


def test_to_array_clamps_rounds_and_checks():
    t = torch.tensor([-0.3, 0.0, 0.4 / 255, 0.6 / 255, 254.4 / 255, 1.7, float("nan")]).view(1, 1, 1, 7)
    np.testing.assert_array_equal(to_array(t)[0, :, 0], [0, 0, 0, 1, 254, 255, 0])
    assert to_array(t[0]).shape == (1, 7, 1)
    f = to_array(torch.full((1, 3, 2, 2), 0.25), dtype=np.float32)
    assert f.dtype == np.float32 and f.shape == (2, 2, 3) and (f == 0.25).all()
    with pytest.raises(SrkitError, match="batch of one"):
        to_array(torch.zeros(2, 3, 4, 4))
    with pytest.raises(SrkitError, match="dtype"):
        to_tensor(np.zeros((2, 2, 3), np.int64))
