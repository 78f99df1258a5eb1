"""Divergences and structure losses."""

from __future__ import annotations

import torch


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


def kl_categorical_uniform(log_probs: torch.Tensor) -> torch.Tensor:
    """KL(q || uniform) of categorical distributions given as log-probabilities on the last axis."""
    n = log_probs.shape[-1]
    return (log_probs.exp() * (log_probs + torch.log(torch.tensor(float(n))))).sum(-1)
