"""Minibatches from a matrix on disk (a backed AnnData), read in contiguous blocks of rows.

Each pass shuffles the order of the blocks, reads ``buffer_blocks`` blocks at a time into an
in-memory buffer (a :class:`~sclatent._core.data.memory.RowSource`, so sparse rows stay sparse until a
batch is gathered), shuffles the training cells within the buffer and cuts them into minibatches.
At most one buffer is held, never the whole matrix. Sequential passes (validation, prediction) read
the blocks in order, with read-ahead.
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
        #: The most rows held in memory at once (for tests and benchmarks).
        self.max_rows_held = 0

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
    the next pass). With ``world_size`` > 1 each rank takes an equal interleaved share of every
    buffer, so all ranks step the same number of times.
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

    def __len__(self) -> int:
        """Minibatches of a pass, at most (buffers drop their last incomplete batch)."""
        return int(self.chosen.sum()) // self.world_size // self.batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        source = self.source
        order = self.generator.permutation(source.n_blocks)
        for first in range(0, len(order), source.buffer_blocks):
            blocks = np.sort(order[first : first + source.buffer_blocks])
            rows = np.concatenate(
                [
                    np.arange(b * source.block_rows, min((b + 1) * source.block_rows, source.shape[0]))
                    for b in blocks
                ]
            )
            rows = self.generator.permutation(rows[self.chosen[rows]])
            per_rank = len(rows) // self.world_size
            mine = rows[self.rank : per_rank * self.world_size : self.world_size]
            n_batches = per_rank // self.batch_size
            if n_batches == 0:
                continue
            source.load(blocks)
            mine = torch.from_numpy(np.ascontiguousarray(mine))
            for i in range(n_batches):
                yield mine[i * self.batch_size : (i + 1) * self.batch_size]
