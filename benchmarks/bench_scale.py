"""Atlas scale: what an epoch costs as the atlas grows, from disk and in memory, with 1-4 processes.

Atlases come from ``sl.datasets.synthetic_atlas`` (pbmc_4k's cells resampled, thinned to vary their
depth, in four batches with their own capture efficiencies; 2,000 genes, about 110 stored counts a
cell), written block by block to ``.zarr`` stores in ``--out`` and reused when present.

Each case runs in a fresh process (its peak RSS is its own) and trains the default NB scVAE (2,000 ->
128 -> 10, batch 128, 10% held out) for ``--epochs`` epochs on 2 CPU threads (one per process with
several processes, under ``torchrun --standalone``, gloo). The epoch time is that of the training
pass alone (minibatches drawn, read, stepped), the bytes read those the pass read from disk (all ranks
together); the ``fit`` time adds the input checks, library sizes and validation.

    python benchmarks/bench_scale.py curve [--sizes 125000 250000 500000 1000000 2000000]
    python benchmarks/bench_scale.py ranks [--ranks 1 2 4] [--cells 1000000]
    python benchmarks/bench_scale.py scvi --python /path/to/venv-with-scvi-tools/bin/python [--cells ...]

``curve`` prints one row per size (on disk, and in memory for ``--memory-sizes``), ``ranks`` one
row per number of processes, ``scvi`` the same epoch with scvi-tools' SCVI (its AnnData loaded into
memory, as scvi-tools requires) beside sclatent's from disk and from memory.
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

GiB = 1024**3
SETTINGS = {"likelihood": "nb", "n_latent": 10, "hidden": (128,), "batch_size": 128}


def atlas(n_cells: int, out: Path) -> Path:
    """The synthetic atlas of ``n_cells`` cells in ``out``, written first when absent."""
    import sclatent as sl

    path = out / f"atlas_{n_cells}.zarr"
    if not path.exists():
        start = time.perf_counter()
        sl.datasets.synthetic_atlas(path, n_cells, progress=False)
        print(f"(wrote {path} in {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return path


class TimedPasses:
    """Records each training pass's wall time and the bytes it read from disk (sampler wrapper)."""

    passes: list[tuple[float, int]] = []  # noqa: RUF012 (one record per process)

    def __init__(self, sampler: object, source: object) -> None:
        self.sampler, self.source = sampler, source

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        start, before = time.perf_counter(), getattr(self.source, "bytes_read", 0)
        yield from self.sampler
        self.passes.append((time.perf_counter() - start, getattr(self.source, "bytes_read", 0) - before))


def timed(cls: type) -> None:
    """Wrap the training sampler of a row source class in :class:`TimedPasses`."""
    original = cls.sampler

    def sampler(self, *args, **kwargs):
        return TimedPasses(original(self, *args, **kwargs), self)

    cls.sampler = sampler


def run_case(path: str, backed: bool, epochs: int, threads: int) -> dict:
    """Fit in this process; per-epoch time and bytes, peak memory."""
    import anndata as ad
    import torch

    import sclatent as sl
    from sclatent._core.data import DiskRowSource, RowSource
    from sclatent._core.runtime.distributed import all_reduce_sum, init_from_env, rank_and_size

    torch.set_num_threads(threads)
    distributed = init_from_env("cpu")
    timed(RowSource)
    timed(DiskRowSource)
    adata = sl.read_backed(path) if backed else ad.read_zarr(path)
    model = sl.models.SCVAE(**SETTINGS, epochs=epochs, early_stopping=False, progress=False, device="cpu")
    start = time.perf_counter()
    model.fit(adata)
    fit_s = time.perf_counter() - start
    seconds = [s for s, _ in TimedPasses.passes]
    read = all_reduce_sum(torch.tensor([b for _, b in TimedPasses.passes], dtype=torch.float64))
    out = {
        "cells": adata.n_obs,
        "mode": "disk" if backed else "memory",
        "processes": rank_and_size()[1],
        "epoch_s": min(seconds),
        "us_per_cell": 1e6 * min(seconds) / len(model.train_indices_),
        "fit_s": fit_s,
        "bytes_read_per_epoch_gib": read.mean().item() / GiB,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB,
        "val_elbo": model.history_["val_elbo"][-1],
    }
    if distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
    return out


def launch(path: Path, backed: bool, processes: int, epochs: int) -> dict:
    case = ["--case", str(path), "--epochs", str(epochs)] + (["--backed"] if backed else [])
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


def run_scvi(path: str, epochs: int) -> dict:
    """scvi-tools' SCVI (NB, the same network) on the atlas read into memory: epoch time, peak RSS."""
    import anndata as ad
    import scvi
    import torch
    from lightning.pytorch.callbacks import Callback

    torch.set_num_threads(2)
    scvi.settings.seed = 0
    adata = ad.read_zarr(path)
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata, n_hidden=128, n_latent=10, n_layers=1, gene_likelihood="nb")
    seconds = []

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            seconds.append(time.perf_counter() - self.start)

    start = time.perf_counter()
    model.train(
        max_epochs=epochs,
        batch_size=128,
        train_size=0.9,
        accelerator="cpu",
        enable_progress_bar=False,
        callbacks=[EpochTimer()],
    )
    return {
        "cells": adata.n_obs,
        "mode": "scvi-tools",
        "processes": 1,
        "epoch_s": min(seconds),
        "us_per_cell": 1e6 * min(seconds) / round(0.9 * adata.n_obs),
        "fit_s": time.perf_counter() - start,
        "bytes_read_per_epoch_gib": float("nan"),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB,
        "val_elbo": float("nan"),
    }


def row(r: dict) -> str:
    return (
        f"{r['cells']:>9,} {r['mode']:>10} {r['processes']:>5} {r['epoch_s']:>8.1f} {r['us_per_cell']:>8.1f} "
        f"{r['fit_s']:>7.0f} {r['bytes_read_per_epoch_gib']:>9.3f} {r['peak_rss_gib']:>8.2f} "
        f"{r['val_elbo']:>8.2f}"
    )


HEADER = (
    f"{'cells':>9} {'mode':>10} {'procs':>5} {'epoch s':>8} {'us/cell':>8} {'fit s':>7} "
    f"{'read GiB':>9} {'RSS GiB':>8} {'ELBO':>8}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=["curve", "ranks", "scvi"], default="curve")
    parser.add_argument(
        "--sizes", nargs="*", type=int, default=[125_000, 250_000, 500_000, 1_000_000, 2_000_000]
    )
    parser.add_argument("--memory-sizes", nargs="*", type=int, default=[125_000, 1_000_000])
    parser.add_argument("--ranks", nargs="*", type=int, default=[1, 2, 4])
    parser.add_argument("--cells", type=int, default=1_000_000, help="atlas size of 'ranks' and 'scvi'")
    parser.add_argument("--epochs", type=int, default=2, help="the fastest epoch is reported")
    parser.add_argument("--python", help="a Python with scvi-tools installed, for 'scvi'")
    parser.add_argument("--out", default="/tmp/sclatent_atlas")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--scvi-case", help=argparse.SUPPRESS)
    parser.add_argument("--backed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # child process
        result = run_case(args.case, args.backed, args.epochs, args.threads)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return
    if args.scvi_case:
        print(json.dumps(run_scvi(args.scvi_case, args.epochs)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(HEADER, flush=True)
    if args.what == "curve":
        for n in args.sizes:
            path = atlas(n, out)
            for backed in [True] + ([False] if n in args.memory_sizes else []):
                print(row(launch(path, backed, 1, args.epochs)), flush=True)
    elif args.what == "ranks":
        path = atlas(args.cells, out)
        for processes in args.ranks:
            print(row(launch(path, True, processes, args.epochs)), flush=True)
    else:
        path = atlas(args.cells, out)
        for backed in (True, False):
            print(row(launch(path, backed, 1, args.epochs)), flush=True)
        command = [
            args.python or sys.executable,
            __file__,
            "--scvi-case",
            str(path),
            "--epochs",
            str(args.epochs),
        ]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        print(row(json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))))


if __name__ == "__main__":
    main()
