"""LIIF: official-output fixtures, fast path == reference path, chunking, sizes, ensemble weights, converter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from srkit.archs.liif import LIIF, LatentCache, describe, make_coord
from srkit.convert.common import canonicalize
from srkit.convert.liif import convert_liif, convert_liif_state
from srkit.errors import CheckpointError, SrkitError



FIX = Path(__file__).resolve().parent / "fixtures" / "liif"
NAMES = ["edsr_liif", "edsr_liif_ablated", "rdn_liif"]


class ConvEncoder(nn.Module):
    """Small stand-in encoder: two 3x3 convs, ``out_dim`` channels."""

    def __init__(self, out_dim: int = 8):
        super().__init__()
        self.out_dim = out_dim
        self.a = nn.Conv2d(3, out_dim, 3, padding=1)
        self.b = nn.Conv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class Identity3(nn.Module):
    out_dim = 3

    def forward(self, x):
        return x


def small(seed: int = 0, **flags) -> LIIF:
    torch.manual_seed(seed)
    m = LIIF(ConvEncoder(8), hidden=(24, 24), **flags).eval()
    with torch.no_grad():  # non-trivial biases so that every term matters
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


FLAG_SETS = [
    {},
    {"local_ensemble": False},
    {"feat_unfold": False},
    {"cell_decode": False},
    {"local_ensemble": False, "feat_unfold": False, "cell_decode": False},
]


def load_fixture(name: str) -> tuple[LIIF, dict]:
    ckpt = torch.load(FIX / f"{name}.pth", map_location="cpu", weights_only=True)
    kwargs, state = convert_liif(ckpt)
    m = LIIF(**kwargs)
    m.load_state_dict(state, strict=True)
    return m.eval(), load_file(str(FIX / f"{name}_io.safetensors"))


# ----------------------------------------------------------------------------- official fixtures
@pytest.mark.parametrize("name", NAMES)
def test_converted_official_checkpoint_reproduces_official_output(name):
    m, io = load_fixture(name)
    with torch.inference_mode():
        feat = m.encode(io["lr"])
        for reference, atol in ((False, 1e-5), (True, 1e-6)):
            got = m(io["lr"], (37, 29), reference=reference)[0]
            torch.testing.assert_close(got, io["out_37x29"] * 0.5 + 0.5, atol=atol, rtol=0)
            got = m(io["lr"], scale=3, reference=reference)[0]
            torch.testing.assert_close(got, io["out_x3"] * 0.5 + 0.5, atol=atol, rtol=0)
            got = m.query(feat, io["coord"], io["cell"], reference=reference, chunk_size=37)
            torch.testing.assert_close(got, io["out_random"] * 0.5 + 0.5, atol=atol, rtol=0)


def test_converter_reads_spec_and_shapes():
    kw, state = convert_liif(torch.load(FIX / "edsr_liif.pth", weights_only=True))
    assert kw["encoder"] == "edsr_baseline"
    assert kw["encoder_args"]["n_resblocks"] == 2 and kw["encoder_args"]["n_feats"] == 16
    assert kw["hidden"] == [32, 32, 32]
    assert (kw["local_ensemble"], kw["feat_unfold"], kw["cell_decode"]) == (True, True, True)
    assert state["imnet.layers.0.weight"].shape == (32, 16 * 9 + 4)
    kw, _ = convert_liif(torch.load(FIX / "edsr_liif_ablated.pth", weights_only=True))
    assert (kw["local_ensemble"], kw["feat_unfold"], kw["cell_decode"]) == (False, False, False)
    kw, _ = convert_liif(torch.load(FIX / "rdn_liif.pth", weights_only=True))
    assert kw["encoder"] == "rdn"
    assert {k: kw["encoder_args"][k] for k in ("G0", "D", "C", "G")} == {"G0": 8, "D": 2, "C": 2, "G": 8}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_converter_matches_full_converter(name):
    raw = torch.load(FIX / f"{name}.pth", weights_only=True)
    full_kw, _ = convert_liif(raw)
    state, _ = canonicalize(raw)  # what `srkit convert` hands the table entry: args are gone
    overrides = {} if full_kw["local_ensemble"] else {"local_ensemble": False}
    conv = convert_liif_state(state, None, overrides)
    assert conv.arch == "liif"
    assert conv.arch_kwargs == full_kw
    if not overrides:
        assert any("local_ensemble" in n for n in conv.notes)


def test_converter_rejects_wrong_or_contradictory_checkpoints():
    raw = torch.load(FIX / "edsr_liif.pth", weights_only=True)
    with pytest.raises(CheckpointError, match="not an official LIIF checkpoint"):
        convert_liif({"params": {}})
    other = {"model": {**raw["model"], "name": "metasr"}}
    with pytest.raises(CheckpointError, match="'metasr'"):
        convert_liif(other)
    bad_hidden = {"model": {**raw["model"], "args": {**raw["model"]["args"],
                  "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256]}}}}}
    with pytest.raises(CheckpointError, match="hidden_list"):
        convert_liif(bad_hidden)
    bad_flag = {"model": {**raw["model"], "args": {**raw["model"]["args"], "cell_decode": False}}}
    with pytest.raises(CheckpointError, match="cell_decode"):
        convert_liif(bad_flag)
    bad_enc = {"model": {**raw["model"], "args": {**raw["model"]["args"], "encoder_spec": {"name": "rcan"}}}}
    with pytest.raises(CheckpointError, match="'rcan'"):
        convert_liif(bad_enc)
    state = dict(raw["model"]["sd"])
    state.pop("imnet.layers.2.weight")
    with pytest.raises(CheckpointError, match="imnet"):
        convert_liif_state(state, None, {})


# ----------------------------------------------------------------------------- architecture facts
def test_parameter_counts_and_key_layout():
    m = LIIF()  # EDSR-baseline-LIIF, the paper's model
    assert sum(p.numel() for p in m.imnet.parameters()) == 346_883
    assert sum(p.numel() for p in m.parameters()) == 1_567_323
    keys = m.state_dict()
    assert keys["imnet.layers.0.weight"].shape == (256, 580)
    assert keys["imnet.layers.8.weight"].shape == (3, 256)
    assert [k for k in keys if k.startswith("imnet.")] == [
        f"imnet.layers.{i}.{t}" for i in (0, 2, 4, 6, 8) for t in ("weight", "bias")
    ]
    assert {"encoder.head.0.weight", "encoder.body.15.body.2.bias", "encoder.body.16.weight"} <= set(keys)
    with torch.device("meta"):  # RDN-LIIF: count only
        rdn = LIIF("rdn")
    assert sum(p.numel() for p in rdn.parameters()) == 22_320_835
    assert rdn.state_dict()["imnet.layers.0.weight"].shape == (256, 580)


def test_describe():
    d = describe("liif", {"encoder": "edsr_baseline"})
    assert d.continuous and d.arch == "liif"
    assert d.receptive_field == 34 + 2  # 34 encoder convs, + unfold + ensemble neighbour
    assert describe("liif", {"encoder": "rdn"}).receptive_field > 100


def test_make_coord_is_pixel_centres():
    torch.testing.assert_close(make_coord(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]))


# ----------------------------------------------------------------------------- fast == reference
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: "-".join(k for k in f) or "full")
def test_fast_path_equals_reference(flags):
    m = small(**flags)
    lr = torch.rand(2, 3, 7, 9)
    g = torch.Generator().manual_seed(1)
    coord = torch.rand(2, 300, 2, generator=g) * 2 - 1
    # points exactly on latent-cell borders and on the image border (ties of nearest sampling)
    border = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 15), torch.linspace(-1, 1, 19), indexing="ij"), -1)
    coord = torch.cat([coord, border.view(1, -1, 2).expand(2, -1, 2)], dim=1)
    cell = torch.rand(coord.shape, generator=g) * 0.6 + 0.01
    with torch.inference_mode():
        feat = m.encode(lr)
        fast = m.query(feat, coord, cell)
        ref = m.query(feat, coord, cell, reference=True)
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(m(lr, (23, 31)), m(lr, (23, 31), reference=True), atol=1e-5, rtol=0)


def test_fast_path_gradients_match_reference():
    m = small().train()
    lr = torch.rand(1, 3, 6, 6)
    coord = torch.rand(1, 50, 2) * 2 - 1
    cell = torch.full_like(coord, 0.1)
    grads = []
    for reference in (False, True):
        m.zero_grad()
        m.query(m.encode(lr), coord, cell, reference=reference).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)


def test_precomputed_cache_equals_latent_grid():
    m = small()
    lr = torch.rand(1, 3, 5, 8)
    coord = torch.rand(1, 40, 2) * 2 - 1
    cell = torch.full_like(coord, 0.2)
    with torch.inference_mode():
        feat = m.encode(lr)
        cache = m.precompute(feat)
        assert isinstance(cache, LatentCache) and cache.hidden.shape == (5 * 8, 24)
        assert torch.equal(m.query(cache, coord, cell), m.query(feat, coord, cell))
        with pytest.raises(SrkitError, match="LatentCache"):
            m.query(cache, coord, cell, reference=True)


# ----------------------------------------------------------------------------- chunking
def test_chunked_equals_unchunked_and_no_seams():
    m = small()
    lr = torch.rand(2, 3, 6, 7)
    with torch.inference_mode():
        whole = m(lr, (19, 23), chunk_size=10**6)
        for chunk in (9, 64, 19 * 23 - 1):
            torch.testing.assert_close(m(lr, (19, 23), chunk_size=chunk), whole, atol=1e-6, rtol=0)
        torch.testing.assert_close(m(lr, (19, 23), memory_budget=50_000), whole, atol=1e-6, rtol=0)
        # one coordinate placed in different chunks (first, middle, last position) gives one value
        feat = m.encode(lr)
        coord = torch.rand(2, 30, 2) * 2 - 1
        coord[:, [0, 12, 29]] = torch.tensor([0.1234, -0.5678])
        cell = torch.full_like(coord, 0.05)
        out = m.query(feat, coord, cell, chunk_size=8)
        torch.testing.assert_close(out[:, 12], out[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(out[:, 29], out[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(out, m.query(feat, coord, cell), atol=1e-6, rtol=0)


def test_chunk_size_follows_memory_budget():
    m = LIIF(ConvEncoder(8))
    a, b = m.chunk_size_for(2**20), m.chunk_size_for(2**24)
    assert 1 <= a < b and b // a in (15, 16, 17)
    assert m.chunk_size_for(1) == 1
    assert m.chunk_size_for(2**24, reference=True) < b  # the reference path needs more per query


def test_batch_items_are_independent():
    m = small()
    lr = torch.rand(2, 3, 5, 6)
    with torch.inference_mode():
        both = m(lr, (11, 13))
        torch.testing.assert_close(both[1:], m(lr[1:], (11, 13)), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"size": (37, 29)}, (37, 29)),
        ({"size": 16}, (16, 16)),
        ({"scale": 4}, (28, 36)),
        ({"scale": 2.5}, (18, 22)),  # 17.5 -> 18, 22.5 -> 22 (Python rounding, as the official wrapper)
        ({"scale": (1.5, 3.3)}, (10, 30)),
        ({"scale": 1}, (7, 9)),
    ],
)
def test_output_has_exactly_the_requested_size(kwargs, expected):
    m = small()
    with torch.inference_mode():
        out = m(torch.rand(1, 3, 7, 9), **kwargs)
    assert out.shape == (1, 3, *expected)


def test_bad_requests_raise_clear_errors():
    m = small()
    lr = torch.rand(1, 3, 4, 4)
    with pytest.raises(SrkitError, match="exactly one of"):
        m(lr)
    with pytest.raises(SrkitError, match="exactly one of"):
        m(lr, (8, 8), scale=2)
    with pytest.raises(SrkitError, match="positive"):
        m(lr, scale=-2)
    with pytest.raises(SrkitError, match="needs cell"):
        m.query(m.encode(lr), torch.zeros(1, 3, 2))
    with pytest.raises(SrkitError, match=r"\(B, Q, 2\)"):
        m.query(m.encode(lr), torch.zeros(3, 2), torch.zeros(3, 2))


# ----------------------------------------------------------------------------- ensemble semantics
def interpolator(local_ensemble: bool) -> LIIF:
    """LIIF whose MLP returns the latent code itself (identity encoder): the output is then exactly the
    ensemble's weighted sum of the neighbouring pixel values."""
    m = LIIF(Identity3(), hidden=(3,), feat_unfold=False, cell_decode=False, local_ensemble=local_ensemble)
    first, last = m.imnet.linears
    with torch.no_grad():
        first.weight.zero_()
        first.weight[:, :3] = torch.eye(3)
        first.bias.fill_(10.0)  # stays positive through the ReLU
        last.weight.copy_(torch.eye(3))
        last.bias.fill_(-10.0)
    return m.eval()


def test_local_ensemble_is_bilinear_with_opposite_areas_and_weights_sum_to_one():
    lr = torch.rand(1, 3, 6, 5)
    h, w = 6, 5
    # interior points (between the outermost pixel centres), where bilinear interpolation needs no padding
    y = (torch.rand(500) * (h - 1) + 0.5) / h * 2 - 1
    x = (torch.rand(500) * (w - 1) + 0.5) / w * 2 - 1
    coord = torch.stack([y, x], -1).unsqueeze(0)
    with torch.inference_mode():
        m = interpolator(True)
        got = m.query(m.encode(lr), coord)
        grid = coord.flip(-1).unsqueeze(1)
        want = F.grid_sample(lr, grid, mode="bilinear", align_corners=False)[:, :, 0].permute(0, 2, 1)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        # weights sum to one everywhere, borders included: a constant image stays constant
        flat = torch.full((1, 3, h, w), 0.3)
        anywhere = torch.rand(1, 500, 2) * 2 - 1
        torch.testing.assert_close(m.query(m.encode(flat), anywhere), torch.full((1, 500, 3), 0.3), atol=1e-6, rtol=0)
        for reference in (False, True):
            torch.testing.assert_close(m.query(m.encode(lr), coord, reference=reference), want, atol=1e-5, rtol=0)


def test_without_ensemble_the_nearest_code_decides():
    lr = torch.rand(1, 3, 6, 5)
    coord = torch.rand(1, 300, 2) * 2 - 1
    with torch.inference_mode():
        m = interpolator(False)
        got = m.query(m.encode(lr), coord)
        want = F.grid_sample(lr, coord.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)[:, :, 0]
        torch.testing.assert_close(got, want.permute(0, 2, 1), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- registry and `srkit convert`
def _ensure_registered():
    from srkit import archs

    if "liif" not in archs.names():  # the entry proposed for srkit/archs/__init__.py, until it is there
        archs.register("liif", "srkit.archs.liif", "LIIF", {"encoder": "edsr_baseline"},
                       lambda name, kw: describe(name, kw))
    return archs


def test_registry_build_and_describe():
    archs = _ensure_registered()
    net = archs.build("liif", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=(16,))
    assert isinstance(net, LIIF) and net.imnet.linears[0].in_features == 8 * 9 + 4
    d = archs.describe("liif", encoder="rdn")
    assert d.continuous and d.receptive_field == describe("liif", {"encoder": "rdn"}).receptive_field


@pytest.mark.parametrize("name", ["edsr_liif", "rdn_liif"])
def test_convert_checkpoint_end_to_end(name):
    from srkit.convert import convert_checkpoint

    _ensure_registered()
    converted = convert_checkpoint(FIX / f"{name}.pth", "liif")
    io = load_file(str(FIX / f"{name}_io.safetensors"))
    with torch.inference_mode():
        out = converted.net(io["lr"], (37, 29))[0]
    torch.testing.assert_close(out, io["out_37x29"] * 0.5 + 0.5, atol=1e-5, rtol=0)
    assert converted.descriptor.continuous


def test_fused_and_plain_hidden_layers_agree(monkeypatch):
    import srkit.archs.liif as liif_module

    if not liif_module._fused_linear_relu_available():
        pytest.skip("this torch build has no oneDNN fused linear (the plain path is the only one)")
    m = small()
    lr = torch.rand(1, 3, 6, 7)
    with torch.inference_mode():
        monkeypatch.setattr(liif_module, "_FUSED", True)
        fused = m(lr, (17, 19))
        monkeypatch.setattr(liif_module, "_FUSED", False)
        plain = m(lr, (17, 19))
        ref = m(lr, (17, 19), reference=True)
    assert not torch.equal(fused, torch.zeros_like(fused))
    torch.testing.assert_close(fused, plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=0)
