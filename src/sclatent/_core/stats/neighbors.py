"""k-nearest-neighbour graphs of an input representation, as fixed-width index arrays."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Up to this many cells the neighbours are exact (scikit-learn, brute force: 0.1 s at 4,000 cells x 50
#: PCs), above approximate (pynndescent, whose first call in a process compiles for about 30 s).
EXACT_UP_TO = 50_000


def knn_indices(x: np.ndarray, n_neighbors: int, random_state: int = 0) -> np.ndarray:
    """Each row's ``n_neighbors - 1`` nearest other rows (Euclidean), nearest first.

    ``n_neighbors`` counts the cell itself, as in ``sc.pp.neighbors`` and UMAP.

    Parameters
    ----------
    x
        ``(N, D)`` coordinates, dense or sparse.
    n_neighbors
        Neighbourhood size including the cell itself, 2 <= n_neighbors <= N.
    random_state
        Seed of the approximate search (pynndescent), used above :data:`EXACT_UP_TO` cells.

    Returns
    -------
    ``(N, n_neighbors - 1)`` int64 row numbers.
    """
    x = sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[0] <= EXACT_UP_TO:
        from sklearn.neighbors import NearestNeighbors

        found = NearestNeighbors(n_neighbors=n_neighbors).fit(x).kneighbors(x, return_distance=False)
    else:
        from pynndescent import NNDescent

        found = NNDescent(x, n_neighbors=n_neighbors, random_state=random_state).neighbor_graph[0]
    return _drop_self(np.asarray(found, dtype=np.int64))


def _drop_self(found: np.ndarray) -> np.ndarray:
    """Remove each row's own index (the last column where duplicates pushed it out)."""
    rows = np.arange(len(found))[:, None]
    is_self = found == rows
    is_self[~is_self.any(1), -1] = True  # a duplicated cell may come before the cell itself
    is_self &= np.cumsum(is_self, 1) == 1  # one per row
    return found[~is_self].reshape(len(found), found.shape[1] - 1)


def graph_indices(distances: sp.spmatrix | sp.sparray, n_neighbors: int) -> np.ndarray:
    """Each row's ``n_neighbors - 1`` nearest stored neighbours of a distance graph (as in ``obsp``).

    Rows holding fewer neighbours repeat theirs (a row with none gets the cell itself).
    """
    csr = sp.csr_matrix(distances)
    degree = np.diff(csr.indptr)
    row_of_entry = np.repeat(np.arange(csr.shape[0]), degree)
    by_distance = csr.indices[np.lexsort((csr.data, row_of_entry))].astype(np.int64)
    if by_distance.size == 0:
        return np.repeat(np.arange(csr.shape[0])[:, None], n_neighbors - 1, 1)
    # position j of a row: its j-th nearest neighbour, cycling through them when it has fewer
    cycle = np.arange(n_neighbors - 1)[None, :] % np.maximum(degree, 1)[:, None]
    out = by_distance[np.minimum(csr.indptr[:-1, None] + cycle, by_distance.size - 1)]
    return np.where(degree[:, None] > 0, out, np.arange(csr.shape[0])[:, None])
