"""ClassSR: network, routed whole-image inference, FLOPs, converter (official fixtures), routing picture,
data preparation and training method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srkit import archs
from srkit.errors import CheckpointError, ConfigError, SrkitError

FIX = Path(__file__).parent / "fixtures" / "classsr"



def small(backbone: str = "msrresnet", **kw):
    args = {"msrresnet": {"nb": 1}, "rcan": {"n_resgroups": 1, "n_resblocks": 1, "reduction": 4},
            "fsrcnn": {"m": 1}, "carn_m": {}}[backbone]
    kw.setdefault("widths", (8, 12, 16))
    kw.setdefault("backbone_args", args)
    torch.manual_seed(0)
    return archs.build("classsr", backbone=backbone, **kw)


# ------------------------------------------------------------------------------------------- network
@pytest.mark.parametrize("backbone,total", [("fsrcnn", 112_940), ("carn_m", 645_476), ("msrresnet", 3_062_060),
                                            ("rcan", 30_114_948)])
def test_official_configurations_have_the_official_sizes_and_keys(backbone, total):
    net = archs.build("classsr", backbone=backbone)  # on CPU: the meta device is slower here (dispatch set-up)
    assert sum(p.numel() for p in net.parameters()) == total
    assert sum(p.numel() for p in net.classifier.parameters()) == 60_035
    heads = {k.split(".")[0] for k in net.state_dict()}
    assert heads == {"classifier", "net1", "net2", "net3"}
    assert {k for k in net.state_dict() if k.startswith("classifier.")} == {
        f"classifier.CondNet.{i}.{p}" for i in (0, 2, 4, 6, 8) for p in ("weight", "bias")
    } | {"classifier.lastOut.weight", "classifier.lastOut.bias"}


def test_any_widths_any_scale_and_errors():
    net = small("msrresnet", scale=2).eval()
    assert [b.conv_first.out_channels for b in net.branches] == [8, 12, 16]
    with torch.no_grad():
        assert net(torch.rand(1, 3, 40, 33)).shape == (1, 3, 80, 66)
    with pytest.raises(ConfigError, match="three values"):
        archs.build("classsr", widths=(8, 16))
    with pytest.raises(ConfigError, match="width argument"):
        archs.build("classsr", backbone="edsr_baseline", widths=(8, 12, 16))
    # another backbone works when its width argument is named
    net = archs.build("classsr", backbone="edsr_baseline", widths=(8, 12, 16),
                      backbone_args={"width_arg": "n_feats", "n_resblocks": 1}, scale=3)
    assert net.net2.head[0].out_channels == 12


def test_training_mixture_and_patch_routing_follow_the_definition():
    net = small("fsrcnn").train()
    x = torch.rand(5, 3, 32, 32)
    sr, p = net.mix(x)
    assert torch.allclose(p.sum(1), torch.ones(5))
    ref = sum(p[:, k, None, None, None] * b(x) for k, b in enumerate(net.branches))
    torch.testing.assert_close(sr, ref)
    torch.testing.assert_close(net(x), sr)
    net.eval()
    with torch.no_grad():
        logits = net.classify(x)
        logits[:, :] = 0
        forced = torch.tensor([2, 0, 1, 0, 2])
        out, cls = net.route(x, forced)
        for i in range(5):
            torch.testing.assert_close(out[i : i + 1], net.branches[int(forced[i])](x[i : i + 1]), atol=1e-6, rtol=0)
        _, cls = net.route(x)
        assert torch.equal(cls, net.classify(x).argmax(1))


# ------------------------------------------------------------------------------------------- routing
def test_patch_grid_covers_the_image_or_follows_the_official_protocol():
    from srkit.inference.classsr_routing import patch_starts

    assert patch_starts(70, 32, 28) == [0, 28, 38]
    assert patch_starts(70, 32, 28, cover=False) == [0, 28]
    assert patch_starts(60, 32, 28) == [0, 28]  # exact fit: nothing added
    with pytest.raises(SrkitError, match="smaller than"):
        patch_starts(20, 32, 28)


def _naive_stitch(net, lr, classes, positions, cover_hw):
    """Reference: each patch alone through its branch, summed into place, divided by the coverage count."""
    r, p = net.scale, net.patch_size
    out = torch.zeros(1, 3, cover_hw[0] * r, cover_hw[1] * r)
    cnt = torch.zeros(1, 1, cover_hw[0] * r, cover_hw[1] * r)
    for (t, l), k in zip(positions, classes.tolist()):
        out[..., t * r : (t + p) * r, l * r : (l + p) * r] += net.branches[k](lr[..., t : t + p, l : l + p])
        cnt[..., t * r : (t + p) * r, l * r : (l + p) * r] += 1
    return out / cnt


def test_batched_routing_equals_per_patch_routing_and_covers_the_whole_image():
    from srkit.inference.classsr_routing import routed_upscale

    net = small("fsrcnn").eval()
    net.batch_size = 3
    lr = torch.rand(1, 3, 70, 45)
    with torch.no_grad():
        sr, routing = routed_upscale(net, lr)
        sr1, routing1 = routed_upscale(net, lr, per_patch=True)
        ref = _naive_stitch(net, lr, routing.classes[0], routing.positions, (70, 45))
    assert sr.shape == (1, 3, 280, 180) and routing.covered == (70, 45)
    assert torch.equal(routing.classes, routing1.classes)
    torch.testing.assert_close(sr, sr1, atol=1e-5, rtol=0)
    torch.testing.assert_close(sr, ref, atol=1e-5, rtol=0)
    # the bottom-right corner comes from the extra patch flush with the border
    assert routing.positions[-1] == (38, 13)
    # forced routes: mixed classes, batched == per patch
    forced = torch.tensor([0, 1, 2, 2, 1, 0, 1, 2, 0])[: len(routing.positions)]
    with torch.no_grad():
        a, ra = routed_upscale(net, lr, classes=forced)
        b, _ = routed_upscale(net, lr, classes=forced, per_patch=True)
        ref = _naive_stitch(net, lr, forced, ra.positions, (70, 45))
    assert ra.counts == (2, 2, 2)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a, ref, atol=1e-5, rtol=0)


def test_official_protocol_output_size_and_8bit_patches():
    from srkit.inference.classsr_routing import routed_upscale

    net = small("fsrcnn").eval()
    lr = torch.rand(2, 3, 70, 45)
    with torch.no_grad():
        sr, routing = routed_upscale(net, lr, official=True)
    assert sr.shape == (2, 3, 240, 128) and routing.covered == (60, 32)
    assert routing.classes.shape == (2, 2)
    # a pixel covered by one patch only is an 8-bit value
    v = sr[0, :, 0:100, 0:100] * 255
    torch.testing.assert_close(v, v.round(), atol=1e-4, rtol=0)
    with pytest.raises(SrkitError, match="smaller than"):
        routed_upscale(net, torch.rand(1, 3, 20, 40), official=True)


def test_small_images_are_padded_and_batches_share_the_grid():
    net = small("fsrcnn").eval()
    with torch.no_grad():
        sr = net(torch.rand(3, 3, 20, 37))
    assert sr.shape == (3, 3, 80, 148)
    assert net.last_routing.classes.shape == (3, 2)
    assert net.last_routing.covered == (20, 37)


def test_official_whole_image_protocol_matches_the_official_code():
    from srkit.convert.common import convert_checkpoint
    from srkit.inference.classsr_routing import routed_upscale

    conv = convert_checkpoint(FIX / "classsr_fsrcnn.pth", "classsr")
    io = load_file(str(FIX / "classsr_fsrcnn_official_image.safetensors"))
    lr = io["lr_uint8"].permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        sr, routing = routed_upscale(conv.net, lr, official=True)
    assert routing.classes[0].tolist() == io["routes"].tolist()
    expected = io["sr_0_255"].float().permute(2, 0, 1)[None]
    assert sr.shape == expected.shape == (1, 3, 240, 240)
    torch.testing.assert_close(sr * 255, expected, atol=2e-3, rtol=0)


# ------------------------------------------------------------------------------------------- converter
@pytest.mark.parametrize("name,backbone,widths", [
    ("classsr_fsrcnn", "fsrcnn", [16, 36, 56]),
    ("classsr_carn_m_nf8-12-16", "carn_m", [8, 12, 16]),
    ("classsr_msrresnet_nf8-12-16nb2", "msrresnet", [8, 12, 16]),
    ("classsr_rcan_g2b2f8-12-16", "rcan", [8, 12, 16]),
])
def test_converter_reproduces_the_official_outputs(name, backbone, widths, tmp_path):
    from srkit.convert.common import convert_checkpoint
    from srkit.model_file import load_model, save_model

    conv = convert_checkpoint(FIX / f"{name}.pth", "classsr")
    assert conv.arch_kwargs["backbone"] == backbone and conv.arch_kwargs["widths"] == widths
    save_model(tmp_path / "m.safetensors", conv.net, conv.arch, conv.arch_kwargs)
    net = load_model(tmp_path / "m.safetensors").net
    io = load_file(str(FIX / f"{name}_io.safetensors"))
    x = io["input"]
    with torch.no_grad():
        logits = net.classify(x)
        torch.testing.assert_close(torch.softmax(logits, 1), io["probs_test"], atol=1e-5, rtol=1e-4)
        routed, cls = net.route(x)
        assert len(set(cls.tolist())) >= 2  # the fixture exercises several branches
        torch.testing.assert_close(routed, io["routed"], atol=1e-5, rtol=1e-4)
        mixture, p = net.mix(x)  # eval mode: BatchNorm uses running statistics, as in the fixture
        torch.testing.assert_close(mixture, io["mixture"], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(p, io["probs_train"], atol=1e-5, rtol=1e-4)


def test_branch_checkpoints_assemble_into_a_classsr(tmp_path):
    from srkit.convert.classsr import load_branch_states, split_branches
    from srkit.convert.common import read_checkpoint

    state = read_checkpoint(FIX / "classsr_msrresnet_nf8-12-16nb2.pth")
    cls_state, branches = split_branches(state)
    paths = []
    for k, b in enumerate(branches):  # official branch files hold the bare backbone keys
        torch.save(b, tmp_path / f"SRResNet_branch{k + 1}.pth")
        paths.append(tmp_path / f"SRResNet_branch{k + 1}.pth")
    net = small("msrresnet", backbone_args={"nb": 2})
    load_branch_states(net, paths, classifier=FIX / "classsr_msrresnet_nf8-12-16nb2.pth")
    for key, v in net.state_dict().items():
        assert torch.equal(v, state[key]), key
    with pytest.raises(CheckpointError, match="branch 1"):
        load_branch_states(small("msrresnet"), paths[::-1])
    with pytest.raises(CheckpointError, match="not a ClassSR checkpoint"):
        split_branches(branches[0])


# ------------------------------------------------------------------------------------------- FLOPs
def test_flops_report_official_constants_and_true_counts():
    from srkit.inference.classsr_routing import Routing, flops_report, true_patch_flops
    from srkit.profile import count_flops

    net = archs.build("classsr", backbone="carn_m").eval()
    routing = Routing([(0, 0)] * 100, torch.tensor([[0] * 56 + [1] * 20 + [2] * 24]), (1, 1), (1, 1), 32, 28, 4)
    rep = flops_report(net, routing)
    assert rep["counts"] == [56, 20, 24]
    off = (0.38e9 * 56 + 0.77e9 * 20 + 1.15e9 * 24) / 100
    assert rep["official_flops_per_patch"] == pytest.approx(off)
    assert rep["official_percent"] == pytest.approx(100 * off / 1.15e9)
    b1, b2, b3, c = true_patch_flops(net)
    # the official constants are 2 x MACs of a 32x32 patch for CARN-M: the true counts agree to 1 %
    for mine, theirs in zip((b1, b2, b3), (0.38e9, 0.77e9, 1.15e9)):
        assert mine == pytest.approx(theirs, rel=0.01)
    assert c == count_flops(net.classifier, torch.rand(1, 3, 32, 32))
    assert rep["true_flops_per_patch"] == pytest.approx(0.56 * b1 + 0.2 * b2 + 0.24 * b3 + c)
    # FSRCNN: the official figure includes the classifier's 7.4M
    fs = archs.build("classsr").eval()
    rep = flops_report(fs, routing)
    off = (141 * 56 + 304 * 20 + 468 * 24) / 100 + 7.4
    assert rep["official_flops_per_patch"] == pytest.approx(off * 1e6)
    assert rep["official_percent"] == pytest.approx(100 * off / 468)
    # non-official widths: no official figure
    assert flops_report(small("fsrcnn"), routing)["official_percent"] is None


def test_image_report_returns_sr_and_shares():
    from srkit.inference.classsr_routing import image_report

    net = small("fsrcnn")
    sr, rep = image_report(net, torch.rand(1, 3, 40, 40))
    assert sr.shape == (1, 3, 160, 160) and rep["patches"] == 4
    assert sum(rep["shares"]) == pytest.approx(1.0)
    assert net.training  # restored


# ------------------------------------------------------------------------------------------- picture
def test_routing_picture_colours():
    from srkit.explain.routing import CLASS_COLORS, routing_picture
    from srkit.inference.classsr_routing import routed_upscale

    net = small("fsrcnn").eval()
    lr = torch.rand(1, 3, 60, 60)
    forced = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        sr, routing = routed_upscale(net, lr, classes=forced)
    pic = routing_picture(sr, routing, border=2, tint=0.0)
    assert pic.shape == (3, 240, 240)
    for (t, l), k in zip(routing.positions, forced.tolist()):
        assert pic[:, t * 4, l * 4 + 5].tolist() == list(CLASS_COLORS[k])
    # inside the cells the picture is the SR image (no tint)
    torch.testing.assert_close(pic[:, 50, 50], sr[0, :, 50, 50].clamp(0, 1))


# ------------------------------------------------------------------------------------------- training
def test_class_and_average_losses_known_values():
    from srkit.methods.classsr import average_loss, class_loss

    onehot = torch.eye(3)
    assert float(class_loss(onehot)) == pytest.approx(0.0)
    assert float(class_loss(torch.full((4, 3), 1 / 3))) == pytest.approx(2.0)
    p = torch.tensor([[0.5, 0.3, 0.2]])  # (M - 1) - (0.2 + 0.3 + 0.1)
    assert float(class_loss(p)) == pytest.approx(1.4)
    assert float(average_loss(onehot)) == pytest.approx(0.0)
    # everything on one branch: the "average_loss = 1" of a collapsed classifier
    assert float(average_loss(torch.tensor([[1.0, 0, 0]] * 3))) == pytest.approx(1.0)


class _Patches:
    """LR 8x8 / HR 16x16 patches (x2): half smooth, half noisy, fixed."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        hr = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=16, mode="bicubic",
                                             align_corners=False)
        hr[n // 2:] += 0.3 * torch.rand(n - n // 2, 3, 16, 16, generator=g)
        self.hr = hr.clamp(0, 1)
        self.lr = torch.nn.functional.avg_pool2d(self.hr, 2)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": self.lr[i], "hr": self.hr[i], "name": str(i)}


def _cfg(out, method_args, steps=20, lr=2e-3):
    from srkit.engine.config import from_dict

    return from_dict({
        "name": "classsr_tiny", "seed": 0, "output_dir": str(out),
        "model": {"arch": "classsr", "args": {"backbone": "fsrcnn", "widths": [4, 6, 8],
                                              "backbone_args": {"m": 1, "s": 4}}},
        "data": {"scale": 2, "patch_size": 16, "batch_size": 8, "val": None},
        "method": {"name": "classsr", "args": method_args},
        "train": {"steps": steps, "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "tensorboard": False,
                  "optimizer": {"lr": lr}, "schedule": {"name": "constant"}},
    })


def _log(out):
    import json

    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_two_stages_train_only_what_they_should(tmp_path):
    from srkit.engine.trainer import Trainer
    from srkit.model_file import load_model

    torch.manual_seed(0)
    init = archs.build("classsr", backbone="fsrcnn", widths=[4, 6, 8], backbone_args={"m": 1, "s": 4}, scale=2)
    init_path = tmp_path / "init.pth"
    torch.save(init.state_dict(), init_path)
    before = {k: v.clone() for k, v in init.state_dict().items()}

    # stage 1: branch 2 alone, L1 falls, nothing else moves
    res = Trainer(_cfg(tmp_path / "b2", {"stage": "branch", "branch": 2, "init": str(init_path)}, steps=30),
                  train_set=_Patches(), progress=False).run()
    l1 = [r["loss/l1"] for r in _log(tmp_path / "b2") if "loss/l1" in r]
    assert len(l1) == 30 and sum(l1[-5:]) < 0.7 * sum(l1[:5])
    stage1 = load_model(res["model_file"]).net.state_dict()
    for k, v in stage1.items():
        if not k.startswith("net2."):
            assert torch.equal(v, before[k]), k
    assert any(not torch.equal(stage1[k], before[k]) for k in stage1 if k.startswith("net2."))

    # stage 2: branches from stage-1 files (net2 from the trained one), only the classifier learns
    args = {"stage": "classifier", "init": str(init_path),
            "branches": [str(init_path), str(res["model_file"]), str(init_path)]}
    res2 = Trainer(_cfg(tmp_path / "cls", args, steps=12, lr=1e-3), train_set=_Patches(), progress=False).run()
    after = load_model(res2["model_file"]).net.state_dict()
    for k, v in after.items():
        ref = stage1[k] if k.startswith("net2.") else before[k]
        assert torch.equal(v, ref) != k.startswith("classifier."), k
    rows = [r for r in _log(tmp_path / "cls") if "loss/total" in r]
    assert len(rows) == 12
    for r in rows:  # the official weighting 1000 / 0.5 / 3
        expect = 1000 * r["loss/l1"] + 0.5 * r["loss/class_loss"] + 3 * r["loss/average_loss"]
        assert r["loss/total"] == pytest.approx(expect, rel=1e-4)
        assert r["loss/share_simple"] + r["loss/share_medium"] + r["loss/share_hard"] == pytest.approx(1.0)
    assert rows[-1]["loss/total"] < rows[0]["loss/total"]


def test_method_config_errors(tmp_path):
    from srkit.engine.trainer import Trainer

    with pytest.raises(ConfigError, match="branch: 1, 2 or 3"):
        Trainer(_cfg(tmp_path / "a", {"stage": "branch"}), train_set=_Patches(), progress=False).run()
    with pytest.raises(ConfigError, match="unknown method.args"):
        Trainer(_cfg(tmp_path / "b", {"stages": "branch"}), train_set=_Patches(), progress=False).run()


# ------------------------------------------------------------------------------------------- data preparation
def _write_images(folder, sizes):
    import numpy as np

    from srkit.data.io import write_image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 16, w // 16), size=(h, w), mode="bicubic",
                                               align_corners=False)[0]
        img = base.permute(1, 2, 0).numpy()
        img[:, w // 2:] += 0.4 * rng.random((h, w - w // 2, 3))  # a textured half: lower PSNR there
        write_image(folder / f"im{i}.png", (np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def test_classsr_prepare_cuts_scores_and_splits(tmp_path, capsys):
    from srkit.cli import main
    from srkit.cli.classsr_prepare import window_starts

    assert window_starts(200, 128, 64, 48) == [0, 64]
    assert window_starts(180, 128, 64, 48) == [0, 52]
    assert window_starts(100, 128, 64, 48) == []
    _write_images(tmp_path / "hr", [(200, 180), (180, 200), (100, 300)])
    out = tmp_path / "prep"
    assert main(["classsr-prepare", str(tmp_path / "hr"), "-o", str(out), "--model", "bicubic", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "8 sub-images" in printed and "skipped (smaller than 128 px): im2" in printed
    rows = [line.split("\t") for line in (out / "psnr.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 8 and rows[0][0] == "im0_s001.png"
    by_class = {c: sorted(float(r[1]) for r in rows if r[2] == str(c)) for c in (1, 2, 3)}
    assert [len(by_class[c]) for c in (1, 2, 3)] == [3, 2, 3]  # split at the 1/3 and 2/3 quantiles
    assert by_class[3][-1] < by_class[2][0] <= by_class[2][-1] < by_class[1][0]  # class1 = simple = high PSNR
    for c in (1, 2, 3):
        hr = sorted(p.name for p in (out / f"class{c}" / "HR").iterdir())
        lr = sorted(p.name for p in (out / f"class{c}" / "LR_bicubic" / "X4").iterdir())
        assert hr == lr and len(hr) == len(by_class[c])
    from srkit.data.io import read_image

    first = sorted(p.name for p in (out / "class1" / "HR").iterdir())[0]
    assert read_image(out / "class1" / "HR" / first).shape == (128, 128, 3)
    assert read_image(out / "class1" / "LR_bicubic" / "X4" / first).shape == (32, 32, 3)
    # the class folders are valid training/eval sets
    from srkit.data.sets import resolve_pairs

    assert all(p.lr_path is not None for p in resolve_pairs(out / "class2", 4))
    # a reference model file and given thresholds
    from srkit.model_file import save_model

    torch.manual_seed(0)
    save_model(tmp_path / "ref.safetensors", archs.build("fsrcnn", d=8, s=4, m=1), "fsrcnn", {"d": 8, "s": 4, "m": 1})
    out2 = tmp_path / "prep2"
    assert main(["classsr-prepare", str(tmp_path / "hr"), "-o", str(out2), "--model", str(tmp_path / "ref.safetensors"),
                 "--thresholds=-100,100", "--quiet"]) == 0
    import json

    summary = json.loads((out2 / "classes.json").read_text())
    assert summary["counts"] == {"class1": 0, "class2": 8, "class3": 0}
    assert summary["skipped_images"] == ["im2"]
    assert main(["classsr-prepare", str(tmp_path / "hr"), "-o", str(out2), "--model", "bicubic"]) == 1
    assert "not empty" in capsys.readouterr().err
    # the official downscaled copies: 200x180 at 0.8 -> 160x144 (one 128 window per axis)
    out3 = tmp_path / "prep3"
    assert main(["classsr-prepare", str(tmp_path / "hr"), "-o", str(out3), "--model", "bicubic",
                 "--downscales", "1,0.8", "--quiet"]) == 0
    names = [line.split("\t")[0] for line in (out3 / "psnr.tsv").read_text().splitlines()[1:]]
    assert len(names) == 8 + 2 and "im0_d080_s001.png" in names and "im1_d080_s001.png" in names
    assert json.loads((out3 / "classes.json").read_text())["downscales"] == [1.0, 0.8]
    # worker processes cut the same sub-images in the same order
    out5 = tmp_path / "prep5"
    assert main(["classsr-prepare", str(tmp_path / "hr"), "-o", str(out5), "--model", "bicubic",
                 "--downscales", "1,0.8", "--workers", "2", "--quiet"]) == 0
    assert (out5 / "psnr.tsv").read_text() == (out3 / "psnr.tsv").read_text()
    for bad in ("1,1.2", "0.5,0.5", "x"):
        assert main(["classsr-prepare", str(tmp_path / "hr"), "-o", str(tmp_path / "p4"), "--model", "bicubic",
                     "--downscales", bad]) == 1
        assert "--downscales" in capsys.readouterr().err


def test_subpixel_rewrite_of_the_transposed_conv_is_exact_and_cache_follows_weights():
    from srkit.inference.classsr_routing import SubPixelConvTranspose, accelerated, routed_upscale

    for scale in (2, 3, 4):
        torch.manual_seed(scale)
        f = archs.build("fsrcnn", d=8, s=4, m=1, scale=scale).eval()
        with torch.no_grad():
            for p in f.parameters():  # weights of order 1 so that the outputs vary and the tolerance bites
                p.normal_(0, 0.3)
            x = torch.rand(2, 3, 9, 14)
            ref = f(x)
            fast = accelerated(f)
            assert isinstance(fast.tail_conv, SubPixelConvTranspose)
            torch.testing.assert_close(fast(x), ref, atol=1e-5, rtol=1e-5)
            assert ref.std() > 0.1
    net = small("fsrcnn").eval()
    lr = torch.rand(1, 3, 40, 50)
    forced = torch.tensor([0, 1, 2, 2])
    with torch.no_grad():
        a, _ = routed_upscale(net, lr, classes=forced)
        b, _ = routed_upscale(net, lr, classes=forced, fast=False)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        net.net3.tail_conv.weight.mul_(2)  # in-place change: the cached fast copy must be rebuilt
        a, _ = routed_upscale(net, lr, classes=forced)
        b, _ = routed_upscale(net, lr, classes=forced, fast=False)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert "tail_conv.weight" in dict(net.net3.named_parameters())  # the network itself is unchanged


def test_routed_counts_accumulate_over_tiles_for_a_per_image_report():
    from srkit.inference.classsr_routing import flops_from_counts, routed_upscale

    net = small("fsrcnn").eval()
    lr = torch.rand(1, 3, 60, 88)
    with torch.no_grad():
        _, routing = routed_upscale(net, lr)
        net.pop_routed_counts()
        net(lr[..., :44])  # two "tiles"
        net(lr[..., 40:])
    counts = net.pop_routed_counts()
    assert sum(counts) == 2 * 2 * 2 and net.routed_counts == [0, 0, 0]
    rep = flops_from_counts(net, counts)
    assert rep["patches"] == 8 and rep["counts"] == counts


def test_the_shared_upscaler_runs_classsr_whole_and_tiled():
    import numpy as np

    from srkit.inference import Upscaler

    net = small("fsrcnn").eval()
    desc = archs.describe("classsr", backbone="fsrcnn", widths=(8, 12, 16), backbone_args={"m": 1})
    img = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    whole = Upscaler(net, desc, device="cpu").upscale(img)
    assert whole.shape == (200, 280, 3)
    net.pop_routed_counts()
    tiled = Upscaler(net, desc, device="cpu", tile=40, overlap=12).upscale(img)
    assert tiled.shape == (200, 280, 3)
    assert sum(net.pop_routed_counts()) >= 4  # every tile routed its own patches
    # tiles see other patch grids near their seams: close to, not equal to, the whole-image result
    assert np.abs(tiled.astype(int) - whole.astype(int)).mean() < 2.0


def test_fast_path_matmul_classifier_and_channels_last_match_the_plain_path():
    from srkit.inference.classsr_routing import _fast_classifier, routed_upscale

    torch.manual_seed(3)
    net = archs.build("classsr", backbone="fsrcnn", widths=(8, 12, 16)).eval()
    with torch.no_grad():
        for m in net.classifier.modules():  # larger weights than the 0.1 init, so logits differ clearly
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, 0.2)
                m.bias.normal_(0, 0.1)
        x = torch.rand(37, 3, 32, 32)
        fast = _fast_classifier(net)
        assert fast is not net.classify
        ref = net.classify(x)
        torch.testing.assert_close(fast(x), ref, atol=1e-5, rtol=1e-5)
        assert ref.std() > 0.01
        # patches from flat to busy; the logits centred over these patches, so that the routes differ
        lr = torch.rand(2, 3, 61, 75) * torch.linspace(0, 1, 75) + torch.linspace(0, 0.5, 61)[:, None]
        _, r0 = routed_upscale(net, lr, fast=False)
        patches = torch.cat([lr[:, :, t : t + 32, l : l + 32] for t, l in r0.positions])
        net.classifier.lastOut.bias.sub_(net.classify(patches).mean(dim=0))
        a, ra = routed_upscale(net, lr)
        b, rb = routed_upscale(net, lr, fast=False)
        assert torch.equal(ra.classes, rb.classes) and len(set(ra.classes.flatten().tolist())) > 1
        assert a.is_contiguous(memory_format=torch.channels_last) and b.is_contiguous()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        net.classifier.lastOut.bias.add_(torch.tensor([0.0, 0.0, 100.0]))  # weights changed: cache rebuilt
        a, ra = routed_upscale(net, lr)
        assert (ra.classes == 2).all()


def test_hard_bias_dial_moves_patches_to_the_hard_branch_and_zero_is_the_paper_argmax():
    from srkit.inference.classsr_routing import routed_upscale

    torch.manual_seed(5)
    net = archs.build("classsr", backbone="fsrcnn", widths=(8, 12, 16)).eval()
    lr = torch.rand(1, 3, 61, 75) * torch.linspace(0, 1, 75) + torch.linspace(0, 0.5, 61)[:, None]
    with torch.no_grad():
        _, r0 = routed_upscale(net, lr, fast=False)
        patches = torch.cat([lr[:, :, t : t + 32, l : l + 32] for t, l in r0.positions])
        net.classifier.lastOut.bias.sub_(net.classify(patches).mean(dim=0))  # centred: mixed routes
        logits = net.classify(patches)
        _, r_paper = routed_upscale(net, lr)
        assert torch.equal(r_paper.classes.flatten(), logits.argmax(dim=1))
        hard = []
        for bias in (0.0, 0.05, 0.2, 1e3):
            net.hard_bias = bias
            for fast in (True, False):
                _, r = routed_upscale(net, lr, fast=fast)
                expect = (logits + torch.tensor([0.0, 0.0, bias])).argmax(dim=1)
                assert torch.equal(r.classes.flatten(), expect)
            hard.append(int((r.classes == 2).sum()))
        assert hard == sorted(hard) and hard[0] < hard[-1] == len(r0.positions)
        out, cls = net.route(patches)  # the batch-of-patches entry point sees the dial too
        assert (cls == 2).all()
    assert "hard_bias" not in net.state_dict()


def test_cli_classsr_hard_bias_flag_changes_routes_and_rejects_other_models(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from srkit.cli import main

    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 60, (40, 48, 3)), 0, 255).astype(np.uint8)
    img[:, :24] = 120  # a flat half and a busy half
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    outs = {}
    for b in ("-100", "100"):
        out = tmp_path / f"out{b}.png"
        assert main(["upscale", str(src), "-o", str(out), "--model", "classsr-fsrcnn-x4", "--classsr-hard-bias", b]) == 0
        outs[b] = np.asarray(Image.open(out))
    assert outs["100"].shape == (160, 192, 3)
    assert np.abs(outs["100"].astype(int) - outs["-100"].astype(int)).max() > 0  # all-hard vs never-hard routes
    capsys.readouterr()
    assert main(["upscale", str(src), "-o", str(tmp_path / "x.png"), "--model", "srkit-default",
                 "--classsr-hard-bias", "0.3"]) == 1
    assert "ClassSR models only" in capsys.readouterr().err
    assert main(["eval", "--model", "bicubic", "--data", str(tmp_path), "--scale", "4",
                 "--classsr-hard-bias", "0.3"]) == 1
    assert "ClassSR models only" in capsys.readouterr().err
