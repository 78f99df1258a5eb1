"""``sl.pl.history``."""

from __future__ import annotations

from collections.abc import Sequence

from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _anndata as io
from ._utils import finish, new_axes


def history(
    adata: AnnData,
    key: str,
    *,
    metrics: Sequence[str] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Plot the per-epoch training history a tool stored in ``adata.uns[key]["history"]``.

    Parameters
    ----------
    adata
        Annotated data after ``sl.tl.scvae``, ``sl.tl.groupenc`` or ``sl.tl.ae_sampling``.
    key
        The tool's key in ``adata.uns`` (e.g. ``"scvae"``).
    metrics
        History entries to draw on one axis (e.g. ``("val_elbo",)``); None: ``train_loss`` and
        ``val_loss``.
    ax
        Axes to draw on; None: a new figure.
    show
        Show the figure; None: scanpy's ``settings.autoshow``.
    return_fig
        Return the figure.

    Returns
    -------
    The figure when ``return_fig``, the axes when ``show=False``, else None.
    """
    record = adata.uns.get(key)
    if not isinstance(record, dict) or "history" not in record:
        msg = f"adata.uns[{key!r}] holds no training history; run the tool (e.g. sl.tl.{key}) first."
        raise io.MissingKeyError(msg)
    stored = record["history"]
    names = (
        list(metrics)
        if metrics is not None
        else [m for m in ("train_loss", "val_loss") if len(stored.get(m, []))]
    )
    missing = [m for m in names if m not in stored]
    if missing:
        msg = f"{missing} not in the history of adata.uns[{key!r}] (entries: {', '.join(stored)})."
        raise io.MissingKeyError(msg)
    fig, ax = new_axes(ax)
    for name in names:
        values = list(stored[name])
        ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(names[0] if len(names) == 1 else "value")
    ax.set_title(f"{key} training")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return finish(fig, ax, show, return_fig)
