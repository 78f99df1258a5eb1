"""Query mapping onto a fitted SCVAE (scArches' architecture surgery): :class:`QueryMappingMixin`."""

from __future__ import annotations

import copy
import os
from typing import Any, Self

from anndata import AnnData

from ... import _anndata as io
from ..._core.nn.surgery import load_with_more_covariates, train_only_covariate_columns, unfreeze
from ..._core.runtime import resolve_device, seed_everything
from ..._logging import logger
from ..._validation import resolve_seed

#: Arguments a query fit (:meth:`QueryMappingMixin.load_query`) may set apart from its reference's.
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


class QueryMappingMixin:
    """:meth:`load_query` and the query's fit, which trains only the weights of its new categories."""

    @classmethod
    def load_query(cls, adata: AnnData, reference: Self | str | os.PathLike[str], **training: Any) -> Self:
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
        from .._base import load

        if not isinstance(reference, cls):
            reference = load(reference) if isinstance(reference, str | os.PathLike) else reference
            if not isinstance(reference, cls):
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

    def _fit_query(self, adata: AnnData) -> None:
        """Train the weights of the query's new covariate columns alone."""
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
