"""The scVAE model: parameters, AnnData to tensors, the module, and the mixture's outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from anndata import AnnData

from ... import _anndata as io
from ..._core.data import CellData, row_source
from ..._core.modules import CountVAE
from ..._core.modules.count_vae import PRIORS
from ..._core.nn.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS
from ..._core.train import TrainingConfig
from ..._docs import shared_parameters
from ..._validation import Check, Choice, Integer, Key, Keys, SeedLike
from .._base import BaseModel, arguments
from .differential import DifferentialExpressionMixin
from .expression import ExpressionMixin
from .mixture_schedule import MAX_COMPONENTS, MIXTURE_EPOCHS, MixtureSchedule, mixture_stages
from .query import QueryMappingMixin


@shared_parameters
class SCVAE(QueryMappingMixin, ExpressionMixin, DifferentialExpressionMixin, BaseModel):
    """Variational autoencoder on raw counts, with a Gaussian or a Gaussian-mixture prior (scVAE).

    The encoder sees log1p counts; the decoder gives the parameters of a count likelihood whose mean
    is a share of the cell's observed library size. With ``prior="mixture"`` the model is scVAE's
    GMVAE: a cluster variable y with learnt weights p(y) and Gaussians p(z|y), q(z|x) shared by the
    components and the ELBO-optimal categorical q(y|x), y summed out exactly in closed form; its
    clusters are argmax q(y|x). The mixture trains in three stages: a third of the epochs as a
    warm start under the initial mixture (random means, unit variances, equal weights), whose
    latent means then give a starting partition whose parts become the components: the Leiden
    communities of the kNN graphs of the latent means and of the input's principal components
    joined, their borders redrawn by k-means on both views (as many clusters as communities for
    ``n_components=None``; for a given ``n_components`` that many when there are enough
    communities, else the communities with further components starting small inside the most
    spread-out ones), or the labelled cells' classes for ``labels_key``; then
    each cell's q(y|x) held at its part (anchored) for a third of the rest (for all the rest but
    the last epoch with a given ``n_components``); then the free GMVAE, switching off components
    that lose their cells (``n_components=None``).
    With ``batch_key`` it is a conditional VAE. The schedule is
    :class:`~sclatent.models._scvae.mixture_schedule.MixtureSchedule`; query mapping, expression and
    differential expression come from the mixins of the modules beside this one.

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
        Column of ``adata.obs`` to condition encoder and decoder on (one-hot); the covariate of
        ``transform_batch`` (:meth:`get_normalized_expression`, :meth:`differential_expression`).
    categorical_covariate_keys
        Further columns of ``adata.obs`` with categories (e.g. donor, chemistry), each injected
        one-hot like ``batch_key``.
    continuous_covariate_keys
        Columns of ``adata.obs`` with numbers (e.g. percent mitochondrial counts), injected
        standardised by their training mean and standard deviation.
    size_factor_key
        Column of ``adata.obs`` with each cell's known library size (positive), used instead of its
        observed total counts.
    {layer}
    use_rep
        Key of ``adata.obsm`` holding the input instead (with ``likelihood="gaussian"``).
    {n_latent}
    {hidden}
    {dropout}
    epochs
        Training epochs; None: 400 up to 20,000 cells, fewer above (150 with ``prior="mixture"``),
        early stopping usually ends sooner.
    {batch_size}
    {lr}
    kl_warmup
        Epochs over which the KL weight rises from 0 to 1; None: a quarter of the epochs for the
        Gaussian prior (on three simulated batches of PBMC 4k and of human kidney it lifts the
        scib-metrics total of ZINB with ``batch_key`` from 0.767 / 0.779 to 0.791 / 0.792), none
        for the mixture prior, whose warm start takes that place.
    {stopping}
    """

    tool = "scvae"

    checks: ClassVar[dict[str, Check]] = {
        "likelihood": Choice(LIKELIHOODS),
        "prior": Choice(PRIORS),
        "n_components": Integer(minimum=2, optional=True),
        "categorical_covariate_keys": Keys(),
        "continuous_covariate_keys": Keys(),
        "size_factor_key": Key(),
    }

    def __init__(
        self,
        *,
        likelihood: str = "zinb",
        prior: str = "gaussian",
        n_components: int | None = None,
        labels_key: str | None = None,
        batch_key: str | None = None,
        categorical_covariate_keys: Sequence[str] | None = None,
        continuous_covariate_keys: Sequence[str] | None = None,
        size_factor_key: str | None = None,
        layer: str | None = None,
        use_rep: str | None = None,
        n_latent: int = 10,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.1,
        epochs: int | None = None,
        batch_size: int = 128,
        lr: float = 1e-3,
        kl_warmup: int | None = None,
        early_stopping: bool = True,
        patience: int = 20,
        validation_fraction: float = 0.1,
        random_state: SeedLike = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        super().__init__(arguments(locals()))

    def _check_params(self, params: dict[str, Any]) -> None:
        if params["size_factor_key"] is not None and params["likelihood"] not in COUNT_LIKELIHOODS:
            msg = f"size_factor_key needs a count likelihood (likelihood={params['likelihood']!r})."
            raise ValueError(msg)
        named = [params["batch_key"], *(params["categorical_covariate_keys"] or [])]
        named += params["continuous_covariate_keys"] or []
        repeated = sorted({k for k in named if k is not None and named.count(k) > 1})
        if repeated:
            msg = f"{repeated} named more than once among batch_key and the covariate keys; name each once."
            raise ValueError(msg)
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
        if self.is_count:
            obs["log_library"] = self._log_library(adata, source)
        covariates = self._covariates(adata, fitting=fitting)
        if covariates is not None:
            obs["covariates"] = covariates
        if fitting and p["labels_key"] is not None:
            obs["label"] = self._label_codes(adata)
        return CellData(source, obs)

    def _log_library(self, adata: AnnData, source: Any) -> torch.Tensor:
        """Log library size of each cell: ``size_factor_key``'s, or the observed total counts.

        Observed totals are floored at one count, so that empty cells stay finite.
        """
        key = self.params["size_factor_key"]
        if key is None:
            return source.row_sums().clamp_min(1.0).log().float()
        sizes = io.get_numbers(adata, key, "size_factor_key")
        if not (sizes > 0).all():
            msg = f"size_factor_key={key!r}: adata.obs[{key!r}] holds values <= 0; sizes must be positive."
            raise ValueError(msg)
        return torch.from_numpy(np.log(sizes)).float()

    def _covariates(self, adata: AnnData, *, fitting: bool) -> torch.Tensor | None:
        """The ``(n_cells, n_covariates)`` design injected into encoder and decoder, or None.

        One-hot blocks of ``batch_key`` (first) and of each ``categorical_covariate_keys`` column,
        then the ``continuous_covariate_keys`` columns standardised by their training moments.
        """
        p = self.params
        # (argument, column): batch_key's categories are stored as a list, the others' by column
        keys = [("batch_key", None)] if p["batch_key"] is not None else []
        keys += [("categorical_covariate_keys", k) for k in p["categorical_covariate_keys"] or []]
        blocks = []
        for argument, key in keys:
            codes = self._codes(adata, argument, fitting=fitting, key=key)
            if (codes < 0).any():
                msg = f"adata.obs[{key or p['batch_key']!r}] has missing values; fill them (e.g. 'unknown')."
                raise ValueError(msg)
            categories = self.fitted_[f"{argument}_categories"]
            n_categories = len(categories if key is None else categories[key])
            blocks.append(torch.nn.functional.one_hot(codes, n_categories).float())
        moments = self.fitted_.setdefault("continuous_covariate_moments", {}) if fitting else None
        for key in p["continuous_covariate_keys"] or []:
            values = io.get_numbers(adata, key, "continuous_covariate_keys")
            if fitting:
                moments[key] = [float(values.mean()), float(values.std()) or 1.0]
            mean, std = self.fitted_["continuous_covariate_moments"][key]
            blocks.append(torch.from_numpy((values - mean) / std).float()[:, None])
        if fitting:
            self.fitted_["n_covariates"] = sum(block.shape[1] for block in blocks)
        return torch.cat(blocks, 1) if blocks else None

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
        if self.params["kl_warmup"] is None:
            config.kl_warmup = config.epochs // 4 if self.params["prior"] == "gaussian" else 0
        if self.params["prior"] == "mixture":
            if self.params["epochs"] is None:
                config.epochs = min(config.epochs, MIXTURE_EPOCHS)
            # neither the warm start nor the anchored epochs are candidates for early stopping
            config.hold_epochs = sum(self.mixture_stages(config.epochs))
        return config

    def mixture_stages(self, epochs: int) -> tuple[int, int]:
        """Epochs of VAE warm start, then of the mixture anchored to its starting partition.

        See :func:`~sclatent.models._scvae.mixture_schedule.mixture_stages`.
        """
        return mixture_stages(epochs, fixed_k=self._fixed_k)

    @property
    def _fixed_k(self) -> bool:
        """A given number of mixture components, without label transfer."""
        return self.params["n_components"] is not None and self.params["labels_key"] is None

    def _hooks(self, module: CountVAE, data: CellData, rng: np.random.Generator) -> dict[str, Any]:
        if self.params["prior"] != "mixture" or "query" in self.fitted_:
            return {}
        schedule = MixtureSchedule(
            module,
            data,
            self.train_indices_,
            epochs=self._training_config(len(data)).epochs,
            fixed_k=self._fixed_k,
            n_classes=len(self.fitted_.get("labels_key_categories", [])),
            log_normalise=self.is_count,
            random_state=self.seed,
            progress=self.params["progress"],
        )
        return {"on_epoch_start": schedule.on_epoch_start}

    def _fit(self, adata: AnnData) -> None:
        if "query" in self.fitted_:
            self._fit_query(adata)
        else:
            super()._fit(adata)

    def _build_module(self) -> CountVAE:
        p = self.params
        return CountVAE(
            self.fitted_["n_input"],
            n_latent=p["n_latent"],
            hidden=p["hidden"],
            likelihood=p["likelihood"],
            prior=p["prior"],
            n_components=self.n_slots,
            # models saved before covariates existed record only batch_key's categories
            n_covariates=self.fitted_.get("n_covariates", len(self.fitted_.get("batch_key_categories", []))),
            dropout=p["dropout"],
        )

    def _posterior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module_.encode(batch["x"], batch.get("covariates"))

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
        proba = self._predict(
            adata, lambda b: self._posterior(b)["y_log_probs"].exp(), "cluster probabilities"
        )
        return proba[:, active]

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
        proba = self._predict(
            adata, lambda b: self._posterior(b)["y_log_probs"][:, :n_classes].exp(), "label probabilities"
        )
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
