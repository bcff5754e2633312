"""SMSR: equality with the official code, agreement of the inference paths, converter, FLOPs, training."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from srkit import archs
from srkit.archs import smsr as smsr_module
from srkit.archs.smsr import SMSR, cpu_kernel

FIX = Path(__file__).resolve().parent / "fixtures" / "smsr"



def deterministic_state(net: SMSR) -> dict[str, torch.Tensor]:
    """The weights tests/fixtures/smsr/README.md describes (also used to make the official outputs)."""
    out = {}
    for k, v in net.state_dict().items():
        if "mean" in k:
            out[k] = v.clone()
            continue
        t = torch.randn(v.shape, generator=torch.Generator().manual_seed(zlib.crc32(k.encode())))
        if k.endswith("ch_mask"):
            out[k] = t
        elif k.endswith("bias"):
            out[k] = 0.01 * t
        else:
            out[k] = t / (v[0].numel() ** 0.5)
    return out


@pytest.fixture(scope="module")
def official():
    from safetensors.torch import load_file

    return load_file(str(FIX / "smsr_official_io.safetensors"))


@pytest.fixture(scope="module")
def det_net():
    torch.manual_seed(0)
    net = SMSR(2)
    net.load_state_dict(deterministic_state(net))
    return net.eval()


def _force_gather(net: SMSR, on: bool = True) -> None:
    from srkit.archs.smsr import SPARSE_MAX_DENSITY

    for m in net.body:
        m.sparse_max_density = 1.0 if on else SPARSE_MAX_DENSITY


def test_key_layout_and_params():
    net = archs.build("smsr")
    sd = net.state_dict()
    assert len(sd) == 99
    assert sd["body.0.body.ch_mask"].shape == (1, 64, 4, 2)
    assert sd["body.4.spa_mask.5.weight"].shape == (16, 2, 3, 3)
    assert "body.0.body.body.3.weight" in sd and "body.0.body.body.3.bias" not in sd
    assert sd["tail.0.weight"].shape == (12, 64, 3, 3)
    assert sum(p.numel() for p in net.parameters()) == 987_330  # the official x2 count, mean shifts included


@pytest.mark.parametrize("path", ["dense", "split", "sparse", "strip"])
def test_eval_matches_official_sparse_inference(det_net, official, path):
    _force_gather(det_net)
    x = official["input_u8"].float() / 255
    with torch.inference_mode():
        y = det_net(x, path=path) * 255
        masks = det_net.masks(x)
    _force_gather(det_net, False)
    assert y.shape == official["eval_out_255"].shape
    assert (y - official["eval_out_255"]).abs().max() < 2e-3
    counts = torch.tensor([m["sparse_channels"].sum(1).tolist() for m in masks])
    assert torch.equal(counts, official["sparse_counts"])


def test_training_mode_matches_official_with_its_formula(official):
    torch.manual_seed(0)
    net = SMSR(2, train_formula="official")
    net.load_state_dict(deterministic_state(net))
    net.train()
    x = official["input_u8"].float() / 255
    torch.manual_seed(123)  # the same Gumbel noise as the official run (drawn in the same order)
    y, kept = net(x, return_sparsity=True)
    assert (y.detach() * 255 - official["train_out_255"]).abs().max() < 2e-3
    assert kept.shape == (1, 5)
    assert float(kept.detach().mean()) == pytest.approx(float(official["train_sparsity_mean"]), abs=1e-6)


def _random_masks(net: SMSR, n: int, h: int, w: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dens = [0.05, 0.3, 0.0, 1.0, 0.6]
    return [(torch.rand(n, 1, h, w, generator=g) < d).float() for d in dens]


@pytest.mark.parametrize("n,h,w", [(1, 12, 16), (4, 11, 9), (1, 7, 13), (4, 10, 10)])
def test_inference_paths_agree_on_random_weights_and_masks(n, h, w):
    torch.manual_seed(n * 100 + h)
    net = SMSR(2).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for k, m in enumerate(net.body):
            m.body.ch_mask.copy_(torch.randn(m.body.ch_mask.shape, generator=g))
        # edge cases of the kernel split: a layer with no sparse channels, one with no dense channels
        net.body[1].body.ch_mask[0, :, 2, 1] = -5.0
        net.body[2].body.ch_mask[0, :, 1, 1] = 5.0
        net.body[2].body.ch_mask[0, :, 3, 0] = 5.0
    x = torch.rand(n, 3, h, w, generator=g)
    masks = _random_masks(net, n, h + h % 2, w + w % 2, seed=h * w)
    _force_gather(net)
    paths = ("dense", "split", "sparse", "gather", "strip") + (("igemm",) if cpu_kernel() else ())
    with torch.inference_mode():
        outs = {p: net(x, path=p, spatial_masks=masks) for p in paths}
        generated = {p: net(x, path=p) for p in ("dense", "sparse", "strip") + paths[5:]}
    assert outs["dense"].shape == (n, 3, 2 * h, 2 * w)
    for p in paths[1:]:
        assert (outs[p] - outs["dense"]).abs().max() < 1e-5, p
    for p in generated:
        assert (generated[p] - generated["dense"]).abs().max() < 1e-5, p
    # the masks matter: without them the output differs
    with torch.inference_mode():
        assert (net(x, path="unmasked") - outs["dense"]).abs().max() > 1e-3
    # batch elements are independent (per-image masks and channel attention)
    if n > 1:
        with torch.inference_mode():
            one = net(x[1:2], path="sparse", spatial_masks=[m[1:2] for m in masks])
        assert (one - outs["sparse"][1:2]).abs().max() < 1e-5


def test_odd_sizes_are_padded_inside():
    torch.manual_seed(0)
    net = SMSR(3).eval()
    x = torch.rand(1, 3, 9, 14)
    with torch.inference_mode():
        y = net(x)
        y_pad = net(torch.nn.functional.pad(x, (0, 0, 0, 1), mode="reflect"))
    assert y.shape == (1, 3, 27, 42)
    assert torch.allclose(y, y_pad[..., :27, :], atol=1e-6)


def test_kernel_split_follows_weight_changes(det_net):
    net = SMSR(2).eval()
    net.load_state_dict(det_net.state_dict())
    _force_gather(net)
    x = torch.rand(1, 3, 10, 12)
    with torch.inference_mode():
        net(x, path="sparse")  # prepares the split
    with torch.no_grad():
        net.body[0].body.body[1].weight.mul_(0.5)
        net.body[0].body.ch_mask.neg_()
    with torch.inference_mode():
        assert (net(x, path="sparse") - net(x, path="dense")).abs().max() < 1e-5


def test_training_soft_masks_tau_and_hard_masks_in_eval():
    torch.manual_seed(0)
    net = SMSR(2)
    net.tau = 0.4
    assert all(m.body.tau == 0.4 for m in net.body)
    x = torch.rand(2, 3, 8, 8)
    net.train()
    y, kept = net(x, return_sparsity=True)
    assert y.shape == (2, 3, 16, 16) and kept.shape == (2, 5)
    assert ((kept > 0) & (kept < 1)).all()
    (y.mean() + kept.mean()).backward()
    assert net.body[0].body.ch_mask.grad is not None and net.body[0].spa_mask[5].weight.grad is not None
    net.eval()
    with torch.inference_mode():
        masks = net.masks(x)
    assert set(torch.unique(masks[0]["spatial"]).tolist()) <= {0.0, 1.0}


def test_mask_flops_counts_the_masks(det_net):
    from srkit.profile import count_flops

    x = torch.rand(1, 3, 16, 20)
    f = det_net.mask_flops(x)
    assert 0 < f["ratio"] < 1 and len(f["blocks"]) == 5
    # every layer's density lies between the dense share and 1
    for b in f["blocks"]:
        assert all(0 < d <= 1 for d in b["layer_density"]) and b["flops"] < b["dense_flops"]
    # the gathered sparse path does the counted work in its convs and matrix products (FlopCounterMode,
    # what srkit profile reports), and the unmasked network the dense count
    _force_gather(det_net)
    sparse = count_flops(det_net, x, lambda n, t: n(t, path="sparse"))
    unmasked = count_flops(det_net, x, lambda n, t: n(t, path="unmasked"))
    _force_gather(det_net, False)
    assert sparse == pytest.approx(f["total"], rel=1e-4)
    assert unmasked == pytest.approx(f["dense_total"], rel=1e-4)
    # per-image statistics for srkit eval: what the eval passes since the last call did
    det_net.pop_image_stats()
    with torch.inference_mode():
        det_net(x)
    stats = det_net.pop_image_stats()
    assert stats["flops"] == f["total"] and stats["dense_flops"] == f["dense_total"]
    assert stats["density_m0"] == pytest.approx(100 * f["blocks"][0]["spatial_density"])
    assert det_net.pop_image_stats() == {}
    # with every channel dense nothing is saved
    net = SMSR(2).eval()
    with torch.no_grad():
        for m in net.body:
            m.body.ch_mask[..., 0] = 1.0
            m.body.ch_mask[..., 1] = 0.0
    assert net.mask_flops(x)["ratio"] == pytest.approx(1.0)


def test_mask_density_picture(det_net, tmp_path):
    from PIL import Image

    from srkit.explain.masks import mask_density_picture

    x = torch.rand(1, 3, 12, 16)
    out = mask_density_picture(det_net, x, tmp_path / "m.png")
    im = Image.open(out)
    assert im.mode == "RGB" and im.width >= 5 * 12


def test_converter_reads_legacy_checkpoint(tmp_path, det_net):
    from srkit.convert.common import convert_checkpoint

    path = tmp_path / "model_1000.pt"
    torch.save(det_net.state_dict(), path, _use_new_zipfile_serialization=False)
    conv = convert_checkpoint(path, "smsr")
    assert conv.arch_kwargs["scale"] == 2 and conv.arch_kwargs["img_range"] == 255.0
    assert any("sparse channels per layer" in n for n in conv.notes)
    x = torch.rand(1, 3, 10, 10)
    with torch.inference_mode():
        assert torch.equal(conv.net(x, path="dense"), det_net(x, path="dense"))
    with pytest.raises(Exception, match="SMSR|smsr"):
        torch.save({"head.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "bad.pt")
        convert_checkpoint(tmp_path / "bad.pt", "smsr")


def test_method_schedules_and_a_few_training_steps(tmp_path):
    from srkit.engine.config import from_dict
    from srkit.engine.trainer import Trainer
    from srkit.methods.smsr import sparsity_lambda, tau_at

    assert tau_at(0) == 1.0 and tau_at(150_000) == pytest.approx(0.7) and tau_at(10**6) == pytest.approx(0.4)
    assert tau_at(10**6, "official") == 1.0
    assert sparsity_lambda(0) == 0.0 and sparsity_lambda(25_000) == pytest.approx(0.05)
    assert sparsity_lambda(10**6) == pytest.approx(0.1)

    g = torch.Generator().manual_seed(0)
    hr = torch.nn.functional.interpolate(torch.rand(6, 3, 6, 6, generator=g), size=(16, 16), mode="bicubic",
                                         align_corners=False).clamp(0, 1)
    lr = torch.nn.functional.avg_pool2d(hr, 2)

    class Pairs:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return {"lr": lr[i], "hr": hr[i], "name": str(i)}

    cfg = from_dict({
        "name": "smsr_tiny", "seed": 0, "output_dir": str(tmp_path / "run"),
        "model": {"arch": "smsr", "args": {}},
        "data": {"scale": 2, "patch_size": 16, "batch_size": 3, "val": None},
        "method": {"name": "smsr", "args": {"tau_decay_steps": 10, "sparsity_warmup_steps": 5}},
        "train": {"steps": 12, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "tensorboard": False,
                  "optimizer": {"lr": 1e-3}, "schedule": {"name": "constant"}},
    })
    Trainer(cfg, progress=False, train_set=Pairs()).run()
    import json

    log = [json.loads(s) for s in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    l1 = [r["loss/l1"] for r in log if "loss/l1" in r]
    taus = [r["loss/tau"] for r in log if "loss/tau" in r]
    assert len(l1) == 12 and np.mean(l1[-3:]) < np.mean(l1[:3])
    assert taus[0] == pytest.approx(1.0) and taus[-1] == pytest.approx(0.4)
    # the sparsity term is weighed as the official [0, 255] L1 weighs it: lambda / 255 against srkit's [0, 1] L1
    for r in log:
        lam = sparsity_lambda(r["step"] - 1, 0.1, 5)
        assert r["loss/total"] == pytest.approx(r["loss/l1"] + lam / 255.0 * r["loss/sparsity"], rel=1e-5, abs=1e-7)
    assert any(r["step"] > 5 and r["loss/sparsity"] * 0.1 / 255.0 > 1e-5 for r in log)


@pytest.mark.skipif(not os.environ.get("SRKIT_SMSR_X2"), reason="set SRKIT_SMSR_X2 to the official model_1000.pt")
def test_official_x2_checkpoint_on_set5(shared_data, tmp_path):
    from srkit.convert.common import convert_checkpoint
    from srkit.evaluate import evaluate
    from srkit.inference import Upscaler

    conv = convert_checkpoint(os.environ["SRKIT_SMSR_X2"], "smsr")
    res = evaluate(Upscaler(conv.net, conv.descriptor, device="cpu"), "Set5:symmetric", 2, progress=False)
    assert 37.985 <= res.psnr <= 38.005


def _sparse_run_on_density_masks() -> tuple[SMSR, torch.Tensor, list[torch.Tensor], list[str], float]:
    """A random x2 network run on masks of 5, 40, 90, 100 and 0 % active pixels: (net, input, masks, the kernel
    each module ran, the largest difference from the dense path)."""
    torch.manual_seed(0)
    net = SMSR(2).eval()
    x = torch.rand(1, 3, 20, 20)
    masks = [torch.zeros(1, 1, 20, 20) for _ in range(5)]
    masks[0][..., :1, :] = 1  # 5 % active
    masks[1][..., :8, :] = 1  # 40 %
    masks[2][..., :18, :] = 1  # 90 %
    masks[3][..., :, :] = 1
    with torch.inference_mode():
        y = net(x, path="sparse", spatial_masks=masks)
        kernels = [m.last_kernel for m in net.body]
        diff = float((y - net(x, path="dense", spatial_masks=masks)).abs().max())
    return net, x, masks, kernels, diff


def test_sparse_path_picks_a_kernel_per_module_by_density(monkeypatch):
    monkeypatch.setattr(smsr_module, "_cpu_kernel", False)  # as where the compiled kernel cannot be built
    net, x, masks, kernels, diff = _sparse_run_on_density_masks()
    # the gather is left to empty masks by default (the strip is as fast at every share measured)
    assert kernels == ["strip", "strip", "split", "split", "gather"]
    assert diff < 1e-5
    for m in net.body:
        m.strip_max_density = 1.0
        m.sparse_max_density = 0.1
    with torch.inference_mode():
        y = net(x, path="sparse", spatial_masks=masks)
        kernels = [m.last_kernel for m in net.body]
        ref = net(x, path="dense", spatial_masks=masks)
    assert kernels == ["gather", "strip", "strip", "strip", "gather"]
    assert (y - ref).abs().max() < 1e-5
    with pytest.raises(RuntimeError, match="unavailable"), torch.inference_mode():
        net(x, path="igemm")


@pytest.mark.skipif(not cpu_kernel(), reason="the compiled SMSR CPU kernel cannot be built here")
def test_sparse_path_runs_the_compiled_kernel_where_it_is_built():
    from torch.utils.flop_counter import FlopCounterMode

    net, x, masks, kernels, diff = _sparse_run_on_density_masks()
    assert kernels == ["igemm", "igemm", "split", "split", "gather"]
    assert diff < 1e-5
    # invisible to FLOP counting, so under a dispatch mode the countable PyTorch kernels run instead
    with FlopCounterMode(display=False), torch.inference_mode():
        net(x, path="sparse", spatial_masks=masks)
    assert [m.last_kernel for m in net.body] == ["strip", "strip", "split", "split", "gather"]
