import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

import sclatent as sl


@pytest.fixture
def digits_split(digits_adata):
    adata = digits_adata.copy()
    train, _ = train_test_split(
        np.arange(adata.n_obs), test_size=0.3, random_state=0, stratify=adata.obs["digit"]
    )
    adata.obs["train"] = np.isin(np.arange(adata.n_obs), train)
    return adata


def held_out_accuracy(adata, mode, **kwargs):
    labels = "digit" if mode == "icrst" else None
    training = adata[adata.obs["train"].to_numpy()].copy()
    model = sl.models.SamplingAE(mode=mode, labels_key=labels, progress=False, **kwargs).fit(training)
    adata.obsm[f"X_{mode}"] = model.transform(adata)
    sl.tl.latent_accuracy(adata, mode, "digit", split_key="train", classifiers=("knn", "logreg"))
    return adata.uns["latent_accuracy"][f"X_{mode}"]["accuracy"], model


def test_icrst_beats_the_plain_autoencoder_on_held_out_digits(digits_split):
    plain, _ = held_out_accuracy(digits_split, "none")
    icrst, model = held_out_accuracy(digits_split, "icrst", p=1.0)
    assert icrst["logreg"] >= plain["logreg"] + 0.03
    assert icrst["knn"] >= plain["knn"] + 0.02
    assert model.history_["swapped_share"] == [1.0] * 100
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]


def test_same_seed_same_result_and_outputs_survive_h5ad(digits_split, tmp_path):
    args = {"labels_key": "digit", "epochs": 3, "progress": False, "device": "cpu"}
    first = sl.tl.ae_sampling(digits_split, random_state=5, copy=True, **args)
    again = sl.tl.ae_sampling(digits_split, random_state=5, copy=True, **args)
    other = sl.tl.ae_sampling(digits_split, random_state=6, copy=True, **args)
    assert "X_ae_sampling" not in digits_split.obsm
    np.testing.assert_array_equal(first.obsm["X_ae_sampling"], again.obsm["X_ae_sampling"])
    assert not np.allclose(first.obsm["X_ae_sampling"], other.obsm["X_ae_sampling"])
    first.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.obsm["X_ae_sampling"], first.obsm["X_ae_sampling"])
    record = back.uns["ae_sampling"]
    assert record["params"]["mode"] == "icrst" and record["params"]["p"] == 1.0
    assert list(record["history"]["swapped_share"]) == [1.0, 1.0, 1.0]


def test_save_load_round_trip(digits_split, tmp_path):
    model = sl.models.SamplingAE(mode="trst", p=0.5, epochs=2, progress=False).fit(digits_split)
    model.save(tmp_path / "m.pt")
    loaded = sl.models.load(tmp_path / "m.pt")
    assert isinstance(loaded, sl.models.SamplingAE) and loaded.params["mode"] == "trst"
    np.testing.assert_allclose(loaded.transform(digits_split), model.transform(digits_split), rtol=1e-6)


def test_count_loss_on_sparse_raw_counts(small_counts):
    small_counts.obs["group"] = pd.Categorical(np.arange(small_counts.n_obs) % 4 == 0)
    small_counts.X = sp.csr_matrix(small_counts.X)
    sl.tl.ae_sampling(small_counts, labels_key="group", loss="nb", n_latent=5, epochs=3, progress=False)
    history = small_counts.uns["ae_sampling"]["history"]
    assert small_counts.obsm["X_ae_sampling"].shape == (1000, 5)
    assert np.isfinite(small_counts.obsm["X_ae_sampling"]).all()
    assert history["val_loss"][-1] > 0  # a negative log-likelihood per cell
    with pytest.raises(ValueError, match="non-integer"):
        bad = small_counts.copy()
        bad.X = bad.X * 0.5
        sl.tl.ae_sampling(bad, labels_key="group", loss="zinb", epochs=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "icrst"}, "pass labels_key"),
        ({"mode": "swap"}, "mode='swap'"),
        ({"mode": "trst", "p": 1.5}, r"p=1\.5"),
        ({"mode": "trst", "p": -0.1}, "p=-0.1"),
        ({"mode": "trst", "loss": "huber"}, "loss='huber'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sl.models.SamplingAE(**kwargs)


def test_labels_key_is_ignored_with_a_warning_for_trst(caplog):
    with caplog.at_level(logging.WARNING, logger="sclatent"):
        model = sl.models.SamplingAE(mode="trst", labels_key="digit")
    assert "ignored" in caplog.text and model.params["labels_key"] is None


def test_bad_labels_leave_adata_untouched(digits_adata):
    adata = digits_adata.copy()
    with pytest.raises(KeyError, match="labels_key='cell_type'"):
        sl.tl.ae_sampling(adata, labels_key="cell_type", epochs=1, progress=False)
    adata.obs["empty"] = pd.Categorical([np.nan] * adata.n_obs, categories=["a"])
    with pytest.raises(ValueError, match="no labels at all"):
        sl.tl.ae_sampling(adata, labels_key="empty", epochs=1, progress=False)
    adata.obs["lonely"] = adata.obs["digit"].astype(str)
    adata.obs.iloc[0, adata.obs.columns.get_loc("lonely")] = "solo"
    with pytest.raises(ValueError, match="single cell"):
        sl.tl.ae_sampling(adata, labels_key="lonely", epochs=1, progress=False)
    adata.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sl.tl.ae_sampling(adata, mode="none", epochs=1, progress=False)
    assert "X_ae_sampling" not in adata.obsm and "ae_sampling" not in adata.uns


def test_icrst_at_least_matches_the_plain_autoencoder_on_bladder(bladder_pca):
    adata = bladder_pca.copy()
    train, _ = train_test_split(
        np.arange(adata.n_obs), test_size=0.3, random_state=0, stratify=adata.obs["cell_type"]
    )
    adata.obs["train"] = np.isin(np.arange(adata.n_obs), train)
    scores = {}
    for mode in ("none", "icrst"):
        model = sl.models.SamplingAE(
            mode=mode,
            labels_key="cell_type" if mode == "icrst" else None,
            use_rep="X_pca",
            progress=False,
        ).fit(adata[train].copy())
        adata.obsm[f"X_{mode}"] = model.transform(adata)
        sl.tl.latent_accuracy(adata, mode, "cell_type", split_key="train", classifiers=("logreg",))
        scores[mode] = adata.uns["latent_accuracy"][f"X_{mode}"]["accuracy"]["logreg"]
    assert scores["icrst"] >= scores["none"]
