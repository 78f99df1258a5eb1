"""Device selection and seeding."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a user's device request into a usable :class:`torch.device`.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    The device, checked to exist on this machine.
    """
    if isinstance(device, str) and device in ("auto", "cuda") and _local_cuda_rank() is not None:
        return torch.device("cuda", _local_cuda_rank())  # data-parallel: one GPU per process
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        msg = f"device={device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        raise ValueError(msg) from err
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        msg = f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        raise ValueError(msg)
    if not torch.cuda.is_available():
        msg = (
            f"device={device!r} was requested but PyTorch sees no CUDA device on this machine; "
            "use device='cpu' (or 'auto'), or install a CUDA build of PyTorch."
        )
        raise ValueError(msg)
    index = 0 if resolved.index is None else resolved.index
    if index >= torch.cuda.device_count():
        msg = (
            f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} "
            f"CUDA device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}."
        )
        raise ValueError(msg)
    return torch.device("cuda", index)


def _local_cuda_rank() -> int | None:
    """The GPU of this process in a torch.distributed run with CUDA (torchrun's LOCAL_RANK), else None."""
    import torch.distributed as dist

    if not (torch.cuda.is_available() and dist.is_available() and dist.is_initialized()):
        return None
    return int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch (all devices) and return a NumPy generator.

    Parameters
    ----------
    seed
        The random state.

    Returns
    -------
    A generator seeded with ``seed``, for the caller's own draws (splits, shuffles).
    """
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with PyTorch's global RNG seeded by ``seed``, restoring the outer RNG state after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
