"""Bundled data sets."""

from ._datasets import mouse_brain_10k, pbmc_4k

__all__ = ["mouse_brain_10k", "pbmc_4k"]
