"""``sl.pl.rnx``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _anndata as io
from ._utils import Palette, colours, finish, new_axes

#: Curves are drawn for K up to this share of N by default: beyond it N-1-K is small and R_NX swings.
K_MAX_SHARE = 0.5


def rnx(
    adata: AnnData,
    basis: str | Sequence[str] | None = None,
    *,
    key: str = "rnx",
    k_max: int | None = None,
    palette: Palette = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Plot R_NX(K) curves of embeddings on one axis (log K), with Local / Global SP in the legend.

    Run :func:`sclatent.tl.rnx` first. A sampled estimate (``tl.rnx(..., n_ref=...)``) is drawn with a
    band of one standard error either side and marked "sampled" in the legend.

    Near K = N the denominator of R_NX(K) = ((N-1) Q_NX(K) - K) / (N-1-K) tends to 0, so the last
    values swing on a handful of neighbours (and R_NX(N-2) is 0 or 1); by default the curves stop at
    K = N/2. The SP values in the legend always cover every K.

    Parameters
    ----------
    adata
        Annotated data with ``adata.uns[key]`` written by :func:`sclatent.tl.rnx`.
    basis
        Embedding(s) to draw, as scored (``"X_umap"`` or ``"umap"``); None: all scored ones.
    key
        Key of the scores in ``adata.uns``.
    k_max
        Largest K drawn; None: N/2.
    palette
        Colours of the curves: a colormap name (e.g. ``"Set1"``), a list, or a dict from basis (as
        given, or as scored) to colour; None: matplotlib's cycle.
    title
        Title; None: names the reference space.
    figsize
        Figure size; None: matplotlib's ``figure.figsize`` (``sc.set_figure_params`` sets it).
    ax
        Axes to draw on; None: a new figure.
    show
        Show the figure; None: scanpy's ``settings.autoshow``.
    save
        Save the figure into scanpy's ``settings.figdir``: True as ``rnx.<format>``, a string as a
        suffix of the name (``"_pbmc.pdf"`` -> ``rnx_pbmc.pdf``).
    return_fig
        Return the figure.

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
    if isinstance(palette, Mapping):  # keys as the user wrote them or as scored
        palette = {
            found: palette.get(name, palette.get(found))
            for name, (found, _) in zip(names, curves, strict=True)
        }
        palette = {name: colour for name, colour in palette.items() if colour is not None}
    fig, axes = new_axes(ax, figsize)
    ax = axes[0]
    limit = int(K_MAX_SHARE * adata.n_obs) if k_max is None else int(k_max)
    for (name, score), colour in zip(curves, colours(palette, [n for n, _ in curves]), strict=True):
        k, values = np.asarray(score["K"]), np.asarray(score["rnx"])
        shown = k <= limit
        (line,) = ax.plot(k[shown], values[shown], color=colour, label=_legend(name, score))
        if not score.get("exact", True) and "rnx_se" in score:
            se = np.asarray(score["rnx_se"])[shown]
            ax.fill_between(
                k[shown], values[shown] - se, values[shown] + se, color=line.get_color(), alpha=0.25
            )
    references = sorted({_reference(str(score["reference"])) for _, score in curves})
    ax.set_xscale("log")
    ax.set_xlabel("K (neighbourhood size)")
    ax.set_ylabel("$R_{NX}(K)$")
    ax.set_title(title if title is not None else f"Neighbourhoods kept from {' / '.join(references)}")
    ax.legend(title="embedding (Local SP, Global SP)", fontsize="small", title_fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return finish(fig, axes, name="rnx", show=show, save=save, return_fig=return_fig)


def _reference(key: str) -> str:
    """The reference space in words: ``X_pca`` -> ``PCA (X_pca)``, ``X`` -> ``adata.X``."""
    if key == "X":
        return "adata.X"
    plain = key.removeprefix("X_")
    return f"{plain.upper() if plain in ('pca', 'umap', 'tsne') else plain} ({key})"


def _legend(name: str, score: dict) -> str:
    label = name.removeprefix("X_")
    if score.get("exact", True):
        return f"{label} ({score['local_sp']:.3f}, {score['global_sp']:.3f})"
    return (
        f"{label}, sampled ({score['local_sp']:.3f}±{score['local_sp_se']:.3f}, "
        f"{score['global_sp']:.3f}±{score['global_sp_se']:.3f})"
    )
