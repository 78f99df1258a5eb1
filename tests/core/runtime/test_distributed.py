"""Data-parallel training with torch.distributed (gloo on CPU), launched by torchrun."""

import os
import subprocess
import sys

import anndata as ad
import pytest

ARGS = ["--likelihood", "nb", "--epochs", "8", "--batch-size", "64", "--no-progress", "--threads", "1"]


def cli(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "sclatent"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += [f"--nproc-per-node={processes}", "-m", "sclatent"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, *args], capture_output=True, text=True, env=env, timeout=600)


def test_two_gloo_processes_train_one_model_as_good_as_one_process(brain, tmp_path):
    source = tmp_path / "cells.h5ad"
    brain[:3000].copy().write_h5ad(source)
    single, double = tmp_path / "single.h5ad", tmp_path / "double.h5ad"
    done = cli("scvae", str(source), str(single), *ARGS)
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli("scvae", str(source), str(double), *ARGS, processes=2)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = ad.read_h5ad(single).uns["scvae"], ad.read_h5ad(double).uns["scvae"]
    elbo_one, elbo_two = one["history"]["val_elbo"][-1], two["history"]["val_elbo"][-1]
    print(f"held-out ELBO: 1 process {elbo_one:.2f}, 2 processes {elbo_two:.2f}")
    assert abs(elbo_two - elbo_one) <= 0.02 * abs(elbo_one), (elbo_one, elbo_two)
    assert len(two["history"]["val_elbo"]) == 8


def test_a_failing_rank_stops_the_run_without_output(tmp_path):
    out = tmp_path / "out.h5ad"
    done = cli("scvae", str(tmp_path / "missing.h5ad"), str(out), *ARGS, processes=2)
    assert done.returncode != 0 and not out.exists()


@pytest.mark.parametrize("world_size", [2, 3])
def test_sampler_shards_are_disjoint_and_equal(world_size):
    import numpy as np

    from sclatent._core.data import MinibatchSampler

    shards = []
    for rank in range(world_size):
        sampler = MinibatchSampler(
            np.arange(100),
            10,
            shuffle=True,
            drop_last=True,
            generator=np.random.default_rng(0),
            rank=rank,
            world_size=world_size,
        )
        shards.append(np.concatenate([b.numpy() for b in sampler]))
    assert len({len(s) for s in shards}) == 1
    assert len(np.unique(np.concatenate(shards))) == sum(len(s) for s in shards)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not an integer"),
        ({"WORLD_SIZE": "2"}, "each process needs a RANK in 0..1"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2: each process needs a RANK in 0..1"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "MASTER_ADDR and MASTER_PORT unset"),
        ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, "within 2 s"),  # no peer
    ],
)
def test_bad_environment_or_missing_peer_fails_fast(monkeypatch, env, message):
    import time

    from sclatent._core.runtime.distributed import DistributedSetupError, init_from_env

    for name in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**env, "MASTER_PORT": str(free_port())}.items():
        if name != "MASTER_PORT" or "MASTER_ADDR" in env:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCLATENT_DISTRIBUTED_TIMEOUT", "2")
    start = time.perf_counter()
    with pytest.raises(DistributedSetupError, match=message):
        init_from_env()
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(("device", "backend"), [("cpu", "gloo"), ("auto", "nccl")])
def test_the_backend_follows_the_training_device(monkeypatch, device, backend):
    # on a machine with a GPU, CPU training (torchrun ... --device cpu) still needs gloo: NCCL moves
    # CUDA tensors only
    import torch.distributed as dist

    from sclatent._core.runtime import distributed

    env = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    joined = []
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(distributed.torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: joined.append(backend))
    assert distributed.init_from_env(device)
    assert joined == [backend]


def test_cli_reports_a_missing_peer_in_one_line(tmp_path):
    env = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "sclatent", "scvae", "in.h5ad", str(tmp_path / "out.h5ad")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "SCLATENT_DISTRIBUTED_TIMEOUT": "2", "TORCH_CPP_LOG_LEVEL": "FATAL"},
    )
    assert done.returncode == 2
    assert "Process 1 of 2 could not join the process group" in done.stderr.strip().splitlines()[-1]
