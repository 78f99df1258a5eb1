"""Rows of an in-memory cell-by-feature matrix, gathered as dense minibatches on the training device.

A sparse CSR matrix stays sparse: its three arrays are moved to the device once (to the GPU when they
fit, else kept on the host), and every minibatch is gathered and densified there with a handful of
vectorised tensor operations. Dense matrices are indexed directly. Nothing densifies the whole matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from .samplers import MinibatchSampler

#: Share of free GPU memory that a matrix may take before it stays on the host instead.
_GPU_MEMORY_SHARE = 0.5
#: Rows summed at a time by :meth:`RowSource.row_sums`.
_ROW_SUM_BLOCK = 65_536


def _home_device(nbytes: int, device: torch.device) -> torch.device:
    """Where a matrix of ``nbytes`` should live when batches are consumed on ``device``."""
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if nbytes <= _GPU_MEMORY_SHARE * free else torch.device("cpu")


class Positives(NamedTuple):
    """The positive entries of a dense minibatch, in row-major order (as ``(x > 0).nonzero()``)."""

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor


class RowSource:
    """Rows of a cell-by-feature matrix, gathered as dense float tensors on a device.

    Parameters
    ----------
    matrix
        A dense array or a SciPy sparse matrix (converted to CSR when it is not CSR already).
    device
        The device batches are consumed on.
    dtype
        Floating type of the gathered batches.
    """

    def __init__(
        self,
        matrix: np.ndarray | sp.spmatrix | sp.sparray,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.shape: tuple[int, int] = (int(matrix.shape[0]), int(matrix.shape[1]))
        self.is_sparse = sp.issparse(matrix)
        self._host_csr: sp.csr_matrix | None = None
        if self.is_sparse:
            csr = sp.csr_matrix(matrix)  # no copy when already CSR
            if not csr.has_canonical_format:
                csr = csr.copy()
                csr.sum_duplicates()
            nbytes = csr.data.size * 8 + csr.indptr.size * 8
            home = _home_device(nbytes, device)
            indptr = csr.indptr.astype(np.int64, copy=False)
            self._indptr = torch.as_tensor(indptr, device=home)
            # a batch's number of stored entries, summed on the host: reading it from the GPU would
            # make every step wait for the previous one
            self._host_lengths = torch.from_numpy(np.diff(indptr)) if home.type == "cuda" else None
            self._indices = torch.as_tensor(csr.indices.astype(np.int32, copy=False), device=home)
            # cast on the host: the device holds only the float32 copy that its budget counts
            self._values = torch.as_tensor(csr.data).to(dtype).to(home)
            # on the host, SciPy slices rows several times faster than tensor indexing; this view
            # shares the arrays above (its int32 row pointers need under 2**31 stored entries)
            if home.type == "cpu" and csr.nnz < 2**31:
                arrays = (self._values.numpy(), self._indices.numpy(), indptr.astype(np.int32))
                self._host_csr = sp.csr_matrix(arrays, shape=self.shape, copy=False)
        else:
            array = np.ascontiguousarray(matrix)  # torch needs positive strides
            home = _home_device(array.size * 4, device)
            self._dense = torch.as_tensor(array).to(dtype).to(home)
        self.home = home

    def __len__(self) -> int:
        return self.shape[0]

    @staticmethod
    def shard(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
        """The share of ``indices`` a rank takes in sequential passes: every ``world_size``-th one."""
        return indices[rank::world_size]

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Dense ``(len(rows), n_features)`` tensor of the given rows, on :attr:`device`.

        Rows given on the host (as the samplers yield them) gather without waiting for the GPU.
        """
        total = None
        if self.is_sparse and self._host_lengths is not None and rows.device.type == "cpu":
            total = int(self._host_lengths[rows].sum())
        rows = rows.to(self.home, non_blocking=True)
        if not self.is_sparse:
            return self._dense[rows].to(self.device, non_blocking=True)
        if self._host_csr is not None:
            out = torch.from_numpy(self._host_csr[rows.numpy()].toarray())
        else:
            out = gather_csr_rows(self._indptr, self._indices, self._values, rows, self.shape[1], total=total)
        return out.to(self.device, non_blocking=True)

    def gather_with_positives(self, rows: torch.Tensor) -> tuple[torch.Tensor, Positives | None]:
        """:meth:`gather`, and for a sparse matrix batched on the CPU its positive entries too.

        The entries come from the same rows of the sparse matrix, which saves the count likelihoods
        a search of the dense batch (:func:`~sclatent._core.nn.likelihoods.log_prob_sum`); None where
        the batch is not gathered that way (dense matrices, GPU batches).
        """
        if self._host_csr is None or self.device.type != "cpu":
            return self.gather(rows), None
        part = self._host_csr[rows.cpu().numpy()]
        row_of_entry = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
        cols, values = part.indices.astype(np.int64), part.data
        positive = values > 0  # stored zeros (or negatives) are not positive entries
        if not positive.all():
            row_of_entry, cols, values = row_of_entry[positive], cols[positive], values[positive]
        found = Positives(*(torch.from_numpy(a) for a in (row_of_entry, cols, values)))
        return torch.from_numpy(part.toarray()), found

    def sampler(
        self,
        indices: np.ndarray,
        batch_size: int,
        generator: np.random.Generator,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> MinibatchSampler:
        """Shuffled training minibatches (full batches only) of ``indices``."""
        return MinibatchSampler(
            indices,
            batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
            rank=rank,
            world_size=world_size,
        )

    def row_sums(self) -> torch.Tensor:
        """Per-row totals (e.g. library sizes) as a float64 tensor on the home device."""
        sums = torch.zeros(self.shape[0], dtype=torch.float64, device=self.home)
        for start in range(0, self.shape[0], _ROW_SUM_BLOCK):  # bounded temporaries, also at 1M cells
            stop = min(start + _ROW_SUM_BLOCK, self.shape[0])
            if not self.is_sparse:
                sums[start:stop] = self._dense[start:stop].double().sum(1)
                continue
            indptr = self._indptr[start : stop + 1]
            row_ids = torch.repeat_interleave(torch.arange(stop - start, device=self.home), indptr.diff())
            values = self._values[int(indptr[0]) : int(indptr[-1])].double()
            sums[start:stop].index_add_(0, row_ids, values)
        return sums


def gather_csr_rows(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    values: torch.Tensor,
    rows: torch.Tensor,
    n_cols: int,
    *,
    total: int | None = None,
) -> torch.Tensor:
    """Densify selected rows of a CSR matrix given as three tensors.

    Parameters
    ----------
    indptr, indices, values
        The CSR arrays (canonical: sorted, no duplicates).
    rows
        Row numbers to gather, in output order (repeats allowed).
    n_cols
        Number of columns.
    total
        Stored entries of the selected rows, when known (else read from ``indptr``, which on a GPU
        waits for the device).

    Returns
    -------
    A dense ``(len(rows), n_cols)`` tensor.
    """
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    out = torch.zeros(rows.numel(), n_cols, dtype=values.dtype, device=values.device)
    total = int(lengths.sum()) if total is None else total
    if total == 0:
        return out
    out_row = torch.repeat_interleave(
        torch.arange(rows.numel(), device=rows.device), lengths, output_size=total
    )
    # position of each stored entry: its row's start plus its rank within the row
    first_in_output = torch.cumsum(lengths, 0) - lengths
    source = torch.arange(total, device=rows.device) + (starts - first_in_output)[out_row]
    flat = out_row * n_cols + indices[source].to(torch.int64)
    out.view(-1)[flat] = values[source]
    return out
