"""kNN graphs of arrays as scanpy builds them (``sc.pp.neighbors``' UMAP connectivities).

The array core cannot call scanpy; the GMVAE's clustering start
(:func:`~sclatent._core.stats.clustering.initial_components`) is handed :func:`joint_connectivities`.

scanpy's connectivities run numba code whose OpenMP start-up resets PyTorch's number of threads (to
one per core): the caller's setting is restored after every graph, so that ``--threads 1`` stays one
thread (two such processes on two cores ran their GMVAE epochs 2.4x slower after the start) and a
seeded fit gives the same result in a fresh process and after another fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import scanpy as sc
import torch

#: Neighbours of each view's kNN graph.
N_NEIGHBORS = 15


def knn_connectivities(view: np.ndarray, random_state: int):
    """UMAP connectivities of the kNN graph of ``view`` (``sc.pp.neighbors``), a sparse matrix."""
    graph = ad.AnnData(obsm={"view": np.asarray(view, dtype=np.float32)})
    n_neighbors = min(N_NEIGHBORS, view.shape[0] - 1)
    threads = torch.get_num_threads()
    try:
        sc.pp.neighbors(
            graph, n_neighbors=n_neighbors, use_rep="view", transformer="sklearn", random_state=random_state
        )
    finally:
        torch.set_num_threads(threads)
    return graph.obsp["connectivities"]


def joint_connectivities(views: Sequence[np.ndarray], random_state: int):
    """The average of the kNN graphs (UMAP connectivities) of several views of the same cells."""
    return sum(knn_connectivities(view, random_state) for view in views) / len(views)
