"""Training engine: loss falls, exact resume, output-dir rules, schedules, EMA, GAN phase, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srkit.engine import checkpoint as ckpt
from srkit.engine.config import ScheduleConfig, from_dict
from srkit.engine.ema import EMA
from srkit.engine.optim import StepSchedule, lr_factor
from srkit.engine.trainer import Trainer
from srkit.errors import SrkitError



class SynthPairs:
    """Smooth random HR images (bicubic-upsampled noise) and their 2x box-downsampled LR, with a
    random crop that depends only on (seed, epoch, index), like PairedImageDataset."""

    def __init__(self, n: int = 12, size: int = 24, patch: int = 16, scale: int = 2, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, 3, size // 4, size // 4, generator=g)
        self.hr = F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        self.lr = F.avg_pool2d(self.hr, scale)
        self.patch, self.scale, self.seed, self.epoch = patch, scale, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        if self.patch is None:
            return {"lr": self.lr[i], "hr": self.hr[i], "name": str(i)}
        rng = np.random.default_rng([self.seed, self.epoch, i])
        p = self.patch // self.scale
        y, x = (int(v) for v in rng.integers(0, self.lr.shape[-1] - p + 1, size=2))
        s = self.scale
        return {"lr": self.lr[i, :, y:y + p, x:x + p], "hr": self.hr[i, :, y * s:(y + p) * s, x * s:(x + p) * s],
                "name": str(i)}


def tiny_cfg(out: Path, **train):
    t = {"steps": 8, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "tensorboard": False,
         "optimizer": {"lr": 2e-3}}
    t.update(train)
    return from_dict({
        "name": "tiny", "seed": 3, "output_dir": str(out),
        "model": {"arch": "fsrcnn", "args": {"d": 8, "s": 4, "m": 1}},
        "data": {"scale": 2, "patch_size": 16, "batch_size": 4, "val": None},
        "train": t,
    })


def run(cfg, **kw):
    kw.setdefault("train_set", SynthPairs())
    return Trainer(cfg, progress=False, **kw).run()


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_loss_falls_and_outputs_are_written(tmp_path):
    out = tmp_path / "run"
    result = run(tiny_cfg(out, steps=40, ckpt_every=20), val_set=SynthPairs(n=2, patch=None))
    losses = [r["loss/l1"] for r in read_log(out) if "loss/l1" in r]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert result["step"] == 40 and result["metrics"]["psnr"] > 10
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [20, 40]
    from srkit.model_file import load_model, read_metadata

    meta = read_metadata(result["model_file"])
    assert meta["recipe"]["train"]["steps"] == 40
    assert meta["metrics"]["val"]["psnr"] == pytest.approx(result["metrics"]["psnr"])
    assert meta["data"]["scale"] == 2
    net = load_model(result["model_file"])
    net = getattr(net, "net", net)
    assert isinstance(net, torch.nn.Module)
    assert (out / "config.yaml").is_file() and (out / "train.log").is_file()


def _all_state(out: Path, step: int) -> dict:
    return ckpt.load_checkpoint(ckpt.checkpoint_path(out / "checkpoints", step))


def test_resume_is_bit_identical(tmp_path):
    # 12 samples / batch 4 = 3 batches per epoch: the break at step 4 falls mid-epoch; the milestone,
    # EMA, clipping and random crops all have to be restored exactly.
    extra = dict(ema_decay=0.9, grad_clip=0.05, ckpt_every=4,
                 schedule={"name": "multistep", "milestones": [6], "gamma": 0.5})
    straight = tmp_path / "straight"
    run(tiny_cfg(straight, steps=9, **extra))
    split = tmp_path / "split"
    run(tiny_cfg(split, steps=4, **extra))
    run(tiny_cfg(split, steps=9, **extra), resume=True)
    a, b = _all_state(straight, 9), _all_state(split, 9)
    assert (a["epoch"], a["pos"]) == (b["epoch"], b["pos"]) == (2, 3)
    for k in a["networks"]["net"]:
        assert torch.equal(a["networks"]["net"][k], b["networks"]["net"][k]), k
        assert torch.equal(a["ema"]["weights"][k], b["ema"]["weights"][k]), k
    sa, sb = a["optimizers"]["net"]["state"], b["optimizers"]["net"]["state"]
    for i in sa:
        assert torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])
    assert a["optimizers"]["net"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    # and the resumed run's weights differ from the checkpoint it started from (it did train)
    w4 = _all_state(straight, 4)["networks"]["net"]
    assert not all(torch.equal(w4[k], a["networks"]["net"][k]) for k in w4)


def test_output_dir_is_never_silently_reused(tmp_path):
    out = tmp_path / "run"
    run(tiny_cfg(out, steps=2))
    with pytest.raises(SrkitError, match=f"output directory {out} is not empty.*--resume.*--force"):
        run(tiny_cfg(out, steps=2))
    (out / "notes.txt").write_text("mine")
    run(tiny_cfg(out, steps=3, ckpt_every=1000), force=True)
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3]  # the old step-2 file is gone
    assert (out / "notes.txt").read_text() == "mine"  # --force removes only run artefacts
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    with pytest.raises(SrkitError, match="no checkpoint"):
        run(tiny_cfg(other, steps=2), resume=True)


def test_amp_on_cpu_says_float32(tmp_path, capsys):
    run(tiny_cfg(tmp_path / "r", steps=1, amp="bf16"))
    assert "needs a GPU; this CPU run trains in float32" in capsys.readouterr().err


def test_gan_phase_updates_discriminator_from_start_step(tmp_path):
    cfg = tiny_cfg(tmp_path / "g", steps=4, ckpt_every=2,
                   gan={"weight": 0.1, "loss": "vanilla", "start_step": 2, "channels": 4})
    data = SynthPairs(size=64, patch=32)  # the discriminator needs >= 32 px
    run(cfg, train_set=data)
    d2 = _all_state(tmp_path / "g", 2)["networks"]["disc"]
    d4 = _all_state(tmp_path / "g", 4)["networks"]["disc"]
    log = read_log(tmp_path / "g")
    assert "loss/gan" in log[2] and "loss/gan" not in log[1]  # steps 3-4 are adversarial
    assert "loss/disc_total" in log[3]
    assert not all(torch.equal(d2[k], d4[k]) for k in d2)
    # no discriminator step before start_step: its Adam state is created at step 3
    assert _all_state(tmp_path / "g", 2)["optimizers"]["disc"]["state"] == {}


def test_multistep_schedule_values():
    s = ScheduleConfig(name="multistep", milestones=[10, 20], gamma=0.5)
    assert [lr_factor(s, k, 1e-3) for k in (0, 9, 10, 19, 20, 100)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    w = ScheduleConfig(name="constant", warmup_steps=4)
    assert [lr_factor(w, k, 1.0) for k in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]


def test_cosine_restart_schedule_values():
    base, eta = 2e-4, 1e-7
    s = ScheduleConfig(name="cosine_restart", periods=[10, 20], restart_weights=[1.0, 0.5], eta_min=eta)
    lr = lambda k: base * lr_factor(s, k, base)  # noqa: E731
    assert lr(0) == pytest.approx(base)
    assert lr(5) == pytest.approx(eta + (base - eta) * 0.5)                      # half-way down cycle 1
    assert lr(10) == pytest.approx(eta + 0.5 * (base - eta))                     # restart at weight 0.5
    assert lr(15) == pytest.approx(eta + 0.5 * (base - eta) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr(29) == pytest.approx(eta + 0.5 * (base - eta) * 0.5 * (1 + math.cos(math.pi * 19 / 20)))
    assert lr(30) == pytest.approx(eta) and lr(1000) == pytest.approx(eta)
    # the scheduler object applies the same values and restores them from its state
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=base)
    sch = StepSchedule(opt, s)
    for _ in range(15):
        sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(lr(15))
    opt2 = torch.optim.Adam([p], lr=base)
    sch2 = StepSchedule(opt2, s)
    sch2.load_state_dict(sch.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_ema_update_math():
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(0.0)
    ema = EMA(net, decay=0.9, warmup=False)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.bias.fill_(-1.0)
    ema.update(net)  # 0.9 * 1 + 0.1 * 3 = 1.2 ; 0.9 * 0 + 0.1 * -1 = -0.1
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 1.2))
    assert torch.allclose(ema.shadow.bias, torch.tensor([-0.1]))
    ema.update(net)  # 0.9 * 1.2 + 0.3 = 1.38
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 1.38))
    assert not ema.shadow.weight.requires_grad
    # with warm-up, update n uses min(decay, (1 + n) / (10 + n)): 2/11 first, then 3/12
    warm = EMA(torch.nn.Linear(1, 1, bias=False), decay=0.999)
    with torch.no_grad():
        warm.shadow.weight.fill_(0.0)
    target = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        target.weight.fill_(1.0)
    warm.update(target)
    assert warm.shadow.weight.item() == pytest.approx(1 - 2 / 11)
    warm.update(target)
    assert warm.shadow.weight.item() == pytest.approx(1 - (2 / 11) * (3 / 12))
    restored = EMA(torch.nn.Linear(1, 1, bias=False), decay=0.999)
    restored.load_state_dict(warm.state_dict())
    assert restored.num_updates == 2 and restored.current_decay() == pytest.approx(4 / 13)


def test_checkpoint_files_atomic_latest_and_pruned(tmp_path):
    for step in (5, 10, 15, 20):
        ckpt.atomic_save({"step": step}, ckpt.checkpoint_path(tmp_path, step))
    (tmp_path / "step_x.pt").write_text("not ours")
    assert ckpt.latest_checkpoint(tmp_path).name == "step_00000020.pt"
    ckpt.prune(tmp_path, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [15, 20]
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "step_00000030.pt").write_bytes(b"garbage")
    from srkit.errors import CheckpointError

    with pytest.raises(CheckpointError, match="step_00000030.pt"):
        ckpt.load_checkpoint(tmp_path / "step_00000030.pt")


def test_cli_trains_from_a_folder_of_images(tmp_path, capsys):
    from srkit.cli import main
    from srkit.data.io import write_image

    data = SynthPairs(n=6, size=32, patch=None, scale=2)
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    for i in range(6):
        img = (data.hr[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        write_image(tmp_path / "train" / f"{i}.png", img)
        if i < 2:
            write_image(tmp_path / "val" / f"{i}.png", img)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: cli\nmodel: {arch: fsrcnn, args: {d: 8, s: 4, m: 1}}\n"
        f"data: {{train: [{tmp_path / 'train'}], scale: 2, patch_size: 16, batch_size: 2, val: {tmp_path / 'val'}}}\n"
        "train: {steps: 3, tensorboard: false, val_every: 2}\n"
    )
    out = tmp_path / "out"
    assert main(["train", str(cfg), f"output_dir={out}", "--no-progress"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    assert any("val/" in line for line in (out / "log.jsonl").read_text().splitlines())
    assert main(["train", str(cfg), f"output_dir={out}", "--no-progress"]) == 1
    assert f"output directory {out} is not empty" in capsys.readouterr().err
    assert main(["train", str(cfg), "train.stepz=3"]) == 1
    assert "did you mean 'train.steps'" in capsys.readouterr().err


def test_time_limit_stops_cleanly_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    result = run(tiny_cfg(out, steps=50, time_limit=1e-9))  # up after the first step
    assert result["step"] == 1
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [1]
    assert "train.time_limit" in (out / "train.log").read_text()
    from srkit.model_file import read_metadata

    assert read_metadata(result["model_file"])["steps"] == 1
    again = run(tiny_cfg(out, steps=5), resume=True)
    assert again["step"] == 5


def test_model_init_loads_all_or_the_fitting_tensors(tmp_path):
    from srkit.model_file import load_model

    first = run(tiny_cfg(tmp_path / "a", steps=3))
    src = load_model(first["model_file"]).net.state_dict()
    # full init: the new run starts from exactly those weights (a vanishing lr keeps them)
    cfg = tiny_cfg(tmp_path / "b", steps=1, optimizer={"lr": 1e-30})
    cfg.model.init = str(first["model_file"])
    got = load_model(run(cfg)["model_file"]).net.state_dict()
    assert all(torch.allclose(src[k], got[k]) for k in src)
    # a wider network (d 8 -> 12): strict init refuses and names a misfit; partial init takes what fits
    wide = tiny_cfg(tmp_path / "c", steps=1, optimizer={"lr": 1e-30})
    wide.model.args = {"d": 12, "s": 4, "m": 1}
    wide.model.init = str(first["model_file"])
    with pytest.raises(SrkitError, match="head_conv.0.weight"):
        run(wide)
    wide.model.init_partial = True
    got = load_model(run(wide, force=True)["model_file"]).net.state_dict()
    assert torch.allclose(got["body_conv.1.weight"], src["body_conv.1.weight"])  # the 4 -> 4 map fits
    assert got["head_conv.0.weight"].shape[0] == 12
    log = (tmp_path / "c" / "train.log").read_text()
    assert "kept as initialised: " in log and "head_conv.0.weight" in log
