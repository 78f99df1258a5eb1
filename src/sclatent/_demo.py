"""The README demo: train on the bundled mouse brain data, write an h5ad and a figure."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

import sclatent as sl


def run_demo(
    out_dir: str | Path = "sclatent_demo",
    *,
    epochs: int = 20,
    groupenc_epochs: int = 100,
    device: str = "auto",
) -> Path:
    """Run scVAE and GroupEnc on :func:`sclatent.datasets.mouse_brain_10k` and score them by R_NX.

    Writes ``demo.h5ad``, ``demo.png`` (held-out ELBO curve, UMAP of the scVAE embedding) and
    ``rnx.png`` (R_NX curves of GroupEnc, scVAE and the UMAP against 50 principal components).

    Parameters
    ----------
    out_dir
        Folder for the outputs (created).
    epochs
        scVAE training epochs.
    groupenc_epochs
        GroupEnc training epochs.
    device
        Training device.

    Returns
    -------
    The output folder.
    """
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adata = sl.datasets.mouse_brain_10k()
    start = time.perf_counter()
    sl.tl.scvae(adata, likelihood="zinb", epochs=epochs, device=device)
    history = adata.uns["scvae"]["history"]
    print(
        f"scvae: {len(history['train_loss'])} epochs in {time.perf_counter() - start:.1f} s on "
        f"{adata.uns['scvae']['params']['device']}, held-out ELBO {history['val_elbo'][-1]:.1f} nats/cell"
    )
    # exact kNN through scikit-learn: scanpy 1.11's pynndescent path fails on SciPy >= 1.17 arrays
    sc.pp.neighbors(adata, use_rep="X_scvae", transformer="sklearn", random_state=0)
    sc.tl.umap(adata, random_state=0)
    adata.obs["log1p_counts"] = sc.pp.calculate_qc_metrics(adata, percent_top=None)[0]["log1p_total_counts"]

    fig, (ax_curve, ax_umap) = plt.subplots(1, 2, figsize=(11, 4.5))
    epochs_axis = range(1, len(history["val_elbo"]) + 1)
    ax_curve.plot(epochs_axis, history["val_elbo"], marker="o")
    ax_curve.set(xlabel="epoch", ylabel="held-out ELBO (nats / cell)", title="scVAE (ZINB) training")
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    sc.pl.umap(adata, color="log1p_counts", ax=ax_umap, show=False, title="UMAP of X_scvae")
    fig.axes[-1].set_ylabel("log1p total counts per cell")  # the colour bar scanpy adds
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=120)
    plt.close(fig)

    # GroupEnc expects 50 PCs of normalised, log-transformed, scaled data
    lognorm = adata.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    sc.pp.scale(lognorm, max_value=10)
    adata.obsm["X_pca"] = sc.pp.pca(lognorm.X, n_comps=50, random_state=0)
    del lognorm
    start = time.perf_counter()
    sl.tl.groupenc(adata, epochs=groupenc_epochs, device=device)
    print(f"groupenc: {groupenc_epochs} epochs in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    sl.tl.rnx(adata, ["X_groupenc", "X_scvae", "X_umap"], use_rep="X_pca", device=device)
    print(f"rnx: exact R_NX of 3 embeddings of {adata.n_obs} cells in {time.perf_counter() - start:.1f} s")
    for basis, score in adata.uns["rnx"].items():
        print(f"  {basis}: Local SP {score['local_sp']:.3f}, Global SP {score['global_sp']:.3f}")
    fig = sl.pl.rnx(adata, return_fig=True)
    fig.tight_layout()
    fig.savefig(out / "rnx.png", dpi=120)
    plt.close(fig)
    adata.write_h5ad(out / "demo.h5ad")
    print(f"wrote {out / 'demo.h5ad'}, {out / 'demo.png'} and {out / 'rnx.png'}")
    return out
