"""The whole job on an atlas from disk, through the command line: train, embed, cluster, transfer, score.

On a synthetic atlas of ``--cells`` cells (``sl.datasets.synthetic_atlas``: pbmc_4k's 8 types,
resampled and thinned, 4 batches, 1% of the cells' types given in ``obs["known_cell_type"]``), each
step runs as its own process, with the matrix left on disk (``--backed``), and reports its wall
time and peak RSS:

1. ``sclatent scvae atlas.zarr out_gauss.zarr --backed`` (the default Gaussian prior);
2. ``... --prior mixture`` (the number of clusters found): ARI of ``obs["scvae_cluster"]`` against
   ``cell_type``, beside the same command's ARI on a random ``--subsample`` of the atlas in memory;
3. ``... --prior mixture --labels-key known_cell_type`` (label transfer from 1% of the cells):
   accuracy on the unlabelled cells, beside kNN (k = 15) on 50 PCs of the log-normalised
   subsample, trained on its labelled cells;
4. ``sclatent rnx out_gauss.zarr ... --n-ref 1000`` (R_NX sampled against the counts).

Outputs present in ``--out`` are scored without running their step again (``--rerun`` runs all).

    python benchmarks/bench_atlas.py [--cells 1000000] [--subsample 50000] [--out /tmp/sclatent_atlas]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GiB = 1024**3
#: A step: run the command line in this process, then print its peak RSS.
STEP = (
    "import resource, sys; from sclatent.cli import main; code = main(sys.argv[1:]); "
    "print('PEAK_RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr); "
    "sys.exit(code)"
)


def step(name: str, argv: list[str], out: Path, rerun: bool) -> dict:
    """Run ``sclatent <argv>`` in a fresh process (unless its record exists): seconds and peak RSS."""
    record = out / f"{name}.json"
    if record.exists() and not rerun:
        return json.loads(record.read_text())
    start = time.perf_counter()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", STEP, *argv], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    peak = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK_RSS")))
    result = {"seconds": time.perf_counter() - start, "peak_rss_gib": peak / GiB}
    record.write_text(json.dumps(result))
    return result


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted, dtype=str) == np.asarray(truth, dtype=str)))


def knn_on_pcs(adata, labels_key: str, truth_key: str) -> float:
    """kNN (k = 15) on 50 PCs of log-normalised counts, trained on the labelled cells."""
    import scanpy as sc
    from sklearn.neighbors import KNeighborsClassifier

    adata = adata.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=50)
    known = adata.obs[labels_key].notna().to_numpy()
    classifier = KNeighborsClassifier(15).fit(
        adata.obsm["X_pca"][known], adata.obs[labels_key][known].astype(str)
    )
    return accuracy(classifier.predict(adata.obsm["X_pca"][~known]), adata.obs[truth_key][~known])


def main() -> None:
    import anndata as ad
    from sklearn.metrics import adjusted_rand_score

    import sclatent as sl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--subsample", type=int, default=50_000)
    parser.add_argument("--out", default="/tmp/sclatent_atlas")
    parser.add_argument("--rerun", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atlas = out / f"atlas_{args.cells}.zarr"
    if not atlas.exists():
        sl.datasets.synthetic_atlas(atlas, args.cells, progress=False)
    common = ["--backed", "--threads", "2", "--no-progress"]
    mixture = ["--prior", "mixture"]
    labels = [*mixture, "--labels-key", "known_cell_type"]
    scoring = ["--basis", "X_scvae", "--use-rep", "X", "--n-ref", "1000", "--backed", "--threads", "2"]
    runs = {
        "gauss": step("gauss", ["scvae", str(atlas), str(out / "out_gauss.zarr"), *common], out, args.rerun),
        "mixture": step(
            "mixture",
            ["scvae", str(atlas), str(out / "out_mixture.zarr"), *common, *mixture],
            out,
            args.rerun,
        ),
        "labels": step(
            "labels", ["scvae", str(atlas), str(out / "out_labels.zarr"), *common, *labels], out, args.rerun
        ),
        "rnx": step(
            "rnx", ["rnx", str(out / "out_gauss.zarr"), str(out / "out_rnx.zarr"), *scoring], out, args.rerun
        ),
    }
    # the same commands on a random subsample, in memory
    sample = out / f"atlas_{args.cells}_sample_{args.subsample}.h5ad"
    if not sample.exists():
        backed = sl.read_backed(atlas)
        rows = np.sort(np.random.default_rng(0).choice(args.cells, args.subsample, replace=False))
        ad.AnnData(backed.X[rows], obs=backed.obs.iloc[rows], var=backed.var).write_h5ad(sample)
    small = ["--threads", "2", "--no-progress"]
    runs["mixture_sample"] = step(
        "mixture_sample",
        ["scvae", str(sample), str(out / "sample_mixture.h5ad"), *small, *mixture],
        out,
        args.rerun,
    )
    runs["labels_sample"] = step(
        "labels_sample",
        ["scvae", str(sample), str(out / "sample_labels.h5ad"), *small, *labels],
        out,
        args.rerun,
    )

    def read(name: str):
        return ad.read_zarr(out / name) if name.endswith(".zarr") else ad.read_h5ad(out / name)

    gauss = read("out_gauss.zarr")
    assert gauss.n_obs == args.cells and np.isfinite(gauss.obsm["X_scvae"]).all()
    print(f"{'step':>16} {'minutes':>8} {'peak RSS GiB':>13}  result")
    history = gauss.uns["scvae"]["history"]
    print(
        f"{'gaussian':>16} {runs['gauss']['seconds'] / 60:>8.1f} {runs['gauss']['peak_rss_gib']:>13.2f}  "
        f"obsm['X_scvae'] {gauss.obsm['X_scvae'].shape}, {len(history['val_elbo'])} epochs, "
        f"held-out ELBO {history['val_elbo'][-1]:.2f}"
    )
    for name, file in (("mixture", "out_mixture.zarr"), ("mixture_sample", "sample_mixture.h5ad")):
        result = read(file)
        ari = adjusted_rand_score(result.obs["cell_type"], result.obs["scvae_cluster"])
        print(
            f"{name:>16} {runs[name]['seconds'] / 60:>8.1f} {runs[name]['peak_rss_gib']:>13.2f}  "
            f"{result.uns['scvae']['n_clusters']} clusters, ARI {ari:.3f} ({result.n_obs:,} cells)"
        )
    for name, file in (("labels", "out_labels.zarr"), ("labels_sample", "sample_labels.h5ad")):
        result = read(file)
        unlabelled = result.obs["known_cell_type"].isna().to_numpy()
        score = accuracy(result.obs["scvae_label"][unlabelled], result.obs["cell_type"][unlabelled])
        print(
            f"{name:>16} {runs[name]['seconds'] / 60:>8.1f} {runs[name]['peak_rss_gib']:>13.2f}  "
            f"accuracy on the unlabelled cells {score:.3f} ({result.n_obs:,} cells)"
        )
    knn = knn_on_pcs(read(sample.name), "known_cell_type", "cell_type")
    print(f"{'kNN on 50 PCs':>16} {'':>8} {'':>13}  accuracy on the unlabelled cells {knn:.3f} (subsample)")
    rnx = read("out_rnx.zarr").uns["rnx"]["X_scvae"]
    print(
        f"{'rnx':>16} {runs['rnx']['seconds'] / 60:>8.1f} {runs['rnx']['peak_rss_gib']:>13.2f}  "
        f"Local SP {rnx['local_sp']:.3f}, Global SP {rnx['global_sp']:.3f} (1,000 reference cells)"
    )


if __name__ == "__main__":
    main()
