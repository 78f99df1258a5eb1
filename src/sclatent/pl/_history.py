"""``sl.pl.history``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import _anndata as io
from ._utils import colours, finish, new_axes

#: History entries drawn on one panel (the objective, on the same scale).
LOSSES = ("train_loss", "val_loss")


def history(
    adata: AnnData,
    key: str | Sequence[str],
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
) -> Figure | Axes | list[Axes] | None:
    """Plot the per-epoch training history that tools store in ``adata.uns[key]["history"]``.

    ``train_loss`` and ``val_loss`` share a panel; every other entry (``val_elbo``, ``val_kl``, ...)
    gets its own, as their scales differ. A dotted line marks the epoch whose weights the model kept
    (the best held-out one with early stopping). Several keys draw several models, one colour each.

    Parameters
    ----------
    adata
        Annotated data after ``sl.tl.scvae``, ``sl.tl.groupenc`` or ``sl.tl.ae_sampling``.
    key
        The tool's key in ``adata.uns`` (e.g. ``"scvae"``), or several.
    metrics
        History entries to draw (e.g. ``("val_loss", "val_kl")``); None: ``train_loss`` and
        ``val_loss``.
    title
        Title of the figure; None: the keys.
    figsize
        Figure size; None: matplotlib's ``figure.figsize`` per panel.
    ax
        Axes to draw on (one panel only); None: a new figure.
    show
        Show the figure; None: scanpy's ``settings.autoshow``.
    save
        Save the figure into scanpy's ``settings.figdir``: True as ``history.<format>``, a string as a
        suffix of the name (``"_scvae.pdf"`` -> ``history_scvae.pdf``).
    return_fig
        Return the figure.

    Returns
    -------
    The figure when ``return_fig``, the axes (a list for several panels) when ``show=False``, else
    None.
    """
    keys = [key] if isinstance(key, str) else list(key)
    records = {k: _history_of(adata, k) for k in keys}
    names = (
        list(metrics)
        if metrics is not None
        else [m for m in LOSSES if any(m in h for h, _ in records.values())]
    )
    for k, (stored, _) in records.items():
        missing = [m for m in names if m not in stored]
        if missing and (metrics is not None or len(missing) == len(names)):
            msg = f"{missing} not in the history of adata.uns[{k!r}] (entries: {', '.join(stored)})."
            raise io.MissingKeyError(msg)
    panels = [[m for m in names if m in LOSSES]] + [[m] for m in names if m not in LOSSES]
    panels = [panel for panel in panels if panel]
    fig, axes = new_axes(ax, figsize, n_panels=len(panels))
    several = len(keys) > 1
    key_colours = colours(list(mpl.rcParams["axes.prop_cycle"].by_key()["color"]), keys)
    for ax, panel in zip(axes, panels, strict=True):
        for index, (k, (stored, kept)) in enumerate(records.items()):
            for m in panel:
                if m not in stored:
                    continue
                values = np.asarray(stored[m], dtype=float)
                colour = key_colours[index] if several else None
                style = "--" if several and m.startswith("val_") else "-"
                label = f"{k}: {m}" if several else m
                ax.plot(
                    np.arange(1, len(values) + 1),
                    values,
                    style,
                    color=colour,
                    label=label,
                    marker="o" if len(values) < 30 else None,
                )
            if kept is not None:
                ax.axvline(
                    kept + 1,
                    color=key_colours[index] if several else "grey",
                    linestyle=":",
                    label=f"{k}: kept epoch {kept + 1}" if several else f"kept epoch {kept + 1}",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (negative objective)" if panel[0] in LOSSES else panel[0])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
        ax.grid(True, alpha=0.3)
    heading = title if title is not None else f"{', '.join(keys)} training"
    if len(axes) == 1:
        axes[0].set_title(heading)
    else:
        fig.suptitle(heading)
        fig.tight_layout()
    return finish(fig, axes, name="history", show=show, save=save, return_fig=return_fig)


def _history_of(adata: AnnData, key: str) -> tuple[dict, int | None]:
    """The stored history of ``adata.uns[key]`` and its kept epoch (0-based; None if not recorded)."""
    record = adata.uns.get(key)
    if not isinstance(record, dict) or "history" not in record:
        msg = f"adata.uns[{key!r}] holds no training history; run the tool (e.g. sl.tl.{key}) first."
        raise io.MissingKeyError(msg)
    kept = record.get("params", {}).get("kept_epoch")
    return record["history"], None if kept is None else int(kept)
