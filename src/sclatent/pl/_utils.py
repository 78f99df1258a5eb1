"""What every plot does at the end: show, or hand back the figure or the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (5.5, 4)) -> tuple[Figure, Axes]:
    """The given axes and their figure, or a new figure with one axes."""
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def finish(fig: Figure, ax: Axes, show: bool | None, return_fig: bool) -> Figure | Axes | None:
    """Show (``show=None``: scanpy's ``settings.autoshow``), then return the figure or the axes."""
    if show is None:
        import scanpy as sc

        show = sc.settings.autoshow and not return_fig
    if show:
        plt.show()
    if return_fig:
        return fig
    return None if show else ax
