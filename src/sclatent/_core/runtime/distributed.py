"""Data-parallel training with PyTorch's own engine (``torch.distributed``, launched by torchrun).

When a process group is initialised (``torchrun`` + :func:`init_from_env`, or the user's own
``dist.init_process_group``), every rank trains the same model on its shard of the training cells:
the module is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which all-reduces the
gradients, and the epoch's losses and validation metrics are all-reduced so that every rank takes the
same early-stopping decision. Without a process group everything here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from .device import resolve_device

#: Seconds a rank waits for the others, at start-up and at every step, before failing: a missing or
#: crashed peer stops the rest with an error instead of a hang (``sl.settings.distributed_timeout``;
#: the environment variable ``SCLATENT_DISTRIBUTED_TIMEOUT`` sets the default, e.g. for the CLI).
DEFAULTS = {"timeout_s": 120.0}


class DistributedSetupError(RuntimeError):
    """The environment describes a process group this process cannot join."""


class PeerLostError(RuntimeError):
    """Another process of the group stopped, or did not answer within the timeout, during training."""


@contextmanager
def peers_checked(where: Callable[[], str]) -> Iterator[None]:
    """Turn a failed exchange with the other processes into a :class:`PeerLostError` naming the cause.

    When a peer crashes, is killed or runs out of memory, the collective operations of the others
    fail (at once when its connection closes, else after :func:`timeout_seconds`) with a backend
    message that names neither; this names them, and where the run was (``where()``, e.g. the epoch).
    """
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if not (isinstance(err, dist.DistError) or any(k in text for k in ("gloo", "NCCL", "c10d"))):
            raise
        rank, world_size = rank_and_size()
        first_line = (text.strip().splitlines() or [type(err).__name__])[0][:200]
        msg = (
            f"Process {rank} of {world_size} lost the other processes in {where()} ({first_line}). One of "
            "them stopped (crashed, was killed or ran out of memory: see its log) or did not answer within "
            f"{timeout_seconds():g} s (sl.settings.distributed_timeout / SCLATENT_DISTRIBUTED_TIMEOUT). "
            "Nothing was written."
        )
        raise PeerLostError(msg) from err


def _env_int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        msg = f"{name}={text!r} is not an integer (torchrun sets it; unset it to run alone)."
        raise DistributedSetupError(msg) from None


def timeout_seconds() -> float:
    """The wait for other ranks: the setting, or ``SCLATENT_DISTRIBUTED_TIMEOUT`` when set."""
    text = os.environ.get("SCLATENT_DISTRIBUTED_TIMEOUT")
    if text is None:
        return DEFAULTS["timeout_s"]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        msg = f"SCLATENT_DISTRIBUTED_TIMEOUT={text!r}: pass a positive number of seconds."
        raise DistributedSetupError(msg)
    return value


def rank_and_size() -> tuple[int, int]:
    """The rank of this process and the number of processes (0 and 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str | torch.device = "auto") -> bool:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1).

    ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are checked before any rendezvous;
    a peer that does not arrive within :func:`timeout_seconds` gives a :class:`DistributedSetupError`.
    Uses NCCL when the processes train on CUDA (``device``, resolved as the models resolve it) and
    gloo otherwise, also on a machine with a GPU. Returns whether a group is active.
    """
    if dist.is_initialized():
        return True
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        msg = f"WORLD_SIZE={world_size} in the environment: the number of processes must be >= 1."
        raise DistributedSetupError(msg)
    if world_size == 1:
        return False
    rank = _env_int("RANK", None)
    if rank is None or not 0 <= rank < world_size:
        msg = (
            f"WORLD_SIZE={world_size} but RANK={os.environ.get('RANK')}: each process needs a RANK "
            f"in 0..{world_size - 1}. Launch with torchrun, which sets both."
        )
        raise DistributedSetupError(msg)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        msg = f"WORLD_SIZE={world_size} but {' and '.join(missing)} unset; launch with torchrun."
        raise DistributedSetupError(msg)
    address = f"{os.environ['MASTER_ADDR']}:{_env_int('MASTER_PORT', None)}"
    backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0) % torch.cuda.device_count())
    timeout = timeout_seconds()
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    except (RuntimeError, ValueError, OSError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        msg = (
            f"Process {rank} of {world_size} could not join the process group at {address} within "
            f"{timeout:g} s ({first_line}). Start all {world_size} processes (torchrun --nproc-per-node "
            f"{world_size} ...), check that MASTER_ADDR is reachable, or raise the wait with "
            "sl.settings.distributed_timeout / SCLATENT_DISTRIBUTED_TIMEOUT."
        )
        raise DistributedSetupError(msg) from err
    return True


class _LossForward(nn.Module):
    """Makes ``module.loss`` the forward pass, so that DistributedDataParallel sees the step."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict[str, torch.Tensor], kl_weight: float) -> dict[str, torch.Tensor]:
        return self.module.loss(batch, kl_weight)


def loss_step(module: nn.Module) -> Callable[[dict[str, torch.Tensor], float], dict[str, torch.Tensor]]:
    """``module.loss``, or with a process group its DistributedDataParallel version."""
    if rank_and_size()[1] == 1:
        return module.loss
    device = next(module.parameters()).device
    device_ids = [device] if device.type == "cuda" else None
    # find_unused_parameters: some losses leave a parameter out (e.g. the Gaussian log-variance of
    # the decoder under a mean-squared-error loss)
    return nn.parallel.DistributedDataParallel(
        _LossForward(module), device_ids=device_ids, find_unused_parameters=True
    )


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks (the tensor itself without a process group)."""
    if rank_and_size()[1] > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
