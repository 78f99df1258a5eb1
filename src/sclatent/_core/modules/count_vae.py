"""The scVAE model: a VAE or Gaussian-mixture VAE with a count likelihood (Grønbech et al. 2020)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..._validation import check_choice
from ..nn.layers import MLP, GaussianHead, LikelihoodDecoder, reparameterize
from ..nn.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS, log_prob_sum
from ..nn.losses import kl_normal
from ..nn.mixture import LOG_2PI, GaussianMixturePrior, label_log_prob

PRIORS = ("gaussian", "mixture")
#: Samples of z decoded together when estimating the marginal likelihood (memory: this many batches).
_SAMPLES_PER_PASS = 16
#: Weight of -log q(label|x) on labelled cells, on top of the ELBO (which already holds it once).
CLASSIFICATION_WEIGHT = 10.0


class CountVAE(nn.Module):
    """Variational autoencoder p(x|z) p(z) with q(z|x), or its Gaussian-mixture version.

    With ``prior="mixture"`` the model is a GMVAE: p(y) p(z|y) with learnt weights, means and floored
    variances (:class:`~sclatent._core.nn.mixture.GaussianMixturePrior`), q(z|x) shared by the
    components and the ELBO-optimal categorical q(y|x), so y is summed out exactly in closed form
    and the decoder runs once per cell, whatever the number of components. The mixture is in use from
    construction: the GMVAE's warm start trains under its initial components, which the warm-start
    latent means then replace.

    Parameters
    ----------
    n_input
        Number of features (genes).
    n_latent
        Dimension of z.
    hidden
        Hidden widths of the encoder; the decoder mirrors them.
    likelihood
        ``"poisson"``, ``"nb"``, ``"zip"``, ``"zinb"`` or ``"gaussian"``.
    prior
        ``"gaussian"`` (standard normal) or ``"mixture"``.
    n_components
        Mixture components (``prior="mixture"`` only).
    n_covariates
        Width of the covariate design (one-hot categories, standardised numbers) injected into
        every layer of encoder and decoder (0: unconditional).
    dropout
        Encoder dropout rate.
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_latent: int = 10,
        hidden: Sequence[int] = (128,),
        likelihood: str = "zinb",
        prior: str = "gaussian",
        n_components: int = 10,
        n_covariates: int = 0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("prior", prior, PRIORS)
        self.likelihood = likelihood
        self.prior = prior
        self.is_count = likelihood in COUNT_LIKELIHOODS
        self.n_covariates = n_covariates

        self.encoder = MLP(n_input, hidden, n_cat=n_covariates, dropout=dropout)
        self.z_head = GaussianHead(self.encoder.n_output, n_latent)
        self.mixture = GaussianMixturePrior(n_components, n_latent) if prior == "mixture" else None
        # models saved by earlier development versions hold a "mixture_on" flag (always prior == "mixture")
        self.register_load_state_dict_pre_hook(_drop_mixture_flag)
        self.decoder = LikelihoodDecoder(
            n_latent, tuple(reversed(hidden)), n_input, likelihood, n_cat=n_covariates
        )

    @property
    def n_components(self) -> int:
        """Number of mixture components (1 for the Gaussian prior)."""
        return 1 if self.mixture is None else self.mixture.n_components

    def posterior(
        self, x: torch.Tensor, batch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x); the encoder sees log1p counts."""
        return self.z_head(self.encoder(torch.log1p(x) if self.is_count else x, batch))

    def encode(self, x: torch.Tensor, batch: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Posterior parameters.

        Returns ``z_mean`` and ``z_log_var`` of shape ``(n_cells, n_latent)``, ``y_log_probs``
        ``(n_cells, n_components)`` (log q(y|x); zeros for the Gaussian prior) and ``embedding``,
        the posterior mean of z.
        """
        mean, log_var = self.posterior(x, batch)
        if self.mixture is None:
            y_log_probs = torch.zeros(mean.shape[0], 1, dtype=mean.dtype, device=mean.device)
        else:
            y_log_probs = self.mixture.log_posterior(mean, log_var)
        return {"z_mean": mean, "z_log_var": log_var, "y_log_probs": y_log_probs, "embedding": mean}

    def decode(
        self,
        z: torch.Tensor,
        log_library: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Likelihood parameters for latent codes ``z`` of shape ``(..., n_cells, n_latent)``.

        Count likelihoods need ``log_library``, the log library size of each cell.
        """
        return self.decoder(z, log_library, batch)

    def loss_terms(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Per-cell loss (KL scaled by ``kl_weight``), ELBO, reconstruction and KL terms.

        With a mixture prior, cells whose ``batch["label"]`` is a component (not -1) have q(y|x)
        fixed to it, and their loss adds ``classification_weight * -log q(label|x)``, the
        semi-supervised term that trains q(y|x) on them (Kingma et al. 2014). ``batch["anchor"]``
        fixes q(y|x) in the same way (where there is no label), without the extra term.
        """
        x, covariate = batch["x"], batch.get("covariates")
        mean, log_var = self.posterior(x, covariate)
        z = reparameterize(mean, log_var)
        params = self.decode(z, batch.get("log_library"), covariate)
        reconstruction = log_prob_sum(self.likelihood, x, params, batch.get("x_positives"))
        loss_extra = torch.zeros_like(reconstruction)
        if self.mixture is not None:
            labels, anchor = batch.get("label"), batch.get("anchor")
            if labels is not None and anchor is not None:
                anchor = torch.where(labels >= 0, labels, anchor)
            kl, log_q_y = self.mixture.kl(mean, log_var, labels if anchor is None else anchor)
            if labels is not None:
                loss_extra = -CLASSIFICATION_WEIGHT * label_log_prob(log_q_y, labels)
        else:
            kl = kl_normal(mean, log_var)
        return {
            "loss": kl_weight * kl - reconstruction + loss_extra,
            "elbo": reconstruction - kl,
            "reconstruction": reconstruction,
            "kl": kl,
        }

    @torch.no_grad()
    def marginal_log_likelihood(self, batch: dict[str, torch.Tensor], n_samples: int) -> torch.Tensor:
        """Importance-sampled log p(x) of each cell, with q(z|x) as the proposal (the IWAE bound).

        ``log p(x) >= log mean_s p(x|z_s) p(z_s) / q(z_s|x)`` with ``z_s ~ q(z|x)``: a tighter bound
        than the ELBO (its expectation for one sample), converging to log p(x) as ``n_samples`` grows.
        With the mixture prior, p(z) = sum_y p(y) p(z|y) is summed exactly.
        """
        x, covariate = batch["x"], batch.get("covariates")
        mean, log_var = self.posterior(x, covariate)
        std = (0.5 * log_var).exp()
        chunks = []
        for start in range(0, n_samples, _SAMPLES_PER_PASS):
            eps = torch.randn(min(_SAMPLES_PER_PASS, n_samples - start), *mean.shape, device=mean.device)
            z = mean + std * eps
            params = self.decode(z, batch.get("log_library"), covariate)
            log_px = log_prob_sum(self.likelihood, x, params)
            log_qz = (-0.5 * (LOG_2PI + log_var + eps**2)).sum(-1)
            if self.mixture is not None:
                log_pz = self.mixture.log_density(z)
            else:
                log_pz = (-0.5 * (LOG_2PI + z**2)).sum(-1)
            chunks.append(log_px + log_pz - log_qz)
        weights = torch.cat(chunks)
        return torch.logsumexp(weights, dim=0) - math.log(n_samples)

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative ELBO (KL scaled by ``kl_weight``) averaged over cells, with its terms."""
        return {k: v.mean() for k, v in self.loss_terms(batch, kl_weight).items()}


def _drop_mixture_flag(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    state_dict.pop(prefix + "mixture_on", None)
