import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scanpy as sc

import sclatent as sl


@pytest.fixture
def scored():
    adata = sc.datasets.pbmc68k_reduced()
    adata.obsm["X_pca2"] = adata.obsm["X_pca"][:, :2].copy()
    sl.tl.rnx(adata)
    return adata


def test_pl_rnx_draws_one_curve_per_embedding(scored, tmp_path):
    fig = sl.pl.rnx(scored, return_fig=True, palette=["red", "blue"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_ydata(), scored.uns["rnx"]["X_umap"]["rnx"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    local, global_ = scored.uns["rnx"]["X_umap"]["local_sp"], scored.uns["rnx"]["X_umap"]["global_sp"]
    assert f"umap ({local:.3f}, {global_:.3f})" in labels
    fig.savefig(tmp_path / "rnx.png")
    assert (tmp_path / "rnx.png").stat().st_size > 0
    plt.close(fig)


def test_pl_rnx_on_given_axes_with_standard_errors(scored):
    sl.tl.rnx(scored, "umap", n_ref=100, key_added="sampled")
    fig, ax = plt.subplots()
    returned = sl.pl.rnx(scored, "umap", key="sampled", ax=ax, show=False)
    assert returned is ax and len(ax.get_lines()) == 1
    assert "±" in ax.get_legend().get_texts()[0].get_text()
    plt.close(fig)


def test_pl_rnx_errors(scored):
    with pytest.raises(KeyError, match=r"run sl\.tl\.rnx"):
        sl.pl.rnx(scored, key="missing")
    with pytest.raises(KeyError, match="basis='tsne' has no R_NX"):
        sl.pl.rnx(scored, "tsne", show=False)
    with pytest.raises(ValueError, match="palette"):
        sl.pl.rnx(scored, palette=["red"], show=False)


def test_pl_history_draws_the_chosen_metrics(tmp_path):
    adata = sc.datasets.pbmc68k_reduced()
    sl.tl.groupenc(adata, epochs=3, batch_size=64, progress=False)
    fig = sl.pl.history(adata, "groupenc", return_fig=True)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train_loss", "val_loss"]
    np.testing.assert_array_equal(lines[1].get_ydata(), adata.uns["groupenc"]["history"]["val_loss"])
    plt.close(fig)
    ax = sl.pl.history(adata, "groupenc", metrics=("val_group", "val_kl"), show=False)
    assert len(ax.get_lines()) == 2
    plt.close(ax.figure)
    with pytest.raises(KeyError, match="no training history"):
        sl.pl.history(adata, "scvae")
    with pytest.raises(KeyError, match="val_elbo"):
        sl.pl.history(adata, "groupenc", metrics=("val_elbo",))
