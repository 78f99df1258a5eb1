"""Cell-by-feature matrices streamed onto the training device as minibatches.

- :mod:`.memory`: rows of an in-memory dense or sparse (CSR) matrix, densified a batch at a time;
- :mod:`.disk`: rows of a matrix on disk (a backed AnnData), read in contiguous blocks;
- :mod:`.samplers`: seeded minibatches of cell indices (on-disk ones in :mod:`.disk`);
- :mod:`.batches`: :class:`CellData`, the input rows and the per-cell tensors of a minibatch.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .batches import CellData
from .disk import DiskRowSource, row_blocks
from .memory import Positives, RowSource
from .samplers import MinibatchSampler

__all__ = [
    "CellData",
    "DiskRowSource",
    "MinibatchSampler",
    "Positives",
    "RowSource",
    "row_blocks",
    "row_source",
]


def row_source(
    matrix: object, device: torch.device, dtype: torch.dtype = torch.float32
) -> RowSource | DiskRowSource:
    """A :class:`RowSource` of an in-memory matrix (NumPy or SciPy sparse), else a streaming source.

    Anything else is read from disk a block of rows at a time (:class:`DiskRowSource`): the on-disk
    matrix of a backed AnnData, an HDF5 or zarr array.
    """
    if isinstance(matrix, np.ndarray) or sp.issparse(matrix):
        return RowSource(matrix, device, dtype)
    return DiskRowSource(matrix, device, dtype)
