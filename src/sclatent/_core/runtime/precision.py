"""Mixed precision of the training step (``sl.settings.precision``)."""

from __future__ import annotations

import contextlib
import functools

import torch

from ..._logging import logger

#: Precisions of the network layers during training.
PRECISIONS = ("float32", "bfloat16")

#: ``sl.settings.precision``: "float32" (default) or "bfloat16", the layers' matrix products under
#: ``torch.autocast`` while every likelihood, KL and group-loss term stays in float32 (the network
#: heads return float32). Validation, embeddings and the reported ELBO are always float32.
DEFAULTS: dict[str, str] = {"precision": "float32"}


def network_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a training step on ``device`` under the current setting.

    A CUDA device without native bfloat16 (before Ampere) trains in float32, with one warning. The
    cache of cast weights is off, as a CUDA graph's capture requires (a training step uses each
    weight once anyway).
    """
    if DEFAULTS["precision"] != "bfloat16" or (device.type == "cuda" and not _cuda_bf16(device.index)):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 when autocast made it half precision; float32 and float64 as they are."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor


@functools.cache
def _cuda_bf16(index: int | None) -> bool:
    with torch.cuda.device(index):
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
        if not supported:
            logger.warning("%s has no native bfloat16; training in float32.", torch.cuda.get_device_name())
    return supported
