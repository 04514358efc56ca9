"""Reproducible data order: batch contents are a pure function of (data.seed, global step).

A permutation of the training set per epoch is drawn from a generator seeded by the epoch, rank r takes positions
[r*b, (r+1)*b) of each global batch, and every sample's random crop/flip/blur is drawn under a seed derived from
its global position. So a resumed run draws exactly the batches the uninterrupted run would have drawn, any
``num_workers`` gives the same data, and N ranks with batch b see the same samples as 1 rank with batch N*b.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import UserError
from .config import TrainConfig
from .distributed import DistEnv

# A data worker that delivers no batch for this long is hung (a batch takes well under a second): fail with a message
# instead of stalling the run forever.
LOADER_TIMEOUT_S = 300


class StepBatchSampler:
    """Yields this rank's sample keys ``[(index, sample_seed, epoch), ...]`` for global steps ``start .. end-1``.

    Position p = step * global_batch + j (j < global_batch) of the endless stream maps to
    ``perm(epoch = p // n)[p % n]``, the permutation drawn from a generator seeded by (seed, epoch). Rank r
    takes j in [r*b, (r+1)*b). The sample seed is a hash of (seed, p): crops and flips depend on the position
    in the stream, not on which process or worker reads it.
    """

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int, seed: int, start: int, end: int,
                 shuffle: bool = True):
        if n <= 0:
            raise UserError("the training set is empty")
        self.n, self.b, self.world, self.rank, self.seed = n, batch_size, world_size, rank, seed
        self.start, self.end, self.shuffle = start, end, shuffle
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._perm = (epoch, torch.randperm(self.n, generator=g))
            else:
                self._perm = (epoch, torch.arange(self.n))
        return self._perm[1]

    def keys_for_step(self, step: int) -> list[tuple[int, int]]:
        keys = []
        for j in range(self.rank * self.b, (self.rank + 1) * self.b):
            p = step * self.b * self.world + j
            index = int(self._permutation(p // self.n)[p % self.n])
            keys.append((index, sample_seed(self.seed, p), p // self.n))
        return keys

    def __iter__(self):
        for step in range(self.start, self.end):
            yield self.keys_for_step(step)


def sample_seed(seed: int, position: int) -> int:
    # splitmix64-style mixing: neighbouring positions get unrelated seeds.
    z = (seed * 0x9E3779B97F4A7C15 + position + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFF


class SeededDataset(Dataset):
    """Reads ``dataset[index]`` with torch, numpy and random seeded by the key's sample seed (then restored), so
    augmentations drawn from the global RNGs are reproducible wherever the sample is read. Datasets that draw
    from their own generator (the synthetic engine: a pure function of seed, epoch and index) get the key's
    epoch through ``set_epoch`` first, so every epoch renders fresh samples."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed, epoch = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
            try:
                item = self.dataset[index]
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
        return item


def collate(items: list[dict]) -> dict:
    """Stack the tensor fields of a list of sample dicts; other fields (names) stay lists."""
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def step_loader(train_ds: Dataset, cfg: TrainConfig, env: DistEnv, start: int, end: int) -> DataLoader:
    """This rank's batches of global steps ``start .. end-1`` (``StepBatchSampler`` over ``SeededDataset``)."""
    sampler = StepBatchSampler(len(train_ds), cfg.data.batch_size, env.world_size, env.rank, cfg.data.seed,
                               start, end)
    return DataLoader(SeededDataset(train_ds), batch_sampler=sampler, collate_fn=collate,
                      num_workers=cfg.data.num_workers, pin_memory=env.device.type == "cuda",
                      persistent_workers=False, timeout=LOADER_TIMEOUT_S if cfg.data.num_workers > 0 else 0)


def val_loader(val_ds: Dataset, cfg: TrainConfig) -> DataLoader:
    """The held-out pairs in order, one process, ``data.batch_size`` at a time."""
    return DataLoader(val_ds, batch_size=cfg.data.batch_size, shuffle=False, collate_fn=collate, num_workers=0)
