"""Quantities by their textbook definitions, written the slow, obvious way, for the tests to compare with."""

import numpy as np
from scipy.spatial.distance import cdist


def brute_force_rnx(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """R_NX(K), K = 1..N-2, from the full co-ranking matrix (float64, ties broken by index)."""
    n = len(high)

    def ranks(x):
        d = cdist(x, x, "sqeuclidean")
        np.fill_diagonal(d, -np.inf)  # self first, so neighbours get ranks 1..N-1
        order = np.argsort(d, axis=1, kind="stable")
        r = np.empty_like(order)
        np.put_along_axis(r, order, np.tile(np.arange(n), (n, 1)), axis=1)
        return r

    off_diagonal = ~np.eye(n, dtype=bool)
    co_ranking = np.zeros((n - 1, n - 1))
    np.add.at(co_ranking, (ranks(high)[off_diagonal] - 1, ranks(low)[off_diagonal] - 1), 1)
    k = np.arange(1, n - 1)
    q = co_ranking.cumsum(0).cumsum(1)[k - 1, k - 1] / (k * n)
    return ((n - 1) * q - k) / (n - 1 - k)
