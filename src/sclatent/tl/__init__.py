"""Tools: train a model on an AnnData and write its outputs, the scanpy way."""

from ._ae_sampling import ae_sampling
from ._groupenc import groupenc
from ._latent_accuracy import latent_accuracy
from ._rnx import rnx
from ._scvae import scvae

__all__ = ["ae_sampling", "groupenc", "latent_accuracy", "rnx", "scvae"]
