"""Batch integration of sl.tl.scvae(batch_key=...) against scVI, scored with scib-metrics.

The batch benchmark is built from real labelled counts (pbmc_10x_4271 and human_kidney_5685 in
../shared/data, ``obs["cell_type"]``; the bundled ``sl.datasets.pbmc_4k()`` where they are absent)
by :func:`sclatent.datasets.add_batch_effects`: every cell goes to one of three batches at random;
batch b has a log-normal capture efficiency per gene (``e_bg = exp(0.5 eps_bg - 0.125)``, ``eps_bg ~
N(0, 1)``) and a depth ``d_b`` of 0.8, 0.5 or 0.3, and each count is thinned binomially with
probability ``min(1, d_b e_bg)``. Cell types are spread evenly over batches, so a good integration
mixes batches within each type while keeping the types apart. Preprocessing, the same for all:
filter_genes(min_cells=3), 2,000 seurat_v3 highly variable genes chosen with the batches.

Scored with scib-metrics' Benchmarker (bio conservation: isolated labels, k-means NMI / ARI,
silhouette of labels, cLISI; batch correction: BRAS, iLISI, kBET per label, graph connectivity, PCR
comparison; total = 0.6 bio + 0.4 batch, raw scores, not min-max scaled):

- unintegrated PCA (normalize_total, log1p, 50 PCs);
- ``sl.tl.scvae(batch_key="batch")`` with NB and ZINB, Gaussian and mixture prior, defaults otherwise;
- scVI (scvi-tools, defaults, the same batches) when installed.

Query mapping (scArches-style): an NB scVAE reference on batch_0 and batch_1, the query batch_2 with
10% of its genes removed and the others shuffled, mapped by ``SCVAE.load_query`` and ``fit``; kNN
(k = 15) label transfer accuracy from the reference cells to the query cells, against the same
accuracy in the embedding of a model trained on all three batches.

    python benchmarks/bench_integration.py [--data ../shared/data] [--sets NAME ...] [--no-scvi]
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
from sklearn.neighbors import KNeighborsClassifier

import sclatent as sl
from bench_gmvae import pcs

SETS = ("pbmc_10x_4271", "human_kidney_5685")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = {
    "scVAE NB": {"likelihood": "nb"},
    "scVAE ZINB": {"likelihood": "zinb"},
    "scVAE NB mixture": {"likelihood": "nb", "prior": "mixture"},
    "scVAE ZINB mixture": {"likelihood": "zinb", "prior": "mixture"},
}


def batched(path: Path | None) -> ad.AnnData:
    """Raw counts with three simulated batches, preprocessed as every method sees them."""
    adata = sl.datasets.pbmc_4k() if path is None else ad.read_h5ad(path)
    adata = sl.datasets.add_batch_effects(adata, random_state=0)
    sc.pp.filter_genes(adata, min_cells=3)
    if adata.n_vars > 2000:
        sc.pp.highly_variable_genes(adata, n_top_genes=2000, flavor="seurat_v3", batch_key="batch")
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    return adata


def scvi_latent(adata: ad.AnnData) -> np.ndarray:
    import scvi

    scvi.settings.seed = 0
    copy = adata.copy()
    scvi.model.SCVI.setup_anndata(copy, batch_key="batch")
    model = scvi.model.SCVI(copy)
    model.train(enable_progress_bar=False)
    return model.get_latent_representation()


def knn_accuracy(train: np.ndarray, train_labels, test: np.ndarray, test_labels) -> float:
    predicted = KNeighborsClassifier(15).fit(train, train_labels).predict(test)
    return float((predicted == np.asarray(test_labels)).mean())


def query_mapping(adata: ad.AnnData) -> dict[str, float]:
    """kNN accuracy reference -> query of a mapped query and of a model trained on all batches."""
    in_query = (adata.obs["batch"] == "batch_2").to_numpy()
    rng = np.random.default_rng(0)
    genes = rng.permutation(adata.var_names[rng.random(adata.n_vars) > 0.1])
    reference_cells, query = adata[~in_query].copy(), adata[in_query][:, genes].copy()
    labels = adata.obs["cell_type"].to_numpy()
    start = time.perf_counter()
    reference = sl.models.SCVAE(likelihood="nb", batch_key="batch", progress=False).fit(reference_cells)
    mapped = sl.models.SCVAE.load_query(query, reference).fit(query)
    seconds = time.perf_counter() - start
    mapped_accuracy = knn_accuracy(
        reference.transform(reference_cells), labels[~in_query], mapped.transform(query), labels[in_query]
    )
    unmapped = sl.models.SCVAE.load_query(query, reference)  # the query's batch columns still zero
    zero_accuracy = knn_accuracy(
        reference.transform(reference_cells), labels[~in_query], unmapped.transform(query), labels[in_query]
    )
    joint = adata.obsm["X_scVAE NB"]
    joint_accuracy = knn_accuracy(joint[~in_query], labels[~in_query], joint[in_query], labels[in_query])
    return {
        "mapped": mapped_accuracy,
        "before query fit": zero_accuracy,
        "all batches": joint_accuracy,
        "ratio": mapped_accuracy / joint_accuracy,
        "s": seconds,
    }


def run_set(name: str, path: Path | None, scvi: bool) -> None:
    from scib_metrics.benchmark import Benchmarker

    adata = batched(path)
    sizes = adata.obs["batch"].value_counts().sort_index().to_dict()
    print(f"\n{name}: {adata.n_obs} cells x {adata.n_vars} genes, batches {sizes}", flush=True)
    seconds = {}
    start = time.perf_counter()
    adata.obsm["Unintegrated"] = pcs(adata)
    seconds["Unintegrated"] = time.perf_counter() - start
    for method, settings in VARIANTS.items():
        start = time.perf_counter()
        fitted = sl.tl.scvae(adata, batch_key="batch", progress=False, copy=True, **settings)
        adata.obsm[f"X_{method}"] = fitted.obsm["X_scvae"]
        seconds[method] = time.perf_counter() - start
        print(f"  {method}: {seconds[method]:.0f} s", flush=True)
    if scvi:
        start = time.perf_counter()
        adata.obsm["X_scVI"] = scvi_latent(adata)
        seconds["scVI"] = time.perf_counter() - start
        print(f"  scVI: {seconds['scVI']:.0f} s", flush=True)
    keys = ["Unintegrated", *(k for k in adata.obsm if k.startswith("X_"))]
    benchmark = Benchmarker(
        adata,
        batch_key="batch",
        label_key="cell_type",
        embedding_obsm_keys=keys,
        pre_integrated_embedding_obsm_key="Unintegrated",
        n_jobs=2,
        progress_bar=False,
    )
    benchmark.benchmark()
    results = benchmark.get_results(min_max_scale=False)
    results = results.drop(index="Metric Type", errors="ignore").apply(pd.to_numeric)
    results.index = [k.removeprefix("X_") for k in results.index]
    results["fit s"] = [seconds.get(k, np.nan) for k in results.index]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.precision", 3):
        print(results)
    query = query_mapping(adata)
    print(
        "  query mapping (kNN label transfer reference -> query): "
        + ", ".join(f"{k} {v:.3f}" for k, v in query.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--no-scvi", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import scvi  # noqa: F401

        scvi_available = not args.no_scvi
    except ImportError:
        scvi_available = False
    for name in args.sets:
        path = args.data / f"{name}.h5ad"
        run_set(
            name if path.exists() else "pbmc_4k (bundled)", path if path.exists() else None, scvi_available
        )


if __name__ == "__main__":
    main()
