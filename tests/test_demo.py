import anndata as ad
import numpy as np

from sclatent.__main__ import main


def test_demo_writes_h5ad_and_figure(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2", "--device", "cpu"]) == 0
    result = ad.read_h5ad(tmp_path / "demo.h5ad")
    assert result.obsm["X_scvae"].shape == (10_000, 10)
    assert np.isfinite(result.obsm["X_scvae"]).all()
    assert len(result.uns["scvae"]["history"]["val_elbo"]) == 2
    png = (tmp_path / "demo.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
