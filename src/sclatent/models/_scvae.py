"""scVAE: VAE and Gaussian-mixture VAE on raw counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from anndata import AnnData

from .. import _anndata as io
from .._core.data import CellData, row_source
from .._core.device import seeded_rng
from .._core.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS
from .._core.likelihoods import sample as sample_likelihood
from .._core.nn import reparameterize
from .._core.options import check_choice
from .._core.vae import PRIORS, CountVAE
from ._base import BaseModel, arguments, check_training_args

DEFAULT_N_COMPONENTS = 10


class SCVAE(BaseModel):
    """Variational autoencoder on raw counts, with a Gaussian or a Gaussian-mixture prior (scVAE).

    The encoder sees log1p counts; the decoder gives the parameters of a count likelihood whose mean
    is a share of the cell's observed library size. With ``prior="mixture"`` the model is scVAE's
    GMVAE: a categorical cluster variable y with q(y|x), q(z|x,y) and learnt p(z|y), summed out
    exactly; its clusters are argmax q(y|x). With ``batch_key`` it is a conditional VAE.

    Parameters
    ----------
    likelihood
        ``"zinb"``, ``"nb"``, ``"zip"``, ``"poisson"`` (raw counts) or ``"gaussian"`` (any real data).
    prior
        ``"gaussian"`` (standard normal) or ``"mixture"`` (Gaussian mixture, GMVAE).
    n_components
        Mixture components; default 10 for ``prior="mixture"``.
    batch_key
        Column of ``adata.obs`` to condition encoder and decoder on (one-hot).
    layer
        Layer holding the input (default ``.X``).
    use_rep
        Key of ``adata.obsm`` holding the input instead (with ``likelihood="gaussian"``).
    n_latent
        Dimension of the embedding.
    hidden
        Hidden layer widths of the encoder (the decoder mirrors them).
    dropout
        Encoder dropout rate.
    epochs
        Training epochs; None: 400 up to 20,000 cells, fewer above (early stopping usually ends sooner).
    batch_size
        Cells per minibatch.
    lr
        Adam learning rate.
    kl_warmup
        Epochs over which the KL weight rises from 0 to 1.
    early_stopping
        Stop when the held-out loss (negative ELBO) stops improving, keeping the best weights.
    patience
        Epochs without improvement before early stopping.
    validation_fraction
        Share of cells held out to measure the ELBO.
    random_state
        Seed of initialisation, split, shuffling and sampling.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress
        Show a progress bar.
    """

    tool = "scvae"

    def __init__(
        self,
        *,
        likelihood: str = "zinb",
        prior: str = "gaussian",
        n_components: int | None = None,
        batch_key: str | None = None,
        layer: str | None = None,
        use_rep: str | None = None,
        n_latent: int = 10,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.1,
        epochs: int | None = None,
        batch_size: int = 128,
        lr: float = 1e-3,
        kl_warmup: int = 0,
        early_stopping: bool = True,
        patience: int = 20,
        validation_fraction: float = 0.1,
        random_state: int = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("prior", prior, PRIORS)
        if prior == "mixture":
            n_components = DEFAULT_N_COMPONENTS if n_components is None else int(n_components)
            if n_components < 2:
                msg = f"n_components={n_components}: a mixture prior needs at least 2 components."
                raise ValueError(msg)
        elif n_components is not None:
            msg = f"n_components={n_components} needs prior='mixture' (prior={prior!r})."
            raise ValueError(msg)
        check_training_args(epochs, batch_size, lr, validation_fraction)
        super().__init__(arguments(locals()))

    @property
    def is_count(self) -> bool:
        """Whether the likelihood models raw counts."""
        return self.params["likelihood"] in COUNT_LIKELIHOODS

    def _cell_data(self, adata: AnnData, device: torch.device, *, fitting: bool) -> CellData:
        p = self.params
        matrix, what = self._input_matrix(adata, fitting=fitting)
        if self.is_count:
            io.check_counts(matrix, what, p["likelihood"])
        if fitting:
            io.check_n_cells(adata.n_obs, p["batch_size"], p["validation_fraction"])
        source = row_source(matrix, device)
        obs = {}
        if self.is_count:  # observed library size, floored at one count so empty cells stay finite
            obs["log_library"] = source.row_sums().clamp_min(1.0).log().float()
        if p["batch_key"] is not None:
            codes = self._codes(adata, "batch_key", fitting=fitting)
            if (codes < 0).any():
                msg = f"adata.obs[{p['batch_key']!r}] has missing values; fill them (e.g. 'unknown')."
                raise ValueError(msg)
            obs["batch"] = codes
        return CellData(source, obs)

    def _build_module(self) -> CountVAE:
        p = self.params
        return CountVAE(
            self.fitted_["n_input"],
            n_latent=p["n_latent"],
            hidden=p["hidden"],
            likelihood=p["likelihood"],
            prior=p["prior"],
            n_components=p["n_components"] or 1,
            n_batches=len(self.fitted_.get("batch_key_categories", [])),
            dropout=p["dropout"],
        )

    def _posterior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module_.encode(batch["x"], batch.get("batch"))

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._posterior(batch)["embedding"]

    def cluster_probabilities(self, adata: AnnData) -> np.ndarray:
        """q(y|x) of each cell under the mixture prior.

        Parameters
        ----------
        adata
            Cells with the training features.

        Returns
        -------
        ``(n_cells, n_components)`` probabilities; their argmax is the cluster.
        """
        if self.params["prior"] != "mixture":
            msg = "cluster_probabilities needs prior='mixture'."
            raise ValueError(msg)
        return self._predict(adata, lambda b: self._posterior(b)["y_log_probs"].exp())

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
        with seeded_rng(self.params["random_state"], self.device):
            per_cell = self._predict(adata, lambda b: self.module_.loss_terms(b)["elbo"])
        return float(per_cell.mean())

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

    def sample(self, adata: AnnData, *, random_state: int = 0) -> np.ndarray:
        """Draw from the posterior predictive: z ~ q(z|x) (y ~ q(y|x) first for mixtures), x ~ p(x|z).

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
            component = torch.multinomial(post["y_log_probs"].exp(), 1)[:, 0]
            cells = torch.arange(len(component), device=component.device)
            z = reparameterize(post["z_mean"][component, cells], post["z_log_var"][component, cells])
            return sample_likelihood(self.params["likelihood"], self._decode(b, z, None))

        with seeded_rng(random_state, self.device):
            return self._predict(adata, draw)

    def _decode(
        self, batch: dict[str, torch.Tensor], z: torch.Tensor, library_size: float | None
    ) -> dict[str, torch.Tensor]:
        log_library = batch.get("log_library")
        if library_size is not None and log_library is not None:
            log_library = torch.full_like(log_library, float(np.log(library_size)))
        params = self.module_.decode(z, log_library, batch.get("batch"))
        return {k: v.expand_as(params.get("log_mu", params.get("mean"))) for k, v in params.items()}
