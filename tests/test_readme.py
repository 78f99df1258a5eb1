"""The README's usage blocks run as written, read from README.md (with fewer training epochs)."""

import re
from pathlib import Path

import matplotlib
import numpy as np

import sclatent as sl
import sclatent.models._base as base

README = Path(__file__).resolve().parents[1] / "README.md"


def usage_blocks() -> list[str]:
    """The ```python blocks of the README's Usage section, in order."""
    text = README.read_text()
    section = text.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_has_usage_blocks():
    blocks = usage_blocks()
    assert len(blocks) >= 2
    assert "sc.pp.neighbors(adata" in blocks[0]  # the 10,000-cell neighbour search scanpy must survive


def test_readme_usage_blocks_run(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    # the defaults train for minutes: the blocks run as written with two epochs per model
    monkeypatch.setattr(base, "default_epochs", lambda n_obs, most: 2)
    monkeypatch.setitem(sl.tl.ae_sampling.__kwdefaults__, "epochs", 2)  # fixed default epochs
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in usage_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    adata, lognorm, pbmc = namespace["adata"], namespace["lognorm"], namespace["pbmc"]
    assert adata.n_obs == 10_000
    assert adata.obsp["connectivities"].shape == (10_000, 10_000)
    assert np.isfinite(adata.obsm["X_umap"]).all()
    assert (tmp_path / "scvae.pt").exists()
    assert set(lognorm.uns["rnx"]) == {"X_groupenc", "X_groupenc_local", "X_umap"}
    assert "knn" in pbmc.uns["latent_accuracy"]["X_icrst"]["accuracy"]
