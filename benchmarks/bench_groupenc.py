"""GroupEnc's Local and Global structure preservation: the local_weight front against its peers.

Default: on mouse_bladder_2100, pbmc_10x_4271, human_kidney_5685 (normalize_total, log1p, scale with
max 10, 50 PCs) and pbmc68k_reduced (already scaled; PCs recomputed), every 2-d embedding is scored
by exact R_NX against the 50 PCs it was computed from (Local SP, Global SP; mean over seeds):
sl.tl.groupenc with local_weight in {0, 0.25, 0.5, 1, 2, 4} (defaults otherwise; batch 256 on the
700 pbmc68k cells), PCA-2, UMAP (scanpy), t-SNE (openTSNE with PCA initialisation, perplexity 30,
else scikit-learn's), and PaCMAP and TriMap when installed. Prints the table and the checks of the
local-structure issue, draws the front into docs/_static/groupenc_pareto.png, and times a 2-d fit
on 10,000 cells x 50 PCs (mouse_brain_10k) with and without the local term.

``--vae``: instead, GroupEnc against two Gaussian VAEs on the same PCs (bladder and pbmc68k, 2-d and
10-d): "vae" with scvae's defaults and "vae_matched" with GroupEnc's network and budget (encoder
32-64-128-32, mirrored decoder, no dropout, 500 epochs, same batch size): only the loss differs.

``--cells 1000000``: time sl.tl.groupenc (local_weight 0 and 1) and sc.tl.umap on that many synthetic
cells x 50 PCs (a Gaussian mixture), UMAP skipped with ``--no-umap``, and score the embeddings by
R_NX on ``--n-ref`` sampled reference cells.

    python benchmarks/bench_groupenc.py [--seeds 3] [--device cpu|cuda] [--threads 2]
    python benchmarks/bench_groupenc.py --vae
    python benchmarks/bench_groupenc.py --cells 1000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import torch

import sclatent as sl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "_static" / "groupenc_pareto.png"
LOCAL_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
SETS = ("mouse_bladder_2100", "pbmc_10x_4271", "human_kidney_5685", "pbmc68k_reduced")


def scaled_pcs(name: str) -> ad.AnnData:
    """The 50 PCs (obsm["X_pca"]) of a data set prepared as GroupEnc expects."""
    if name == "pbmc68k_reduced":
        adata = sc.datasets.pbmc68k_reduced()
    else:
        adata = ad.read_h5ad(DATA / f"{name}.h5ad")
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
        sc.pp.scale(adata, max_value=10)
    sc.pp.pca(adata, n_comps=50, random_state=0)
    return ad.AnnData(obs=adata.obs[[]], obsm={"X_pca": adata.obsm["X_pca"]})


def peer_embeddings(adata: ad.AnnData, seed: int) -> dict[str, np.ndarray]:
    """2-d embeddings of the peers that are installed."""
    x = adata.obsm["X_pca"]
    out = {"PCA-2": x[:, :2].copy()}
    umap = adata.copy()
    sc.pp.neighbors(umap, use_rep="X_pca", random_state=seed)
    sc.tl.umap(umap, random_state=seed)
    out["UMAP"] = umap.obsm["X_umap"]
    try:
        from openTSNE import TSNE

        out["t-SNE"] = np.asarray(TSNE(initialization="pca", perplexity=30, random_state=seed).fit(x))
    except ImportError:
        from sklearn.manifold import TSNE

        out["t-SNE"] = TSNE(init="pca", perplexity=30, random_state=seed).fit_transform(x)
    try:
        import pacmap

        out["PaCMAP"] = pacmap.PaCMAP(n_components=2, random_state=seed).fit_transform(x, init="pca")
    except ImportError:
        pass
    try:
        import trimap

        out["TriMap"] = trimap.TRIMAP(verbose=False).fit_transform(x)
    except ImportError:
        pass
    return out


def structure(adata: ad.AnnData, embedding: np.ndarray, device: str) -> tuple[float, float]:
    scored = ad.AnnData(obsm={"X_pca": adata.obsm["X_pca"], "X_e": np.asarray(embedding, np.float32)})
    sl.tl.rnx(scored, "X_e", use_rep="X_pca", device=device)
    result = scored.uns["rnx"]["X_e"]
    return result["local_sp"], result["global_sp"]


def pareto(args: argparse.Namespace) -> None:
    rows: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for name in SETS:
        adata = scaled_pcs(name)
        batch_size = 512 if adata.n_obs > 1200 else 256
        scores = rows.setdefault(name, {})
        for seed in range(args.seeds):
            for weight in LOCAL_WEIGHTS:
                start = time.perf_counter()
                embedding = (
                    sl.models.GroupEnc(
                        local_weight=weight,
                        batch_size=batch_size,
                        random_state=seed,
                        device=args.device,
                        progress=False,
                    )
                    .fit(adata)
                    .transform(adata)
                )
                took = time.perf_counter() - start
                scores.setdefault(f"GroupEnc lw={weight:g}", []).append(
                    (*structure(adata, embedding, args.device), took)
                )
            for peer, embedding in peer_embeddings(adata, seed).items():
                scores.setdefault(peer, []).append((*structure(adata, embedding, args.device), np.nan))
        print(
            f"\n{name}: {adata.n_obs} cells, 2-d, exact SP against 50 PCs, mean (sd) of {args.seeds} seed(s)"
        )
        print(f"{'embedding':<18} {'Local SP':>15} {'Global SP':>15} {'seconds':>8}")
        for method, values in scores.items():
            v = np.array(values)
            print(
                f"{method:<18} {v[:, 0].mean():>7.3f} ({v[:, 0].std():.3f}) "
                f"{v[:, 1].mean():>7.3f} ({v[:, 1].std():.3f}) {v[0, 2]:>8.1f}"
            )
        mean = {m: np.array(v)[:, :2].mean(0) for m, v in scores.items()}
        best_peer = max(mean[p][0] for p in ("UMAP", "PaCMAP") if p in mean)
        balanced, plain = mean["GroupEnc lw=1"], mean["GroupEnc lw=0"]
        print(
            f"local_weight=1: Local SP {balanced[0]:.3f} vs best of UMAP/PaCMAP {best_peer:.3f} "
            f"({'met' if balanced[0] >= best_peer else 'NOT met'}); Global SP {balanced[1]:.3f} vs plain "
            f"GroupEnc - 0.02 = {plain[1] - 0.02:.3f} "
            f"({'met' if balanced[1] >= plain[1] - 0.02 else 'NOT met'}); "
            f"t-SNE Local SP {mean['t-SNE'][0]:.3f}"
        )
    draw_front(rows)
    time_10k(args)


def draw_front(rows: dict[str, dict[str, list[tuple[float, float, float]]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 4.2), layout="constrained")
    for ax, (name, scores) in zip(np.atleast_1d(axes), rows.items(), strict=True):
        front = np.array([np.array(scores[f"GroupEnc lw={w:g}"])[:, :2].mean(0) for w in LOCAL_WEIGHTS])
        ax.plot(front[:, 0], front[:, 1], "o-", color="C0", label="GroupEnc, local_weight")
        for weight, (local, global_) in zip(LOCAL_WEIGHTS, front, strict=True):
            ax.annotate(
                f"{weight:g}", (local, global_), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
        for i, peer in enumerate(m for m in scores if not m.startswith("GroupEnc")):
            local, global_ = np.array(scores[peer])[:, :2].mean(0)
            ax.scatter(local, global_, marker="s", color=f"C{i + 1}", label=peer)
        ax.set(title=name, xlabel="Local SP", ylabel="Global SP")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    print(f"\nfront drawn into {FIGURE}")


def time_10k(args: argparse.Namespace) -> None:
    brain = sl.datasets.mouse_brain_10k()
    sc.pp.normalize_total(brain)
    sc.pp.log1p(brain)
    sc.pp.scale(brain, max_value=10)
    sc.pp.pca(brain, n_comps=50, random_state=0)
    pcs = ad.AnnData(obsm={"X_pca": brain.obsm["X_pca"]})
    seconds = {}
    for weight in (0.0, 1.0):
        start = time.perf_counter()
        sl.models.GroupEnc(local_weight=weight, device=args.device, progress=False).fit(pcs)
        seconds[weight] = time.perf_counter() - start
    print(
        f"10,000 cells x 50 PCs, 2-d, 500 epochs: plain {seconds[0.0]:.1f} s, local_weight=1 "
        f"{seconds[1.0]:.1f} s (kNN graph included): {seconds[1.0] / seconds[0.0]:.2f}x"
    )


def time_cells(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5.0, size=(20, 50))
    x = (centres[rng.integers(0, 20, args.cells)] + rng.normal(size=(args.cells, 50))).astype(np.float32)
    adata = ad.AnnData(obsm={"X_pca": x})
    print(
        f"{args.cells:,} synthetic cells x 50 PCs (20 Gaussian clusters), {args.threads} threads", flush=True
    )
    for weight in (0.0, 1.0):
        start = time.perf_counter()
        sl.tl.groupenc(
            adata, local_weight=weight, key_added=f"groupenc_{weight:g}", device=args.device, progress=False
        )
        took = time.perf_counter() - start
        epochs = adata.uns[f"groupenc_{weight:g}"]["params"]["epochs"]
        print(
            f"sl.tl.groupenc(local_weight={weight:g}): {took:.0f} s ({epochs} epochs, kNN graph included)",
            flush=True,
        )
    if not args.no_umap:
        start = time.perf_counter()
        sc.pp.neighbors(adata, use_rep="X_pca")
        sc.tl.umap(adata)
        print(f"sc.pp.neighbors + sc.tl.umap: {time.perf_counter() - start:.0f} s", flush=True)
    for basis in [key for key in adata.obsm if key != "X_pca"]:
        sl.tl.rnx(adata, basis, n_ref=args.n_ref, device=args.device)
        scores = adata.uns["rnx"][basis]
        print(
            f"{basis}: Local SP {scores['local_sp']:.3f}, Global SP {scores['global_sp']:.3f} "
            f"({args.n_ref} sampled reference cells)",
            flush=True,
        )


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


def vae_comparison(args: argparse.Namespace) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=500, help="GroupEnc epochs of --vae")
    parser.add_argument("--vae", action="store_true", help="GroupEnc against Gaussian VAEs instead")
    parser.add_argument("--cells", type=int, default=0, help="time this many synthetic cells instead")
    parser.add_argument("--no-umap", action="store_true", help="with --cells: skip UMAP")
    parser.add_argument("--n-ref", type=int, default=1000, help="with --cells: reference cells of the SP")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cells:
        time_cells(args)
    elif args.vae:
        vae_comparison(args)
    else:
        pareto(args)


if __name__ == "__main__":
    main()
