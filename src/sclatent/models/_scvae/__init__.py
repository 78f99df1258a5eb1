"""scVAE: VAE and Gaussian-mixture VAE on raw counts, split by concern.

- :mod:`.model`: :class:`SCVAE`, its parameters, inputs, module and mixture outputs;
- :mod:`.mixture_schedule`: the GMVAE's stages (warm start, start, anchored epochs, pruning);
- :mod:`.query`: query mapping (scArches);
- :mod:`.expression`: ELBO, marginal likelihood, denoised and normalised expression, samples;
- :mod:`.differential`: differential expression.
"""

from .model import SCVAE

__all__ = ["SCVAE"]
