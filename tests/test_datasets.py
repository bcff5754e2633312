"""srkit.data.datasets / augment: aligned crops, consistent augmentation, (seed, epoch, index) determinism."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srkit.data.augment import Augment, all_augments, apply_augment, random_augment, undo_augment
from srkit.data.datasets import PairedImageDataset, SingleImageDataset
from srkit.data.sets import resolve_pairs
from srkit.errors import SrkitError

SCALE = 3


def _nearest_up(a: np.ndarray, s: int) -> np.ndarray:
    return a.repeat(s, axis=0).repeat(s, axis=1)


def _u8(t: torch.Tensor) -> np.ndarray:
    """float CHW in [0, 1] made from uint8 -> uint8 HWC (exact)."""
    return torch.round(t * 255).to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.fixture()
def nearest_set(tmp_path) -> Path:
    """HR = nearest upsampling of a random LR, so any misaligned LR/HR crop shows up as a mismatch."""
    rng = np.random.default_rng(7)
    root = tmp_path / "nn"
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / f"X{SCALE}").mkdir(parents=True)
    for i, (h, w) in enumerate([(20, 26), (17, 23), (24, 24)]):
        lr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        Image.fromarray(lr).save(root / "LR_bicubic" / f"X{SCALE}" / f"im{i}.png")
        Image.fromarray(_nearest_up(lr, SCALE)).save(root / "HR" / f"im{i}.png")
    return root


@pytest.mark.parametrize("augment", [False, True])
def test_crops_align_lr_and_hr(nearest_set, augment):
    ds = PairedImageDataset(nearest_set, SCALE, patch_size=12, augment=augment, repeat=4, seed=3)
    assert len(ds) == 12
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            lr, hr = _u8(item["lr"]), _u8(item["hr"])
            assert lr.shape == (4, 4, 3) and hr.shape == (12, 12, 3)
            np.testing.assert_array_equal(hr, _nearest_up(lr, SCALE))
            assert item["name"] == f"im{i % 3}"


def test_crop_position_comes_from_seed_epoch_index(nearest_set):
    ds = PairedImageDataset(nearest_set, SCALE, patch_size=9, seed=5)
    ds.set_epoch(2)
    full_lr, full_hr = ds.load_pair(1)
    item = ds[1]
    rng = np.random.default_rng([5, 2, 1])
    top, left = int(rng.integers(0, full_lr.shape[0] - 3 + 1)), int(rng.integers(0, full_lr.shape[1] - 3 + 1))
    np.testing.assert_array_equal(_u8(item["lr"]), full_lr[top : top + 3, left : left + 3])
    np.testing.assert_array_equal(_u8(item["hr"]), full_hr[top * 3 : top * 3 + 9, left * 3 : left * 3 + 9])


def test_determinism(nearest_set):
    a = PairedImageDataset(nearest_set, SCALE, patch_size=6, augment=True, repeat=3, seed=11)
    b = PairedImageDataset(nearest_set, SCALE, patch_size=6, augment=True, repeat=3, seed=11, cache=False)
    other_seed = PairedImageDataset(nearest_set, SCALE, patch_size=6, augment=True, repeat=3, seed=12)
    b.set_epoch(4)
    a.set_epoch(4)
    order = list(range(len(a)))
    first = [a[i]["hr"] for i in order]
    # Any access order, any instance, cached or not: item i of epoch 4 is the same.
    for i in reversed(order):
        assert torch.equal(b[i]["hr"], first[i])
        assert torch.equal(a[(4, i)]["hr"], first[i])
    a.set_epoch(5)
    assert any(not torch.equal(a[i]["hr"], first[i]) for i in order)
    other_seed.set_epoch(4)
    assert any(not torch.equal(other_seed[i]["hr"], first[i]) for i in order)
    # The global RNGs are neither used nor disturbed.
    np.random.seed(0)
    torch.manual_seed(0)
    x = a[0]["hr"]
    np.random.seed(99)
    torch.manual_seed(99)
    assert torch.equal(a[0]["hr"], x)


def test_dataloader_workers_and_pickle(nearest_set):
    ds = PairedImageDataset(nearest_set, SCALE, patch_size=6, augment=True, repeat=2, seed=1).preload()
    ds.set_epoch(3)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[4]["lr"], ds[4]["lr"])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    got = torch.cat([b["hr"] for b in batches])
    want = torch.stack([ds[i]["hr"] for i in range(len(ds))])
    assert got.shape == (6, 3, 6, 6) and torch.equal(got, want)


def test_whole_images_hr_cropped_to_multiple_and_gray_to_rgb(tmp_path):
    root = tmp_path / "g"
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / "X3").mkdir(parents=True)
    hr = np.random.default_rng(0).integers(0, 256, (11, 14)).astype(np.uint8)
    Image.fromarray(hr).save(root / "HR" / "g.png")  # 8-bit grayscale
    Image.fromarray(hr[:3, :4]).save(root / "LR_bicubic" / "X3" / "g.png")
    item = PairedImageDataset(root, 3)[0]
    assert item["hr"].shape == (3, 9, 12) and item["lr"].shape == (3, 3, 4)
    np.testing.assert_array_equal(_u8(item["hr"]), np.repeat(hr[:9, :12, None], 3, axis=-1))


def test_lr_made_on_the_fly_is_matlab_bicubic(tmp_path):
    resize = pytest.importorskip("srkit.data.resize")
    hr = np.random.default_rng(2).integers(0, 256, (26, 31, 3)).astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "a.png")
    for border in ("symmetric", "replicate"):
        ds = PairedImageDataset([tmp_path / "a.png"], 4, lr_border=border)
        item = ds[0]
        want = resize.imresize(hr[:24, :28], scale=1 / 4, border=border)
        assert want.dtype == np.uint8 and want.shape == (6, 7, 3)
        np.testing.assert_array_equal(_u8(item["lr"]), want)
        np.testing.assert_array_equal(_u8(item["hr"]), hr[:24, :28])


def test_errors(tmp_path, nearest_set):
    lr_file = nearest_set / "LR_bicubic" / f"X{SCALE}" / "im1.png"
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(lr_file)
    ds = PairedImageDataset(nearest_set, SCALE)
    with pytest.raises(SrkitError, match=r"LR .*im1\.png is 5x5 but HR .*im1\.png \(69x51.*needs 23x17"):
        ds[1]
    with pytest.raises(SrkitError, match="not a multiple of the scale"):
        PairedImageDataset(nearest_set, SCALE, patch_size=10)
    with pytest.raises(SrkitError, match="no training image is at least 81x81"):
        PairedImageDataset(nearest_set, SCALE, patch_size=81)
    with pytest.raises(SrkitError, match="lr_border"):
        PairedImageDataset(nearest_set, SCALE, lr_border="circular")
    with pytest.raises(SrkitError, match="empty"):
        PairedImageDataset([], SCALE)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_images_smaller_than_the_patch_are_left_out_with_a_warning(nearest_set):
    # HR sizes are 60x78, 51x69 and 72x72: only im2 holds a 63x63 patch
    with pytest.warns(UserWarning, match=r"2 image\(s\) smaller than the 63px patch left out: im0, im1"):
        ds = PairedImageDataset(nearest_set, SCALE, patch_size=63)
    assert [p.name for p in ds.pairs] == ["im2"]
    assert ds[0]["hr"].shape == (3, 63, 63)


def test_single_image_dataset(nearest_set):
    ds = SingleImageDataset(nearest_set / "HR")
    assert len(ds) == 3
    item = ds[2]
    assert item["lr"].shape == (3, 72, 72) and item["name"] == "im2" and item["path"].endswith("im2.png")


# ------------------------------------------------------------------------------------------- augment


def test_augment_numpy_and_torch_agree_and_undo():
    a = np.arange(2 * 3 * 5 * 2).reshape(3, 5, 4) % 251
    a = a.astype(np.uint8)
    t = torch.from_numpy(a).permute(2, 0, 1)[None]
    seen = set()
    for aug in all_augments():
        out = apply_augment(a, aug)
        np.testing.assert_array_equal(apply_augment(t, aug)[0].permute(1, 2, 0).numpy(), out)
        np.testing.assert_array_equal(undo_augment(out, aug), a)
        assert torch.equal(undo_augment(apply_augment(t, aug), aug), t)
        seen.add(out.tobytes() + bytes(out.shape))
    assert len(seen) == 8  # the 8 orientations are all different
    assert all_augments()[0] == Augment()
    np.testing.assert_array_equal(apply_augment(a, Augment(transpose=True)), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(apply_augment(a, Augment(hflip=True)), a[:, ::-1])


def test_random_augment_draws_fixed_count():
    r1, r2 = np.random.default_rng(0), np.random.default_rng(0)
    random_augment(r1)
    aug = random_augment(r2, hflip=False, vflip=False, rot90=False)
    assert aug == Augment()
    assert r1.random() == r2.random()  # both consumed exactly three draws
    counts = np.zeros(3)
    rng = np.random.default_rng(1)
    for _ in range(400):
        g = random_augment(rng)
        counts += [g.hflip, g.vflip, g.transpose]
    assert np.all((counts > 150) & (counts < 250))


# ------------------------------------------------------------------------------------------- shared data


@pytest.mark.shared_data
def test_shared_set5_and_div2krk(shared_data):
    ds = PairedImageDataset(resolve_pairs("Set5", 4, root=shared_data), 4)
    assert len(ds) == 5
    for i in range(5):
        item = ds[i]
        assert item["lr"].dtype == torch.float32 and item["lr"].shape[0] == 3
        assert item["hr"].shape[1:] == (item["lr"].shape[1] * 4, item["lr"].shape[2] * 4)
    rk = PairedImageDataset(resolve_pairs("DIV2KRK", 4, root=shared_data), 4, patch_size=192, augment=True)
    item = rk[0]  # the DIV2KRK LR files are RGBA: alpha dropped
    assert item["lr"].shape == (3, 48, 48) and item["hr"].shape == (3, 192, 192)
