"""Training throughput and peak memory of sl.models.SCVAE at scale: in memory, from disk, 1 vs 2 processes.

Synthetic counts with real-data statistics: 2,000 genes whose means follow mouse_brain_10k's genes
(tiled with jitter), 7% non-zero entries (detection probability rising with the gene mean), log-normal
library sizes, negative-binomial counts (theta 2) for the non-zero entries.
Each case runs in a fresh process (so that its peak RSS is its own) and
trains a NB scVAE (2,000 -> 128 -> 10, batch 128, 1% held out) on 2 CPU threads for
max(1, 200,000 / N) epochs; cells/s is epochs x training cells / wall time of ``fit`` (input checks,
library sizes and validation included). On-disk cases read
the h5ad with ``backed="r"``. The 2-process case runs ``torchrun --nproc-per-node 2`` with one thread
per process (gloo).

    python benchmarks/bench_scale.py [--sizes 10000 100000 1000000] [--out /tmp/sclatent_scale]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

GiB = 1024**3
SETTINGS = {"likelihood": "nb", "n_latent": 10, "hidden": (128,), "batch_size": 128}


def synthesize(n_cells: int, path: Path, n_genes: int = 2000, density: float = 0.07, seed: int = 0) -> None:
    """Write ``n_cells`` synthetic cells to ``path`` (h5ad, CSR), generated 50,000 cells at a time."""
    import anndata as ad

    import sclatent as sl

    rng = np.random.default_rng(seed)
    brain = sl.datasets.mouse_brain_10k().X
    means = np.asarray(brain.mean(0)).ravel()
    means = np.tile(means, -(-n_genes // len(means)))[:n_genes] * rng.lognormal(0, 0.3, n_genes)
    # detection probability per gene rises with its mean; scaled so that `density` of entries are non-zero
    weight = np.sqrt(means + 1e-3)
    detect = np.clip(weight * density / weight.mean(), 0, 0.95)
    chunks = []
    for start in range(0, n_cells, 10_000):
        n = min(10_000, n_cells - start)
        library = rng.lognormal(0, 0.5, n)
        rows, cols = np.nonzero(rng.random((n, n_genes), dtype=np.float32) < detect)
        mu = library[rows] * (1 + 4 * means[cols] / means.max())
        values = 1 + rng.negative_binomial(2, 2 / (2 + mu))
        chunks.append(sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n, n_genes)))
    adata = ad.AnnData(sp.vstack(chunks, format="csr"))
    adata.obs_names = adata.obs_names.astype(str)
    adata.write_h5ad(path)


def run_case(path: str, backed: bool, threads: int) -> dict:
    """Fit one epoch in this process; throughput and peak memory."""
    import anndata as ad
    import torch

    import sclatent as sl
    from sclatent._core.runtime.distributed import init_from_env, rank_and_size

    torch.set_num_threads(threads)
    distributed = init_from_env()
    adata = ad.read_h5ad(path, backed="r" if backed else None)
    csr_bytes = 0 if backed else adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    epochs = max(1, round(200_000 / adata.n_obs))  # >= 200,000 cell-steps, so fixed costs do not dominate
    model = sl.models.SCVAE(
        **SETTINGS,
        epochs=epochs,
        validation_fraction=0.01,
        early_stopping=False,
        progress=False,
        device="cpu",
    )
    start = time.perf_counter()
    model.fit(adata)
    seconds = time.perf_counter() - start
    out = {
        "cells": adata.n_obs,
        "backed": backed,
        "processes": rank_and_size()[1],
        "cells_per_s": epochs * len(model.train_indices_) / seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB,
        "rss_after_load_gib": rss_loaded / GiB,
        "csr_gib": csr_bytes / GiB,
        "val_elbo": model.history_["val_elbo"][-1],
    }
    if distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
    return out


def launch(path: Path, backed: bool, processes: int) -> dict:
    case = ["--case", str(path)] + (["--backed"] if backed else [])
    if processes == 1:
        command = [sys.executable, __file__, *case, "--threads", "2"]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
        ]
        command += [__file__, *case, "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1" if processes > 1 else "2"}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", default="/tmp/sclatent_scale")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--backed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # child process
        result = run_case(args.case, args.backed, args.threads)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = f"{'cells':>9} {'mode':>8} {'procs':>5} {'cells/s':>9} {'peak RSS GiB':>12} {'loaded GiB':>10}"
    print(f"{header} {'CSR GiB':>8} {'ELBO':>9}")
    for n in args.sizes:
        path = out / f"synthetic_{n}.h5ad"
        if not path.exists():
            start = time.perf_counter()
            synthesize(n, path)
            print(
                f"(wrote {path}, {path.stat().st_size / GiB:.2f} GiB, in {time.perf_counter() - start:.0f} s)"
            )
        cases = [(False, 1), (True, 1)] + ([(False, 2)] if n == 100_000 else [])
        for backed, processes in cases:
            r = launch(path, backed, processes)
            mode = "disk" if backed else "memory"
            print(
                f"{r['cells']:>9} {mode:>8} {processes:>5} {r['cells_per_s']:>9.0f} "
                f"{r['peak_rss_gib']:>12.2f} {r['rss_after_load_gib']:>10.2f} {r['csr_gib']:>8.2f} "
                f"{r['val_elbo']:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
