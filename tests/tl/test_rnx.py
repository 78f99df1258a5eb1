import logging

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import sclatent as sl
from definitions import brute_force_rnx


@pytest.fixture
def pbmc() -> ad.AnnData:
    return sc.datasets.pbmc68k_reduced()


def test_tl_rnx_scores_every_embedding_and_survives_h5ad(pbmc, tmp_path):
    sl.tl.rnx(pbmc)  # reference X_pca; scores X_umap
    score = pbmc.uns["rnx"]["X_umap"]
    n = pbmc.n_obs
    assert score["reference"] == "X_pca" and score["exact"] and score["n_ref"] == n
    np.testing.assert_array_equal(score["K"], np.arange(1, n - 1))
    expected = brute_force_rnx(pbmc.obsm["X_pca"].astype(np.float64), pbmc.obsm["X_umap"].astype(np.float64))
    np.testing.assert_allclose(score["rnx"], expected, atol=0.01)  # float32 vs float64 ranks
    assert 0.1 < score["local_sp"] < 1 and 0 < score["global_sp"] < 1
    pbmc.write_h5ad(tmp_path / "scored.h5ad")
    back = ad.read_h5ad(tmp_path / "scored.h5ad").uns["rnx"]["X_umap"]
    np.testing.assert_array_equal(back["rnx"], score["rnx"])
    assert back["local_sp"] == score["local_sp"]


def test_tl_rnx_sampled_is_seeded(pbmc):
    first = sl.tl.rnx(pbmc, "umap", n_ref=100, random_state=3, copy=True).uns["rnx"]["X_umap"]
    again = sl.tl.rnx(pbmc, "X_umap", n_ref=100, random_state=3, copy=True).uns["rnx"]["X_umap"]
    other = sl.tl.rnx(pbmc, "X_umap", n_ref=100, random_state=4, copy=True).uns["rnx"]["X_umap"]
    assert "rnx" not in pbmc.uns  # copy=True leaves the input alone
    assert not first["exact"] and first["n_ref"] == 100 and first["local_sp_se"] > 0
    assert first["local_sp"] == again["local_sp"] and first["local_sp"] != other["local_sp"]


def test_tl_rnx_reference_choice(pbmc):
    sl.tl.rnx(pbmc, "umap", use_rep="X", key_added="rnx_x")
    assert pbmc.uns["rnx_x"]["X_umap"]["reference"] == "X"


def test_tl_rnx_skips_probabilities_and_warns_on_raw_counts(pbmc, caplog):
    pbmc.obsm["X_scvae_cluster_proba"] = np.full((pbmc.n_obs, 3), 1 / 3)
    sl.tl.rnx(pbmc)
    assert set(pbmc.uns["rnx"]) == {"X_umap"}
    counts = ad.AnnData(np.expm1(pbmc.raw.X.toarray()).round(), obsm={"X_umap": pbmc.obsm["X_umap"]})
    with caplog.at_level(logging.WARNING, logger="sclatent"):
        sl.tl.rnx(counts, "umap")
    assert "looks like raw counts" in caplog.text


def test_tl_rnx_errors_leave_adata_untouched(pbmc):
    before = set(pbmc.uns)
    with pytest.raises(KeyError, match=r"basis='tsne' is not in adata\.obsm"):
        sl.tl.rnx(pbmc, "tsne")
    with pytest.raises(KeyError, match="use_rep='X_scvi'"):
        sl.tl.rnx(pbmc, "umap", use_rep="X_scvi")
    with pytest.raises(ValueError, match="n_ref=1"):
        sl.tl.rnx(pbmc, "umap", n_ref=1)
    pbmc.obsm["X_bad"] = pbmc.obsm["X_umap"].copy()
    pbmc.obsm["X_bad"][3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sl.tl.rnx(pbmc, "bad")
    del pbmc.obsm["X_umap"], pbmc.obsm["X_bad"]
    with pytest.raises(ValueError, match="no embedding to score"):
        sl.tl.rnx(pbmc)
    assert set(pbmc.uns) == before
