"""The device, the process group and the collectives of the training loop (each a no-op in a single process).

DDP switches on when torchrun sets ``RANK``/``WORLD_SIZE``; rank 0 alone logs and saves; the global batch is
``data.batch_size x world size``.
"""

from __future__ import annotations

import os
import resource
import sys
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UserError


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_pref: str = "auto") -> DistEnv:
    """DDP when torchrun set RANK and WORLD_SIZE (nccl on CUDA, gloo on CPU); a single process otherwise."""
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise UserError(f"run.device={device_pref!r} but CUDA is not available; use run.device=cpu or auto")
    if want_cuda:
        index = int(device_pref.split(":")[1]) if ":" in device_pref else local_rank
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank, world, local_rank, distributed, device)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def broadcast(env: DistEnv, obj):
    """Rank 0's ``obj`` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(env: DistEnv, obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (collective: every rank calls it)."""
    if not env.distributed:
        return [obj]
    box: list = [None] * env.world_size
    dist.all_gather_object(box, obj)
    return box


def mean_over_ranks(env: DistEnv, values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean over ranks of scalar tensors (every rank calls this at the same steps)."""
    keys = sorted(values)
    vec = torch.stack([values[k].detach().float().reshape(()) for k in keys]).to(env.device)
    if env.distributed:
        dist.all_reduce(vec)
        vec /= env.world_size
    return dict(zip(keys, vec.tolist()))


def amp_context(device: torch.device, mode: str):
    """(autocast context, whether fp16 gradient scaling is needed) for ``run.amp`` on ``device``."""
    if device.type != "cuda" or mode == "none":
        return nullcontext(), False
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype), mode == "fp16"


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process peak RSS"
