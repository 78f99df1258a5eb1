"""sclatent: structure-preserving and count-aware autoencoder embeddings for single-cell data."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, models, pl, tl
from ._io import read_backed
from ._settings import settings

try:
    __version__ = version("sclatent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__", "datasets", "models", "pl", "read_backed", "settings", "tl"]
