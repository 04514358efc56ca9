"""Training: the two-stage DRAMNet loop and the AIBNet progressive loop, losses, DDP, checkpoints.

    from dramnet_edge.train import load_config, train
    cfg = load_config("train/gopro.yaml", ["data.root=/data/GoPro"])
    metrics = train(cfg, "runs/gopro")          # or `dramnet-edge train --config ... --out ...`
"""

from .config import TrainConfig, apply_override, config_from_dict, load_config
from .engine import Trainer, resolve_run, train
from .recipes import quickstart

__all__ = ["TrainConfig", "Trainer", "apply_override", "config_from_dict", "load_config", "quickstart", "resolve_run",
           "train"]
