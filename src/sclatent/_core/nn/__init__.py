"""Building blocks of the modules, tensors only.

- :mod:`.layers`: fully connected layers, Gaussian heads, likelihood decoders;
- :mod:`.likelihoods`: count and Gaussian log-likelihoods in log space, and sampling from them;
- :mod:`.losses`: KL divergences, GroupEnc's group loss, the contrastive neighbour loss;
- :mod:`.mixture`: the GMVAE's Gaussian-mixture prior with its exact KL terms;
- :mod:`.surgery`: scArches' architecture surgery on covariate inputs.
"""
