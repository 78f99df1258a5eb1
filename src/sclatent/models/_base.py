"""Fit / transform / save / load machinery shared by every model."""

from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import torch
from anndata import AnnData
from torch import nn

from .. import _anndata as io
from .._core.data import CellData
from .._core.runtime.device import resolve_device, seed_everything
from .._core.train.loop import TrainingConfig, predict, train
from .._io import atomic_path, check_input_file, check_output_file, versions
from .._validation import TRAINING, Check, check_arguments, check_training_combination, resolve_seed

_FORMAT = "sclatent-model"
_REGISTRY: dict[str, type[BaseModel]] = {}


class BaseModel(ABC):
    """A model with the scikit-learn-like life cycle ``fit`` -> ``transform``, saved to one file.

    Subclasses declare their keyword arguments in ``__init__`` and pass them on as a dict; they
    implement :meth:`_cell_data`, :meth:`_build_module` and :meth:`_embed`.
    """

    #: Default key in ``adata.obsm`` / ``adata.uns`` of the matching ``tl`` function.
    tool: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    #: Checks of the constructor's arguments beyond the shared training ones.
    checks: ClassVar[dict[str, Check]] = {}

    #: Epochs of ``epochs=None`` up to 20,000 cells (fewer above: :func:`default_epochs`).
    max_epochs: ClassVar[int] = 400

    def __init__(self, params: dict[str, Any]) -> None:
        params = check_arguments(params, TRAINING | self.checks)
        check_training_combination(params)
        self._check_params(params)
        # plain Python values only (lists, not tuples), so that save, load and h5ad can store them
        self.params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        self.fitted_: dict[str, Any] = {}
        self.history_: dict[str, list[float]] = {}
        self.module_: nn.Module | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        state = "fitted" if self.module_ is not None else "not fitted"
        return f"{type(self).__name__}({args}) [{state}]"

    def _check_params(self, params: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Combinations of the model's own arguments that cannot work; raise naming the fix."""

    # --- input helpers --------------------------------------------------------------------------
    def _input_matrix(self, adata: AnnData, *, fitting: bool) -> tuple[io.Matrix, str]:
        """The input chosen by ``layer`` / ``use_rep``, checked finite and, after fit, compatible."""
        layer, use_rep = self.params.get("layer"), self.params.get("use_rep")
        matrix = io.get_matrix(adata, layer=layer, use_rep=use_rep)
        what = io.describe_input(layer, use_rep)
        io.check_finite(matrix, what)
        names = list(map(str, adata.var_names)) if use_rep in (None, "X") else None
        if fitting:
            self.fitted_["n_input"] = int(matrix.shape[1])
            self.fitted_["var_names"] = names
            return matrix, what
        trained = self.fitted_.get("var_names")
        if self.fitted_.get("align_genes") and names is not None and names != trained:
            # a query model (SCVAE.load_query) matches genes by name, zeros for the missing ones
            return io.align_columns(matrix, names, trained), what
        if matrix.shape[1] != self.fitted_["n_input"]:
            msg = (
                f"{what} has {matrix.shape[1]} features but the model was trained on "
                f"{self.fitted_['n_input']}; give it the same features."
            )
            raise ValueError(msg)
        if trained is not None and names is not None and names != trained:
            msg = (
                f"adata.var_names differ from the {len(trained)} genes the model was trained on; "
                "subset and order them first: adata[:, model.fitted_['var_names']]."
            )
            raise ValueError(msg)
        return matrix, what

    def _codes(self, adata: AnnData, argument: str, *, fitting: bool, key: str | None = None) -> torch.Tensor:
        """Integer codes of the ``adata.obs`` column named by parameter ``argument``.

        For an argument naming several columns, ``key`` is the column; its training categories are
        kept in ``fitted_[f"{argument}_categories"][key]``.
        """
        several = key is not None
        key = self.params[argument] if key is None else key
        codes, categories = io.get_codes(adata, key, argument)
        if fitting:
            if several:
                self.fitted_.setdefault(f"{argument}_categories", {})[key] = categories
            else:
                self.fitted_[f"{argument}_categories"] = categories
            known = categories
        else:
            known = self.fitted_[f"{argument}_categories"]
            known = known[key] if several else known
            unknown = sorted(set(categories) - set(known))
            if unknown:
                msg = f"adata.obs[{key!r}] has categories unseen in training: {unknown[:5]}."
                raise ValueError(msg)
            lookup = np.array([known.index(c) for c in categories] + [-1], dtype=np.int64)
            codes = lookup[codes]
        return torch.from_numpy(codes)

    # --- to implement ---------------------------------------------------------------------------
    @abstractmethod
    def _cell_data(self, adata: AnnData, device: torch.device, *, fitting: bool) -> CellData:
        """Validate ``adata`` and wrap its input for the module; record what fit learnt."""

    @abstractmethod
    def _build_module(self) -> nn.Module:
        """The untrained module, sized from :attr:`fitted_`."""

    @abstractmethod
    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embedding of a batch of cells (module in eval mode)."""

    def _training_config(self, n_obs: int) -> TrainingConfig:
        p = self.params
        return TrainingConfig(
            epochs=p["epochs"] if p["epochs"] is not None else default_epochs(n_obs, self.max_epochs),
            batch_size=p["batch_size"],
            lr=p["lr"],
            kl_warmup=p.get("kl_warmup") or 0,
            early_stopping=p["early_stopping"],
            patience=p["patience"],
            progress=p["progress"],
            description=self.tool,
        )

    # --- life cycle -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device the fitted module lives on."""
        self._check_fitted()
        return next(self.module_.parameters()).device

    def fit(self, adata: AnnData | str | os.PathLike[str]) -> Self:
        """Train on the cells of ``adata``; the AnnData is not modified.

        Parameters
        ----------
        adata
            The training data, or the path of an ``.h5ad`` file or ``.zarr`` store, whose matrix is
            then streamed from disk (:func:`sclatent.read_backed`).

        Returns
        -------
        The fitted model.
        """
        adata = _open(adata)
        # train a copy and take over its state only when training succeeded, so that an error or an
        # interrupted refit (Ctrl-C) leaves this model as it was
        staged = copy.copy(self)
        staged._fit(adata)
        self.__dict__.update(staged.__dict__)
        return self

    def _fit(self, adata: AnnData) -> None:
        device = resolve_device(self.params["device"])
        self.fitted_ = {"random_state": resolve_seed(self.params["random_state"])}
        self.history_, self.module_ = {}, None
        rng = seed_everything(self.seed)
        data = self._cell_data(adata, device, fitting=True)
        self._train(self._build_module().to(device), data, self._training_config(adata.n_obs), rng)

    def _train(
        self, module: nn.Module, data: CellData, config: TrainingConfig, rng: np.random.Generator
    ) -> None:
        """Split ``data``'s cells into training and validation cells, train ``module``, keep it."""
        n_val = round(len(data) * self.params["validation_fraction"])
        order = rng.permutation(len(data))
        self.train_indices_, self.validation_indices_ = (
            np.sort(order[n_val:]),
            np.sort(order[:n_val]),
        )
        self.history_, self.fitted_["kept_epoch"] = train(
            module, data, order[n_val:], order[:n_val], config, rng, **self._hooks(module, data, rng)
        )
        self.module_ = module
        self.fitted_["device"] = str(data.x.device)
        self.fitted_["epochs"], self.fitted_["kl_warmup"] = config.epochs, config.kl_warmup

    @property
    def seed(self) -> int:
        """The seed of the last fit: ``random_state``, or the fresh seed drawn for ``random_state=None``."""
        return self.fitted_.get("random_state", self.params["random_state"])

    def _hooks(self, module: nn.Module, data: CellData, rng: np.random.Generator) -> dict[str, Any]:
        """Extra keyword arguments of :func:`~sclatent._core.train.loop.train` for ``module``."""
        return {}

    def transform(self, adata: AnnData | str | os.PathLike[str]) -> np.ndarray:
        """Embed the cells of ``adata``, seen in training or not.

        Parameters
        ----------
        adata
            Cells with the features the model was trained on, or the path of an ``.h5ad`` file or
            ``.zarr`` store read from disk block by block.

        Returns
        -------
        The embedding, one row per cell.
        """
        return self._predict(adata, self._embed)

    def _predict(
        self, adata: AnnData | str | os.PathLike[str], fn: Any, what: str = "embedding"
    ) -> np.ndarray:
        """``fn`` of every cell's minibatch; a bar labelled ``what`` on large data with ``progress``."""
        adata = _open(adata)
        self._check_fitted()
        self.module_.eval()
        label = f"{self.tool}: {what}" if self.params.get("progress") else None
        return predict(fn, self._cell_data(adata, self.device, fitting=False), progress=label)

    def _check_fitted(self) -> None:
        if self.module_ is None:
            msg = f"This {type(self).__name__} is not fitted yet; call .fit(adata) first."
            raise RuntimeError(msg)

    # --- persistence ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the fitted model (parameters, weights, history) to one file.

        The file is written beside its destination under a temporary name, then renamed into place,
        so a failed write leaves any previous file intact.

        Parameters
        ----------
        path
            Destination file, conventionally ``*.pt``.
        overwrite
            Replace an existing file.
        """
        self._check_fitted()
        path = check_output_file(path, "path", overwrite=overwrite)
        state = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
        checkpoint = {
            "format": _FORMAT,
            "class": type(self).__name__,
            "params": self.params,
            "fitted": self.fitted_,
            "history": self.history_,
            "state_dict": state,
            "versions": versions(),
        }
        with atomic_path(path) as temporary:
            torch.save(checkpoint, temporary)

    def uns_record(self) -> dict[str, Any]:
        """``{"params", "history"}`` for ``adata.uns``: plain values only, so h5ad can store them."""
        params = dict(self.params)
        params["epochs"] = self.fitted_.get("epochs", params["epochs"])
        if "kl_warmup" in params:
            params["kl_warmup"] = self.fitted_.get("kl_warmup", params["kl_warmup"])
        params["epochs_run"] = len(self.history_.get("train_loss", []))
        params["kept_epoch"] = self.fitted_.get("kept_epoch")
        params["device"] = self.fitted_.get("device", params["device"])
        params["requested_device"] = self.params["device"]
        params["random_state"] = self.seed
        params["versions"] = versions()
        return {"params": params, "history": {k: list(v) for k, v in self.history_.items()}}


def _open(adata: AnnData | str | os.PathLike[str]) -> AnnData:
    """The AnnData itself, or for a path the file opened with its matrix left on disk."""
    io.check_anndata(adata, path_allowed=True)
    if isinstance(adata, AnnData):
        return adata
    from .._io import read_anndata

    return read_anndata(adata, backed=True)


def arguments(local_vars: dict[str, Any]) -> dict[str, Any]:
    """A constructor's arguments from its ``locals()``."""
    return {k: v for k, v in local_vars.items() if k not in ("self", "__class__")}


def load(path: str | os.PathLike[str], *, device: str = "auto") -> BaseModel:
    """Load a model written by ``model.save(path)``.

    Parameters
    ----------
    path
        The file.
    device
        Where to put the model: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    The fitted model, of the class it was saved from.
    """
    target = resolve_device(device)
    path = check_input_file(path, "path")
    not_ours = f"{os.fspath(path)!r} is not a model saved by sclatent (model.save)"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports a foreign file in many ways (zip, pickle, EOF errors)
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{not_ours}: torch cannot read it ({type(err).__name__}: {reason}).") from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != _FORMAT:
        raise ValueError(f"{not_ours}.")
    try:
        model = _REGISTRY[checkpoint["class"]](**checkpoint["params"])
        model.fitted_ = dict(checkpoint["fitted"])
        model.history_ = dict(checkpoint["history"])
        module = model._build_module()
        module.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        msg = (
            f"{os.fspath(path)!r} is a damaged sclatent model, or one from an incompatible version "
            f"(saved with {checkpoint.get('versions', 'unknown versions')}): {type(err).__name__}: {err}"
        )
        raise ValueError(msg[:600]) from err
    model.module_ = module.to(target).eval()
    return model


def default_epochs(n_obs: int, most: int = 400) -> int:
    """Epochs when the user gives none: ``most`` up to 20,000 cells, then as many training steps.

    The scvi-tools rule: above 20,000 cells an epoch holds more minibatches, so fewer epochs take the
    same number of optimisation steps (``most=400``: 8 epochs at 1M cells).
    """
    return int(min(most, max(1, round(most * 20_000 / n_obs))))
