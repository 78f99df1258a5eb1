"""Bad input and faults across every tool, the models, the command line and torch.distributed.

Each case runs with a time limit and is classified:

- clear error: a ValueError / TypeError / OSError (KeyError subclasses included) or our own
  DistributedSetupError, one line (the CLI: exit code 2 and one line on stderr);
- success: returned, every new ``obsm`` entry finite;
- crash: any other exception, a traceback from the CLI, or a signal;
- hang: ran past its time limit;
- and, for every case, whether its input AnnData, input file or previous output changed.

    python benchmarks/fault_cases.py [--timeout 120]

Prints one line per case, then the totals.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc

import sclatent as sl

CLEAR = (ValueError, TypeError, OSError)
TINY = {"epochs": 1, "progress": False, "batch_size": 32}


class Hang(Exception):
    """A case ran past its time limit."""


def data() -> dict[str, ad.AnnData]:
    """Counts (bundled PBMC) and a processed set (scanpy's pbmc68k_reduced)."""
    counts = sl.datasets.pbmc_4k()[:300, :200].copy()
    reduced = sc.datasets.pbmc68k_reduced()
    reduced.obs["dose"] = np.random.default_rng(0).uniform(size=reduced.n_obs)
    return {"counts": counts, "reduced": reduced}


def digest_anndata(adata: ad.AnnData) -> str:
    h = hashlib.sha256()
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(repr((adata.shape, list(adata.obs), sorted(adata.obsm), sorted(adata.uns))).encode())
    return h.hexdigest()


def digest_file(path: Path) -> str | None:
    if not path.exists():
        return None
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.rglob("*")))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def python_cases(sets: dict[str, ad.AnnData]) -> list[tuple[str, str, Callable[[ad.AnnData], object]]]:
    """(name, data set, call) for the Python API."""
    counts = {"likelihood": "nb", **TINY}
    cases = []
    bad_model_args = [
        {"n_latent": 0},
        {"n_latent": -1},
        {"n_latent": 2.5},
        {"hidden": (0,)},
        {"hidden": "16"},
        {"hidden": ()},
        {"epochs": 1.5},
        {"epochs": 0},
        {"batch_size": 32.5},
        {"batch_size": 1},
        {"dropout": -0.1},
        {"dropout": 1.0},
        {"lr": 0},
        {"lr": "fast"},
        {"kl_warmup": -5},
        {"patience": 0},
        {"validation_fraction": 1.0},
        {"validation_fraction": 0},
        {"random_state": "0"},
        {"random_state": -1},
        {"device": "gpu"},
        {"device": 3},
        {"progress": "yes"},
        {"likelihood": "binomial"},
        {"prior": "vamp"},
        {"prior": "mixture", "n_components": 2.7},
        {"prior": "mixture", "n_components": 1},
        {"n_components": 4},
        {"labels_key": "cell_type"},
        {"prior": "mixture", "labels_key": "missing"},
        {"batch_key": "missing"},
        {"layer": "missing"},
        {"use_rep": "missing", "likelihood": "gaussian"},
        {"key_added": 123},
        {"key_added": "my/key"},
        {"key_added": ""},
        {"copy": 1},
    ]
    for kwargs in bad_model_args:
        cases.append((f"tl.scvae {kwargs}", "counts", lambda a, k=kwargs: sl.tl.scvae(a, **{**counts, **k})))
    good_random_states = [None, np.int64(0), np.random.default_rng(0), np.random.RandomState(0)]
    for state in good_random_states:
        name = f"tl.scvae random_state={type(state).__name__}"
        cases.append((name, "counts", lambda a, s=state: sl.tl.scvae(a, **counts, random_state=s)))
    cases += [
        ("tl.scvae on processed data", "reduced", lambda a: sl.tl.scvae(a, **counts)),
        (
            "tl.scvae batch_key=continuous",
            "reduced",
            lambda a: sl.tl.scvae(a, likelihood="gaussian", batch_key="dose", **TINY),
        ),
        ("tl.scvae adata=list", "counts", lambda a: sl.tl.scvae([a], **counts)),
        ("tl.scvae adata=None", "counts", lambda a: sl.tl.scvae(None, **counts)),
        (
            "tl.scvae 0 genes gaussian",
            "counts",
            lambda a: sl.tl.scvae(a[:, :0].copy(), likelihood="gaussian", **TINY),
        ),
        ("tl.scvae 0 cells", "counts", lambda a: sl.tl.scvae(a[:0].copy(), **counts)),
        ("tl.scvae NaN", "reduced", lambda a: sl.tl.scvae(_poisoned(a), likelihood="gaussian", **TINY)),
        ("tl.scvae view", "counts", lambda a: sl.tl.scvae(a[:200], **counts, copy=True)),
        ("tl.scvae float16", "counts", lambda a: sl.tl.scvae(_as(a, np.float16), **counts, copy=True)),
        ("tl.scvae bool", "counts", lambda a: sl.tl.scvae(_as(a, bool), **counts, copy=True)),
        (
            "tl.scvae labels one class",
            "counts",
            lambda a: sl.tl.scvae(_labelled(a, 1), prior="mixture", labels_key="lab", **counts),
        ),
        (
            "tl.scvae labels all missing",
            "counts",
            lambda a: sl.tl.scvae(_labelled(a, 0), prior="mixture", labels_key="lab", **counts),
        ),
        ("tl.groupenc n_latent=0", "reduced", lambda a: sl.tl.groupenc(a, n_latent=0, **TINY)),
        ("tl.groupenc gamma=2", "reduced", lambda a: sl.tl.groupenc(a, gamma=2, **TINY)),
        ("tl.groupenc gamma=4.5", "reduced", lambda a: sl.tl.groupenc(a, gamma=4.5, **TINY)),
        ("tl.groupenc gamma > batch_size", "reduced", lambda a: sl.tl.groupenc(a, gamma=64, **TINY)),
        ("tl.groupenc kl_weight=-1", "reduced", lambda a: sl.tl.groupenc(a, kl_weight=-1, **TINY)),
        ("tl.groupenc local_weight=-1", "reduced", lambda a: sl.tl.groupenc(a, local_weight=-1, **TINY)),
        (
            "tl.groupenc n_neighbors >= n_obs",
            "reduced",
            lambda a: sl.tl.groupenc(a, local_weight=1, n_neighbors=a.n_obs, **TINY),
        ),
        ("tl.groupenc local good", "reduced", lambda a: sl.tl.groupenc(a, local_weight=1, **TINY, copy=True)),
        ("tl.groupenc too few cells", "reduced", lambda a: sl.tl.groupenc(a[:20].copy(), **TINY)),
        ("tl.groupenc use_rep missing", "reduced", lambda a: sl.tl.groupenc(a, use_rep="X_nope", **TINY)),
        ("tl.groupenc good", "reduced", lambda a: sl.tl.groupenc(a, **TINY, copy=True)),
        (
            "tl.ae_sampling icrst without labels",
            "reduced",
            lambda a: sl.tl.ae_sampling(a, use_rep="X_pca", **TINY),
        ),
        ("tl.ae_sampling mode=abc", "reduced", lambda a: sl.tl.ae_sampling(a, mode="abc", **TINY)),
        ("tl.ae_sampling p=1.5", "reduced", lambda a: sl.tl.ae_sampling(a, mode="trst", p=1.5, **TINY)),
        (
            "tl.ae_sampling loss=nb on scaled",
            "reduced",
            lambda a: sl.tl.ae_sampling(a, mode="trst", loss="nb", **TINY),
        ),
        (
            "tl.ae_sampling labels missing",
            "reduced",
            lambda a: sl.tl.ae_sampling(a, labels_key="nope", **TINY),
        ),
        (
            "tl.ae_sampling good",
            "reduced",
            lambda a: sl.tl.ae_sampling(a, labels_key="bulk_labels", use_rep="X_pca", **TINY, copy=True),
        ),
        ("tl.rnx basis=[]", "reduced", lambda a: sl.tl.rnx(a, basis=[])),
        ("tl.rnx basis missing", "reduced", lambda a: sl.tl.rnx(a, basis="tsne")),
        ("tl.rnx basis=5", "reduced", lambda a: sl.tl.rnx(a, basis=5)),
        ("tl.rnx n_ref=100.5", "reduced", lambda a: sl.tl.rnx(a, "umap", n_ref=100.5)),
        ("tl.rnx n_ref=1", "reduced", lambda a: sl.tl.rnx(a, "umap", n_ref=1)),
        ("tl.rnx key_added=a/b", "reduced", lambda a: sl.tl.rnx(a, "umap", key_added="a/b")),
        ("tl.rnx uns[rnx] not a dict", "reduced", lambda a: sl.tl.rnx(_with_uns(a, "rnx", "x"), "umap")),
        ("tl.rnx adata=list", "reduced", lambda a: sl.tl.rnx([a], "umap")),
        ("tl.rnx use_rep missing", "reduced", lambda a: sl.tl.rnx(a, "umap", use_rep="X_nope")),
        ("tl.rnx 3 cells", "reduced", lambda a: sl.tl.rnx(a[:3].copy(), "umap")),
        ("tl.rnx device=tpu", "reduced", lambda a: sl.tl.rnx(a, "umap", device="tpu")),
        (
            "tl.rnx random_state=Generator",
            "reduced",
            lambda a: sl.tl.rnx(a, "umap", n_ref=50, random_state=np.random.default_rng(0), copy=True),
        ),
        ("tl.rnx good", "reduced", lambda a: sl.tl.rnx(a, "umap", copy=True)),
        (
            "tl.latent_accuracy classifiers='knn'",
            "reduced",
            lambda a: sl.tl.latent_accuracy(a, "umap", "bulk_labels", classifiers="knn", copy=True),
        ),
        (
            "tl.latent_accuracy classifier unknown",
            "reduced",
            lambda a: sl.tl.latent_accuracy(a, "umap", "bulk_labels", classifiers=["tree"]),
        ),
        (
            "tl.latent_accuracy test_size=1",
            "reduced",
            lambda a: sl.tl.latent_accuracy(a, "umap", "bulk_labels", test_size=1.0),
        ),
        ("tl.latent_accuracy labels missing", "reduced", lambda a: sl.tl.latent_accuracy(a, "umap", "nope")),
        ("pl.rnx missing", "reduced", lambda a: sl.pl.rnx(a, show=False)),
        ("settings.disk_block_rows=0", "reduced", lambda a: setattr(sl.settings, "disk_block_rows", 0)),
        (
            "settings.distributed_timeout=-1",
            "reduced",
            lambda a: setattr(sl.settings, "distributed_timeout", -1),
        ),
    ]
    return cases


def _poisoned(adata: ad.AnnData) -> ad.AnnData:
    out = adata.copy()
    out.X[0, 0] = np.nan
    return out


def _as(adata: ad.AnnData, dtype: type) -> ad.AnnData:
    out = adata.copy()
    out.X = out.X.toarray().astype(dtype)  # SciPy has no float16 sparse matrices
    return out


def _labelled(adata: ad.AnnData, n_classes: int) -> ad.AnnData:
    out = adata.copy()
    out.obs["lab"] = np.where(np.arange(out.n_obs) % 5 == 0, "T" if n_classes else None, None)
    return out


def _with_uns(adata: ad.AnnData, key: str, value: object) -> ad.AnnData:
    out = adata.copy()
    out.uns[key] = value
    return out


def model_file_cases(folder: Path, counts: ad.AnnData) -> list[tuple[str, Callable[[], object], list[Path]]]:
    """(name, call, files that must not change) for save / load."""
    model = sl.models.SCVAE(
        likelihood="nb",
        n_latent=np.int64(3),
        hidden=np.array([16]),
        lr=np.float32(1e-3),
        epochs=1,
        progress=False,
    )
    model.fit(counts)
    existing = folder / "existing.pt"
    model.save(existing)
    random_bytes = folder / "random.pt"
    random_bytes.write_bytes(os.urandom(2000))
    text = folder / "notes.txt"
    text.write_text("hello")

    def numpy_params_round_trip():
        path = folder / "numpy_params.pt"
        model.save(path, overwrite=True)
        return sl.models.load(path)

    def interrupted_refit():
        from sclatent.models import _base

        saved, before = _base.train, model.transform(counts)

        def interrupt(*args, **kwargs):
            raise KeyboardInterrupt

        _base.train = interrupt
        try:
            model.fit(counts[:, :150].copy())  # other genes
        except KeyboardInterrupt:
            pass
        finally:
            _base.train = saved
        if not np.array_equal(model.transform(counts), before):
            raise RuntimeError("an interrupted refit changed the model")
        return model

    return [
        ("save to a directory", lambda: model.save(folder), [existing]),
        ("save over an existing file", lambda: model.save(existing), [existing]),
        ("save into a missing directory", lambda: model.save(folder / "nope" / "m.pt"), []),
        ("save NumPy-typed params, load", numpy_params_round_trip, [existing]),
        ("load random bytes", lambda: sl.models.load(random_bytes), [random_bytes]),
        ("load a text file", lambda: sl.models.load(text), [text]),
        ("load a directory", lambda: sl.models.load(folder), []),
        ("load a missing file", lambda: sl.models.load(folder / "missing.pt"), []),
        ("interrupted refit keeps the model", interrupted_refit, [existing]),
    ]


def cli_cases(folder: Path, source: Path) -> list[tuple[str, list[str], dict, list[Path], int | None]]:
    """(name, argv, environment, files that must not change, file-size limit) for the CLI."""
    out = folder / "out.h5ad"
    small = ["--epochs", "1", "--likelihood", "nb", "--no-progress", "--batch-size", "32"]
    size = source.stat().st_size
    port = _free_port()
    peerless = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return [
        ("scvae X X, disk full", ["scvae", str(source), str(source), *small], {}, [source], size // 2),
        (
            "scvae X X --backed, disk full",
            ["scvae", str(source), str(source), *small, "--backed"],
            {},
            [source],
            size // 2,
        ),
        (
            "scvae X X --key-added a/b",
            ["scvae", str(source), str(source), *small, "--key-added", "a/b"],
            {},
            [source],
            None,
        ),
        (
            "scvae new output, disk full",
            ["scvae", str(source), str(out), *small],
            {},
            [source, out],
            size // 2,
        ),
        (
            "scvae --backed into an existing output",
            ["scvae", str(source), str(folder / "existing.h5ad"), *small, "--backed"],
            {},
            [source],
            None,
        ),
        (
            "scvae missing output directory",
            ["scvae", str(source), str(folder / "no" / "o.h5ad"), *small],
            {},
            [source],
            None,
        ),
        ("scvae output is a directory", ["scvae", str(source), str(folder), *small], {}, [source], None),
        ("scvae output out.csv", ["scvae", str(source), str(folder / "out.csv"), *small], {}, [source], None),
        ("scvae input not h5ad", ["scvae", str(folder / "notes.h5ad"), str(out), *small], {}, [], None),
        ("scvae --hidden 0", ["scvae", str(source), str(out), *small, "--hidden", "0"], {}, [source], None),
        (
            "scvae --n-latent 0",
            ["scvae", str(source), str(out), *small, "--n-latent", "0"],
            {},
            [source],
            None,
        ),
        (
            "rnx --plot out.txt",
            ["rnx", str(source), str(out), "--plot", str(folder / "p.txt")],
            {},
            [source],
            None,
        ),
        ("WORLD_SIZE=abc", ["scvae", str(source), str(out), *small], {"WORLD_SIZE": "abc"}, [source], None),
        ("WORLD_SIZE=2 RANK=0, no peer", ["scvae", str(source), str(out), *small], peerless, [source], None),
        (
            "RANK >= WORLD_SIZE",
            ["scvae", str(source), str(out), *small],
            {**peerless, "RANK": "2"},
            [source],
            None,
        ),
        (
            "RANK=1, unreachable master",
            ["scvae", str(source), str(out), *small],
            {**peerless, "RANK": "1", "MASTER_ADDR": "10.255.255.1"},
            [source],
            None,
        ),
        ("scvae good run", ["scvae", str(source), str(folder / "copy.h5ad"), *small], {}, [source], None),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_python(call: Callable[[], object], timeout: int) -> tuple[str, str]:
    def alarm(signum, frame):
        raise Hang

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout)
    try:
        out = call()
    except Hang:
        return "hang", ""
    except CLEAR as err:
        message = str(err)
        return ("clear error" if "\n" not in message.strip() else "unclear error"), message
    except Exception as err:
        return "crash", f"{type(err).__name__}: {err}"
    finally:
        signal.alarm(0)
    if isinstance(out, ad.AnnData):
        for value in out.obsm.values():
            if np.issubdtype(np.asarray(value).dtype, np.number) and not np.isfinite(value).all():
                return "crash", "non-finite output"
    return "success", ""


def run_cli(argv: list[str], env: dict, limit: int | None, timeout: int) -> tuple[str, str]:
    def limit_size():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    environment = {**os.environ, "OMP_NUM_THREADS": "1", "SCLATENT_DISTRIBUTED_TIMEOUT": "5", **env}
    environment["TORCH_CPP_LOG_LEVEL"] = "FATAL"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sclatent", *argv],
            preexec_fn=limit_size,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
        )
    except subprocess.TimeoutExpired:
        return "hang", ""
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if done.returncode == 0:
        return "success", ""
    if done.returncode == 2 and "Traceback" not in done.stderr and ": error: " in last:
        return "clear error", last
    return "crash", f"exit {done.returncode}: {done.stderr[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=120)
    args = parser.parse_args()
    sc.settings.verbosity = 0
    sets = data()
    results: list[tuple[str, str, str, bool]] = []

    def record(name: str, outcome: str, message: str, changed: bool) -> None:
        results.append((name, outcome, message, changed))
        flag = " FILES CHANGED" if changed else ""
        print(f"{outcome:13s} {name}{flag}  {message[:110]!r}", flush=True)

    for name, key, call in python_cases(sets):
        adata = sets[key]
        before = digest_anndata(adata)
        start = time.perf_counter()
        outcome, message = run_python(lambda c=call, a=adata: c(a), args.timeout)
        changed = digest_anndata(adata) != before and outcome != "success"
        record(f"{name} ({time.perf_counter() - start:.1f} s)", outcome, message, changed)
        sets[key] = adata if not changed else data()[key]

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        for name, call, files in model_file_cases(folder, sets["counts"]):
            before = [digest_file(f) for f in files]
            outcome, message = run_python(call, args.timeout)
            record(name, outcome, message, [digest_file(f) for f in files] != before)

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        source = folder / "X.h5ad"
        sets["counts"].write_h5ad(source)
        sets["counts"][:50].copy().write_h5ad(folder / "existing.h5ad")
        (folder / "notes.h5ad").write_text("not an AnnData")
        for name, argv, env, files, limit in cli_cases(folder, source):
            before = [digest_file(f) for f in files]
            outcome, message = run_cli(argv, env, limit, args.timeout)
            leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
            changed = [digest_file(f) for f in files] != before or bool(leftovers)
            record(f"sclatent {name}", outcome, message, changed)
        existing = ad.read_h5ad(folder / "existing.h5ad")
        if existing.n_obs != sets["counts"].n_obs:
            record("--backed output readable with all cells", "crash", f"{existing.n_obs} cells", True)

    counts = Counter(outcome for _, outcome, _, _ in results)
    changed = sum(changed for *_, changed in results)
    print(
        f"\n{len(results)} cases: {counts['clear error']} clear errors, {counts['success']} correct "
        f"successes, {counts['unclear error']} unclear, {counts['crash']} crashes, {counts['hang']} hangs, "
        f"{changed} with files or AnnData changed"
    )


if __name__ == "__main__":
    main()
