"""Seeded minibatches of cell indices for in-memory matrices (on-disk ones: :mod:`.disk`)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class MinibatchSampler:
    """Seeded minibatches of cell indices, as tensors on the host (CPU).

    Parameters
    ----------
    indices
        The cells to draw from.
    batch_size
        Cells per batch.
    shuffle
        Reshuffle every pass (seeded by ``generator``) or keep the given order.
    drop_last
        Drop the final incomplete batch (training, so batch norm never sees a tiny batch).
    generator
        Source of the shuffles.
    rank, world_size
        With ``world_size`` > 1 each pass's (shared) order is cut into ``world_size`` equal
        interleaved shards and this sampler yields shard ``rank``: every process of a data-parallel
        run sees different cells and the same number of batches.
    """

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.rank, self.world_size = rank, world_size
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator if generator is not None else np.random.default_rng(0)

    def __len__(self) -> int:
        n = len(self.indices) // self.world_size if self.world_size > 1 else len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.generator.permutation(self.indices) if self.shuffle else self.indices
        if self.world_size > 1:
            n = len(order) // self.world_size
            order = order[self.rank : n * self.world_size : self.world_size]
        order = torch.from_numpy(np.ascontiguousarray(order))  # on the host: see RowSource.gather
        for i in range(len(self)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]
