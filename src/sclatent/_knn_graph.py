"""kNN graphs of arrays as scanpy builds them (``sc.pp.neighbors``' UMAP connectivities).

The array core cannot call scanpy; the GMVAE's clustering start
(:func:`~sclatent._core.stats.clustering.initial_components`) is handed :func:`joint_connectivities`.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import scanpy as sc

#: Neighbours of each view's kNN graph.
N_NEIGHBORS = 15


def knn_connectivities(view: np.ndarray, random_state: int):
    """UMAP connectivities of the kNN graph of ``view`` (``sc.pp.neighbors``), a sparse matrix."""
    graph = ad.AnnData(obsm={"view": np.asarray(view, dtype=np.float32)})
    n_neighbors = min(N_NEIGHBORS, view.shape[0] - 1)
    sc.pp.neighbors(
        graph, n_neighbors=n_neighbors, use_rep="view", transformer="sklearn", random_state=random_state
    )
    return graph.obsp["connectivities"]


def joint_connectivities(views: Sequence[np.ndarray], random_state: int):
    """The average of the kNN graphs (UMAP connectivities) of several views of the same cells."""
    return sum(knn_connectivities(view, random_state) for view in views) / len(views)
