"""Private PyTorch core shared by every sclatent model: arrays and tensors in, arrays and tensors out.

Nothing here knows about AnnData or scanpy. Sub-packages, each one concern, import only downwards:

- :mod:`.train`: the one training loop, compiled steps, CUDA graphs;
- :mod:`.modules`: the torch modules of the models (count VAE / GMVAE, group encoder, sampling AE);
- :mod:`.nn`: layers, likelihoods, losses, the mixture prior, architecture surgery;
- :mod:`.data`: row sources in memory and on disk, samplers, minibatches;
  :mod:`.stats`: PCA, neighbours, the GMVAE's clustering start, differential-expression arithmetic;
  :mod:`.metrics`: R_NX and classifier scores of embeddings (these three are independent);
- :mod:`.runtime`: device, seeding, torch.distributed, mixed precision.

The rules are checked by ``tests/test_package_structure.py`` (see README, "Layout").
"""
