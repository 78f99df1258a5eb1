"""Bundled data sets, batch effects to lay on them, and synthetic atlases of any size."""

from ._atlas import synthetic_atlas
from ._batches import add_batch_effects
from ._datasets import mouse_brain_10k, pbmc_4k

__all__ = ["add_batch_effects", "mouse_brain_10k", "pbmc_4k", "synthetic_atlas"]
