"""Recipes the package carries itself (the top-level ``train/`` folder is not installed).

``quickstart()`` is what ``dramnet-edge train`` runs without ``--config``; ``train/quickstart.yaml`` holds the
same settings (a test keeps the two equal).
"""

from __future__ import annotations

import copy

from .config import TrainConfig, config_from_dict

# dramnet_tiny on the synthetic blur engine, sized for a 2-core CPU (see train/quickstart.yaml for the numbers).
QUICKSTART: dict = {
    "model": {"name": "dramnet_tiny", "overrides": {"tile": 112, "memory_saving": False}},
    "data": {"dataset": "synthetic", "crop": 112, "batch_size": 4, "val_size": 16, "train_length": 100000,
             "num_workers": 1,
             "synthetic": {"strength": 0.15, "shake_floor": 0.5, "sharp_fraction": 0.0, "partial_fraction": 0.0}},
    "optim": {"lr": 3.0e-3, "min_lr": 1.0e-5, "warmup_iters": 20},
    "loss": {"lambda_depth": 0.0},
    "stages": [{"name": "depth", "iters": 20}, {"name": "deblur", "iters": 1200}],
    "run": {"log_every": 10, "val_every": 200, "ckpt_every": 200, "threads": 1},
}


def quickstart(overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    return config_from_dict(copy.deepcopy(QUICKSTART), overrides)
