import numpy as np
import pytest
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


def test_add_batch_effects_thins_counts_per_batch_and_gene():
    adata = sl.datasets.pbmc_4k()
    before = adata.X.copy()
    out = sl.datasets.add_batch_effects(adata, depths=(0.8, 0.3), efficiency_sd=0.5, random_state=1)
    assert (before != adata.X).nnz == 0 and "batch" not in adata.obs  # input untouched
    assert list(out.obs["batch"].cat.categories) == ["batch_0", "batch_1"]
    assert out.obs["cell_type"].equals(adata.obs["cell_type"])
    thinned = out.X.toarray()
    assert np.array_equal(thinned, np.round(thinned)) and (thinned <= adata.X.toarray()).all()
    # each batch keeps about its depth of the counts, and its genes are captured differently
    kept = {}
    for batch, depth in (("batch_0", 0.8), ("batch_1", 0.3)):
        rows = (out.obs["batch"] == batch).to_numpy()
        kept[batch] = thinned[rows].sum(0) / np.asarray(adata.X[rows].sum(0)).ravel().clip(1)
        share = thinned[rows].sum() / adata.X[rows].sum()
        assert 0.75 * depth < share < depth + 0.05, (batch, share)  # below d_b where min(1, .) clips
    common = np.asarray(adata.X.sum(0)).ravel() > 500
    ratio = np.log(kept["batch_0"][common] / kept["batch_1"][common])
    assert ratio.std() > 0.4  # gene-specific efficiencies, sd 0.5 each: about 0.7 apart
    again = sl.datasets.add_batch_effects(adata, depths=(0.8, 0.3), random_state=1)
    assert (again.X != out.X).nnz == 0


def test_add_batch_effects_bad_input():
    adata = sl.datasets.pbmc_4k()
    with pytest.raises(ValueError, match="at least two"):
        sl.datasets.add_batch_effects(adata, depths=(0.5,))
    with pytest.raises(ValueError, match="depths"):
        sl.datasets.add_batch_effects(adata, depths=(0.5, 1.5))
    for depths in (0.5, None, "ab"):
        with pytest.raises(TypeError, match=r"one share of counts kept per batch, e\.g\. depths=\("):
            sl.datasets.add_batch_effects(adata, depths=depths)
    with pytest.raises(TypeError, match="holds 'a'; each must be a number"):
        sl.datasets.add_batch_effects(adata, depths=("a", 0.5))
    adata.X = adata.X * 0.5
    with pytest.raises(ValueError, match=r"raw counts.*layers\['counts'\]"):
        sl.datasets.add_batch_effects(adata)
