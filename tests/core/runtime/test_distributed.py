"""Data-parallel training with torch.distributed (gloo on CPU), launched by torchrun."""

import json
import os
import subprocess
import sys
import time

import anndata as ad
import numpy as np
import pytest

ARGS = ["--likelihood", "nb", "--epochs", "8", "--batch-size", "64", "--no-progress", "--threads", "1"]


def cli(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "sclatent"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += [f"--nproc-per-node={processes}", "-m", "sclatent"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, *args], capture_output=True, text=True, env=env, timeout=600)


#: A torchrun job: the command line, with small blocks on disk, logging the bytes each rank's training
#: passes read; the rank named by KILL_RANK kills itself after its first epoch.
JOB = """
import json, os, signal, sys
import sclatent as sl
from sclatent._core.data import disk
from sclatent.cli import main

sl.settings.disk_block_rows, sl.settings.disk_buffer_blocks = 100, 3
rank, log = os.environ.get("RANK", "0"), []
passes = disk.BlockShuffleSampler.__iter__

def logged(self):
    before = self.source.bytes_read
    yield from passes(self)
    log.append(self.source.bytes_read - before)
    with open(f"{sys.argv[1]}.bytes_{rank}.json", "w") as f:
        json.dump(log, f)
    if os.environ.get("KILL_RANK") == rank:
        os.kill(os.getpid(), signal.SIGKILL)

disk.BlockShuffleSampler.__iter__ = logged
sys.exit(main(sys.argv[2:]))
"""


def two_nodes(job, tag, args, **env):
    """Two torchrun launchers, as on two nodes, one process each, meeting at a c10d rendezvous."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
    launchers = [
        subprocess.Popen(
            [*launcher, "--node-rank", str(node), *rendezvous, "--max-restarts", "0", str(job), tag, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for node in (0, 1)
    ]
    return [(launcher.communicate(timeout=600)[0], launcher.returncode) for launcher in launchers]


@pytest.fixture
def job(brain, tmp_path):
    brain[:3000].copy().write_h5ad(tmp_path / "cells.h5ad")
    (tmp_path / "job.py").write_text(JOB)
    return tmp_path / "job.py"


def test_two_nodes_read_the_file_once_per_epoch_and_train_as_well_as_one(job, tmp_path):
    cells, single, double = (str(tmp_path / f) for f in ("cells.h5ad", "single.h5ad", "double.h5ad"))
    args = ["scvae", cells, "--backed", *ARGS]
    done = subprocess.run(
        [sys.executable, str(job), str(tmp_path / "one"), *args, single],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for output, code in two_nodes(job, str(tmp_path / "two"), [*args, double]):
        assert code == 0, output[-2000:]
    one, two = ad.read_h5ad(single).uns["scvae"], ad.read_h5ad(double).uns["scvae"]
    elbo_one, elbo_two = one["history"]["val_elbo"][-1], two["history"]["val_elbo"][-1]
    print(f"held-out ELBO: 1 process {elbo_one:.2f}, 2 nodes {elbo_two:.2f}")
    assert abs(elbo_two - elbo_one) <= 0.01 * abs(elbo_one), (elbo_one, elbo_two)
    assert len(two["history"]["val_elbo"]) == 8
    # each rank reads its own run of blocks: the two together read what one process reads
    alone = np.array(json.loads((tmp_path / "one.bytes_0.json").read_text()))
    ranks = [np.array(json.loads((tmp_path / f"two.bytes_{r}.json").read_text())) for r in (0, 1)]
    together = ranks[0] + ranks[1]
    print("bytes per epoch:", alone.tolist(), "vs", together.tolist())
    assert (np.abs(together / alone - 1) <= 0.05).all() and (ranks[0] <= 0.55 * alone).all()


def test_a_rank_killed_mid_run_stops_the_other_with_a_clear_error(job, tmp_path):
    out = tmp_path / "out.h5ad"
    args = ["scvae", str(tmp_path / "cells.h5ad"), "--backed", *ARGS, str(out)]
    start = time.monotonic()
    results = two_nodes(job, str(tmp_path / "killed"), args, KILL_RANK="1", SCLATENT_DISTRIBUTED_TIMEOUT="30")
    assert time.monotonic() - start < 30 + 60  # the timeout, and the start-up of two launchers
    assert all(code != 0 for _, code in results) and not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no temporary file either
    output = "\n".join(text for text, _ in results)
    assert "scvae: error: Process 0 of 2 lost the other processes in epoch 1" in output, output[-3000:]
    assert "Nothing was written" in output


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
