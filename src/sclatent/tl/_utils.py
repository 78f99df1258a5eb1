"""What every ``tl`` function does after choosing its model: fit, then write outputs."""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from anndata import AnnData

from .._anndata import check_anndata
from .._docs import fill, parameter_section
from .._io import read_anndata
from .._logging import logger
from .._validation import TRAINING, Check, Key, flag
from ..models import BaseModel

Tool = TypeVar("Tool", bound=Callable[..., Any])


def model_tool(model: type[BaseModel]) -> Callable[[Tool], Tool]:
    """Decorator: ``fn(adata, *, key_added, copy, **params)`` takes ``model``'s arguments as ``params``.

    The function's signature, type hints and documentation get ``model``'s parameters, in its
    order, between its own (the ``{model}`` line of its docstring), so that ``help()``, Sphinx and the
    command line show them all while they are written once, in the model. The argument checks the
    command line reads are ``fn.checks``.
    """

    def decorate(function: Tool) -> Tool:
        own = inspect.signature(function).parameters
        taken = list(inspect.signature(model).parameters.values())
        leading = [p for p in own.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        trailing = [p for p in leading if p.kind is inspect.Parameter.KEYWORD_ONLY]
        parameters = [*[p for p in leading if p not in trailing], *taken, *trailing]
        function.__signature__ = inspect.signature(function).replace(parameters=parameters)
        function.__annotations__ = {**typing.get_type_hints(model.__init__), **function.__annotations__}
        function.__doc__ = fill(function.__doc__ or "", {"model": parameter_section(model)})
        return with_checks(TRAINING | model.checks)(function)

    return decorate


def with_checks(checks: Mapping[str, Check]) -> Callable[[Tool], Tool]:
    """Decorator: record the argument checks of a ``tl`` function as ``fn.checks`` (the CLI reads them)."""

    def decorate(function: Tool) -> Tool:
        function.checks = dict(checks)
        return function

    return decorate


def output_target(adata: AnnData, *, copy: bool, tool: str) -> AnnData:
    """The AnnData a tool writes into: a copy of ``adata``, or ``adata`` itself.

    A view becomes an AnnData of its own first, as scanpy's tools make it (without anndata's
    warning about setting elements of a view).
    """
    if copy:
        return adata.copy()
    if adata.is_view:
        logger.info("%s: adata is a view; writing into it makes it an AnnData of its own", tool)
        adata._init_as_actual(adata.copy())
    return adata


def fit_and_write(
    model: BaseModel,
    adata: AnnData | str | os.PathLike[str],
    *,
    key_added: str | None,
    copy: bool,
    extra: Callable[[AnnData, str], None] | None = None,
    inputs: Callable[[AnnData], AnnData] | None = None,
) -> AnnData | None:
    """Fit ``model`` on ``adata``, then write ``obsm["X_<key>"]`` and ``uns[key]``.

    Nothing is written unless training and every prediction succeed.

    Parameters
    ----------
    model
        The unfitted model.
    adata
        The data, or the path of an ``.h5ad`` file / ``.zarr`` store, opened with its matrix on disk
        (:func:`sclatent.read_backed`); the opened AnnData is then returned with the outputs.
    key_added
        Key of the outputs; default the model's tool name.
    copy
        Write into a copy and return it.
    extra
        Writes further outputs (``obs``, ``obsm``, ``varm``, ``uns``) into an empty AnnData with the
        cells and features of ``adata``, given the key; they are copied into the target.
    inputs
        Given the (opened) ``adata``, what the model reads, when that is not ``adata`` itself (e.g.
        PCs computed on the fly).

    Returns
    -------
    The copy when ``copy=True``, the opened AnnData when given a path, else None.
    """
    check_anndata(adata, path_allowed=True)
    key = Key(storable=True)("key_added", key_added) or model.tool
    copy = flag("copy", copy)
    from_path = not isinstance(adata, AnnData)
    if from_path:
        adata = read_anndata(adata, backed=True)
    model_inputs = adata if inputs is None else inputs(adata)
    model.fit(model_inputs)
    embedding = model.transform(model_inputs)
    staged = AnnData(obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    if extra is not None:
        extra(staged, key)
    target = output_target(adata, copy=copy and not from_path, tool=model.tool)
    target.obsm[f"X_{key}"] = embedding
    for field in ("obsm", "varm", "uns"):
        for name, value in getattr(staged, field).items():
            getattr(target, field)[name] = value
    for name in staged.obs.columns:
        target.obs[name] = staged.obs[name].values
    target.uns[key] = model.uns_record()
    history, kept = model.history_, model.fitted_["kept_epoch"]
    added = [f"obsm[{name!r}]" for name in (f"X_{key}", *staged.obsm)]
    added += [f"{field}[{name!r}]" for field in ("obs", "varm", "uns") for name in getattr(staged, field)]
    logger.info(
        "%s: trained %d epochs on %s, kept epoch %d%s; added %s, uns[%r]",
        model.tool,
        len(history["train_loss"]),
        model.fitted_["device"],
        kept + 1,
        f" (val_loss {history['val_loss'][kept]:.4g})" if history.get("val_loss") else "",
        ", ".join(added),
        key,
    )
    return target if copy or from_path else None
