"""Bundled data sets, and batch effects to lay on them."""

from ._batches import add_batch_effects
from ._datasets import mouse_brain_10k, pbmc_4k

__all__ = ["add_batch_effects", "mouse_brain_10k", "pbmc_4k"]
