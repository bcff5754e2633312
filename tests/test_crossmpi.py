"""Cross-MPI: PIL-exact resampling, plane-sweep geometry, the network's structure and invariants, the converter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from srkit import archs
from srkit.archs import plane_sweep as ps
from srkit.archs.crossmpi import (
    Conv,
    CrossMPI,
    official_pil_downsample,
    pil_bicubic_resize_uint8,
    tf_name,
    tf_variable_shapes,
    upsample_lr,
)
from srkit.convert.common import convert_state_dict
from srkit.convert.crossmpi import convert_npz, read_npz
from srkit.errors import CheckpointError, ConfigError, SrkitError

OFFICIAL_PARAMS = 3_807_627


# --- PIL bicubic on uint8 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("src, dst", [((64, 128), (16, 32)), ((37, 53), (9, 13)), ((6, 12), (48, 96)),
                                      ((30, 50), (60, 100)), ((17, 23), (17, 40))])
def test_pil_bicubic_uint8_is_bit_exact(src, dst):
    a = np.random.default_rng(sum(src + dst)).integers(0, 256, (*src, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(a).resize(dst[::-1], Image.BICUBIC))
    got = pil_bicubic_resize_uint8(torch.from_numpy(a).permute(2, 0, 1)[None], dst)[0].permute(1, 2, 0).numpy()
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_official_downsample_matches_the_numpy_pil_recipe():
    # The official img_pil_downsampling on [-1, 1] float32: truncation to uint8, PIL, back to [-1, 1].
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    got = official_pil_downsample(x, 4)
    for i in range(2):
        arr = x[i].permute(1, 2, 0).numpy()
        u8 = ((arr + 1) / 2.0 * 255.0).astype("uint8")
        down = np.asarray(Image.fromarray(u8).resize((12, 8), Image.BICUBIC), dtype=np.float32) / 255.0 * 2 - 1
        assert np.array_equal(got[i].permute(1, 2, 0).numpy(), down)


def test_official_uint8_quirk_is_reproduced():
    # Officially LR-up (v / 255) goes to [-1, 1] and back to uint8 by truncation in float32; levels 1..63
    # come back one lower (e.g. 10 -> 9), higher levels and 0 survive. srkit does the same float32 steps.
    levels = torch.tensor([0, 1, 10, 63, 64, 200, 255], dtype=torch.float32)
    img = (levels / 255.0).reshape(-1, 1, 1, 1).expand(-1, 3, 8, 8)
    got = official_pil_downsample(img * 2 - 1, 4)  # a flat image stays flat through the bicubic
    back = torch.round((got[:, 0, 0, 0] + 1) / 2 * 255)
    assert back.tolist() == [0, 0, 9, 62, 64, 200, 255]


def test_upsample_lr_is_pil_x8_on_uint8():
    lr = torch.rand(1, 3, 5, 7)
    got = upsample_lr(lr, 8)
    u8 = (lr[0].permute(1, 2, 0).numpy() * 255.0).astype("uint8")
    want = np.asarray(Image.fromarray(u8).resize((56, 40), Image.BICUBIC), dtype=np.float32) / 255.0
    assert got.shape == (1, 3, 40, 56)
    assert np.array_equal(got[0].permute(1, 2, 0).numpy(), want)


# --- geometry ------------------------------------------------------------------------------------------------


def test_inverse_depths_are_uniform_in_inverse_depth_and_far_first():
    d = ps.inverse_depths(1.0, 100.0, 32)
    assert len(d) == 32 and d[0] == 100.0 and d[-1] == 1.0
    assert all(a > b for a, b in zip(d, d[1:]))
    inv = np.diff(1.0 / np.array(d))
    assert np.allclose(inv, inv[0], rtol=1e-9) and inv[0] > 0
    assert np.isclose(inv[0], (1.0 - 0.01) / 31)
    with pytest.raises(SrkitError, match="min_depth"):
        ps.inverse_depths(5.0, 2.0, 4)


def _rot(ax: float, ay: float, az: float) -> torch.Tensor:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    return rz @ ry @ rx


def _k(f: float, cx: float, cy: float) -> torch.Tensor:
    return torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=torch.float64)


def test_identity_pose_gives_identity_warps():
    k = _k(60.0, 31.5, 23.5)
    h = ps.plane_homographies(ps.inverse_depths(1, 100, 5), k, k, torch.eye(4, dtype=torch.float64))
    assert h.shape == (1, 5, 3, 3)
    assert torch.allclose(h, torch.eye(3, dtype=torch.float64).expand(1, 5, 3, 3), atol=1e-12)
    img = torch.rand(2, 3, 48, 64)
    psv = ps.plane_sweep_volume(img, ps.inverse_depths(1, 100, 5), torch.eye(4), k)
    assert psv.shape == (2, 5, 3, 48, 64)
    assert torch.allclose(psv, img[:, None].expand_as(psv), atol=1e-5)


def test_homography_equals_pointwise_projection_and_relative_pose():
    # The official warp back-projects each target pixel at depth d, applies the pose, projects with K_ref.
    tgt_w2c = torch.eye(4, dtype=torch.float64)
    tgt_w2c[:3, :3] = _rot(0.05, -0.1, 0.02)
    tgt_w2c[:3, 3] = torch.tensor([0.3, -0.2, 0.1])
    ref_w2c = torch.eye(4, dtype=torch.float64)
    ref_w2c[:3, :3] = _rot(-0.02, 0.08, 0.01)
    ref_w2c[:3, 3] = torch.tensor([-0.5, 0.1, 0.2])
    pose = ps.relative_pose(tgt_w2c[:3], ref_w2c)
    assert torch.allclose(pose @ tgt_w2c, ref_w2c, atol=1e-12)
    k_t, k_r = _k(80.0, 40.0, 30.0), _k(120.0, 62.0, 41.0)
    depths = [7.0, 2.5]
    h = ps.plane_homographies(depths, k_t, k_r, pose)[0]
    p = torch.tensor([[3.0, 5.0, 1.0], [70.0, 12.0, 1.0], [40.0, 59.0, 1.0]], dtype=torch.float64).t()
    for i, d in enumerate(depths):
        cam = torch.linalg.inv(k_t) @ p * d
        ref_cam = pose[:3, :3] @ cam + pose[:3, 3:]
        proj = k_r @ ref_cam
        want = proj[:2] / proj[2:]
        got = h[i] @ p
        assert torch.allclose(got[:2] / got[2:], want, atol=1e-9)


def _texture(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Smooth but structured colour texture on the plane (world units), values in [0.1, 0.9].
    r = 0.5 + 0.2 * torch.sin(2.1 * x + 0.3) + 0.2 * torch.cos(1.7 * y)
    g = 0.5 + 0.4 * torch.sin(1.3 * x - 1.9 * y)
    b = 0.5 + 0.2 * torch.cos(2.7 * x) * torch.sin(2.3 * y + 1.0) + 0.2 * torch.sin(0.9 * (x + y))
    return torch.stack([r, g, b])


def _render_plane(k: torch.Tensor, w2c: torch.Tensor, depth: float, h: int, w: int) -> torch.Tensor:
    """Ray-cast the textured plane Z_world = depth into a camera (pixel centres at integers)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3).t()
    rot, t = w2c[:3, :3], w2c[:3, 3:]
    centre = -rot.t() @ t  # camera centre in world coordinates
    rays = rot.t() @ torch.linalg.inv(k) @ pix
    s = (depth - centre[2]) / rays[2]
    pts = centre + rays * s
    return _texture(pts[0], pts[1]).reshape(3, h, w).float()


def test_plane_sweep_recovers_a_fronto_parallel_plane():
    h, w = 48, 64
    k = _k(50.0, 31.5, 23.5)
    depths = ps.inverse_depths(1.0, 100.0, 8)
    d0 = depths[5]  # a plane of the sweep, about 2.4 units away
    tgt_w2c = torch.eye(4, dtype=torch.float64)  # the world is the target camera's frame
    ref_w2c = torch.eye(4, dtype=torch.float64)
    ref_w2c[:3, :3] = _rot(0.01, -0.03, 0.005)
    ref_w2c[:3, 3] = torch.tensor([-0.25, 0.04, 0.02])
    target = _render_plane(k, tgt_w2c, d0, h, w)
    ref = _render_plane(k, ref_w2c, d0, h, w)[None]
    psv = ps.plane_sweep_volume(ref, depths, ps.relative_pose(tgt_w2c, ref_w2c), k)[0]  # (D, 3, H, W)
    # Valid region: target pixels whose plane point lands inside the reference at the true depth.
    hom = ps.plane_homographies([d0], k, k, ps.relative_pose(tgt_w2c, ref_w2c))[0, 0]
    pix = ps.pixel_grid(h, w) @ hom.t()
    xy = pix[..., :2] / pix[..., 2:]
    valid = (xy[..., 0] >= 0) & (xy[..., 0] <= w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= h - 1)
    assert valid.float().mean() > 0.6
    errors = [(psv[i] - target).abs().mean(0)[valid].mean().item() for i in range(len(depths))]
    assert errors[5] < 0.002, errors
    assert min(e for i, e in enumerate(errors) if i != 5) > 10 * errors[5], errors
    assert int(np.argmin(errors)) == 5
    # Outside the reference the PSV holds the fill value (official: 0 in [-1, 1]).
    far_outside = (xy[..., 0] < -1) | (xy[..., 0] > w) | (xy[..., 1] < -1) | (xy[..., 1] > h)
    assert far_outside.any() and torch.all(psv[5][:, far_outside] == 0.5)


def test_fill_half_equals_the_official_zero_padding_in_minus_one_one():
    img = torch.rand(1, 3, 20, 30)
    k = _k(30.0, 14.5, 9.5)
    pose = torch.eye(4)
    pose[0, 3] = 0.8
    depths = [1.5, 4.0]
    ours = ps.plane_sweep_volume(img, depths, pose, k)
    official = ps.plane_sweep_volume(img * 2 - 1, depths, pose, k, fill=0.0)
    assert torch.allclose(ours * 2 - 1, official, atol=1e-6)
    # A half-pixel step past the border mixes the border pixel and the fill.
    coords = torch.tensor([[[[-0.5, 4.0]]]])
    got = ps.sample_bilinear(img, coords, fill=0.5)
    assert torch.allclose(got[0, :, 0, 0], 0.5 * img[0, :, 4, 0] + 0.25, atol=1e-6)


def _tf_resampler(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """tf.contrib.resampler's bilinear rule, NHWC: zero unless -1 < x < W and -1 < y < H, neighbours
    outside the image count as zero."""
    b, h, w, c = img.shape
    x, y = coords[..., 0], coords[..., 1]
    fx, fy = torch.floor(x), torch.floor(y)
    dx, dy = fx + 1 - x, fy + 1 - y
    out = torch.zeros(*x.shape, c, dtype=img.dtype)
    for ox, oy, wgt in ((0, 0, dx * dy), (0, 1, dx * (1 - dy)), (1, 0, (1 - dx) * dy), (1, 1, (1 - dx) * (1 - dy))):
        px, py = (fx + ox).long(), (fy + oy).long()
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        vals = img[torch.arange(b)[:, None, None], py.clamp(0, h - 1), px.clamp(0, w - 1)]
        out = out + (wgt * inside)[..., None] * vals
    valid = (x > -1) & (y > -1) & (x < w) & (y < h)
    return out * valid[..., None]


def test_psv_equals_the_official_projective_inverse_warp():
    # geometry/projector.py plane_sweep: back-project target pixels at depth d with intrinsics[:, :3],
    # apply the pose, project with intrinsics[:, 3:], divide by (z + 1e-10), resample the [-1, 1] image.
    h, w = 24, 40
    k_t, k_r = _k(35.0, 19.5, 11.5), _k(42.0, 21.0, 12.5)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = _rot(0.03, -0.05, 0.02)
    pose[:3, 3] = torch.tensor([-0.4, 0.1, 0.05])
    depths = ps.inverse_depths(1.0, 100.0, 6)
    img = torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ours = ps.plane_sweep_volume(img, depths, pose, k_t, k_r)
    xs, ys = torch.meshgrid(torch.linspace(0, w - 1, w, dtype=torch.float64),
                            torch.linspace(0, h - 1, h, dtype=torch.float64), indexing="xy")
    pix = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)
    k4 = torch.eye(4, dtype=torch.float64)
    k4[:3, :3] = k_r
    src = img.permute(0, 2, 3, 1) * 2 - 1
    for i, d in enumerate(depths):
        cam = torch.cat([torch.linalg.inv(k_t) @ pix * d, torch.ones(1, h * w, dtype=torch.float64)])
        proj = k4 @ pose @ cam
        coords = (proj[:2] / (proj[2:3] + 1e-10)).t().reshape(1, h, w, 2)
        official = _tf_resampler(src, coords)
        # Equal to rounding: the homography is scaled so that the official +1e-10 guard acts the same.
        assert torch.allclose(ours[:, i].permute(0, 2, 3, 1) * 2 - 1, official, atol=1e-12), i
    assert (ours == 0.5).any() and (ours != 0.5).any()


# --- network ---------------------------------------------------------------------------------------------------


def _tiny(d: int = 4) -> CrossMPI:
    torch.manual_seed(0)
    return CrossMPI(num_planes=d).eval()


def test_official_parameter_count():
    with torch.device("meta"):
        net = CrossMPI()
    n = sum(p.numel() for p in net.parameters())
    print(f"CrossMPI official configuration: {n} parameters")
    # By hand: feature extractor 531,656; attention + guided upsampling 3,126,144; fusion 149,827.
    assert sum(p.numel() for p in net.f_extract_net.parameters()) == 531_656
    assert sum(p.numel() for p in net.net.parameters()) == 3_126_144
    assert sum(p.numel() for p in net.fuse_part.parameters()) == 149_827
    assert n == OFFICIAL_PARAMS


def test_initialisation_is_tf_slims():
    net = CrossMPI(num_planes=4)
    w = net.net.guid_lv0_res.get_submodule("in").weight  # 3x3, 15 -> 64 channels
    bound = math.sqrt(6.0 / (9 * 15 + 9 * 64))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert all(torch.all(m.bias == 0) for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_shapes_and_attention_sums_to_one():
    net = _tiny(4)
    lr_up, psv = torch.rand(2, 3, 64, 128), torch.rand(2, 4, 3, 64, 128)
    with torch.no_grad():
        out = net(lr_up, psv)
    assert out.sr.shape == (2, 3, 64, 128) and out.hr_syn.shape == (2, 3, 64, 128)
    assert out.init_syn.shape == (2, 3, 16, 32)
    assert out.attention.shape == (2, 4, 64, 128) and out.init_attention.shape == (2, 4, 16, 32)
    for a in (out.attention, out.init_attention):
        assert a.min() >= 0
        assert torch.allclose(a.sum(1), torch.ones(()), atol=1e-6)
    assert 0 <= out.sr.min() and out.sr.max() <= 1  # tanh, mapped to [0, 1]
    # hr_syn is a convex combination of the planes, init_syn of the shrunk planes.
    assert torch.all(out.hr_syn >= psv.min(1).values - 1e-6) and torch.all(out.hr_syn <= psv.max(1).values + 1e-6)


def test_identical_planes_give_that_image_back():
    net = _tiny(4)
    x = torch.rand(1, 3, 32, 64)
    psv = x[:, None].expand(1, 4, 3, 32, 64).contiguous()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 64), psv)
    assert torch.allclose(out.hr_syn, x, atol=1e-6)
    assert torch.allclose(out.init_syn, (official_pil_downsample(x * 2 - 1) + 1) / 2, atol=1e-6)


def test_gradients_reach_every_parameter_and_no_two_aspp_merges():
    net = CrossMPI(num_planes=3, feat_ch=16, att_ch=8, fuse_ch=8)
    out = net(torch.rand(1, 3, 16, 32), torch.rand(1, 3, 3, 16, 32))
    (out.sr.mean() + out.init_syn.mean() + out.hr_syn.mean()).backward()
    assert all(p.grad is not None for p in net.parameters())
    names = set(tf_variable_shapes())
    # One shared 1x1 merge conv for the three ASPP steps (the official AUTO_REUSE of scope aspp0/co).
    assert "f_extract_net/aspp0/co/weights" in names
    assert not any(n.startswith(("f_extract_net/aspp1", "f_extract_net/aspp2")) for n in names)


def test_tf_same_padding_of_strided_convs():
    torch.manual_seed(1)
    conv = Conv(2, 3, stride=2)
    even = torch.rand(1, 2, 8, 10)
    want = F.conv2d(F.pad(even, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)  # TF: extra pad bottom/right
    assert torch.allclose(conv(even), want, atol=1e-6) and want.shape[-2:] == (4, 5)
    odd = torch.rand(1, 2, 7, 9)
    want = F.conv2d(F.pad(odd, (1, 1, 1, 1)), conv.weight, conv.bias, stride=2)
    assert torch.allclose(conv(odd), want, atol=1e-6) and want.shape[-2:] == (4, 5)
    dil = Conv(2, 2, dilation=8)
    assert dil(even).shape == even.shape


def test_input_errors_and_describe():
    net = _tiny(4)
    with pytest.raises(SrkitError, match="4 planes"):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 5, 3, 16, 16))
    with pytest.raises(SrkitError, match="multiples of 4"):
        net(torch.rand(1, 3, 18, 16), torch.rand(1, 4, 3, 18, 16))
    with pytest.raises(SrkitError, match="psv"):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 4, 3, 16, 20))
    with pytest.raises(SrkitError, match="plane-sweep volume"):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 128, 128))  # (lr, ref) as the generic upscaler calls
    d = archs.describe("crossmpi")
    assert d.needs_ref and d.scales == (8,) and not d.continuous
    assert archs.build("crossmpi", num_planes=4).num_planes == 4


def test_super_resolve_with_identity_pose():
    net = _tiny(4)
    lr, ref = torch.rand(1, 3, 4, 8), torch.rand(1, 3, 32, 64)
    k = _k(40.0, 31.5, 15.5)
    with torch.no_grad():
        out = net.super_resolve(lr, ref, torch.eye(4), k)
    assert out.sr.shape == (1, 3, 32, 64)
    # Same camera: every plane is the reference itself, so hr_syn is the reference.
    assert torch.allclose(out.hr_syn, ref, atol=1e-4)


# --- converter -------------------------------------------------------------------------------------------------


def test_tf_names_of_the_official_checkpoint():
    shapes = tf_variable_shapes()
    assert len(shapes) == 238
    assert shapes["f_extract_net/conv_in/weights"] == (3, 3, 3, 64)
    assert shapes["f_extract_net/module0/aspp2/c3d8/weights"] == (3, 3, 64, 64)
    assert shapes["f_extract_net/aspp0/co/weights"] == (1, 1, 192, 64)
    assert shapes["f_extract_net/res0/co/biases"] == (64,)
    assert shapes["f_extract_net/conv_out/weights"] == (1, 1, 64, 8)
    assert shapes["net/attention_out_0/weights"] == (3, 3, 32, 64)
    assert shapes["net/attention_out/weights"] == (1, 1, 64, 32)
    assert shapes["net/guid_lv0_res/in/weights"] == (3, 3, 99, 64)
    assert shapes["net/guid_lv0_res/b2/c3/biases"] == (64,)
    assert shapes["net/guid_lv2_down/weights"] == (3, 3, 64, 64)
    assert shapes["net/a_lv2_res0/in/weights"] == (3, 3, 32, 64)
    assert shapes["net/a_lv0_res_com0/in/weights"] == (3, 3, 128, 64)
    assert shapes["net/a_out1/weights"] == (1, 1, 64, 32)
    assert shapes["fuse_part/conv1_1/weights"] == (3, 3, 64, 32)
    assert shapes["fuse_part/conv2_1/b5/c2/weights"] == (3, 3, 32, 32)
    assert shapes["fuse_part/sr_output/weights"] == (1, 1, 32, 3)
    assert tf_name("net.guid_lv0_res.in.weight") == "net/guid_lv0_res/in/weights"


def _random_npz(path, **kwargs) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in tf_variable_shapes(**kwargs).items()}
    np.savez(path, **arrays)
    return arrays


def test_convert_npz_round_trip(tmp_path):
    f = tmp_path / "official.npz"
    arrays = _random_npz(f)
    conv = convert_npz(f)
    assert conv.arch == "crossmpi"
    assert conv.arch_kwargs == {"num_planes": 32, "feat_ch": 64, "att_ch": 64, "fuse_ch": 32}
    sd = conv.net.state_dict()
    assert len(sd) == len(arrays)
    for key, t in sd.items():
        a = torch.from_numpy(arrays[tf_name(key)])
        assert torch.equal(t, a.permute(3, 2, 0, 1) if a.dim() == 4 else a), key
    # One spot check written out by hand: HWIO [ky, kx, cin, cout] -> OIHW [cout, cin, ky, kx].
    w = arrays["net/guid_lv0_res/in/weights"]
    assert sd["net.guid_lv0_res.in.weight"][5, 98, 0, 2].item() == w[0, 2, 98, 5]
    # The table of srkit.convert (what `srkit convert --arch crossmpi` runs) gives the same.
    again = convert_state_dict(read_npz(f), "crossmpi")
    assert set(again.state_dict) == set(sd) and torch.equal(again.state_dict["fuse_part.sr_output.weight"],
                                                              sd["fuse_part.sr_output.weight"])
    assert conv.descriptor.needs_ref and conv.descriptor.scales == (8,)


def test_module_command_writes_a_loadable_model_file(tmp_path, capsys):
    from srkit.convert.crossmpi import main
    from srkit.model_file import load_model

    f = tmp_path / "small.npz"
    arrays = _random_npz(f, num_planes=4, feat_ch=16, att_ch=8, fuse_ch=8)
    assert main([str(f), "-o", str(tmp_path / "m.safetensors")]) == 0
    assert "m.safetensors" in capsys.readouterr().out
    model = load_model(tmp_path / "m.safetensors")
    assert model.descriptor.needs_ref and model.descriptor.scales == (8,)
    assert main([str(f), "-o", str(tmp_path / "m.safetensors")]) == 1  # exists, no --force
    assert "already exists" in capsys.readouterr().out
    del arrays["net/a_out1/biases"]
    np.savez(f, **arrays)
    assert main([str(f), "-o", str(tmp_path / "n.safetensors")]) == 1
    assert "missing variables: net/a_out1/biases" in capsys.readouterr().out


def test_convert_infers_planes_and_widths_and_drops_bookkeeping(tmp_path):
    f = tmp_path / "small.npz"
    arrays = _random_npz(f, num_planes=4, feat_ch=16, att_ch=8, fuse_ch=8)
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    state["global_step"] = torch.tensor(302050)
    state["net/a_out1/weights/Adam"] = torch.zeros(1)
    conv = convert_state_dict(state, "crossmpi")
    assert conv.arch_kwargs == {"num_planes": 4, "feat_ch": 16, "att_ch": 8, "fuse_ch": 8}
    assert any("dropped 2" in n for n in conv.notes)
    net = archs.build("crossmpi", **conv.arch_kwargs)
    net.load_state_dict(conv.state_dict, strict=True)


def test_convert_is_strict_about_names_and_shapes():
    arrays = {k: torch.zeros(s) for k, s in tf_variable_shapes(num_planes=4).items()}
    missing = dict(arrays)
    del missing["fuse_part/conv2_1/b3/c1/biases"]
    with pytest.raises(CheckpointError, match=r"missing variables: fuse_part/conv2_1/b3/c1/biases"):
        convert_state_dict(missing, "crossmpi")
    extra = dict(arrays, **{"net/conv9/weights": torch.zeros(3, 3, 4, 4)})
    with pytest.raises(CheckpointError, match=r"unknown variables: net/conv9/weights"):
        convert_state_dict(extra, "crossmpi")
    wrong = dict(arrays, **{"net/a_out1/weights": torch.zeros(64, 4, 1, 1)})
    with pytest.raises(CheckpointError, match=r"shape mismatches: net/a_out1/weights"):
        convert_state_dict(wrong, "crossmpi")
    with pytest.raises(CheckpointError, match="net/attention_out/biases"):
        convert_state_dict({"foo/weights": torch.zeros(1)}, "crossmpi")
    with pytest.raises(CheckpointError, match="by 8"):
        convert_state_dict(arrays, "crossmpi", scale=4)


def test_read_npz_refuses_garbage(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="bad.npz"):
        read_npz(bad)
    with pytest.raises(SrkitError, match="does not exist"):
        read_npz(tmp_path / "nope.npz")


# --- training stages and losses (srkit.methods.crossmpi) -----------------------------------------------------


def test_stages_stop_where_the_official_stages_stop():
    net = CrossMPI(num_planes=3, feat_ch=16, att_ch=8, fuse_ch=8)
    lr_up, psv = torch.rand(1, 3, 16, 32), torch.rand(1, 3, 3, 16, 32)
    low = net(lr_up, psv, "lowres")
    assert low.hr_syn is None and low.sr is None and low.init_syn.shape == (1, 3, 4, 8)
    low.init_syn.sum().backward()
    trained = {n.split(".")[0] + "." + n.split(".")[1] for n, p in net.named_parameters() if p.grad is not None}
    assert trained == {"f_extract_net." + m for m in ("conv_in", "res_in", "module0", "aspp0", "res0", "conv_out")} | \
        {f"net.attention_out{s}" for s in ("_0", "_1", "_2", "")}
    net.zero_grad(set_to_none=True)
    mid = net(lr_up, psv, "hr_syn")
    assert mid.sr is None and mid.hr_syn.shape == (1, 3, 16, 32)
    (mid.hr_syn.sum() + mid.init_syn.sum()).backward()
    assert all(p.grad is None for p in net.fuse_part.parameters())
    assert all(p.grad is not None for p in net.net.parameters())
    with pytest.raises(Exception, match="unknown stage"):
        net(lr_up, psv, "bogus")


def test_loss_known_answers():
    from srkit.methods.crossmpi import lowres_l2_loss, vgg_lowres_l1_loss

    hr = torch.rand(1, 3, 16, 32) * 0.8
    low = (official_pil_downsample(hr * 2 - 1) + 1) / 2
    # tf.nn.l2_loss in [-1, 1]: an offset of 0.05 in [0, 1] is 0.1 there; half the sum of squares.
    assert lowres_l2_loss(low + 0.05, hr).item() == pytest.approx(0.01 * low.numel() / 2, rel=1e-4)
    terms = vgg_lowres_l1_loss(hr + 0.1, hr, low, None)
    assert terms["p0"].item() == pytest.approx(25.5, rel=1e-5)  # 0..255 pixels
    assert terms["p_lowres"].item() == pytest.approx(0.0, abs=1e-4)
    terms = vgg_lowres_l1_loss(hr, hr, low + 0.2, None)
    assert terms["p_lowres"].item() == pytest.approx(51.0, rel=1e-5)
    assert terms["total"].item() == pytest.approx(0.01 * 51.0, rel=1e-5)


def test_loss_vgg_divisors_and_average_pooling(tmp_path):
    from srkit.methods.crossmpi import VGG_TERMS, LossVGG19, load_loss_vgg, vgg_lowres_l1_loss

    assert dict(VGG_TERMS) == {"conv1_2": 2.6, "conv2_2": 4.8, "conv3_2": 3.7, "conv4_2": 5.6, "conv5_2": 0.15}
    torch.manual_seed(0)
    vgg = LossVGG19()
    with torch.no_grad():
        for p in vgg.parameters():
            p.mul_(0.02)
    torch.save(vgg.state_dict(), tmp_path / "vgg.pth")
    loaded = load_loss_vgg(tmp_path / "vgg.pth")
    a, b = torch.rand(1, 3, 36, 36), torch.rand(1, 3, 36, 36)  # 36 -> 18 -> 9 -> 5 (odd: TF SAME) -> 3
    fa, fb = loaded(a * 255), loaded(b * 255)
    assert [fa[n].shape[-1] for n, _ in VGG_TERMS] == [36, 18, 9, 5, 3]
    terms = vgg_lowres_l1_loss(a, b, torch.rand(1, 3, 9, 9), loaded)
    assert terms["p5"].item() == pytest.approx((fa["conv5_2"] - fb["conv5_2"]).abs().mean().item() * 10 / 1.5, rel=1e-5)
    # TF "SAME" average pooling on an odd size averages only the pixels inside the image.
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    pooled = F.avg_pool2d(x, 2, 2, ceil_mode=True)
    assert pooled[0, 0, 2, 2].item() == 24.0 and pooled[0, 0, 0, 2].item() == (4 + 9) / 2


def test_matconvnet_vgg_file_is_read_like_the_official_loader(tmp_path):
    import scipy.io

    from srkit.methods.crossmpi import _MATCONVNET_INDEX, LossVGG19, load_loss_vgg

    rng = np.random.default_rng(0)
    own = LossVGG19().state_dict()
    layers = np.empty((1, 31), dtype=object)
    for i in range(31):
        layers[0, i] = {"name": f"layer{i}", "type": "relu", "weights": np.empty((1, 0), dtype=object)}
    for name, i in _MATCONVNET_INDEX.items():
        o, c, kh, kw = own[f"{name}.weight"].shape
        w = np.empty((1, 2), dtype=object)
        w[0, 0] = rng.standard_normal((kh, kw, c, o)).astype(np.float32)  # HWIO as in the .mat
        w[0, 1] = rng.standard_normal((o, 1)).astype(np.float32)
        layers[0, i] = {"name": name, "type": "conv", "weights": w}
    scipy.io.savemat(tmp_path / "vgg19.mat", {"layers": layers})
    net = load_loss_vgg(tmp_path / "vgg19.mat")
    w = layers[0, _MATCONVNET_INDEX["conv3_2"]]["weights"][0, 0]
    assert torch.equal(net.conv3_2.weight, torch.from_numpy(w).permute(3, 2, 0, 1))
    assert torch.equal(net.conv5_2.bias, torch.from_numpy(layers[0, 30]["weights"][0, 1].reshape(-1)))
    scipy.io.savemat(tmp_path / "other.mat", {"something": np.zeros(3)})
    with pytest.raises(CheckpointError, match="MatConvNet"):
        load_loss_vgg(tmp_path / "other.mat")


class _StereoPairs(torch.utils.data.Dataset):
    """Tiny synthetic calibrated pairs: HR target, LR, HR reference, relative pose and intrinsics."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        hr = torch.rand(3, 32, 64, generator=g)
        pose = torch.eye(4)
        pose[0, 3] = 0.05 * (i + 1)
        return {"hr": hr, "lr": torch.rand(3, 4, 8, generator=g), "ref": torch.rand(3, 32, 64, generator=g),
                "pose": pose, "k_tgt": torch.tensor([[40.0, 0, 31.5], [0, 40.0, 15.5], [0, 0, 1]])}


def _method_cfg(out, stage, vgg=None):
    from srkit.engine.config import from_dict

    args = {"stage": stage}
    if vgg:
        args["vgg_weights"] = str(vgg)
    return from_dict({
        "name": f"crossmpi_{stage}", "seed": 0, "output_dir": str(out),
        "model": {"arch": "crossmpi", "args": {"num_planes": 3, "feat_ch": 16, "att_ch": 8, "fuse_ch": 8}},
        "method": {"name": "crossmpi", "args": args},
        "data": {"train": ["unused"], "scale": 8, "patch_size": 64, "batch_size": 2, "augment": False, "val": None},
        "train": {"steps": 2, "log_every": 1, "val_every": 100, "ckpt_every": 100, "tensorboard": False,
                  "optimizer": {"lr": 2e-4, "betas": [0.9, 0.999]}, "schedule": {"name": "constant"}},
    })


def test_stages_train_through_the_engine(tmp_path):
    import json

    from srkit.engine import Trainer
    from srkit.methods import get_method
    from srkit.methods.crossmpi import CrossMPIMethod, LossVGG19
    from srkit.model_file import load_model

    assert get_method("crossmpi") is CrossMPIMethod
    result = Trainer(_method_cfg(tmp_path / "s1", "lowres"), progress=False, train_set=_StereoPairs()).run()
    assert result["step"] == 2
    logs = [json.loads(line) for line in (tmp_path / "s1" / "log.jsonl").read_text().splitlines()]
    assert [r for r in logs if "loss/l2" in r] and all(np.isfinite(r["loss/total"]) for r in logs if "loss/total" in r)
    model = load_model(result["model_file"])
    assert model.descriptor.needs_ref and model.descriptor.scales == (8,)

    vgg = tmp_path / "vgg.pth"
    torch.save(LossVGG19().state_dict(), vgg)
    cfg = _method_cfg(tmp_path / "s3", "full", vgg)
    cfg.model.init = str(result["model_file"])  # stages chain through model.init, as the official restores
    result = Trainer(cfg, progress=False, train_set=_StereoPairs()).run()
    logs = [json.loads(line) for line in (tmp_path / "s3" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss/p5" in r]
    assert steps and all(np.isfinite(r["loss/total"]) for r in steps)


def test_method_config_errors(tmp_path):
    from srkit.methods.crossmpi import CrossMPIMethod

    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="vgg_weights"):
        CrossMPIMethod(_method_cfg(tmp_path / "a", "full"), cpu).build()
    with pytest.raises(ConfigError, match="stage must be one of lowres, hr_syn, full"):
        CrossMPIMethod(_method_cfg(tmp_path / "b", "middle"), cpu).build()
    cfg = _method_cfg(tmp_path / "d", "lowres")
    cfg.train.losses = {"l1": type(cfg.train.losses["l1"])(weight=2.0)}
    with pytest.raises(ConfigError, match="leave train.losses out"):
        CrossMPIMethod(cfg, cpu).build()
    method = CrossMPIMethod(_method_cfg(tmp_path / "c", "lowres"), cpu)
    method.build()
    with pytest.raises(SrkitError, match="missing \\['pose', 'k_tgt'\\]"):
        method.training_step({"hr": torch.rand(1, 3, 32, 64), "lr": torch.rand(1, 3, 4, 8),
                              "ref": torch.rand(1, 3, 32, 64)}, 0, "net")
    # Validation without a second view: LR-up is every plane, so hr_syn is LR-up.
    sr = method.infer(method.networks["net"], torch.rand(1, 3, 4, 8))
    assert sr.shape == (1, 3, 32, 64)


# --- the official graph, transliterated in NHWC with TF-named HWIO variables ------------------------------------


def _tf_conv(x: torch.Tensor, var: dict, scope: str, stride: int = 1, rate: int = 1, act: str | None = "relu"):
    """slim.conv2d(padding='SAME') in NHWC with the HWIO kernel ``scope/weights``, written as a sum of
    shifted slices times (Cin, Cout) matrices (no torch conv, no transposition of the kernel)."""
    w, b = var[f"{scope}/weights"], var[f"{scope}/biases"]
    kh, kw = w.shape[:2]
    pads = []
    for n, k in ((x.shape[1], kh), (x.shape[2], kw)):
        k_eff = (k - 1) * rate + 1
        out = -(-n // stride)
        total = max((out - 1) * stride + k_eff - n, 0)
        pads.append((total // 2, total - total // 2, out))
    (t, bt, ho), (l, r, wo) = pads
    xp = F.pad(x, (0, 0, l, r, t, bt))
    y = b.expand(x.shape[0], ho, wo, -1).clone()
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * rate: i * rate + stride * (ho - 1) + 1: stride, j * rate: j * rate + stride * (wo - 1) + 1: stride]
            y = y + patch @ w[i, j]
    return {"relu": torch.relu, "tanh": torch.tanh, None: lambda v: v}[act](y)


def _official_graph(var: dict, lr_up: torch.Tensor, psv: torch.Tensor, n_planes: int) -> dict[str, torch.Tensor]:
    """mpi.py attention_ref_sr + nets.py (dense ASPP, guided_att_hr_syn_net with lowres synthesis, nnup,
    res_fuse_net) for which_model_predict='guided_nnup_denseASPP_lowres_image_psv_lowresL1', NHWC, [-1, 1]."""
    def nhwc(t):
        return t.permute(0, 2, 3, 1)

    def down(t):  # tf.py_func(img_pil_downsampling, [t, 4.0])
        return nhwc(official_pil_downsample(t.permute(0, 3, 1, 2)).to(t.dtype))

    def f_extract(x):
        s = "f_extract_net/"
        net = _tf_conv(x, var, s + "conv_in")
        net = net + _tf_conv(_tf_conv(net, var, s + "res_in/c1"), var, s + "res_in/c2")
        aspp = net
        for j in range(3):
            c1 = _tf_conv(aspp, var, s + f"module0/aspp{j}/c1d1")
            c2 = _tf_conv(aspp, var, s + f"module0/aspp{j}/c2d4", rate=4)
            c3 = _tf_conv(aspp, var, s + f"module0/aspp{j}/c3d8", rate=8)
            aspp = _tf_conv(torch.cat([c1, c2, c3], -1), var, s + "aspp0/co")
            net = net + aspp
        net = net + _tf_conv(_tf_conv(net, var, s + "res0/c1"), var, s + "res0/c2")
        net = _tf_conv(net, var, s + "res0/co")
        return _tf_conv(net, var, s + "conv_out", act=None)

    def group(x, name):
        m = _tf_conv(x, var, f"net/{name}/in")
        for j in range(3):
            m = m + _tf_conv(_tf_conv(_tf_conv(m, var, f"net/{name}/b{j}/c1"), var, f"net/{name}/b{j}/c2"),
                             var, f"net/{name}/b{j}/c3")
        return _tf_conv(m, var, f"net/{name}/out")

    b, hh, ww = lr_up.shape[0], lr_up.shape[2], lr_up.shape[3]
    h, w, n = hh // 4, ww // 4, n_planes
    ref_image = nhwc(lr_up) * 2 - 1
    planes = [nhwc(psv[:, i]) * 2 - 1 for i in range(n)]
    net_input = torch.cat([ref_image] + planes, -1)
    net_input_lowres = torch.cat([down(net_input[..., i * 3:(i + 1) * 3]) for i in range(n + 1)], -1)
    f_lr = f_extract(net_input_lowres[..., :3])
    f_lowres_psv = torch.stack([f_extract(net_input_lowres[..., (i + 1) * 3:(i + 2) * 3]) for i in range(n)], -1)
    image_psv = net_input[..., 3:].reshape(b, hh, ww, n, 3).permute(0, 1, 2, 4, 3)
    lowres_psv = net_input_lowres[..., 3:].reshape(b, h, w, n, 3).permute(0, 1, 2, 4, 3)
    c = f_lr.shape[-1]
    att = torch.matmul(f_lr.reshape(b * h * w, 1, c), f_lowres_psv.reshape(b * h * w, c, n)).reshape(b, h, w, n)
    for k in range(3):
        att = _tf_conv(att, var, f"net/attention_out_{k}")
    att = torch.softmax(_tf_conv(att, var, "net/attention_out", act=None), -1).reshape(b * h * w, n)
    lp = lowres_psv.reshape(b * h * w, 3, n)
    init_syn = torch.stack([(lp[:, i, :] * att).sum(-1) for i in range(3)], -1).reshape(b, h, w, 3)
    att = att.reshape(b, h, w, n)
    g0 = group(net_input, "guid_lv0_res")
    g1 = group(_tf_conv(g0, var, "net/guid_lv1_down", stride=2), "guid_lv1_res")
    g2 = group(_tf_conv(g1, var, "net/guid_lv2_down", stride=2), "guid_lv2_res")
    a = group(att, "a_lv2_res0")
    a = group(torch.cat([a, g2], -1), "a_lv2_res_com2")
    a = a.repeat_interleave(2, 1).repeat_interleave(2, 2)  # resize_images NEAREST to 2x
    a = group(torch.cat([a, g1], -1), "a_lv1_res_com1")
    a = a.repeat_interleave(2, 1).repeat_interleave(2, 2)
    a = group(torch.cat([a, g0], -1), "a_lv0_res_com0")
    a = torch.softmax(_tf_conv(a, var, "net/a_out1", act=None), -1).reshape(b * hh * ww, n)
    tp = image_psv.reshape(b * hh * ww, 3, n)
    hr_syn = torch.stack([(tp[:, i, :] * a).sum(-1) for i in range(3)], -1).reshape(b, hh, ww, 3)
    f = "fuse_part/"
    f_lr_ = _tf_conv(ref_image, var, f + "in_f_lr")
    net = _tf_conv(torch.cat([f_lr_, _tf_conv(hr_syn, var, f + "in_f_hr")], 3), var, f + "conv1_1")
    for i in range(6):
        net = net + _tf_conv(_tf_conv(net, var, f + f"conv2_1/b{i}/c1"), var, f + f"conv2_1/b{i}/c2")
    net = f_lr_ + _tf_conv(net, var, f + "conv3_2")
    net = _tf_conv(net, var, f + "conv4_1")
    sr = _tf_conv(net, var, f + "sr_output", act="tanh")
    return {"sr_out": sr, "hr_syn": hr_syn, "init_syn": init_syn}


def test_converted_network_equals_the_transliterated_official_graph(tmp_path):
    kw = {"num_planes": 3, "feat_ch": 16, "att_ch": 8, "fuse_ch": 8}
    rng = np.random.default_rng(3)
    arrays = {}
    for k, s in tf_variable_shapes(**kw).items():
        fan_in = int(np.prod(s[:-1])) if len(s) == 4 else 1
        scale = math.sqrt(2.0 / fan_in) if len(s) == 4 else 0.05
        arrays[k] = (rng.standard_normal(s) * scale).astype(np.float32)
    np.savez(tmp_path / "tiny.npz", **arrays)
    net = convert_npz(tmp_path / "tiny.npz").net
    var = {k: torch.from_numpy(v).double() for k, v in arrays.items()}
    g = torch.Generator().manual_seed(0)
    lr_up, psv = torch.rand(2, 3, 16, 24, generator=g), torch.rand(2, 3, 3, 16, 24, generator=g)
    with torch.no_grad():
        ours = net.double()(lr_up.double(), psv.double())
        ref = _official_graph(var, lr_up.double(), psv.double(), 3)
    for name, mine in (("sr_out", ours.sr), ("hr_syn", ours.hr_syn), ("init_syn", ours.init_syn)):
        official = (ref[name].permute(0, 3, 1, 2) + 1) / 2
        assert official.std() > 1e-3, name  # the comparison is not between constants
        assert torch.allclose(mine, official, atol=1e-10), (name, (mine - official).abs().max())


# --- RealEstate10K pairs ----------------------------------------------------------------------------------------


def test_area_resize_known_answers():
    from srkit.methods.crossmpi import area_resize, area_resize_matrix

    x = torch.arange(16.0).reshape(1, 4, 4)
    assert torch.equal(area_resize(x, (2, 2)), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    m = area_resize_matrix(3, 2)  # each output covers 1.5 inputs
    assert torch.allclose(m, torch.tensor([[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]], dtype=torch.float64))
    assert torch.allclose(area_resize_matrix(720, 384).sum(1), torch.ones(384, dtype=torch.float64))


def _write_sequence(root, video="abcDEF", n=5):
    from PIL import Image

    (root / "train").mkdir(parents=True)
    (root / "images" / video).mkdir(parents=True)
    lines = [f"https://www.youtube.com/watch?v={video}"]
    rng = np.random.default_rng(0)
    for i in range(n):
        stamp = str(1000 + 33 * i)
        pose = np.concatenate([np.eye(3), [[0.1 * i], [0.0], [0.02 * i]]], 1)
        lines.append(" ".join([stamp, "0.9", "1.6", "0.5", "0.5", "0", "0"] + [f"{v:g}" for v in pose.ravel()]))
        Image.fromarray(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)).save(
            root / "images" / video / f"{video}_{stamp}.jpg", quality=95)
    (root / "train" / f"{video}.txt").write_text("\n".join(lines) + "\n")


def test_realestate_pairs(tmp_path):
    from srkit.data.io import read_image
    from srkit.methods.crossmpi import RealEstatePairs, area_resize, read_camera_file

    _write_sequence(tmp_path)
    video, stamps, intr, poses = read_camera_file(tmp_path / "train" / "abcDEF.txt")
    assert video == "abcDEF" and len(stamps) == 5 and poses.shape == (5, 3, 4)
    # Test mode: the central pair (stride 2 of 5 frames: 1 and 3), no augmentation.
    ds = RealEstatePairs(str(tmp_path / "train" / "*.txt"), tmp_path / "images", height=16, width=32, stride=2,
                         training=False)
    item = ds[0]
    assert item["hr"].shape == (3, 16, 32) and item["lr"].shape == (3, 2, 4) and item["ref"].shape == (3, 16, 32)
    frame = torch.tensor(read_image(tmp_path / "images" / "abcDEF" / "abcDEF_1033.jpg")).permute(2, 0, 1)
    assert torch.allclose(item["hr"], area_resize(frame.float() / 255.0, (16, 32)), atol=1e-6)
    assert torch.allclose(item["pose"], ps.relative_pose(poses[1], poses[3]).float())
    assert torch.allclose(item["k_tgt"], torch.tensor([[0.9 * 32, 0, 16], [0, 1.6 * 16, 8], [0, 0, 1]]))
    u8 = (item["hr"].permute(1, 2, 0).numpy() * 255.0).astype("uint8")
    want = np.asarray(Image.fromarray(u8).resize((4, 2), Image.BICUBIC), dtype=np.float32) / 255.0
    assert np.array_equal(item["lr"].permute(1, 2, 0).numpy(), want)
    # Training: random pair, random order, scale-and-crop with the principal point moved by the crop.
    train = RealEstatePairs(str(tmp_path / "train" / "*.txt"), tmp_path / "images", height=16, width=32, stride=2,
                            min_scale=1.1, max_scale=1.15, seed=3)
    seen = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        it = train[0]
        assert it["hr"].shape == (3, 16, 32) and it["ref"].shape == (3, 16, 32)
        k = it["k_tgt"]
        sw = round(k[0, 0].item() / 0.9)  # the scaled width, int(32 * factor) with factor in [1.1, 1.15)
        assert sw in (35, 36) and k[0, 0].item() == pytest.approx(0.9 * sw, rel=1e-6)
        ox = 0.5 * sw - k[0, 2].item()  # the crop offset moved the principal point
        assert 0 <= ox <= sw - 32 and ox == pytest.approx(round(ox), abs=1e-4)
        seen.add(round(float(it["pose"][0, 3]), 4))
    assert len(seen) > 1  # different pairs / orders across epochs
    with pytest.raises(SrkitError, match="no camera file"):
        RealEstatePairs(str(tmp_path / "train" / "*.txt"), tmp_path / "images", stride=10)


def test_srkit_convert_cli_reads_an_npz_of_official_tf_names(tmp_path):
    import numpy as np

    from srkit.archs.crossmpi import tf_variable_shapes
    from srkit.cli import main
    from srkit.model_file import load_model

    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(v).astype(np.float32) for k, v in tf_variable_shapes().items()}
    np.savez(tmp_path / "ckpt.npz", **arrays)
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(tmp_path / "ckpt.npz"), "--arch", "crossmpi", "-o", str(out)]) == 0
    net = load_model(out).net
    assert sum(p.numel() for p in net.parameters()) == 3_807_627
    name, value = next((k, v) for k, v in arrays.items() if v.ndim == 4)
    assert any(np.array_equal(p.detach().numpy(), value.transpose(3, 2, 0, 1)) for p in net.parameters())
