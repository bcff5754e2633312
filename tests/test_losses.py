"""Losses: known values, gradients, GAN signs, VGG layer indices and weight loading."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srkit.archs.vgg import VGGFeatures, load_state_dict_file, vgg_layer_index, vgg_layer_names
from srkit.errors import CheckpointError, ConfigError, SrkitError
from srkit.losses import (
    LOSSES,
    CharbonnierLoss,
    GANLoss,
    L1Loss,
    MSELoss,
    PerceptualLoss,
    RelativisticGANLoss,
    build_loss,
)


def test_pixel_losses_known_values():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, -1.0], [3.0, 0.0]]]])
    assert L1Loss()(b, a).item() == pytest.approx(5 / 4)
    assert MSELoss()(b, a).item() == pytest.approx(11 / 4)
    assert L1Loss(weight=2.0)(b, a).item() == pytest.approx(5 / 2)
    # Charbonnier of zero error is eps; of error 3 with eps 4 it is sqrt(9 + 16) = 5
    assert CharbonnierLoss()(a, a).item() == pytest.approx(1e-3, rel=1e-6)
    c = torch.full((1, 1, 2, 2), 3.0)
    assert CharbonnierLoss(eps=4.0)(c, a).item() == pytest.approx(5.0)
    # for errors much larger than eps it approaches L1
    assert CharbonnierLoss()(b, a).item() == pytest.approx(5 / 4 + 1e-3 / 4, abs=1e-6)
    with pytest.raises(ConfigError):
        CharbonnierLoss(eps=0)


def test_gradients_flow_through_pixel_losses():
    pred = torch.rand(2, 3, 8, 8, requires_grad=True)
    target = torch.rand(2, 3, 8, 8)
    for loss in (L1Loss(), MSELoss(), CharbonnierLoss()):
        pred.grad = None
        loss(pred, target).backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0
    # Charbonnier gradient is d / sqrt(d^2 + eps^2) / numel
    pred.grad = None
    CharbonnierLoss()(pred, target).backward()
    d = (pred - target).detach()
    assert torch.allclose(pred.grad, d / torch.sqrt(d * d + 1e-6) / d.numel(), atol=1e-7)


# ---------------------------------------------------------------------------------------------- GAN


def test_gan_loss_values_on_known_logits():
    x = torch.tensor([0.0, 2.0, -1.0])
    sp = F.softplus
    v = GANLoss("vanilla")
    assert v(x, True).item() == pytest.approx(sp(-x).mean().item())  # -log sigmoid(x)
    assert v(x, False).item() == pytest.approx(sp(x).mean().item())  # -log(1 - sigmoid(x))
    assert v(torch.zeros(4), True).item() == pytest.approx(math.log(2))
    ls = GANLoss("lsgan")
    assert ls(x, True).item() == pytest.approx(((x - 1) ** 2).mean().item())  # (1 + 1 + 4) / 3
    assert ls(x, False).item() == pytest.approx((x**2).mean().item())
    h = GANLoss("hinge")
    assert h(x, True, is_disc=True).item() == pytest.approx((1 + 0 + 2) / 3)
    assert h(x, False, is_disc=True).item() == pytest.approx((1 + 3 + 0) / 3)
    assert h(x, True, is_disc=False).item() == pytest.approx(-1 / 3)
    with pytest.raises(SrkitError):
        h(x, False, is_disc=False)
    with pytest.raises(ConfigError, match="vanilla, lsgan, hinge"):
        GANLoss("wgan")


def test_gan_loss_signs_and_weight():
    good_real, good_fake = torch.full((4,), 5.0), torch.full((4,), -5.0)
    for kind in GANLoss.KINDS:
        g = GANLoss(kind, weight=0.1)
        # a discriminator that separates well has a lower loss than one that is fooled
        assert g.discriminator_loss(good_real, good_fake) < g.discriminator_loss(good_fake, good_real)
        # the generator's loss falls when its fakes look real to D
        assert g.generator_loss(good_real) < g.generator_loss(good_fake)
        # weight scales the generator form only
        assert g.generator_loss(good_fake).item() == pytest.approx(0.1 * GANLoss(kind).generator_loss(good_fake).item())
        assert g.discriminator_loss(good_real, good_fake).item() == pytest.approx(
            GANLoss(kind).discriminator_loss(good_real, good_fake).item())


def test_relativistic_gan_values_and_gradients():
    real = torch.tensor([1.0, 3.0])  # mean 2
    fake = torch.tensor([0.0, -2.0], requires_grad=True)  # mean -1
    sp = F.softplus
    ra_real, ra_fake = real - (-1.0), fake.detach() - 2.0  # [2, 4], [-2, -4]
    rl = RelativisticGANLoss(weight=0.5)
    g = rl.generator_loss(real, fake)
    # BCE(x, 0) = softplus(x), BCE(x, 1) = softplus(-x)
    expect_g = 0.5 * (sp(ra_real).mean() + sp(-ra_fake).mean()) / 2
    assert g.item() == pytest.approx(expect_g.item())
    d = rl.discriminator_loss(real, fake)
    expect_d = (sp(-ra_real).mean() + sp(ra_fake).mean()) / 2
    assert d.item() == pytest.approx(expect_d.item())
    assert rl(real, fake, is_disc=True).item() == pytest.approx(d.item())
    # generator gradient pushes fake logits up (towards looking real)
    g.backward()
    assert (fake.grad < 0).all()
    # in the D step each half treats the other side's mean as constant: real's grad comes from its own half
    r = real.clone().requires_grad_(True)
    f = fake.detach().clone().requires_grad_(True)
    rl.discriminator_loss(r, f).backward()
    s = torch.sigmoid(r.detach() - f.detach().mean())
    assert torch.allclose(r.grad, (s - 1) / 2 / 2)
    assert (f.grad > 0).all()


# ---------------------------------------------------------------------------------------------- VGG


def test_vgg_layer_indices():
    names19 = vgg_layer_names("vgg19")
    assert len(names19) == 37
    assert vgg_layer_index("conv1_1") == 0
    assert vgg_layer_index("relu1_1") == 1
    assert vgg_layer_index("pool1") == 4
    assert vgg_layer_index("conv5_4") == 34
    assert vgg_layer_index("relu5_4") == 35
    assert vgg_layer_index("pool5") == 36
    assert vgg_layer_index("relu2_2") == 8
    names16 = vgg_layer_names("vgg16")
    assert len(names16) == 31
    assert vgg_layer_index("relu5_3", "vgg16") == 29
    assert vgg_layer_index("relu4_3", "vgg16") == 22
    with pytest.raises(SrkitError, match="conv5_4"):
        vgg_layer_index("conv5_4", "vgg16")
    with pytest.raises(SrkitError, match="vgg11"):
        vgg_layer_names("vgg11")


def test_vgg_truncates_and_matches_torchvision_layout():
    net = VGGFeatures(["relu2_2"], arch="vgg19")
    assert len(net.features) == 9
    keys = list(net.state_dict())
    assert keys == ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
                    "features.5.weight", "features.5.bias", "features.7.weight", "features.7.bias"]
    full = VGGFeatures(["pool5"], arch="vgg19")
    convs = [m for m in full.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16 and convs[-1].out_channels == 512
    assert sum(p.numel() for p in full.parameters()) == 20_024_384  # torchvision vgg19 features


def test_vgg_conv_is_pre_activation():
    torch.manual_seed(0)
    net = VGGFeatures(["conv1_2", "relu1_2"], arch="vgg16")
    out = net(torch.rand(1, 3, 8, 8))
    assert (out["conv1_2"] < 0).any()
    assert torch.equal(out["relu1_2"], out["conv1_2"].clamp_min(0))


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    """A randomly initialised VGG19 features state_dict through conv5_4, plus an unrelated key."""
    torch.manual_seed(1)
    sd = VGGFeatures(["relu5_4"], arch="vgg19").state_dict()
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision full-model files carry these too
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(sd, path)
    return path, sd


def test_perceptual_loss_loads_and_computes(vgg19_file):
    path, sd = vgg19_file
    loss = PerceptualLoss(path, {"conv5_4": 1.0, "relu2_2": 0.5}, arch="vgg19", criterion="l1")
    assert torch.equal(loss.vgg.features[0].weight, sd["features.0.weight"])
    assert torch.equal(loss.vgg.features[34].weight, sd["features.34.weight"])
    torch.manual_seed(2)
    x = torch.rand(1, 3, 16, 16)
    assert loss(x, x).item() == 0.0
    pred = torch.rand(1, 3, 16, 16, requires_grad=True)
    val = loss(pred, x)
    # independent computation of the same value
    norm = lambda t: (t - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref_net = VGGFeatures(["conv5_4", "relu2_2"], arch="vgg19")
    ref_net.load_weights(path)
    fp, ft = ref_net(norm(pred)), ref_net(norm(x))
    expect = F.l1_loss(fp["conv5_4"], ft["conv5_4"]) + 0.5 * F.l1_loss(fp["relu2_2"], ft["relu2_2"])
    assert val.item() == pytest.approx(expect.item(), rel=1e-5)
    val.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.vgg.parameters())  # VGG frozen
    l2 = PerceptualLoss(path, {"relu1_1": 1.0}, criterion="l2", weight=3.0)
    e2 = 3.0 * F.mse_loss(ref_net.features[:2](norm(pred)), ref_net.features[:2](norm(x)))
    assert l2(pred, x).item() == pytest.approx(e2.item(), rel=1e-5)


def test_perceptual_loss_safetensors(vgg19_file, tmp_path):
    from safetensors.torch import save_file

    path, sd = vgg19_file
    st = tmp_path / "vgg.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    loss = PerceptualLoss(st, {"relu1_2": 1.0})
    assert torch.equal(loss.vgg.features[2].bias, sd["features.2.bias"])


def test_perceptual_loss_errors(vgg19_file, tmp_path):
    path, sd = vgg19_file
    with pytest.raises(SrkitError, match="not found: .*nope.pth"):
        PerceptualLoss(tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv_first.weight": torch.zeros(1)}, wrong)
    with pytest.raises(CheckpointError, match=r"wrong.pth.*missing keys features.0.weight"):
        PerceptualLoss(wrong)
    # a VGG19 file in a VGG16 loss: VGG16's deeper convs sit at other indices
    with pytest.raises(CheckpointError, match="not a vgg16 features file.*features.17.weight"):
        PerceptualLoss(path, {"relu5_3": 1.0}, arch="vgg16")
    bad_shape = tmp_path / "gray_vgg.pth"
    torch.save({**sd, "features.0.weight": torch.zeros(64, 1, 3, 3)}, bad_shape)
    with pytest.raises(CheckpointError, match=r"shapes do not fit vgg19: features.0.weight \(64, 1, 3, 3\)"):
        PerceptualLoss(bad_shape, {"relu1_1": 1.0})
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth: cannot read"):
        load_state_dict_file(garbage)
    with pytest.raises(ConfigError, match="criterion"):
        PerceptualLoss(path, criterion="fro")
    with pytest.raises(SrkitError, match="relu9_9"):
        PerceptualLoss(path, {"relu9_9": 1.0})


def test_build_loss():
    assert isinstance(build_loss("charbonnier", eps=1e-2), CharbonnierLoss)
    assert build_loss("charbonnier", eps=1e-2).eps == 1e-2
    assert isinstance(build_loss("l1"), L1Loss)
    assert build_loss("gan", kind="hinge").kind == "hinge"
    assert isinstance(build_loss("relativistic_gan", weight=5e-3), RelativisticGANLoss)
    with pytest.raises(ConfigError, match="unknown loss 'ssim'.*l1, mse, l2, charbonnier, perceptual"):
        build_loss("ssim")
    with pytest.raises(ConfigError, match="'l1': bad arguments"):
        build_loss("l1", eps=1)
    assert set(LOSSES) >= {"l1", "mse", "charbonnier", "perceptual", "gan", "relativistic_gan"}
