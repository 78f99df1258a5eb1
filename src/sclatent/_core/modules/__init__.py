"""The torch modules of the models; each has ``loss(batch, kl_weight)``, the training loop's contract.

- :mod:`.count_vae`: :class:`CountVAE`, scVAE's VAE and Gaussian-mixture VAE on counts;
- :mod:`.group_encoder`: :class:`GroupEncoder`, GroupEnc's variational encoder;
- :mod:`.sampling_autoencoder`: :class:`SamplingAutoencoder` and the ICRST / TRST target draws.
"""

from .count_vae import CountVAE
from .group_encoder import GroupEncoder
from .sampling_autoencoder import SamplingAutoencoder

__all__ = ["CountVAE", "GroupEncoder", "SamplingAutoencoder"]
