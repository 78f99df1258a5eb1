"""Writes the saved-model fixtures of tests/models/test_saved_models.py (run once, by sclatent 0.1.0).

The files are kept: a model saved by an earlier version must load and embed the same cells alike.
Run from the repository root: ``python tests/data/make_saved_models.py``.
"""

from pathlib import Path

import numpy as np
import scanpy as sc

import sclatent as sl

HERE = Path(__file__).parent

cells = sl.datasets.pbmc_4k()[:300, :200].copy()
cells.obs["batch"] = np.where(np.arange(cells.n_obs) % 2 == 0, "a", "b")
lognorm = cells.copy()
sc.pp.normalize_total(lognorm)
sc.pp.log1p(lognorm)
cells.obsm["X_pca"] = sc.pp.pca(lognorm.X.toarray(), n_comps=10, random_state=0).astype(np.float32)
cells.write_h5ad(HERE / "saved_models_cells.h5ad")

models = {
    "scvae_mixture": sl.models.SCVAE(
        likelihood="nb", prior="mixture", n_components=4, batch_key="batch", epochs=3, batch_size=64
    ),
    "groupenc_local": sl.models.GroupEnc(local_weight=1.0, epochs=3, batch_size=64),
    "sampling_icrst": sl.models.SamplingAE(
        mode="icrst", labels_key="cell_type", use_rep="X_pca", epochs=3, batch_size=64
    ),
}
embeddings = {}
for name, model in models.items():
    model.fit(cells)
    model.save(HERE / f"saved_{name}.pt", overwrite=True)
    embeddings[name] = model.transform(cells)
np.savez(HERE / "saved_models_embeddings.npz", **embeddings)
