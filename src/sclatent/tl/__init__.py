"""Tools: train a model on an AnnData and write its outputs, the scanpy way."""

from ._scvae import scvae

__all__ = ["scvae"]
