"""Bayesian differential expression by change of means (Boyeau et al. 2019, scVI's "change" mode).

Arrays in, arrays out. The model supplies draws of the normalised expression of the cells of two
groups (rows: a cell and a sample of its z); here, pairs of draws, one from each group, give draws of
the log fold change of every gene, and from them its posterior summaries, the probability that its
absolute value exceeds a threshold ``delta`` (the gene is differentially expressed), the Bayes factor
of that event, and calls that keep the posterior expected false discovery rate below a target.
"""

from __future__ import annotations

import numpy as np

#: Genes handled at a time (bounds the pairs x genes working memory).
_GENE_BLOCK = 256


def change_of_means(
    draws_a: np.ndarray,
    draws_b: np.ndarray,
    *,
    delta: float,
    pseudocount: float,
    n_pairs: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Posterior summaries of each gene's log2 fold change between two groups.

    Parameters
    ----------
    draws_a, draws_b
        ``(n_a, n_genes)`` and ``(n_b, n_genes)`` draws of normalised expression (counts per 10,000)
        of the first and the second group.
    delta
        Smallest absolute log2 fold change that counts as differential expression.
    pseudocount
        Added to the expression before the log, so that the fold changes of genes near zero in both
        groups shrink to 0 instead of growing without bound.
    n_pairs
        Pairs of draws (one from each group, drawn uniformly with replacement).
    rng
        Source of the pairs.

    Returns
    -------
    Per gene: ``lfc_mean``, ``lfc_median``, ``lfc_std``, ``lfc_min``, ``lfc_max`` of
    ``log2(a + c) - log2(b + c)`` (c: ``pseudocount``), ``proba_de`` = P(|lfc| >= delta),
    ``proba_not_de``, ``bayes_factor`` = log(proba_de / proba_not_de), and ``scale1`` / ``scale2``,
    the mean expression of each group.
    """
    first = rng.integers(0, len(draws_a), n_pairs)
    second = rng.integers(0, len(draws_b), n_pairs)
    log_a = np.log2(draws_a + pseudocount)
    log_b = np.log2(draws_b + pseudocount)
    n_genes = draws_a.shape[1]
    out = {key: np.empty(n_genes) for key in ("lfc_mean", "lfc_median", "lfc_std", "lfc_min", "lfc_max")}
    out["proba_de"] = np.empty(n_genes)
    for start in range(0, n_genes, _GENE_BLOCK):
        genes = slice(start, start + _GENE_BLOCK)
        lfc = log_a[first, genes] - log_b[second, genes]
        out["lfc_mean"][genes] = lfc.mean(0)
        out["lfc_median"][genes] = np.median(lfc, 0)
        out["lfc_std"][genes] = lfc.std(0)
        out["lfc_min"][genes] = lfc.min(0)
        out["lfc_max"][genes] = lfc.max(0)
        out["proba_de"][genes] = (np.abs(lfc) >= delta).mean(0)
    out["proba_not_de"] = 1.0 - out["proba_de"]
    eps = 1e-8  # a probability of exactly 0 or 1 keeps a finite Bayes factor
    out["bayes_factor"] = np.log(out["proba_de"] + eps) - np.log(out["proba_not_de"] + eps)
    out["scale1"], out["scale2"] = draws_a.mean(0), draws_b.mean(0)
    return out


def fdr_calls(proba_de: np.ndarray, fdr_target: float) -> np.ndarray:
    """Differential-expression calls at a posterior expected false discovery rate, a boolean mask.

    The largest set of genes, by decreasing ``proba_de``, whose expected false discovery rate (the
    mean of ``1 - proba_de`` over the set) is at most ``fdr_target``.
    """
    order = np.argsort(-proba_de, kind="stable")
    expected_fdr = np.cumsum(1.0 - proba_de[order]) / np.arange(1, len(order) + 1)
    n_called = int(np.flatnonzero(expected_fdr <= fdr_target).max(initial=-1)) + 1
    calls = np.zeros(len(proba_de), dtype=bool)
    calls[order[:n_called]] = True
    return calls
