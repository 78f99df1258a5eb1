"""GroupEnc: a variational encoder trained with the group loss (Novak et al. 2023)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .losses import group_loss, kl_normal
from .nn import MLP, GaussianHead, reparameterize


class GroupEncoder(nn.Module):
    """Variational encoder q(z|x) whose samples keep the relative distances within random groups.

    There is no decoder: the objective is the group loss between inputs and latent samples plus a
    small KL term towards N(0, I), which fixes the scale the group loss leaves free.

    Parameters
    ----------
    n_input
        Input dimension (e.g. 50 principal components).
    n_latent
        Embedding dimension.
    hidden
        Hidden layer widths.
    gamma
        Cells per group.
    kl_weight
        Weight of the KL term.
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_latent: int = 2,
        hidden: Sequence[int] = (32, 64, 128, 32),
        gamma: int = 4,
        kl_weight: float = 1e-4,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.kl_weight = kl_weight
        self.encoder = MLP(n_input, hidden, dropout=0.0)
        self.head = GaussianHead(self.encoder.n_output, n_latent)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x); the mean is the embedding."""
        return self.head(self.encoder(x))

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Group loss + ``kl_weight * self.kl_weight *`` KL, with the terms for the history."""
        x = batch["x"]
        mean, log_var = self.encode(x)
        group = group_loss(x, reparameterize(mean, log_var), self.gamma)
        kl = kl_normal(mean, log_var).mean()
        return {"loss": group + kl_weight * self.kl_weight * kl, "group": group, "kl": kl}
