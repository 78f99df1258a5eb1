"""The scVAE model: a VAE or Gaussian-mixture VAE with a count likelihood (Grønbech et al. 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS, log_prob
from .losses import kl_categorical_uniform, kl_normal
from .nn import MLP, GaussianHead, LikelihoodDecoder, reparameterize
from .options import check_choice

PRIORS = ("gaussian", "mixture")


class CountVAE(nn.Module):
    """Variational autoencoder p(x|z) p(z) with q(z|x), or its Gaussian-mixture version.

    With ``prior="mixture"`` the model is the GMVAE of scVAE: a categorical q(y|x), a Gaussian
    q(z|x,y) and a unit-variance p(z|y) with learnt means, uniform p(y); y is summed out exactly,
    the ``n_components`` branches running as one batched tensor operation.

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
    n_batches
        Categories of the conditioning covariate (0: unconditional).
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
        n_batches: int = 0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("prior", prior, PRIORS)
        self.likelihood = likelihood
        self.prior = prior
        self.is_count = likelihood in COUNT_LIKELIHOODS
        self.n_components = n_components if prior == "mixture" else 1
        self.n_batches = n_batches

        self.encoder = MLP(n_input, hidden, n_cat=n_batches, dropout=dropout)
        n_hidden = self.encoder.n_output
        if prior == "mixture":
            self.y_logits = nn.Linear(n_hidden, n_components)
            self.z_given_y = MLP(n_hidden, (n_hidden,), n_cat=n_components, dropout=0.0)
            self.prior_mean = nn.Parameter(torch.randn(n_components, n_latent))
            # unit-variance components: with learnt variances a few wide components absorbed most
            # cells on mouse_bladder_2100 (3 to 5 of 16 used)
            self.register_buffer("prior_log_var", torch.zeros(n_components, n_latent))
        self.z_head = GaussianHead(n_hidden, n_latent)

        self.decoder = LikelihoodDecoder(
            n_latent, tuple(reversed(hidden)), n_input, likelihood, n_cat=n_batches
        )

    def encode(self, x: torch.Tensor, batch: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Posterior parameters.

        Returns ``z_mean`` and ``z_log_var`` of shape ``(n_components, n_cells, n_latent)`` (one
        component for the Gaussian prior), ``y_log_probs`` ``(n_cells, n_components)`` and
        ``embedding``, the posterior mean of z with y summed out.
        """
        h = self.encoder(torch.log1p(x) if self.is_count else x, batch)
        if self.prior == "gaussian":
            mean, log_var = self.z_head(h)
            zeros = torch.zeros(h.shape[0], 1, dtype=h.dtype, device=h.device)
            return {
                "z_mean": mean[None],
                "z_log_var": log_var[None],
                "y_log_probs": zeros,
                "embedding": mean,
            }
        y_log_probs = F.log_softmax(self.y_logits(h), dim=-1)
        components = torch.arange(self.n_components, device=h.device)[:, None]
        h_y = self.z_given_y(h.expand(self.n_components, *h.shape), components)
        mean, log_var = self.z_head(h_y)
        embedding = (y_log_probs.exp().T[..., None] * mean).sum(0)
        return {
            "z_mean": mean,
            "z_log_var": log_var,
            "y_log_probs": y_log_probs,
            "embedding": embedding,
        }

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

    def elbo_terms(
        self,
        x: torch.Tensor,
        log_library: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell reconstruction term E_q[log p(x|z)] and KL term (one sample of z per branch)."""
        posterior = self.encode(x, batch)
        mean, log_var = posterior["z_mean"], posterior["z_log_var"]
        z = reparameterize(mean, log_var)
        reconstruction = log_prob(self.likelihood, x, self.decode(z, log_library, batch)).sum(-1)
        if self.prior == "gaussian":
            return reconstruction[0], kl_normal(mean[0], log_var[0])
        kl_z = kl_normal(mean, log_var, self.prior_mean[:, None], self.prior_log_var[:, None])
        y_log_probs = posterior["y_log_probs"]
        q_y = y_log_probs.exp().T  # (n_components, n_cells)
        reconstruction = (q_y * reconstruction).sum(0)
        kl = (q_y * kl_z).sum(0) + kl_categorical_uniform(y_log_probs)
        return reconstruction, kl

    def loss_terms(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Per-cell loss (KL scaled by ``kl_weight``), ELBO, reconstruction and KL terms."""
        reconstruction, kl = self.elbo_terms(batch["x"], batch.get("log_library"), batch.get("batch"))
        return {
            "loss": kl_weight * kl - reconstruction,
            "elbo": reconstruction - kl,
            "reconstruction": reconstruction,
            "kl": kl,
        }

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative ELBO (KL scaled by ``kl_weight``) averaged over cells, with its terms."""
        return {k: v.mean() for k, v in self.loss_terms(batch, kl_weight).items()}
