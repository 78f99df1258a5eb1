"""Principal components of a matrix streamed block by block (randomised SVD, Halko et al. 2011).

The matrix is never held whole: each pass reads it block after block (rows of a CSR gathered on the
training device, or blocks read from disk), and only ``n x (k + oversamples)`` and
``(k + oversamples) x n_features`` factors are kept. Centring is implicit (the column means are
subtracted from the products, not from the matrix), as scanpy does for sparse input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

#: Extra directions of the random range finder beyond the components asked for.
OVERSAMPLES = 10
#: Power iterations (each one pass over the matrix and back), as scikit-learn's randomized_svd makes.
POWER_ITERATIONS = 7


def _orthonormal(matrix: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(matrix, mode="reduced").Q


def streamed_pca(
    blocks: Callable[[], Iterator[torch.Tensor]],
    n_comps: int,
    *,
    random_state: int = 0,
    n_iter: int = POWER_ITERATIONS,
) -> np.ndarray:
    """The first ``n_comps`` principal components (scores) of the rows that ``blocks`` yields.

    Parameters
    ----------
    blocks
        Called once per pass; yields the matrix as dense ``(rows, n_features)`` float tensors, the
        same rows in the same order every time.
    n_comps
        Number of components; fewer when the matrix has fewer rows or features.
    random_state
        Seed of the random test matrix.
    n_iter
        Power iterations.

    Returns
    -------
    ``(n_rows, n_comps)`` scores ``U S`` of the centred matrix, as ``sc.pp.pca`` stores them in
    ``obsm["X_pca"]`` (up to the sign of each component).
    """
    total, n_rows = None, 0
    for block in blocks():
        block = block.double()
        total = block.sum(0) if total is None else total + block.sum(0)
        n_rows += block.shape[0]
    mean = total / n_rows
    n_features = mean.shape[0]
    width = min(n_comps + OVERSAMPLES, n_rows, n_features)
    generator = torch.Generator(device="cpu").manual_seed(random_state)
    test = torch.randn(n_features, width, generator=generator, dtype=torch.float64).to(mean.device)

    def right(factor: torch.Tensor) -> torch.Tensor:  # (X - 1 mean^T) @ factor, (n_rows, width)
        shift = mean @ factor
        return torch.cat([block.double() @ factor - shift for block in blocks()])

    def left(factor: torch.Tensor) -> torch.Tensor:  # (X - 1 mean^T)^T @ factor, (n_features, width)
        product, start = torch.zeros(n_features, factor.shape[1], dtype=torch.float64, device=mean.device), 0
        for block in blocks():
            stop = start + block.shape[0]
            product += block.double().T @ factor[start:stop]
            start = stop
        return product - mean[:, None] * factor.sum(0)

    basis = _orthonormal(right(test))
    for _ in range(n_iter):
        basis = _orthonormal(right(_orthonormal(left(basis))))
    small = left(basis).T  # (width, n_features) = basis^T (X - 1 mean^T)
    u, s, _ = torch.linalg.svd(small, full_matrices=False)
    k = min(n_comps, width)
    return (basis @ u[:, :k] * s[:k]).float().cpu().numpy()


def log_normalised_pcs(
    source: object,
    rows: np.ndarray,
    n_comps: int = 50,
    *,
    log_normalise: bool = True,
    block_rows: int = 4096,
    random_state: int = 0,
) -> np.ndarray:
    """Principal components of some rows of a row source, as scanpy's default pipeline gives them.

    Parameters
    ----------
    source
        A :class:`~sclatent._core.data.RowSource` (or on-disk source) of the model input.
    rows
        The rows to use, in increasing order (an on-disk source then reads each block once a pass).
    n_comps
        Number of components.
    log_normalise
        Scale each row to the median row sum, then log1p (``sc.pp.normalize_total`` +
        ``sc.pp.log1p``), as for raw counts; False takes the rows as they are.
    block_rows
        Rows gathered at a time, at most, all within this many consecutive row indices.
    random_state
        Seed of the randomised SVD.

    Returns
    -------
    ``(len(rows), n_comps)`` scores.
    """
    rows = np.asarray(rows)
    # chunks of rows within block_rows consecutive indices, no more than an on-disk source's block:
    # each chunk then reads at most two blocks from disk
    block_rows = min(block_rows, getattr(source, "block_rows", block_rows))
    edges = np.searchsorted(rows, np.arange(rows[0], rows[-1] + block_rows, block_rows))
    chunks = [torch.as_tensor(chunk) for chunk in np.split(rows, edges[1:-1]) if len(chunk)]
    target = 1.0
    if log_normalise:
        sums = torch.cat([source.gather(chunk).sum(1) for chunk in chunks])
        target = float(sums[sums > 0].median()) if (sums > 0).any() else 1.0

    def blocks() -> Iterator[torch.Tensor]:
        for chunk in chunks:
            x = source.gather(chunk)
            if log_normalise:
                x = torch.log1p(x * (target / x.sum(1, keepdim=True).clamp_min(1e-12)))
            yield x

    return streamed_pca(blocks, n_comps, random_state=random_state)
