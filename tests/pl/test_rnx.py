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
    assert len(lines) == 2 and [line.get_color() for line in lines] == ["red", "blue"]
    score = scored.uns["rnx"]["X_umap"]
    shown = score["K"] <= scored.n_obs // 2  # the default stops at K = N/2
    np.testing.assert_array_equal(lines[0].get_xdata(), score["K"][shown])
    np.testing.assert_array_equal(lines[0].get_ydata(), score["rnx"][shown])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"umap ({score['local_sp']:.3f}, {score['global_sp']:.3f})" in labels
    assert ax.get_title() == "Neighbourhoods kept from PCA (X_pca)"
    plt.close(fig)
    fig = sl.pl.rnx(scored, "umap", k_max=scored.n_obs, title="all K", figsize=(3, 2), return_fig=True)
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == len(score["K"])
    assert fig.axes[0].get_title() == "all K" and tuple(fig.get_size_inches()) == (3, 2)
    plt.close(fig)


@pytest.mark.parametrize(
    ("palette", "expected"),
    [
        ("Set1", [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["Set1"].colors[:2]]),
        ({"umap": "#00ff00", "X_pca2": "#0000ff"}, ["#0000ff", "#00ff00"]),
        (["#123456"], ["#123456", "#123456"]),
    ],
)
def test_pl_rnx_palettes_as_scanpy_takes_them(scored, palette, expected):
    fig = sl.pl.rnx(scored, ["pca2", "umap"], palette=palette, return_fig=True)
    assert [matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].get_lines()] == expected
    plt.close(fig)


def test_pl_rnx_follows_figure_params_and_saves_into_figdir(scored, tmp_path):
    figdir, sc.settings.figdir = sc.settings.figdir, tmp_path
    try:
        with matplotlib.rc_context({"figure.figsize": (4, 3)}):
            fig = sl.pl.rnx(scored, save="_pbmc.pdf", show=False, return_fig=True)
    finally:
        sc.settings.figdir = figdir
    assert tuple(fig.get_size_inches()) == (4, 3)
    assert (tmp_path / "rnx_pbmc.pdf").read_bytes().startswith(b"%PDF")
    plt.close(fig)


def test_pl_rnx_sampled_curve_has_a_standard_error_band(scored):
    sl.tl.rnx(scored, "umap", n_ref=100, key_added="sampled")
    fig, ax = plt.subplots()
    returned = sl.pl.rnx(scored, "umap", key="sampled", ax=ax, show=False)
    assert returned is ax and len(ax.get_lines()) == 1
    label = ax.get_legend().get_texts()[0].get_text()
    assert "sampled" in label and "±" in label
    (band,) = ax.collections
    lower = band.get_paths()[0].vertices[:, 1].min()
    score = scored.uns["sampled"]["X_umap"]
    shown = score["K"] <= scored.n_obs // 2
    assert lower == pytest.approx((score["rnx"][shown] - score["rnx_se"][shown]).min())
    assert (score["rnx_se"] > 0).any()
    plt.close(fig)


def test_pl_rnx_errors(scored):
    with pytest.raises(KeyError, match=r"run sl\.tl\.rnx"):
        sl.pl.rnx(scored, key="missing")
    with pytest.raises(KeyError, match="basis='tsne' has no R_NX"):
        sl.pl.rnx(scored, "tsne", show=False)
    with pytest.raises(ValueError, match="not a matplotlib colormap"):
        sl.pl.rnx(scored, palette="Set99", show=False)
    with pytest.raises(ValueError, match="no colour for"):
        sl.pl.rnx(scored, palette={"umap": "red"}, show=False)
