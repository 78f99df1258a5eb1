import numpy as np
import scipy.sparse as sp

import sclatent as sl


def test_mouse_brain_10k_is_raw_counts():
    adata = sl.datasets.mouse_brain_10k()
    assert adata.shape == (10_000, 1_000)
    assert sp.issparse(adata.X)
    assert np.array_equal(adata.X.data, np.round(adata.X.data)) and adata.X.data.min() > 0
    assert "gene_ids" in adata.var
    assert "10x Genomics" in adata.uns["source"]


def test_each_call_returns_a_fresh_object():
    a, b = sl.datasets.mouse_brain_10k(), sl.datasets.mouse_brain_10k()
    a.X.data[:] = 0
    assert b.X.data.max() > 0


def test_pbmc_4k_is_labelled_raw_counts():
    adata = sl.datasets.pbmc_4k()
    assert adata.shape == (4271, 2000)
    assert sp.issparse(adata.X) and np.array_equal(adata.X.data, np.round(adata.X.data))
    assert adata.obs["cell_type"].nunique() == 8
    assert "scDCC" in adata.uns["source"]
