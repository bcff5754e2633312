"""Typed training config: YAML -> dataclasses, dotted overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from srkit.engine.config import Config, apply_overrides, dump_config, from_dict, load_config, to_dict
from srkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_nested_types():
    cfg = from_dict({"train": {"optimizer": {"betas": [0.8, 0.99]}, "losses": {"l1": {"weight": 2}}}})
    assert isinstance(cfg, Config)
    assert cfg.train.optimizer.betas == (0.8, 0.99)
    assert cfg.train.losses["l1"].weight == 2.0 and isinstance(cfg.train.losses["l1"].weight, float)
    assert cfg.data.scale == 4 and cfg.method.name == "sr"
    assert cfg.out_path == Path("runs/run")


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"trian": {}}, "unknown config key 'trian' (did you mean 'train'?)"),
        ({"train": {"optimizer": {"lrr": 1}}}, "unknown config key 'train.optimizer.lrr' (did you mean 'train.optimizer.lr'?)"),
        ({"train": {"losses": {"l1": {"wieght": 1}}}}, "'train.losses.l1.wieght' (did you mean 'train.losses.l1.weight'?)"),
        ({"data": {"zzz": 1}}, "unknown config key 'data.zzz' (valid keys here: train, scale"),
        ({"data": {"scale": "four"}}, "data.scale must be an integer, got 'four'"),
        ({"data": {"scale": True}}, "data.scale must be an integer"),
        ({"data": {"augment": 1}}, "data.augment must be true or false"),
        ({"train": {"amp": "fp8"}}, "train.amp must be one of none, bf16, fp16; got 'fp8'"),
        ({"train": {"optimizer": {"lr": "fast"}}}, "train.optimizer.lr must be a number, got 'fast'"),
        ({"train": {"optimizer": {"betas": [0.9]}}}, "train.optimizer.betas must have 2 values, got 1"),
        ({"data": {"train": [1]}}, "data.train.0 must be a string"),
        ({"model": 3}, "model must be a mapping"),
        ({"data": {"patch_size": 30, "scale": 4}}, "data.patch_size (30) must be a multiple of data.scale (4)"),
        ({"train": {"ema_decay": 1.0}}, "train.ema_decay must be in [0, 1)"),
        ({"train": {"schedule": {"name": "cosine_restart"}}}, "train.schedule.periods must list"),
        ({"train": {"schedule": {"name": "cosine_restart", "periods": [10, 20], "restart_weights": [1]}}},
         "restart_weights has 1 values for 2 periods"),
        ({"train": {"schedule": {"milestones": [20, 10]}}}, "milestones must increase"),
        ({"train": {"steps": 0}}, "train.steps must be > 0"),
    ],
)
def test_errors_name_the_dotted_key(raw, message):
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    assert message in str(e.value)


def test_yaml_float_quirks_are_accepted():
    # PyYAML reads 2e-4 (no dot) as a string and 1e5 as a float: both are fine where the type is clear
    cfg = from_dict({"train": {"optimizer": {"lr": "2e-4"}, "steps": 1e5}})
    assert cfg.train.optimizer.lr == 2e-4
    assert cfg.train.steps == 100000 and isinstance(cfg.train.steps, int)
    with pytest.raises(ConfigError, match="train.steps must be an integer"):
        from_dict({"train": {"steps": 10.5}})


def test_overrides_are_typed_by_the_field():
    raw = apply_overrides({}, [
        "name=007",                       # stays a string, not the int 7
        "train.optimizer.lr=1e-4",
        "data.train=[T91]",
        "data.val=null",
        "train.schedule.milestones=[10, 20]",
        "train.losses.charbonnier.weight=0.5",
        "model.args.n_feats=32",
        "train.optimizer.betas.1=0.9",
    ])
    cfg = from_dict(raw)
    assert cfg.name == "007"
    assert cfg.train.optimizer.lr == 1e-4
    assert cfg.data.train == ["T91"] and cfg.data.val is None
    assert cfg.train.schedule.milestones == [10, 20]
    assert cfg.train.losses["charbonnier"].weight == 0.5
    assert cfg.model.args == {"n_feats": 32}
    assert cfg.train.optimizer.betas == (0.9, 0.9)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.optimiser.lr=1", "unknown config key 'train.optimiser' (did you mean 'train.optimizer'?)"),
        ("train.lr=1", "unknown config key 'train.lr'"),
        ("data.scale.x=1", "data.scale is a int, it has no sub-keys"),
        ("data.scale", "is not of the form key=value"),
        ("data.scale=[2", "cannot read override value"),
        ("data.scale=two", "data.scale must be an integer, got 'two'"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value)


def test_load_file_roundtrip_and_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: t\ndata:\n  scale: 2\n  patch_size: 64\ntrain:\n  steps: 5\n")
    cfg = load_config(p, ["train.steps=7"])
    assert (cfg.name, cfg.data.scale, cfg.train.steps) == ("t", 2, 7)
    # the dump reads back to the same config
    q = tmp_path / "d.yaml"
    q.write_text(dump_config(cfg))
    assert to_dict(load_config(q)) == to_dict(cfg)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)


def test_example_configs_are_valid():
    files = sorted((REPO / "configs").glob("*.yaml"))
    assert files, "configs/ has no example configs"
    for f in files:
        cfg = load_config(f)
        assert cfg.train.steps > 0, f
