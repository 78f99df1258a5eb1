"""Data-parallel training with PyTorch's own engine (``torch.distributed``, launched by torchrun).

When a process group is initialised (``torchrun`` + :func:`init_from_env`, or the user's own
``dist.init_process_group``), every rank trains the same model on its shard of the training cells:
the module is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which all-reduces the
gradients, and the epoch's losses and validation metrics are all-reduced so that every rank takes the
same early-stopping decision. Without a process group everything here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

#: How long a rank waits for the others before failing, so that one crashed rank stops the rest.
TIMEOUT = timedelta(minutes=10)


def rank_and_size() -> tuple[int, int]:
    """The rank of this process and the number of processes (0 and 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1).

    Uses NCCL when CUDA is available and gloo otherwise. Returns whether a group is active.
    """
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=TIMEOUT)
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
