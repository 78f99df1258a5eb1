"""``sl.pl.rnx``."""

from __future__ import annotations

from collections.abc import Sequence

from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _anndata as io
from ._utils import finish, new_axes


def rnx(
    adata: AnnData,
    basis: str | Sequence[str] | None = None,
    *,
    key: str = "rnx",
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    palette: Sequence[str] | None = None,
) -> Figure | Axes | None:
    """Plot R_NX(K) curves of embeddings on one axis (log K), with Local / Global SP in the legend.

    Run :func:`sclatent.tl.rnx` first.

    Parameters
    ----------
    adata
        Annotated data with ``adata.uns[key]`` written by :func:`sclatent.tl.rnx`.
    basis
        Embedding(s) to draw, as scored (``"X_umap"`` or ``"umap"``); None: all scored ones.
    key
        Key of the scores in ``adata.uns``.
    ax
        Axes to draw on; None: a new figure.
    show
        Show the figure; None: scanpy's ``settings.autoshow``.
    return_fig
        Return the figure.
    palette
        Colours, one per curve (default matplotlib's cycle).

    Returns
    -------
    The figure when ``return_fig``, the axes when ``show=False``, else None.
    """
    scores = adata.uns.get(key)
    if not scores:
        msg = f"adata.uns[{key!r}] is missing; run sl.tl.rnx(adata, basis) first."
        raise io.MissingKeyError(msg)
    names = list(scores) if basis is None else [basis] if isinstance(basis, str) else list(basis)
    curves = []
    for name in names:
        found = name if name in scores else f"X_{name}"
        if found not in scores:
            msg = (
                f"basis={name!r} has no R_NX in adata.uns[{key!r}] (scored: {', '.join(scores)}); "
                f"run sl.tl.rnx(adata, {name!r}) first."
            )
            raise io.MissingKeyError(msg)
        curves.append((found, scores[found]))
    fig, ax = new_axes(ax)
    colours = list(palette) if palette is not None else [None] * len(curves)
    if len(colours) < len(curves):
        msg = f"palette has {len(colours)} colours for {len(curves)} curves; pass one per curve."
        raise ValueError(msg)
    for (name, score), colour in zip(curves, colours, strict=False):
        ax.plot(score["K"], score["rnx"], color=colour, label=_legend(name, score))
    references = sorted({str(score["reference"]) for _, score in curves})
    ax.set_xscale("log")
    ax.set_xlabel("K (neighbourhood size)")
    ax.set_ylabel("$R_{NX}(K)$")
    ax.set_title(f"Neighbourhood preservation vs {', '.join(references)}")
    ax.legend(title="embedding (Local SP, Global SP)", fontsize="small", title_fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return finish(fig, ax, show, return_fig)


def _legend(name: str, score: dict) -> str:
    label = name.removeprefix("X_")
    if score.get("exact", True):
        return f"{label} ({score['local_sp']:.3f}, {score['global_sp']:.3f})"
    return (
        f"{label} ({score['local_sp']:.3f}±{score['local_sp_se']:.3f}, "
        f"{score['global_sp']:.3f}±{score['global_sp_se']:.3f})"
    )
