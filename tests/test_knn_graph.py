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
