"""GLEAN training (method 'glean'): loss values in the official [-1, 1] range, the discriminator and its
initialisation from a StyleGAN2 checkpoint, one and two iterations through the Trainer (what changes, what stays
frozen, resume of both optimisers), the fixed-size dataset, config errors and the shipped configs.

Speed: StyleGAN2 keeps 512 channels up to 32 px whatever the multiplier, which makes even a 16 -> 64 GLEAN cost
seconds per step on a CPU. The ``tiny`` fixture therefore narrows srkit's StyleGAN2 channel table for the
duration of a test (GLEAN, its latent bank and the discriminator all read their widths from it); the code under
test is unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from srkit.engine import Trainer
from srkit.engine.config import from_dict, load_config
from srkit.errors import CheckpointError, ConfigError, SrkitError
from srkit.methods import get_method
from srkit.methods.glean import FixedSizePairs, GLEANDiscriminator, GLEANMethod, load_discriminator

ROOT = Path(__file__).resolve().parents[1]
IN, OUT = 8, 32
TINY_ARGS = {"in_size": IN, "out_size": OUT, "rrdb_channels": 8, "num_rrdbs": 1, "style_channels": 16,
             "num_mlps": 1, "channel_multiplier": 1}


@pytest.fixture
def tiny(monkeypatch):
    """Narrow StyleGAN2 widths (16 channels at 4..16 px, 8 from 32 px) while the test runs."""
    import srkit.archs.stylegan2 as sg

    monkeypatch.setattr(sg, "stylegan2_channels",
                        lambda channel_multiplier=2, max_channels=None: {r: 16 if r <= 16 else 8 for r in (4, 8, 16, 32, 64, 128, 256)})
    return sg


def write_stylegan2(path: Path, seed: int = 1) -> dict[str, torch.Tensor]:
    """An MMagic-layout StyleGAN2 checkpoint (``state_dict`` with ``generator_ema.*``, ``generator.*`` and
    ``discriminator.*``) of random weights fitting TINY_ARGS; returns its flat state dict."""
    from srkit.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

    torch.manual_seed(seed)
    g = StyleGAN2Generator(OUT, 16, 1, 1).state_dict()
    d = StyleGAN2Discriminator(OUT, channel_multiplier=1).state_dict()
    flat = {f"generator_ema.{k}": v.clone() for k, v in g.items()}
    flat.update({f"generator.{k}": v + 1 if v.is_floating_point() else v for k, v in g.items()})
    flat.update({f"discriminator.{k}": v.clone() for k, v in d.items()})
    torch.save({"meta": {"iter": 1}, "state_dict": flat}, path)
    return flat


def write_faces(folder: Path, n: int = 4, size: int = OUT, seed: int = 0) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
        Image.fromarray(base).resize((size, size), Image.BICUBIC).save(folder / f"{i:02d}.png")
    return folder


def tiny_cfg(tmp_path: Path, **over) -> dict:
    raw = {
        "name": "glean_test", "seed": 3, "output_dir": str(tmp_path / "run"),
        "model": {"arch": "glean", "args": dict(TINY_ARGS)},
        "data": {"train": [str(tmp_path / "hr")], "scale": OUT // IN, "patch_size": OUT, "batch_size": 2,
                 "augment": True, "val": None},
        "method": {"name": "glean", "args": {"stylegan2": str(tmp_path / "sg2.pth")}},
        "train": {"steps": 1, "optimizer": {"lr": 1e-4, "betas": [0.9, 0.99]},
                  "schedule": {"name": "cosine_restart", "periods": [300000], "eta_min": 1e-7},
                  "losses": {"mse": {"weight": 1.0}},
                  "gan": {"weight": 1e-2, "loss": "vanilla", "optimizer": {"lr": 1e-4, "betas": [0.9, 0.99]}},
                  "log_every": 1, "val_every": 1000, "ckpt_every": 1, "keep_checkpoints": 0, "tensorboard": False},
    }
    for key, value in over.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


def built(raw: dict) -> GLEANMethod:
    m = GLEANMethod(from_dict(raw), torch.device("cpu"))
    m.build()
    return m


def test_registered():
    assert get_method("glean") is GLEANMethod


# --- losses --------------------------------------------------------------------------------------------------


def test_pixel_and_gan_terms_known_values(tiny, tmp_path):
    m = built(tiny_cfg(tmp_path, **{"method.args": {"pretrained": False}}))
    sr, hr = torch.full((2, 3, OUT, OUT), 0.75), torch.full((2, 3, OUT, OUT), 0.25)
    total, terms = m.pixel_terms(sr, hr)
    # official range: 0.5 vs -0.5 -> MSE 1.0 (srkit's [0, 1] MSE would be 0.25)
    assert terms["mse"].item() == pytest.approx(1.0) and total.item() == pytest.approx(1.0)
    g = m.gan_loss
    z = torch.zeros(2, 1)
    assert g.generator_loss(z).item() == pytest.approx(1e-2 * math.log(2))  # weighted: 1e-2 BCE(0, real)
    assert g.generator_loss(torch.full((2, 1), 2.0)).item() == pytest.approx(1e-2 * math.log1p(math.exp(-2)))
    # discriminator: BCE(real, 1) + BCE(fake, 0), not weighted
    d = g.discriminator_loss(torch.full((2, 1), 1.0), torch.full((2, 1), -3.0))
    assert d.item() == pytest.approx(math.log1p(math.exp(-1)) + math.log1p(math.exp(-3)))
    assert m.updates(0) == ["net", "disc"]


def test_perceptual_term_and_norm_img(tiny, tmp_path):
    """VGG16 conv4_3 MSE: zero for identical images, positive otherwise; norm_img false (cat/FFHQ x16 quirk)
    feeds the [-1, 1] images to the ImageNet-normalising VGG, true the [0, 1] ones."""
    from srkit.archs.vgg import VGGFeatures
    from srkit.losses import PerceptualLoss

    torch.manual_seed(0)
    vgg = tmp_path / "vgg16.pth"
    torch.save(VGGFeatures(["conv4_3"], arch="vgg16").state_dict(), vgg)
    perc = {"weight": 1e-2, "args": {"weights_path": str(vgg), "arch": "vgg16", "layer_weights": {"conv4_3": 1.0},
                                     "criterion": "l2"}}
    ref = PerceptualLoss(vgg, {"conv4_3": 1.0}, arch="vgg16", criterion="l2")
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(1, 3, OUT, OUT, generator=g), torch.rand(1, 3, OUT, OUT, generator=g)
    values = {}
    for norm_img in (False, True):
        raw = tiny_cfg(tmp_path, **{"method.args": {"pretrained": False, "norm_img": norm_img},
                                    "train.losses": {"mse": {"weight": 1.0}, "perceptual": perc}})
        m = built(raw)
        total, terms = m.pixel_terms(a, a)
        assert terms["perceptual"].item() == 0.0 and total.item() == 0.0
        total, terms = m.pixel_terms(a, b)
        values[norm_img] = terms["perceptual"].item()
        assert values[norm_img] > 0
        expected = ref(a, b) if norm_img else ref(2 * a - 1, 2 * b - 1)
        assert terms["perceptual"].item() == pytest.approx(expected.item(), rel=1e-5)
        assert total.item() == pytest.approx(terms["mse"].item() + 1e-2 * terms["perceptual"].item(), rel=1e-5)
    assert values[False] != pytest.approx(values[True], rel=1e-3)


# --- discriminator -------------------------------------------------------------------------------------------


def test_discriminator_range_and_groups(tiny):
    from srkit.archs.stylegan2 import StyleGAN2Discriminator

    torch.manual_seed(0)
    d = GLEANDiscriminator(OUT, channel_multiplier=1)
    x = torch.rand(4, 3, OUT, OUT)
    with torch.no_grad():
        assert torch.equal(d(x), StyleGAN2Discriminator.forward(d, x * 2 - 1))
        both = d(x, 2)  # two halves, each with its own minibatch statistics
        assert torch.allclose(both, torch.cat([d(x[:2]), d(x[2:])]), atol=1e-6)
        assert not torch.allclose(both, d(x), atol=1e-4)  # one group of 4 mixes them
    with pytest.raises(SrkitError, match="3 equal groups"):
        d(x, 3)


def test_discriminator_and_bank_initialised_from_stylegan2_checkpoint(tiny, tmp_path):
    flat = write_stylegan2(tmp_path / "sg2.pth")
    m = built(tiny_cfg(tmp_path))
    disc, net = m.networks["disc"], m.networks["net"]
    assert isinstance(disc, GLEANDiscriminator)
    for k, v in disc.state_dict().items():
        assert torch.equal(v, flat[f"discriminator.{k}"]), k
    for k, v in net.generator.state_dict().items():
        assert torch.equal(v, flat[f"generator_ema.{k}"]), k  # generator_ema, not generator
    # another prefix and a separate discriminator file
    m2 = built(tiny_cfg(tmp_path, **{"method.args": {"stylegan2": str(tmp_path / "sg2.pth"),
                                                     "bank_prefix": "generator"}}))
    k0 = "constant_input.input"
    assert torch.equal(m2.networks["net"].generator.state_dict()[k0], flat[f"generator.{k0}"])
    # pretrained: false makes the file optional, but a file that is given is still used
    m3 = built(tiny_cfg(tmp_path, **{"method.args": {"stylegan2": str(tmp_path / "sg2.pth"), "pretrained": False}}))
    assert all(torch.equal(v, flat[f"discriminator.{k}"]) for k, v in m3.networks["disc"].state_dict().items())
    # a discriminator of another size does not fit; a missing prefix is named
    with pytest.raises(CheckpointError, match="does not fit the StyleGAN2 discriminator"):
        load_discriminator(GLEANDiscriminator(2 * OUT, channel_multiplier=1), tmp_path / "sg2.pth")
    with pytest.raises(CheckpointError, match="no 'D.\\*' entries"):
        load_discriminator(disc, tmp_path / "sg2.pth", prefix="D")


# --- training through the engine -----------------------------------------------------------------------------


def _initial(raw: dict) -> GLEANMethod:
    torch.manual_seed(raw["seed"])  # what the Trainer does before building the method
    return built(raw)


def test_one_iteration_updates_g_and_d_and_keeps_frozen_parts(tiny, tmp_path):
    write_faces(tmp_path / "hr")
    flat = write_stylegan2(tmp_path / "sg2.pth")
    raw = tiny_cfg(tmp_path)
    start = {k: {n: t.clone() for n, t in net.state_dict().items()} for k, net in _initial(raw).networks.items()}
    result = Trainer(from_dict(raw), progress=False).run()
    assert result["step"] == 1 and Path(result["model_file"]).is_file()
    from srkit.engine import checkpoint as ckpt

    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "run" / "checkpoints"))
    g_after, d_after = state["networks"]["net"], state["networks"]["disc"]

    def changed(prefix: str, after: dict, before: dict) -> bool:
        return any(not torch.equal(after[k], before[k]) for k in after if k.startswith(prefix))

    for part in ("encoder.", "fusion_out.", "decoder."):
        assert changed(part, g_after, start["net"]), part
    for part in ("generator.", "fusion_skip."):  # latent bank and the RGB-branch fusions stay as they were
        assert not changed(part, g_after, start["net"]), part
    for k, v in g_after.items():
        if k.startswith("generator."):
            assert torch.equal(v, flat["generator_ema." + k[len("generator."):]]), k
    assert changed("", d_after, start["disc"])
    # both optimisers: Adam (0.9, 0.99), lr 1e-4 at step 0 of the cosine; G holds only trainable tensors
    g_opt, d_opt = state["optimizers"]["net"], state["optimizers"]["disc"]
    assert g_opt["param_groups"][0]["betas"] == d_opt["param_groups"][0]["betas"] == (0.9, 0.99)
    n_trainable = sum(1 for n, p in _initial(raw).networks["net"].named_parameters() if p.requires_grad)
    assert len(g_opt["param_groups"][0]["params"]) == n_trainable
    assert len(g_opt["state"]) == n_trainable and len(d_opt["state"]) > 0
    # the model file: the generator alone, rebuilt from its GLEAN arguments (no 'scale' among them)
    from srkit.model_file import load_model

    loaded = load_model(result["model_file"])
    assert loaded.arch == "glean" and loaded.arch_kwargs == TINY_ARGS
    assert all(torch.equal(v, g_after[k]) for k, v in loaded.net.state_dict().items())
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert '"loss/gan"' in log and '"loss/disc_total"' in log and '"loss/mse"' in log


def test_resume_restores_both_optimisers(tiny, tmp_path):
    """Two steps straight equal one step, then --resume for the second: G, D and both Adam states."""
    write_faces(tmp_path / "hr")
    write_stylegan2(tmp_path / "sg2.pth")
    from srkit.engine import checkpoint as ckpt

    raw_a = tiny_cfg(tmp_path, **{"train.steps": 2, "output_dir": str(tmp_path / "a")})
    Trainer(from_dict(raw_a), progress=False).run()
    raw_b = tiny_cfg(tmp_path, **{"train.steps": 1, "output_dir": str(tmp_path / "b")})
    Trainer(from_dict(raw_b), progress=False).run()
    raw_b["train"]["steps"] = 2
    Trainer(from_dict(raw_b), resume=True, progress=False).run()
    a = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "a" / "checkpoints"))
    b = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "b" / "checkpoints"))
    assert a["step"] == b["step"] == 2
    for name in ("net", "disc"):
        for k, v in a["networks"][name].items():
            assert torch.equal(v, b["networks"][name][k]), (name, k)
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        for i in sa:
            assert int(sa[i]["step"]) == int(sb[i]["step"]) == 2
            assert torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])
    assert a["schedules"] == b["schedules"] and a["schedules"]["disc"]["last_step"] == 2


# --- data ----------------------------------------------------------------------------------------------------


def test_fixed_size_pairs(tmp_path):
    from srkit.data.io import read_image
    from srkit.data.resize import imresize

    files = sorted(write_faces(tmp_path / "hr", n=3).iterdir())
    ds = FixedSizePairs(files, IN, OUT, flip=True, seed=5)
    assert len(ds) == 3
    hr = read_image(files[0])
    lr = imresize(hr, scale=1 / (OUT // IN))
    flips = []
    for epoch in range(8):
        item = ds[(epoch, 0)]
        assert item["hr"].shape == (3, OUT, OUT) and item["lr"].shape == (3, IN, IN)
        flipped = not torch.equal(item["hr"], torch.from_numpy(hr.transpose(2, 0, 1).copy()).float() / 255)
        want_hr, want_lr = (hr[:, ::-1], lr[:, ::-1]) if flipped else (hr, lr)
        assert torch.equal(item["hr"], torch.from_numpy(want_hr.transpose(2, 0, 1).copy()).float() / 255)
        assert torch.equal(item["lr"], torch.from_numpy(want_lr.transpose(2, 0, 1).copy()).float() / 255)
        assert torch.equal(ds[(epoch, 0)]["hr"], item["hr"])  # a function of (seed, epoch, index)
        flips.append(flipped)
    assert any(flips) and not all(flips)
    assert not any(not torch.equal(FixedSizePairs(files, IN, OUT, flip=False)[(e, 0)]["hr"],
                                   FixedSizePairs(files, IN, OUT, flip=False)[(0, 0)]["hr"]) for e in range(4))
    # other sizes: an error naming the file, or resized (square only) with resize_hr
    big = write_faces(tmp_path / "big", n=1, size=2 * OUT)
    with pytest.raises(ConfigError, match=r"00\.png is 64x64.*model\.args\.out_size.*method\.args\.resize_hr"):
        FixedSizePairs(sorted(big.iterdir()), IN, OUT)
    item = FixedSizePairs(sorted(big.iterdir()), IN, OUT, resize_hr=True, flip=False)[0]
    want = imresize(read_image(big / "00.png"), size=(OUT, OUT))
    assert torch.equal(item["hr"], torch.from_numpy(want.transpose(2, 0, 1).copy()).float() / 255)
    from PIL import Image

    Image.new("RGB", (OUT, OUT // 2)).save(tmp_path / "wide.png")
    with pytest.raises(ConfigError, match="square images only"):
        FixedSizePairs([tmp_path / "wide.png"], IN, OUT, resize_hr=True)


def test_faces_folder_of_the_shared_data(shared_data, tiny, tmp_path):
    """The lite config's data.train entry 'faces/FFHQ_256' resolves against the shared data root."""
    raw = tiny_cfg(tmp_path, **{"data.train": ["faces/FFHQ_256"],
                                "method.args": {"pretrained": False, "resize_hr": True}})
    m = GLEANMethod(from_dict(raw), torch.device("cpu"))
    m.opts = m.check_config()
    ds = m.train_dataset()
    assert len(ds) == 10 and ds[0]["hr"].shape == (3, OUT, OUT) and ds[0]["lr"].shape == (3, IN, IN)


# --- configuration errors ------------------------------------------------------------------------------------


def test_bad_configs_name_the_key(tiny, tmp_path):
    write_stylegan2(tmp_path / "sg2.pth")

    def check(match: str, **over) -> None:
        with pytest.raises(ConfigError, match=match):
            built(tiny_cfg(tmp_path, **over))

    check(r"model\.arch 'glean', not 'edsr'", **{"model.arch": "edsr", "model.args": {}})
    check(r"method\.args\.stylegan2 is required", **{"method.args": {}})
    check(r"method\.args\.stylegan2 \(or method\.args\.disc_init\)",
          **{"method.args": {}, "model.init": "some_glean_model.safetensors"})
    check(r"data\.patch_size \(16\) must be the HR image side, model\.args\.out_size = 32", **{"data.patch_size": 16})
    check(r"data\.scale \(8\) must equal model\.args out_size / in_size", **{"data.scale": 8, "data.patch_size": 32})
    check(r"data\.batch_size: 6 images", **{"data.batch_size": 6})
    check(r"method\.args\.norm_img must be true or false", **{"method.args": {"pretrained": False, "norm_img": 1}})
    check(r"unknown method\.args \['disc_path'\]", **{"method.args": {"disc_path": "x"}})
    check(r"glean: in_size must be a power of two", **{"model.args": {**TINY_ARGS, "in_size": 12}})
    # with the GAN off, the discriminator file is not needed (the bank still is, unless model.init)
    m = built(tiny_cfg(tmp_path, **{"train.gan": {"weight": 0.0}}))
    assert "disc" not in m.networks and m.updates(0) == ["net"]
    # a training image of the wrong size: named, with the fix
    write_faces(tmp_path / "hr", n=1, size=2 * OUT)
    with pytest.raises(ConfigError, match=r"is 64x64, but GLEAN x4 trains on whole 32x32 HR images"):
        built(tiny_cfg(tmp_path)).train_dataset()
    # validation images must be of the fixed size too
    m = built(tiny_cfg(tmp_path))
    with pytest.raises(SrkitError, match=r"GLEAN validates on 32x32 HR images \(8x8 LR\)"):
        m.infer(m.networks["net"], torch.rand(1, 3, 12, 12))


# --- shipped configs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,sizes,batch", [("glean_cat_x8", (32, 256), 16), ("glean_ffhq_x16", (64, 1024), 8)])
def test_official_configs(name, sizes, batch):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    m = GLEANMethod(cfg, torch.device("cpu"))
    opts = m.check_config()
    assert m.sizes() == sizes and cfg.data.scale == sizes[1] // sizes[0] and cfg.data.patch_size == sizes[1]
    assert cfg.data.batch_size == batch and cfg.data.augment and cfg.data.val_preset == "glean"
    t = cfg.train
    assert t.steps == 300_000
    for o in (t.optimizer, t.gan.optimizer):
        assert o.name == "adam" and o.lr == 1e-4 and tuple(o.betas) == (0.9, 0.99)
    s = t.schedule
    assert s.name == "cosine_restart" and s.periods == [300_000] and s.eta_min == 1e-7
    assert t.gan.weight == 1e-2 and t.gan.loss == "vanilla" and t.gan.start_step == 0
    assert t.losses["mse"].weight == 1.0
    p = t.losses["perceptual"]
    assert p.weight == 1e-2 and p.args["arch"] == "vgg16" and p.args["layer_weights"] == {"conv4_3": 1.0}
    assert p.args["criterion"] == "l2" and opts["norm_img"] is False and opts["pretrained"] is True
    assert opts["stylegan2"].endswith(".pth") and t.ema_decay == 0.0
    assert {k: cfg.model.args[k] for k in ("in_size", "out_size", "style_channels")} == \
        {"in_size": sizes[0], "out_size": sizes[1], "style_channels": 512}


def test_lite_config_is_valid_and_small():
    cfg = load_config(ROOT / "configs" / "glean_faces_lite.yaml")
    m = GLEANMethod(cfg, torch.device("cpu"))
    opts = m.check_config()
    assert opts["pretrained"] is False and opts["resize_hr"] is True
    assert cfg.train.steps <= 500 and cfg.train.device == "cpu" and cfg.data.val is None
    assert cfg.train.gan.weight == 1e-2 and cfg.data.train == ["faces/FFHQ_256"]
    from srkit import archs

    net = archs.build("glean", **cfg.model.args)
    assert sum(p.numel() for p in net.parameters()) < 3_000_000  # max_channels: 64 (65 M without it)
    assert max(net.generator.channels.values()) == 64


def test_trainer_step_equals_a_plain_mmagic_style_srgan_step(tiny, tmp_path):
    """One Trainer iteration equals MMagic's SRGAN.train_step written out on the [-1, 1] images: G step on
    MSE + 1e-2 BCE(D(fake), 1) with D frozen, then D on BCE(D(real), 1) and BCE(D(fake.detach()), 0) from two
    separate passes and two backward calls, Adam (0.9, 0.99) at lr 1e-4 (the cosine's first value) for both."""
    import torch.nn.functional as F

    from srkit.archs.stylegan2 import StyleGAN2Discriminator

    write_stylegan2(tmp_path / "sg2.pth")
    g = torch.Generator().manual_seed(11)
    hr = torch.rand(2, 3, OUT, OUT, generator=g)
    lr = torch.rand(2, 3, IN, IN, generator=g)
    items = [{"lr": lr[i], "hr": hr[i], "name": str(i)} for i in range(2)]
    raw = tiny_cfg(tmp_path, **{"data.augment": False})
    Trainer(from_dict(raw), progress=False, train_set=items).run()
    from srkit.engine import checkpoint as ckpt

    after = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "run" / "checkpoints"))["networks"]

    ref = _initial(raw)
    net, disc = ref.networks["net"], ref.networks["disc"]
    opt_g = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.9, 0.99))

    def d_official(x):  # the StyleGAN2 discriminator on [-1, 1] images
        return StyleGAN2Discriminator.forward(disc, x)

    lq, gt = lr * 2 - 1, hr * 2 - 1
    fake = net.forward_official(lq)
    disc.requires_grad_(False)
    pred = d_official(fake)
    loss_g = F.mse_loss(fake, gt) + 1e-2 * F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    disc.requires_grad_(True)
    real_pred = d_official(gt)
    opt_d.zero_grad()
    F.binary_cross_entropy_with_logits(real_pred, torch.ones_like(real_pred)).backward()
    fake_pred = d_official(fake.detach())
    F.binary_cross_entropy_with_logits(fake_pred, torch.zeros_like(fake_pred)).backward()
    opt_d.step()

    for name, module in (("net", net), ("disc", disc)):
        worst = max((after[name][k] - v).abs().max().item() for k, v in module.state_dict().items())
        assert worst < 1e-6, name  # an Adam step moves each weight by ~1e-4: a wrong term would show
