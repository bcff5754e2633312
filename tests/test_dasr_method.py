"""DASR training: MoCo against the official code, the official learning-rate steps, stages through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from srkit.archs.dasr import DASR, DegradationEncoder
from srkit.engine import Trainer
from srkit.engine.config import from_dict, load_config
from srkit.errors import ConfigError
from srkit.methods import get_method
from srkit.methods.dasr import DEFAULTS, DASRMethod, MoCo, official_lr, two_patches

from test_dasr import deterministic_state

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "dasr"


def test_registered():
    assert get_method("dasr") is DASRMethod


def test_moco_step_matches_official():
    from safetensors.torch import load_file

    off = load_file(str(FIX / "dasr_official_io.safetensors"))
    state = {k[len("E.encoder_q."):]: v for k, v in deterministic_state(DASR(4)).items() if k.startswith("E.encoder_q.")}
    enc = DegradationEncoder()
    enc.load_state_dict(state)
    moco = MoCo(enc, queue_size=64)
    moco.encoder_k.load_state_dict({k: v * 0.9 if v.is_floating_point() else v for k, v in state.items()})
    moco.queue.copy_(F.normalize(torch.randn(256, 64, generator=torch.Generator().manual_seed(7)), dim=0))
    moco.queue_ptr[0] = 62
    enc.train()
    moco.train()
    fea, logits = moco(enc, off["input_255"], off["moco_input_key_255"])
    assert (fea - off["moco_embedding"]).abs().max() < 1e-4
    assert logits.shape == (2, 65)
    assert (logits - off["moco_logits"]).abs().max() < 1e-3
    assert torch.allclose(moco.queue, off["moco_queue_after"], atol=1e-6)
    assert int(moco.queue_ptr) == int(off["moco_queue_ptr_after"]) == 0  # 62 + 2 wraps around
    assert torch.allclose(moco.encoder_k.E[0].weight, off["moco_k_E0_weight_after"], atol=1e-7)
    assert torch.allclose(moco.encoder_k.E[1].running_mean, off["moco_k_bn_running_mean_after"], atol=1e-4)
    assert torch.allclose(enc.E[1].running_mean, off["moco_q_bn_running_mean_after"], atol=1e-4)
    loss = F.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
    assert abs(float(loss.detach()) - float(off["moco_loss"])) < 1e-5


def test_momentum_update_and_queue_small_cases():
    enc = DegradationEncoder()
    moco = MoCo(enc, queue_size=6, momentum=0.75, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(moco.queue.norm(dim=0), torch.ones(6))
    assert all(not p.requires_grad for p in moco.encoder_k.parameters())
    with torch.no_grad():
        for p in enc.parameters():
            p.fill_(1.0)
        for p in moco.encoder_k.parameters():
            p.fill_(3.0)
    moco.momentum_update(enc)
    assert all(torch.all(p == 2.5) for p in moco.encoder_k.parameters())  # 0.75 * 3 + 0.25 * 1
    before = moco.queue.clone()
    keys = torch.arange(2 * 256, dtype=torch.float32).view(2, 256)
    moco.enqueue(keys)
    moco.enqueue(keys + 1)
    assert int(moco.queue_ptr) == 4
    assert torch.equal(moco.queue[:, :2], keys.t()) and torch.equal(moco.queue[:, 2:4], (keys + 1).t())
    assert torch.equal(moco.queue[:, 4:], before[:, 4:])
    moco.enqueue(keys + 2)
    assert int(moco.queue_ptr) == 0 and torch.equal(moco.queue[:, 4:], (keys + 2).t())
    with pytest.raises(ConfigError, match="not a multiple of the batch size 4"):
        moco.enqueue(torch.zeros(4, 256))


def test_official_learning_rate_steps():
    o = dict(DEFAULTS)
    e = o["epoch_steps"]
    assert official_lr(0, o) == (1e-3, 1)
    assert official_lr(59 * e - 1, o) == (1e-3, 1)  # epoch 59
    assert official_lr(59 * e, o)[0] == pytest.approx(1e-4) and official_lr(59 * e, o)[1] == 1  # epoch 60
    assert official_lr(100 * e - 1, o)[1] == 1 and official_lr(100 * e, o) == (1e-4, 2)  # epoch 101: stage 2
    assert official_lr(224 * e - 1, o)[0] == 1e-4 and official_lr(224 * e, o)[0] == 5e-5  # epoch 225
    assert official_lr(600 * e - 1, o)[0] == pytest.approx(6.25e-6)  # epoch 600, the last


def test_two_patches_share_the_item():
    hr = torch.arange(2 * 3 * 10 * 10, dtype=torch.float32).view(2, 3, 10, 10)
    p = two_patches(hr, 4, torch.Generator().manual_seed(0))
    assert p.shape == (2, 2, 3, 4, 4)
    for i in range(2):
        for j in range(2):
            v = int(p[i, j, 0, 0, 0])
            y, x = divmod(v - i * 300, 10)
            assert torch.equal(p[i, j], hr[i, :, y : y + 4, x : x + 4])
    with pytest.raises(ConfigError, match="raise data.patch_size"):
        two_patches(hr, 12, torch.Generator())


class HRCrops:
    def __init__(self, n: int = 4, size: int = 24) -> None:
        g = torch.Generator().manual_seed(5)
        self.hr = F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(size, size), mode="bilinear",
                                align_corners=False)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": F.avg_pool2d(self.hr[i], 2), "hr": self.hr[i], "name": str(i)}


def tiny_cfg(out: Path, steps: int = 4, **method_args):
    args = {"epoch_steps": 2, "encoder_epochs": 1, "lr_encoder": 1e-3, "lr_sr": 1e-4, "queue_size": 8,
            "patch_size": 16, "lr_decay_encoder": 60, "lr_decay_sr": 125}
    args.update(method_args)
    return from_dict({
        "name": "dasr_tiny", "seed": 3, "output_dir": str(out),
        "model": {"arch": "dasr"},
        "method": {"name": "dasr", "args": args},
        "data": {"train": ["unused"], "scale": 2, "patch_size": 24, "batch_size": 2, "augment": False, "val": None},
        "train": {"steps": steps, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "tensorboard": False,
                  "optimizer": {"lr": 1e-3}, "schedule": {"name": "constant"},
                  "losses": {"l1": {"weight": 255.0}}},
    })


def test_two_stages_through_the_engine(tmp_path):
    cfg = tiny_cfg(tmp_path / "run", steps=4)
    trainer = Trainer(cfg, progress=False, train_set=HRCrops())
    result = trainer.run()
    assert result["step"] == 4
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss/contrast" in r]
    assert [r["loss/stage"] for r in steps] == [1, 1, 2, 2]
    assert [r["lr"] for r in steps] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    assert all("loss/l1" not in r for r in steps[:2]) and all("loss/l1" in r for r in steps[2:])
    for r in steps[2:]:
        assert r["loss/total"] == pytest.approx(r["loss/contrast"] + 255.0 * r["loss/l1"], rel=1e-5)
    # 4 steps x 2 keys went round the 8-entry queue once
    method = trainer.method
    assert int(method.moco.queue_ptr) == 0
    assert torch.allclose(method.moco.queue.norm(dim=0), torch.ones(8), atol=1e-5)
    # the model file holds G and the query encoder only, and upscales blind
    from srkit.model_file import load_model

    net = load_model(result["model_file"]).net
    assert set(net.state_dict()) == set(DASR(2).state_dict())
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_stage_one_leaves_g_alone_and_moves_the_key_encoder(tmp_path):
    cfg = tiny_cfg(tmp_path / "s1", steps=2)
    trainer = Trainer(cfg, progress=False, train_set=HRCrops())
    torch.manual_seed(cfg.seed)
    g0 = {k: v.clone() for k, v in DASR(2).state_dict().items()}  # the engine seeds the same way before build
    trainer.run()
    net = trainer.method.networks["net"]
    g1 = net.state_dict()
    assert all(torch.equal(g0[k], g1[k]) for k in g0 if k.startswith("G."))
    assert not torch.equal(g0["E.encoder_q.E.0.weight"], g1["E.encoder_q.E.0.weight"])
    k = trainer.method.moco.encoder_k.E[0].weight
    q0, q1 = g0["E.encoder_q.E.0.weight"], g1["E.encoder_q.E.0.weight"]
    assert not torch.equal(k, q0) and not torch.equal(k, q1)
    # two momentum updates from q0: k = q0 + 0.001 * (q after step 1 - q0), q after step 1 lies between
    assert (k - q0).abs().max() < 0.01 * (q1 - q0).abs().max()


def test_config_checks(tmp_path):
    cfg = tiny_cfg(tmp_path / "bad")
    cfg.train.schedule.name = "multistep"
    with pytest.raises(ConfigError, match="set train.schedule.name to constant"):
        DASRMethod(cfg, torch.device("cpu")).build()
    cfg = tiny_cfg(tmp_path / "bad", nosuch=1)
    with pytest.raises(ConfigError, match="unknown method.args"):
        DASRMethod(cfg, torch.device("cpu")).build()
    m = DASRMethod(tiny_cfg(tmp_path / "ok", patch_size=None), torch.device("cpu"))
    m.build()
    assert m.opts["patch_size"] == 96 and m.opts["sigma_max"] == 2.0  # 48 x 2; the paper's x2 range
    assert m.degradation.sigma_max == 2.0 and m.degradation.noise == 0.0


def test_official_config_loads():
    cfg = load_config(ROOT / "configs" / "dasr_x4_iso.yaml")
    assert cfg.method.name == "dasr" and cfg.model.arch == "dasr" and cfg.data.scale == 4
    assert cfg.train.steps == 600 * 970 and cfg.data.batch_size == 32
    assert cfg.train.losses["l1"].weight == 255.0
    a = {**DEFAULTS, **cfg.method.args}
    assert official_lr(cfg.train.steps - 1, a)[0] == pytest.approx(6.25e-6)


def test_resume_continues_identically(tmp_path):
    # 4 steps in one go, or 2 + checkpoint + 2: the key encoder, queue, lr and draws must all carry over
    Trainer(tiny_cfg(tmp_path / "full", steps=4), progress=False, train_set=HRCrops()).run()
    cfg = tiny_cfg(tmp_path / "part", steps=2)
    cfg.train.ckpt_every = 2
    Trainer(cfg, progress=False, train_set=HRCrops()).run()
    resumed = Trainer(tiny_cfg(tmp_path / "part", steps=4), resume=True, progress=False, train_set=HRCrops())
    resumed.run()

    def logs(out):
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        return {r["step"]: (r["loss/total"], r["lr"]) for r in rows if "loss/total" in r}

    a, b = logs(tmp_path / "full"), logs(tmp_path / "part")
    assert [a[k] for k in (3, 4)] == [b[k] for k in (3, 4)]
    assert b[3][1] == pytest.approx(1e-4)


def test_aniso_config_builds_the_general_degradation(tmp_path):
    cfg = load_config(ROOT / "configs" / "dasr_x4_aniso.yaml")
    cfg.output_dir = str(tmp_path)
    m = DASRMethod(cfg, torch.device("cpu"))
    m.build()
    d = m.degradation
    assert (d.blur, d.lambda_min, d.lambda_max, d.noise, d.scale) == ("aniso", 0.2, 4.0, 25.0, 4)
    lr, hr = m.make_batch(torch.rand(2, 3, 384, 384, generator=torch.Generator().manual_seed(0)), step=0)
    assert lr.shape == (2, 2, 3, 48, 48) and hr.shape == (2, 2, 3, 192, 192)
    assert torch.equal(lr, m.make_batch(torch.rand(2, 3, 384, 384, generator=torch.Generator().manual_seed(0)), 0)[0])


def test_stage_two_sr_loss_trains_the_encoder_but_not_its_head(tmp_path):
    # official: G gets the representation undetached, so L1 reaches encoder_q's convs; the MLP head only
    # serves the contrastive loss
    m = DASRMethod(tiny_cfg(tmp_path / "g", contrast_weight=0.0), torch.device("cpu"))
    m.build()
    net = m.networks["net"].train()
    hr = HRCrops(2)[0]["hr"][None].repeat(2, 1, 1, 1)
    out = m.training_step({"hr": hr}, step=2, update="net")  # epoch 2 > encoder_epochs 1: stage 2
    assert float(out["stage"]) == 2 and float(out["total"].detach()) == pytest.approx(255.0 * float(out["l1"]), rel=1e-6)
    out["total"].backward()
    assert net.encoder.E[0].weight.grad.abs().sum() > 0 and net.G.head[0].weight.grad.abs().sum() > 0
    assert net.encoder.mlp[0].weight.grad is None or net.encoder.mlp[0].weight.grad.abs().sum() == 0
    assert all(p.grad is None for p in m.moco.encoder_k.parameters())
