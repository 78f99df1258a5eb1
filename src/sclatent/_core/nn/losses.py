"""Divergences and structure losses."""

from __future__ import annotations

import torch

from ..runtime.precision import full_precision


def kl_normal(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    prior_mean: torch.Tensor | None = None,
    prior_log_var: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(N(mean, var) || N(prior_mean, prior_var)) of diagonal Gaussians, summed over the last axis.

    The prior defaults to the standard normal.
    """
    if prior_mean is None or prior_log_var is None:
        return 0.5 * (log_var.exp() + mean**2 - 1.0 - log_var).sum(-1)
    return 0.5 * (
        prior_log_var - log_var + (log_var.exp() + (mean - prior_mean) ** 2) / prior_log_var.exp() - 1.0
    ).sum(-1)


def group_loss(x: torch.Tensor, z: torch.Tensor, gamma: int, eps: float = 1e-10) -> torch.Tensor:
    """GroupEnc's group loss between input ``x`` and latent ``z`` (Novak et al. 2023).

    The rows, in their (shuffled) order, are cut into groups of ``gamma`` distinct cells; the rows
    left over after the last full group are not used. Within a group every pairwise Euclidean distance
    is divided by the sum of the group's distances, in each space; the loss is the sum over the
    group's pairs of squared differences of these shares, averaged over groups.

    Parameters
    ----------
    x
        ``(B, D)`` input coordinates.
    z
        ``(B, L)`` latent coordinates.
    gamma
        Cells per group, at least 3.
    eps
        Added under the square root, so that coinciding points keep a finite gradient.

    Returns
    -------
    The scalar loss (0 when the batch holds fewer than ``gamma`` cells).
    """
    n_groups = x.shape[0] // gamma
    if n_groups == 0:
        return z.sum() * 0.0
    first, second = torch.triu_indices(gamma, gamma, offset=1, device=x.device)

    def shares(points: torch.Tensor) -> torch.Tensor:
        groups = points[: n_groups * gamma].reshape(n_groups, gamma, -1)
        distances = ((groups[:, first] - groups[:, second]).square().sum(-1) + eps).sqrt()
        return distances / distances.sum(1, keepdim=True)

    return (shares(x) - shares(z)).square().sum(1).mean()


def neighbour_loss(z: torch.Tensor, z_neighbour: torch.Tensor) -> torch.Tensor:
    """Contrastive neighbour loss: each cell's sampled neighbour against the batch's other cells.

    Similarities are Cauchy (Student t with one degree of freedom, as in t-SNE),
    ``q(a, b) = 1 / (1 + |a - b|^2)``; for cell ``i`` the loss is the InfoNCE cross-entropy
    ``-log q(z_i, z'_i) / sum_j q(z_i, z'_j)`` over the batch's neighbours ``z'_j``, averaged over
    cells. It pulls kNN pairs together and pushes other pairs apart, the t-SNE-like end of the
    neighbour-embedding spectrum (Damrich et al. 2023, "From t-SNE to UMAP with contrastive learning").

    Parameters
    ----------
    z
        ``(B, L)`` embeddings of the batch's cells.
    z_neighbour
        ``(B, L)`` embeddings of one input-space neighbour of each cell, same order.

    Returns
    -------
    The scalar loss.
    """
    # squared distances by one matrix product (twice as fast as broadcasting, CPU and GPU), in float32
    # also under autocast: in bfloat16 the expansion would cancel for the close pairs that matter
    with torch.autocast(z.device.type, enabled=False):
        cross = full_precision(z) @ full_precision(z_neighbour).T
    sq = (z.square().sum(1, keepdim=True) + z_neighbour.square().sum(1) - 2 * cross).clamp_min(0)
    log_q = -torch.log1p(sq)
    return (torch.logsumexp(log_q, 1) - log_q.diagonal()).mean()
