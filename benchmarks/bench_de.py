"""Differential expression of sl.models.SCVAE against scanpy's rank_genes_groups, per cell type.

Mouse bladder (../shared/data/mouse_bladder_2100.h5ad by default; raw counts, ``obs["cell_type"]``),
preprocessed as in ``bench_gmvae.py`` (filter_genes(min_cells=3), 2,000 seurat_v3 HVGs). A NB
scVAE with default settings; ``model.differential_expression(adata, "cell_type")`` tests each type
against the rest (change of means). Its top 50 genes per type (by ``lfc_mean``) are compared with
the top 50 of ``sc.tl.rank_genes_groups`` (t-test and Wilcoxon, on normalize_total + log1p): the
share they have in common, per type, and the seconds of each.

    python benchmarks/bench_de.py [--data PATH] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import scanpy as sc
import torch

import sclatent as sl
from bench_gmvae import preprocess

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mouse_bladder_2100.h5ad"
TOP = 50


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adata = preprocess(args.data)
    start = time.perf_counter()
    model = sl.models.SCVAE(likelihood="nb", random_state=args.seed, progress=False).fit(adata)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    de = model.differential_expression(adata, "cell_type", random_state=args.seed)
    de_seconds = time.perf_counter() - start
    lognorm = adata.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    peers, peer_seconds = {}, {}
    for method in ("t-test", "wilcoxon"):
        start = time.perf_counter()
        sc.tl.rank_genes_groups(lognorm, "cell_type", method=method, n_genes=TOP)
        peer_seconds[method] = time.perf_counter() - start
        peers[method] = pd.DataFrame(lognorm.uns["rank_genes_groups"]["names"])
    rows = []
    for group in adata.obs["cell_type"].cat.categories:
        ours = de[de["group1"] == group].sort_values("lfc_mean", ascending=False).index[:TOP]
        row = {"cell type": group, "cells": int((adata.obs["cell_type"] == group).sum())}
        row["DE calls (FDR 0.05)"] = int(de.loc[de["group1"] == group, "is_de_fdr_0.05"].sum())
        for method, names in peers.items():
            row[f"top {TOP} shared, {method}"] = len(set(ours) & set(names[group])) / TOP
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"{args.data.name}: {adata.n_obs} cells x {adata.n_vars} genes; {args.threads} threads")
    print(f"scVAE fit {fit_seconds:.1f} s; differential_expression {de_seconds:.1f} s for {len(rows)} types")
    print(", ".join(f"rank_genes_groups {m} {s:.1f} s" for m, s in peer_seconds.items()))
    print(table.to_string(index=False, float_format="{:.2f}".format))
    shares = table.filter(like="shared")
    print(f"mean share {shares.mean().round(3).to_dict()}; types below 0.5: {(shares < 0.5).sum().to_dict()}")


if __name__ == "__main__":
    main()
