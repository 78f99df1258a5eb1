"""GroupEnc: a variational encoder trained with the group loss for global structure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from anndata import AnnData
from torch import nn

from .. import _anndata as io
from .._core.data import CellData, row_source
from .._core.modules.group_encoder import GroupEncoder
from .._core.stats.neighbors import graph_indices, knn_indices
from .._core.train.loop import TrainingConfig
from .._docs import shared_parameters
from .._logging import logger
from .._validation import Check, Integer, Real, SeedLike
from ._base import BaseModel, arguments

#: Default KL weights: alone the KL term fixes the embedding's scale; with the local term, whose
#: similarities have a scale of their own, a strong pull towards N(0, I) crowds the neighbourhoods
#: (measured: Local SP 0.344 at 1e-4 against 0.373 at 1e-6 on human_kidney_5685).
KL_WEIGHT, KL_WEIGHT_LOCAL = 1e-4, 1e-6

#: The local term draws a cell's j-th nearest neighbour with probability proportional to
#: ``1 / j**NEIGHBOUR_RANK_POWER``: the nearest ones more often, as Local SP weighs them most. Measured
#: (Local / Global SP, 3 seeds): uniform drawing .371 / .559 on human_kidney_5685 and .327 / .628 on
#: pbmc_10x_4271; power 1 .379 / .561 and .333 / .627; power 2 or 3 gains Local SP and loses Global SP.
NEIGHBOUR_RANK_POWER = 1.0


@shared_parameters
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
    {n_latent}
    use_rep
        Key of ``adata.obsm`` holding the input (None: ``"X_pca"``; ``"X"`` for ``.X``). The method
        expects normalised, log-transformed, scaled data, typically its 50 principal components.
    {hidden}
    kl_weight
        Weight of the KL term relative to the group loss. It only fixes the scale; larger weights add
        sampling noise that blurs the embedding (on mouse_bladder_2100, 10-d Global SP 0.75 at 1e-4,
        0.49 at 1e-2). None: 1e-4, or 1e-6 with a local term, which then sets the scale.
    local_weight
        Weight of a local term that keeps neighbourhoods: each cell is drawn towards one of its
        ``n_neighbors`` input-space neighbours (a new one each epoch, the nearest ones more often) and
        away from the minibatch's other cells (a contrastive, t-SNE-like loss). It joins the group
        loss half-way through training, once that has laid out the data. 0 is the paper's GroupEnc;
        1 is the balanced setting, which keeps the global layout and the neighbourhoods.
    n_neighbors
        Size of the neighbourhood of the local term, counting the cell itself (as in
        ``sc.pp.neighbors``). The kNN graph of the input (``use_rep``) is taken from
        ``obsp["distances"]`` when ``sc.pp.neighbors`` built it on the same representation with at
        least this many neighbours, else computed (exact up to 50,000 cells, pynndescent above).
    epochs
        Training epochs; None: 500 up to 20,000 cells, above as many training steps in fewer epochs
        (10 at 1M cells).
    {batch_size}
    {lr}
    {stopping}
    """

    tool = "groupenc"
    max_epochs = 500

    checks: ClassVar[dict[str, Check]] = {
        "gamma": Integer(minimum=3),
        "kl_weight": Real(low=0, optional=True),
        "local_weight": Real(low=0),
        "n_neighbors": Integer(minimum=2),
    }

    def __init__(
        self,
        *,
        gamma: int = 4,
        n_latent: int = 2,
        use_rep: str | None = None,
        hidden: Sequence[int] = (32, 64, 128, 32),
        kl_weight: float | None = None,
        local_weight: float = 0.0,
        n_neighbors: int = 15,
        epochs: int | None = None,
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

    @property
    def kl_weight(self) -> float:
        """The KL weight in use: ``kl_weight``, or its default for the local term's presence."""
        if self.params["kl_weight"] is not None:
            return self.params["kl_weight"]
        return KL_WEIGHT_LOCAL if self.params["local_weight"] > 0 else KL_WEIGHT

    def _cell_data(self, adata: AnnData, device: torch.device, *, fitting: bool) -> CellData:
        p = self.params
        matrix, _ = self._input_matrix(adata, fitting=fitting)
        obs = {}
        if fitting:
            io.check_n_cells(adata.n_obs, p["batch_size"], p["validation_fraction"])
            if p["local_weight"] > 0:
                obs["neighbours"] = torch.from_numpy(self._neighbours(adata, matrix))
        return CellData(row_source(matrix, device), obs)

    def _neighbours(self, adata: AnnData, matrix: io.Matrix) -> np.ndarray:
        """The ``n_neighbors - 1`` nearest cells of every cell: from ``obsp`` when it fits, else computed."""
        p = self.params
        if p["n_neighbors"] >= adata.n_obs:
            msg = (
                f"n_neighbors={p['n_neighbors']} is not below the {adata.n_obs} cells; pass n_neighbors "
                f"< {adata.n_obs} (15 is usual)."
            )
            raise ValueError(msg)
        stored = io.stored_neighbors(adata, p["use_rep"], p["n_neighbors"])
        if stored is not None:
            logger.info("groupenc: local term on the kNN graph in obsp[%r].", stored)
            return graph_indices(adata.obsp[stored], p["n_neighbors"])
        logger.info("groupenc: computing the kNN graph of %s.", p["use_rep"])
        return knn_indices(io.to_memory(matrix), p["n_neighbors"], self.seed)

    def _training_config(self, n_obs: int) -> TrainingConfig:
        config = super()._training_config(n_obs)
        if self.params["local_weight"] > 0:
            # the loss changes when the local term starts: no best weights from before
            config.hold_epochs = self.local_start_epoch(config.epochs)
        return config

    @staticmethod
    def local_start_epoch(epochs: int) -> int:
        """The epoch the local term starts: half-way, once the group loss has laid out the data."""
        return epochs // 2

    def _hooks(self, module: nn.Module, data: CellData, rng: np.random.Generator) -> dict[str, Any]:
        if "neighbours" not in data.obs:
            return {}
        neighbours = data.obs["neighbours"].cpu()  # targets are drawn on the host
        cells = torch.arange(len(data))
        start = self._training_config(len(data)).hold_epochs
        weights = neighbour_rank_weights(neighbours.shape[1])

        def draw(epoch: int) -> None:
            if epoch < start:
                return
            # each cell's neighbour of this epoch: one of its kNN, the nearest ones more often
            column = torch.from_numpy(rng.choice(len(weights), len(data), p=weights))
            data.target_rows = neighbours[cells, column]

        return {"on_epoch_start": draw}

    def _build_module(self) -> GroupEncoder:
        p = self.params
        return GroupEncoder(
            self.fitted_["n_input"],
            n_latent=p["n_latent"],
            hidden=p["hidden"],
            gamma=p["gamma"],
            kl_weight=self.kl_weight,
            local_weight=p["local_weight"],
        )

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module_.encode(batch["x"])[0]


def neighbour_rank_weights(k: int) -> np.ndarray:
    """Probabilities of drawing a cell's 1st ... k-th nearest neighbour for the local term."""
    weights = 1.0 / np.arange(1, k + 1) ** NEIGHBOUR_RANK_POWER
    return weights / weights.sum()
