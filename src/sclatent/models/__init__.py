"""Model objects: ``fit``, ``transform``, ``save`` and :func:`load`."""

from ._ae_sampling import SamplingAE
from ._base import BaseModel, load
from ._groupenc import GroupEnc
from ._scvae import SCVAE

__all__ = ["SCVAE", "BaseModel", "GroupEnc", "SamplingAE", "load"]
