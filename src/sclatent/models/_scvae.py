"""scVAE: VAE and Gaussian-mixture VAE on raw counts."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from .. import _anndata as io
from .._core.clustering import initial_components
from .._core.data import CellData, row_source
from .._core.device import resolve_device, seed_everything, seeded_rng
from .._core.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS
from .._core.likelihoods import sample as sample_likelihood
from .._core.nn import load_with_more_covariates, reparameterize, train_only_covariate_columns, unfreeze
from .._core.pca import log_normalised_pcs
from .._core.training import TrainingConfig, predict
from .._core.vae import PRIORS, CountVAE
from .._core.validation import Check, Choice, Integer, Key, Keys, Real, SeedLike, resolve_seed
from .._logging import logger
from ._base import BaseModel, arguments

#: Component slots when the mixture finds the number of clusters itself.
MAX_COMPONENTS = 64
#: Default epochs of the mixture prior (a third of them the VAE warm start).
MIXTURE_EPOCHS = 150
#: Training cells whose graph gives the number of clusters (a random subset above it).
MAX_CLUSTERED_CELLS = 50_000
#: Components used by fewer than this share of the training cells are switched off after each epoch.
MIN_COMPONENT_USAGE = 0.002
#: Arguments a query fit (:meth:`SCVAE.load_query`) may set apart from its reference's.
QUERY_TRAINING = (
    "epochs",
    "batch_size",
    "lr",
    "early_stopping",
    "patience",
    "validation_fraction",
    "random_state",
    "device",
    "progress",
)


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
    joined, their borders redrawn by k-means on both views (as many clusters as communities for
    ``n_components=None``; for a given ``n_components`` that many when there are enough
    communities, else the communities with further components starting small inside the most
    spread-out ones), or the labelled cells' classes for ``labels_key``; then
    each cell's q(y|x) held at its part (anchored) for a third of the rest (for all the rest but
    the last epoch with a given ``n_components``); then the free GMVAE, switching off components
    that lose their cells (``n_components=None``).
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
        Epochs over which the KL weight rises from 0 to 1; None: a quarter of the epochs for the
        Gaussian prior (on three simulated batches of PBMC 4k and of human kidney it lifts the
        scib-metrics total of ZINB with ``batch_key`` from 0.767 / 0.779 to 0.791 / 0.792), none
        for the mixture prior, whose warm start takes that place.
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

        The warm start takes a third of the epochs. Then each clustered cell's q(y|x) is held at
        the component its starting cluster became, as a labelled cell's is: the encoder gathers
        each cluster into its Gaussian. Without it the Gaussians fitted to graph communities cut
        them (ARI of the initial communities 0.66 on human kidney, of argmax q(y|x) one epoch
        later 0.60). With ``n_components=None`` or ``labels_key`` the anchor holds for a third of
        the remaining epochs, after which the free GMVAE refines its start (PBMC 4k, seeds 0-2,
        ARI 0.775 +- 0.003; from the communities before k-means redrew them, 0.762 +- 0.006, and
        0.753 +- 0.002 anchored to the end). A given ``n_components`` starts from k-means into
        that many clusters, from which the free GMVAE only drifts (PBMC, K = 8, seed 0: ARI
        0.780 when the anchor ended, 0.771 at the end), so its anchor holds for all the remaining
        epochs but the last. ARI at K = types (seeds 0-2) with a third / two thirds / all but one
        anchored: mouse bladder 0.689 +- 0.025 / 0.692 +- 0.021 / 0.702 +- 0.015, PBMC 0.770 +-
        0.002 / 0.774 +- 0.002 / 0.774 +- 0.003, human kidney 0.701 +- 0.041 / 0.714 +- 0.033 /
        0.721 +- 0.018. With ``labels_key`` (and no free component) the unlabelled cells are
        anchored at the class that label propagation gives them.
        """
        warm = max(1, epochs // 3) if epochs > 1 else 0
        all_but_last = max(epochs - warm - 1, 0)  # the mixture keeps at least one free epoch
        if self.params["n_components"] is not None and self.params["labels_key"] is None:
            return warm, all_but_last
        return warm, min(max(1, (epochs - warm) // 3), all_but_last)

    def _hooks(self, module: CountVAE, data: CellData, rng: np.random.Generator) -> dict[str, Any]:
        if self.params["prior"] != "mixture" or "query" in self.fitted_:
            return {}
        warm, anchored = self.mixture_stages(self._training_config(len(data)).epochs)
        cells = self.train_indices_
        auto = self.params["n_components"] is None and "label" not in data.obs

        def posterior(key: str, rows: np.ndarray) -> np.ndarray:
            module.eval()
            return predict(lambda b: module.encode(b["x"], b.get("covariates"))[key], data, indices=rows)

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
            if anchored:
                anchor = torch.full((len(data),), -1, dtype=torch.int64)
                anchor[torch.as_tensor(rows)] = torch.as_tensor(partition, dtype=torch.int64)
                data.obs["anchor"] = anchor.to(data.x.device)

        return {"on_epoch_start": on_epoch_start}

    @classmethod
    def load_query(cls, adata: AnnData, reference: SCVAE | str | os.PathLike[str], **training: Any) -> SCVAE:
        """A model that maps query cells onto a fitted reference (scArches' architecture surgery).

        The query model is the reference with room for the query's new categories of ``batch_key``
        and of the categorical covariates: each becomes a new input column of every encoder and
        decoder layer, its weights starting at zero. :meth:`fit` on the query then trains those
        weights alone (the reference's weights, mixture and batch-normalisation statistics stay as
        they are), so that :meth:`transform` puts query cells next to the reference's, and the
        reference's cells embed exactly as before. Genes are matched by name to the reference's,
        in its order: genes the query lacks are zeros (their number is logged), genes the
        reference lacks are dropped. With a mixture prior, clusters and transferred labels
        (:meth:`predict_labels`) carry over to the query.

        Parameters
        ----------
        adata
            The query cells, raw counts, with the reference's covariate columns in ``obs``.
        reference
            A fitted :class:`SCVAE`, or the path it was saved to.
        **training
            Training arguments of the query fit that differ from the reference's (``epochs``,
            ``batch_size``, ``lr``, ``early_stopping``, ``patience``, ``validation_fraction``,
            ``random_state``, ``device``, ``progress``).

        Returns
        -------
        The query model, fitted as far as :meth:`transform` needs; :meth:`fit` on ``adata`` adapts it.
        """
        from ._base import load

        if not isinstance(reference, SCVAE):
            reference = load(reference) if isinstance(reference, str | os.PathLike) else reference
            if not isinstance(reference, SCVAE):
                got = type(reference).__name__
                msg = f"reference: expected a fitted SCVAE or the path of a saved one, got {got}."
                raise TypeError(msg)
        reference._check_fitted()
        io.check_anndata(adata)
        genes = reference.fitted_.get("var_names")
        if genes is None:
            msg = "load_query needs a reference trained on genes (not on a use_rep= matrix)."
            raise ValueError(msg)
        unknown = sorted(set(training) - set(QUERY_TRAINING))
        if unknown:
            msg = f"load_query: {unknown} cannot change for a query; it may set {sorted(QUERY_TRAINING)}."
            raise TypeError(msg)
        query = cls(**{**reference.params, **training})
        query.fitted_ = copy.deepcopy(reference.fitted_)
        query.fitted_["random_state"] = resolve_seed(query.params["random_state"])
        columns, new_columns = query._add_query_categories(adata)
        names = list(map(str, adata.var_names))
        n_missing = int((io.column_positions(names, genes) < 0).sum()) if names != genes else 0
        if n_missing:
            logger.info(
                "load_query: %d of the reference's %d genes are missing in the query, set to zero.",
                n_missing,
                len(genes),
            )
        module = query._build_module()
        load_with_more_covariates(module, reference.module_.state_dict(), columns)
        device = resolve_device(training["device"]) if "device" in training else reference.device
        query.module_ = module.to(device).eval()
        query.fitted_["query"] = {"new_covariate_columns": new_columns, "reference_genes_missing": n_missing}
        query.fitted_["align_genes"] = True
        return query

    def _add_query_categories(self, adata: AnnData) -> tuple[list[int], list[int]]:
        """Append the query's unseen categories to ``fitted_``'s.

        Returns the positions, in the wider design, of the old design's columns and of the new ones.
        """
        p = self.params
        blocks = [("batch_key", p["batch_key"], None)] if p["batch_key"] is not None else []
        blocks += [("categorical_covariate_keys", k, k) for k in p["categorical_covariate_keys"] or []]
        columns, new_columns, start = [], [], 0
        for argument, column, key in blocks:
            known = self.fitted_[f"{argument}_categories"]
            known = known if key is None else known[key]
            unseen = [c for c in io.get_codes(adata, column, argument)[1] if c not in known]
            columns += range(start, start + len(known))
            new_columns += range(start + len(known), start + len(known) + len(unseen))
            start += len(known) + len(unseen)
            known.extend(unseen)
        for key in p["continuous_covariate_keys"] or []:
            io.get_numbers(adata, key, "continuous_covariate_keys")
            columns.append(start)
            start += 1
        self.fitted_["n_covariates"] = start
        return columns, new_columns

    def _fit(self, adata: AnnData) -> None:
        if "query" not in self.fitted_:
            super()._fit(adata)
            return
        new_columns = self.fitted_["query"]["new_covariate_columns"]
        if not new_columns:
            msg = (
                "the query brings no category of batch_key or the categorical covariates that the "
                "reference lacks, so there is nothing to train; embed it with transform()."
            )
            raise ValueError(msg)
        rng = seed_everything(self.seed)
        io.check_n_cells(adata.n_obs, self.params["batch_size"], self.params["validation_fraction"])
        module = copy.deepcopy(self.module_)  # a failed fit leaves the model as it was
        data = self._cell_data(adata, self.device, fitting=False)
        config = self._training_config(adata.n_obs)
        # the reference is trained: no KL warm-up, no mixture stages, and no weight decay, so that
        # the frozen weights' zero gradients leave them exactly as they are
        config.kl_warmup, config.hold_epochs, config.weight_decay = 0, 0, 0.0
        handles = train_only_covariate_columns(module, new_columns)
        try:
            self._train(module, data, config, rng)
        finally:
            unfreeze(module, handles)

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

    def differential_expression(
        self,
        adata: AnnData,
        groupby: str,
        group1: str | Sequence[str] | None = None,
        group2: str | None = None,
        *,
        delta: float = 0.25,
        fdr_target: float = 0.05,
        n_samples: int = 5,
        max_cells: int = 500,
        n_pairs: int = 10_000,
        transform_batch: str | Sequence[str] | None = None,
        random_state: int = 0,
    ) -> pd.DataFrame:
        """Bayesian differential expression between groups of cells, by change of means.

        For each comparison (``group1`` against ``group2``, or against all other cells), up to
        ``max_cells`` cells of each side are drawn, and ``n_samples`` draws of z ~ q(z|x) per cell
        decoded to expression in counts per 10,000 (:meth:`get_normalized_expression`). ``n_pairs``
        random pairs of draws, one from each side, give draws of each gene's log2 fold change
        ``log2(a + c) - log2(b + c)``, with c one count at the median library size of ``adata``'s
        cells, in counts per 10,000 (the scale of ``log1p`` after ``sc.pp.normalize_total``; on
        mouse bladder the top 50 genes of a cell type share 0.84 with ``sc.tl.rank_genes_groups``,
        against 0.53 with c = 0.1). ``proba_de`` is the share of the draws with ``|lfc| >=
        delta``, ``bayes_factor`` its log-odds, and ``is_de_fdr_<target>`` marks the most probable
        genes whose posterior expected false discovery rate (the mean of ``1 - proba_de`` over
        them) stays at most ``fdr_target`` (Boyeau et al. 2019; scvi-tools' "change" mode). Rank
        markers by ``lfc_mean``.

        Parameters
        ----------
        adata
            Cells with the training features (raw counts).
        groupby
            Column of ``adata.obs`` holding the groups (e.g. cell types or clusters).
        group1
            The group(s) to test, each against ``group2``; None: every group (but ``group2``).
        group2
            The reference group; None: all cells outside the tested group.
        delta
            Smallest absolute log2 fold change that counts as differential expression.
        fdr_target
            Target of the posterior expected false discovery rate of the calls.
        n_samples
            Draws of z per cell.
        max_cells
            Cells drawn from each side of a comparison (all when fewer).
        n_pairs
            Pairs of draws per comparison.
        transform_batch
            Decode every cell as if from this category (or these) of ``batch_key``, so that batch
            effects do not enter the fold changes; None: each cell's own.
        random_state
            Seed of the cells, the draws of z and the pairs.

        Returns
        -------
        One row per gene and comparison, by decreasing ``proba_de`` within each comparison:
        ``proba_de``, ``proba_not_de``, ``bayes_factor``, ``lfc_mean``, ``lfc_median``,
        ``lfc_std``, ``lfc_min``, ``lfc_max``, ``scale1``, ``scale2`` (model expression, counts per
        10,000), ``raw_mean1``, ``raw_mean2``, ``non_zeros_proportion1``,
        ``non_zeros_proportion2`` (observed counts), ``is_de_fdr_<target>``, ``comparison``,
        ``group1``, ``group2``; indexed by gene.
        """
        from .._core.de import change_of_means, fdr_calls

        delta = Real(low=0.0, low_open=True)("delta", delta)
        fdr_target = Real(low=0.0, high=1.0, low_open=True)("fdr_target", fdr_target)
        max_cells = Integer(minimum=1)("max_cells", max_cells)
        n_pairs = Integer(minimum=1)("n_pairs", n_pairs)
        codes, categories = io.get_codes(adata, groupby, "groupby")
        tests = categories if group1 is None else list(Keys()("group1", group1))
        for group in [*tests, *([] if group2 is None else [group2])]:
            if group not in categories:
                msg = f"group {group!r} is not a category of adata.obs[{groupby!r}] ({categories[:10]})."
                raise ValueError(msg)
        tests = [group for group in tests if group != group2]  # a group is not tested against itself
        if not tests:
            msg = f"group1 and group2 are the same group ({group2!r}); name two different groups."
            raise ValueError(msg)
        matrix, _ = self._input_matrix(adata, fitting=False)
        library = np.asarray(matrix.sum(1), dtype=np.float64).ravel()
        pseudocount = 1e4 / max(float(np.median(library)), 1.0)
        rng = np.random.default_rng(random_state)
        genes = np.asarray(self.fitted_["var_names"], dtype=object)
        tables = []
        for group in tests:
            inside = codes == categories.index(group)
            outside = ~inside & (codes >= 0) if group2 is None else codes == categories.index(group2)
            if not inside.any() or not outside.any():
                continue
            sides = []
            for mask in (inside, outside):
                cells = np.flatnonzero(mask)
                picked = np.sort(rng.choice(cells, min(max_cells, len(cells)), replace=False))
                draws = self._expression_draws(
                    adata[picked], n_samples, transform_batch, 1e4, int(rng.integers(2**31))
                )
                observed = io.column_means(matrix, mask), io.column_means(matrix, mask, nonzero=True)
                sides.append((draws, *observed))
            result = change_of_means(
                sides[0][0], sides[1][0], delta=delta, pseudocount=pseudocount, n_pairs=n_pairs, rng=rng
            )
            table = pd.DataFrame(result, index=pd.Index(genes, name="gene"))
            table["raw_mean1"], table["raw_mean2"] = sides[0][1], sides[1][1]
            table["non_zeros_proportion1"], table["non_zeros_proportion2"] = sides[0][2], sides[1][2]
            table[f"is_de_fdr_{fdr_target:g}"] = fdr_calls(table["proba_de"].to_numpy(), fdr_target)
            reference = "rest" if group2 is None else group2
            table["comparison"] = f"{group} vs {reference}"
            table["group1"], table["group2"] = group, reference
            tables.append(table.sort_values("proba_de", ascending=False, kind="stable"))
        if not tables:
            msg = f"no comparison of adata.obs[{groupby!r}] has cells on both sides; check group1 and group2."
            raise ValueError(msg)
        return pd.concat(tables)

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
        params = self.module_.decode(z, log_library, batch.get("covariates"))
        return {k: v.expand_as(params.get("log_mu", params.get("mean"))) for k, v in params.items()}
