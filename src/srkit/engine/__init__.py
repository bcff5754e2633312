"""Training engine: typed configs, the loop, optimisers and schedules, EMA, checkpoints, DDP.

    >>> from srkit.engine import load_config, train
    >>> cfg = load_config("configs/fsrcnn_x4.yaml", ["train.steps=100"])
    >>> result = train(cfg)          # {"step", "metrics", "model_file"}
"""

from __future__ import annotations


from .._lazy import lazy_exports

_LAZY = {
    "Config": ".config",
    "load_config": ".config",
    "from_dict": ".config",
    "apply_overrides": ".config",
    "dump_config": ".config",
    "Trainer": ".trainer",
    "train": ".trainer",
    "EMA": ".ema",
    "build_optimizer": ".optim",
    "lr_factor": ".optim",
    "StepSchedule": ".optim",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
