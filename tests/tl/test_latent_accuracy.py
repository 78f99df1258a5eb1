import numpy as np
import pytest
import scanpy as sc

import sclatent as sl


@pytest.fixture
def pbmc():
    return sc.datasets.pbmc68k_reduced()


def test_known_cell_types_are_predictable_from_pcs_not_from_noise(pbmc):
    pbmc.obsm["X_noise"] = np.random.default_rng(0).normal(size=(pbmc.n_obs, 10))
    sl.tl.latent_accuracy(pbmc, "pca", "bulk_labels")
    sl.tl.latent_accuracy(pbmc, "X_noise", "bulk_labels", classifiers=("knn", "logreg"))
    pcs, noise = pbmc.uns["latent_accuracy"]["X_pca"], pbmc.uns["latent_accuracy"]["X_noise"]
    assert set(pcs["accuracy"]) == {"knn", "logreg", "svm", "rf", "mlp", "nb"}
    assert pcs["accuracy"]["logreg"] > 0.6 and pcs["accuracy"]["knn"] > 0.6
    majority = pbmc.obs["bulk_labels"].value_counts(normalize=True).max()
    assert noise["accuracy"]["knn"] < majority + 0.1
    assert pcs["n_test"] == pytest.approx(0.3 * pbmc.n_obs, abs=1) and pcs["split"] == "random"
    assert all(0 <= f <= 1 for f in pcs["macro_f1"].values())


def test_split_key_and_errors(pbmc):
    pbmc.obs["train"] = np.arange(pbmc.n_obs) % 3 != 0
    sl.tl.latent_accuracy(pbmc, "umap", "bulk_labels", split_key="train", classifiers=("nb",))
    result = pbmc.uns["latent_accuracy"]["X_umap"]
    assert result["n_test"] == (~pbmc.obs["train"]).sum() and result["split"] == "train"
    with pytest.raises(KeyError, match="basis='tsne'"):
        sl.tl.latent_accuracy(pbmc, "tsne", "bulk_labels")
    with pytest.raises(KeyError, match="labels_key='cell_type'"):
        sl.tl.latent_accuracy(pbmc, "umap", "cell_type")
    with pytest.raises(ValueError, match="classifiers='xgboost'"):
        sl.tl.latent_accuracy(pbmc, "umap", "bulk_labels", classifiers=("xgboost",))
    pbmc.obs["flag"] = pbmc.obs["train"].astype(int)
    with pytest.raises(TypeError, match="boolean"):
        sl.tl.latent_accuracy(pbmc, "umap", "bulk_labels", split_key="flag")
