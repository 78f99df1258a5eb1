"""Speed and memory of exact and sampled R_NX (sl.tl.rnx's core) against brute force and pyDRMetrics.

Cases (the GroupEnc / R_NX issue): exact at N = 2,000 / 10,000 / 50,000, sampled at N = 1,000,000 with
n_ref = 1,000, on 2 threads; 50-d Gaussian clusters as the reference and a noisy 2-d projection as the
embedding. Each case runs in a fresh process so that its peak resident memory can be reported.
Brute-force NumPy (full distance and rank matrices) and pyDRMetrics (when installed) run at N = 2,000.

    python benchmarks/bench_rnx.py [--device cpu|cuda] [--threads 2] [--cases 2000 10000 ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from sclatent._core.metrics.rnx_curves import rnx_curves
from sclatent._core.runtime.device import resolve_device

GiB = 1024**3


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """50-d Gaussian clusters and a 2-d embedding: their first two coordinates plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(20, 50)).astype(np.float32)
    high = rng.standard_normal((n, 50), dtype=np.float32)
    high += centres[rng.integers(0, 20, n)]
    low = high[:, :2] + rng.standard_normal((n, 2), dtype=np.float32)
    return high, low


def brute_force(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """R_NX from full N x N distance, rank and co-ranking matrices (NumPy, float64)."""
    n = len(high)

    def ranks(x: np.ndarray) -> np.ndarray:
        sq = (x * x).sum(1)
        d = sq[:, None] + sq[None, :] - 2 * x @ x.T
        np.fill_diagonal(d, -np.inf)
        order = np.argsort(d, axis=1, kind="stable")
        r = np.empty_like(order)
        np.put_along_axis(r, order, np.tile(np.arange(n), (n, 1)), axis=1)
        return r

    off = ~np.eye(n, dtype=bool)
    co = np.zeros((n - 1, n - 1))
    np.add.at(co, (ranks(high.astype(np.float64))[off] - 1, ranks(low.astype(np.float64))[off] - 1), 1)
    k = np.arange(1, n - 1)
    q = co.cumsum(0).cumsum(1)[k - 1, k - 1] / (k * n)
    return ((n - 1) * q - k) / (n - 1 - k)


def run_case(n: int, n_ref: int | None, device: str) -> dict:
    """One timed call of the core, in this process."""
    high, low = make_data(n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    target = resolve_device(device)
    rows = None if n_ref is None else np.sort(np.random.default_rng(0).choice(n, n_ref, replace=False))
    if target.type == "cuda":
        rnx_curves(high[:2000], [low[:2000]], device=target)  # CUDA context and kernels, off the clock
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = rnx_curves(high, [low], rows=rows, device=target)[0]
    if target.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {
        "n": n,
        "n_ref": n_ref,
        "device": str(target),
        "seconds": seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB,
        "rss_before_gib": rss_before / GiB,
        "local_sp": result.local_sp,
        "global_sp": result.global_sp,
        "local_sp_se": result.local_sp_se,
        "global_sp_se": result.global_sp_se,
    }
    if target.type == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / GiB
    return out


def peers(n: int = 2000) -> None:
    """Brute-force NumPy and pyDRMetrics at N = 2,000, against our exact result."""
    high, low = make_data(n)
    start = time.perf_counter()
    ours = rnx_curves(high, [low])[0]
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    brute = brute_force(high, low)
    t_brute = time.perf_counter() - start
    in_float64 = rnx_curves(high.astype(np.float64), [low.astype(np.float64)])[0]
    print(
        f"N={n}: sclatent exact {t_ours:.2f} s; brute-force NumPy {t_brute:.2f} s "
        f"({t_brute / t_ours:.1f}x); max |R_NX difference| {np.abs(brute - ours.rnx).max():.2e} "
        f"(float32 ranks), {np.abs(brute - in_float64.rnx).max():.2e} (float64 ranks)"
    )
    try:
        from pyDRMetrics.pyDRMetrics import DRMetrics
    except ImportError:
        print("pyDRMetrics not installed (pip install pyDRMetrics): skipped")
        return
    start = time.perf_counter()
    metrics = DRMetrics(high.astype(np.float64), low.astype(np.float64))
    t_peer = time.perf_counter() - start
    k = np.arange(1, n - 1)
    qnn = np.asarray(metrics.QNN)[: n - 2] * (n - 1) / n  # pyDRMetrics divides by N - 1, not N
    peer_rnx = ((n - 1) * qnn - k) / (n - 1 - k)
    print(
        f"N={n}: pyDRMetrics {t_peer:.2f} s; sclatent is {t_peer / t_ours:.1f}x faster; "
        "max |R_NX difference| after the (N-1)/N rescaling, float64 ranks: "
        f"{np.abs(peer_rnx - in_float64.rnx).max():.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="*", default=["2000", "10000", "50000", "1000000:1000"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--no-peers", action="store_true", help="skip brute force and pyDRMetrics")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:  # child process: one case, JSON out
        n, _, n_ref = args.case.partition(":")
        print(json.dumps(run_case(int(n), int(n_ref) if n_ref else None, args.device)))
        return
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    if not args.no_peers:
        peers()
    header = f"{'N':>9} {'n_ref':>6} {'seconds':>8} {'peak RSS GiB':>12} {'before GiB':>10}"
    print(f"{header} {'Local SP':>16} {'Global SP':>16}")
    for case in args.cases:
        command = [sys.executable, __file__, "--case", case, "--device", args.device]
        command += ["--threads", str(args.threads)]
        r = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        se = r["n_ref"] is not None
        local = f"{r['local_sp']:.4f}" + (f"±{r['local_sp_se']:.4f}" if se else "")
        global_ = f"{r['global_sp']:.4f}" + (f"±{r['global_sp_se']:.4f}" if se else "")
        gpu = f" (GPU peak {r['peak_gpu_gib']:.2f} GiB)" if "peak_gpu_gib" in r else ""
        print(
            f"{r['n']:>9} {r['n_ref'] or 'exact':>6} {r['seconds']:>8.2f} {r['peak_rss_gib']:>12.2f} "
            f"{r['rss_before_gib']:>10.2f} {local:>16} {global_:>16}{gpu}"
        )


if __name__ == "__main__":
    main()
