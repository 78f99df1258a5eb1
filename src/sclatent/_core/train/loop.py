"""The one training loop shared by every model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data import CellData, MinibatchSampler
from ..runtime.distributed import all_reduce_sum, loss_step, peers_checked, rank_and_size
from ..runtime.precision import network_autocast
from .compilation import compile_loss, should_compile
from .cuda_graphs import GraphedSteps, should_capture


class TrainingDivergedError(RuntimeError):
    """Raised when the loss becomes NaN or infinite; no result is written."""


@dataclass
class TrainingConfig:
    """How to train.

    Parameters
    ----------
    epochs
        Passes over the training cells.
    batch_size
        Cells per minibatch.
    lr
        Adam learning rate.
    weight_decay
        Adam weight decay.
    kl_warmup
        Epochs over which the KL weight rises linearly from 0 to 1 (0: no warm-up).
    hold_epochs
        Epochs before early stopping may start (e.g. a warm start under another objective).
    early_stopping
        Stop once the validation loss has not improved for ``patience`` epochs after warm-up and
        ``hold_epochs``, and restore the best weights.
    patience
        Epochs without improvement before stopping.
    grad_clip
        Maximal gradient norm (None: no clipping).
    progress
        Show a progress bar.
    description
        Label of the progress bar.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-6
    kl_warmup: int = 0
    hold_epochs: int = 0
    early_stopping: bool = True
    patience: int = 20
    grad_clip: float | None = 50.0
    progress: bool = True
    description: str = "training"


EpochHook = Callable[[int], dict[str, float] | None]


def train(
    module: nn.Module,
    data: CellData,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: TrainingConfig,
    rng: np.random.Generator,
    *,
    on_epoch_start: EpochHook | None = None,
) -> tuple[dict[str, list[float]], int]:
    """Fit ``module`` by Adam on minibatches of ``data`` and return the per-epoch history.

    ``module.loss(batch, kl_weight)`` must return a dict of scalar tensors with the objective under
    ``"loss"``; its other entries are averaged over the validation cells and recorded as
    ``"val_<name>"``. The validation loss is evaluated at full KL weight.

    Under ``torch.distributed`` (see :mod:`sclatent._core.runtime.distributed`) each rank steps on its shard
    of every epoch's shuffled training cells, ``batch_size / world_size`` cells per step (the global
    minibatch stays ``batch_size``), with gradients all-reduced; the recorded losses and metrics are
    the means over all ranks' cells, so every rank stops at the same epoch.

    Parameters
    ----------
    module
        The model, on the data's device.
    data
        Cells to draw minibatches from.
    train_idx, val_idx
        Training and validation cells.
    config
        Training settings.
    rng
        Source of the shuffles.
    on_epoch_start
        Called with the epoch number before each epoch; a returned dict is added to the history.

    Returns
    -------
    Per-epoch lists: ``train_loss``, ``val_loss`` and ``val_<term>`` for each term of the loss; and
    the epoch (0-based) whose weights the module keeps: the best held-out one with early stopping,
    else the last.
    """
    device = data.x.device
    rank, world_size = rank_and_size()
    # batch_size is the global minibatch: with N processes each steps on batch_size / N cells, so a
    # data-parallel run takes the same optimisation steps as a single process
    per_rank = config.batch_size // world_size
    if per_rank < 2:
        msg = (
            f"batch_size={config.batch_size} split over {world_size} processes leaves {per_rank} cell(s) "
            f"per process; batch normalisation needs 2. Pass batch_size >= {2 * world_size}."
        )
        raise ValueError(msg)
    sampler = data.x.sampler(train_idx, per_rank, rng, rank=rank, world_size=world_size)
    if len(sampler) == 0:
        msg = (
            f"{len(train_idx)} training cells cannot fill one batch of {per_rank} on each of "
            f"{world_size} processes; lower batch_size or use fewer processes."
        )
        raise ValueError(msg)
    step_loss = loss_step(module)
    compiled = should_compile(config.epochs * len(sampler), device)
    if compiled:
        step_loss = compile_loss(step_loss)
    graphed = should_capture(device, world_size, compiled)
    capture = graphed and device.type == "cuda"  # elsewhere the same steps on fixed inputs (tests)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True, capturable=capture
    )

    def one_step(batch: dict[str, torch.Tensor], kl_weight: float | torch.Tensor) -> torch.Tensor:
        return optimisation_step(step_loss, batch, kl_weight, optimizer, config.grad_clip)

    take_step = GraphedSteps(one_step, optimizer, capture=capture) if graphed else one_step
    warmup_steps = config.kl_warmup * len(sampler)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    best_loss, best_state, best_epoch, epochs_without_gain = math.inf, None, None, 0
    step = 0
    bar = progress_bar(range(config.epochs), desc=config.description, unit="epoch", show=config.progress)
    # a peer that fails mid-run makes the exchanges fail: say so, and in which epoch
    with peers_checked(lambda: f"epoch {len(history['train_loss']) + 1}"):
        for epoch in bar:
            if on_epoch_start is not None:
                for key, value in (on_epoch_start(epoch) or {}).items():
                    history.setdefault(key, []).append(value)
            module.train()
            total = torch.zeros((), device=device)
            n_batches = 0
            for rows in sampler:
                kl_weight = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
                total += take_step(data.batch(rows, positives=not (compiled or graphed)), kl_weight)
                step += 1
                n_batches += 1
            train_loss = all_reduce_sum(total).item() / (max(n_batches, 1) * world_size)
            _check_finite(train_loss, epoch, config)
            history["train_loss"].append(train_loss)
            if len(val_idx) == 0:
                bar.set_postfix(train_loss=f"{train_loss:.4g}")
                continue
            for key, value in evaluate(module, data, val_idx, config.batch_size).items():
                history.setdefault(f"val_{key}", []).append(value)
            val_loss = history["val_loss"][-1]
            _check_finite(val_loss, epoch, config)
            bar.set_postfix(train_loss=f"{train_loss:.4g}", val_loss=f"{val_loss:.4g}")
            if not config.early_stopping or step < warmup_steps or epoch < config.hold_epochs:
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, epochs_without_gain = val_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= config.patience:
                    break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history, len(history["train_loss"]) - 1 if best_epoch is None else best_epoch


def optimisation_step(
    step_loss: Callable[[dict[str, torch.Tensor], float], dict[str, torch.Tensor]],
    batch: dict[str, torch.Tensor],
    kl_weight: float | torch.Tensor,
    optimizer: torch.optim.Optimizer,
    grad_clip: float | None,
) -> torch.Tensor:
    """One Adam step on ``batch``; returns the detached loss without reading it on the host.

    The forward pass runs under ``sl.settings.precision``
    (:func:`~sclatent._core.runtime.precision.network_autocast`). Nothing here waits for a GPU, so
    the host queues the next step while the device runs this one, and a CUDA graph can record the
    step (:class:`~sclatent._core.train.cuda_graphs.GraphedSteps`).
    """
    device = batch["x"].device
    with network_autocast(device):
        loss = step_loss(batch, kl_weight)["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        # clip_grad_norm_ in two halves: a CPU reads the norm at no cost and skips the scaling
        # where it would multiply by 1; a GPU scales without waiting for the norm
        if device.type != "cpu" or not float(norm) + 1e-6 <= grad_clip:  # NaN scales, as there
            nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
    optimizer.step()
    return loss.detach()


def progress_bar(*args: object, show: bool = True, **kwargs: object) -> tqdm:
    """A tqdm bar: the notebook-aware one when shown, imported only then (it warns in some Jupyters)."""
    if not show:
        return tqdm(*args, disable=True, **kwargs)
    from tqdm.auto import tqdm as auto_tqdm

    return auto_tqdm(*args, **kwargs)


@torch.no_grad()
def evaluate(module: nn.Module, data: CellData, indices: np.ndarray, batch_size: int) -> dict[str, float]:
    """Cell-weighted means of every term of ``module.loss`` (at full KL weight) over ``indices``.

    Under ``torch.distributed`` each rank evaluates its share of the cells (``data.x.shard``: every
    ``world_size``-th cell in memory, the cells of its own blocks on disk) and the sums are
    all-reduced, so all ranks get the same values.
    """
    module.eval()
    rank, world_size = rank_and_size()
    # in cell order, so that an on-disk matrix is read block after block
    mine = data.x.shard(np.sort(indices), rank, world_size) if world_size > 1 else np.sort(indices)
    # a rank without cells still takes part in the all-reduce, with one cell weighted zero
    weight = 1.0 if len(mine) else 0.0
    sums: dict[str, torch.Tensor] = {}
    for rows in MinibatchSampler(mine if len(mine) else indices[:1], max(batch_size, 1024)):
        for key, value in module.loss(data.batch(rows, positives=True), 1.0).items():
            sums[key] = sums.get(key, 0.0) + value.detach() * (weight * len(rows))
    keys = sorted(sums)
    totals = torch.stack([torch.as_tensor(sums[k], device=data.x.device) for k in keys])
    totals = all_reduce_sum(totals) if world_size > 1 else totals
    return {key: value.item() / len(indices) for key, value in zip(keys, totals, strict=True)}


def _check_finite(value: float, epoch: int, config: TrainingConfig) -> None:
    if math.isfinite(value):
        return
    msg = (
        f"Training diverged in epoch {epoch + 1}: the loss became {value}. Nothing was written. "
        f"Lower the learning rate (lr={config.lr}), check the input for extreme values, or choose "
        "a likelihood that fits the data."
    )
    raise TrainingDivergedError(msg)


#: Cells from which a pass of :func:`predict` shows a progress bar (when asked to).
PROGRESS_CELLS = 100_000


@torch.no_grad()
def predict(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    data: CellData,
    batch_size: int = 1024,
    indices: np.ndarray | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """Apply ``fn`` to the cells ``indices`` of ``data`` (default all) in order; stack the results.

    With ``progress`` (a label), a pass over :data:`PROGRESS_CELLS` cells or more shows a bar.
    """
    indices = np.arange(len(data)) if indices is None else np.asarray(indices)
    batches = MinibatchSampler(indices, batch_size)
    shown = progress is not None and len(indices) >= PROGRESS_CELLS
    out = []
    with progress_bar(total=len(indices), desc=progress, unit="cell", unit_scale=True, show=shown) as bar:
        for rows in batches:
            out.append(fn(data.batch(rows)).float().cpu())
            bar.update(len(rows))
    return torch.cat(out).numpy()
