"""GroupEnc: a variational encoder trained with the group loss for global structure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from anndata import AnnData

from .. import _anndata as io
from .._core.data import CellData, row_source
from .._core.groupenc import GroupEncoder
from .._core.validation import Check, Integer, Real, SeedLike
from ._base import BaseModel, arguments


class GroupEnc(BaseModel):
    """Variational encoder trained with GroupEnc's group loss (Novak et al. 2023).

    Each minibatch is shuffled and cut into groups of ``gamma`` distinct cells; within a group every
    pairwise distance is divided by the group's sum of distances, in the input and in the latent space,
    and the loss is the sum of squared differences of these shares, averaged over groups, plus a small
    KL term. Random groups span the whole data, so the embedding keeps global structure (large-scale
    distances) better than neighbour-graph methods. There is no decoder; the embedding is the
    posterior mean.

    Parameters
    ----------
    gamma
        Cells per group, 3 <= gamma <= batch_size (4: quartets, as in SQuaD-MDS).
    n_latent
        Dimension of the embedding.
    use_rep
        Key of ``adata.obsm`` holding the input (None: ``"X_pca"``; ``"X"`` for ``.X``). The method
        expects normalised, log-transformed, scaled data, typically its 50 principal components.
    hidden
        Hidden layer widths of the encoder.
    kl_weight
        Weight of the KL term relative to the group loss. It only fixes the scale; larger weights add
        sampling noise that blurs the embedding (on mouse_bladder_2100, 10-d Global SP 0.75 at 1e-4,
        0.49 at 1e-2).
    epochs
        Training epochs.
    batch_size
        Cells per minibatch.
    lr
        Adam learning rate.
    early_stopping
        Stop when the held-out loss stops improving, keeping the best weights.
    patience
        Epochs without improvement before early stopping.
    validation_fraction
        Share of cells held out to measure the loss.
    random_state
        Seed of initialisation, split, shuffling and sampling: an int, None (a fresh seed, recorded in
        ``uns``) or a NumPy Generator / RandomState (drawn from once).
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress
        Show a progress bar.
    """

    tool = "groupenc"

    checks: ClassVar[dict[str, Check]] = {"gamma": Integer(minimum=3), "kl_weight": Real(low=0)}

    def __init__(
        self,
        *,
        gamma: int = 4,
        n_latent: int = 2,
        use_rep: str | None = None,
        hidden: Sequence[int] = (32, 64, 128, 32),
        kl_weight: float = 1e-4,
        epochs: int = 500,
        batch_size: int = 512,
        lr: float = 1e-3,
        early_stopping: bool = False,
        patience: int = 20,
        validation_fraction: float = 0.1,
        random_state: SeedLike = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        use_rep = use_rep or "X_pca"
        super().__init__(arguments(locals()))

    def _check_params(self, params: dict[str, Any]) -> None:
        if params["gamma"] > params["batch_size"]:
            msg = (
                f"gamma={params['gamma']} is larger than batch_size={params['batch_size']}: a group "
                f"is cut from one minibatch; pass gamma <= batch_size (e.g. 4)."
            )
            raise ValueError(msg)

    def _cell_data(self, adata: AnnData, device: torch.device, *, fitting: bool) -> CellData:
        p = self.params
        matrix, _ = self._input_matrix(adata, fitting=fitting)
        if fitting:
            io.check_n_cells(adata.n_obs, p["batch_size"], p["validation_fraction"])
        return CellData(row_source(matrix, device), {})

    def _build_module(self) -> GroupEncoder:
        p = self.params
        return GroupEncoder(
            self.fitted_["n_input"],
            n_latent=p["n_latent"],
            hidden=p["hidden"],
            gamma=p["gamma"],
            kl_weight=p["kl_weight"],
        )

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module_.encode(batch["x"])[0]
