"""MASA training: the official per-epoch cosine learning rate, the discriminator, the reference-pair data,
and a few MASA-rec and MASA-GAN steps through the engine (tiny images)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from srkit.engine import Trainer
from srkit.engine.config import from_dict, load_config
from srkit.errors import ConfigError, SrkitError
from srkit.methods import get_method
from srkit.methods.masa import Discriminator160, MASAMethod, RefPairs, official_lr

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "masa"


def deterministic_disc_state(keys_shapes: dict) -> dict[str, torch.Tensor]:
    """Discriminator weights of tests/fixtures/masa/README.md: per-key generators seeded by crc32 of the key;
    weights uniform with variance 1/fan-in, biases +-0.05, batch-norm scales 0.75..1.25 and shifts +-0.1;
    running statistics and counters as a fresh BatchNorm2d (zeros, ones, 0)."""
    out = {}
    for k, shape in keys_shapes.items():
        if k.endswith("running_mean"):
            out[k] = torch.zeros(shape)
            continue
        if k.endswith("running_var"):
            out[k] = torch.ones(shape)
            continue
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros(shape, dtype=torch.long)
            continue
        u = torch.rand(shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())), dtype=torch.float64)
        if k.startswith("bn") and k.endswith("weight"):
            t = 0.75 + 0.5 * u
        elif k.startswith("bn"):
            t = 0.2 * (u - 0.5)
        elif len(shape) == 1:
            t = 0.1 * (u - 0.5)
        else:
            t = (2 * u - 1) * math.sqrt(3.0 / math.prod(shape[1:]))
        out[k] = t.float()
    return out


def test_registered():
    assert get_method("masa") is MASAMethod


def test_official_lr_is_the_per_epoch_cosine():
    # CosineAnnealingLR(T_max=500) stepped at the start of each epoch: epoch e runs at step e + 1.
    first = 1e-4 * (1 + math.cos(math.pi / 500)) / 2
    assert official_lr(1e-4, 0, 1319, 500) == pytest.approx(first, rel=1e-12)
    assert official_lr(1e-4, 1318, 1319, 500) == official_lr(1e-4, 0, 1319, 500)
    assert official_lr(1e-4, 1319, 1319, 500) == pytest.approx(1e-4 * (1 + math.cos(2 * math.pi / 500)) / 2)
    assert official_lr(1e-4, 0, 1319, 500, start_epoch=250) == pytest.approx(1e-4 * (1 + math.cos(251 * math.pi / 500)) / 2)
    assert official_lr(1e-4, 499 * 1319, 1319, 500) == pytest.approx(0.0, abs=1e-20)


def test_discriminator_layout():
    d = Discriminator160(8, 160)
    bns = [m for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(bns) == 9 and len(convs) == 10 and convs[0].bias is not None and convs[1].bias is None
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2, 1, 2]
    assert d.linear1.in_features == 64 * 5 * 5
    assert d(torch.rand(2, 3, 160, 160)).shape == (2, 1)
    with pytest.raises(SrkitError, match="160x160"):
        d(torch.rand(2, 3, 128, 128))


def test_adversarial_step_equals_official():
    """One official AdversarialLoss step (D step with Adam (0, 0.9), then the G term; fixture README) with a
    4-channel VGGStyleDiscriminator160: same D loss, G loss, gradient on the fake image, updated D weights
    and batch-norm running statistics (five D passes)."""
    from safetensors.torch import load_file

    from srkit.methods.masa import discriminator_loss, generator_adversarial_loss

    torch.set_num_threads(1)
    off = load_file(str(FIX / "masa_official_gan_step.safetensors"))
    d = Discriminator160(4, 160)
    d.load_state_dict(deterministic_disc_state({k: v.shape for k, v in d.state_dict().items()}))
    g = torch.Generator().manual_seed(7)
    real = torch.rand(2, 3, 160, 160, generator=g)
    fake = torch.rand(2, 3, 160, 160, generator=g).requires_grad_(True)
    opt = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9), eps=1e-8)
    opt.zero_grad()
    d_out = discriminator_loss(d, real, fake.detach())
    d_out["total"].backward()
    opt.step()
    d_grads = [p.grad.clone() for p in d.parameters()]
    g_adv = generator_adversarial_loss(d, real, fake)
    g_adv.backward()
    # The generator term leaves D's gradients alone and D trainable afterwards.
    assert all(torch.equal(a, p.grad) for a, p in zip(d_grads, d.parameters()))
    assert all(p.requires_grad for p in d.parameters())
    assert d_out["total"].item() == pytest.approx(off["loss_d"].item(), abs=1e-6)
    assert g_adv.item() == pytest.approx(off["loss_g"].item(), abs=1e-6)
    assert torch.allclose(fake.grad[:, :, ::8, ::8], off["fake_grad_sub"], rtol=1e-4, atol=1e-9)
    assert fake.grad.double().abs().sum().item() == pytest.approx(off["fake_grad_abs_sum"].item(), rel=1e-5)
    sd = d.state_dict()
    assert torch.allclose(sd["conv0_0.weight"], off["after_conv0_0_weight"], atol=1e-7)
    assert torch.allclose(sd["linear2.weight"], off["after_linear2_weight"], atol=1e-7)
    assert torch.allclose(sd["bn4_1.running_mean"], off["after_bn4_1_running_mean"], atol=1e-6)
    assert torch.allclose(sd["bn0_1.running_var"], off["after_bn0_1_running_var"], atol=1e-6)
    assert int(sd["bn2_0.num_batches_tracked"]) == int(off["after_bn2_0_num_batches"].item()) == 5


def _write_pairs(root: Path, n: int = 3, size: int = 64) -> tuple[Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    inp, ref = root / "input", root / "ref"
    inp.mkdir(parents=True)
    ref.mkdir()
    for i in range(n):
        base = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(base).resize((size, size), Image.BICUBIC))
        Image.fromarray(img).save(inp / f"{i:03d}.png")
        Image.fromarray(np.ascontiguousarray(img[:, ::-1])).save(ref / f"{i:03d}.png")  # a mirrored "reference"
    return inp, ref


def test_ref_pairs(tmp_path):
    from PIL import Image

    inp, ref = _write_pairs(tmp_path, size=56)  # 56 -> padded to 64
    plain = RefPairs(inp, ref, augment=False, swap=False)
    item = plain[1]
    assert item["hr"].shape == (3, 64, 64) and item["lr"].shape == (3, 16, 16)
    assert item["ref"].shape == (3, 64, 64) and item["ref_down"].shape == (3, 16, 16)
    hr = np.asarray(Image.open(inp / "001.png"))
    hr_pad = np.pad(hr, ((0, 8), (0, 8), (0, 0)), mode="edge")
    assert torch.equal(item["hr"], torch.from_numpy(hr_pad).permute(2, 0, 1).float() / 255)
    lr = np.asarray(Image.fromarray(hr_pad).resize((16, 16), Image.BICUBIC))
    assert torch.equal(item["lr"], torch.from_numpy(lr.copy()).permute(2, 0, 1).float() / 255)
    aug = RefPairs(inp, ref, augment=True, seed=4)
    a, b = aug[0], aug[0]
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic per (seed, epoch, index)
    aug.set_epoch(1)
    assert any(not torch.equal(a[k], aug[0][k]) for k in a)
    with pytest.raises(SrkitError, match="reference images are missing"):
        (ref / "002.png").unlink()
        RefPairs(inp, ref)


def _cfg(out: Path, steps: int, gan: bool, inp: Path, ref: Path, vgg: Path | None = None):
    losses = {"l1": {"weight": 1.0}}
    if vgg is not None:
        losses["perceptual"] = {"weight": 1.0, "args": {"weights_path": str(vgg), "layer_weights": {"conv2_2": 1.0}}}
    train = {"steps": steps, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "tensorboard": False,
             "optimizer": {"lr": 1e-4}, "schedule": {"name": "constant"}, "losses": losses}
    if gan:
        train["gan"] = {"weight": 5e-3, "loss": "relativistic", "channels": 4,
                        "optimizer": {"lr": 1e-4, "betas": [0.0, 0.9]}}
    return from_dict({
        "name": "masa_tiny", "seed": 1, "output_dir": str(out), "model": {"arch": "masa"},
        "method": {"name": "masa", "args": {"steps_per_epoch": 1, "t_max_epochs": 4, "disc_size": 64,
                                            "input_dir": str(inp), "ref_dir": str(ref)}},
        "data": {"train": ["unused"], "scale": 4, "patch_size": 64, "batch_size": 2, "augment": False, "val": None},
        "train": train,
    })


def test_rec_and_gan_steps_through_the_engine(tmp_path):
    torch.set_num_threads(1)
    from srkit.archs.vgg import VGGFeatures

    inp, ref = _write_pairs(tmp_path / "data")
    vgg = tmp_path / "vgg.pth"
    torch.save(VGGFeatures(["conv2_2"]).state_dict(), vgg)

    # MASA-rec: two steps, lr stepping per "epoch" (1 step here) along the cosine.
    cfg = _cfg(tmp_path / "rec", 2, False, inp, ref)
    trainer = Trainer(cfg, progress=False)  # the method's own RefPairs of method.args input_dir / ref_dir
    result = trainer.run()
    assert result["step"] == 2 and "3 training samples" in (tmp_path / "rec" / "train.log").read_text()
    from srkit.model_file import load_model

    model = load_model(result["model_file"])  # a reference-based x4 model file
    assert model.descriptor.needs_ref and model.descriptor.scales == (4,)
    logs = [json.loads(line) for line in (tmp_path / "rec" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss/l1" in r]
    assert [r["lr"] for r in steps] == pytest.approx([official_lr(1e-4, s, 1, 4) for s in (0, 1)])
    assert all(np.isfinite(r["loss/total"]) for r in steps)

    # MASA-GAN: D first, then G with L1 + perceptual + relativistic GAN.
    cfg = _cfg(tmp_path / "gan", 2, True, inp, ref, vgg)
    trainer = Trainer(cfg, progress=False, train_set=RefPairs(inp, ref, augment=False))
    assert trainer.run()["step"] == 2
    method = trainer.method
    assert method.updates(0) == ["disc", "net"]
    logs = [json.loads(line) for line in (tmp_path / "gan" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss/gan" in r]
    assert len(steps) == 2
    for r in steps:
        assert r["loss/total"] == pytest.approx(r["loss/l1"] + r["loss/perceptual"] + r["loss/gan"], rel=1e-5)
        assert np.isfinite(r["loss/disc_total"])
    # Validation-style inference uses the LR as its own reference.
    with torch.no_grad():
        assert method.infer(method.networks["net"].eval(), torch.rand(1, 3, 20, 24)).shape == (1, 3, 80, 96)


def test_missing_reference_and_config_errors(tmp_path):
    inp, ref = _write_pairs(tmp_path / "data", n=2)
    cfg = _cfg(tmp_path / "x", 1, False, inp, ref)
    method = MASAMethod(cfg, torch.device("cpu"))
    method.build()
    with pytest.raises(SrkitError, match="need a 'ref' image"):
        method.training_step({"lr": torch.rand(1, 3, 16, 16), "hr": torch.rand(1, 3, 64, 64)}, 0, "net")
    assert isinstance(method.train_dataset(), RefPairs)
    bad = _cfg(tmp_path / "y", 1, True, inp, ref)
    bad.train.gan.loss = "hinge"
    with pytest.raises(ConfigError, match="relativistic"):
        MASAMethod(bad, torch.device("cpu")).build()
    bad = _cfg(tmp_path / "z", 1, False, inp, ref)
    bad.method.args["lr_decay"] = 3
    with pytest.raises(ConfigError, match="unknown method.args"):
        MASAMethod(bad, torch.device("cpu")).build()


def test_official_configs_load():
    rec = load_config(ROOT / "configs" / "masa_rec.yaml")
    assert rec.method.name == "masa" and rec.model.arch == "masa" and rec.data.batch_size == 9
    assert rec.data.val_preset == "masa"  # Y channel, no border crop
    assert rec.train.steps == 250 * 1319 and rec.train.losses["l1"].weight == 1.0 and rec.train.gan.weight == 0
    gan = load_config(ROOT / "configs" / "masa_gan.yaml")
    assert gan.train.steps == 50 * 1319 and gan.method.args["start_epoch"] == 250
    assert gan.train.gan.weight == 5e-3 and gan.train.gan.loss == "relativistic"
    assert tuple(gan.train.gan.optimizer.betas) == (0.0, 0.9)
    assert gan.train.losses["perceptual"].args["layer_weights"] == {"conv5_4": 1.0}
