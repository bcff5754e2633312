"""Training engine: typed configs, the loop, optimisers and schedules, EMA, checkpoints, DDP.

    >>> from srkit.engine import load_config, train
    >>> cfg = load_config("configs/fsrcnn_x4.yaml", ["train.steps=100"])
    >>> result = train(cfg)          # {"step", "metrics", "model_file"}
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Config": "config",
    "load_config": "config",
    "from_dict": "config",
    "apply_overrides": "config",
    "dump_config": "config",
    "Trainer": "trainer",
    "train": "trainer",
    "EMA": "ema",
    "build_optimizer": "optim",
    "lr_factor": "optim",
    "StepSchedule": "optim",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'srkit.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"srkit.engine.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
