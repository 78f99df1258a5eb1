"""Throughput and held-out ELBO of sl.models.SCVAE on mouse_brain_10k, against its compute ceiling
and (when installed) scvi-tools.

Set-up (the foundation issue): zinb, 1000 -> 128 -> 10, batch 128, 10 epochs, 2 threads, 90/10 split.

    python benchmarks/bench_scvae.py [--device cpu|cuda] [--threads 2] [--epochs 10] [--repeats 2]
                                     [--compile] [--bf16] [--models]

sclatent's and scvi-tools' fits take turns and each keeps its best of ``--repeats``: a shared
machine's speed drifts by tens of percent within minutes; the ratio of each pair is printed too.

``--models`` adds the cells/s of the other models on the same cells and epochs: the GMVAE (K = 16,
same set-up; its first third of epochs is the warm start, then the clustering that starts the
mixture; "epochs alone" leaves out that one-off start, timed on its own; after a warm-up fit, as
umap compiles its kNN-graph code once per process), and, on the 50 PCs of the log-normalised counts
with their default batch sizes, GroupEnc and the sampling autoencoder (TRST: random targets, no
labels needed). Growth with the number of cells:
``benchmarks/bench_scale.py``.

``--compile`` adds two runs with ``sl.settings.compile = True``: the first pays the compilation, the
second finds PyTorch's compile caches warm (as a user's second model in a session does).
``--bf16`` adds a run with ``sl.settings.precision = "bfloat16"`` (the network under bf16 autocast,
the likelihood in float32) and its ELBO's difference to float32: for GPUs; a CPU without bf16 matrix
units runs it slower.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch

import sclatent as sl
from sclatent._core.data import CellData, RowSource
from sclatent._core.runtime.device import resolve_device

SETTINGS = {"likelihood": "zinb", "n_latent": 10, "hidden": (128,), "batch_size": 128}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ceiling(model: sl.models.SCVAE, adata, device: torch.device, steps: int = 300) -> float:
    """Cells/s of bare training steps on one pre-made batch (with its positive entries on a CPU, as
    training gathers it): no data loading at all."""
    torch.manual_seed(0)
    module = model._build_module().to(device).train()
    source = RowSource(adata.X, device)
    data = CellData(source, {"log_library": source.row_sums().clamp_min(1).log().float()})
    batch = data.batch(torch.arange(SETTINGS["batch_size"]), positives=True)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, weight_decay=1e-6, fused=True)

    def step() -> None:
        loss = module.loss(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 50.0)
        optimizer.step()

    for _ in range(20):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * SETTINGS["batch_size"] / (time.perf_counter() - start)


def timed_fit(model, adata, device: torch.device) -> float:
    """Training cells per second of ``model.fit(adata)`` (full batches of the training cells)."""
    # PyTorch imports torch._dynamo (about 1 s, once per process) when the first optimizer is built;
    # take that one-off cost before the clock starts, as the ceiling and scvi-tools runs also do
    torch.optim.Adam(torch.nn.Linear(1, 1).parameters())
    synchronize(device)
    start = time.perf_counter()
    model.fit(adata)
    synchronize(device)
    seconds = time.perf_counter() - start
    p = model.params
    return p["epochs"] * (len(model.train_indices_) // p["batch_size"]) * p["batch_size"] / seconds


def run_sclatent(adata, epochs: int, device: torch.device):
    model = sl.models.SCVAE(
        **SETTINGS, epochs=epochs, early_stopping=False, progress=False, device=str(device)
    )
    return model, timed_fit(model, adata, device), model.history_["val_elbo"][-1]


def time_mixture_start() -> list[float]:
    """From now on, the seconds of every GMVAE start (principal components and clustering), in a list."""
    from sclatent.models._scvae import mixture_schedule as scvae_module

    seconds: list[float] = []

    def timed(fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            seconds.append(time.perf_counter() - start)
            return out

        return run

    for name in ("initial_components", "log_normalised_pcs"):
        setattr(scvae_module, name, timed(getattr(scvae_module, name)))
    return seconds


#: The rows of :func:`other_models`, in its order.
OTHER_MODELS = ("GMVAE (K = 16)", "GroupEnc", "SamplingAE (TRST)", "GMVAE epochs alone")


def other_models(adata, epochs: int, device: torch.device) -> dict[str, float]:
    """Cells/s of the GMVAE on the counts, and of GroupEnc and TRST on their 50 PCs."""
    import scanpy as sc

    pcs = adata.copy()
    sc.pp.normalize_total(pcs)
    sc.pp.log1p(pcs)
    sc.pp.pca(pcs, n_comps=50, random_state=0)
    common = {"epochs": epochs, "early_stopping": False, "progress": False, "device": str(device)}

    def gmvae(n_epochs: int) -> sl.models.SCVAE:
        return sl.models.SCVAE(**SETTINGS, prior="mixture", n_components=16, **{**common, "epochs": n_epochs})

    # off the clock: umap's numba functions, compiled once per process by the first kNN graph
    gmvae(1).fit(adata[:1000].copy())
    gmvae_name, groupenc_name, trst_name, epochs_name = OTHER_MODELS
    models = {
        gmvae_name: (gmvae(epochs), adata),
        groupenc_name: (sl.models.GroupEnc(use_rep="X_pca", **common), pcs),
        trst_name: (sl.models.SamplingAE(mode="trst", use_rep="X_pca", **common), pcs),
    }
    start_seconds = time_mixture_start()
    speeds = {name: timed_fit(model, data, device) for name, (model, data) in models.items()}
    # the GMVAE's fit holds a one-off start (PCs, kNN graphs, Leiden runs); its epochs alone leave it out
    n_cells = len(models[gmvae_name][0].train_indices_)
    seconds = epochs * n_cells / speeds[gmvae_name] - sum(start_seconds)
    speeds[epochs_name] = epochs * n_cells / seconds
    return speeds


def run_scvi(adata, train_idx, val_idx, epochs: int, device: torch.device):
    import scvi

    scvi.settings.seed = 0
    train = adata[train_idx].copy()
    scvi.model.SCVI.setup_anndata(train)
    model = scvi.model.SCVI(train, n_hidden=128, n_latent=10, n_layers=1, gene_likelihood="zinb")
    start = time.perf_counter()
    model.train(
        max_epochs=epochs,
        batch_size=SETTINGS["batch_size"],
        train_size=1.0,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        enable_progress_bar=False,
    )
    seconds = time.perf_counter() - start
    held_out = adata[val_idx].copy()
    elbo = -abs(
        float(model.get_elbo(held_out))
    )  # the ELBO of counts is negative whatever the sign convention
    return epochs * len(train_idx) / seconds, elbo


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also train with sl.settings.compile")
    parser.add_argument(
        "--bf16", action="store_true", help='also train with sl.settings.precision = "bfloat16"'
    )
    parser.add_argument("--models", action="store_true", help="also time GMVAE, GroupEnc and TRST")
    parser.add_argument("--repeats", type=int, default=2, help="fits of sclatent and scvi-tools, best kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    adata = sl.datasets.mouse_brain_10k()
    print(
        f"mouse_brain_10k {adata.n_obs} cells x {adata.n_vars} genes; {SETTINGS}; "
        f"{args.epochs} epochs; {args.threads} threads; device {device}"
    )

    have_scvi = importlib.util.find_spec("scvi") is not None
    # a shared machine's speed drifts by tens of percent within minutes: the two tools' fits take
    # turns, and each side keeps its best of --repeats fits (same seed, same ELBO)
    ours, peer, pairs = 0.0, 0.0, []
    for _ in range(args.repeats):
        model, speed, elbo = run_sclatent(adata, args.epochs, device)
        ours = max(ours, speed)
        if have_scvi:
            split = model.train_indices_, model.validation_indices_
            peer_speed, peer_elbo = run_scvi(adata, *split, args.epochs, device)
            peer = max(peer, peer_speed)
            pairs.append(speed / peer_speed)
    print(f"sclatent SCVAE        {ours:10,.0f} cells/s   held-out ELBO {elbo:8.2f} nats/cell")
    if not have_scvi:
        print("scvi-tools            not installed (pip install scvi-tools) - skipped")
    else:
        ratios = ", ".join(f"{ratio:.2f}x" for ratio in pairs)
        print(f"scvi-tools SCVI       {peer:10,.0f} cells/s   held-out ELBO {peer_elbo:8.2f} nats/cell")
        print(f"speed-up over scvi    {ours / peer:10.2f}x   (fit by fit: {ratios})")
    bare = ceiling(model, adata, device)
    print(f"compute ceiling       {bare:10,.0f} cells/s   (bare step on a pre-made batch)")
    print(f"ratio to ceiling      {ours / bare:10.2f}")
    if args.models:
        for name, speed in other_models(adata, args.epochs, device).items():
            print(f"{name:21s} {speed:10,.0f} cells/s")
    if args.compile:
        sl.settings.compile = True
        for run in ("first run", "second run"):
            _, fused, fused_elbo = run_sclatent(adata, args.epochs, device)
            print(
                f"compiled, {run:11s} {fused:10,.0f} cells/s   held-out ELBO {fused_elbo:8.2f} nats/cell   "
                f"{fused / ours:.2f}x eager"
            )
        sl.settings.compile = False
    if args.bf16:
        sl.settings.precision = "bfloat16"
        _, half, half_elbo = run_sclatent(adata, args.epochs, device)
        print(
            f"bfloat16 network      {half:10,.0f} cells/s   held-out ELBO {half_elbo:8.2f} nats/cell   "
            f"{half / ours:.2f}x float32, ELBO {half_elbo - elbo:+.2f}"
        )
        sl.settings.precision = "float32"


if __name__ == "__main__":
    main()
