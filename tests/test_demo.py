import anndata as ad
import numpy as np

from sclatent.__main__ import main


def test_demo_writes_h5ad_and_figure(tmp_path):
    assert (
        main(["demo", "--out", str(tmp_path), "--epochs", "2", "--groupenc-epochs", "2", "--device", "cpu"])
        == 0
    )
    result = ad.read_h5ad(tmp_path / "demo.h5ad")
    assert result.obsm["X_scvae"].shape == (10_000, 10)
    assert np.isfinite(result.obsm["X_scvae"]).all()
    assert len(result.uns["scvae"]["history"]["val_elbo"]) == 2
    assert result.obsm["X_groupenc"].shape == (10_000, 2)
    assert set(result.uns["rnx"]) == {"X_groupenc", "X_scvae", "X_umap"}
    for name in ("demo.png", "rnx.png"):
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
