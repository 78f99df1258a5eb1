"""Scores of embeddings, arrays in and numbers out.

- :mod:`.rnx_curves`: R_NX(K), Local and Global structure preservation, exact or sampled;
- :mod:`.classifiers`: held-out accuracy and macro-F1 of classifiers trained on an embedding.
"""
