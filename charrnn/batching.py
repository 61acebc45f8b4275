"""Batches of examples grouped by length, for the kinds that train on whole examples (seq2seq
pairs, labelled texts): each epoch the examples are shuffled (seeded), pools of POOL batches
are sorted by length and cut into batches, and the batch order is shuffled, so a batch holds
examples of about one length (little padding) while the order stays random. Each rank of a
torchrun job takes its own rows of every batch."""

from __future__ import annotations

import numpy as np

from charrnn.errors import CharrnnError

POOL = 50  # batches sorted by length together before their order is shuffled


def rng(*key: int) -> np.random.Generator:
    """A generator seeded by a tuple of numbers (seed, epoch, ...)."""
    return np.random.default_rng([abs(int(k)) for k in key])


class GroupedBatches:
    """Row numbers of every batch of an epoch, grouped by `lengths` (one per example)."""

    def __init__(
        self,
        lengths: np.ndarray,
        *,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        unit: str = "examples",
    ) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        rows = batch_size * world_size
        if len(lengths) < rows:
            raise CharrnnError(
                "training split",
                f"too small for one batch ({len(lengths)} {unit}, batch size {batch_size})",
                f"lower --batch-size or add {unit}",
            )
        self.steps_per_epoch = len(lengths) // rows
        self._epoch: int | None = None
        self._plan: np.ndarray | None = None

    def plan(self, epoch: int) -> np.ndarray:
        """Example numbers of every batch of an epoch: (steps, batch_size * world_size)."""
        if self._epoch != epoch:
            generator = rng(self.seed, epoch)
            rows = self.batch_size * self.world_size
            # the examples left over (fewer than a batch) are cut before sorting, so they are
            # random ones, not always the longest of the last pool
            order = generator.permutation(len(self.lengths))[: self.steps_per_epoch * rows]
            pools = []
            for start in range(0, len(order), rows * POOL):
                pool = order[start : start + rows * POOL]
                pools.append(pool[np.argsort(self.lengths[pool], kind="stable")])
            order = np.concatenate(pools)
            batches = order.reshape(self.steps_per_epoch, rows)
            self._plan = batches[generator.permutation(self.steps_per_epoch)]
            self._epoch = epoch
        return self._plan

    def rows(self, epoch: int, index: int) -> np.ndarray:
        """This rank's example numbers of the batch at this data position."""
        rows = self.plan(epoch)[index]
        return rows[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
