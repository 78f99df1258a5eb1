"""Tools: train a model on an AnnData and write its outputs, the scanpy way."""

from ._groupenc import groupenc
from ._rnx import rnx
from ._scvae import scvae

__all__ = ["groupenc", "rnx", "scvae"]
