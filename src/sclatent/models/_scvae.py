"""scVAE: VAE and Gaussian-mixture VAE on raw counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from anndata import AnnData

from .. import _anndata as io
from .._core.clustering import initial_components
from .._core.data import CellData, row_source
from .._core.device import seeded_rng
from .._core.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS
from .._core.likelihoods import sample as sample_likelihood
from .._core.nn import reparameterize
from .._core.pca import log_normalised_pcs
from .._core.training import TrainingConfig, predict
from .._core.vae import PRIORS, CountVAE
from .._core.validation import Check, Choice, Integer, SeedLike
from ._base import BaseModel, arguments

#: Component slots when the mixture finds the number of clusters itself.
MAX_COMPONENTS = 64
#: Default epochs of the mixture prior (a third of them the VAE warm start).
MIXTURE_EPOCHS = 150
#: Training cells whose graph gives the number of clusters (a random subset above it).
MAX_CLUSTERED_CELLS = 50_000
#: Components used by fewer than this share of the training cells are switched off after each epoch.
MIN_COMPONENT_USAGE = 0.002


class SCVAE(BaseModel):
    """Variational autoencoder on raw counts, with a Gaussian or a Gaussian-mixture prior (scVAE).

    The encoder sees log1p counts; the decoder gives the parameters of a count likelihood whose mean
    is a share of the cell's observed library size. With ``prior="mixture"`` the model is scVAE's
    GMVAE: a cluster variable y with learnt weights p(y) and Gaussians p(z|y), q(z|x) shared by the
    components and the ELBO-optimal categorical q(y|x), y summed out exactly in closed form; its
    clusters are argmax q(y|x). The mixture trains in three stages: a third of the epochs as a
    warm start under the initial mixture (random means, unit variances, equal weights), whose
    latent means then give a starting partition whose parts become the components: the Leiden
    communities of the kNN graphs of the latent means and of the input's principal components
    joined (all of them for ``n_components=None``; for a given ``n_components`` the largest ones,
    further components starting small inside the most spread-out communities), or the labelled
    cells' classes for ``labels_key``; a sixth of the rest with each cell's q(y|x) held at its part
    (anchored); then the GMVAE, switching off components that lose their cells
    (``n_components=None``).
    With ``batch_key`` it is a conditional VAE.

    Parameters
    ----------
    likelihood
        ``"zinb"``, ``"nb"``, ``"zip"``, ``"poisson"`` (raw counts) or ``"gaussian"`` (any real data).
    prior
        ``"gaussian"`` (standard normal) or ``"mixture"`` (Gaussian mixture, GMVAE).
    n_components
        Mixture components (``prior="mixture"``); None lets the model find the number of clusters.
        With ``labels_key``: at least the number of classes, the others free for unlabelled types
        (None: one per class).
    labels_key
        Column of ``adata.obs`` with known cell types for some cells and missing values (NaN) for
        the rest (``prior="mixture"``): labelled cells fix q(y|x) to their class, the others get the
        predicted label.
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
        Training epochs; None: 400 up to 20,000 cells, fewer above (150 with ``prior="mixture"``),
        early stopping usually ends sooner.
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
        Seed of initialisation, split, shuffling and sampling: an int, None (a fresh seed, recorded in
        ``uns``) or a NumPy Generator / RandomState (drawn from once).
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress
        Show a progress bar.
    """

    tool = "scvae"

    checks: ClassVar[dict[str, Check]] = {
        "likelihood": Choice(LIKELIHOODS),
        "prior": Choice(PRIORS),
        "n_components": Integer(minimum=2, optional=True),
    }

    def __init__(
        self,
        *,
        likelihood: str = "zinb",
        prior: str = "gaussian",
        n_components: int | None = None,
        labels_key: str | None = None,
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
        random_state: SeedLike = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        super().__init__(arguments(locals()))

    def _check_params(self, params: dict[str, Any]) -> None:
        if params["prior"] != "mixture":
            for name in ("n_components", "labels_key"):
                if params[name] is not None:
                    msg = f"{name}={params[name]!r} needs prior='mixture' (prior={params['prior']!r})."
                    raise ValueError(msg)

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
        if fitting and p["labels_key"] is not None:
            obs["label"] = self._label_codes(adata)
        return CellData(source, obs)

    def _label_codes(self, adata: AnnData) -> torch.Tensor:
        """Class codes of the labelled cells (-1: unlabelled), checked for label transfer."""
        key = self.params["labels_key"]
        codes, categories = io.get_codes(adata, key, "labels_key")
        used = np.unique(codes[codes >= 0])
        if len(used) < 2:
            what = "no labelled cells" if len(used) == 0 else f"only one class ({categories[used[0]]!r})"
            msg = (
                f"adata.obs[{key!r}] has {what}; label transfer needs labelled cells of at least "
                "2 classes (missing values, NaN, mark the cells to predict)."
            )
            raise ValueError(msg)
        lookup = np.full(len(categories) + 1, -1, dtype=np.int64)
        lookup[used] = np.arange(len(used))
        self.fitted_["labels_key_categories"] = [categories[c] for c in used]
        n_components = self.params["n_components"]
        if n_components is not None and n_components < len(used):
            msg = (
                f"n_components={n_components} is fewer than the {len(used)} classes of "
                f"adata.obs[{key!r}]; pass n_components >= {len(used)}, or None."
            )
            raise ValueError(msg)
        return torch.from_numpy(lookup[codes])

    @property
    def n_slots(self) -> int:
        """Components the module is built with (the maximum when the model finds the clusters)."""
        p = self.params
        if p["prior"] != "mixture":
            return 1
        n_classes = len(self.fitted_.get("labels_key_categories", []))
        if p["n_components"] is not None:
            return p["n_components"]
        return n_classes if n_classes else MAX_COMPONENTS

    def _training_config(self, n_obs: int) -> TrainingConfig:
        config = super()._training_config(n_obs)
        if self.params["prior"] == "mixture":
            if self.params["epochs"] is None:
                config.epochs = min(config.epochs, MIXTURE_EPOCHS)
            # neither the warm start nor the anchored epochs are candidates for early stopping
            config.hold_epochs = sum(self.mixture_stages(config.epochs))
        return config

    def mixture_stages(self, epochs: int) -> tuple[int, int]:
        """Epochs of VAE warm start, then of the mixture anchored to its starting partition.

        The warm start takes a third of the epochs. Then, for a sixth of the rest, each clustered
        cell's q(y|x) is held at the component its starting cluster became, as a labelled cell's
        is: the encoder gathers each cluster into its Gaussian. Without it the Gaussians fitted to
        graph communities cut them (ARI of the initial communities 0.66 on human kidney, of
        argmax q(y|x) one epoch later 0.60). With ``labels_key`` (and no free component) the
        unlabelled cells are anchored at the class that label propagation gives them.
        """
        warm = max(1, epochs // 3) if epochs > 1 else 0
        return warm, min(max(1, (epochs - warm) // 6), max(epochs - warm - 1, 0))

    def _hooks(self, module: CountVAE, data: CellData, rng: np.random.Generator) -> dict[str, Any]:
        if self.params["prior"] != "mixture":
            return {}
        warm, anchored = self.mixture_stages(self._training_config(len(data)).epochs)
        cells = self.train_indices_
        auto = self.params["n_components"] is None and "label" not in data.obs

        def posterior(key: str, rows: np.ndarray) -> np.ndarray:
            module.eval()
            return predict(lambda b: module.encode(b["x"], b.get("batch"))[key], data, indices=rows)

        def on_epoch_start(epoch: int) -> None:
            if epoch == warm:
                start_mixture(module, data)
            elif epoch == warm + anchored and "anchor" in data.obs:
                del data.obs["anchor"]
            if epoch > warm and auto:
                usage = torch.as_tensor(posterior("y_log_probs", cells)).exp().mean(0)
                module.mixture.prune(usage, MIN_COMPONENT_USAGE)

        def start_mixture(module: CountVAE, data: CellData) -> None:
            # classes start from all their labelled cells, validation cells included
            rows = np.arange(len(data)) if "label" in data.obs else cells
            labels = data.obs["label"].cpu().numpy() if "label" in data.obs else None
            views = []
            if labels is None or module.n_components == len(self.fitted_["labels_key_categories"]):
                # the clusters (or the unlabelled cells' classes) come from the latent and the PCs
                if len(rows) > MAX_CLUSTERED_CELLS:  # a random subset, every labelled cell in it
                    keep = np.zeros(len(rows), dtype=bool) if labels is None else labels >= 0
                    others = np.flatnonzero(~keep)
                    n_more = min(max(MAX_CLUSTERED_CELLS - int(keep.sum()), 0), len(others))
                    more = np.random.default_rng(self.seed).choice(others, n_more, replace=False)
                    picked = np.sort(np.concatenate([np.flatnonzero(keep), more]))
                    rows, labels = rows[picked], None if labels is None else labels[picked]
                views = [
                    log_normalised_pcs(data.x, rows, log_normalise=self.is_count, random_state=self.seed)
                ]
            means, variances, weights, partition = initial_components(
                posterior("z_mean", rows),
                n_components=module.n_components,
                labels=labels,
                n_classes=len(self.fitted_.get("labels_key_categories", [])),
                auto=auto,
                views=views,
                random_state=self.seed,
            )
            module.mixture.initialise(means, variances, weights)
            module.mixture.active.copy_(torch.as_tensor(weights > 0))
            module.mixture_on.fill_(True)
            if anchored:
                anchor = torch.full((len(data),), -1, dtype=torch.int64)
                anchor[torch.as_tensor(rows)] = torch.as_tensor(partition, dtype=torch.int64)
                data.obs["anchor"] = anchor.to(data.x.device)

        return {"on_epoch_start": on_epoch_start}

    def _build_module(self) -> CountVAE:
        p = self.params
        return CountVAE(
            self.fitted_["n_input"],
            n_latent=p["n_latent"],
            hidden=p["hidden"],
            likelihood=p["likelihood"],
            prior=p["prior"],
            n_components=self.n_slots,
            n_batches=len(self.fitted_.get("batch_key_categories", [])),
            dropout=p["dropout"],
        )

    def _posterior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module_.encode(batch["x"], batch.get("batch"))

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._posterior(batch)["embedding"]

    @property
    def n_clusters(self) -> int:
        """Number of mixture components in use (the clusters), after pruning."""
        self._check_mixture("n_clusters")
        return int(self.module_.mixture.active.sum())

    def cluster_probabilities(self, adata: AnnData) -> np.ndarray:
        """q(y|x) of each cell over the components in use (mixture prior).

        Parameters
        ----------
        adata
            Cells with the training features.

        Returns
        -------
        ``(n_cells, n_clusters)`` probabilities; their argmax is the cluster.
        """
        self._check_mixture("cluster_probabilities")
        active = self.module_.mixture.active.cpu().numpy()
        return self._predict(adata, lambda b: self._posterior(b)["y_log_probs"].exp())[:, active]

    def predict_labels(self, adata: AnnData) -> tuple[np.ndarray, np.ndarray]:
        """Transferred labels (model fitted with ``labels_key``) and their confidence.

        Parameters
        ----------
        adata
            Cells with the training features.

        Returns
        -------
        The label of each cell (the class whose component has the highest q(y|x)) and that
        probability, max q(y|x) over the classes; it is low for cells that a free component explains.
        """
        self._check_mixture("predict_labels")
        classes = self.fitted_.get("labels_key_categories")
        if not classes:
            msg = "predict_labels needs a model fitted with labels_key=."
            raise ValueError(msg)
        n_classes = len(classes)
        proba = self._predict(adata, lambda b: self._posterior(b)["y_log_probs"][:, :n_classes].exp())
        return np.asarray(classes, dtype=object)[proba.argmax(1)], proba.max(1)

    def _check_mixture(self, what: str) -> None:
        self._check_fitted()
        if self.params["prior"] != "mixture":
            msg = f"{what} needs prior='mixture'."
            raise ValueError(msg)

    def uns_record(self) -> dict[str, Any]:
        """``{"params", "history"}`` for ``adata.uns``, and ``"n_clusters"`` for the mixture prior."""
        record = super().uns_record()
        if self.params["prior"] == "mixture":
            record["n_clusters"] = self.n_clusters
        return record

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

    def _decode(
        self, batch: dict[str, torch.Tensor], z: torch.Tensor, library_size: float | None
    ) -> dict[str, torch.Tensor]:
        log_library = batch.get("log_library")
        if library_size is not None and log_library is not None:
            log_library = torch.full_like(log_library, float(np.log(library_size)))
        params = self.module_.decode(z, log_library, batch.get("batch"))
        return {k: v.expand_as(params.get("log_mu", params.get("mean"))) for k, v in params.items()}
