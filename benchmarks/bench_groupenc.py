"""Local and Global structure preservation of GroupEnc against a Gaussian VAE, PCA, UMAP and t-SNE.

Every embedding is scored by exact R_NX against the 50 principal components it was computed from
(normalize_total, log1p, scale with max 10, PCA 50; pbmc68k_reduced is already normalised and scaled,
so only its PCA is recomputed). GroupEnc: gamma 4, 500 epochs, the defaults of sl.tl.groupenc
(batch 256 on the 700 pbmc68k_reduced cells). Two Gaussian VAEs (sl.tl.scvae, likelihood="gaussian")
on the same PCs: "vae" with scvae's defaults (128 hidden units, dropout 0.1, up to 400 epochs with
early stopping) and "vae_matched" with GroupEnc's network and budget (encoder 32-64-128-32, mirrored
decoder, no dropout, 500 epochs, same batch size): the only difference from GroupEnc is the loss.

    python benchmarks/bench_groupenc.py [--device cpu|cuda] [--threads 2] [--epochs 500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import scanpy as sc
import torch

import sclatent as sl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bladder() -> ad.AnnData:
    adata = ad.read_h5ad(DATA / "mouse_bladder_2100.h5ad")
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata, max_value=10)
    return adata


def pbmc() -> ad.AnnData:
    return sc.datasets.pbmc68k_reduced()


def embed_all(adata: ad.AnnData, args: argparse.Namespace) -> dict[str, float]:
    """Compute every embedding into ``adata.obsm``; return the seconds each took."""
    seconds = {}

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - start

    batch_size = 512 if adata.n_obs > 1200 else 256
    common = {"device": args.device, "progress": False}
    for n_latent in (2, 10):
        timed(
            f"X_groupenc_{n_latent}d",
            lambda n=n_latent: sl.tl.groupenc(
                adata,
                n_latent=n,
                epochs=args.epochs,
                batch_size=batch_size,
                key_added=f"groupenc_{n}d",
                **common,
            ),
        )
        timed(
            f"X_vae_{n_latent}d",
            lambda n=n_latent: sl.tl.scvae(
                adata, likelihood="gaussian", use_rep="X_pca", n_latent=n, key_added=f"vae_{n}d", **common
            ),
        )
        timed(
            f"X_vae_matched_{n_latent}d",
            lambda n=n_latent: sl.tl.scvae(
                adata,
                likelihood="gaussian",
                use_rep="X_pca",
                n_latent=n,
                hidden=(32, 64, 128, 32),
                dropout=0.0,
                epochs=args.epochs,
                batch_size=batch_size,
                early_stopping=False,
                key_added=f"vae_matched_{n}d",
                **common,
            ),
        )
    adata.obsm["X_pca_2d"] = adata.obsm["X_pca"][:, :2].copy()
    adata.obsm["X_pca_10d"] = adata.obsm["X_pca"][:, :10].copy()
    timed(
        "X_umap", lambda: (sc.pp.neighbors(adata, use_rep="X_pca", transformer="sklearn"), sc.tl.umap(adata))
    )
    timed("X_tsne", lambda: sc.tl.tsne(adata, use_rep="X_pca"))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, load in (("mouse_bladder_2100", bladder), ("pbmc68k_reduced", pbmc)):
        adata = load()
        sc.pp.pca(adata, n_comps=50, random_state=0)
        seconds = embed_all(adata, args)
        bases = ["X_groupenc_2d", "X_vae_2d", "X_vae_matched_2d", "X_pca_2d", "X_umap", "X_tsne"]
        bases += ["X_groupenc_10d", "X_vae_10d", "X_vae_matched_10d", "X_pca_10d"]
        sl.tl.rnx(adata, bases, use_rep="X_pca", device=args.device)
        print(f"\n{name}: {adata.n_obs} cells, exact R_NX against 50 PCs")
        print(f"{'embedding':<18} {'Local SP':>9} {'Global SP':>10} {'seconds':>8}")
        for basis in bases:
            score = adata.uns["rnx"][basis]
            took = f"{seconds[basis]:8.1f}" if basis in seconds else f"{'':>8}"
            print(
                f"{basis.removeprefix('X_'):<18} {score['local_sp']:>9.3f} {score['global_sp']:>10.3f} {took}"
            )
        scores = adata.uns["rnx"]
        gain = {b: scores["X_groupenc_10d"]["global_sp"] - scores[b]["global_sp"] for b in bases}
        print(
            "GroupEnc 2-d Global SP - UMAP's: "
            f"{scores['X_groupenc_2d']['global_sp'] - scores['X_umap']['global_sp']:+.3f}; "
            f"GroupEnc 10-d Global SP - vae_10d's: {gain['X_vae_10d']:+.3f}, "
            f"- vae_matched_10d's: {gain['X_vae_matched_10d']:+.3f}"
        )


if __name__ == "__main__":
    main()
