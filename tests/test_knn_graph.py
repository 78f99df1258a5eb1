"""kNN graphs of arrays as scanpy builds them (sclatent._knn_graph)."""

import anndata as ad
import numpy as np
import scanpy as sc

from sclatent._knn_graph import N_NEIGHBORS, joint_connectivities, knn_connectivities


def test_connectivities_are_scanpys_and_views_average():
    rng = np.random.default_rng(0)
    view = rng.normal(size=(300, 5)).astype(np.float32)
    other = rng.normal(size=(300, 3)).astype(np.float32)
    adata = ad.AnnData(obsm={"v": view})
    sc.pp.neighbors(adata, n_neighbors=N_NEIGHBORS, use_rep="v", transformer="sklearn", random_state=0)
    graph = knn_connectivities(view, 0)
    assert (graph != adata.obsp["connectivities"]).nnz == 0
    assert (graph != graph.T).nnz == 0  # symmetric, as UMAP's fuzzy union is
    joined = joint_connectivities([view, other], 0)
    np.testing.assert_allclose(joined.toarray(), (graph + knn_connectivities(other, 0)).toarray() / 2)


def test_fewer_cells_than_neighbours():
    graph = knn_connectivities(np.arange(20, dtype=np.float32)[:, None], 0)
    assert graph.shape == (20, 20) and (graph.getnnz(1) > 0).all()


def test_the_callers_torch_threads_are_kept(monkeypatch):
    """Code under scanpy's connectivities (numba's OpenMP start-up, threadpoolctl's limits) can reset
    PyTorch's threads to one per core; here a stand-in does, and the caller's setting comes back."""
    import torch

    neighbors = sc.pp.neighbors

    def resetting(*args, **kwargs):
        neighbors(*args, **kwargs)
        torch.set_num_threads(torch.get_num_threads() + 3)

    monkeypatch.setattr(sc.pp, "neighbors", resetting)
    before = torch.get_num_threads()
    knn_connectivities(np.random.default_rng(0).random((100, 4)), 0)
    assert torch.get_num_threads() == before
