"""GMVAE clustering and label transfer against the clusterings a scanpy user runs.

For each labelled raw-count data set (same preprocessing for every method: filter_genes(min_cells=3),
2,000 seurat_v3 highly variable genes where there are more genes), ARI and NMI against
obs["cell_type"], mean +- sd over seeds, and seconds per fit:

- GMVAE (NB) with n_components = the number of types, and with n_components=None (the C it found);
- a GMM and k-means (K = types) on the latent of the Gaussian-prior scVAE;
- scanpy Leiden on 50 PCs (normalize_total, log1p, pca) at resolutions 0.25 / 0.5 / 1.0;
- k-means (K = types) on the 50 PCs;
- scVI latent + k-means, when scvi-tools is installed;
- label transfer from 10% labelled cells (stratified): accuracy on the other 90%, GMVAE with
  labels_key vs a kNN classifier (k = 15) on the 50 PCs trained on the same 10%.

Also the seconds per epoch of the GMVAE at K = 16 against the VAE on mouse_bladder_2100.

``--variants`` runs the same table on perturbed versions of each set, a stand-in for data the
methods were not tuned on (the cells drawn with seed 0, before the preprocessing): ``half`` (a random
half of the cells), ``nolargest`` (without the largest type), ``rare`` (the two largest types thinned
to a quarter); ``full`` is the set itself.

    python benchmarks/bench_gmvae.py [--data ../shared/data] [--seeds 0 1 2] [--sets NAME ...]
                                     [--variants full half nolargest rare]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import defaultdict
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

import sclatent as sl

SETS = ("mouse_bladder_2100", "pbmc_10x_4271", "human_kidney_5685")
VARIANTS = ("full", "half", "nolargest", "rare")


def perturb(adata: ad.AnnData, variant: str) -> ad.AnnData:
    """The cells of one variant (see the module docstring), drawn with seed 0."""
    rng = np.random.default_rng(0)
    types = adata.obs["cell_type"].astype(str).to_numpy()
    names, sizes = np.unique(types, return_counts=True)
    if variant == "half":
        return adata[np.sort(rng.choice(adata.n_obs, adata.n_obs // 2, replace=False))].copy()
    if variant == "nolargest":
        return adata[types != names[sizes.argmax()]].copy()
    if variant == "rare":
        keep = ~np.isin(types, names[np.argsort(sizes)[-2:]]) | (rng.random(adata.n_obs) < 0.25)
        return adata[keep].copy()
    return adata


def preprocess(source: Path | ad.AnnData) -> ad.AnnData:
    adata = ad.read_h5ad(source) if isinstance(source, Path) else source.copy()
    sc.pp.filter_genes(adata, min_cells=3)
    if adata.n_vars > 2000:
        sc.pp.highly_variable_genes(adata, n_top_genes=2000, flavor="seurat_v3")
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    if not sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X)
    return adata


def pcs(adata: ad.AnnData) -> np.ndarray:
    lognorm = adata.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    sc.pp.pca(lognorm, n_comps=50, random_state=0)
    return lognorm.obsm["X_pca"]


class Table:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, method: str, seconds: float, **scores: float) -> None:
        for key, value in {**scores, "s": seconds}.items():
            self.rows[method][key].append(value)

    def print(self, name: str) -> None:
        print(f"\n{name}")
        print(f"{'method':42s} {'ARI':>14s} {'NMI':>14s} {'other':>22s} {'s':>7s}")
        for method, scores in self.rows.items():

            def cell(key: str, scores: dict = scores) -> str:
                values = scores.get(key)
                return f"{np.mean(values):.3f} +- {np.std(values):.3f}" if values else "-"

            other = next((k for k in scores if k not in ("ari", "nmi", "s")), None)
            other_text = f"{other} {cell(other)}" if other else "-"
            print(
                f"{method:42s} {cell('ari'):>14s} {cell('nmi'):>14s} {other_text:>22s} "
                f"{np.mean(scores['s']):7.1f}",
                flush=True,
            )


def scores(truth: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    return {
        "ari": adjusted_rand_score(truth, clusters),
        "nmi": normalized_mutual_info_score(truth, clusters),
    }


def run_set(name: str, raw: ad.AnnData, seeds: list[int], scvi: bool) -> None:
    adata = preprocess(raw)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    n_types = len(np.unique(truth))
    table = Table()
    start = time.perf_counter()
    x_pca = pcs(adata)
    pca_seconds = time.perf_counter() - start
    graph = ad.AnnData(obs=adata.obs[[]].copy(), obsm={"X_pca": x_pca})
    start = time.perf_counter()
    sc.pp.neighbors(graph, use_rep="X_pca", random_state=0)
    neighbors_seconds = pca_seconds + time.perf_counter() - start
    for seed in seeds:
        for resolution in (0.25, 0.5, 1.0):
            start = time.perf_counter()
            sc.tl.leiden(graph, resolution=resolution, random_state=seed)
            seconds = neighbors_seconds + time.perf_counter() - start
            clusters = graph.obs["leiden"].to_numpy()
            table.add(
                f"Leiden 50 PCs, resolution {resolution}",
                seconds,
                **scores(truth, clusters),
                C=len(np.unique(clusters)),
            )
        start = time.perf_counter()
        clusters = KMeans(n_types, n_init=10, random_state=seed).fit_predict(x_pca)
        table.add(f"k-means 50 PCs (K={n_types})", time.perf_counter() - start, **scores(truth, clusters))

        common = {"likelihood": "nb", "random_state": seed, "progress": False, "copy": True}
        start = time.perf_counter()
        fit = sl.tl.scvae(adata, prior="mixture", n_components=n_types, **common)
        table.add(
            f"GMVAE n_components={n_types}",
            time.perf_counter() - start,
            **scores(truth, fit.obs["scvae_cluster"].to_numpy()),
        )
        start = time.perf_counter()
        fit = sl.tl.scvae(adata, prior="mixture", **common)
        table.add(
            "GMVAE n_components=None",
            time.perf_counter() - start,
            **scores(truth, fit.obs["scvae_cluster"].to_numpy()),
            C=fit.uns["scvae"]["n_clusters"],
        )
        start = time.perf_counter()
        latent = sl.tl.scvae(adata, **common).obsm["X_scvae"]
        seconds = time.perf_counter() - start
        gmm = GaussianMixture(n_types, covariance_type="full", n_init=3, random_state=seed).fit_predict(
            latent
        )
        table.add(f"scVAE latent + GMM (K={n_types})", seconds, **scores(truth, gmm))
        km = KMeans(n_types, n_init=10, random_state=seed).fit_predict(latent)
        table.add(f"scVAE latent + k-means (K={n_types})", seconds, **scores(truth, km))
        if scvi:
            seconds, scvi_scores = scvi_kmeans(adata, truth, n_types, seed)
            table.add(f"scVI latent + k-means (K={n_types})", seconds, **scvi_scores)

        labelled, rest = train_test_split(
            np.arange(adata.n_obs), train_size=0.1, stratify=truth, random_state=seed
        )
        knn = KNeighborsClassifier(n_neighbors=15).fit(x_pca[labelled], truth[labelled])
        table.add(
            "kNN (k=15) on 50 PCs, 10% labels",
            0.0,
            accuracy=float(np.mean(knn.predict(x_pca[rest]) == truth[rest])),
        )
        partial = adata.copy()
        partial.obs["partial"] = np.where(np.isin(np.arange(adata.n_obs), labelled), truth, np.nan)
        start = time.perf_counter()
        sl.tl.scvae(partial, prior="mixture", labels_key="partial", **{**common, "copy": False})
        predicted = partial.obs["scvae_label"].astype(str).to_numpy()
        table.add(
            "GMVAE labels_key, 10% labels",
            time.perf_counter() - start,
            accuracy=float(np.mean(predicted[rest] == truth[rest])),
        )
    table.print(f"{name}: {adata.n_obs} cells x {adata.n_vars} genes, {n_types} types, seeds {seeds}")


def scvi_kmeans(adata: ad.AnnData, truth: np.ndarray, n_types: int, seed: int) -> tuple[float, dict]:
    import scvi

    scvi.settings.seed = seed
    start = time.perf_counter()
    copy = adata.copy()
    scvi.model.SCVI.setup_anndata(copy)
    model = scvi.model.SCVI(copy)
    model.train(max_epochs=100, enable_progress_bar=False)
    latent = model.get_latent_representation()
    clusters = KMeans(n_types, n_init=10, random_state=seed).fit_predict(latent)
    return time.perf_counter() - start, scores(truth, clusters)


def epoch_ratio(path: Path) -> None:
    adata = preprocess(path)
    seconds = {}
    for name, kwargs in {"VAE": {}, "GMVAE K=16": {"prior": "mixture", "n_components": 16}}.items():
        fit = sl.tl.scvae(
            adata, likelihood="nb", epochs=30, early_stopping=False, progress=False, copy=True, **kwargs
        )
        start = time.perf_counter()
        sl.tl.scvae(
            adata, likelihood="nb", epochs=30, early_stopping=False, progress=False, copy=True, **kwargs
        )
        seconds[name] = (time.perf_counter() - start) / 30
        del fit
    print(
        f"\nseconds per epoch on {path.stem} (30 epochs, NB): VAE {seconds['VAE']:.3f}, GMVAE K=16 "
        f"{seconds['GMVAE K=16']:.3f}, ratio {seconds['GMVAE K=16'] / seconds['VAE']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--variants", nargs="+", default=["full"], choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    try:
        import scvi  # noqa: F401

        has_scvi = True
    except ImportError:
        has_scvi = False
        print("scvi-tools is not installed: no scVI row (pip install scvi-tools)")
    epoch_ratio(args.data / "mouse_bladder_2100.h5ad")
    for name in args.sets:
        raw = ad.read_h5ad(args.data / f"{name}.h5ad")
        for variant in args.variants:
            label = name if variant == "full" else f"{name} ({variant})"
            run_set(label, perturb(raw, variant), args.seeds, has_scvi)


if __name__ == "__main__":
    main()
