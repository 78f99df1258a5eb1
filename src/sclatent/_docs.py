"""Parameter paragraphs written once and filled into docstrings (as scanpy's ``_doc_params`` does).

A docstring line that holds only ``{name}`` is replaced, at that line's indentation, by the numpydoc
entry of ``name`` in :data:`PARAMETERS`, or by the entries of the group ``name`` in :data:`GROUPS`.
The models fill their own docstrings so (:func:`shared_parameters`); each ``tl`` function takes its
model's whole parameter section (:func:`parameter_section`), and the command line's help reads the
filled docstrings of the ``tl`` functions. So every paragraph exists once in the source.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Mapping
from typing import TypeVar

Documented = TypeVar("Documented", bound=Callable)

#: The paragraph of every parameter that several models or tools share.
PARAMETERS: dict[str, str] = {
    "layer": "Layer holding the input (default ``.X``).",
    "n_latent": "Dimension of the embedding.",
    "hidden": "Hidden layer widths of the encoder (a decoder mirrors them).",
    "dropout": "Encoder dropout rate.",
    "batch_size": "Cells per minibatch.",
    "lr": "Adam learning rate.",
    "early_stopping": (
        "Stop when the held-out loss (for scVAE the negative ELBO) stops improving, keeping the best weights."
    ),
    "patience": "Epochs without improvement before early stopping.",
    "validation_fraction": "Share of cells held out to measure the loss.",
    "random_state": (
        "Seed of initialisation, split, shuffling and sampling: an int, None (a fresh seed, recorded in "
        "``uns``) or a NumPy Generator / RandomState (drawn from once)."
    ),
    "device": '``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.',
    "progress": "Show a progress bar.",
    "adata_or_path": (
        "Annotated data, or the path of an ``.h5ad`` file or ``.zarr`` store, read with its matrix on "
        "disk and returned with the outputs."
    ),
    "copy": "Return a modified copy instead of writing into ``adata``.",
}

#: Parameters that stand together, in this order, wherever one of them does.
GROUPS: dict[str, tuple[str, ...]] = {
    "stopping": ("early_stopping", "patience", "validation_fraction", "random_state", "device", "progress"),
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)\{(?P<name>\w+)\}[ \t]*$", re.M)
#: Width of the filled paragraphs' lines.
_WIDTH = 100


def entries(names: tuple[str, ...], texts: Mapping[str, str] = PARAMETERS) -> str:
    """The numpydoc entries (name, then its indented paragraph) of ``names``, unindented."""
    indent = " " * 4
    return "\n".join(
        f"{name}\n{textwrap.fill(texts[name], _WIDTH, initial_indent=indent, subsequent_indent=indent)}"
        for name in names
    )


def fill(docstring: str, blocks: Mapping[str, str]) -> str:
    """``docstring`` with each line that is only ``{name}`` replaced by ``blocks[name]``, indented alike.

    Names not in ``blocks`` are looked up in :data:`GROUPS` and :data:`PARAMETERS`; an unknown name
    raises a KeyError, so that a typo cannot reach the documentation.
    """

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        text = blocks[name] if name in blocks else entries(GROUPS.get(name, (name,)))
        return textwrap.indent(text, match["indent"])

    return _PLACEHOLDER.sub(replace, docstring)


def shared_parameters(obj: Documented) -> Documented:
    """Decorator: fill the ``{name}`` lines of ``obj``'s docstring (:data:`PARAMETERS`, :data:`GROUPS`)."""
    obj.__doc__ = fill(obj.__doc__ or "", {})
    return obj


def parameter_section(obj: object) -> str:
    """The entries of the ``Parameters`` section of ``obj``'s (filled) docstring, unindented."""
    doc = inspect.getdoc(obj) or ""
    found = re.search(r"^Parameters\n-+\n(?P<body>.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc, re.M | re.S)
    if found is None:
        msg = f"{obj!r} has no Parameters section to share."
        raise ValueError(msg)
    return found["body"].rstrip()
