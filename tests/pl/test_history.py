import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scanpy as sc

import sclatent as sl


@pytest.fixture(scope="module")
def trained():
    adata = sc.datasets.pbmc68k_reduced()
    sl.tl.scvae(adata, likelihood="gaussian", use_rep="X_pca", epochs=12, patience=3, progress=False)
    sl.tl.scvae(adata, likelihood="gaussian", use_rep="X_pca", epochs=6, key_added="short", progress=False)
    return adata


def test_pl_history_panels_kept_epoch_and_integer_epochs(trained):
    fig = sl.pl.history(trained, "scvae", metrics=("train_loss", "val_loss", "val_kl"), return_fig=True)
    losses, kl = fig.axes
    assert [line.get_label() for line in losses.get_lines()[:2]] == ["train_loss", "val_loss"]
    np.testing.assert_array_equal(
        losses.get_lines()[1].get_ydata(), trained.uns["scvae"]["history"]["val_loss"]
    )
    kept = trained.uns["scvae"]["params"]["kept_epoch"] + 1
    assert f"kept epoch {kept}" in [line.get_label() for line in losses.get_lines()]
    assert kl.get_ylabel() == "val_kl" and losses.get_xlabel() == "epoch"
    ticks = losses.get_xticks()
    assert np.array_equal(ticks, np.round(ticks))
    plt.close(fig)


def test_pl_history_of_two_models(trained):
    fig = sl.pl.history(trained, ["scvae", "short"], title="two", return_fig=True)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert {"scvae: train_loss", "scvae: val_loss", "short: train_loss", "short: val_loss"} <= set(labels)
    colour = {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()}
    assert colour["scvae: val_loss"] == colour["scvae: train_loss"] != colour["short: val_loss"]
    assert fig.axes[0].get_title() == "two"
    plt.close(fig)


def test_pl_history_errors(trained):
    with pytest.raises(KeyError, match="no training history"):
        sl.pl.history(trained, "groupenc")
    with pytest.raises(KeyError, match="val_group"):
        sl.pl.history(trained, "scvae", metrics=("val_group",))
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="panels"):
        sl.pl.history(trained, "scvae", metrics=("val_loss", "val_kl"), ax=ax)
    plt.close(fig)
