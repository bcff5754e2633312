"""srkit.data.sets: data root, folder and named-set resolution, errors; the real shared sets when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srkit.data.sets import ImagePair, data_root, list_named_sets, resolve_pairs, train_images
from srkit.errors import SrkitError


def _img(path: Path, h: int = 8, w: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    return path


@pytest.fixture()
def fake_root(tmp_path) -> Path:
    """A miniature data root with the shared layout."""
    root = tmp_path / "data"
    for n in ("a", "b"):
        _img(root / "benchmark" / "Mini" / "HR" / f"{n}.png")
        _img(root / "benchmark" / "Mini" / "LR_bicubic" / "X2" / f"{n}.png", 4, 6)
        _img(root / "benchmark" / "Mini" / "LR_bicubic_swinir" / "X2" / f"{n}x2.png", 4, 6)
        _img(root / "div2k" / "HR" / f"im_{n}.png")
        _img(root / "div2k" / "LR_kernel" / "X4" / f"im_{n}.png", 2, 3)
    _img(root / "train" / "T91" / "HR" / "t1.bmp")
    _img(root / "train" / "BSD200" / "HR" / "1.png")
    _img(root / "train" / "BSD200" / "HR" / "2.png")
    (root / "train" / "BSD200" / "HR" / "readme.txt").write_text("not an image")
    return root


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SRKIT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.setenv("SRKIT_DATA", str(tmp_path / "missing"))
    with pytest.raises(SrkitError, match="SRKIT_DATA=.*missing is not a folder"):
        data_root()


def test_data_root_cwd_fallback(monkeypatch, tmp_path):
    monkeypatch.delenv("SRKIT_DATA", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    assert data_root().resolve() == (tmp_path / "shared" / "data").resolve()


def test_named_set_case_insensitive(fake_root):
    pairs = resolve_pairs("mini", 2, root=fake_root)
    assert pairs == [
        ImagePair("a", fake_root / "benchmark/Mini/HR/a.png", fake_root / "benchmark/Mini/LR_bicubic/X2/a.png"),
        ImagePair("b", fake_root / "benchmark/Mini/HR/b.png", fake_root / "benchmark/Mini/LR_bicubic/X2/b.png"),
    ]
    sym = resolve_pairs("MINI:symmetric", 2, root=fake_root)
    assert [p.lr_path.name for p in sym] == ["ax2.png", "bx2.png"]
    assert list_named_sets(fake_root) == ["Mini", "Mini:symmetric", "DIV2K", "DIV2KRK"]


def test_div2k_specs(fake_root):
    hr_only = resolve_pairs("div2k", 4, root=fake_root)
    assert [(p.name, p.lr_path) for p in hr_only] == [("im_a", None), ("im_b", None)]
    rk = resolve_pairs("DIV2KRK", 4, root=fake_root)
    assert [p.lr_path for p in rk] == [fake_root / "div2k/LR_kernel/X4/im_a.png", fake_root / "div2k/LR_kernel/X4/im_b.png"]
    with pytest.raises(SrkitError, match="scale 4 only"):
        resolve_pairs("DIV2KRK", 2, root=fake_root)


def test_named_set_errors(fake_root):
    with pytest.raises(SrkitError, match=r"unknown image set 'Set99'.*Mini"):
        resolve_pairs("Set99", 2, root=fake_root)
    with pytest.raises(SrkitError, match=r"no LR files for x3 .*LR_bicubic/X3"):
        resolve_pairs("Mini", 3, root=fake_root)
    with pytest.raises(SrkitError, match="unknown variant"):
        resolve_pairs("Mini:wrap", 2, root=fake_root)
    with pytest.raises(SrkitError, match="whole number"):
        resolve_pairs("Mini", 2.5, root=fake_root)
    (fake_root / "benchmark/Mini/LR_bicubic/X2/b.png").unlink()
    with pytest.raises(SrkitError, match=r"no LR file for .*HR/b\.png in .*LR_bicubic/X2"):
        resolve_pairs("Mini", 2, root=fake_root)


def test_folder_specs(tmp_path):
    ds = tmp_path / "myset"
    _img(ds / "HR" / "x.png")
    _img(ds / "HR" / "y.jpg")
    assert [(p.name, p.lr_path) for p in resolve_pairs(ds, 2)] == [("x", None), ("y", None)]  # no LR folder
    _img(ds / "LR_bicubic" / "X2" / "x.png", 4, 6)
    _img(ds / "LR_bicubic" / "X2" / "yx2.png", 4, 6)  # DIV2K-style <stem>x<s> naming
    pairs = resolve_pairs(str(ds), 2)
    assert [p.lr_path.name for p in pairs] == ["x.png", "yx2.png"]
    assert all(p.lr_path is None for p in resolve_pairs(str(ds), 3))  # no X3: LR made on the fly
    plain = tmp_path / "plain"
    _img(plain / "z.bmp")
    assert [p.hr_path for p in resolve_pairs(plain, 4)] == [plain / "z.bmp"]


def test_folder_errors(tmp_path):
    with pytest.raises(SrkitError, match=r"image folder .*nothing does not exist"):
        resolve_pairs(tmp_path / "nothing", 2)
    (tmp_path / "empty" / "HR").mkdir(parents=True)
    with pytest.raises(SrkitError, match=r"empty/HR holds no images"):
        resolve_pairs(tmp_path / "empty", 2)


def test_train_images(fake_root):
    files = train_images(root=fake_root)
    assert [f.name for f in files] == ["t1.bmp", "1.png", "2.png"]
    assert [f.name for f in train_images("bsd200", root=fake_root)] == ["1.png", "2.png"]
    assert len(train_images(["T91", "DIV2K"], root=fake_root)) == 3
    assert [f.name for f in train_images([fake_root / "train" / "BSD200"])] == ["1.png", "2.png"]
    with pytest.raises(SrkitError, match=r"unknown training set 'T92'.*available: BSD200, T91"):
        train_images("T92", root=fake_root)


# ------------------------------------------------------------------------------------- the real shared data


@pytest.mark.shared_data
@pytest.mark.parametrize("name,count", [("Set5", 5), ("Set14", 14), ("BSD100", 100)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shared_benchmark_sets(shared_data, name, count, scale):
    pairs = resolve_pairs(name, scale, root=shared_data)
    assert len(pairs) == count
    for p in pairs:
        assert p.hr_path.stem == p.lr_path.stem == p.name
        with Image.open(p.hr_path) as hr, Image.open(p.lr_path) as lr:
            assert lr.size == (hr.size[0] // scale, hr.size[1] // scale), p.name


@pytest.mark.shared_data
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_shared_set5_symmetric(shared_data, scale):
    pairs = resolve_pairs("set5:symmetric", scale, root=shared_data)
    assert [p.name for p in pairs] == ["baby", "bird", "butterfly", "head", "woman"]
    for p in pairs:
        assert p.lr_path.name == f"{p.name}x{scale}.png" and "LR_bicubic_swinir" in str(p.lr_path)
        with Image.open(p.hr_path) as hr, Image.open(p.lr_path) as lr:
            assert lr.size == (hr.size[0] // scale, hr.size[1] // scale)


@pytest.mark.shared_data
def test_shared_div2k_and_training(shared_data):
    assert len(resolve_pairs("DIV2K", 4, root=shared_data)) == 12
    rk = resolve_pairs("DIV2KRK", 4, root=shared_data)
    assert len(rk) == 12 and all(p.lr_path.name == p.hr_path.name for p in rk)
    assert len(train_images(("T91", "BSD200"), root=shared_data)) == 291
    assert {"Set5", "Set14", "BSD100", "Set5:symmetric", "DIV2K", "DIV2KRK"} <= set(list_named_sets(shared_data))
