"""Held-out classification accuracy of latent features from ICRST, TRST and the plain autoencoder.

For each data set, the cells are split 70/30 (stratified by label). Every model is fitted on the
training cells only; all cells are then embedded with ``model.transform`` and kNN (k = 15) and
logistic-regression classifiers, trained on the training cells' codes, are scored on the held-out
cells (sl.tl.latent_accuracy with split_key). Fitting on all cells would let ICRST see the test
labels. 10-d codes, hidden (128, 64), 100 epochs, batch 128, MSE, seeds 0-2 (mean and spread).

Data: sklearn's digits (1,797 images, pixels / 16) and mouse_bladder_2100 (normalize_total, log1p,
scale max 10, 50 PCs; 16 cell types).

    python benchmarks/bench_ae_sampling.py [--device cpu|cuda] [--threads 2] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import sclatent as sl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RUNS = [("none", 1.0), ("icrst", 0.5), ("icrst", 1.0), ("trst", 0.5), ("trst", 1.0)]


def digits() -> tuple[ad.AnnData, str, str]:
    data = load_digits()
    obs = pd.DataFrame({"label": pd.Categorical(data.target.astype(str))})
    obs.index = obs.index.astype(str)
    return ad.AnnData(data.data.astype(np.float32) / 16, obs=obs), "label", None


def bladder() -> tuple[ad.AnnData, str, str]:
    adata = ad.read_h5ad(DATA / "mouse_bladder_2100.h5ad")
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata, max_value=10)
    sc.pp.pca(adata, n_comps=50, random_state=0)
    return ad.AnnData(obs=adata.obs, obsm={"X_pca": adata.obsm["X_pca"]}), "cell_type", "X_pca"


def evaluate(adata, labels_key, use_rep, mode, p, seed, device) -> dict[str, float]:
    train = adata.obs["train"].to_numpy()
    model = sl.models.SamplingAE(
        mode=mode,
        p=p,
        labels_key=labels_key if mode == "icrst" else None,
        use_rep=use_rep,
        random_state=seed,
        device=device,
        progress=False,
    ).fit(adata[train].copy())
    adata.obsm["X_code"] = model.transform(adata)
    sl.tl.latent_accuracy(
        adata, "code", labels_key, split_key="train", classifiers=("knn", "logreg"), random_state=seed
    )
    return adata.uns["latent_accuracy"]["X_code"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, load in (("digits", digits), ("mouse_bladder_2100", bladder)):
        adata, labels_key, use_rep = load()
        cells = np.arange(adata.n_obs)
        train, _ = train_test_split(cells, test_size=0.3, random_state=0, stratify=adata.obs[labels_key])
        adata.obs["train"] = np.isin(cells, train)
        print(f"\n{name}: {adata.n_obs} cells, {len(train)} train / {adata.n_obs - len(train)} held out")
        print(f"{'mode':<6} {'p':>4} {'kNN (k=15)':>16} {'logistic reg.':>16} {'s/fit':>6}")
        baseline = None
        for mode, p in RUNS:
            start = time.perf_counter()
            scores = [
                evaluate(adata, labels_key, use_rep, mode, p, s, args.device) for s in range(args.seeds)
            ]
            seconds = (time.perf_counter() - start) / args.seeds
            knn = np.array([s["knn"] for s in scores])
            logreg = np.array([s["logreg"] for s in scores])
            baseline = baseline or (knn.mean(), logreg.mean())
            print(
                f"{mode:<6} {p:>4.1f} {knn.mean():>8.4f} ±{knn.std():.4f} "
                f"{logreg.mean():>8.4f} ±{logreg.std():.4f} "
                f"{seconds:>6.1f}   (vs plain AE: kNN {knn.mean() - baseline[0]:+.4f}, "
                f"logreg {logreg.mean() - baseline[1]:+.4f})"
            )


if __name__ == "__main__":
    main()
