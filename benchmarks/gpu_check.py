"""Every model's training throughput and R_NX's speed on one device, printed as one table.

The figures of the speed issue, in one run (``bash benchmarks/gpu_check.sh`` adds the CUDA tests):

- SCVAE (ZINB) on mouse_brain_10k at the CPU benchmark's shapes (1,000 genes, 128 -> 10, batch 128),
  and on a synthetic atlas (``sl.datasets.synthetic_atlas``: 100,000 cells x 2,000 genes) with batch 1,024
  and a 4x learning rate (the large-batch set-up for a GPU), with the held-out ELBO of each, also
  with the network in bfloat16 (``sl.settings.precision``; its ELBO's difference to float32) and
  with every step replayed from a CUDA graph (``sl.settings.cuda_graphs``; its speed-up and ELBO
  difference to eager steps, at both shapes);
- the GMVAE (K = 16; its fit includes the warm start and the clustering of the start), GroupEnc and
  the sampling autoencoder (TRST) on mouse_brain_10k, as in ``bench_scvae.py --models``;
- exact R_NX at N = 100,000 and sampled R_NX (1,000 reference cells) at N = 1,000,000
  (``bench_rnx.run_case``, 50-d clusters against a noisy 2-d projection).

Cells/s is training cells x epochs / wall time of ``fit`` (input checks and validation included).
``--quick`` shrinks every case (2,000 and 3,000 cells, 2 epochs, R_NX at 3,000 / 20,000 cells) to
check that the script runs, e.g. on a CPU in the test suite; its figures mean nothing.

    python benchmarks/gpu_check.py [--device cuda] [--threads 16] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import torch

sys.path.insert(0, str(Path(__file__).parent))

import sclatent as sl
from bench_rnx import run_case as rnx_case
from bench_scvae import OTHER_MODELS, SETTINGS, other_models, synchronize, timed_fit
from sclatent._core.runtime.device import resolve_device

#: Targets of the speed issue on an H100 (None: none set).
TARGETS = {
    "SCVAE zinb, batch 1,024": ">= 500,000 cells/s",
    "SCVAE zinb, batch 1,024, bf16": "ELBO within 0.5 of float32",
    "SCVAE zinb, batch 1,024, CUDA graphs": ">= 500,000 cells/s",
    "exact R_NX": "<= 60 s",
}


def synthesize(n_cells: int, path: Path) -> None:
    """Write a synthetic atlas of ``n_cells`` cells (``sl.datasets.synthetic_atlas``) to ``path``."""
    sl.datasets.synthetic_atlas(path, n_cells, progress=False)


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU's."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def scvae_case(adata, device: torch.device, epochs: int, **settings) -> tuple[float, float]:
    """Cells/s and held-out ELBO of a ZINB SCVAE fit."""
    model = sl.models.SCVAE(
        **{**SETTINGS, **settings}, epochs=epochs, early_stopping=False, progress=False, device=str(device)
    )
    speed = timed_fit(model, adata, device)
    return speed, model.history_["val_elbo"][-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="tiny cases: checks the script, not the speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n_large, epochs, rnx_sizes = (
        (3_000, 2, (3_000, 20_000)) if args.quick else (100_000, 10, (100_000, 1_000_000))
    )
    brain = sl.datasets.mouse_brain_10k()
    if args.quick:
        brain = brain[:2_000].copy()
    rows: list[tuple[str, str, str, str]] = []
    failed: list[str] = []

    def add(case: str, shape: str, figure: Callable[[], str]) -> None:
        """One row: ``figure()``'s text, or the error it raised (the other rows still run)."""
        try:
            text = figure()
        except Exception as err:  # one failing case must not cost the rest of the table
            traceback.print_exc()
            failed.append(case)
            text = f"ERROR {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
        rows.append((case, shape, text, TARGETS.get(case, "")))
        print(f"  {case}: {text}", flush=True)

    def fit(data, results: dict, key: str, **settings) -> str:
        results[key] = scvae_case(data, device, epochs, **settings)
        speed, elbo = results[key]
        return f"{speed:,.0f} cells/s (ELBO {elbo:.2f})"

    def with_setting(name: str, value, data, without: tuple[float, float] | None, **settings) -> str:
        """A fit with ``sl.settings.<name> = value``, against the same fit without it."""
        default = getattr(sl.settings, name)
        setattr(sl.settings, name, value)
        try:
            speed, elbo = scvae_case(data, device, epochs, **settings)
        finally:
            setattr(sl.settings, name, default)
        if without is None:
            return f"{speed:,.0f} cells/s (ELBO {elbo:.2f}; no run without it to compare)"
        return f"{speed:,.0f} cells/s ({speed / without[0]:.2f}x; ELBO {elbo:.2f}, {elbo - without[1]:+.2f})"

    def rnx(n: int, n_ref: int | None) -> str:
        synchronize(device)
        result = rnx_case(n, n_ref, str(device))
        gpu = f", GPU peak {result['peak_gpu_gib']:.1f} GiB" if "peak_gpu_gib" in result else ""
        return f"{result['seconds']:.1f} s{gpu}"

    print(f"gpu_check on {device_name(device)}; torch {torch.__version__}; sclatent {sl.__version__}")
    # untimed: the device's one-off start-up (context, cuBLAS handles, kernel loading) is no row's cost
    scvae_case(brain[:1_000].copy(), device, 1)
    results: dict[str, tuple[float, float]] = {}
    shape = f"{brain.n_obs:,} x {brain.n_vars:,}, batch 128"
    add("SCVAE zinb, CPU shapes", shape, lambda: fit(brain, results, "small"))
    add(
        "SCVAE zinb, CPU shapes, CUDA graphs",
        shape,
        lambda: with_setting("cuda_graphs", True, brain, results.get("small")),
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "counts.h5ad"
        synthesize(n_large, path)
        large = ad.read_h5ad(path)
    large_settings = {"batch_size": 1024, "lr": 4e-3}
    shape = f"{large.n_obs:,} x {large.n_vars:,}, lr 4e-3"
    add("SCVAE zinb, batch 1,024", shape, lambda: fit(large, results, "large", **large_settings))
    add(
        "SCVAE zinb, batch 1,024, bf16",
        shape,
        lambda: with_setting("precision", "bfloat16", large, results.get("large"), **large_settings),
    )
    add(
        "SCVAE zinb, batch 1,024, CUDA graphs",
        shape,
        lambda: with_setting("cuda_graphs", True, large, results.get("large"), **large_settings),
    )
    try:
        speeds = other_models(brain, epochs, device)
    except Exception:  # the rows of the other models, each marked as failed
        traceback.print_exc()
        speeds = dict.fromkeys(OTHER_MODELS)
    for name, speed in speeds.items():
        add(name, f"{brain.n_obs:,} cells, {epochs} epochs", lambda speed=speed: _cells_per_second(speed))
    n_sampled = 200 if args.quick else 1_000
    for n, n_ref, case in ((rnx_sizes[0], None, "exact R_NX"), (rnx_sizes[1], n_sampled, "sampled R_NX")):
        shape = f"N = {n:,}" + (f", {n_ref:,} reference cells" if n_ref else "")
        add(case, shape, lambda n=n, n_ref=n_ref: rnx(n, n_ref))

    print(f"\n| case | shape | {device_name(device)} | target |\n|---|---|---|---|")
    for case, shape, figure, target in rows:
        print(f"| {case} | {shape} | {figure} | {target} |")
    if failed:
        raise SystemExit(f"gpu_check: {len(failed)} case(s) failed: {', '.join(failed)}")


def _cells_per_second(speed: float | None) -> str:
    if speed is None:
        msg = "other_models() failed (its traceback is above)"
        raise RuntimeError(msg)
    return f"{speed:,.0f} cells/s"


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\ngpu_check: {time.perf_counter() - start:.0f} s")
