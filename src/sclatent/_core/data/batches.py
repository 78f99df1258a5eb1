"""Minibatches as the modules see them: the input rows and every per-cell tensor, gathered together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .disk import DiskRowSource
from .memory import RowSource


@dataclass
class CellData:
    """One cell-by-feature matrix and per-cell tensors, gathered together by cell index.

    Parameters
    ----------
    x
        The model input.
    obs
        Per-cell tensors (library size, batch index, labels, ...) of length ``len(x)``.
    """

    x: RowSource | DiskRowSource
    obs: Mapping[str, torch.Tensor] = field(default_factory=dict)
    #: Row of each cell's reconstruction target (None: no targets), on the host; models that
    #: reconstruct another cell than the input replace it between epochs.
    target_rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.obs = {key: value.to(self.x.device) for key, value in self.obs.items()}

    def __len__(self) -> int:
        return len(self.x)

    def cached(self, rows: np.ndarray) -> tuple[CellData, np.ndarray]:
        """The cells ``rows`` for repeated passes: the data to read them from and their indices there.

        In memory that is this data itself; from disk, a new :class:`CellData` of those cells alone
        (their input rows read once into memory, in sorted order, and their per-cell tensors), so
        that passes over a sample of cells do not read the whole file each time.
        """
        if not isinstance(self.x, DiskRowSource):
            return self, rows
        order = np.sort(rows)
        on_device = torch.as_tensor(order)
        obs = {key: value[on_device.to(value.device)] for key, value in self.obs.items()}
        return CellData(self.x.take(order), obs), np.searchsorted(order, rows)

    def batch(self, rows: torch.Tensor, *, positives: bool = False) -> dict[str, torch.Tensor]:
        """Tensors of the given cells: ``"x"`` (dense) plus every per-cell tensor.

        With :attr:`target_rows` set, also the targets' rows, ``"target"``, and their per-cell tensors,
        ``"target_<name>"``. With ``positives``, also ``"x_positives"`` (and ``"target_positives"``),
        the :class:`Positives` of the batch, where the source finds them as it gathers
        (:meth:`RowSource.gather_with_positives`): their number varies from batch to batch, so
        compiled and CUDA-graph steps go without.
        """
        host_rows = rows.cpu()
        rows = host_rows.to(self.x.device, non_blocking=True)
        out = {key: value[rows] for key, value in self.obs.items()}
        self._gather_into(out, "x", host_rows, positives)
        if self.target_rows is not None:
            host_targets = self.target_rows.cpu()[host_rows]
            targets = host_targets.to(self.x.device, non_blocking=True)
            self._gather_into(out, "target", host_targets, positives)
            out.update({f"target_{key}": value[targets] for key, value in self.obs.items()})
        return out

    def _gather_into(self, out: dict, key: str, rows: torch.Tensor, positives: bool) -> None:
        if not positives:
            out[key] = self.x.gather(rows)
            return
        out[key], found = self.x.gather_with_positives(rows)
        if found is not None:
            out[f"{key}_positives"] = found
