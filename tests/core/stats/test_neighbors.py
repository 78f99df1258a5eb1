import numpy as np
from scipy import sparse

from sclatent._core.stats import neighbors
from sclatent._core.stats.neighbors import graph_indices, knn_indices


def test_knn_indices_are_the_nearest_other_cells(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    x[7] = x[3]  # a duplicate: each keeps the other, never itself
    found = knn_indices(x, 6)
    distances = ((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    assert (found != np.arange(300)[:, None]).all()
    nearest = np.sort(distances, 1)[:, :5]
    np.testing.assert_allclose(np.take_along_axis(distances, found, 1), nearest, rtol=1e-5, atol=1e-9)
    assert found[7, 0] == 3 and found[3, 0] == 7
    monkeypatch.setattr(neighbors, "EXACT_UP_TO", 100)  # the approximate path: pynndescent
    approximate = knn_indices(x, 6)
    assert approximate.shape == (300, 5) and (approximate != np.arange(300)[:, None]).all()
    agree = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approximate, found, strict=True)])
    assert agree >= 0.9


def test_graph_indices_take_the_nearest_stored_neighbours():
    distances = sparse.csr_matrix(np.array([[0, 3.0, 1, 2], [0, 0, 0, 0], [2, 0, 0, 1], [5, 0, 0, 0]]))
    np.testing.assert_array_equal(graph_indices(distances, 3), [[2, 3], [1, 1], [3, 0], [0, 0]])
