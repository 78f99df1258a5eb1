"""Model quality of sl.tl.scvae on the shared real data sets.

1. Held-out ELBO and importance-sampled marginal log-likelihood (100 samples) after 10 epochs on
   mouse_brain_10k for each count likelihood (the scVAE comparison: NB / ZINB above Poisson).
2. GMVAE clusters on mouse_bladder_2100 (2,000 highly variable genes, 16 components, 60 epochs):
   ARI of obs["scvae_cluster"] against obs["cell_type"], components used, seconds.

    python benchmarks/bench_scvae_quality.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import scanpy as sc
import torch
from sklearn.metrics import adjusted_rand_score

import sclatent as sl


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    brain = sl.datasets.mouse_brain_10k()
    for likelihood in ("poisson", "zip", "nb", "zinb"):
        model = sl.models.SCVAE(likelihood=likelihood, epochs=10, progress=False).fit(brain)
        held_out = brain[model.validation_indices_]
        elbo = model.elbo(held_out)
        log_px = model.marginal_log_likelihood(held_out, n_samples=100)
        print(
            f"mouse_brain_10k {likelihood:8s} held-out, after 10 epochs: ELBO {elbo:8.2f}, "
            f"log p(x) (IWAE, 100 samples) {log_px:8.2f} nats/cell"
        )

    bladder = ad.read_h5ad(args.data / "mouse_bladder_2100.h5ad")
    lognorm = bladder.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    sc.pp.highly_variable_genes(lognorm, n_top_genes=2000)
    bladder = bladder[:, lognorm.var["highly_variable"].to_numpy()].copy()
    for likelihood in ("nb", "zinb"):
        start = time.perf_counter()
        sl.tl.scvae(
            bladder, likelihood=likelihood, prior="mixture", n_components=16, epochs=60, progress=False
        )
        clusters = bladder.obs["scvae_cluster"]
        ari = adjusted_rand_score(bladder.obs["cell_type"], clusters)
        print(
            f"mouse_bladder_2100 GMVAE {likelihood:4s} ARI {ari:.3f}"
            f", {clusters.nunique()} of 16 components used, {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
