"""Array statistics the models build on (NumPy, SciPy, scikit-learn, igraph; no AnnData).

- :mod:`.pca`: principal components of a matrix streamed block by block;
- :mod:`.neighbors`: k-nearest-neighbour index arrays;
- :mod:`.clustering`: the GMVAE's starting mixture (Leiden communities, joint k-means, label
  propagation) on a kNN graph given by the caller;
- :mod:`.differential`: Bayesian differential expression by change of means.
"""
