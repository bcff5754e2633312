"""Classic backbones and the architecture registry.

Known answers: each network below was also instantiated from the official code (ClassSR
`codes/models/archs/*_arch.py`; LIIF's `models/{edsr,rdn}.py`, which keep EDSR-PyTorch's layout; for the
full EDSR/RDN forward, EDSR-PyTorch's forward with mean shift and rgb_range 255), outside this repository.
Both got the same deterministic weights (`_fill`, assigned by sorted state-dict key, so any difference in
key names, order or shapes changes the weights) and the same input; the official outputs are summarised in
`KNOWN`. Official parameter counts were taken from the same instantiations.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch

from srkit import archs
from srkit.descriptor import ModelDescriptor
from srkit.errors import SrkitError


def _fill(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Deterministic, well-scaled weights; mean shifts keep their constructor values (checks those too)."""
    out = {}
    for i, (key, v) in enumerate(sorted(state.items())):
        if not v.is_floating_point() or key.startswith(("sub_mean.", "add_mean.")):
            out[key] = v.clone()
            continue
        t = torch.sin(torch.arange(v.numel(), dtype=torch.float64) * 0.7 + i).view(v.shape)
        if key.endswith("running_var"):
            t = 1 + 0.5 * t * t
        elif v.dim() > 1:
            t = t * (0.5 / math.sqrt(v[0].numel()))
        else:
            t = 0.1 * t
        out[key] = t.float()
    return out


def _input(h: int = 6, w: int = 7) -> torch.Tensor:
    return (0.5 + 0.5 * torch.sin(torch.arange(3 * h * w, dtype=torch.float64) * 0.37)).view(1, 3, h, w).float()


def _summary(y: torch.Tensor) -> list[float]:
    y = y.double()
    wts = torch.cos(torch.arange(y.numel(), dtype=torch.float64) * 0.11).view(y.shape)
    return [y.mean().item(), (y * wts).mean().item(), y[0, 0, 0, 0].item(), y[0, -1, -1, -1].item()]


# (name, kwargs, scale or None for encoder mode, official output summary:
#  [mean, cosine-weighted mean, first value, last value])
KNOWN = [
    ("fsrcnn", {"d": 16}, 4, [-0.01351482, 0.0005730378, -0.07034628, 0.0441809]),
    ("msrresnet", {"nf": 8, "nb": 2}, 2, [0.434935, -0.01256561, 0.3713111, 0.8214054]),
    ("carn_m", {"nf": 8}, 2, [0.4644195, -0.009244827, 0.4040983, 0.5059089]),
    ("rcan", {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}, 2, [0.4319958, -0.00489104, 0.453023, 0.4068219]),
    ("msrresnet", {"nf": 8, "nb": 2}, 3, [0.4337544, -0.01643288, 0.3312143, 0.7617778]),
    ("carn_m", {"nf": 8}, 3, [0.4622581, -0.004273901, 0.4256084, 0.5534999]),
    ("rcan", {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}, 3, [0.4297056, -0.002326956, 0.4445874, 0.39996]),
    ("msrresnet", {"nf": 8, "nb": 2}, 4, [0.4354896, 0.001240136, 0.4233526, 0.8269675]),
    ("carn_m", {"nf": 8}, 4, [0.4657554, 0.001965164, 0.3996351, 0.5171527]),
    ("rcan", {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}, 4, [0.4295625, 0.001851753, 0.4480488, 0.4026274]),
    ("edsr", {"n_resblocks": 2, "n_feats": 8}, 2, [0.4133927, -0.03929412, 0.431091, 0.3609869]),
    ("rdn", {"G0": 8, "D": 3, "C": 2, "G": 8, "img_range": 1.0}, 2, [-0.02844219, 0.06297724, 0.1130296, -0.0967804]),
    ("edsr", {"n_resblocks": 2, "n_feats": 8}, 3, [0.4230726, -0.002877194, 0.483669, 0.3884657]),
    ("rdn", {"G0": 8, "D": 3, "C": 2, "G": 8, "img_range": 1.0}, 3, [-0.03535813, -0.001959383, 0.09857169, -0.01459269]),
    ("edsr", {"n_resblocks": 2, "n_feats": 8}, 4, [0.4290923, 0.002478143, 0.4506368, 0.3908395]),
    ("rdn", {"G0": 8, "D": 3, "C": 2, "G": 8, "img_range": 1.0}, 4, [-0.05746289, 0.001880477, -0.06753687, -0.01365627]),
    ("edsr_baseline", {"n_resblocks": 2, "n_feats": 8, "no_upsampling": True}, None, [0.005049715, 0.003109325, -0.8163565, -0.172923]),
    ("rdn", {"G0": 8, "D": 3, "C": 2, "G": 8, "no_upsampling": True}, None, [0.0007816952, -0.004618131, 0.1282471, 0.2980165]),
    ("rdn", {"G0": 8, "D": 3, "C": 2, "G": 8}, 4, [-0.00243759, 0.0007136631, 0.02124796, -0.004890357]),
]


@pytest.mark.parametrize(
    "name,kwargs,scale,expected", KNOWN, ids=[f"{k[0]}-{'enc' if k[2] is None else 'x%d' % k[2]}" for k in KNOWN]
)
def test_matches_official_outputs(name, kwargs, scale, expected):
    net = archs.build(name, **kwargs, **({} if scale is None else {"scale": scale}))
    net.load_state_dict(_fill(net.state_dict()))
    net.eval()
    x = _input()
    with torch.inference_mode():
        y = net((x - 0.5) / 0.5 if scale is None else x)
    if scale is not None:
        assert y.shape == (1, 3, 6 * scale, 7 * scale)
    assert _summary(y) == pytest.approx(expected, rel=2e-5, abs=2e-7)


# --- parameter counts of the official configurations ------------------------------------------------

OFFICIAL_PARAMS = [
    ("fsrcnn", {"d": 16}, 10_755),
    ("fsrcnn", {"d": 36}, 17_635),
    ("fsrcnn", {"d": 56}, 24_515),
    ("msrresnet", {"nf": 36}, 481_683),
    ("msrresnet", {"nf": 52}, 1_002_771),
    ("msrresnet", {"nf": 64}, 1_517_571),
    ("carn_m", {"nf": 36}, 94_851),
    ("carn_m", {"nf": 52}, 195_651),
    ("carn_m", {"nf": 64}, 294_939),
    ("rcan", {"n_feats": 36}, 4_940_707),
    ("rcan", {"n_feats": 50}, 9_521_827),
    ("rcan", {}, 15_592_379),  # n_feats 64 (default)
    ("edsr_baseline", {"no_upsampling": True}, 1_220_440),
    ("rdn", {"no_upsampling": True}, 21_973_952),
    ("edsr_baseline", {}, 1_517_595),
    ("edsr", {}, 43_089_947),
    ("rdn", {"scale": 2}, 22_123_395),
    ("rdn", {}, 22_271_107),
]


@functools.lru_cache(maxsize=None)
def _cached(name: str, items: tuple = ()) -> torch.nn.Module:
    return archs.build(name, **dict(items))


def _built(name: str, items: tuple = ()) -> torch.nn.Module:
    """Full-size networks, never run. Full RCAN (800+ modules) is slow to construct, so it is built once."""
    return _cached(name, items) if name == "rcan" and not items else archs.build(name, **dict(items))


@pytest.mark.parametrize("name,kwargs,expected", OFFICIAL_PARAMS, ids=lambda v: str(v))
def test_parameter_counts_equal_official(name, kwargs, expected):
    # Counts include the 24 frozen mean-shift parameters where the official model has them (CARN-M, RCAN,
    # EDSR): the official counts do too.
    net = _built(name, tuple(kwargs.items()))
    assert sum(p.numel() for p in net.parameters()) == expected


def test_mean_shift_is_frozen_and_in_state_dict():
    net = archs.build("edsr_baseline", n_resblocks=1, n_feats=8)
    sd = net.state_dict()
    assert sd["sub_mean.bias"].tolist() == pytest.approx([-255 * m for m in (0.4488, 0.4371, 0.4040)])
    assert sd["add_mean.weight"].shape == (3, 3, 1, 1)
    assert not net.sub_mean.weight.requires_grad and not net.add_mean.bias.requires_grad
    carn = archs.build("carn_m", nf=8)
    assert carn.state_dict()["add_mean.bias"].tolist() == pytest.approx([0.4488, 0.4371, 0.4040])


# --- state-dict layouts ------------------------------------------------------------------------------

SPOT_KEYS = {
    ("edsr_baseline", ()): {
        "sub_mean.weight": (3, 3, 1, 1),
        "head.0.weight": (64, 3, 3, 3),
        "body.15.body.2.weight": (64, 64, 3, 3),
        "body.16.bias": (64,),
        "tail.0.0.weight": (256, 64, 3, 3),
        "tail.0.2.weight": (256, 64, 3, 3),
        "tail.1.weight": (3, 64, 3, 3),
    },
    ("rcan", ()): {
        "body.9.body.19.body.0.weight": (64, 64, 3, 3),
        "body.9.body.19.body.3.conv_du.0.weight": (4, 64, 1, 1),
        "body.9.body.19.body.3.conv_du.2.bias": (64,),
        "body.9.body.20.weight": (64, 64, 3, 3),
        "body.10.weight": (64, 64, 3, 3),
        "tail.0.2.weight": (256, 64, 3, 3),
        "add_mean.bias": (3,),
    },
    ("carn_m", ()): {
        "entry.weight": (64, 3, 3, 3),
        "b3.b1.body.2.weight": (64, 16, 3, 3),
        "b3.b1.body.4.weight": (64, 64, 1, 1),
        "b1.c3.0.weight": (64, 256, 1, 1),
        "b1.c3.1.running_var": (64,),
        "b2.c1.1.num_batches_tracked": (),
        "c2.0.weight": (64, 192, 1, 1),
        "upsample.up.body.3.weight": (256, 16, 3, 3),
        "exit.bias": (3,),
    },
    ("msrresnet", ()): {
        "conv_first.weight": (64, 3, 3, 3),
        "recon_trunk.15.conv2.weight": (64, 64, 3, 3),
        "upconv1.weight": (256, 64, 3, 3),
        "upconv2.bias": (256,),
        "HRconv.weight": (64, 64, 3, 3),
        "conv_last.weight": (3, 64, 3, 3),
    },
    ("msrresnet", (("scale", 3),)): {"upconv1.weight": (576, 64, 3, 3)},
    ("fsrcnn", ()): {
        "head_conv.0.weight": (56, 3, 5, 5),
        "head_conv.1.weight": (1,),
        "body_conv.0.0.weight": (12, 56, 1, 1),
        "body_conv.4.weight": (12, 12, 3, 3),
        "body_conv.5.weight": (1,),
        "body_conv.6.0.weight": (56, 12, 1, 1),
        "body_conv.6.1.weight": (1,),
        "tail_conv.weight": (56, 3, 9, 9),
    },
    ("rdn", (("no_upsampling", True),)): {
        "SFENet1.weight": (64, 3, 3, 3),
        "SFENet2.bias": (64,),
        "RDBs.15.convs.7.conv.0.weight": (64, 512, 3, 3),
        "RDBs.0.LFF.weight": (64, 576, 1, 1),
        "GFF.0.weight": (64, 1024, 1, 1),
        "GFF.1.weight": (64, 64, 3, 3),
    },
    ("rdn", (("scale", 4),)): {"UPNet.0.weight": (256, 64, 3, 3), "UPNet.4.weight": (3, 64, 3, 3)},
    ("rdn", (("scale", 3),)): {"UPNet.0.weight": (576, 64, 3, 3), "UPNet.2.weight": (3, 64, 3, 3)},
}


@pytest.mark.parametrize("spec", list(SPOT_KEYS), ids=lambda s: s[0] + "".join(f"-{k}={v}" for k, v in s[1]))
def test_state_dict_spot_keys(spec):
    name, kwargs = spec
    sd = _built(name, kwargs).state_dict()
    got = {k: tuple(sd[k].shape) for k in SPOT_KEYS[spec] if k in sd}
    assert got == SPOT_KEYS[spec]


def test_key_sets_follow_official_patterns():
    enc = _built("edsr_baseline", (("no_upsampling", True),)).state_dict()
    rcan = _built("rcan").state_dict()
    msr2 = archs.build("msrresnet", scale=2).state_dict()
    # Encoder mode: no tail at all, as in LIIF checkpoints (which still hold the mean shifts).
    assert not any(k.startswith("tail") for k in enc)
    assert {"sub_mean.weight", "add_mean.bias"} <= set(enc)
    assert len(enc) == 4 + 2 + 16 * 4 + 2
    # RCAN: 10 groups x (20 RCABs x (2 convs + 2 attention convs) + 1 conv), weight and bias each.
    assert sum(re.fullmatch(r"body\.\d+\.body\.\d+\.body\..*", k) is not None for k in rcan) == 10 * 20 * 4 * 2
    assert sum(k.startswith("body.") and k.endswith("body.20.weight") for k in rcan) == 10
    assert "upconv2.weight" not in msr2 and "upconv1.weight" in msr2


# --- shapes at every scale --------------------------------------------------------------------------

SMALL = {
    "edsr_baseline": {"n_resblocks": 1, "n_feats": 8},
    "edsr": {"n_resblocks": 1, "n_feats": 8},
    "rcan": {"n_resgroups": 1, "n_resblocks": 1, "n_feats": 16, "reduction": 4},
    "carn_m": {"nf": 8},
    "msrresnet": {"nf": 8, "nb": 1},
    "fsrcnn": {"d": 8, "m": 1},
    "rdn": {"G0": 8, "D": 2, "C": 2, "G": 8},
}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_shape_and_dtype(name, scale):
    net = archs.build(name, scale=scale, **SMALL[name]).eval()
    with torch.inference_mode():
        y = net(torch.rand(2, 3, 5, 7))
    assert y.shape == (2, 3, 5 * scale, 7 * scale)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert archs.describe(name, scale=scale, **SMALL[name]).scales == (scale,)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_half_precision_agrees_with_float32(name):
    # Backs supports_half / supports_bfloat16 = True: every layer runs in float16 and bfloat16 (on CPU
    # here) and gives the float32 image up to the format's precision (small nets, deterministic weights).
    assert archs.describe(name, **SMALL[name]).supports_half
    net = archs.build(name, **SMALL[name])
    net.load_state_dict(_fill(net.state_dict()))
    net.eval()
    x = _input(8, 8)
    with torch.inference_mode():
        ref = net(x)
        for dtype, tol in ((torch.float16, 3e-3), (torch.bfloat16, 3e-2)):
            y = net.to(dtype)(x.to(dtype))
            assert y.dtype == dtype
            assert (y.float() - ref).abs().max() < tol


@pytest.mark.parametrize("name", ["edsr_baseline", "rdn"])
def test_encoder_mode_returns_lr_features(name):
    net = archs.build(name, no_upsampling=True, **SMALL[name])
    with torch.inference_mode():
        y = net(torch.rand(1, 3, 5, 7))
    assert y.shape == (1, 8, 5, 7) and net.out_dim == 8
    assert archs.describe(name, no_upsampling=True, **SMALL[name]).scales == ()


def test_img_range_scales_inside_forward():
    # With zero conv biases the body is positively homogeneous (convs and ReLU commute with x -> 255x), so
    # a [0, 255] network and a [0, 1] network whose mean-shift biases differ by the factor 255 must give
    # the same [0, 1] output, provided forward scales input and output by img_range.
    torch.manual_seed(0)
    a = archs.build("edsr_baseline", n_resblocks=1, n_feats=8, scale=2, img_range=255.0)
    b = archs.build("edsr_baseline", n_resblocks=1, n_feats=8, scale=2, img_range=1.0)
    sd = {k: (torch.zeros_like(v) if k.endswith(".bias") and "_mean" not in k else v) for k, v in a.state_dict().items()}
    a.load_state_dict(sd)
    b.load_state_dict({k: (v / 255 if k.endswith("_mean.bias") else v) for k, v in sd.items()})
    x = torch.rand(1, 3, 4, 4)
    with torch.inference_mode():
        ya, yb = a(x), b(x)
        assert torch.allclose(ya, yb, atol=1e-5)
        a.img_range = 1.0  # the range must matter: the same weights without the scaling give another image
        assert (a(x) - ya).abs().max() > 0.1


def test_fsrcnn_x4_deconv_geometry_matches_classsr():
    from srkit.archs.fsrcnn import deconv_padding

    assert deconv_padding(4) == (3, 1)
    for s in (2, 3, 4):
        p, op = deconv_padding(s)
        assert 0 <= op < s and (5 - 1) * s - 2 * p + 9 + op == 5 * s


# --- descriptors and receptive fields --------------------------------------------------------------


def _measured_rf(net: torch.nn.Module, scale: int, size: int) -> int:
    """Largest LR distance at which an input pixel influences the outputs of the centre LR cell.

    One backward pass of the sum over the cell's scale x scale output pixels (all channels): its input
    gradient is non-zero wherever any of them depends on the input (random weights make exact
    cancellation practically impossible).
    """
    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size, requires_grad=True)
    y = net.eval()(x)
    c = size // 2
    y[0, :, c * scale : (c + 1) * scale, c * scale : (c + 1) * scale].sum().backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    return int((nz - c).abs().max())


RF_CASES = [
    ("fsrcnn", {"d": 8}, 4),
    ("fsrcnn", {"d": 8}, 2),
    ("msrresnet", {"nf": 8, "nb": 2}, 3),
    ("carn_m", {"nf": 8}, 4),
    ("edsr", {"n_resblocks": 2, "n_feats": 8}, 4),
    ("rdn", {"G0": 8, "D": 2, "C": 2, "G": 8}, 2),
    ("edsr_baseline", {"n_resblocks": 2, "n_feats": 8, "no_upsampling": True}, 1),
]


@pytest.mark.parametrize("name,kwargs,scale", RF_CASES, ids=lambda v: str(v))
def test_receptive_field_is_a_tight_upper_bound(name, kwargs, scale):
    kw = dict(kwargs) if scale == 1 else {**kwargs, "scale": scale}
    stated = archs.describe(name, **kw).receptive_field
    measured = _measured_rf(archs.build(name, **kw), scale, size=2 * stated + 5)
    assert measured <= stated <= measured + 1


def test_rcan_attention_reaches_the_whole_input():
    # What the RCAN descriptor documents: channel attention pools globally, so the conv-path receptive
    # field is a local estimate, not a bound.
    kw = {"n_resgroups": 1, "n_resblocks": 1, "n_feats": 16, "reduction": 4, "scale": 2}
    assert _measured_rf(archs.build("rcan", **kw), 2, size=31) == 15
    assert archs.describe("rcan", **kw).receptive_field == 7


def test_describe_full_configs():
    d = archs.describe("rcan")
    assert isinstance(d, ModelDescriptor) and d.arch == "rcan" and d.scales == (4,)
    assert d.receptive_field == 1 + 10 * 41 + 1 + 2
    assert archs.describe("edsr_baseline", scale=2).receptive_field == 36
    assert archs.describe("msrresnet").receptive_field == 35
    for name in archs.names():
        assert archs.describe(name).multiple_of == 1


# --- registry -------------------------------------------------------------------------------------


def test_names():
    # Method packages may register more networks when imported; the built-ins are always there.
    got = archs.names()
    assert got == sorted(got)
    assert {"edsr", "edsr_baseline", "rcan", "carn_m", "msrresnet", "fsrcnn", "rdn", "liif"} <= set(got)


def test_registry_defaults():
    with torch.device("meta"):
        base = archs.build("edsr_baseline")
        big = archs.build("edsr")
    assert len(base.body) == 17 and base.head[0].out_channels == 64 and base.body[0].res_scale == 1
    assert len(big.body) == 33 and big.head[0].out_channels == 256 and big.body[0].res_scale == 0.1
    assert base.scale == 4 and base.img_range == 255


def test_unknown_name_lists_known_names():
    with pytest.raises(SrkitError, match="unknown architecture 'edsrr'.*edsr_baseline.*rcan"):
        archs.build("edsrr")
    with pytest.raises(SrkitError, match="unknown architecture"):
        archs.describe("nope")


def test_unknown_kwarg_is_named():
    with pytest.raises(SrkitError, match=r"msrresnet: unknown argument 'n_feats'.*nf"):
        archs.build("msrresnet", n_feats=64)
    with pytest.raises(SrkitError, match="unknown argument 'scal'"):
        archs.describe("rcan", scal=2)


def test_unsupported_scale_is_a_user_error():
    with pytest.raises(SrkitError, match=r"fsrcnn supports scale 2, 3, 4, not 5"):
        archs.build("fsrcnn", scale=5)
    with pytest.raises(SrkitError, match="carn_m: nf=10 is not divisible by group=4"):
        archs.build("carn_m", nf=10)


def test_register_adds_a_lazy_entry():
    calls = []

    def describe_fn(name, kw):
        calls.append(dict(kw))
        return ModelDescriptor(arch=name, scales=(kw["scale"],), receptive_field=3)

    archs.register("tiny_fsrcnn_test", "srkit.archs.fsrcnn", "FSRCNN", {"d": 4, "m": 1}, describe_fn)
    try:
        assert "tiny_fsrcnn_test" in archs.names()
        net = archs.build("tiny_fsrcnn_test", scale=2)
        assert net.head_conv[0].out_channels == 4 and net.scale == 2
        d = archs.describe("tiny_fsrcnn_test", s=6)
        assert d.arch == "tiny_fsrcnn_test" and d.receptive_field == 3
        assert calls[-1] == {"d": 4, "m": 1, "s": 6, "scale": 4, "n_colors": 3}
        # Same entry again is fine; a different one under the same name is refused.
        archs.register("tiny_fsrcnn_test", "srkit.archs.fsrcnn", "FSRCNN", {"d": 4, "m": 1}, describe_fn)
        with pytest.raises(SrkitError, match="already registered"):
            archs.register("tiny_fsrcnn_test", "srkit.archs.rdn", "RDN")
        # A descriptor function named by path is imported when first needed.
        archs.register("tiny_fsrcnn_test", "srkit.archs.fsrcnn", "FSRCNN", {"m": 1}, "srkit.archs:_describe_fsrcnn",
                       overwrite=True)
        d = archs.describe("tiny_fsrcnn_test", scale=3)
        assert d.arch == "tiny_fsrcnn_test" and d.scales == (3,) and d.receptive_field == 2 + 1 + 2
    finally:
        archs._REGISTRY.pop("tiny_fsrcnn_test", None)


def test_registry_import_is_lazy():
    import subprocess
    import sys

    code = (
        "import sys; import srkit.archs as a; a.names(); "
        "print(any(m.startswith('srkit.archs.') for m in sys.modules), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
