"""What a fitted SCVAE computes beyond embeddings: ELBO, marginal likelihood, expression, samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from ..._core.nn.layers import reparameterize
from ..._core.nn.likelihoods import sample as sample_likelihood
from ..._core.runtime import seeded_rng
from ..._validation import Integer, Keys, Real


class ExpressionMixin:
    """ELBO, importance-sampled log-likelihood, denoised and normalised expression, posterior samples."""

    def elbo(self, adata: AnnData) -> float:
        """Mean evidence lower bound per cell (nats; higher is better), one sample of z per cell.

        Parameters
        ----------
        adata
            Cells with the training features.

        Returns
        -------
        The ELBO averaged over cells.
        """
        with seeded_rng(self.seed, self.device):
            per_cell = self._predict(adata, lambda b: self.module_.loss_terms(b)["elbo"])
        return float(per_cell.mean())

    def marginal_log_likelihood(
        self, adata: AnnData, *, n_samples: int = 100, per_cell: bool = False
    ) -> float | np.ndarray:
        """Importance-sampled log p(x) (nats; the IWAE bound with q(z|x) as proposal).

        A tighter bound on the evidence than :meth:`elbo`, converging to log p(x) as ``n_samples``
        grows: the quantity the scVAE paper compares likelihoods with. Seeded by the model's seed.

        Parameters
        ----------
        adata
            Cells with the training features.
        n_samples
            Importance samples of z per cell.
        per_cell
            Return one value per cell instead of the mean.

        Returns
        -------
        The mean over cells, or the ``(n_cells,)`` values.
        """
        n_samples = Integer(minimum=1)("n_samples", n_samples)
        self._check_fitted()
        with seeded_rng(self.seed, self.device):
            values = self._predict(adata, lambda b: self.module_.marginal_log_likelihood(b, n_samples))
        return values if per_cell else float(values.mean())

    def denoise(self, adata: AnnData, *, library_size: float | None = None) -> np.ndarray:
        """Decoder means at the posterior mean of z: denoised expression, one row per cell.

        Parameters
        ----------
        adata
            Cells with the training features.
        library_size
            Scale every cell to this library size (e.g. 1e4); None keeps each cell's own.

        Returns
        -------
        Dense ``(n_cells, n_genes)`` array (counts scale for count likelihoods).
        """

        def decode_mean(b: dict[str, torch.Tensor]) -> torch.Tensor:
            params = self._decode(b, self._embed(b), library_size)
            return params["log_mu"].exp() if self.is_count else params["mean"]

        return self._predict(adata, decode_mean)

    def get_normalized_expression(
        self,
        adata: AnnData,
        *,
        transform_batch: str | Sequence[str] | None = None,
        gene_list: Sequence[str] | None = None,
        n_samples: int = 1,
        library_size: float = 1.0,
        return_df: bool = True,
        random_state: int = 0,
    ) -> pd.DataFrame | np.ndarray:
        """Expected expression of every cell at a common library size (count likelihoods).

        The decoder's mean at z, scaled so that every cell's expected counts sum to
        ``library_size``: 1 gives each gene's share of a cell's counts, 1e4 counts per 10,000.

        Parameters
        ----------
        adata
            Cells with the training features.
        transform_batch
            Decode every cell as if it came from this category of ``batch_key`` (a list: the mean
            over those categories); None: each cell's own.
        gene_list
            Genes (``var_names``) to return, in this order; None: all.
        n_samples
            Draws of z ~ q(z|x) averaged per cell; 1: the posterior mean of z itself.
        library_size
            Total expected counts of each cell.
        return_df
            A DataFrame (cells x genes, named) instead of an array.
        random_state
            Seed of the draws of z.

        Returns
        -------
        ``(n_cells, n_genes)`` expression.
        """
        genes = self._gene_positions(gene_list)
        draws = self._expression_draws(adata, n_samples, transform_batch, library_size, random_state)
        values = draws.reshape(adata.n_obs, -1, draws.shape[-1]).mean(1)[:, genes]
        if not return_df:
            return values
        names = np.asarray(self.fitted_["var_names"], dtype=object)[genes]
        return pd.DataFrame(values, index=adata.obs_names.copy(), columns=pd.Index(names))

    def sample(self, adata: AnnData, *, random_state: int = 0) -> np.ndarray:
        """Draw from the posterior predictive: z ~ q(z|x), x ~ p(x|z).

        Parameters
        ----------
        adata
            Cells with the training features.
        random_state
            Seed of the draws.

        Returns
        -------
        Dense ``(n_cells, n_genes)`` array of simulated observations.
        """

        def draw(b: dict[str, torch.Tensor]) -> torch.Tensor:
            post = self._posterior(b)
            z = reparameterize(post["z_mean"], post["z_log_var"])
            return sample_likelihood(self.params["likelihood"], self._decode(b, z, None))

        with seeded_rng(random_state, self.device):
            return self._predict(adata, draw)

    def _gene_positions(self, gene_list: Sequence[str] | None) -> np.ndarray:
        """Columns of the training genes named in ``gene_list`` (all when None), checked."""
        names = self.fitted_.get("var_names")
        if gene_list is None:
            return np.arange(self.fitted_["n_input"])
        if names is None:
            msg = "gene_list needs a model trained on genes (not on a use_rep= matrix)."
            raise ValueError(msg)
        lookup = {name: i for i, name in enumerate(names)}
        gene_list = Keys()("gene_list", gene_list)
        missing = [g for g in gene_list if g not in lookup]
        if missing:
            msg = f"gene_list names genes the model was not trained on: {missing[:5]}."
            raise ValueError(msg)
        return np.array([lookup[g] for g in gene_list], dtype=np.int64)

    def _expression_draws(
        self,
        adata: AnnData,
        n_samples: int,
        transform_batch: str | Sequence[str] | None,
        library_size: float,
        random_state: int,
    ) -> np.ndarray:
        """``(n_cells * n_samples, n_genes)`` decoder means at draws of z, at ``library_size``."""
        self._check_fitted()
        if not self.is_count:
            msg = "normalised expression needs a count likelihood (the model's is 'gaussian')."
            raise ValueError(msg)
        n_samples = Integer(minimum=1)("n_samples", n_samples)
        library_size = Real(low=0.0, low_open=True)("library_size", library_size)
        batches = self._transform_batch_codes(transform_batch)

        def draw(b: dict[str, torch.Tensor]) -> torch.Tensor:
            post = self._posterior(b)
            if n_samples == 1:
                z = post["z_mean"][None]
            else:
                z = torch.stack([reparameterize(post["z_mean"], post["z_log_var"]) for _ in range(n_samples)])
            log_library = torch.full_like(post["z_mean"][:, 0], float(np.log(library_size)))
            means = []
            for code in batches:
                covariate = b.get("covariates")
                if code is not None:  # the batch_key block (the first) set to that category
                    covariate = covariate.clone()
                    covariate[:, : len(self.fitted_["batch_key_categories"])] = 0.0
                    covariate[:, code] = 1.0
                means.append(self.module_.decode(z, log_library, covariate)["log_mu"].exp())
            return torch.stack(means).mean(0).transpose(0, 1).reshape(-1, means[0].shape[-1])

        with seeded_rng(random_state, self.device):
            return self._predict(adata, draw)

    def _transform_batch_codes(self, transform_batch: str | Sequence[str] | None) -> list[int | None]:
        """Codes of the ``batch_key`` categories to decode under ([None]: each cell's own)."""
        if transform_batch is None:
            return [None]
        if self.params["batch_key"] is None:
            msg = "transform_batch needs a model fitted with batch_key=."
            raise ValueError(msg)
        known = self.fitted_["batch_key_categories"]
        transform_batch = Keys()("transform_batch", transform_batch)
        unknown = [b for b in transform_batch if b not in known]
        if unknown:
            msg = f"transform_batch names categories unseen in training: {unknown[:5]} (known: {known[:10]})."
            raise ValueError(msg)
        return [known.index(b) for b in transform_batch]

    def _decode(
        self, batch: dict[str, torch.Tensor], z: torch.Tensor, library_size: float | None
    ) -> dict[str, torch.Tensor]:
        log_library = batch.get("log_library")
        if library_size is not None and log_library is not None:
            log_library = torch.full_like(log_library, float(np.log(library_size)))
        params = self.module_.decode(z, log_library, batch.get("covariates"))
        return {k: v.expand_as(params.get("log_mu", params.get("mean"))) for k, v in params.items()}
