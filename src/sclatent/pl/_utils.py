"""What every plot shares with scanpy's: sizes, palettes, saving into ``figdir``, show or return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from .._io import FIGURE_SUFFIXES
from .._logging import logger

Palette = str | Colormap | Sequence[str] | Mapping[str, str] | None


def new_axes(
    ax: Axes | None, figsize: tuple[float, float] | None, n_panels: int = 1
) -> tuple[Figure, list[Axes]]:
    """The given axes and their figure, or a new figure of ``n_panels`` axes side by side.

    ``figsize`` None: matplotlib's ``figure.figsize``, which ``sc.set_figure_params`` sets, per panel.
    """
    if ax is not None:
        if n_panels != 1:
            msg = f"this plot draws {n_panels} panels; pass ax=None (a new figure) instead of one axes."
            raise ValueError(msg)
        return ax.figure, [ax]
    width, height = figsize if figsize is not None else mpl.rcParams["figure.figsize"]
    if figsize is None:
        width *= n_panels
    fig, axes = plt.subplots(1, n_panels, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def colours(palette: Palette, labels: Sequence[str]) -> list[str | None]:
    """One colour per label from a palette as scanpy takes it.

    Parameters
    ----------
    palette
        None (matplotlib's colour cycle), a colormap or its name (e.g. ``"Set1"``, ``"viridis"``), a
        list of colours (cycled), or a dict from label to colour.
    labels
        What gets a colour, in order.
    """
    if palette is None:
        return [None] * len(labels)
    if isinstance(palette, Mapping):
        missing = [label for label in labels if label not in palette]
        if missing:
            msg = f"palette has no colour for {missing}; give one for each of {list(labels)}."
            raise ValueError(msg)
        return [palette[label] for label in labels]
    if isinstance(palette, str | Colormap):
        if isinstance(palette, str) and palette not in mpl.colormaps:
            msg = f"palette={palette!r} is not a matplotlib colormap; pass its name, a list or a dict."
            raise ValueError(msg)
        cmap = mpl.colormaps[palette] if isinstance(palette, str) else palette
        n = getattr(cmap, "N", 256)
        if n <= 32:  # a qualitative map: its own colours in order
            return [mpl.colors.to_hex(cmap(i % n)) for i in range(len(labels))]
        return [mpl.colors.to_hex(cmap(x)) for x in _spread(len(labels))]
    listed = list(palette)
    if not listed:
        msg = "palette is empty; pass at least one colour."
        raise ValueError(msg)
    return [listed[i % len(listed)] for i in range(len(labels))]


def _spread(n: int) -> list[float]:
    return [0.5] if n == 1 else [i / (n - 1) for i in range(n)]


def figure_path(name: str, save: bool | str) -> Path:
    """Where scanpy saves a plot: ``figdir/<name><save>``.

    The format is scanpy's ``settings.file_format_figs`` unless ``save`` ends with a figure suffix.
    """
    import scanpy as sc

    suffix = save if isinstance(save, str) else ""
    extension = next((e for e in FIGURE_SUFFIXES if suffix.lower().endswith(e)), None)
    if extension is None:
        extension = f".{sc.settings.file_format_figs}"
    else:
        suffix = suffix[: -len(extension)]
    return Path(sc.settings.figdir) / f"{name}{suffix}{extension}"


def finish(
    fig: Figure,
    axes: list[Axes],
    *,
    name: str,
    show: bool | None,
    save: bool | str | None,
    return_fig: bool,
) -> Figure | Axes | list[Axes] | None:
    """Save (``save``, as scanpy), show (None: scanpy's ``settings.autoshow``), return figure or axes."""
    import scanpy as sc

    if save:
        path = figure_path(name, save)
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.warning("saving figure to file %s", path)  # as scanpy reports it
        fig.savefig(path, bbox_inches="tight")  # at rcParams["savefig.dpi"], as sc.set_figure_params sets
    if show is None:
        show = sc.settings.autoshow and not return_fig and not save
    if show:
        plt.show()
    if return_fig:
        return fig
    if show:
        return None
    return axes[0] if len(axes) == 1 else axes
