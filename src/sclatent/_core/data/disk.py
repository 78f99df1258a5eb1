"""Minibatches from a matrix on disk (a backed AnnData), read in contiguous blocks of rows.

Each pass shuffles the order of the blocks, reads ``buffer_blocks`` blocks at a time into an
in-memory buffer (a :class:`~sclatent._core.data.memory.RowSource`, so sparse rows stay sparse until a
batch is gathered), shuffles the training cells within the buffer and cuts them into minibatches.
At most one buffer is held, never the whole matrix. Sequential passes (validation, prediction) read
the blocks in order, with read-ahead.

With several processes the blocks themselves are shared out: every pass's shuffled block order is
the same on all ranks (drawn from the shared seed) and each rank reads only the blocks of its own
run of that order, so the ranks together read the file once per pass, whatever their number
(:meth:`DiskRowSource.shard` shares out validation cells by fixed blocks).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .memory import Positives, RowSource

#: Rows per block read from disk, and blocks per in-memory buffer (about 65,000 cells); changed
#: through ``sl.settings``.
DEFAULTS = {"block_rows": 8192, "buffer_blocks": 8}


def row_blocks(matrix: object, block_rows: int | None = None) -> Iterator[np.ndarray | sp.csr_matrix]:
    """The matrix's rows, ``block_rows`` at a time, in order."""
    n, block_rows = matrix.shape[0], block_rows or DEFAULTS["block_rows"]
    for start in range(0, n, block_rows):
        yield matrix[start : min(start + block_rows, n)]


class DiskRowSource:
    """Rows of an on-disk CSR or dense matrix, gathered as dense tensors on a device.

    Parameters
    ----------
    matrix
        A matrix on disk that slices by rows: ``adata.X`` (or a layer) of an AnnData read with
        ``backed="r"`` (an anndata ``CSRDataset``, an HDF5 or zarr array).
    device
        The device batches are consumed on.
    dtype
        Floating type of the gathered batches.
    block_rows
        Rows per contiguous read (None: ``sl.settings.disk_block_rows``).
    buffer_blocks
        Blocks held in memory at a time (None: ``sl.settings.disk_buffer_blocks``).
    """

    def __init__(
        self,
        matrix: object,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        *,
        block_rows: int | None = None,
        buffer_blocks: int | None = None,
    ) -> None:
        if getattr(matrix, "format", None) == "csc":  # anndata's CSCDataset
            msg = (
                "The on-disk matrix is CSC, which cannot be read by rows; rewrite it as CSR "
                "(adata.X = adata.X.tocsr() before write_h5ad) or load it into memory."
            )
            raise TypeError(msg)
        self.matrix = matrix
        self.device = self.home = device
        self.dtype = dtype
        self.shape: tuple[int, int] = (int(matrix.shape[0]), int(matrix.shape[1]))
        self.block_rows = int(block_rows or DEFAULTS["block_rows"])
        self.buffer_blocks = int(buffer_blocks or DEFAULTS["buffer_blocks"])
        self.n_blocks = -(-self.shape[0] // self.block_rows)
        self._start = torch.full((self.n_blocks,), -1, dtype=torch.int64)  # block -> buffer row
        self._buffer: RowSource | None = None
        #: The most rows held in memory at once, and the rows and bytes read from disk so far (the
        #: stored entries and column indices of a sparse matrix), for tests and benchmarks.
        self.max_rows_held = self.rows_read = self.bytes_read = 0

    def __len__(self) -> int:
        return self.shape[0]

    def load(self, blocks: Sequence[int]) -> None:
        """Replace the buffer by these blocks, read contiguously in ascending order."""
        blocks = sorted(int(b) for b in blocks)
        parts = [self.matrix[b * self.block_rows : (b + 1) * self.block_rows] for b in blocks]
        stacked = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
        self._buffer = RowSource(stacked, self.device, self.dtype)
        self._start.fill_(-1)
        sizes = torch.tensor([p.shape[0] for p in parts])
        self._start[torch.tensor(blocks)] = torch.cumsum(sizes, 0) - sizes
        self.max_rows_held = max(self.max_rows_held, stacked.shape[0])
        self.rows_read += stacked.shape[0]
        self.bytes_read += (
            stacked.data.nbytes + stacked.indices.nbytes if sp.issparse(stacked) else stacked.nbytes
        )

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Dense ``(len(rows), n_features)`` tensor of the given rows, read from disk when not buffered."""
        positions = self._buffered(rows)  # first: it may replace the buffer
        return self._buffer.gather(positions)

    def gather_with_positives(self, rows: torch.Tensor) -> tuple[torch.Tensor, Positives | None]:
        """As :meth:`RowSource.gather_with_positives`, read from disk when not buffered."""
        positions = self._buffered(rows)
        return self._buffer.gather_with_positives(positions)

    def _buffered(self, rows: torch.Tensor) -> torch.Tensor:
        """The buffer's rows of the given rows, loading their blocks when they are not buffered."""
        rows = rows.cpu()
        blocks = torch.div(rows, self.block_rows, rounding_mode="floor")
        if (self._start[blocks] < 0).any():  # sequential passes: this block and the next ones
            needed = torch.unique(blocks)
            ahead = range(int(needed.min()), min(int(needed.min()) + self.buffer_blocks, self.n_blocks))
            self.load(sorted(set(needed.tolist()) | set(ahead)))
        return self._start[blocks] + rows % self.block_rows

    def take(self, rows: np.ndarray) -> RowSource:
        """The given rows (sorted) read into an in-memory :class:`RowSource`, a block at a time."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        blocks = rows // self.block_rows
        parts = []
        for block in np.unique(blocks):
            start = int(block) * self.block_rows
            part = self.matrix[start : min(start + self.block_rows, self.shape[0])]
            parts.append(part[rows[blocks == block] - start])
            self.rows_read += part.shape[0]
        stacked = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
        return RowSource(stacked, self.device, self.dtype)

    def shard(self, indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
        """A rank's share of ``indices`` in sequential passes: those in blocks ``rank + k * world_size``.

        So validation reads each block on one rank only. With fewer blocks than ranks every rank takes
        an interleaved share instead (each then reads the whole, small, matrix).
        """
        if self.n_blocks < world_size:
            return indices[rank::world_size]
        return indices[(indices // self.block_rows) % world_size == rank]

    def row_sums(self) -> torch.Tensor:
        """Per-row totals (e.g. library sizes) as a float64 tensor, read block by block."""
        sums = [np.asarray(block.sum(1), dtype=np.float64).ravel() for block in row_blocks(self.matrix)]
        return torch.from_numpy(np.concatenate(sums)).to(self.device)

    def sampler(
        self,
        indices: np.ndarray,
        batch_size: int,
        generator: np.random.Generator,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> BlockShuffleSampler:
        """Shuffled training minibatches that read the matrix a buffer at a time."""
        return BlockShuffleSampler(self, indices, batch_size, generator, rank=rank, world_size=world_size)


class BlockShuffleSampler:
    """Minibatches of cell indices drawn buffer by buffer from a :class:`DiskRowSource`.

    Every pass shuffles the blocks, groups them into buffers, loads each buffer once, shuffles the
    chosen cells within it and yields full minibatches (the few cells left over in a buffer wait for
    the next pass).

    With ``world_size`` > 1 the pass's block order is the same on every rank (drawn from the shared
    ``generator``); the chosen cells, taken in that order, are cut into ``world_size`` equal runs and
    each rank reads only the blocks of its own run (a block at the border of two runs is read by
    both), so the ranks together read the file once per pass. All ranks step as often as the rank with
    the fewest full minibatches in that pass, so they stay in step. With fewer blocks than ranks,
    each rank instead takes an interleaved share of every buffer (and reads them all).
    """

    def __init__(
        self,
        source: DiskRowSource,
        indices: np.ndarray,
        batch_size: int,
        generator: np.random.Generator,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.source = source
        self.chosen = np.zeros(source.shape[0], dtype=bool)
        self.chosen[np.asarray(indices, dtype=np.int64)] = True
        self.batch_size = int(batch_size)
        self.generator = generator
        self.rank, self.world_size = rank, world_size
        self.deal_blocks = world_size > 1 and source.n_blocks >= world_size

    def __len__(self) -> int:
        """Minibatches of a pass, at most (buffers drop their last incomplete batch)."""
        return int(self.chosen.sum()) // self.world_size // self.batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.generator.permutation(self.source.n_blocks)
        if not self.deal_blocks:
            yield from self._interleaved(order)
            return
        # the shared generator draws only what every rank draws, so that it stays in step; each
        # rank shuffles within its buffers with a generator of its own
        seed = int(self.generator.integers(2**63))
        runs = self._runs(order)
        n_steps = min(sum(len(rows) // self.batch_size for _, rows in run) for run in runs)
        if n_steps == 0:  # runs too short to fill a minibatch per buffer: share every buffer instead
            yield from self._interleaved(order)
            return
        generator = np.random.default_rng([seed, self.rank])
        batches = self._batches(runs[self.rank], generator)
        for _, rows in zip(range(n_steps), batches, strict=False):
            yield rows

    def _block_cells(self, block: int) -> np.ndarray:
        """The block's rows, all of them (numbered in the matrix)."""
        rows = self.source.block_rows
        return np.arange(block * rows, min((block + 1) * rows, self.source.shape[0]))

    def _runs(self, order: np.ndarray) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Each rank's buffers, as (blocks, chosen cells), of its run of the cells in block order."""
        cells = np.concatenate([self._block_cells(b) for b in order])
        cells = cells[self.chosen[cells]]
        per_rank = len(cells) // self.world_size
        runs = []
        for rank in range(self.world_size):
            mine = cells[rank * per_rank : (rank + 1) * per_rank]
            blocks = mine // self.source.block_rows
            # the run's blocks in the pass's order, a buffer of them at a time
            starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
            cuts = starts[self.source.buffer_blocks :: self.source.buffer_blocks]
            runs.append(
                [(np.unique(b), m) for b, m in zip(np.split(blocks, cuts), np.split(mine, cuts), strict=True)]
            )
        return runs

    def _batches(
        self, buffers: list[tuple[np.ndarray, np.ndarray]], generator: np.random.Generator
    ) -> Iterator[torch.Tensor]:
        """Full minibatches of each buffer's cells, shuffled within the buffer, the buffer loaded once."""
        for blocks, cells in buffers:
            yield from self._cut(blocks, generator.permutation(np.sort(cells)))

    def _interleaved(self, order: np.ndarray) -> Iterator[torch.Tensor]:
        """One process's minibatches; with several (and few blocks), this rank's interleaved share."""
        size = self.source.buffer_blocks
        for first in range(0, len(order), size):
            blocks = np.sort(order[first : first + size])
            rows = np.concatenate([self._block_cells(b) for b in blocks])
            rows = self.generator.permutation(rows[self.chosen[rows]])
            per_rank = len(rows) // self.world_size
            yield from self._cut(blocks, rows[self.rank : per_rank * self.world_size : self.world_size])

    def _cut(self, blocks: np.ndarray, cells: np.ndarray) -> Iterator[torch.Tensor]:
        """Full minibatches of ``cells`` in their order, the buffer of ``blocks`` loaded first (if any)."""
        n_batches = len(cells) // self.batch_size
        if n_batches == 0:
            return
        self.source.load(blocks)
        cells = torch.from_numpy(np.ascontiguousarray(cells))
        for i in range(n_batches):
            yield cells[i * self.batch_size : (i + 1) * self.batch_size]
