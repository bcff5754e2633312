"""PngStreamWriter: a PNG written strip by strip decodes to the same pixels as the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from srkit.data.io import PngStreamWriter, read_image, write_image
from srkit.errors import SrkitError


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (4, np.uint8), (1, np.uint8), (3, np.uint16),
                                            (4, np.uint16), (1, np.uint16)])
def test_strips_decode_to_the_array(tmp_path, channels, dtype):
    rng = np.random.default_rng(channels)
    peak = 255 if dtype == np.uint8 else 65535
    a = rng.integers(0, peak + 1, size=(37, 23, channels)).astype(dtype)
    a[5:12] = a[4:5]  # some smooth rows so that every filter branch (left / up / upleft) is taken
    path = tmp_path / "s.png"
    w = PngStreamWriter(path, 37, 23, channels, dtype, compress_level=1)
    w._IDAT_BYTES = 64  # many IDAT chunks
    for y0, y1 in ((0, 1), (1, 9), (9, 9), (9, 30), (30, 37)):
        w.write_rows(a[y0:y1] if channels > 1 else a[y0:y1, :, 0])
    assert not path.exists()  # nothing at the destination before close
    w.close()
    back = read_image(path, mode="unchanged")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, a)
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_same_pixels_as_write_image(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, size=(20, 31, 3)).astype(np.uint8)
    write_image(tmp_path / "whole.png", a)
    with PngStreamWriter(tmp_path / "strips.png", 20, 31, 3) as w:
        for y in range(0, 20, 6):
            w.write_rows(a[y : y + 6])
    np.testing.assert_array_equal(read_image(tmp_path / "strips.png"), read_image(tmp_path / "whole.png"))


def test_icc_profile_is_embedded(tmp_path):
    from PIL import Image

    icc = b"fake-icc-profile-bytes" * 10
    a = np.zeros((4, 5, 3), np.uint8)
    with PngStreamWriter(tmp_path / "icc.png", 4, 5, 3, icc_profile=icc) as w:
        w.write_rows(a)
    with Image.open(tmp_path / "icc.png") as im:
        assert im.info["icc_profile"] == icc


def test_incomplete_or_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    w = PngStreamWriter(target, 10, 4, 3)
    w.write_rows(np.zeros((3, 4, 3), np.uint8))
    with pytest.raises(SrkitError, match="only 3 of 10 rows"):
        w.close()
    assert target.read_bytes() == b"old"
    with pytest.raises(RuntimeError):
        with PngStreamWriter(target, 10, 4, 3) as w:
            w.write_rows(np.zeros((3, 4, 3), np.uint8))
            raise RuntimeError("model failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_bad_rows_and_names_are_refused(tmp_path):
    with pytest.raises(SrkitError, match="PNG only"):
        PngStreamWriter(tmp_path / "x.jpg", 4, 4, 3)
    with pytest.raises(SrkitError, match="does not exist"):
        PngStreamWriter(tmp_path / "nope" / "x.png", 4, 4, 3)
    with PngStreamWriter(tmp_path / "x.png", 4, 4, 3) as w:
        with pytest.raises(SrkitError, match=r"expected rows of shape \(n, 4, 3\)"):
            w.write_rows(np.zeros((1, 5, 3), np.uint8))
        with pytest.raises(SrkitError, match="uint8"):
            w.write_rows(np.zeros((1, 4, 3), np.uint16))
        w.write_rows(np.zeros((4, 4, 3), np.uint8))
        with pytest.raises(SrkitError, match="5 rows written to an image of height 4"):
            w.write_rows(np.zeros((1, 4, 3), np.uint8))
