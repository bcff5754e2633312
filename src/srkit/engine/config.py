"""Training configuration: YAML -> nested, validated dataclasses, plus ``key=value`` overrides.

Every key is checked against the dataclass it lands in: an unknown or mistyped key raises
:class:`~srkit.errors.ConfigError` naming the full dotted key and the closest valid key. There is
no inheritance between config files on purpose: one file states one recipe.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from ..errors import ConfigError


@dataclass
class ModelConfig:
    arch: str = "fsrcnn"
    """Architecture name understood by ``srkit.archs.build``."""
    args: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments of the architecture (``scale`` is filled in from ``data.scale`` if absent)."""
    init: str | None = None
    """Weights to start from: an srkit model file or a checkpoint (fine-tuning). Ignored on ``--resume``."""
    init_partial: bool = False
    """With ``init``: load only the tensors whose name and shape match and keep the rest as initialised
    (e.g. a x2 model's body under a x4 tail); the skipped names are logged. Off: every key must fit."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=lambda: ["T91", "BSD200"])
    """Training sets: names known to ``srkit.data.sets`` or folders of HR images."""
    scale: int = 4
    patch_size: int = 96
    """HR patch side in pixels (the LR patch is ``patch_size // scale``)."""
    batch_size: int = 16
    """Global batch: under torchrun each of the K processes takes ``batch_size / K`` samples."""
    workers: int = 0
    augment: bool = True
    """Random flips and 90-degree rotations."""
    repeat: int = 1
    """How many times the training set is repeated within one epoch."""
    cache: bool = True
    lr_border: Literal["symmetric", "replicate"] = "symmetric"
    """Border handling of the MATLAB bicubic that makes LR from HR."""
    val: str | None = "Set5"
    """Validation set (name or folder); None disables validation."""
    val_preset: str = "benchmark"
    """Metric preset (``srkit.metrics.presets``) that fixes the crop border and the colour channel."""


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw"] = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    name: Literal["constant", "multistep", "cosine_restart"] = "multistep"
    milestones: list[int] = field(default_factory=list)
    """multistep: steps at which the learning rate is multiplied by ``gamma``."""
    gamma: float = 0.5
    periods: list[int] = field(default_factory=list)
    """cosine_restart: length in steps of each cosine cycle."""
    restart_weights: list[float] = field(default_factory=list)
    """cosine_restart: peak of each cycle as a fraction of ``lr`` (defaults to all 1)."""
    eta_min: float = 1e-7
    """cosine_restart: the learning rate at the bottom of each cycle."""
    warmup_steps: int = 0
    """Linear warm-up from 0 over this many steps, multiplied onto the schedule."""


@dataclass
class LossTerm:
    weight: float = 1.0
    args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``srkit.losses.build_loss`` (e.g. the VGG weights file of ``perceptual``)."""


@dataclass
class GanConfig:
    weight: float = 0.0
    """Weight of the adversarial term in the generator loss; 0 disables the GAN phase."""
    loss: Literal["vanilla", "lsgan", "hinge", "relativistic"] = "vanilla"
    """Adversarial loss (``srkit.losses``): BCE, least squares, hinge, or relativistic average (ESRGAN)."""
    start_step: int = 0
    """The adversarial phase begins at this step (pixel/perceptual pre-training before it)."""
    channels: int = 64
    """Base width of the VGG-style discriminator."""
    optimizer: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))


@dataclass
class TrainConfig:
    steps: int = 1000
    optimizer: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    losses: dict[str, LossTerm] = field(default_factory=lambda: {"l1": LossTerm()})
    """Pixel/perceptual loss terms by ``build_loss`` name, each with a weight."""
    gan: GanConfig = field(default_factory=GanConfig)
    ema_decay: float = 0.0
    """Exponential moving average of the weights; 0 disables it (e.g. 0.999)."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 disables it."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Mixed precision on GPU; CPU runs always use float32."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu' or 'cuda'."""
    log_every: int = 100
    val_every: int = 1000
    ckpt_every: int = 1000
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep (0 keeps all)."""
    tensorboard: bool = True
    """Also write TensorBoard logs (when tensorboard is installed)."""
    deterministic: bool = True
    """Ask torch for deterministic kernels (needed for bit-identical resume on GPU)."""
    time_limit: float = 0.0
    """Stop after this many minutes of training even before ``steps`` (0: no limit). The stop is clean: a
    checkpoint, validation and the model file are written as at the end, and ``--resume`` continues."""


@dataclass
class MethodConfig:
    name: str = "sr"
    args: dict[str, Any] = field(default_factory=dict)
    """Method-specific options, checked by the method itself."""


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    output_dir: str = ""
    """Where logs, checkpoints and the model file go; empty means ``runs/<name>``."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    @property
    def out_path(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")


# ---------------------------------------------------------------- conversion with full dotted keys


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _unknown(parent: str, key: str, valid: list[str]) -> ConfigError:
    """'unknown config key a.b.c' with the closest valid key at the same level, or the valid keys."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{_join(parent, close[0])}'?" if close else f"valid keys here: {', '.join(valid)}"
    return ConfigError(f"unknown config key '{_join(parent, key)}' ({hint})")


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp`` and return it converted; errors name ``key``."""
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            value = to_dict(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key or 'config'} must be a mapping, got {value!r}")
        hints = _hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        kwargs = {}
        for k, v in value.items():
            if k not in names:
                raise _unknown(key, str(k), names)
            kwargs[k] = _convert(v, hints[k], _join(key, k))
        return tp(**kwargs)
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key} must not be null")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} is not a {_type_name(tp)}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str) and item is str:
            value = [value]  # a single name is a one-element list
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_convert(v, item, _join(key, i)) for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], _join(key, i)) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key} must have {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, _join(key, i)) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return {_convert(k, kt, key): _convert(v, vt, _join(key, k)) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 1e5 in YAML is a float; accept it when whole
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML reads '1e-4' (no dot) as a string; accept it for float fields.
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {_type_name(tp)}")  # pragma: no cover


def to_dict(cfg: Any) -> Any:
    """A dataclass config as plain dicts/lists (tuples become lists), fit for YAML and JSON."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(raw: dict[str, Any] | None) -> Config:
    """Validate a nested dict (as read from YAML) into a :class:`Config`."""
    cfg = _convert(raw or {}, Config, "")
    check(cfg)
    return cfg


# ---------------------------------------------------------------- overrides


def _type_at(path: list[str]) -> Any:
    """The declared type at a dotted path; raises ConfigError for an unknown key."""
    tp: Any = Config
    done = ""
    for part in path:
        while _is_union(tp):  # Optional[X] -> X
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                raise _unknown(done, part, names)
            tp = _hints(tp)[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple):
            if not part.isdigit():
                raise ConfigError(f"'{_join(done, part)}': {done} is a list; index it with a number")
            args = typing.get_args(tp)
            tp = args[0] if typing.get_origin(tp) is list or args[-1] is Ellipsis else args[int(part)]
        elif tp is Any:
            pass
        else:
            raise ConfigError(f"'{_join(done, part)}': {done} is a {_type_name(tp)}, it has no sub-keys")
        done = _join(done, part)
    return tp


def _parse_value(text: str, tp: Any) -> Any:
    import yaml

    plain_str = tp is str or (_is_union(tp) and str in typing.get_args(tp) and text.lower() not in ("null", "~"))
    if plain_str:
        return text  # keep 'name=007' a string
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot read override value {text!r}: {e}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to a raw config dict (in place, also returned).

    The value is read as YAML (``[1, 2]``, ``null``, ``true``, ``1e-4``) except where the field is
    a string. Unknown keys raise :class:`ConfigError` naming the dotted key.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        path = key.strip().split(".")
        if not all(path):
            raise ConfigError(f"override {item!r} has an empty key part")
        tp = _type_at(path)
        value = _parse_value(text, tp)
        node: Any = raw
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, list):
                nxt = node[int(part)] if int(part) < len(node) else None
            if nxt is None:
                # materialise defaults so that a list index or nested key has something to land in
                nxt = to_dict(_default_at(path[: i + 1]))
                if nxt is None:
                    nxt = {}
                if isinstance(node, list):
                    node[int(part)] = nxt
                else:
                    node[part] = nxt
            node = nxt
        last = path[-1]
        if isinstance(node, list):
            idx = int(last)
            if idx >= len(node):
                raise ConfigError(f"override {key}: index {idx} is past the end of a list of {len(node)}")
            node[idx] = value
        else:
            node[last] = value
    return raw


def _default_at(path: list[str]) -> Any:
    obj: Any = Config()
    for part in path:
        if dataclasses.is_dataclass(obj):
            obj = getattr(obj, part)
        elif isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, (list, tuple)):
            obj = obj[int(part)] if int(part) < len(obj) else None
        else:
            return None
        if obj is None:
            return None
    return obj


# ---------------------------------------------------------------- loading and checks


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config file (None = all defaults), apply ``key=value`` overrides, validate."""
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    apply_overrides(raw, list(overrides))
    return from_dict(raw)


def dump_config(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def check(cfg: Config) -> None:
    """Value checks that types alone cannot express."""

    def positive(key: str, value: float, allow_zero: bool = False) -> None:
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    d, t = cfg.data, cfg.train
    positive("data.scale", d.scale)
    positive("data.patch_size", d.patch_size)
    positive("data.batch_size", d.batch_size)
    positive("data.workers", d.workers, allow_zero=True)
    positive("data.repeat", d.repeat)
    if d.patch_size % d.scale:
        raise ConfigError(f"data.patch_size ({d.patch_size}) must be a multiple of data.scale ({d.scale})")
    if not d.train:
        raise ConfigError("data.train must name at least one training set")
    positive("train.steps", t.steps)
    for k in ("log_every", "val_every", "ckpt_every"):
        positive(f"train.{k}", getattr(t, k))
    positive("train.keep_checkpoints", t.keep_checkpoints, allow_zero=True)
    positive("train.optimizer.lr", t.optimizer.lr)
    positive("train.grad_clip", t.grad_clip, allow_zero=True)
    positive("train.time_limit", t.time_limit, allow_zero=True)
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    s = t.schedule
    if s.name == "multistep" and any(b <= a for a, b in zip(s.milestones, s.milestones[1:])):
        raise ConfigError(f"train.schedule.milestones must increase, got {s.milestones}")
    if s.name == "cosine_restart":
        if not s.periods or any(p <= 0 for p in s.periods):
            raise ConfigError("train.schedule.periods must list positive cycle lengths for cosine_restart")
        if s.restart_weights and len(s.restart_weights) != len(s.periods):
            raise ConfigError(
                f"train.schedule.restart_weights has {len(s.restart_weights)} values for "
                f"{len(s.periods)} periods"
            )
    if t.device not in ("auto", "cpu", "cuda") and not t.device.startswith("cuda:"):
        raise ConfigError(f"train.device must be auto, cpu or cuda[:N]; got {t.device!r}")
    if not t.losses and t.gan.weight == 0:
        raise ConfigError("train.losses is empty and the GAN is off: nothing to train on")
